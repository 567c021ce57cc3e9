//! Spawning, restarting, ordering, reaping.

use crate::harness::*;

#[test]
fn a_pool_of_50_comes_up_each_in_its_own_process_group() {
    let herd = Herd::start(
        r#"
[service.pool]
command = ["/bin/sleep", "1000"]
instances = 50
env = { PORT = "80{instance}" }
"#,
    );
    herd.wait_for("50 running", |h| {
        h.instances()
            .iter()
            .filter(|i| i["state"] == "running")
            .count()
            == 50
    });
    let pids: Vec<u32> = herd
        .instances()
        .iter()
        .map(|i| i["pid"].as_u64().unwrap() as u32)
        .collect();
    let mut distinct = pids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 50);
    for pid in &pids {
        assert!(alive(*pid));
        assert_eq!(
            stat_field(*pid, 5),
            Some(*pid as i64),
            "pid {pid} leads its own process group"
        );
    }
    let environ = std::fs::read(format!("/proc/{}/environ", herd.exec_pid_of("pool@7"))).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ.split('\0').any(|v| v == "HERD_INSTANCE=7"),
        "{environ}"
    );
    assert!(
        environ.split('\0').any(|v| v == "PORT=807"),
        "{{instance}} substituted in env"
    );
}

#[test]
fn sigkill_of_an_instance_gives_a_new_pid() {
    let herd = Herd::start(
        r#"
[service.web]
command = ["/bin/sleep", "1000"]
instances = 2
restart_delay = "0s"
"#,
    );
    herd.wait_state("web@1", "running");
    let old = herd.pid_of("web@1");
    let other = herd.pid_of("web@0");
    signal(old, libc::SIGKILL);
    herd.wait_for("a new pid for web@1", |h| {
        let i = h.instance("web@1");
        i["state"] == "running" && i["pid"].as_u64() != Some(old as u64)
    });
    let web1 = herd.instance("web@1");
    assert_eq!(web1["restarts"], 1);
    assert_eq!(web1["last_exit"]["signal"], "SIGKILL");
    assert_eq!(
        herd.pid_of("web@0"),
        other,
        "the other instance is untouched"
    );
    assert!(gone(old), "the killed process was reaped");
}

#[test]
fn a_crash_loop_ends_failed_after_start_limit() {
    let herd = Herd::start(
        r#"
[service.crashy]
command = ["/bin/sh", "-c", "exit 3"]
restart = "always"
restart_delay = "10ms"
start_limit = 3
start_interval = "60s"
"#,
    );
    herd.wait_state("crashy", "failed");
    let crashy = herd.instance("crashy");
    assert_eq!(crashy["restarts"], 2, "three starts, then gave up");
    assert_eq!(crashy["last_exit"]["code"], 3);
    assert!(
        crashy["reason"].as_str().unwrap().contains("start limit"),
        "{crashy}"
    );
    let out = herd.ctl(&["status", "crashy"]);
    assert_eq!(out.status.code(), Some(3), "a failed unit is not running");
    assert!(stdout(&out).contains("start limit"));
}

#[test]
fn an_exec_failure_is_a_clear_message_not_a_loop() {
    let herd = Herd::start(
        r#"
[service.missing]
command = ["/no/such/binary"]
restart = "always"

[service.nocwd]
command = ["/bin/sleep", "1000"]
cwd = "/no/such/dir"
autostart = false
"#,
    );
    herd.wait_state("missing", "failed");
    assert_eq!(
        herd.instance("missing")["reason"],
        "exec /no/such/binary: No such file or directory"
    );
    assert_eq!(herd.instance("missing")["restarts"], 0);
    let out = herd.ctl(&["start", "nocwd"]);
    assert_eq!(out.status.code(), Some(1), "a start that fails exits 1");
    assert!(
        stderr(&out).contains("cwd /no/such/dir: No such file or directory"),
        "{}",
        stderr(&out)
    );
}

/// herdd does not wait for each exec (it forks the next process meanwhile):
/// an exec that fails late still ends up as a clear error, not a crash loop.
#[test]
fn a_late_exec_failure_is_reported_too() {
    let mut herd = Herd::configure(
        r#"
[service.corrupt]
command = ["$DIR/corrupt"]
restart = "always"

[service.denied]
command = ["$DIR/denied"]
restart = "always"
"#,
    );
    use std::os::unix::fs::PermissionsExt;
    let corrupt = herd.path("corrupt");
    std::fs::write(&corrupt, [0x7f, b'E', b'L', b'F', 0, 0, 0, 0]).unwrap();
    std::fs::set_permissions(&corrupt, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(herd.path("denied"), "#!/bin/sh\n").unwrap();
    herd = herd.launch();
    herd.wait_state("corrupt", "failed");
    let reason = herd.instance("corrupt")["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.starts_with("exec ") && reason.contains("Exec format error"),
        "{reason}"
    );
    assert_eq!(herd.instance("corrupt")["restarts"], 0);
    herd.wait_state("denied", "failed");
    let reason = herd.instance("denied")["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("Permission denied"), "{reason}");
}

#[test]
fn after_orders_units_and_a_failed_dependency_blocks() {
    let herd = Herd::start(
        r#"
[task.migrate]
command = ["/bin/sh", "-c", "sleep 0.2; touch $DIR/migrated"]

[service.db]
command = ["/bin/sh", "-c", "test -f $DIR/migrated && exec sleep 1000"]
after = ["migrate"]
restart = "never"

[task.broken]
command = ["/bin/sh", "-c", "exit 1"]

[service.app]
command = ["/bin/sleep", "1000"]
after = ["broken", "db"]
"#,
    );
    herd.wait_state("migrate", "exited");
    herd.wait_state("db", "running");
    herd.wait_state("broken", "failed");
    let app = herd.instance("app");
    assert_eq!(app["state"], "waiting");
    assert_eq!(app["reason"], "dependency broken failed");
    assert_eq!(app["pid"], serde_json::Value::Null);
}

#[test]
fn a_double_forked_grandchild_leaves_no_zombie() {
    let herd = Herd::start(
        r#"
[service.forker]
command = ["/bin/sh", "-c", "/bin/sh -c 'sleep 0.3 & echo $! > $DIR/grandchild' ; exec sleep 1000"]
"#,
    );
    let file = herd.path("grandchild");
    wait_until("the grandchild pid file", || {
        std::fs::read_to_string(&file).is_ok_and(|s| s.trim().parse::<u32>().is_ok())
    });
    let grandchild: u32 = std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The orphan is re-parented to herdd (a subreaper) and must be reaped when it exits.
    wait_until("the orphan to be reaped", || gone(grandchild));
    let daemon = herd.daemon_pid();
    for child in children(daemon) {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        assert_ne!(
            process_state(&stat),
            Some('Z'),
            "zombie child {child} of herdd"
        );
    }
    assert_eq!(herd.instance("forker")["state"], "running");
}

#[test]
fn scale_up_and_down_leaves_other_instances_alone() {
    let herd = Herd::start(
        r#"
[service.web]
command = ["/bin/sleep", "1000"]
instances = 3
"#,
    );
    herd.wait_for("3 running", |h| {
        h.instances().iter().all(|i| i["state"] == "running")
    });
    let before: Vec<u32> = (0..3).map(|i| herd.pid_of(&format!("web@{i}"))).collect();
    herd.ok(&["scale", "web", "5"]);
    herd.wait_for("5 running", |h| {
        let all = h.instances();
        all.len() == 5 && all.iter().all(|i| i["state"] == "running")
    });
    for (i, pid) in before.iter().enumerate() {
        assert_eq!(
            herd.pid_of(&format!("web@{i}")),
            *pid,
            "web@{i} untouched by scale up"
        );
    }
    let extra = herd.pid_of("web@4");
    herd.ok(&["scale", "web", "2"]);
    herd.wait_for("2 instances", |h| h.instances().len() == 2);
    wait_until("web@4 gone", || gone(extra));
    assert_eq!(herd.pid_of("web@0"), before[0]);
    assert_eq!(herd.pid_of("web@1"), before[1]);
    assert!(gone(before[2]));
}
