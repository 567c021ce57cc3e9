//! Finding the processes of a killed herdd when its journal cannot tell
//! (missing, corrupt, unreadable, another version): without this, herdd
//! would start every instance again beside the ones still running.
//!
//! Every process herd starts has `HERD_SOCKET=<control socket>` in its
//! environment (besides `HERD_UNIT` and `HERD_INSTANCE`). Only one herdd at a
//! time serves a socket, so a herdd starting on the same socket finds its
//! predecessor's survivors by reading `/proc/PID/environ`. A process counts
//! as one only when every proof holds:
//! - its environment names this socket, a unit and an instance number, and
//!   no pool task (`HERD_POOL`);
//! - it leads its own process group, as herd starts every instance (its
//!   children inherit the environment but not the leadership);
//! - it started before this herdd (nothing started since is a survivor), and
//!   its start time is the same before and after the environment was read
//!   (a pid reused meanwhile cannot pass for it);
//! - its real and effective uid are herdd's own, or — for a herdd running as
//!   root — the uid of its unit's `user` (a process of any other user is
//!   never touched; nor is one whose environment herdd may not read);
//! - of several processes claiming one instance (a child that called
//!   `setsid` keeps the environment), those descending from another are
//!   not it, and of the rest the youngest is: an older one is a leftover
//!   of an earlier process of that instance (one that escaped its process
//!   group where no cgroup catches it).
//!
//! With a journal, the same look finds what the journal missed: a process
//! that replaced an instance's journaled one after the journal's last write
//! (written at most every 100 ms), or a survivor of a unit the journal does
//! not have (added by a `reload` just before herdd was killed).
//!
//! The core adopts them ([`Supervisor::adopt_survivors`]); this module stops
//! those of units the config no longer has, with SIGTERM and, after 10 s
//! (herd's default `stop_timeout`), SIGKILL.
//!
//! [`Supervisor::adopt_survivors`]: crate::core::Supervisor::adopt_survivors

use super::adopt;
use crate::core::survivors::Survivor;
use herd_config::Config;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// The variable naming the control socket of the herdd that started a process.
pub const SOCKET_VAR: &str = "HERD_SOCKET";

/// How long a survivor of a removed unit has between SIGTERM and SIGKILL.
const STRAY_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A process that carries this herdd's marks, before its owner is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Marked {
    unit: String,
    index: u32,
    pid: u32,
    start: u64,
    uids: [u32; 2],
}

/// Survivors of the previous herdd on `config`'s socket, each with its
/// kernel start time (watch the ones adopted with [`adopt::watch_if_same`]).
pub fn find(config: &Config) -> Vec<(Survivor, u64)> {
    let socket = config.herd.socket.to_string_lossy();
    let own_start = adopt::start_time(std::process::id()).unwrap_or(u64::MAX);
    let own_uid = nix::unistd::geteuid().as_raw();
    let mut claims: BTreeMap<(String, u32), Vec<Marked>> = BTreeMap::new();
    let began = Instant::now();
    let (examined, marked) = scan(&socket, own_start);
    debug!(
        processes = examined,
        marked = marked.len(),
        took_us = began.elapsed().as_micros() as u64,
        "looked for survivors of a previous herdd"
    );
    for marked in marked {
        if !owned_by_us(&marked, config, own_uid) {
            warn!(
                pid = marked.pid,
                unit = %marked.unit,
                uid = marked.uids[0],
                "a process of another user carries this herdd's marks; left alone"
            );
            continue;
        }
        let key = (marked.unit.clone(), marked.index);
        claims.entry(key).or_default().push(marked);
    }
    let ticks = clock_ticks();
    let uptime = uptime();
    claims
        .into_values()
        .filter_map(|claim| choose(claim, parent))
        .map(|m| {
            let started = Duration::from_secs_f64(m.start as f64 / ticks);
            let survivor = Survivor {
                unit: m.unit,
                index: m.index,
                pid: m.pid,
                age: uptime.saturating_sub(started),
            };
            (survivor, m.start)
        })
        .collect()
}

/// The instance among processes that claim the same one: not one that
/// descends from another (`parent` gives a process's parent), and of the
/// rest the youngest.
fn choose(claim: Vec<Marked>, parent: impl Fn(u32) -> Option<u32>) -> Option<Marked> {
    let pids: Vec<u32> = claim.iter().map(|m| m.pid).collect();
    let descends = |pid: u32| {
        // Bounded: a parent chain read while processes come and go may loop.
        std::iter::successors(parent(pid), |p| parent(*p))
            .take(256)
            .take_while(|p| *p > 1)
            .any(|ancestor| pids.contains(&ancestor))
    };
    let count = claim.len();
    let chosen = claim
        .into_iter()
        .filter(|m| count == 1 || !descends(m.pid))
        .max_by_key(|m| (m.start, m.pid));
    if count > 1 {
        debug!(processes = count, chosen = ?chosen.as_ref().map(|m| m.pid), "several processes claim one instance");
    }
    chosen
}

/// The parent of `pid`, from `/proc/PID/stat`.
fn parent(pid: u32) -> Option<u32> {
    Stat::read(pid).map(|stat| stat.ppid)
}

/// Whether `marked` runs as a user its unit may run as: herdd's own, or the
/// unit's `user` when herdd is root. A unit no longer configured allows
/// herdd's own user only.
fn owned_by_us(marked: &Marked, config: &Config, own_uid: u32) -> bool {
    let unit_uid = config
        .units
        .iter()
        .find(|unit| unit.name == marked.unit)
        .and_then(|unit| unit.user.as_ref())
        .map(|user| user.uid)
        .filter(|_| own_uid == 0);
    let allowed = |uid: u32| uid == own_uid || Some(uid) == unit_uid;
    marked.uids.iter().all(|uid| allowed(*uid))
}

/// Every process group leader that started no later than `own_start` and
/// whose environment names `socket`, a unit and an instance; and how many
/// processes were looked at.
fn scan(socket: &str, own_start: u64) -> (usize, Vec<Marked>) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (0, Vec::new());
    };
    let own_pid = std::process::id();
    let pids: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != own_pid)
        .collect();
    let marked = pids
        .iter()
        .filter_map(|pid| examine(*pid, socket, own_start))
        .collect();
    (pids.len(), marked)
}

/// `pid` as a [`Marked`] process, if it is one.
fn examine(pid: u32, socket: &str, own_start: u64) -> Option<Marked> {
    let stat = Stat::read(pid)?;
    if stat.zombie || stat.pgrp != pid || stat.start > own_start {
        return None;
    }
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let marks = Marks::parse(&environ);
    if marks.socket? != socket.as_bytes() || marks.pool {
        return None;
    }
    let unit = String::from_utf8(marks.unit?.to_vec()).ok()?;
    let index = std::str::from_utf8(marks.instance?).ok()?.parse().ok()?;
    let uids = uids(pid)?;
    // Still the process whose environment was read.
    if Stat::read(pid)?.start != stat.start {
        return None;
    }
    Some(Marked {
        unit,
        index,
        pid,
        start: stat.start,
        uids,
    })
}

/// What the scan needs of `/proc/PID/stat`.
struct Stat {
    zombie: bool,
    ppid: u32,
    pgrp: u32,
    start: u64,
}

impl Stat {
    fn read(pid: u32) -> Option<Stat> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Stat::parse(&stat)
    }

    fn parse(stat: &str) -> Option<Stat> {
        // The command name may hold anything, `)` included: fields follow the last `)`.
        let (_, rest) = stat.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // fields[0] is field 3 (state); ppid is field 4, pgrp 5, starttime 22.
        Some(Stat {
            zombie: *fields.first()? == "Z",
            ppid: fields.get(1)?.parse().ok()?,
            pgrp: fields.get(2)?.parse().ok()?,
            start: fields.get(19)?.parse().ok()?,
        })
    }
}

/// herd's variables in a `/proc/PID/environ` (NUL-separated `KEY=value`).
#[derive(Debug, Default, PartialEq)]
struct Marks<'a> {
    socket: Option<&'a [u8]>,
    unit: Option<&'a [u8]>,
    instance: Option<&'a [u8]>,
    pool: bool,
}

impl<'a> Marks<'a> {
    fn parse(environ: &'a [u8]) -> Marks<'a> {
        let mut marks = Marks::default();
        for entry in environ.split(|b| *b == 0) {
            let Some(eq) = entry.iter().position(|b| *b == b'=') else {
                continue;
            };
            let (key, value) = (&entry[..eq], &entry[eq + 1..]);
            match key {
                b"HERD_SOCKET" => marks.socket = Some(value),
                b"HERD_UNIT" => marks.unit = Some(value),
                b"HERD_INSTANCE" => marks.instance = Some(value),
                b"HERD_POOL" => marks.pool = true,
                _ => {}
            }
        }
        marks
    }
}

/// Real and effective uid, from `/proc/PID/status`.
fn uids(pid: u32) -> Option<[u32; 2]> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    let mut ids = line.split_whitespace().map(|id| id.parse::<u32>().ok());
    Some([ids.next()??, ids.next()??])
}

/// Clock ticks per second, the unit of start times.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Time since boot, from `/proc/uptime`.
fn uptime() -> Duration {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(Duration::ZERO, Duration::from_secs_f64)
}

/// Stops survivors of units the config no longer has: SIGTERM to the
/// process group, SIGKILL if its leader is still there after
/// 10 s. Only processes proved ours get here.
pub fn stop_strays(strays: Vec<(Survivor, u64)>) {
    for (stray, start) in strays {
        let Some(leader) = adopt::PidFd::open_if_same(stray.pid, start) else {
            continue;
        };
        info!(
            pid = stray.pid,
            unit = %stray.unit,
            instance = stray.index,
            "stopping a survivor of a unit that is no longer configured"
        );
        let group = Pid::from_raw(stray.pid as i32);
        let _ = killpg(group, Signal::SIGTERM);
        tokio::spawn(async move {
            if tokio::time::timeout(STRAY_STOP_TIMEOUT, leader.ended())
                .await
                .is_err()
            {
                // The leader is alive (its pidfd says so): the group is still its.
                let _ = killpg(group, Signal::SIGKILL);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_follow_the_last_parenthesis() {
        let line = "42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 123 4";
        let stat = Stat::parse(line).unwrap();
        assert_eq!((stat.zombie, stat.pgrp, stat.start), (false, 42, 98765));
        assert_eq!(stat.ppid, 1);
    }

    fn claimant(pid: u32, start: u64) -> Marked {
        Marked {
            unit: "web".into(),
            index: 0,
            pid,
            start,
            uids: [0, 0],
        }
    }

    #[test]
    fn of_several_claimants_a_descendant_is_not_the_instance_and_the_youngest_is() {
        // 10 is the instance; 11 its child that called setsid; 12 a child of
        // 11 that did too; 5 an older leftover re-parented to init.
        let parents = [(10, 1), (11, 10), (12, 11), (5, 1)];
        let parent = |pid| parents.iter().find(|(p, _)| *p == pid).map(|(_, pp)| *pp);
        let claim = vec![
            claimant(5, 100),
            claimant(10, 200),
            claimant(11, 300),
            claimant(12, 400),
        ];
        assert_eq!(choose(claim, parent).map(|m| m.pid), Some(10));
        let alone = vec![claimant(11, 300)];
        assert_eq!(
            choose(alone, parent).map(|m| m.pid),
            Some(11),
            "alone, it is the one"
        );
    }

    #[test]
    fn marks_are_read_from_a_nul_separated_environment() {
        let environ = b"PATH=/bin\0HERD_UNIT=web\0HERD_INSTANCE=2\0HERD_SOCKET=/run/h=1.sock\0";
        let marks = Marks::parse(environ);
        assert_eq!(marks.socket, Some(&b"/run/h=1.sock"[..]));
        assert_eq!(marks.unit, Some(&b"web"[..]));
        assert_eq!(marks.instance, Some(&b"2"[..]));
        assert!(!marks.pool);
        assert!(Marks::parse(b"HERD_POOL=p\0").pool);
    }
}
