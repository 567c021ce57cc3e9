//! Many tasks at a time: `submit-batch` and `results` through the real
//! binaries (`herdctl map`, `herdctl submit --from-file`, and the protocol
//! itself): order, exit codes, results held past `keep_finished` for the
//! client that submitted them, the cap on unread results, bad batches.

use crate::harness::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

/// Keeps few ended tasks: every result a map collects is one herdd holds
/// for it past `keep_finished`.
const SMALL_KEEP: &str = r#"
[pool.p]
size = 8
keep_finished = 100
max_queue = 10000
"#;

fn run_map(herd: &Herd, args: &[&str], input: &str) -> std::process::Output {
    herd.ctl_with_input(&[&["map"], args].concat(), input)
}

fn pool_status(herd: &Herd, pool: &str) -> Value {
    let status: Value = serde_json::from_str(&herd.ok(&["--json", "status"])).unwrap();
    status["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == pool)
        .cloned()
        .expect("the pool")
}

/// One connection speaking the protocol: a request, its reply.
struct Session {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Session {
    fn open(herd: &Herd) -> Session {
        let stream = UnixStream::connect(&herd.socket).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        Session {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    fn ask(&mut self, request: &Value) -> Value {
        let mut line = request.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).unwrap();
        let mut reply = String::new();
        self.reader.read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap_or_else(|_| panic!("a reply: {reply:?}"))
    }
}

#[test]
fn map_of_2000_items_into_a_pool_keeping_100_gets_every_output_once_in_order() {
    let herd = Herd::start(SMALL_KEEP);
    let input: String = (1..=2000).map(|n| format!("{n}\n")).collect();
    let out = run_map(&herd, &["p", "--", "/bin/echo", "{}"], &input);
    assert_eq!(stderr(&out), "");
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out) == input, "every item once, in input order");
    let pool = pool_status(&herd, "p");
    assert_eq!(pool["submitted"], 2000, "no task submitted twice: {pool}");
    assert_eq!(pool["completed"], 2000, "{pool}");
    herd.wait_for("the read results to be let go", |h| {
        pool_status(h, "p")["finished"] == 100
    });
}

#[test]
fn two_maps_sharing_a_pool_that_keeps_few_both_get_every_output() {
    let herd = Herd::start(
        r#"
[pool.p]
size = 4
keep_finished = 5
max_queue = 10000
"#,
    );
    let items = |prefix: &str| -> String { (1..=400).map(|n| format!("{prefix}{n}\n")).collect() };
    let (a, b) = (items("a"), items("b"));
    let args = ["map", "-j", "64", "p", "--", "/bin/echo", "{}"];
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| herd.ctl_with_input(&args, &a));
        let second = scope.spawn(|| herd.ctl_with_input(&args, &b));
        (first.join().unwrap(), second.join().unwrap())
    });
    for (out, input) in [(first, a), (second, b)] {
        assert_eq!(stderr(&out), "");
        assert_eq!(out.status.code(), Some(0));
        assert!(
            stdout(&out) == input,
            "each map gets its own outputs, all, in order"
        );
    }
    assert_eq!(pool_status(&herd, "p")["submitted"], 800);
}

#[test]
fn map_reports_failures_by_item_and_exits_1() {
    let herd = Herd::start(SMALL_KEEP);
    let script = "echo $1; [ $(( $1 % 50 )) != 7 ]";
    let input: String = (1..=300).map(|n| format!("{n}\n")).collect();
    let out = run_map(
        &herd,
        &["p", "--", "/bin/sh", "-c", script, "sh", "{}"],
        &input,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out) == input, "failed items print their output too");
    let failed: Vec<String> = stderr(&out).lines().map(str::to_string).collect();
    let expected: Vec<String> = (0..6)
        .map(|k| 50 * k + 7)
        .map(|n| format!("herdctl: item {n} (\"{n}\"): failed (exit code 1)"))
        .collect();
    assert_eq!(failed, expected);
}

#[test]
fn submit_from_file_queues_each_line_split_as_a_shell_would() {
    let herd = Herd::start(SMALL_KEEP);
    let file = herd.path("jobs.txt");
    let marks = herd.path("marks");
    std::fs::write(
        &file,
        format!(
            "# one task per line\n\
             /bin/sh -c 'echo \"$1\" >> {marks}' sh 'a b'\n\
             \n\
             /bin/sh -c 'echo \"$1\" >> {marks}; exit 3' sh c\\ d\n",
            marks = marks.display()
        ),
    )
    .unwrap();
    let out = herd.ctl(&[
        "submit",
        "p",
        "--from-file",
        file.to_str().unwrap(),
        "--wait",
    ]);
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 4, "two ids, then how each ended: {lines:?}");
    let ids: Vec<u64> = lines[..2].iter().map(|l| l.parse().unwrap()).collect();
    assert_eq!(ids[1], ids[0] + 1);
    assert_eq!(lines[2], format!("{}: exited 0", ids[0]));
    assert_eq!(lines[3], format!("{}: failed (exit code 3)", ids[1]));
    assert_eq!(out.status.code(), Some(3), "the first non-zero exit code");
    let mut marked: Vec<String> = std::fs::read_to_string(&marks)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    marked.sort();
    assert_eq!(marked, ["a b", "c d"], "each ran once, with its words");

    // From stdin, without waiting: the ids, one per line, at once.
    let out = herd.ctl_with_input(
        &["submit", "p", "--from-file", "-"],
        "/bin/true\n/bin/true 1\n/bin/true 2\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let ids: Vec<u64> = stdout(&out).lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(ids, [ids[0], ids[0] + 1, ids[0] + 2]);
    assert_eq!(herd.task(ids[2])["command"], json!(["/bin/true", "2"]));
}

#[test]
fn submit_from_file_with_a_bad_line_queues_nothing() {
    let herd = Herd::start(SMALL_KEEP);
    let file = herd.path("jobs.txt");
    std::fs::write(&file, "/bin/true\n/bin/echo 'not closed\n").unwrap();
    let out = herd.ctl(&["submit", "p", "--from-file", file.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.contains("jobs.txt:2: cannot split") && err.contains("nothing was submitted"),
        "{err}"
    );
    assert_eq!(pool_status(&herd, "p")["submitted"], 0);
    let out = herd.ctl(&[
        "submit",
        "p",
        "--from-file",
        herd.path("none").to_str().unwrap(),
    ]);
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
    assert_eq!(pool_status(&herd, "p")["submitted"], 0);
}

#[test]
fn a_malformed_batch_gets_an_error_reply_and_queues_nothing() {
    let herd = Herd::start(SMALL_KEEP);
    let mut session = Session::open(&herd);
    let cases = [
        (
            json!({"v": 1, "cmd": "submit-batch", "pool": "p",
                "commands": [["/bin/true"], [], ["/bin/true"]]}),
            "bad_request",
            "command 2: a task needs a command",
        ),
        (
            json!({"v": 1, "cmd": "submit-batch", "pool": "p", "commands": []}),
            "bad_request",
            "a batch needs at least one command",
        ),
        (
            json!({"v": 1, "cmd": "submit-batch", "pool": "p", "commands": ["/bin/true"]}),
            "bad_request",
            "bad arguments for \"submit-batch\"",
        ),
        (
            json!({"v": 1, "cmd": "submit-batch", "pool": "p", "commands": [["/bin/true"]],
                "options": {"timeout_ms": 0}}),
            "bad_request",
            "timeout",
        ),
        (
            json!({"v": 1, "cmd": "submit-batch", "pool": "nope", "commands": [["/bin/true"]]}),
            "no_such_pool",
            "no such pool: nope",
        ),
        (
            json!({"v": 1, "cmd": "results", "ids": [999]}),
            "no_such_task",
            "no task 999",
        ),
    ];
    for (request, code, message) in cases {
        let reply = session.ask(&request);
        assert_eq!(reply["error"]["code"], code, "{request} -> {reply}");
        let text = reply["error"]["message"].as_str().unwrap();
        assert!(text.contains(message), "{request} -> {reply}");
    }
    assert_eq!(
        pool_status(&herd, "p")["submitted"],
        0,
        "nothing was queued"
    );
    // The connection goes on: a good batch and its results.
    let reply = session.ask(&json!({"v": 1, "cmd": "submit-batch", "pool": "p",
                                    "commands": [["/bin/echo", "x"], ["/bin/echo", "y"]]}));
    let ids = reply["ok"]["ids"].as_array().expect("ids").clone();
    assert_eq!(ids.len(), 2);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let reply = session.ask(&json!({"v": 1, "cmd": "results", "timeout_ms": 5000}));
        for result in reply["ok"]["results"].as_array().unwrap() {
            seen.push((
                result["task"]["id"].clone(),
                result["stdout"]["data"].clone(),
            ));
        }
    }
    // Each reply is in id order; y may end (and come) before x.
    seen.sort_by_key(|(id, _)| id.as_u64());
    assert_eq!(
        seen,
        [
            (ids[0].clone(), json!("x\n")),
            (ids[1].clone(), json!("y\n"))
        ]
    );
    let reply = session.ask(&json!({"v": 1, "cmd": "results"}));
    assert_eq!(
        reply["ok"],
        json!({"results": [], "outstanding": 0, "timed_out": false})
    );
}

#[test]
fn a_connection_holds_at_most_4096_ended_results_its_pool_let_go_of() {
    let herd = Herd::start(
        r#"
[pool.p]
size = 8
keep_finished = 1
max_queue = 10000
"#,
    );
    let mut session = Session::open(&herd);
    // 4200 submitted at once: not ended yet, so the cap does not count them.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let reply = session.ask(&json!({"v": 1, "cmd": "submit-batch", "pool": "p",
                                        "commands": vec![["/bin/true"]; 2100]}));
        let batch = reply["ok"]["ids"].as_array().expect("ids").clone();
        assert_eq!(batch.len(), 2100, "{reply}");
        ids.extend(batch);
    }
    // Joined on another connection, which reads no result. 4200 processes
    // take a while on a loaded machine: this reply alone may wait longer.
    let mut joiner = Session::open(&herd);
    joiner.writer.set_read_timeout(Some(DEADLINE * 8)).unwrap();
    let reply = joiner.ask(&json!({"v": 1, "cmd": "join", "ids": ids}));
    assert_eq!(reply["ok"]["tasks"].as_array().map(Vec::len), Some(4200));
    // The pool keeps one: 4199 are held for this connection alone.
    let reply = session.ask(&json!({"v": 1, "cmd": "submit-batch", "pool": "p",
                                    "commands": [["/bin/true"]]}));
    assert_eq!(reply["error"]["code"], "refused", "{reply}");
    let why = reply["error"]["message"].as_str().unwrap();
    assert!(
        why.contains("4096 ended tasks") && why.contains("no longer keeps"),
        "{why}"
    );
    let reply = session.ask(&json!({"v": 1, "cmd": "submit", "pool": "p",
                                    "command": ["/bin/true"]}));
    assert_eq!(reply["error"]["code"], "refused", "{reply}");
    // Another connection is not held back by this one.
    let other = herd.ctl(&["submit", "p", "--", "/bin/true"]);
    assert!(other.status.success(), "{}", stderr(&other));
    // Once it has read its results, it may submit again.
    let mut read = 0;
    while read < 4200 {
        let reply = session.ask(&json!({"v": 1, "cmd": "results", "timeout_ms": 10000}));
        let got = reply["ok"]["results"].as_array().expect("results").len();
        assert!(got > 0, "{reply}");
        read += got;
    }
    let reply = session.ask(&json!({"v": 1, "cmd": "submit", "pool": "p",
                                    "command": ["/bin/true"]}));
    assert!(reply["ok"]["id"].is_u64(), "{reply}");
}
