//! Semaphores, events, notify readiness and the event stream, end to end.

use crate::harness::*;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_two_slot_semaphore_limits_ten_instances_to_two_at_once() {
    let herd = Herd::start(
        r#"
[semaphore.db]
capacity = 2

[service.worker]
command = ["/bin/sh", "-c", "touch $DIR/run/$HERD_INSTANCE; ls $DIR/run | wc -l >> $DIR/counts; sleep 0.1; rm $DIR/run/$HERD_INSTANCE"]
instances = 10
semaphores = ["db"]
restart = "never"
"#,
    );
    std::fs::create_dir_all(herd.path("run")).unwrap();
    herd.wait_for("all ten to have run", |h| {
        h.instances()
            .iter()
            .all(|i| i["state"] == "exited" || i["state"] == "failed")
    });
    let counts: Vec<u32> = std::fs::read_to_string(herd.path("counts"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(counts.len(), 10, "every instance ran once");
    assert!(
        counts.iter().all(|c| *c <= 2),
        "more than 2 ran at once: {counts:?}"
    );
    let list: serde_json::Value =
        serde_json::from_str(&herd.ok(&["--json", "sem", "list"])).unwrap();
    assert_eq!(
        list["semaphores"][0]["holders"].as_array().unwrap().len(),
        0,
        "every slot released"
    );
}

#[test]
fn sem_acquire_runs_a_command_holding_a_slot_and_a_killed_holder_frees_it_at_once() {
    let herd = Herd::start(
        r#"
[semaphore.lock]
capacity = 1
"#,
    );
    let out = herd.ctl(&["sem", "acquire", "lock", "--", "/bin/sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "exits with the command's code");
    // A holder that is SIGKILLed.
    let mut holder = Command::new(bin("herdctl"))
        .args([
            "--socket",
            herd.socket.to_str().unwrap(),
            "sem",
            "acquire",
            "lock",
            "--",
            "/bin/sleep",
            "1000",
        ])
        .stdout(Stdio::null())
        // A process group of its own, so its `sleep` can be cleaned up with it.
        .process_group(0)
        .spawn()
        .unwrap();
    herd.wait_for("the slot to be held", |h| {
        let list: serde_json::Value =
            serde_json::from_str(&h.ok(&["--json", "sem", "list"])).unwrap();
        list["semaphores"][0]["holders"].as_array().unwrap().len() == 1
    });
    let busy = herd.ctl(&[
        "sem",
        "acquire",
        "lock",
        "--timeout",
        "100ms",
        "--",
        "/bin/true",
    ]);
    assert_eq!(busy.status.code(), Some(1), "times out while held");
    signal(holder.id(), libc::SIGKILL);
    let _ = holder.wait();
    let killed_at = Instant::now();
    // The orphaned `sleep` is in the killed herdctl's process group.
    // SAFETY: killpg on the group of a process this test started.
    unsafe { libc::killpg(holder.id() as i32, libc::SIGKILL) };
    let out = herd.ctl(&[
        "sem",
        "acquire",
        "lock",
        "--timeout",
        "5s",
        "--",
        "/bin/true",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(killed_at.elapsed() < Duration::from_secs(5));
    let list: serde_json::Value =
        serde_json::from_str(&herd.ok(&["--json", "sem", "list"])).unwrap();
    assert!(list["semaphores"][0]["holders"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn a_unit_gated_on_an_event_starts_when_it_is_set() {
    let herd = Herd::start(
        r#"
[event.go]

[service.gated]
command = ["/bin/sleep", "1000"]
wait_events = ["go"]
"#,
    );
    let gated = herd.instance("gated");
    assert_eq!(gated["state"], "waiting");
    assert_eq!(gated["reason"], "waiting for event go");
    let started = Instant::now();
    let out = herd.ctl(&["event", "wait", "go", "--timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(1), "wait times out while clear");
    assert!(started.elapsed() >= Duration::from_millis(300));
    herd.ok(&["event", "set", "go"]);
    herd.wait_state("gated", "running");
    assert_eq!(
        herd.ctl(&["event", "wait", "go", "--timeout", "1s"])
            .status
            .code(),
        Some(0)
    );
    let list: serde_json::Value =
        serde_json::from_str(&herd.ok(&["--json", "event", "list"])).unwrap();
    assert_eq!(list["events"][0]["set"], true);
}

#[test]
fn sets_event_follows_a_notify_service_through_start_crash_and_restart() {
    let herd = Herd::start(
        r#"
[event.db-ready]

[service.db]
command = ["/bin/sh", "-c", "sleep 0.2; systemd-notify --ready --status='accepting connections'; exec sleep 1000"]
ready = "notify"
sets_event = "db-ready"
restart_delay = "10ms"

[service.app]
command = ["/bin/sleep", "1000"]
wait_events = ["db-ready"]
"#,
    );
    let event_set = |h: &Herd| {
        let list: serde_json::Value =
            serde_json::from_str(&h.ok(&["--json", "event", "list"])).unwrap();
        list["events"][0]["set"] == true
    };
    assert_eq!(
        herd.instance("db")["state"],
        "starting",
        "not ready before READY=1"
    );
    herd.wait_state("db", "running");
    assert_eq!(
        herd.instance("db")["notify_status"],
        "accepting connections"
    );
    herd.wait_state("app", "running");
    assert!(event_set(&herd));
    let pid = herd.pid_of("db");
    signal(pid, libc::SIGKILL);
    herd.wait_for("db to restart", |h| {
        h.instance("db")["pid"].as_u64() != Some(pid as u64)
    });
    herd.wait_for("the event to follow the restart", |h| {
        h.instance("db")["state"] == "running" && event_set(h)
    });
    herd.ok(&["stop", "db"]);
    assert!(!event_set(&herd), "cleared when stopped");
}

#[test]
fn a_notify_service_that_never_becomes_ready_fails() {
    let herd = Herd::start(
        r#"
[service.mute]
command = ["/bin/sleep", "1000"]
ready = "notify"
start_timeout = "300ms"
restart = "never"
"#,
    );
    herd.wait_state("mute", "failed");
    assert!(herd.instance("mute")["reason"]
        .as_str()
        .unwrap()
        .contains("READY=1"));
}

#[test]
fn events_follow_sees_a_full_lifecycle() {
    let herd = Herd::start(
        r#"
[service.web]
command = ["/bin/sleep", "1000"]
autostart = false
restart_delay = "0s"
"#,
    );
    let mut follower = Command::new(bin("herdctl"))
        .args([
            "--socket",
            herd.socket.to_str().unwrap(),
            "--json",
            "events",
            "-f",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    herd.ok(&["start", "web"]);
    let pid = herd.pid_of("web");
    signal(pid, libc::SIGKILL);
    herd.wait_for("the restart", |h| {
        h.instance("web")["pid"].as_u64() != Some(pid as u64)
    });
    herd.ok(&["stop", "web"]);
    let mut seen = Vec::new();
    let wanted = [
        "started",
        "ready",
        "exited",
        "restarting",
        "started",
        "ready",
        "stopping",
        "exited",
    ];
    while seen.len() < wanted.len() {
        let line = lines.next().expect("the stream goes on").unwrap();
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(event["time"].as_str().unwrap().ends_with('Z'), "{line}");
        seen.push(event["type"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, wanted);
    signal(follower.id(), libc::SIGKILL);
    let _ = follower.wait();
    // Without -f: the remembered events, then it ends.
    let past = herd.ok(&["--json", "events"]);
    assert!(past.lines().count() >= wanted.len());
}

/// A process group this test started, SIGKILLed on drop (a failed test
/// must not leave its holder behind).
struct Group(std::process::Child);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: killpg on the group of a process this test started.
        unsafe { libc::killpg(self.0.id() as i32, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// `herdctl sem acquire lock -- CMD` in a process group of its own; CMD
/// ends once `$DIR/go` exists.
fn hold_until_go(herd: &Herd) -> Group {
    let script = format!(
        "while [ ! -e {} ]; do sleep 0.02; done",
        herd.path("go").display()
    );
    Command::new(bin("herdctl"))
        .args(["--socket", herd.socket.to_str().unwrap()])
        .args(["sem", "acquire", "lock", "--", "/bin/sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map(Group)
        .unwrap()
}

fn lock_holders(herd: &Herd) -> Vec<String> {
    let list: serde_json::Value =
        serde_json::from_str(&herd.ok(&["--json", "sem", "list"])).unwrap();
    list["semaphores"][0]["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect()
}

/// The slot stays with the holder's process over a restart of herdd, and
/// goes when that process ends.
fn slot_survives(restart: impl FnOnce(&mut Herd)) {
    let mut herd = Herd::start(
        r#"
[semaphore.lock]
capacity = 1
"#,
    );
    let mut holder = hold_until_go(&herd);
    let pid = format!("pid {}", holder.0.id());
    herd.wait_for("the slot to be held", |h| lock_holders(h).len() == 1);
    restart(&mut herd);
    let holders = lock_holders(&herd);
    assert!(
        holders.len() == 1 && holders[0].contains(&pid),
        "{holders:?}\n{}",
        herd.log()
    );
    let busy = herd.ctl(&[
        "sem",
        "acquire",
        "lock",
        "--timeout",
        "300ms",
        "--",
        "/bin/true",
    ]);
    assert_eq!(
        busy.status.code(),
        Some(1),
        "granted twice: {}",
        stderr(&busy)
    );
    // The holder's command ends, herdctl exits: the slot is free again.
    std::fs::write(herd.path("go"), "").unwrap();
    let _ = holder.0.wait();
    let next = herd.ctl(&[
        "sem",
        "acquire",
        "lock",
        "--timeout",
        "10s",
        "--",
        "/bin/true",
    ]);
    assert_eq!(next.status.code(), Some(0), "{}", stderr(&next));
    assert!(lock_holders(&herd).is_empty());
}

#[test]
fn a_semaphore_slot_stays_with_its_holder_over_daemon_reexec() {
    slot_survives(|herd| {
        herd.ok(&["daemon-reexec"]);
    });
}

#[test]
fn a_semaphore_slot_stays_with_its_holder_after_herdd_is_killed() {
    slot_survives(|herd| {
        wait_until("the journal to record the slot", || {
            std::fs::read_to_string(herd.path("state/journal.json"))
                .is_ok_and(|journal| journal.contains("\"process\""))
        });
        herd.kill_daemon();
        herd.relaunch();
    });
}
