//! herdd as a system service (sd_notify, SIGHUP reload) and as PID 1.

use crate::harness::*;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn herdd_tells_systemd_when_it_is_ready_and_when_it_stops() {
    let mut herd = Herd::configure(
        r#"
[service.web]
command = ["/bin/sleep", "1000"]
"#,
    );
    let notify = herd.path("systemd-notify.sock");
    let listener = UnixDatagram::bind(&notify).unwrap();
    listener.set_read_timeout(Some(DEADLINE)).unwrap();
    herd.env
        .push(("NOTIFY_SOCKET".into(), notify.display().to_string()));
    let mut herd = herd.launch();
    let mut buffer = [0u8; 256];
    let n = listener.recv(&mut buffer).unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).contains("READY=1"));
    herd.wait_state("web", "running");
    // systemd's socket is not passed on to children.
    let environ = std::fs::read(format!("/proc/{}/environ", herd.exec_pid_of("web"))).unwrap();
    assert!(!String::from_utf8_lossy(&environ).contains("NOTIFY_SOCKET"));
    herd.ok(&["shutdown", "--no-block"]);
    let n = listener.recv(&mut buffer).unwrap();
    assert_eq!(&buffer[..n], b"STOPPING=1");
    assert_eq!(herd.wait_exit(), 0);
}

#[test]
fn sighup_reloads_only_what_changed_and_refuses_a_bad_config() {
    let herd = Herd::start(
        r#"
[service.keep]
command = ["/bin/sleep", "1000"]

[service.change]
command = ["/bin/sleep", "1000"]

[service.drop]
command = ["/bin/sleep", "1000"]
"#,
    );
    for name in ["keep", "change", "drop"] {
        herd.wait_state(name, "running");
    }
    let keep = herd.pid_of("keep");
    let change = herd.pid_of("change");
    let drop_pid = herd.pid_of("drop");
    let original = std::fs::read_to_string(&herd.config).unwrap();
    let edited = original
        .replace(
            "[service.change]\ncommand = [\"/bin/sleep\", \"1000\"]",
            "[service.change]\ncommand = [\"/bin/sleep\", \"2000\"]",
        )
        .replace(
            "[service.drop]\ncommand = [\"/bin/sleep\", \"1000\"]",
            "[service.new]\ncommand = [\"/bin/sleep\", \"1000\"]",
        );
    assert_ne!(edited, original);
    std::fs::write(&herd.config, &edited).unwrap();
    signal(herd.daemon_pid(), libc::SIGHUP);
    // The config is read off the event loop: `new` appears a moment later.
    herd.wait_for("new to run", |h| {
        h.instances()
            .iter()
            .any(|i| i["name"] == "new" && i["state"] == "running")
    });
    herd.wait_for("change to restart", |h| {
        let i = h.instance("change");
        i["state"] == "running" && i["pid"].as_u64() != Some(change as u64)
    });
    herd.wait_for("drop to go", |h| {
        h.instances().iter().all(|i| i["name"] != "drop")
    });
    assert_eq!(herd.pid_of("keep"), keep, "an unchanged unit is untouched");
    assert!(gone(drop_pid));

    // `herdctl reload` with a broken config: refused, reported, nothing changes.
    std::fs::write(
        &herd.config,
        edited.replace("[service.keep]", "[service.keep]\nrestat = 1"),
    )
    .unwrap();
    let out = herd.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("service.keep.restat"),
        "{}",
        stderr(&out)
    );
    assert_eq!(herd.pid_of("keep"), keep);
    assert!(herd.log().contains("service.keep.restat"), "logged too");
    // And a good one reports what changed.
    std::fs::write(&herd.config, &original).unwrap();
    let report = herd.ok(&["reload"]);
    assert!(report.contains("added: drop"), "{report}");
    assert!(report.contains("removed: new"), "{report}");
    assert!(report.contains("changed: change"), "{report}");
}

#[test]
fn as_pid_1_of_a_pid_namespace_herdd_reaps_orphans_and_shuts_down_on_sigterm() {
    if Command::new("unshare").arg("--version").output().is_err() {
        eprintln!("skipped: no unshare(1)");
        return;
    }
    let herd = Herd::configure(
        r#"
[service.forker]
command = ["/bin/sh", "-c", "/bin/sh -c 'sleep 0.2 & echo started > $DIR/orphan' ; exec sleep 1000"]
"#,
    );
    let mut unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child"])
        .arg(bin("herdd"))
        .arg("--config")
        .arg(&herd.config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(herd.path("herdd.log")).unwrap())
        .spawn()
        .unwrap();
    wait_until("herdd as pid 1 to answer", || {
        herd.ctl(&["status"]).status.success()
    });
    let daemon = *children(unshare.id())
        .first()
        .expect("herdd runs under unshare");
    let status = std::fs::read_to_string(format!("/proc/{daemon}/status")).unwrap();
    let nspid = status
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .unwrap()
        .to_string();
    assert!(
        nspid.trim_end().ends_with("\t1"),
        "herdd is pid 1 inside: {nspid}"
    );
    herd.wait_state("forker", "running");
    wait_until("the orphan to have started", || {
        herd.path("orphan").exists()
    });
    // The orphan (re-parented to pid 1 = herdd) is reaped: no zombie under herdd.
    wait_until("no zombie under pid 1", || {
        children(daemon).iter().all(|child| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            process_state(&stat) != Some('Z')
        }) && children(daemon).len() == 1
    });
    signal(daemon, libc::SIGTERM);
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = unshare.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0), "a graceful shutdown exits 0");
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "herdd as pid 1 did not shut down"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
