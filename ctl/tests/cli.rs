//! The real `herdctl` binary against a fake herdd: a Unix socket in a temp dir
//! that answers one canned reply line. Checks what is sent, printed and exited.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
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
             "restarts": 1, "last_exit": {"signal": "SIGKILL"}, "reason": null,
             "notify_status": null, "adopted": false},
            {"name": "web@1", "state": state, "pid": null, "uptime_ms": null,
             "restarts": 0, "last_exit": {"code": 1}, "reason": reason, "notify_status": null, "adopted": false}
        ]
    }], "pools": []})
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

// ---------------------------------------------------------------------------
// Pool tasks: a fake herdd that serves any number of connections, each in its
// own thread, answering every request line with `answer(request)`.

/// One request as the scripted fake saw it: which connection (counted from
/// 0, in accept order) and what.
#[derive(Debug, Clone)]
struct Seen {
    connection: usize,
    request: Value,
}

struct ScriptedHerdd {
    _dir: TempDir,
    socket: PathBuf,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl ScriptedHerdd {
    fn new(answer: impl Fn(&Value) -> Value + Send + Sync + 'static) -> ScriptedHerdd {
        ScriptedHerdd::streaming(move |request| vec![answer(request)])
    }

    /// Answers each request with several lines (streaming verbs); a `null`
    /// among them closes the connection instead, and removes the socket, as
    /// herdd does when it exits (a client would otherwise reconnect).
    fn streaming(answer: impl Fn(&Value) -> Vec<Value> + Send + Sync + 'static) -> ScriptedHerdd {
        let dir = TempDir::new().expect("temp dir");
        let socket = dir.path().join("herd.sock");
        let listener = UnixListener::bind(&socket).expect("bind fake socket");
        let path = socket.clone();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let log = Arc::clone(&seen);
        thread::spawn(move || {
            for (connection, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { return };
                let (answer, log) = (Arc::clone(&answer), Arc::clone(&log));
                let path = path.clone();
                thread::spawn(move || {
                    for line in BufReader::new(&stream).lines() {
                        let Ok(line) = line else { return };
                        let request: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                        log.lock().unwrap().push(Seen {
                            connection,
                            request: request.clone(),
                        });
                        for reply in answer(&request) {
                            if reply.is_null() {
                                let _ = std::fs::remove_file(&path);
                                return;
                            }
                            if writeln!(&stream, "{reply}").is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        ScriptedHerdd {
            _dir: dir,
            socket,
            seen,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn requests(&self) -> Vec<Value> {
        self.seen().into_iter().map(|seen| seen.request).collect()
    }

    fn commands(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| r["cmd"].as_str().unwrap_or("?").to_string())
            .collect()
    }
}

fn task(id: u64, state: &str, exit: Value, reason: Value) -> Value {
    json!({"id": id, "pool": "convert", "name": null, "state": state,
           "command": ["convert", "a.png"], "pid": null, "exit": exit,
           "reason": reason, "duration_ms": 1500})
}

fn ended(id: u64) -> Value {
    task(id, "exited", json!({"code": 0}), Value::Null)
}

fn run_with_stdin(socket: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = herdctl(socket, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run herdctl");
    let mut input = child.stdin.take().expect("piped stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("herdctl exits")
}

#[test]
fn submit_prints_the_id_alone() {
    let herdd = ScriptedHerdd::new(|_| json!({"ok": {"id": 17, "state": "queued"}}));
    let out = run(
        &herdd.socket,
        &[
            "submit", "convert", "--name", "thumbs", "--", "convert", "-resize", "50%",
        ],
    );
    assert_eq!(
        herdd.requests(),
        [
            json!({"v": 1, "cmd": "submit", "pool": "convert", "name": "thumbs",
                "command": ["convert", "-resize", "50%"]})
        ]
    );
    assert_eq!((text(&out.stdout), text(&out.stderr)), ("17\n", ""));
    assert_eq!(out.status.code(), Some(0));

    let out = run(&herdd.socket, &["--json", "submit", "convert", "true"]);
    let printed: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(printed, json!({"id": 17, "state": "queued"}));
}

#[test]
fn submit_sends_the_task_limits_in_milliseconds() {
    let herdd =
        ScriptedHerdd::new(|_| json!({"ok": {"id": 5, "state": "running", "existing": true}}));
    let out = run(
        &herdd.socket,
        &[
            "submit",
            "p",
            "--timeout",
            "1m",
            "--retries",
            "2",
            "--retry-delay",
            "500ms",
            "--priority",
            "7",
            "--after",
            "2s",
            "--name",
            "n",
            "--unique",
            "--",
            "job",
        ],
    );
    assert_eq!(
        herdd.requests(),
        [
            json!({"v": 1, "cmd": "submit", "pool": "p", "name": "n", "command": ["job"],
                "options": {"timeout_ms": 60000, "retries": 2, "retry_delay_ms": 500,
                            "priority": 7, "after_ms": 2000, "unique": true}})
        ]
    );
    assert_eq!((text(&out.stdout), out.status.code()), ("5\n", Some(0)));
}

#[test]
fn submit_wait_exits_with_the_tasks_code() {
    let herdd = ScriptedHerdd::new(|request| match request["cmd"].as_str() {
        Some("submit") => json!({"ok": {"id": 17, "state": "queued"}}),
        _ => json!({"ok": {"tasks": [task(17, "failed", json!({"code": 3}), Value::Null)],
                           "timed_out": false}}),
    });
    let out = run(
        &herdd.socket,
        &["submit", "--wait", "convert", "--", "sh", "-c", "exit 3"],
    );
    assert_eq!(text(&out.stdout), "17\n17: failed (exit code 3)\n");
    assert_eq!(out.status.code(), Some(3));
    let seen = herdd.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[1].request,
        json!({"v": 1, "cmd": "join", "ids": [17], "timeout_ms": null})
    );
    assert_eq!(seen[0].connection, seen[1].connection, "one connection");
}

#[test]
fn join_prints_outcomes_and_exits_with_the_first_failure() {
    let herdd = ScriptedHerdd::new(|_| {
        // Deliberately not in the order asked for.
        json!({"ok": {"tasks": [
            task(18, "failed", json!({"code": 3}), Value::Null),
            ended(17),
            task(19, "failed", json!({"signal": "SIGKILL"}), Value::Null),
            task(20, "failed", Value::Null, json!("exec /no/such: No such file or directory")),
            task(21, "cancelled", Value::Null, json!("cancelled")),
        ], "timed_out": false}})
    });
    let out = run(&herdd.socket, &["join", "17", "19", "18", "20", "21"]);
    assert_eq!(
        herdd.requests(),
        [json!({"v": 1, "cmd": "join", "ids": [17, 19, 18, 20, 21], "timeout_ms": null})]
    );
    assert_eq!(
        text(&out.stdout),
        "\
17: exited 0
19: failed (killed by SIGKILL)
18: failed (exit code 3)
20: failed (exec /no/such: No such file or directory)
21: cancelled
"
    );
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(128 + 9), "SIGKILL comes first");

    for (ids, code) in [
        (&["17"][..], 0),
        (&["18", "19"][..], 3),
        (&["20", "18"][..], 1),
        (&["21"][..], 1),
    ] {
        let out = run(&herdd.socket, &[&["join"][..], ids].concat());
        assert_eq!(out.status.code(), Some(code), "{ids:?}");
    }
}

#[test]
fn join_timeout_exits_1() {
    let herdd = ScriptedHerdd::new(|_| {
        json!({"ok": {"tasks": [ended(17), task(18, "running", Value::Null, Value::Null)],
                      "timed_out": true}})
    });
    let out = run(&herdd.socket, &["join", "17", "18", "--timeout", "500ms"]);
    assert_eq!(herdd.requests()[0]["timeout_ms"], 500);
    assert_eq!(text(&out.stdout), "17: exited 0\n18: running\n");
    assert_eq!(
        text(&out.stderr),
        "herdctl: timed out after 500ms; 1 task(s) still running\n"
    );
    assert_eq!(out.status.code(), Some(1));

    let out = run(
        &herdd.socket,
        &["--json", "join", "17", "18", "--timeout", "2m"],
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(printed["timed_out"], true);
    assert_eq!(herdd.requests()[1]["timeout_ms"], 120_000);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn unknown_task_exits_4() {
    let herdd =
        ScriptedHerdd::new(|_| json!({"error": {"code": "no_such_task", "message": "no task 99"}}));
    for args in [&["join", "99"][..], &["cancel", "99"], &["output", "99"]] {
        let out = run(&herdd.socket, args);
        assert_eq!(text(&out.stderr), "herdctl: no task 99\n", "{args:?}");
        assert_eq!(out.status.code(), Some(4), "{args:?}");
    }
}

#[test]
fn cancel_is_quiet() {
    let herdd = ScriptedHerdd::new(|_| json!({"ok": {"cancelled": [4]}}));
    let out = run(&herdd.socket, &["cancel", "4", "5"]);
    assert_eq!(
        herdd.requests(),
        [json!({"v": 1, "cmd": "cancel", "ids": [4, 5]})]
    );
    assert_eq!((text(&out.stdout), text(&out.stderr)), ("", ""));
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn output_is_written_raw() {
    let herdd = ScriptedHerdd::new(|request| {
        let truncated = request["stream"] == "stderr";
        json!({"ok": {"id": 7, "stream": request["stream"], "data": "hello\nworld",
                      "truncated": truncated, "total_bytes": if truncated { 4096 } else { 11 }, "kept_bytes": 11}})
    });
    let out = run(&herdd.socket, &["output", "7"]);
    assert_eq!(
        herdd.requests(),
        [json!({"v": 1, "cmd": "output", "id": 7, "stream": "stdout"})]
    );
    assert_eq!((text(&out.stdout), text(&out.stderr)), ("hello\nworld", ""));
    assert_eq!(out.status.code(), Some(0));

    let out = run(&herdd.socket, &["output", "--stderr", "7"]);
    assert_eq!(herdd.requests()[1]["stream"], "stderr");
    assert_eq!(text(&out.stdout), "hello\nworld");
    assert_eq!(
        text(&out.stderr),
        "herdctl: output truncated: task wrote 4096 bytes, herd kept the first 11\n"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn tasks_prints_a_table() {
    let herdd = ScriptedHerdd::new(|_| {
        json!({"ok": {"tasks": [
            ended(17),
            {"id": 18, "pool": "convert", "name": "big", "state": "running",
             "command": ["convert"], "pid": 4242, "exit": null, "reason": null,
             "duration_ms": 65000},
            task(19, "failed", json!({"signal": "SIGKILL"}), Value::Null),
        ]}})
    });
    let out = run(&herdd.socket, &["tasks", "convert"]);
    assert_eq!(
        herdd.requests(),
        [json!({"v": 1, "cmd": "tasks", "pool": "convert"})]
    );
    assert_eq!(
        text(&out.stdout),
        "\
ID  POOL     NAME  STATE    PID   DURATION  EXIT
17  convert  -     exited   -     1s        code 0
18  convert  big   running  4242  1m5s      -
19  convert  -     failed   -     1s        SIGKILL
"
    );
    assert_eq!(out.status.code(), Some(0));
    run(&herdd.socket, &["tasks"]);
    assert_eq!(
        herdd.requests()[1],
        json!({"v": 1, "cmd": "tasks", "pool": null})
    );
}

fn pool(closed: bool, running: u32, queued: u32) -> Value {
    json!({"name": "convert", "size": 2, "running": running, "queued": queued,
           "finished": 12, "submitted": 20, "max_queue": 10000, "keep_finished": 1000, "closed": closed})
}

#[test]
fn status_lists_pools_after_units() {
    let mut payload = report("running", None);
    payload["pools"] = json!([pool(false, 2, 6), {"name": "mail", "size": 1, "running": 0,
        "queued": 0, "finished": 0, "submitted": 0, "max_queue": 10, "keep_finished": 10, "closed": true}]);
    let herdd = FakeHerdd::answering(json!({ "ok": payload }));
    let out = run(&herdd.socket, &["status"]);
    assert_eq!(
        text(&out.stdout),
        "\
UNIT   STATE    PID  UPTIME  RESTARTS  LAST EXIT
web@0  running  41   5m12s   1         SIGKILL
web@1  running  -    -       0         code 1

POOL     SIZE  RUNNING  QUEUED  FINISHED  SUBMITTED  STATE
convert  2     2        6       12        20         open
mail     1     0        0       0         0          closed
"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn pool_verbs() {
    let herdd = ScriptedHerdd::new(|request| {
        let timed_out = request["cmd"] == "pool-join";
        json!({"ok": {"pool": pool(false, 1, 3), "timed_out": timed_out}})
    });
    for verb in ["close", "terminate"] {
        let out = run(&herdd.socket, &["pool", verb, "convert"]);
        assert_eq!((text(&out.stdout), text(&out.stderr)), ("", ""), "{verb}");
        assert_eq!(out.status.code(), Some(0), "{verb}");
    }
    let out = run(
        &herdd.socket,
        &["pool", "join", "convert", "--timeout", "10s"],
    );
    assert_eq!(
        herdd.requests(),
        [
            json!({"v": 1, "cmd": "pool-close", "pool": "convert"}),
            json!({"v": 1, "cmd": "pool-terminate", "pool": "convert"}),
            json!({"v": 1, "cmd": "pool-join", "pool": "convert", "timeout_ms": 10000}),
        ]
    );
    assert_eq!(
        text(&out.stderr),
        "herdctl: timed out after 10s; pool convert still has 1 running and 3 queued task(s)\n"
    );
    assert_eq!(out.status.code(), Some(1));
}

/// A pool for `map`: task ids from 100 on; the task for item `slowN` ends
/// only after N `results` requests, `fail` exits 2, anything else exits 0;
/// its stdout is `out:ITEM\n`. Records the most tasks ever submitted and
/// not collected.
#[derive(Default)]
struct MapPool {
    items: Vec<String>,
    /// How many `results` requests each uncollected task has seen.
    polls: HashMap<u64, u32>,
    collected: usize,
    most_outstanding: usize,
    refuse_beyond: Option<usize>,
}

impl MapPool {
    fn answer(&mut self, request: &Value) -> Value {
        match request["cmd"].as_str().unwrap() {
            "submit-batch" => self.submit(request["commands"].as_array().unwrap()),
            "results" => self.results(),
            _ => json!({"ok": {"cancelled": request["ids"]}}),
        }
    }

    fn submit(&mut self, commands: &[Value]) -> Value {
        let mut ids = Vec::new();
        for command in commands {
            let outstanding = self.items.len() - self.collected;
            if self.refuse_beyond.is_some_and(|most| outstanding >= most) {
                break;
            }
            let item = command.as_array().unwrap().last().unwrap();
            self.items.push(item.as_str().unwrap().to_string());
            let id = 99 + self.items.len() as u64;
            self.polls.insert(id, 0);
            ids.push(id);
            self.most_outstanding = self.most_outstanding.max(outstanding + 1);
        }
        match ids.len() {
            0 => json!({"error": {"code": "refused", "message": "queue full"}}),
            n if n < commands.len() => json!({"ok": {"ids": ids, "refused": "queue full"}}),
            _ => json!({"ok": {"ids": ids}}),
        }
    }

    fn results(&mut self) -> Value {
        let mut ended: Vec<u64> = Vec::new();
        for (id, polls) in &mut self.polls {
            *polls += 1;
            let item = &self.items[(*id - 100) as usize];
            let needed = item.strip_prefix("slow").map_or(0, |n| n.parse().unwrap());
            if *polls > needed {
                ended.push(*id);
            }
        }
        ended.sort_unstable();
        let results: Vec<Value> = ended
            .iter()
            .map(|id| {
                self.polls.remove(id);
                self.collected += 1;
                let item = &self.items[(*id - 100) as usize];
                let task = if item == "fail" {
                    task(*id, "failed", json!({"code": 2}), Value::Null)
                } else {
                    ended_task(*id)
                };
                json!({"task": task, "stdout": {"id": id, "stream": "stdout",
                       "data": format!("out:{item}\n"), "truncated": false,
                       "total_bytes": 5, "kept_bytes": 5}})
            })
            .collect();
        json!({"ok": {"results": results, "outstanding": self.polls.len(),
                      "timed_out": ended.is_empty()}})
    }
}

fn ended_task(id: u64) -> Value {
    ended(id)
}

fn map_herdd(pool: MapPool) -> (ScriptedHerdd, Arc<Mutex<MapPool>>) {
    let pool = Arc::new(Mutex::new(pool));
    let state = Arc::clone(&pool);
    let herdd = ScriptedHerdd::new(move |request| state.lock().unwrap().answer(request));
    (herdd, pool)
}

#[test]
fn map_prints_outputs_in_input_order() {
    let (herdd, pool) = map_herdd(MapPool::default());
    let out = run_with_stdin(
        &herdd.socket,
        &["map", "-j", "2", "convert", "--", "echo", "{}"],
        "slow3\na\nfail\nslow1\nb\n",
    );
    assert_eq!(
        text(&out.stdout),
        "out:slow3\nout:a\nout:fail\nout:slow1\nout:b\n"
    );
    assert_eq!(
        text(&out.stderr),
        "herdctl: item 3 (\"fail\"): failed (exit code 2)\n"
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(pool.lock().unwrap().most_outstanding, 2, "-j 2");
    let seen = herdd.seen();
    assert!(seen.iter().all(|s| s.connection == 0), "one connection");
    assert_eq!(
        (&seen[0].request["cmd"], &seen[0].request["commands"][0]),
        (&json!("submit-batch"), &json!(["echo", "slow3"]))
    );
    let submitted: Vec<Value> = seen
        .iter()
        .filter(|s| s.request["cmd"] == "submit-batch")
        .flat_map(|s| s.request["commands"].as_array().unwrap().clone())
        .collect();
    assert_eq!(submitted.len(), 5, "each item once");
    assert!(seen
        .iter()
        .filter(|s| s.request["cmd"] == "results")
        .all(|s| s.request["timeout_ms"].is_u64() && s.request.get("ids").is_none()));
}

#[test]
fn map_exits_0_when_every_task_succeeds() {
    let (herdd, _) = map_herdd(MapPool::default());
    let out = run_with_stdin(&herdd.socket, &["map", "convert", "--", "gzip"], "a\nb");
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        ("out:a\nout:b\n", "")
    );
    assert_eq!(out.status.code(), Some(0));
    let submits: Vec<Value> = herdd
        .requests()
        .into_iter()
        .filter(|r| r["cmd"] == "submit-batch")
        .flat_map(|r| r["commands"].as_array().unwrap().clone())
        .collect();
    assert_eq!(submits, [json!(["gzip", "a"]), json!(["gzip", "b"])]);

    let (herdd, _) = map_herdd(MapPool::default());
    let out = run_with_stdin(&herdd.socket, &["map", "convert", "--", "gzip"], "");
    assert_eq!(out.status.code(), Some(0));
    assert!(herdd.requests().is_empty(), "nothing to do");
}

#[test]
fn map_fills_its_window_whatever_the_pools_keep_finished() {
    let (herdd, pool) = map_herdd(MapPool::default());
    let out = run_with_stdin(
        &herdd.socket,
        &["map", "-j", "3", "convert", "--", "x"],
        "a\nb\nc\nd\n",
    );
    assert_eq!(text(&out.stdout), "out:a\nout:b\nout:c\nout:d\n");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(pool.lock().unwrap().most_outstanding, 3);
    assert!(
        herdd.requests().iter().all(|r| r["cmd"] != "status"),
        "herdd holds results for map: no need to read keep_finished"
    );
}

#[test]
fn map_collects_by_id_what_herdd_holds_for_an_earlier_connection() {
    // As after a daemon-reexec: herdd holds none of the tasks map waits for
    // for this connection, so map names them.
    let herdd = ScriptedHerdd::new(|request| match request["cmd"].as_str() {
        Some("submit-batch") => json!({"ok": {"ids": [5, 6]}}),
        Some("results") if request["ids"] == json!([5, 6]) => json!({"ok": {
            "results": [{"task": ended(5), "stdout": {"id": 5, "stream": "stdout",
                         "data": "five\n", "truncated": false, "total_bytes": 5,
                         "kept_bytes": 5}},
                        {"task": ended(6), "stdout": {"id": 6, "stream": "stdout",
                         "data": "six\n", "truncated": false, "total_bytes": 4,
                         "kept_bytes": 4}}],
            "outstanding": 0, "timed_out": false}}),
        Some("results") => {
            json!({"ok": {"results": [], "outstanding": 0, "timed_out": false}})
        }
        _ => json!({"ok": {"cancelled": []}}),
    });
    let out = run_with_stdin(&herdd.socket, &["map", "convert", "--", "x"], "a\nb\n");
    assert_eq!(
        (text(&out.stdout), out.status.code()),
        ("five\nsix\n", Some(0))
    );
    let results: Vec<Value> = herdd
        .requests()
        .into_iter()
        .filter(|r| r["cmd"] == "results")
        .map(|r| r["ids"].clone())
        .collect();
    assert_eq!(results, [Value::Null, json!([5, 6])]);
}

#[test]
fn map_json_prints_one_line_per_item() {
    let (herdd, _) = map_herdd(MapPool::default());
    let out = run_with_stdin(
        &herdd.socket,
        &["--json", "map", "convert", "--", "x"],
        "a\nfail\n",
    );
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(
        lines,
        [
            json!({"item": "a", "id": 100, "state": "exited", "exit": {"code": 0},
                   "reason": null, "stdout": "out:a\n"}),
            json!({"item": "fail", "id": 101, "state": "failed", "exit": {"code": 2},
                   "reason": null, "stdout": "out:fail\n"}),
        ]
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn map_waits_when_the_queue_is_full() {
    let (herdd, pool) = map_herdd(MapPool {
        refuse_beyond: Some(2),
        ..MapPool::default()
    });
    let out = run_with_stdin(
        &herdd.socket,
        &["map", "convert", "--", "x"],
        "a\nb\nc\nd\n",
    );
    assert_eq!(text(&out.stdout), "out:a\nout:b\nout:c\nout:d\n");
    assert_eq!((text(&out.stderr), out.status.code()), ("", Some(0)));
    assert_eq!(pool.lock().unwrap().most_outstanding, 2);
}

#[test]
fn map_into_a_closed_pool_fails_with_herdds_message() {
    let herdd = ScriptedHerdd::new(
        |_| json!({"error": {"code": "refused", "message": "pool convert is closed"}}),
    );
    let out = run_with_stdin(&herdd.socket, &["map", "convert", "--", "x"], "a\n");
    assert_eq!(text(&out.stderr), "herdctl: pool convert is closed\n");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn ctrl_c_cancels_what_map_submitted() {
    let (herdd, _) = map_herdd(MapPool::default());
    let mut child = herdctl(&herdd.socket, &["map", "-j", "2", "convert", "--", "x"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run herdctl");
    let mut input = child.stdin.take().expect("piped stdin");
    input
        .write_all(b"a\nslow1000000\nc\nd\n")
        .expect("write stdin");
    drop(input);
    // Wait until herdctl is stuck waiting for the slow task.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while herdd.commands().iter().filter(|c| *c == "results").count() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            herdd.commands()
        );
        thread::sleep(Duration::from_millis(10));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("herdctl exits");
    assert_eq!(text(&out.stdout), "out:a\n");
    assert_eq!(
        text(&out.stderr),
        "herdctl: interrupted; cancelled 1 task(s)\n"
    );
    assert_eq!(out.status.code(), Some(130));
    let seen = herdd.seen();
    let cancel = seen.last().expect("a cancel");
    // c (102) has ended and waits behind the slow one: only that is cancelled.
    assert_eq!(
        cancel.request,
        json!({"v": 1, "cmd": "cancel", "ids": [101]})
    );
    assert_ne!(cancel.connection, 0, "on a fresh connection");
}

// ---------------------------------------------------------------------------
// Semaphores, events and the lifecycle stream.

/// Waits until the fake herdd has seen `count` requests.
fn wait_for_requests(herdd: &ScriptedHerdd, count: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while herdd.seen().len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            herdd.commands()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn status_shows_the_notify_status() {
    let mut payload = report("running", None);
    payload["units"][0]["instances"][1]["notify_status"] = json!("Serving 4 clients");
    let herdd = FakeHerdd::answering(json!({ "ok": payload }));
    let out = run(&herdd.socket, &["status"]);
    assert_eq!(
        text(&out.stdout),
        "\
UNIT   STATE    PID  UPTIME  RESTARTS  LAST EXIT  REASON
web@0  running  41   5m12s   1         SIGKILL
web@1  running  -    -       0         code 1     \"Serving 4 clients\"
"
    );
    let herdd = FakeHerdd::answering(json!({ "ok": payload }));
    let out = run(&herdd.socket, &["status", "web"]);
    assert!(
        text(&out.stdout).contains(
            "web@1: running, 0 restarts, last exit code 1, status: \"Serving 4 clients\"\n"
        ),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn sem_list_prints_a_table() {
    let herdd = ScriptedHerdd::new(|_| {
        json!({"ok": {"semaphores": [
            {"name": "db", "capacity": 2, "holders": ["web@0", "client 3 (pid 4242)"],
             "waiters": ["web@1", "convert#17"]},
            {"name": "gpu", "capacity": 1, "holders": [], "waiters": []},
        ]}})
    });
    let out = run(&herdd.socket, &["sem", "list"]);
    assert_eq!(herdd.requests(), [json!({"v": 1, "cmd": "sem-list"})]);
    assert_eq!(
        text(&out.stdout),
        "\
NAME  CAPACITY  HELD  HOLDERS                     WAITING
db    2         2/2   web@0, client 3 (pid 4242)  2: web@1, convert#17
gpu   1         0/1   -                           0
"
    );
    assert_eq!((text(&out.stderr), out.status.code()), ("", Some(0)));

    let out = run(&herdd.socket, &["--json", "sem", "list"]);
    let printed: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(printed["semaphores"][0]["waiters"][1], "convert#17");
}

/// A fake herdd that grants `sem-acquire` only when `go` fires (or answers
/// `acquired: false` if `grant` is false) and, on `sem-release`, records
/// whether `marker` existed by then.
fn semaphore_herdd(
    grant: bool,
    go: Receiver<()>,
    marker: PathBuf,
) -> (ScriptedHerdd, Arc<Mutex<Option<bool>>>) {
    let go = Mutex::new(go);
    let released_after_marker = Arc::new(Mutex::new(None));
    let seen_marker = Arc::clone(&released_after_marker);
    let herdd = ScriptedHerdd::new(move |request| match request["cmd"].as_str() {
        Some("sem-acquire") => {
            let _ = go.lock().unwrap().recv();
            json!({"ok": {"name": request["name"], "acquired": grant}})
        }
        Some("sem-release") => {
            *seen_marker.lock().unwrap() = Some(marker.exists());
            json!({"ok": {}})
        }
        _ => json!({"error": {"code": "bad_request", "message": "unexpected"}}),
    });
    (herdd, released_after_marker)
}

#[test]
fn sem_acquire_runs_the_command_holding_the_slot() {
    let dir = TempDir::new().expect("temp dir");
    let marker = dir.path().join("ran");
    let (go, wait) = mpsc::channel();
    let (herdd, released) = semaphore_herdd(true, wait, marker.clone());
    let child = herdctl(
        &herdd.socket,
        &[
            "sem",
            "acquire",
            "db",
            "--",
            "sh",
            "-c",
            "touch \"$0\"; echo out; exit 3",
            marker.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("run herdctl");
    wait_for_requests(&herdd, 1);
    thread::sleep(Duration::from_millis(200));
    assert!(!marker.exists(), "CMD must wait for the grant");
    go.send(()).expect("the fake herdd is waiting");
    let pid = child.id();
    let out = child.wait_with_output().expect("herdctl exits");
    assert_eq!((text(&out.stdout), text(&out.stderr)), ("out\n", ""));
    assert_eq!(out.status.code(), Some(3), "CMD's exit code");
    assert!(marker.exists());
    let seen = herdd.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        seen[0].request,
        json!({"v": 1, "cmd": "sem-acquire", "name": "db", "timeout_ms": null, "pid": pid})
    );
    assert_eq!(
        seen[1].request,
        json!({"v": 1, "cmd": "sem-release", "name": "db"})
    );
    assert_eq!(seen[0].connection, seen[1].connection, "one connection");
    assert_eq!(*released.lock().unwrap(), Some(true), "released after CMD");
}

#[test]
fn sem_acquire_timeout_exits_1_without_running_the_command() {
    let dir = TempDir::new().expect("temp dir");
    let marker = dir.path().join("ran");
    let (go, wait) = mpsc::channel();
    for _ in 0..2 {
        go.send(()).expect("the receiver is alive");
    }
    let (herdd, _) = semaphore_herdd(false, wait, marker.clone());
    let args = [
        "sem",
        "acquire",
        "--timeout",
        "500ms",
        "db",
        "--",
        "touch",
        marker.to_str().unwrap(),
    ];
    let out = run(&herdd.socket, &args);
    assert_eq!(
        text(&out.stderr),
        "herdctl: timed out waiting for semaphore db\n"
    );
    assert_eq!((text(&out.stdout), out.status.code()), ("", Some(1)));
    assert!(!marker.exists());
    assert_eq!(herdd.commands(), ["sem-acquire"], "nothing to release");
    assert_eq!(herdd.requests()[0]["timeout_ms"], 500);

    let out = run(&herdd.socket, &[&["--json"][..], &args].concat());
    let printed: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(printed, json!({"name": "db", "acquired": false}));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn sem_acquire_of_a_command_that_cannot_run_exits_127_and_releases() {
    let (go, wait) = mpsc::channel();
    go.send(()).expect("the receiver is alive");
    let (herdd, released) = semaphore_herdd(true, wait, PathBuf::from("/"));
    let out = run(
        &herdd.socket,
        &["sem", "acquire", "db", "--", "/no/such/cmd"],
    );
    assert_eq!(
        text(&out.stderr),
        "herdctl: cannot run /no/such/cmd: No such file or directory\n"
    );
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(herdd.commands(), ["sem-acquire", "sem-release"]);
    assert!(released.lock().unwrap().is_some());
}

#[test]
fn sem_acquire_passes_sigterm_on_and_exits_with_the_commands_code() {
    let dir = TempDir::new().expect("temp dir");
    let marker = dir.path().join("ready");
    let (go, wait) = mpsc::channel();
    go.send(()).expect("the receiver is alive");
    let (herdd, released) = semaphore_herdd(true, wait, marker.clone());
    let child = herdctl(
        &herdd.socket,
        &[
            "sem",
            "acquire",
            "db",
            "--",
            "sh",
            "-c",
            "trap 'exit 42' TERM; touch \"$0\"; while :; do sleep 0.05; done",
            marker.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("run herdctl");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !marker.exists() {
        assert!(std::time::Instant::now() < deadline, "CMD never started");
        thread::sleep(Duration::from_millis(10));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("herdctl exits");
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(42), "CMD's trap ran");
    assert_eq!(*released.lock().unwrap(), Some(true));
}

#[test]
fn unknown_semaphore_exits_4() {
    let herdd = ScriptedHerdd::new(
        |_| json!({"error": {"code": "no_such_semaphore", "message": "no semaphore \"nope\""}}),
    );
    let out = run(&herdd.socket, &["sem", "acquire", "nope", "--", "true"]);
    assert_eq!(text(&out.stderr), "herdctl: no semaphore \"nope\"\n");
    assert_eq!(out.status.code(), Some(4));
}

fn event_change(name: &str, set: bool, timed_out: bool) -> Value {
    json!({"ok": {"event": {"name": name, "set": set}, "timed_out": timed_out}})
}

#[test]
fn event_wait_exits_0_when_set_and_1_on_timeout() {
    let herdd = ScriptedHerdd::new(|request| {
        let timed_out = request["timeout_ms"] == 100;
        event_change("db-ready", !timed_out, timed_out)
    });
    let out = run(&herdd.socket, &["event", "wait", "db-ready"]);
    assert_eq!((text(&out.stdout), text(&out.stderr)), ("", ""));
    assert_eq!(out.status.code(), Some(0));

    let out = run(
        &herdd.socket,
        &["event", "wait", "db-ready", "--timeout", "100ms"],
    );
    assert_eq!(
        herdd.requests(),
        [
            json!({"v": 1, "cmd": "event-wait", "name": "db-ready", "timeout_ms": null}),
            json!({"v": 1, "cmd": "event-wait", "name": "db-ready", "timeout_ms": 100}),
        ]
    );
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "herdctl: timed out waiting for event db-ready\n"
    );
    assert_eq!(out.status.code(), Some(1));

    let out = run(
        &herdd.socket,
        &["--json", "event", "wait", "db-ready", "--timeout", "100ms"],
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(printed["timed_out"], true);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn event_set_clear_and_list() {
    let herdd = ScriptedHerdd::new(|request| match request["cmd"].as_str() {
        Some("event-list") => json!({"ok": {"events": [
            {"name": "db-ready", "set": true}, {"name": "drain", "set": false}]}}),
        Some(cmd) => event_change(request["name"].as_str().unwrap(), cmd == "event-set", false),
        None => Value::Null,
    });
    for verb in ["set", "clear"] {
        let out = run(&herdd.socket, &["event", verb, "drain"]);
        assert_eq!((text(&out.stdout), text(&out.stderr)), ("", ""), "{verb}");
        assert_eq!(out.status.code(), Some(0), "{verb}");
    }
    let out = run(&herdd.socket, &["event", "list"]);
    assert_eq!(
        text(&out.stdout),
        "NAME      STATE\ndb-ready  set\ndrain     clear\n"
    );
    assert_eq!(
        herdd.requests(),
        [
            json!({"v": 1, "cmd": "event-set", "name": "drain"}),
            json!({"v": 1, "cmd": "event-clear", "name": "drain"}),
            json!({"v": 1, "cmd": "event-list"}),
        ]
    );
    let out = run(&herdd.socket, &["--json", "event", "set", "drain"]);
    let printed: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(
        printed,
        json!({"event": {"name": "drain", "set": true}, "timed_out": false})
    );
}

fn exited_event() -> Value {
    json!({"time": "2026-11-29T17:00:00.123Z", "type": "exited", "instance": "web@1",
           "pid": 42, "exit": {"signal": "SIGKILL"}})
}

fn lagged_event() -> Value {
    json!({"time": "2026-11-29T17:00:01.000Z", "type": "lagged", "missed": 12})
}

fn set_event() -> Value {
    json!({"time": "2026-11-29T17:00:02.000Z", "type": "event_changed", "event": "db-ready",
           "set": true})
}

/// Three events and the end of the history, then one more that must not be
/// printed (it would come only to a follower).
fn events_herdd() -> ScriptedHerdd {
    ScriptedHerdd::streaming(|_| {
        vec![
            json!({"event": exited_event()}),
            json!({"event": lagged_event()}),
            json!({"event": set_event()}),
            json!({"ok": {"count": 3}}),
            json!({"event": exited_event()}),
        ]
    })
}

#[test]
fn events_prints_lines_and_stops_at_ok() {
    let herdd = events_herdd();
    let out = run(&herdd.socket, &["events"]);
    assert_eq!(
        herdd.requests(),
        [json!({"v": 1, "cmd": "events", "follow": false})]
    );
    assert_eq!(
        text(&out.stdout),
        "\
2026-11-29T17:00:00.123Z web@1: pid 42 exited (killed by SIGKILL)
2026-11-29T17:00:02.000Z event db-ready: set
"
    );
    assert_eq!(
        text(&out.stderr),
        "herdctl: missed 12 events (reader too slow)\n"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn events_json_passes_the_lines_through() {
    let herdd = events_herdd();
    let out = run(&herdd.socket, &["events", "--json"]);
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines, [exited_event(), lagged_event(), set_event()]);
    assert_eq!((text(&out.stderr), out.status.code()), ("", Some(0)));
}

#[test]
fn events_follow_ends_when_herdd_hangs_up() {
    let herdd = ScriptedHerdd::streaming(|_| {
        vec![
            json!({"event": set_event()}),
            json!({"event": exited_event()}),
            Value::Null,
        ]
    });
    let out = run(&herdd.socket, &["events", "-f"]);
    assert_eq!(
        herdd.requests(),
        [json!({"v": 1, "cmd": "events", "follow": true})]
    );
    assert_eq!(text(&out.stdout).lines().count(), 2);
    assert_eq!((text(&out.stderr), out.status.code()), ("", Some(0)));
}

#[test]
fn events_error_line_is_reported_as_usual() {
    let herdd = ScriptedHerdd::streaming(|_| {
        vec![json!({"error": {"code": "permission_denied", "message": "not allowed"}})]
    });
    let out = run(&herdd.socket, &["events", "-f"]);
    assert_eq!(text(&out.stderr), "herdctl: not allowed\n");
    assert_eq!(out.status.code(), Some(5));
}

#[test]
fn events_into_a_closed_pipe_exits_0() {
    let (go, wait) = mpsc::channel::<()>();
    let go_flag = Mutex::new(wait);
    let herdd = ScriptedHerdd::streaming(move |_| {
        let _ = go_flag.lock().unwrap().recv();
        vec![json!({"event": set_event()}); 64]
    });
    let mut child = herdctl(&herdd.socket, &["events", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run herdctl");
    wait_for_requests(&herdd, 1);
    drop(child.stdout.take());
    go.send(()).expect("the fake herdd is waiting");
    let out = child.wait_with_output().expect("herdctl exits");
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn sem_acquire_starts_the_command_with_herdctls_signal_state() {
    let script = "exec grep -E '^Sig(Blk|Ign)' /proc/self/status";
    let direct = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("run sh");
    let (go, wait) = mpsc::channel();
    go.send(()).expect("the receiver is alive");
    let (herdd, _) = semaphore_herdd(true, wait, PathBuf::from("/"));
    let out = run(
        &herdd.socket,
        &["sem", "acquire", "db", "--", "sh", "-c", script],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        text(&direct.stdout),
        "nothing blocked, ignored or caught that a plain child would not have"
    );
}
