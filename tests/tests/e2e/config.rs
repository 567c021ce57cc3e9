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
