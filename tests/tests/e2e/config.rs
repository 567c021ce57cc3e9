//! `herdd --check-config` and config errors, through the real binary.

use crate::harness::*;
use std::process::Command;

fn check(dir: &std::path::Path, text: &str) -> std::process::Output {
    let path = dir.join("herd.toml");
    std::fs::write(&path, text).unwrap();
    Command::new(bin("herdd"))
        .arg("--check-config")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap()
}

#[test]
fn check_config_accepts_a_good_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = check(
        dir.path(),
        r#"
[service.web]
command = ["/bin/sleep", "1000"]
instances = 4
restart = "always"
restart_delay = "100ms"
"#,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn every_error_is_reported_with_file_line_column_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = check(
        dir.path(),
        r#"[service.web]
command = ["/bin/sleep", "1000"]
restat = "always"
stop_timeout = 10

[task.migrate]
command = []
"#,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let file = dir.path().join("herd.toml").display().to_string();
    assert!(
        err.contains(&format!("{file}:3:1: service.web.restat: unknown key")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}:4:16: service.web.stop_timeout:")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}:7:11: task.migrate.command:")),
        "{err}"
    );
}

#[test]
fn a_bad_config_starts_nothing() {
    let mut herd = Herd::configure(
        r#"
[service.web]
command = ["/bin/sh", "-c", "touch $DIR/started; sleep 1000"]
instances = "many"
"#,
    );
    let out = Command::new(bin("herdd"))
        .arg("--config")
        .arg(&herd.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("service.web.instances"),
        "{}",
        stderr(&out)
    );
    assert!(!herd.path("started").exists());
    assert!(!herd.socket.exists());
    herd.kill_daemon(); // nothing to kill; keeps Drop quiet
}

#[test]
fn includes_merge_units_from_globs() {
    let mut herd = Herd::configure(
        r#"
include = ["conf.d/*.toml"]

[service.main]
command = ["/bin/sleep", "1000"]
"#,
    );
    std::fs::create_dir(herd.path("conf.d")).unwrap();
    std::fs::write(
        herd.path("conf.d/extra.toml"),
        "[service.extra]\ncommand = [\"/bin/sleep\", \"1000\"]\n",
    )
    .unwrap();
    herd = herd.launch();
    herd.wait_state("extra", "running");
    herd.wait_state("main", "running");
}

/// Runs `herdd --check-config` on `config`, failing the test (not hanging
/// it) if herdd does not finish within the deadline.
fn check_file(config: &std::path::Path) -> (Option<i32>, String) {
    let mut child = Command::new(bin("herdd"))
        .arg("--check-config")
        .arg("--config")
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("herdd --check-config hung on {}", config.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code(), stderr(&out))
}

/// Each hostile include, as the first line of a config in `dir`, and what
/// the error must say.
fn hostile_includes(dir: &std::path::Path) -> Vec<(String, &'static str)> {
    let fifo = dir.join("pipe.toml");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    // A chain far deeper than the cap: 5000 files.
    for i in 0..5000 {
        let text = format!("include = [\"chain{}.toml\"]\n", i + 1);
        std::fs::write(dir.join(format!("chain{i}.toml")), text).unwrap();
    }
    std::fs::write(dir.join("chain5000.toml"), "").unwrap();
    vec![
        (
            format!("include = [{:?}]", fifo.display().to_string()),
            "it is a FIFO, not a regular file",
        ),
        (
            "include = [\"/dev/zero\"]".to_string(),
            "it is a device, not a regular file",
        ),
        (
            "include = [\"chain0.toml\"]".to_string(),
            "includes are nested more than",
        ),
    ]
}

#[test]
fn check_config_refuses_a_fifo_a_device_and_a_deep_include_chain_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herd.toml");
    for (include, error) in hostile_includes(dir.path()) {
        std::fs::write(
            &config,
            format!("{include}\n[service.a]\ncommand = [\"/bin/true\"]\n"),
        )
        .unwrap();
        let (code, err) = check_file(&config);
        assert_eq!(code, Some(1), "{include}: {err}");
        assert!(err.contains(error), "{include}: {err}");
        assert!(err.contains(":1:1: include:"), "names file:line:col: {err}");
    }
}

#[test]
fn a_reload_with_a_hostile_include_keeps_herdd_and_its_config() {
    let herd = Herd::start(
        r#"
[service.web]
command = ["/bin/sleep", "1000"]
"#,
    );
    herd.wait_state("web", "running");
    let pid = herd.pid_of("web");
    let good = std::fs::read_to_string(&herd.config).unwrap();
    for (include, error) in hostile_includes(herd.dir.path()) {
        // The bad config also renames the service: nothing of it may apply.
        let bad = good.replace("[service.web]", "[service.other]");
        std::fs::write(&herd.config, format!("{include}\n{bad}")).unwrap();
        let out = herd.ctl(&["reload"]);
        assert_ne!(out.status.code(), Some(0), "{include}");
        let said = format!("{}{}", stdout(&out), stderr(&out));
        assert!(said.contains(error), "{include}: {said}");
        assert!(said.contains("nothing was changed"), "{said}");
        // herdd answers, web runs on as before.
        assert_eq!(herd.pid_of("web"), pid, "{include}");
        assert!(alive(pid));
    }
    // A good reload still works afterwards.
    std::fs::write(&herd.config, &good).unwrap();
    herd.ok(&["reload"]);
    assert_eq!(herd.pid_of("web"), pid);
}

#[test]
fn a_reload_that_only_changes_instances_scales_like_scale() {
    let herd = Herd::start(
        r#"
[service.web]
command = ["/bin/sleep", "1000"]
instances = 2
"#,
    );
    herd.wait_state("web@0", "running");
    herd.wait_state("web@1", "running");
    let before = [herd.pid_of("web@0"), herd.pid_of("web@1")];
    let text = std::fs::read_to_string(&herd.config).unwrap();
    std::fs::write(&herd.config, text.replace("instances = 2", "instances = 3")).unwrap();
    herd.ok(&["reload"]);
    herd.wait_state("web@2", "running");
    assert_eq!([herd.pid_of("web@0"), herd.pid_of("web@1")], before);
    assert!(
        before.iter().all(|pid| alive(*pid)),
        "the old two were not restarted"
    );
}
