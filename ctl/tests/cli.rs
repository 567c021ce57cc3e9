//! The real `herdctl` binary against a fake herdd: a Unix socket in a temp dir
//! that answers one canned reply line. Checks what is sent, printed and exited.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::Duration;
use tempfile::TempDir;

/// A socket that accepts one connection, reads one request line and answers
/// `reply` once `go` fires (at once for [`FakeHerdd::answering`]).
struct FakeHerdd {
    _dir: TempDir,
    socket: PathBuf,
    requests: Receiver<Value>,
}

impl FakeHerdd {
    fn answering(reply: Value) -> FakeHerdd {
        let (go, wait) = mpsc::channel();
        go.send(()).expect("the receiver is alive");
        FakeHerdd::answering_when(reply, wait)
    }

    fn answering_when(reply: Value, go: Receiver<()>) -> FakeHerdd {
        let dir = TempDir::new().expect("temp dir");
        let socket = dir.path().join("herd.sock");
        let listener = UnixListener::bind(&socket).expect("bind fake socket");
        let (sent, requests) = mpsc::channel();
        thread::spawn(move || serve_one(&listener, &reply, &go, &sent));
        FakeHerdd {
            _dir: dir,
            socket,
            requests,
        }
    }

    /// The request herdctl sent, as JSON.
    fn request(&self) -> Value {
        self.requests
            .recv_timeout(Duration::from_secs(10))
            .expect("herdctl sent a request")
    }
}

fn serve_one(listener: &UnixListener, reply: &Value, go: &Receiver<()>, sent: &Sender<Value>) {
    let Ok((stream, _)) = listener.accept() else {
        return;
    };
    let mut line = String::new();
    if BufReader::new(&stream).read_line(&mut line).is_err() {
        return;
    }
    let _ = sent.send(serde_json::from_str(&line).unwrap_or(Value::Null));
    if go.recv().is_ok() {
        let _ = writeln!(&stream, "{reply}");
    }
}

fn herdctl(socket: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herdctl"));
    command
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("HERD_SOCKET")
        .stdin(Stdio::null());
    command
}

fn run(socket: &Path, args: &[&str]) -> Output {
    herdctl(socket, args).output().expect("run herdctl")
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8 output")
}

fn report(state: &str, reason: Option<&str>) -> Value {
    json!({"units": [{
        "name": "web", "kind": "service", "state": state,
        "command": ["/usr/bin/app", "--port", "80{instance}"],
        "instances": [
            {"name": "web@0", "state": "running", "pid": 41, "uptime_ms": 312000,
             "restarts": 1, "last_exit": {"signal": "SIGKILL"}, "reason": null},
            {"name": "web@1", "state": state, "pid": null, "uptime_ms": null,
             "restarts": 0, "last_exit": {"code": 1}, "reason": reason}
        ]
    }]})
}

#[test]
fn status_prints_a_table() {
    let herdd = FakeHerdd::answering(json!({"ok": report("running", None)}));
    let out = run(&herdd.socket, &["status"]);
    assert_eq!(
        herdd.request(),
        json!({"v": 1, "cmd": "status", "names": []})
    );
    assert_eq!(
        text(&out.stdout),
        "\
UNIT   STATE    PID  UPTIME  RESTARTS  LAST EXIT
web@0  running  41   5m12s   1         SIGKILL
web@1  running  -    -       0         code 1
"
    );
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn status_of_a_failed_unit_exits_3() {
    let reason = "exec /no/such: No such file or directory";
    let herdd = FakeHerdd::answering(json!({"ok": report("failed", Some(reason))}));
    let out = run(&herdd.socket, &["status", "web"]);
    assert_eq!(herdd.request()["names"], json!(["web"]));
    assert_eq!(
        text(&out.stdout),
        "\
● web - service, 2 instances
      State: failed
    Command: /usr/bin/app --port 80{instance}
      web@0: running, pid 41, up 5m12s, 1 restart, last exit SIGKILL
      web@1: failed (exec /no/such: No such file or directory), 0 restarts, last exit code 1
"
    );
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn status_json_is_the_payload() {
    let payload = report("running", None);
    let herdd = FakeHerdd::answering(json!({ "ok": payload }));
    let out = run(&herdd.socket, &["status", "--json", "web"]);
    let printed: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(printed, payload);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn unknown_unit_exits_4_with_the_daemons_message() {
    let error = json!({"code": "no_such_unit", "message": "no unit matches \"nope\""});
    let herdd = FakeHerdd::answering(json!({ "error": error }));
    let out = run(&herdd.socket, &["status", "nope"]);
    assert_eq!(text(&out.stderr), "herdctl: no unit matches \"nope\"\n");
    assert_eq!(text(&out.stdout), "");
    assert_eq!(out.status.code(), Some(4));

    let herdd = FakeHerdd::answering(json!({ "error": error }));
    let out = run(&herdd.socket, &["--json", "stop", "nope"]);
    let printed: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(printed, json!({ "error": error }));
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn failed_start_is_reported_and_exits_1() {
    let herdd = FakeHerdd::answering(json!({"ok": report("failed", Some("start limit hit"))}));
    let out = run(&herdd.socket, &["start", "web"]);
    assert_eq!(
        herdd.request(),
        json!({"v": 1, "cmd": "start", "names": ["web"], "wait": true})
    );
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "herdctl: web@1 failed: start limit hit\n"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn no_block_does_not_wait_and_is_quiet() {
    let herdd = FakeHerdd::answering(json!({"ok": {"units": []}}));
    let out = run(&herdd.socket, &["restart", "--no-block", "web", "db@1"]);
    assert_eq!(
        herdd.request(),
        json!({"v": 1, "cmd": "restart", "names": ["web", "db@1"], "wait": false})
    );
    assert_eq!((text(&out.stdout), text(&out.stderr)), ("", ""));
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn kill_sends_the_signal() {
    let herdd = FakeHerdd::answering(json!({"ok": {"signalled": ["web@0"]}}));
    let out = run(&herdd.socket, &["kill", "-s", "HUP", "web"]);
    assert_eq!(
        herdd.request(),
        json!({"v": 1, "cmd": "kill", "names": ["web"], "signal": "HUP"})
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn unknown_signal_is_a_usage_error() {
    let dir = TempDir::new().expect("temp dir");
    let out = run(
        &dir.path().join("unused.sock"),
        &["kill", "-s", "SIGNOPE", "web"],
    );
    assert!(
        text(&out.stderr).contains("unknown signal"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn missing_socket_exits_6_naming_it() {
    let dir = TempDir::new().expect("temp dir");
    let socket = dir.path().join("absent.sock");
    let out = run(&socket, &["status"]);
    assert_eq!(
        text(&out.stderr),
        format!(
            "herdctl: herdd is not running (cannot connect to {}: No such file or directory)\n",
            socket.display()
        )
    );
    assert_eq!(out.status.code(), Some(6));

    let out = run(&socket, &["--json", "shutdown"]);
    let printed: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(printed["error"]["code"], "unreachable");
    assert_eq!(printed["error"]["socket"], json!(socket));
    assert_eq!(out.status.code(), Some(6));
}

#[test]
fn closed_stdout_exits_0() {
    let (go, wait) = mpsc::channel();
    let herdd = FakeHerdd::answering_when(json!({"ok": report("running", None)}), wait);
    let mut child = herdctl(&herdd.socket, &["status"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run herdctl");
    herdd.request();
    drop(child.stdout.take());
    go.send(()).expect("the fake herdd is waiting");
    let out = child.wait_with_output().expect("herdctl exits");
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
}
