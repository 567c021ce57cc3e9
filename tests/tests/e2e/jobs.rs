//! Task limits through herdctl: `--timeout`, `--retries`, `--priority`,
//! `--after`, `--unique`, and the pool defaults `task_timeout`, `retries`.

use crate::harness::*;
use std::process::Command;

const POOL: &str = r#"
[pool.p]
size = 1
stop_timeout = "300ms"
"#;

fn submit(herd: &Herd, args: &[&str]) -> u64 {
    let mut all = vec!["submit", "p"];
    all.extend_from_slice(args);
    herd.ok(&all)
        .trim()
        .parse()
        .expect("submit prints the task id")
}

#[test]
fn join_of_a_timed_out_task_exits_124() {
    let herd = Herd::start(POOL);
    // It ignores SIGTERM, so it is SIGKILLed after stop_timeout.
    let id = submit(
        &herd,
        &[
            "--timeout",
            "200ms",
            "--",
            "/bin/sh",
            "-c",
            "trap '' TERM; sleep 60",
        ],
    );
    let out = herd.ctl(&["join", &id.to_string()]);
    assert_eq!(
        out.status.code(),
        Some(124),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("timed out (killed by SIGKILL)"),
        "{}",
        stdout(&out)
    );
    let status = herd.task(id);
    assert_eq!(status["state"], "timed_out");
    assert!(herd.ok(&["tasks"]).contains("timed out"));
}

#[test]
fn a_task_failing_twice_succeeds_on_its_third_attempt() {
    let herd = Herd::start(POOL);
    let counter = herd.path("tries");
    // Exits 1 on its first two runs, 0 on the third; says which run it is.
    let script = format!(
        "echo run >> {c}; n=$(wc -l < {c}); echo attempt $n; [ $n -ge 3 ]",
        c = counter.display()
    );
    let id = submit(
        &herd,
        &[
            "--retries",
            "3",
            "--retry-delay",
            "50ms",
            "--",
            "/bin/sh",
            "-c",
            &script,
        ],
    );
    let out = herd.ctl(&["join", &id.to_string()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("exited 0"), "{}", stdout(&out));
    let status = herd.task(id);
    assert_eq!(status["state"], "exited");
    assert_eq!(status["attempts"], 3);
    assert_eq!(status["failed_attempts"].as_array().unwrap().len(), 2);
    // Every attempt's output is kept, and stderr says where each ended.
    let output = herd.ok(&["output", &id.to_string()]);
    assert_eq!(output, "attempt 1\nattempt 2\nattempt 3\n");
    let errors = herd.ok(&["output", "--stderr", &id.to_string()]);
    assert!(
        errors.contains("attempt 1 failed (exit code 1); retry 1 of 3"),
        "{errors}"
    );
    assert!(
        errors.contains("attempt 2 failed (exit code 1); retry 2 of 3"),
        "{errors}"
    );
    assert!(
        herd.ok(&["tasks"]).contains("3/4"),
        "tasks shows the attempts"
    );
}

#[test]
fn a_pool_of_one_runs_higher_priorities_first() {
    let herd = Herd::start(POOL);
    let order = herd.path("order");
    let gate = herd.path("gate");
    // The first task holds the only slot until the gate file appears, so
    // the others are all queued before any of them runs.
    let hold = format!("while [ ! -e {} ]; do sleep 0.02; done", gate.display());
    let first = submit(&herd, &["--", "/bin/sh", "-c", &hold]);
    let mut ids = vec![first];
    for (label, priority) in [("low", "0"), ("high1", "9"), ("mid", "5"), ("high2", "9")] {
        let write = format!("echo {label} >> {}", order.display());
        ids.push(submit(
            &herd,
            &["--priority", priority, "--", "/bin/sh", "-c", &write],
        ));
    }
    std::fs::write(&gate, "").unwrap();
    let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
    let mut args = vec!["join"];
    args.extend(ids.iter().map(String::as_str));
    herd.ok(&args);
    let ran = std::fs::read_to_string(&order).unwrap();
    assert_eq!(ran, "high1\nhigh2\nmid\nlow\n");
}

#[test]
fn after_delays_a_start_and_unique_returns_the_same_id() {
    let herd = Herd::start(POOL);
    let first = submit(
        &herd,
        &[
            "--name",
            "nightly",
            "--unique",
            "--after",
            "1h",
            "--",
            "/bin/true",
        ],
    );
    assert_eq!(
        herd.task(first)["state"],
        "queued",
        "not before an hour from now"
    );
    let again = submit(&herd, &["--name", "nightly", "--unique", "--", "/bin/true"]);
    assert_eq!(again, first, "a duplicate returns the existing task");
    let other = submit(&herd, &["--name", "nightly", "--", "/bin/true"]);
    assert_ne!(other, first, "without --unique another task is queued");
    // The delayed task does not hold up the queue.
    herd.ok(&["join", &other.to_string()]);
    assert_eq!(herd.task(first)["state"], "queued");
}

#[test]
fn bad_limits_are_refused_with_exit_2_and_queue_nothing() {
    let herd = Herd::start(POOL);
    for args in [
        &["submit", "p", "--retries", "-1", "--", "/bin/true"][..],
        &["submit", "p", "--priority", "-3", "--", "/bin/true"],
        &["submit", "p", "--timeout", "0s", "--", "/bin/true"],
        &["submit", "p", "--unique", "--", "/bin/true"],
    ] {
        let out = herd.ctl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).trim().is_empty(), "{args:?} says why");
    }
    let tasks: serde_json::Value = serde_json::from_str(&herd.ok(&["--json", "tasks"])).unwrap();
    assert_eq!(tasks["tasks"].as_array().unwrap().len(), 0);
}

#[test]
fn pool_defaults_time_out_and_retry_tasks() {
    let herd = Herd::start(
        r#"
[pool.p]
size = 2
stop_timeout = "300ms"
task_timeout = "200ms"
retries = 1
retry_delay = "10ms"
"#,
    );
    let id = submit(&herd, &["--", "/bin/sleep", "60"]);
    let out = herd.ctl(&["join", &id.to_string()]);
    assert_eq!(out.status.code(), Some(124), "{}", stdout(&out));
    let status = herd.task(id);
    assert_eq!(
        status["attempts"], 2,
        "timed out once, retried, timed out again"
    );
}

#[test]
fn check_config_names_bad_task_limits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herd.toml");
    std::fs::write(
        &path,
        "[pool.p]\nsize = 1\nretries = -1\ntask_timeout = \"0s\"\n",
    )
    .unwrap();
    let out = Command::new(bin("herdd"))
        .arg("--check-config")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let file = path.display().to_string();
    assert!(
        err.contains(&format!("{file}:3:11: pool.p.retries: must be at least 0")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:4:16: pool.p.task_timeout: must be longer than 0s"
        )),
        "{err}"
    );
}

#[test]
fn instances_cpus_times_two_runs_two_per_online_cpu() {
    let herd = Herd::start(
        r#"
[service.worker]
command = ["/bin/sleep", "1000"]
instances = "cpus*2"
"#,
    );
    let online = Command::new("getconf")
        .arg("_NPROCESSORS_ONLN")
        .output()
        .unwrap();
    let cpus: usize = stdout(&online).trim().parse().unwrap();
    let workers = herd
        .instances()
        .iter()
        .filter(|i| i["name"].as_str().unwrap().starts_with("worker@"))
        .count();
    assert_eq!(workers, 2 * cpus);
    herd.wait_state(&format!("worker@{}", 2 * cpus - 1), "running");
}
