//! How herdd starts processes: whatever herdd is doing meanwhile (signals
//! arriving, its helper threads busy), every process starts with a clean
//! signal state, and a process that fails before its program runs is
//! reported, not lost.

use crate::harness::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const STORM: &str = r#"
[pool.p]
size = 8
max_queue = 1000
keep_finished = 1000

[service.chatty]
command = ["/bin/sh", "-c", "while :; do echo line; sleep 0.01; done"]
"#;

/// 300 tasks started while herdd is sent SIGCHLD without pause and its
/// helper threads are kept busy (reloads are read, `logs` files read and
/// journal snapshots written on them): every task runs once and exits 0,
/// each starts with no signal blocked and SIGPIPE not ignored (herdd blocks
/// every signal while it starts a child, and ignores SIGPIPE), and herdd
/// is still up and serving at the end.
#[test]
fn a_spawn_storm_under_signals_and_busy_helper_threads_loses_nothing() {
    let herd = Herd::start(STORM);
    herd.wait_state("chatty", "running");
    let pid = herd.daemon_pid();
    let done = AtomicBool::new(false);
    const ITEMS: usize = 300;
    let items: String = (0..ITEMS).map(|i| format!("{i}\n")).collect();
    let out = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                signal(pid, libc::SIGCHLD);
                std::thread::sleep(Duration::from_micros(100));
            }
        });
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                herd.ok(&["reload"]);
                herd.ok(&["logs", "chatty", "-n", "5"]);
                herd.ok(&["status"]);
            }
        });
        // `env` execs grep, so grep shows the signal state herdd gave.
        let mut map = Command::new(bin("herdctl"))
            .arg("--socket")
            .arg(&herd.socket)
            .args(["map", "-j", "64", "p", "--", "/usr/bin/env", "ITEM={}"])
            .args(["/bin/grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        map.stdin
            .take()
            .unwrap()
            .write_all(items.as_bytes())
            .unwrap();
        let out = map.wait_with_output().unwrap();
        done.store(true, Ordering::Relaxed);
        out
    });
    assert!(out.status.success(), "map failed: {}", stderr(&out));
    let text = stdout(&out);
    let blocked: Vec<&str> = text.lines().filter(|l| l.starts_with("SigBlk:")).collect();
    assert_eq!(blocked.len(), ITEMS, "one SigBlk line per task:\n{text}");
    assert!(
        blocked.iter().all(|l| *l == "SigBlk:\t0000000000000000"),
        "a task started with signals blocked:\n{text}"
    );
    let ignored: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("SigIgn:\t"))
        .map(|mask| u64::from_str_radix(mask, 16).unwrap())
        .collect();
    assert_eq!(ignored.len(), ITEMS);
    let sigpipe = 1u64 << (libc::SIGPIPE - 1);
    assert!(
        ignored.iter().all(|mask| mask & sigpipe == 0),
        "a task started with SIGPIPE ignored:\n{text}"
    );
    assert!(alive(pid), "herdd died:\n{}", herd.log());
    let finished = herd.ok(&["--json", "tasks", "p"]);
    let tasks: serde_json::Value = serde_json::from_str(&finished).unwrap();
    let tasks = tasks["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), ITEMS, "{finished}");
    herd.wait_state("chatty", "running");
}

/// A child that fails after it was made but before its program runs (here:
/// a descriptor limit above what the kernel allows, refused by setrlimit in
/// the child) is reported with the errno, as an exec failure is, and is not
/// restarted in a loop.
#[test]
fn a_child_that_fails_before_its_exec_is_reported() {
    let herd = Herd::start(
        r#"
[service.limited]
command = ["/bin/sleep", "1000"]
restart = "always"
rlimits = { nofile = 1099511627776 }
"#,
    );
    herd.wait_state("limited", "failed");
    let instance = herd.instance("limited");
    let reason = instance["reason"].as_str().unwrap_or_default();
    assert_eq!(
        reason, "exec /bin/sleep: Operation not permitted",
        "{instance}"
    );
    assert_eq!(instance["restarts"], 0, "{instance}");
}

/// Field `index` (1-based, after the command) of /proc/PID/stat.
fn stat_of(pid: u32, index: usize) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    after.split(' ').nth(index - 3).expect("field").to_string()
}

/// A line of /proc/PID/`file` that starts with `prefix`.
fn proc_line(pid: u32, file: &str, prefix: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .expect("proc file")
        .lines()
        .find(|line| line.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in /proc/{pid}/{file}"))
        .to_string()
}

/// Whether `instance` (of status) is one of `unit`'s (`unit@N`).
fn of_unit(instance: &serde_json::Value, unit: &str) -> bool {
    instance["name"]
        .as_str()
        .and_then(|name| name.strip_prefix(unit))
        .is_some_and(|rest| rest.starts_with('@'))
}

/// 40 instances of one service and 5 of a service whose program is
/// missing, started by one request, so herdd starts them side by side:
/// each of the 40 runs its program in a process group of its own, as
/// `nobody`, with the descriptor limit it asked for, in a cgroup of its own
/// (where herdd has cgroups) and with its own pid in `LISTEN_PID`-style
/// variables; each of the 5 is failed with the exec error; none is lost.
#[test]
fn a_crowd_started_at_once_gets_what_each_of_them_asked_for() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("note: a_crowd_started_at_once...: needs root (user = \"nobody\"); skipped");
        return;
    }
    const CROWD: usize = 40;
    let herd = Herd::start(&format!(
        r#"
[service.crowd]
command = ["/bin/sh", "-c", "exec sleep 1000"]
instances = {CROWD}
user = "nobody"
rlimits = {{ nofile = 321 }}
env = {{ WATCHDOG_PID = "" }}
autostart = false

[service.missing]
command = ["/no/such/program"]
instances = 5
autostart = false
"#
    ));
    // One start for both: a failed instance makes herdctl exit 1.
    let out = herd.ctl(&["start", "crowd", "missing"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    herd.wait_for("the crowd to run and the missing to fail", |h| {
        let instances = h.instances();
        let count = |unit: &str, state: &str| {
            instances
                .iter()
                .filter(|i| of_unit(i, unit) && i["state"] == state)
                .count()
        };
        count("crowd", "running") == CROWD && count("missing", "failed") == 5
    });
    let instances = herd.instances();
    for missing in instances.iter().filter(|i| of_unit(i, "missing")) {
        assert_eq!(
            missing["reason"], "exec /no/such/program: No such file or directory",
            "{missing}"
        );
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("user nobody");
    let uid = nobody.uid.as_raw().to_string();
    let own_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mut cgroups = std::collections::HashSet::new();
    let mut pids = std::collections::HashSet::new();
    for instance in instances.iter().filter(|i| of_unit(i, "crowd")) {
        let name = instance["name"].as_str().expect("name");
        let pid = herd.exec_pid_of(name);
        wait_until(&format!("{name} to exec sleep"), || {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "sleep\n")
        });
        assert!(pids.insert(pid), "{name} shares pid {pid}");
        assert_eq!(stat_of(pid, 5), pid.to_string(), "{name} leads its group");
        assert_eq!(
            stat_of(pid, 4),
            herd.daemon_pid().to_string(),
            "{name}'s parent"
        );
        let uids = proc_line(pid, "status", "Uid:");
        assert!(
            uids.split_whitespace().skip(1).all(|id| id == uid),
            "{name}: {uids}"
        );
        let limit = proc_line(pid, "limits", "Max open files");
        assert_eq!(
            limit.split_whitespace().take(5).collect::<Vec<_>>(),
            ["Max", "open", "files", "321", "321"],
            "{name}"
        );
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let own = format!("WATCHDOG_PID={pid}");
        assert!(
            environ
                .split(|b| *b == 0)
                .any(|entry| entry == own.as_bytes()),
            "{name} has no {own}"
        );
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        if herd.log().contains("gets its own cgroup") {
            assert_ne!(cgroup, own_cgroup, "{name} is in the test's cgroup");
            assert!(cgroups.insert(cgroup.clone()), "{name} shares {cgroup}");
        }
    }
    assert!(alive(herd.daemon_pid()), "herdd died:\n{}", herd.log());
}
