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
