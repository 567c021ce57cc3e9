//! `watchdog = "..."`: a ready service that stops sending `WATCHDOG=1` is
//! restarted; one that keeps sending is left alone.

use crate::harness::{alive, Herd};

/// Sends READY=1, writes its watchdog variables to `$DIR/<name>.env`, then
/// pings WATCHDOG=1 every 100ms: for ever, or `pings` times and then hangs.
const SCRIPT: &str = r#"
import os, socket, sys, time
name, pings = sys.argv[1], int(sys.argv[2])
path = os.environ["NOTIFY_SOCKET"]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
def notify(message):
    # As sd_notify: a failed send (herdd re-executing) is not the service's end.
    try:
        sock.sendto(message.encode(), "\0" + path[1:] if path.startswith("@") else path)
    except OSError:
        pass
with open(os.path.join(sys.argv[3], name + ".env"), "w") as out:
    out.write("{} {} {}\n".format(os.getpid(), os.environ.get("WATCHDOG_PID"), os.environ.get("WATCHDOG_USEC")))
notify("READY=1")
sent = 0
while pings < 0 or sent < pings:
    notify("WATCHDOG=1")
    sent += 1
    time.sleep(0.1)
time.sleep(1000)
"#;

#[test]
fn a_service_that_stops_pinging_is_restarted_and_one_that_pings_is_not() {
    let herd = Herd::configure("");
    std::fs::write(herd.path("pinger.py"), SCRIPT).unwrap();
    let dir = herd.dir.path().display().to_string();
    let script = herd.path("pinger.py").display().to_string();
    let units = format!(
        r#"
[service.steady]
command = ["python3", {script:?}, "steady", "-1", {dir:?}]
ready = "notify"
watchdog = "1s"

[service.hung]
command = ["python3", {script:?}, "hung", "3", {dir:?}]
ready = "notify"
watchdog = "1s"
"#
    );
    let text = std::fs::read_to_string(&herd.config).unwrap();
    std::fs::write(&herd.config, format!("{units}\n{text}")).unwrap();
    let herd = herd.launch();
    herd.wait_state("steady", "running");
    herd.wait_state("hung", "running");
    let steady = herd.pid_of("steady");
    let hung = herd.pid_of("hung");
    // WATCHDOG_PID is the process's own pid, WATCHDOG_USEC the timeout.
    let env = |name: &str| std::fs::read_to_string(herd.path(&format!("{name}.env")));
    crate::harness::wait_until("the env files", || {
        env("steady").is_ok() && env("hung").is_ok()
    });
    let line = env("hung").unwrap();
    assert_eq!(line.trim(), format!("{hung} {hung} 1000000"));
    // The hung one is restarted (twice, to see that it keeps watching) ...
    herd.wait_for("hung to be restarted twice by its watchdog", |h| {
        h.instance("hung")["restarts"].as_u64() >= Some(2)
            && h.instance("hung")["state"] == "running"
    });
    assert!(!alive(hung) || herd.pid_of("hung") != hung, "a new process");
    let events = herd.ok(&["events", "--json"]);
    assert!(events.contains("\"watchdog_expired\""), "{events}");
    // ... meanwhile the steady one, watched as long, was never touched.
    assert_eq!(herd.pid_of("steady"), steady);
    assert_eq!(herd.instance("steady")["restarts"].as_u64(), Some(0));
    assert!(alive(steady));
}

#[test]
fn watchdog_is_a_service_key_with_a_positive_duration() {
    let herd = Herd::configure(
        r#"
[service.a]
command = ["/bin/true"]
watchdog = "0s"
"#,
    );
    let out = std::process::Command::new(&herd.herdd)
        .args(["--check-config", "--config"])
        .arg(&herd.config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains(":4:12: service.a.watchdog"), "{said}");
}

/// The countdown is in the re-exec handover: a service that went silent is
/// restarted within its watchdog time even though herdd re-executes again
/// and again meanwhile (each re-exec once started the countdown afresh, so
/// re-executing more often than the watchdog time kept a hung service
/// alive for ever).
#[test]
fn a_silent_service_is_restarted_in_time_across_daemon_reexec() {
    let herd = Herd::configure("");
    std::fs::write(herd.path("pinger.py"), SCRIPT).unwrap();
    let dir = herd.dir.path().display().to_string();
    let script = herd.path("pinger.py").display().to_string();
    let units = format!(
        r#"
[service.hung]
command = ["python3", {script:?}, "hung", "3", {dir:?}]
ready = "notify"
watchdog = "3s"
"#
    );
    let text = std::fs::read_to_string(&herd.config).unwrap();
    std::fs::write(&herd.config, format!("{units}\n{text}")).unwrap();
    let herd = herd.launch();
    herd.wait_state("hung", "running");
    let hung = herd.pid_of("hung");
    let restarted = |h: &Herd| h.instance("hung")["restarts"].as_u64() >= Some(1);
    // Re-exec every few hundred milliseconds, far more often than the
    // watchdog time, until the watchdog has fired.
    let mut reexecs = 0;
    let started = std::time::Instant::now();
    while !restarted(&herd) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(40),
            "not restarted after {reexecs} re-execs; status:\n{}\n--- herdd log ---\n{}",
            herd.ok(&["status"]),
            herd.log()
        );
        herd.ok(&["daemon-reexec"]);
        reexecs += 1;
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert!(reexecs >= 1, "herdd re-executed while the watchdog ran");
    herd.wait_state("hung", "running");
    assert_ne!(herd.pid_of("hung"), hung, "a new process");
    assert!(herd.log().contains("watchdog"), "{}", herd.log());
}
