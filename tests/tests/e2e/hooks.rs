//! Failure hooks (`on_failure`) through the real binaries: the hook writes
//! its arguments, its `HERD_*` environment and its log tail to files,
//! which the tests read back.

use crate::harness::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;

/// A hook that records each run: a line of arguments appended to
/// `hook-<instance>.args`, its `HERD_*` variables in `.env`, its tail in
/// `.tail`; then it says so on stdout.
const HOOK: &str = r#"#!/bin/sh
out="$(dirname "$0")/hook-$HERD_INSTANCE"
env | grep '^HERD_' | sort > "$out.env"
cat "$HERD_LOG_TAIL" > "$out.tail"
echo "$@" >> "$out.args"
echo "hook for $HERD_INSTANCE ran"
"#;

/// `path` as an executable script with `text`.
fn script(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// herdd on `units` (with `$DIR/hook.sh` in place), started.
fn with_hook(units: &str) -> Herd {
    let herd = Herd::configure(units);
    script(&herd.path("hook.sh"), HOOK);
    herd.launch()
}

/// The events herdd remembers, of type `kind`.
fn events(herd: &Herd, kind: &str) -> Vec<Value> {
    herd.ok(&["--json", "events"])
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("an event line"))
        .filter(|event| event["type"] == kind)
        .collect()
}

fn read(herd: &Herd, name: &str) -> String {
    std::fs::read_to_string(herd.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `KEY=VALUE` lines as pairs.
fn variables(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_service_at_its_start_limit_runs_its_hook_once_with_env_and_log_tail() {
    let herd = with_hook(
        r#"
[service.flaky]
command = ["sh", "-c", "echo starting $$; echo oops >&2; exit 3"]
restart = "always"
restart_delay = "10ms"
restart_delay_max = "10ms"
start_limit = 3
start_interval = "60s"
on_failure = ["$DIR/hook.sh", "{unit}", "{instance}"]
"#,
    );
    herd.wait_state("flaky", "failed");
    herd.wait_for("the hook to end", |herd| {
        !events(herd, "hook_exited").is_empty()
    });
    assert_eq!(read(&herd, "hook-flaky.args"), "flaky flaky\n", "one run");
    let env = variables(&read(&herd, "hook-flaky.env"));
    assert_eq!(env["HERD_UNIT"], "flaky");
    assert_eq!(env["HERD_INSTANCE"], "flaky");
    assert_eq!(env["HERD_EXIT_CODE"], "3");
    assert!(!env.contains_key("HERD_EXIT_SIGNAL"));
    assert!(env["HERD_REASON"].starts_with("start limit hit"), "{env:?}");
    assert_eq!(env["HERD_FAILURES"], "1");
    assert_eq!(env["HERD_LOG_TAIL"], "/dev/fd/3");
    // The tail is the instance's log as it was: three starts, two lines each.
    let tail = read(&herd, "hook-flaky.tail");
    // The tail was the whole log then; the hook's own output follows it there.
    herd.wait_for("the hook's output in the unit's log", |herd| {
        read(herd, "log/flaky/flaky.log").contains("hook for flaky ran")
    });
    let log = read(&herd, "log/flaky/flaky.log");
    assert!(log.starts_with(&tail), "{log}");
    assert_eq!(
        tail.lines().filter(|l| l.ends_with("oops")).count(),
        3,
        "{tail}"
    );
    assert_eq!(tail.lines().count(), 6, "{tail}");
    let started = events(&herd, "hook_started");
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["instance"], "flaky");
    let exited = &events(&herd, "hook_exited")[0];
    assert_eq!(exited["exit"]["code"], 0);
    assert_eq!(exited["timed_out"], false);
}

#[test]
fn a_failing_pool_task_runs_the_pool_hook_with_its_exit_code() {
    let herd = with_hook(
        r#"
[pool.p]
size = 1
on_failure = ["$DIR/hook.sh", "{unit}", "{instance}"]
"#,
    );
    let ok = herd.ok(&["submit", "p", "--", "true"]);
    let id = herd.ok(&[
        "submit",
        "p",
        "--",
        "sh",
        "-c",
        "echo no space left; exit 7",
    ]);
    let id = id.trim();
    let join = herd.ctl(&["join", ok.trim(), id]);
    assert_eq!(join.status.code(), Some(7), "{}", stderr(&join));
    herd.wait_for("the hook to end", |herd| {
        !events(herd, "hook_exited").is_empty()
    });
    let label = format!("p#{id}");
    assert_eq!(
        read(&herd, &format!("hook-{label}.args")),
        format!("p {label}\n")
    );
    let env = variables(&read(&herd, &format!("hook-{label}.env")));
    assert_eq!(env["HERD_UNIT"], "p");
    assert_eq!(env["HERD_POOL"], "p");
    assert_eq!(env["HERD_TASK_ID"], id);
    assert_eq!(env["HERD_EXIT_CODE"], "7");
    assert_eq!(env["HERD_REASON"], "task ended with exit code 7");
    let tail = read(&herd, &format!("hook-{label}.tail"));
    assert_eq!(tail, "no space left\n");
    // A pool's hook writes to herdd's own output.
    herd.wait_for("the hook's output in herdd's", |herd| {
        herd.log().contains(&format!("hook for {label} ran"))
    });
    assert_eq!(
        events(&herd, "hook_started").len(),
        1,
        "none for the task that exited 0"
    );
}

#[test]
fn a_hook_that_cannot_run_is_reported_not_retried_and_tried_again_after_reload() {
    let herd = Herd::configure(
        r#"
[service.web]
command = ["sh", "-c", "exit 1"]
restart = "never"
instances = 2
on_failure = ["$DIR/late-hook.sh", "{unit}"]
"#,
    );
    let herd = herd.launch();
    herd.wait_state("web@0", "failed");
    herd.wait_state("web@1", "failed");
    let failed = events(&herd, "hook_failed");
    assert_eq!(
        failed.len(),
        1,
        "tried once, for the first failure: {failed:?}"
    );
    let error = failed[0]["error"].as_str().unwrap();
    assert!(error.contains("late-hook.sh"), "{error}");
    assert!(events(&herd, "hook_started").is_empty());
    let web = &herd.status()["units"][0];
    assert!(
        web["hook_error"].as_str().unwrap().contains("late-hook.sh"),
        "{web}"
    );
    let human = herd.ok(&["status"]);
    assert!(human.contains("web: on_failure hook cannot run"), "{human}");

    // Installed, then a reload: the next failure runs it.
    script(&herd.path("late-hook.sh"), HOOK);
    herd.ok(&["reload"]);
    assert!(herd.status()["units"][0].get("hook_error").is_none());
    herd.ok(&["start", "web@1"]);
    herd.wait_for("the hook to end", |herd| {
        !events(herd, "hook_exited").is_empty()
    });
    assert_eq!(read(&herd, "hook-web@1.args"), "web\n");
    assert_eq!(events(&herd, "hook_failed").len(), 1);
}

#[test]
fn a_hook_past_its_timeout_is_killed_and_says_so() {
    let herd = Herd::start(
        r#"
[task.check]
command = ["false"]
on_failure = ["sleep", "600"]
on_failure_timeout = "200ms"
"#,
    );
    herd.wait_state("check", "failed");
    herd.wait_for("the hook to be killed", |herd| {
        !events(herd, "hook_exited").is_empty()
    });
    let exited = &events(&herd, "hook_exited")[0];
    assert_eq!(exited["timed_out"], true, "{exited}");
    assert_eq!(exited["exit"]["signal"], "SIGKILL", "{exited}");
    let pid = exited["pid"].as_u64().unwrap() as u32;
    assert!(gone(pid));
}

#[test]
fn bad_hooks_are_config_errors_at_their_place() {
    for (value, message) in [
        (
            "\"/usr/local/bin/alert\"",
            "3:14: service.web.on_failure: expected an array of strings, found a string",
        ),
        ("[]", "3:14: service.web.on_failure: must not be empty"),
    ] {
        let herd = Herd::configure(&format!(
            "[service.web]\ncommand = [\"true\"]\non_failure = {value}\n"
        ));
        let out = std::process::Command::new(bin("herdd"))
            .arg("--check-config")
            .arg("--config")
            .arg(&herd.config)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = stderr(&out);
        let at = format!("{}:{message}", herd.config.display());
        assert!(err.contains(&at), "{err}");
    }
}
