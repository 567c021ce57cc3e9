//! Stop signals, timeouts, daemon/join semantics on shutdown.

use crate::harness::*;

#[test]
fn a_child_ignoring_sigterm_is_sigkilled_after_stop_timeout() {
    let herd = Herd::start(
        r#"
[service.stubborn]
command = ["/bin/sh", "-c", "trap '' TERM; touch $DIR/trapped; while :; do sleep 1; done"]
stop_timeout = "300ms"
"#,
    );
    wait_until("the trap to be set", || herd.path("trapped").exists());
    let pid = herd.pid_of("stubborn");
    herd.ok(&["stop", "stubborn"]);
    // `stop` waited for the exit: it is over when herdctl returns.
    let stubborn = herd.instance("stubborn");
    assert_eq!(stubborn["state"], "inactive");
    assert_eq!(stubborn["last_exit"]["signal"], "SIGKILL");
    assert!(gone(pid));
}

/// The background `sleep` of a non-interactive shell ignores SIGINT, so it
/// outlives the stop signal; herd kills what is left of the group when the
/// leader exits.
#[test]
fn stop_leaves_nothing_of_the_process_group_behind() {
    let herd = Herd::start(
        r#"
[service.family]
command = ["/bin/sh", "-c", "sleep 1000 & echo $! > $DIR/kid; wait"]
stop_signal = "SIGINT"
"#,
    );
    let file = herd.path("kid");
    wait_until("the kid pid", || {
        std::fs::read_to_string(&file).is_ok_and(|s| s.ends_with('\n'))
    });
    let kid: u32 = std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    herd.ok(&["stop", "family"]);
    wait_until("the background child to die with its group", || !alive(kid));
}

#[test]
fn kill_sends_the_named_signal() {
    let herd = Herd::start(
        r#"
[service.web]
command = ["/bin/sleep", "1000"]
restart = "never"
"#,
    );
    herd.wait_state("web", "running");
    herd.ok(&["kill", "web", "-s", "USR1"]);
    herd.wait_state("web", "failed");
    assert_eq!(herd.instance("web")["last_exit"]["signal"], "SIGUSR1");
}

#[test]
fn daemon_children_die_when_herdd_is_sigkilled() {
    let mut herd = Herd::start(
        r#"
[service.web]
command = ["/bin/sleep", "1000"]
instances = 3
daemon = true
"#,
    );
    herd.wait_for("3 running", |h| {
        h.instances().iter().all(|i| i["state"] == "running")
    });
    let pids: Vec<u32> = (0..3).map(|i| herd.pid_of(&format!("web@{i}"))).collect();
    herd.kill_daemon();
    for pid in pids {
        wait_until("a daemon child to die with herdd", || !alive(pid));
    }
}

/// The task runs until the test lets it finish, which the test does only
/// once the service got its stop signal: so the service was stopped at
/// once, while the task ran on, and herdd waited for the task.
#[test]
fn shutdown_kills_daemons_at_once_and_joins_the_rest() {
    let mut herd = Herd::start(
        r#"
[service.web]
command = ["/bin/sh", "-c", "trap 'touch $DIR/web-stopped; exit 0' TERM; while :; do sleep 0.05; done"]

[task.backup]
command = ["/bin/sh", "-c", "touch $DIR/backup-started; while [ ! -e $DIR/go ]; do sleep 0.05; done; touch $DIR/backup-done"]
"#,
    );
    herd.wait_state("web", "running");
    wait_until("the task to run", || herd.path("backup-started").exists());
    let (web_stopped, go) = (herd.path("web-stopped"), herd.path("go"));
    let release = std::thread::spawn(move || {
        wait_until("the service to get its stop signal", || {
            web_stopped.exists()
        });
        std::fs::write(go, "").expect("let the task finish");
    });
    let out = herd.ctl(&["shutdown"]);
    assert!(out.status.success(), "{}", stderr(&out));
    release
        .join()
        .expect("the service was stopped while the task ran");
    // `shutdown` waits for herdd to exit, and herdd exits only when all are reaped.
    assert!(
        herd.path("backup-done").exists(),
        "the daemon = false task was joined, not killed"
    );
    assert_eq!(herd.wait_exit(), 0);
    assert!(!herd.socket.exists(), "the socket is removed on exit");
}

#[test]
fn sigterm_joins_a_task_only_up_to_shutdown_timeout() {
    let mut herd = Herd::start(
        r#"
[task.forever]
command = ["/bin/sleep", "1000"]
"#,
    );
    herd.wait_state("forever", "running");
    let pid = herd.pid_of("forever");
    signal(herd.daemon_pid(), libc::SIGTERM);
    // shutdown_timeout is 3s in the harness; then SIGTERM, then herdd exits.
    assert_eq!(herd.wait_exit(), 0);
    assert!(gone(pid), "herdd reaped the joined task before exiting");
}
