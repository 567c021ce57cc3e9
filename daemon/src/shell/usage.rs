//! What a running instance or task costs: memory, CPU time and processes,
//! read when a client asks (`status`, `tasks`, metrics), never otherwise.
//!
//! The figures come from the process's own cgroup when herd gave it one
//! (a directory named `herd-<pid>/...`, see `cgroup.rs`): the v2 files
//! `memory.current`, `memory.peak`, `cpu.stat` (`usage_usec`) and
//! `pids.current`, or on a hybrid host the v1 files of the controllers
//! bound there (`memory.usage_in_bytes`, `memory.max_usage_in_bytes`,
//! `cpuacct.usage`, `pids.current`). What no cgroup offers is summed over
//! the processes themselves from /proc: the members of the v2 cgroup when
//! there is one, else the process group. Each figure is a best effort: a
//! process that exits while it is read simply counts no more.

use super::mountinfo;
use herd_common::protocol::{ErrorCode, Reply, Request, Usage};
use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Bytes per page and clock ticks per second, for /proc's figures.
struct Units {
    page: u64,
    ticks: u64,
}

impl Units {
    fn current() -> Units {
        // SAFETY: sysconf only reads a constant of the running system.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        // SAFETY: as above.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Units {
            page: u64::try_from(page).unwrap_or(4096).max(1),
            ticks: u64::try_from(ticks).unwrap_or(100).max(1),
        }
    }
}

/// Reads usage for many process groups at once: the mounts are parsed once,
/// which v2 files a cgroup has is learnt once per parent directory, and
/// every file is read with one `read` into a reused buffer. A `status` of
/// hundreds of instances costs a few small reads each.
pub struct Reader {
    hierarchies: mountinfo::Hierarchies,
    units: Units,
    /// Per parent cgroup: which controllers its children have (its
    /// `cgroup.subtree_control`), so absent files are never tried.
    delegated: HashMap<PathBuf, Delegated>,
    buffer: Vec<u8>,
}

/// The v2 controllers whose files a cgroup has besides `cpu.stat`.
#[derive(Clone, Copy)]
struct Delegated {
    memory: bool,
    pids: bool,
}

impl Default for Reader {
    fn default() -> Self {
        Reader::new()
    }
}

impl Reader {
    pub fn new() -> Reader {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        Reader {
            hierarchies: mountinfo::Hierarchies::parse(&mountinfo),
            units: Units::current(),
            delegated: HashMap::new(),
            buffer: Vec::new(),
        }
    }

    /// Usage of the instance or task whose leader (and process group) is
    /// `pid`; `None` when it has gone.
    pub fn of(&mut self, pid: u32) -> Option<Usage> {
        let memberships = self.read(&format!("/proc/{pid}/cgroup"))?.to_string();
        let own = |dir: Option<PathBuf>| dir.filter(|dir| is_herds(dir));
        // Only a cgroup herd made for it is looked up in the file system:
        // herdd's own, shared ones say nothing about this process.
        let v2 = herds_membership(&memberships, None)
            .then(|| own(self.hierarchies.v2_dir(&memberships)))
            .flatten();
        let v1 = |controller| {
            herds_membership(&memberships, Some(controller))
                .then(|| own(self.hierarchies.v1_dir(&memberships, controller)))
                .flatten()
        };
        let (memory_v1, cpuacct, pids_v1) = (v1("memory"), v1("cpuacct"), v1("pids"));
        let delegated = v2.as_ref().map(|dir| self.delegated(dir));
        let mut members = match &v2 {
            Some(dir) => self.pids(&dir.join("cgroup.procs")),
            None => group_members(pid),
        };
        if members.is_empty() {
            // Not a group leader (or a cgroup read raced an exit): itself at least.
            members.push(pid);
        }
        let v2_memory = v2.as_ref().filter(|_| delegated.is_some_and(|d| d.memory));
        let v2_pids = v2.as_ref().filter(|_| delegated.is_some_and(|d| d.pids));
        let mut usage = Usage {
            memory_bytes: self.number(v2_memory, "memory.current"),
            memory_peak_bytes: self.number(v2_memory, "memory.peak"),
            cpu_usec: v2.as_ref().and_then(|dir| self.cpu_stat_usec(dir)),
            processes: self.number(v2_pids, "pids.current"),
        };
        if usage.memory_bytes.is_none() {
            usage.memory_bytes = self.number(memory_v1.as_ref(), "memory.usage_in_bytes");
            usage.memory_peak_bytes = self.number(memory_v1.as_ref(), "memory.max_usage_in_bytes");
        }
        if usage.cpu_usec.is_none() {
            usage.cpu_usec = self
                .number(cpuacct.as_ref(), "cpuacct.usage")
                .map(|ns| ns / 1000);
        }
        if usage.processes.is_none() {
            usage.processes = self
                .number(pids_v1.as_ref(), "pids.current")
                .or(Some(members.len() as u64));
        }
        if usage.memory_bytes.is_none() || usage.cpu_usec.is_none() {
            let (resident, cpu) = self.summed(&members);
            usage.memory_bytes = usage.memory_bytes.or(Some(resident));
            usage.cpu_usec = usage.cpu_usec.or(Some(cpu));
        }
        Some(usage)
    }

    /// Which controllers the cgroups next to `dir` have, read once per parent.
    fn delegated(&mut self, dir: &Path) -> Delegated {
        let parent = dir.parent().unwrap_or(dir).to_path_buf();
        if let Some(known) = self.delegated.get(&parent) {
            return *known;
        }
        let list = self
            .read(&parent.join("cgroup.subtree_control"))
            .unwrap_or_default()
            .to_string();
        let has = |name| list.split_whitespace().any(|word| word == name);
        let delegated = Delegated {
            memory: has("memory"),
            pids: has("pids"),
        };
        self.delegated.insert(parent, delegated);
        delegated
    }

    /// Resident memory (bytes; shared pages count once per process) and
    /// user plus system CPU time (µs, with the children they reaped) of
    /// `pids`, summed, from one read of each `/proc/<pid>/stat`.
    fn summed(&mut self, pids: &[u32]) -> (u64, u64) {
        let (mut pages, mut ticks) = (0, 0);
        for pid in pids {
            if let Some((resident, used)) = self
                .read(&format!("/proc/{pid}/stat"))
                .and_then(stat_figures)
            {
                pages += resident;
                ticks += used;
            }
        }
        (
            pages * self.units.page,
            ticks * 1_000_000 / self.units.ticks,
        )
    }

    fn number(&mut self, dir: Option<&PathBuf>, file: &str) -> Option<u64> {
        self.read(&dir?.join(file))?.trim().parse().ok()
    }

    fn pids(&mut self, path: &Path) -> Vec<u32> {
        self.read(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    }

    /// `usage_usec` of a v2 `cpu.stat` (present with or without the cpu controller).
    fn cpu_stat_usec(&mut self, dir: &Path) -> Option<u64> {
        self.read(&dir.join("cpu.stat"))?
            .lines()
            .find_map(|line| line.strip_prefix("usage_usec "))?
            .trim()
            .parse()
            .ok()
    }

    /// The text of a small kernel file (procfs, cgroupfs), into the reused
    /// buffer. These files are produced whole by each `read` that is large
    /// enough, so a short read is the end: no `fstat` for a size hint, no
    /// second `read` to see the end, as `fs::read_to_string` would do.
    fn read(&mut self, path: impl AsRef<Path>) -> Option<&str> {
        let mut file = fs::File::open(path).ok()?;
        self.buffer.clear();
        let mut filled = 0;
        loop {
            self.buffer.resize(filled + 4096, 0);
            let n = file.read(&mut self.buffer[filled..]).ok()?;
            filled += n;
            if n < 4096 {
                break;
            }
        }
        self.buffer.truncate(filled);
        std::str::from_utf8(&self.buffer).ok()
    }
}

/// Whether the reply to `request` carries usage (`status`, `tasks`).
pub fn costs(request: &Request) -> bool {
    matches!(request, Request::Status { .. } | Request::Tasks { .. })
}

/// Usage reads running at once: `status` is open to every local user, and
/// each read of hundreds of cgroups is a blocking thread's work; a flood of
/// `status` requests waits its turn instead of filling the blocking pool.
const CONCURRENT_READS: usize = 2;

/// A `status` or `tasks` reply with what each running process costs, read
/// on a blocking thread: the files of hundreds of cgroups must not hold up
/// the loop. Nothing is read unless a client asks.
pub async fn with_usage(reply: Reply) -> Reply {
    static READS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let Reply::Ok(mut payload) = reply else {
        return reply;
    };
    let reads = READS.get_or_init(|| tokio::sync::Semaphore::new(CONCURRENT_READS));
    // Never closed, so acquiring only waits.
    let _turn = reads.acquire().await;
    match tokio::task::spawn_blocking(move || {
        fill_payload(&mut payload);
        payload
    })
    .await
    {
        Ok(payload) => Reply::Ok(payload),
        Err(err) => Reply::error(ErrorCode::Failed, format!("cannot read usage: {err}")),
    }
}

/// Fills usage into a `status` or `tasks` payload as herdd sends it:
/// every instance (`units[].instances[]`) and task (`tasks[]`) with a pid.
/// Reads files for each: run it off the event loop.
pub fn fill_payload(payload: &mut serde_json::Value) {
    let mut reader = Reader::new();
    let Some(object) = payload.as_object_mut() else {
        return;
    };
    let mut entries: Vec<&mut serde_json::Value> = Vec::new();
    for (key, value) in object.iter_mut() {
        let Some(list) = value.as_array_mut() else {
            continue;
        };
        match key.as_str() {
            "units" => entries.extend(
                list.iter_mut()
                    .filter_map(|unit| unit.get_mut("instances")?.as_array_mut())
                    .flatten(),
            ),
            "tasks" => entries.extend(list.iter_mut()),
            _ => {}
        }
    }
    for entry in entries {
        let pid = entry.get("pid").and_then(serde_json::Value::as_u64);
        let (Some(pid), Some(object)) = (pid, entry.as_object_mut()) else {
            continue;
        };
        let Some(usage) = u32::try_from(pid).ok().and_then(|pid| reader.of(pid)) else {
            continue;
        };
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(usage) {
            object.extend(fields);
        }
    }
}

/// Whether `/proc/<pid>/cgroup` puts the process in a cgroup of herd's in
/// the v2 hierarchy (`controller` `None`) or the v1 one of `controller`.
fn herds_membership(memberships: &str, controller: Option<&str>) -> bool {
    memberships.lines().any(|line| {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return false;
        };
        let matches = match controller {
            None => controllers.is_empty(),
            Some(controller) => controllers.split(',').any(|c| c == controller),
        };
        matches && is_herds(Path::new(path))
    })
}

/// A cgroup herd made for one process (not herdd's own, shared one).
fn is_herds(dir: &Path) -> bool {
    dir.components().any(|part| {
        part.as_os_str()
            .to_str()
            .is_some_and(|name| name.starts_with("herd-"))
    })
}

/// Fields of a `/proc/<pid>/stat` text after the command name (which may
/// hold spaces and parentheses, so it is skipped up to its last `)`).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

/// Resident pages and utime + stime + cutime + cstime (clock ticks) of a
/// `/proc/<pid>/stat` text.
fn stat_figures(stat: &str) -> Option<(u64, u64)> {
    let fields = stat_fields(stat)?;
    // After the name: state(0) ppid pgrp session tty tpgid flags minflt
    // cminflt majflt cmajflt utime(11) stime cutime cstime(14) priority
    // nice threads itrealvalue starttime vsize rss(21).
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let ticks = number(11)? + number(12)? + number(13)? + number(14)?;
    Some((number(21)?, ticks))
}

/// Every process whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat_fields(&stat)
                .and_then(|fields| fields.get(2)?.parse::<u32>().ok())
                .is_some_and(|group| group == pgid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_usage_is_read_from_proc() {
        // This test process is in no herd cgroup: its figures come from /proc.
        let mut reader = Reader::new();
        let me = std::process::id();
        let usage = reader.of(me).expect("this process exists");
        let group = nix::unistd::getpgrp().as_raw() as u32;
        assert!(group_members(group).contains(&me));
        assert!(usage.memory_bytes.unwrap() > 0);
        assert!(usage.processes.is_some());
        assert!(reader.of(u32::MAX).is_none());
    }

    #[test]
    fn memberships_name_herds_cgroups() {
        let text = "4:memory:/process_api/x\n3:pids:/herd-7/units/web/0\n0::/herd-7/units/web/0\n";
        assert!(herds_membership(text, None));
        assert!(herds_membership(text, Some("pids")));
        assert!(!herds_membership(text, Some("memory")));
        assert!(!herds_membership(text, Some("cpuacct")));
        assert!(!herds_membership("0::/user.slice\n", None));
    }

    #[test]
    fn only_herds_cgroups_count() {
        assert!(is_herds(Path::new(
            "/sys/fs/cgroup/unified/herd-12/units/web/0"
        )));
        assert!(!is_herds(Path::new("/sys/fs/cgroup/memory/user.slice")));
    }
}
