//! What herdd writes about itself, wherever its output goes: plain lines in a
//! file, journald's `<N>` prefixes under systemd, and no panic when it cannot
//! write at all.

use crate::harness::*;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output, Stdio};

const WEB: &str = "[service.web]\ncommand = [\"/bin/sleep\", \"1000\"]\n";

/// `herdd --check-config` on `text`, with stdout and stderr sent to `out` and `err`.
fn check_config(text: &str, out: Stdio, err: Stdio) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herd.toml");
    std::fs::write(&path, text).unwrap();
    let output = Command::new(bin("herdd"))
        .arg("--check-config")
        .arg("--config")
        .arg(&path)
        .stdout(out)
        .stderr(err)
        .output()
        .unwrap();
    (dir, output)
}

fn dev_full() -> Stdio {
    File::options()
        .write(true)
        .open("/dev/full")
        .unwrap()
        .into()
}

#[test]
fn a_log_file_gets_no_escape_codes() {
    // The harness sends herdd's stdout and stderr to herdd.log, a file.
    let herd = Herd::start(WEB);
    herd.wait_state("web", "running");
    herd.ok(&["stop", "web"]);
    herd.wait_state("web", "inactive");
    let log = herd.log();
    assert!(log.contains("web: started"), "{log}");
    assert!(!log.contains('\x1b'), "escape codes in a file:\n{log:?}");
}

#[test]
fn under_journald_lines_carry_priorities_and_no_timestamps() {
    let mut herd = Herd::configure(WEB);
    let log = herd.path("herdd.log");
    File::create(&log).unwrap();
    let stream = std::fs::metadata(&log).unwrap();
    herd.env.push((
        "JOURNAL_STREAM".into(),
        format!("{}:{}", stream.dev(), stream.ino()),
    ));
    herd.env.push(("HERD_LOG".into(), "info".into()));
    let herd = herd.launch();
    herd.wait_state("web", "running");
    let text = herd.log();
    let started = text
        .lines()
        .find(|line| line.contains("web: started"))
        .unwrap_or_else(|| panic!("no start line:\n{text}"));
    assert!(started.starts_with("<6>web: started"), "{started:?}");
    for line in text.lines() {
        assert!(line.starts_with('<'), "no priority: {line:?}");
        assert!(!line.contains('\x1b'), "escape codes: {line:?}");
    }
}

#[test]
fn a_journal_stream_that_is_not_stderr_is_ignored() {
    let mut herd = Herd::configure(WEB);
    herd.env.push(("JOURNAL_STREAM".into(), "1:1".into()));
    let herd = herd.launch();
    herd.wait_state("web", "running");
    let text = herd.log();
    let started = text.lines().find(|line| line.contains("web: started"));
    let started = started.unwrap_or_else(|| panic!("no start line:\n{text}"));
    assert!(
        started.starts_with(|c: char| c.is_ascii_digit()),
        "timestamped: {started:?}"
    );
}

#[test]
fn check_config_that_cannot_write_exits_1_without_panicking() {
    // Invalid: the errors cannot go to stderr.
    let (_dir, out) = check_config("[service.web]\nrestat = 1\n", Stdio::null(), dev_full());
    assert_eq!(out.status.code(), Some(1));
    // Valid, but "ok" cannot go to stdout: it must not claim success.
    let (_dir, out) = check_config(WEB, dev_full(), Stdio::piped());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    // And a valid config with stderr full still succeeds: nothing goes there.
    let (_dir, out) = check_config(WEB, Stdio::piped(), dev_full());
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("ok (1 units)"), "{}", stdout(&out));
}

#[test]
fn check_config_refuses_a_control_group_that_does_not_exist() {
    let text = format!("{WEB}[herd]\ncontrol_group = \"no-such-group-herd-e2e\"\n");
    let (dir, out) = check_config(&text, Stdio::piped(), Stdio::piped());
    assert_eq!(out.status.code(), Some(1));
    let expected = format!(
        "{}:4:17: herd.control_group: no such group `no-such-group-herd-e2e`",
        dir.path().join("herd.toml").display()
    );
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));

    let text = format!("{WEB}[herd]\ncontrol_group = \"root\"\n");
    let (_dir, out) = check_config(&text, Stdio::piped(), Stdio::piped());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn sizes_take_binary_unit_spellings() {
    let text = format!(
        "[herd]\nlog_max_size = \"1MiB\"\n\n{WEB}log_max_size = \"512KB\"\nmemory_max = \"1GiB\"\n"
    );
    let (_dir, out) = check_config(&text, Stdio::piped(), Stdio::piped());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (_dir, out) = check_config(
        "[herd]\nlog_max_size = \"1XiB\"\n",
        Stdio::piped(),
        Stdio::piped(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("herd.log_max_size: invalid size `1XiB`"));
}

#[test]
fn herdd_runs_and_shuts_down_cleanly_with_its_output_on_a_full_disk() {
    let herd = Herd::configure(WEB);
    let mut daemon = Command::new(bin("herdd"))
        .arg("--config")
        .arg(&herd.config)
        .env("HERD_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(dev_full())
        .stderr(dev_full())
        .spawn()
        .unwrap();
    let pid = daemon.id();
    wait_until("herdd to answer", || {
        assert!(alive(pid), "herdd exited");
        herd.ctl(&["status"]).status.success()
    });
    herd.wait_state("web", "running");
    herd.ok(&["restart", "web"]);
    signal(daemon.id(), libc::SIGTERM);
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = daemon.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = daemon.kill();
            let _ = daemon.wait();
            panic!("herdd did not exit");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn a_pool_tasks_everyday_events_are_logged_at_debug_and_its_failures_at_info() {
    let mut herd = Herd::configure(&format!("{WEB}[pool.p]\nsize = 2\n"));
    herd.env.push(("HERD_LOG".into(), "info".into()));
    let herd = herd.launch();
    herd.wait_state("web", "running");
    let ok = herd.ok(&["submit", "p", "--wait", "--", "/bin/true"]);
    let failed = herd.ctl(&["submit", "p", "--wait", "--", "/bin/false"]);
    assert!(!failed.status.success(), "{}", stderr(&failed));
    wait_until("the failed task's exit in the log", || {
        herd.log().contains("p#2: pid")
    });
    let log = herd.log();
    assert!(
        log.contains("web: started"),
        "an instance's start is at info:\n{log}"
    );
    for routine in ["p#1: queued", "p#1: started", "p#1: pid", "p#2: started"] {
        assert!(!log.contains(routine), "{routine} at info ({ok}):\n{log}");
    }
}
