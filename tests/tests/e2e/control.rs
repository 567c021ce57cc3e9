//! The control socket and herdctl's contract: errors, exit codes, abuse.

use crate::harness::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

const ONE: &str = r#"
[service.web]
command = ["/bin/sleep", "1000"]
instances = 2
"#;

#[test]
fn malformed_input_gets_an_error_and_herdd_keeps_serving() {
    let herd = Herd::start(ONE);
    let cases: [(&[u8], &str); 5] = [
        (b"garbage\n", "bad_request"),
        (b"[1,2,3]\n", "bad_request"),
        (b"{\"cmd\":\"status\"}\n", "unsupported_version"),
        (b"{\"v\":1,\"cmd\":\"fly\"}\n", "unknown_command"),
        (
            b"{\"v\":1,\"cmd\":\"scale\",\"name\":\"web\"}\n",
            "bad_request",
        ),
    ];
    for (bytes, code) in cases {
        let reply: serde_json::Value = serde_json::from_str(&herd.raw(bytes)).unwrap();
        assert_eq!(
            reply["error"]["code"],
            code,
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
    // An oversized line: an error, then the connection is closed.
    let mut stream = UnixStream::connect(&herd.socket).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let big = vec![b'x'; 1 << 20];
    let _ = stream.write_all(&big); // herdd may close before reading it all
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    assert!(reply.contains("too_large"), "{reply}");
    // A client that disconnects mid-request.
    let mut half = UnixStream::connect(&herd.socket).unwrap();
    half.write_all(b"{\"v\":1,\"cmd\":\"sta").unwrap();
    drop(half);
    // Several requests on one connection are answered in order.
    let two = herd.raw(b"{\"v\":1,\"cmd\":\"status\",\"names\":[\"web@0\"]}\n");
    assert!(two.starts_with("{\"ok\""), "{two}");
    herd.wait_for("herdd still serving", |h| h.instances().len() == 2);
}

#[test]
fn a_second_herdd_refuses_and_a_stale_socket_is_replaced() {
    let herd = Herd::start(ONE);
    let second = std::process::Command::new(bin("herdd"))
        .arg("--config")
        .arg(&herd.config)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let message = stderr(&second);
    assert!(message.contains("already running"), "{message}");
    assert!(
        message.contains(&herd.socket.display().to_string()),
        "{message}"
    );
    herd.ok(&["status"]); // the first one is unharmed
    drop(herd);

    // A socket file left behind by a dead herdd does not stop a new one.
    let herd = Herd::configure(ONE);
    drop(std::os::unix::net::UnixListener::bind(&herd.socket).unwrap());
    assert!(herd.socket.exists());
    let herd = herd.launch();
    herd.ok(&["status"]);
}

#[test]
fn herdctl_exit_codes_follow_the_spec() {
    let herd = Herd::start(
        r#"
[service.web]
command = ["/bin/sleep", "1000"]
instances = 2

[service.off]
command = ["/bin/sleep", "1000"]
autostart = false
"#,
    );
    herd.wait_state("web@1", "running");
    assert_eq!(herd.ctl(&["status", "web"]).status.code(), Some(0));
    assert_eq!(herd.ctl(&["status", "off"]).status.code(), Some(3));
    let unknown = herd.ctl(&["status", "nope"]);
    assert_eq!(unknown.status.code(), Some(4));
    assert!(stderr(&unknown).contains("nope"));
    assert_eq!(herd.ctl(&["stop", "web@9"]).status.code(), Some(4));
    assert_eq!(
        herd.ctl(&["kill", "web", "-s", "NOPE"]).status.code(),
        Some(2)
    );
    assert_eq!(herd.ctl(&["frobnicate"]).status.code(), Some(2));

    let missing = herd.path("not-there.sock");
    let out = std::process::Command::new(bin("herdctl"))
        .arg("--socket")
        .arg(&missing)
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(
        stderr(&out).contains(&missing.display().to_string()),
        "{}",
        stderr(&out)
    );
}

#[test]
fn start_stop_restart_by_instance_and_glob() {
    let herd = Herd::start(
        r#"
[service.web]
command = ["/bin/sleep", "1000"]
instances = 3

[service.worker]
command = ["/bin/sleep", "1000"]
autostart = false
"#,
    );
    herd.wait_for("web up", |h| {
        h.instances()
            .iter()
            .filter(|i| i["state"] == "running")
            .count()
            == 3
    });
    herd.ok(&["stop", "web@1"]);
    assert_eq!(herd.instance("web@1")["state"], "inactive");
    assert_eq!(herd.instance("web@0")["state"], "running");
    let before = herd.pid_of("web@2");
    herd.ok(&["restart", "web@2"]);
    assert_ne!(herd.pid_of("web@2"), before);
    assert_eq!(
        herd.instance("web@2")["restarts"],
        0,
        "a requested restart is not counted as a crash"
    );
    herd.ok(&["start", "w*"]);
    for name in ["web@0", "web@1", "web@2", "worker"] {
        assert_eq!(herd.instance(name)["state"], "running", "{name}");
    }
    herd.ok(&["stop", "--no-block", "worker"]);
    herd.wait_state("worker", "inactive");
}

#[test]
fn status_json_and_completions() {
    let herd = Herd::start(ONE);
    herd.wait_state("web@1", "running");
    let status = herd.status();
    let web = &status["units"][0];
    assert_eq!(web["name"], "web");
    assert_eq!(web["kind"], "service");
    assert_eq!(web["state"], "running");
    assert_eq!(web["instances"][1]["name"], "web@1");
    assert!(web["instances"][1]["uptime_ms"].is_u64());
    let table = herd.ok(&["status"]);
    assert!(table.lines().next().unwrap().starts_with("UNIT"), "{table}");
    assert!(table.contains("web@1"));
    for shell in ["bash", "zsh", "fish"] {
        let script = herd.ok(&["completions", shell]);
        assert!(script.contains("herdctl"), "{shell}");
        assert!(script.contains("scale"), "{shell} completes verbs");
    }
}

/// Opens a connection, sends `request` and returns the connection, for
/// requests that wait.
fn send_waiting(herd: &Herd, request: &str) -> std::io::BufReader<UnixStream> {
    let mut stream = UnixStream::connect(&herd.socket).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    std::io::BufReader::new(stream)
}

fn reply_of(connection: &mut std::io::BufReader<UnixStream>) -> serde_json::Value {
    use std::io::BufRead;
    let mut line = String::new();
    connection.read_line(&mut line).expect("a reply");
    serde_json::from_str(&line).unwrap_or_else(|_| panic!("a JSON reply: {line:?}"))
}

fn sem_waiters(herd: &Herd) -> usize {
    let list: serde_json::Value =
        serde_json::from_str(&herd.raw(b"{\"v\":1,\"cmd\":\"sem-list\"}\n")).unwrap();
    list["ok"]["semaphores"][0]["waiters"]
        .as_array()
        .map_or(0, Vec::len)
}

/// Connections waiting for the core (here in line for a semaphore) hold
/// little while they wait, and are still answered: in turn when the slot
/// frees, and with `shutting_down` when herdd exits under them; each can
/// go on with another request after its answer.
#[test]
fn waiting_connections_are_answered_then_serve_on_or_told_herdd_exits() {
    let mut herd = Herd::start("[semaphore.lock]\ncapacity = 1\n");
    let acquire = "{\"v\":1,\"cmd\":\"sem-acquire\",\"name\":\"lock\"}\n";
    let mut holder = send_waiting(&herd, acquire);
    assert_eq!(
        reply_of(&mut holder)["ok"]["acquired"],
        true,
        "free: at once"
    );
    let mut waiting: Vec<_> = (0..20).map(|_| send_waiting(&herd, acquire)).collect();
    wait_until("20 connections in line", || sem_waiters(&herd) == 20);
    // The holder gives the slot back; the first in line gets it, and its
    // connection serves its next request.
    drop(holder);
    let mut first = waiting.remove(0);
    assert_eq!(reply_of(&mut first)["ok"]["acquired"], true);
    first
        .get_mut()
        .write_all(b"{\"v\":1,\"cmd\":\"event-list\"}\n")
        .unwrap();
    assert!(reply_of(&mut first)["ok"].is_object(), "serves on");
    wait_until("19 left in line", || sem_waiters(&herd) == 19);
    herd.ok(&["shutdown"]);
    for connection in &mut waiting {
        let reply = reply_of(connection);
        assert_eq!(reply["error"]["code"], "shutting_down", "{reply}");
    }
    assert_eq!(herd.wait_exit(), 0);
}
