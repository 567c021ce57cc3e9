//! Task pools through herdctl: submit, join, map, output, cancel, pool verbs.

use crate::harness::*;
use std::io::Write;
use std::process::{Command, Stdio};

const POOL: &str = r#"
[pool.p]
size = 3
max_queue = 1000
stop_timeout = "300ms"
"#;

impl Herd {
    fn submit(&self, pool: &str, command: &[&str]) -> u64 {
        let mut args = vec!["submit", pool, "--"];
        args.extend_from_slice(command);
        self.ok(&args)
            .trim()
            .parse()
            .expect("submit prints the task id")
    }

    /// `herdctl map` with `input` on stdin.
    fn map(&self, args: &[&str], input: &str) -> std::process::Output {
        self.ctl_with_input(&[&["map"], args].concat(), input)
    }
}

#[test]
fn two_hundred_tasks_never_run_more_than_size_at_once() {
    let herd = Herd::start(POOL);
    std::fs::create_dir(herd.path("running")).unwrap();
    // Each task marks itself running, counts the marks, and unmarks itself.
    let script = "touch $DIR/running/$1; ls $DIR/running | wc -l >> $DIR/counts; sleep 0.02; rm $DIR/running/$1";
    let script = script.replace("$DIR", &herd.dir.path().display().to_string());
    let items: String = (0..200).map(|i| format!("{i}\n")).collect();
    let out = herd.map(&["p", "--", "/bin/sh", "-c", &script, "sh", "{}"], &items);
    assert!(out.status.success(), "{}", stderr(&out));
    let counts: Vec<u32> = std::fs::read_to_string(herd.path("counts"))
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 200);
    let most = *counts.iter().max().unwrap();
    assert!(most <= 3, "{most} tasks ran at once in a pool of size 3");
    assert!(
        most >= 2,
        "the pool ran tasks in parallel (saw at most {most})"
    );
}

#[test]
fn map_writes_results_in_input_order_and_reports_failures() {
    let herd = Herd::start(POOL);
    // Later items finish first.
    let out = herd.map(
        &[
            "p",
            "--",
            "/bin/sh",
            "-c",
            "sleep 0.$((4 - $1)); echo item $1",
            "sh",
            "{}",
        ],
        "1\n2\n3\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "item 1\nitem 2\nitem 3\n");

    let out = herd.map(
        &[
            "p",
            "--",
            "/bin/sh",
            "-c",
            "echo $1; exit $(( $1 % 2 ))",
            "sh",
            "{}",
        ],
        "1\n2\n3\n4\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "1\n2\n3\n4\n");
    let err = stderr(&out);
    assert!(
        err.contains("\"1\"") && err.contains("\"3\""),
        "names the failed items: {err}"
    );
    assert!(!err.contains("\"2\""), "{err}");
}

#[test]
fn join_returns_codes_and_signals() {
    let herd = Herd::start(POOL);
    let three = herd.submit("p", &["/bin/sh", "-c", "exit 3"]);
    let killed = herd.submit("p", &["/bin/sh", "-c", "kill -9 $$"]);
    let fine = herd.submit("p", &["/bin/true"]);
    let out = herd.ctl(&["join", &three.to_string()]);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    let out = herd.ctl(&["join", &killed.to_string()]);
    assert_eq!(out.status.code(), Some(128 + 9));
    assert!(stdout(&out).contains("SIGKILL"), "{}", stdout(&out));
    assert_eq!(
        herd.ctl(&["join", &fine.to_string()]).status.code(),
        Some(0)
    );
    let several = herd.ctl(&[
        "join",
        &fine.to_string(),
        &three.to_string(),
        &killed.to_string(),
    ]);
    assert_eq!(
        several.status.code(),
        Some(3),
        "first non-zero in the order given"
    );
    assert_eq!(herd.ctl(&["join", "999999"]).status.code(), Some(4));

    let waited = herd.ctl(&["submit", "p", "--wait", "--", "/bin/sh", "-c", "exit 5"]);
    assert_eq!(waited.status.code(), Some(5));
    let slow = herd.submit("p", &["/bin/sleep", "1000"]);
    let out = herd.ctl(&["join", &slow.to_string(), "--timeout", "200ms"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
    herd.ok(&["cancel", &slow.to_string()]);
}

#[test]
fn an_unexecutable_task_fails_with_the_exec_error() {
    let herd = Herd::start(POOL);
    let id = herd.submit("p", &["/no/such/tool"]);
    let out = herd.ctl(&["join", &id.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("exec /no/such/tool: No such file or directory"),
        "{}",
        stdout(&out)
    );
    assert_eq!(herd.task(id)["state"], "failed");
}

#[test]
fn output_keeps_stdout_and_stderr_apart_and_handles_megabytes() {
    let herd = Herd::start(POOL);
    let id = herd.submit("p", &["/bin/sh", "-c", "echo out; echo err >&2"]);
    herd.ok(&["join", &id.to_string()]);
    assert_eq!(herd.ok(&["output", &id.to_string()]), "out\n");
    assert_eq!(herd.ok(&["output", &id.to_string(), "--stderr"]), "err\n");

    let big = herd.submit(
        "p",
        &["/bin/sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' a"],
    );
    herd.ok(&["join", &big.to_string()]);
    let data = herd.ok(&["output", &big.to_string()]);
    assert_eq!(data.len(), 3_000_000);
    assert!(data.bytes().all(|b| b == b'a'));
}

#[test]
fn cancel_and_terminate_leave_no_process_behind() {
    let herd = Herd::start(POOL);
    let ids: Vec<u64> = (0..5)
        .map(|_| herd.submit("p", &["/bin/sleep", "1000"]))
        .collect();
    herd.wait_for("3 running", |h| {
        ids.iter()
            .filter(|id| h.task(**id)["state"] == "running")
            .count()
            == 3
    });
    let pids: Vec<u32> = ids
        .iter()
        .filter_map(|id| herd.task(*id)["pid"].as_u64().map(|p| p as u32))
        .collect();
    assert_eq!(pids.len(), 3);
    herd.ok(&["cancel", &ids[0].to_string(), &ids[4].to_string()]);
    herd.wait_for("task 0 cancelled", |h| {
        h.task(ids[0])["state"] == "cancelled"
    });
    assert_eq!(
        herd.task(ids[4])["state"],
        "cancelled",
        "a queued task is removed at once"
    );
    herd.ok(&["pool", "terminate", "p"]);
    herd.ok(&["pool", "join", "p"]);
    for id in &ids {
        assert_eq!(herd.task(*id)["state"], "cancelled");
    }
    for pid in pids {
        assert!(gone(pid), "pid {pid} outlived its cancelled task");
    }
}

#[test]
fn a_full_queue_and_a_closed_pool_refuse_submissions() {
    let herd = Herd::start(
        r#"
[pool.small]
size = 1
max_queue = 2
"#,
    );
    for _ in 0..3 {
        herd.submit("small", &["/bin/sleep", "1000"]); // 1 running + 2 queued
    }
    let out = herd.ctl(&["submit", "small", "--", "/bin/true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("max_queue = 2"), "{}", stderr(&out));
    herd.ok(&["pool", "terminate", "small"]);
    herd.ok(&["pool", "join", "small"]);
    herd.ok(&["pool", "close", "small"]);
    let out = herd.ctl(&["submit", "small", "--", "/bin/true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("closed"), "{}", stderr(&out));
    assert_eq!(
        herd.ctl(&["submit", "nope", "--", "/bin/true"])
            .status
            .code(),
        Some(4)
    );
}

#[test]
fn shutdown_joins_running_tasks_and_cancels_queued_ones() {
    let mut herd = Herd::start(
        r#"
[pool.one]
size = 1
"#,
    );
    let marker = herd.path("done");
    let running = herd.submit(
        "one",
        &[
            "/bin/sh",
            "-c",
            &format!("sleep 0.3; touch {}", marker.display()),
        ],
    );
    herd.submit("one", &["/bin/sh", "-c", "touch /nonexistent-dir/never"]);
    herd.wait_for("the first task to run", |h| {
        h.task(running)["state"] == "running"
    });
    herd.ok(&["shutdown"]);
    assert!(
        marker.exists(),
        "the running daemon = false task was joined"
    );
    assert_eq!(herd.wait_exit(), 0);
}

/// `tail -f queue | herdctl map`: each line is run as it arrives, and its
/// result printed, while stdin stays open.
#[test]
fn map_runs_lines_as_they_arrive_on_an_open_pipe() {
    use std::io::{BufRead, BufReader};
    let herd = Herd::start(POOL);
    let mut map = Command::new(bin("herdctl"))
        .arg("--socket")
        .arg(&herd.socket)
        .args(["map", "p", "--", "/bin/sh", "-c", "echo got $1", "sh", "{}"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Without streaming, map would wait for the end of stdin and the reads
    // below for ever: past the deadline, the map is killed and the test fails.
    let (done, watchdog) = std::sync::mpsc::channel::<()>();
    let pid = map.id();
    let watchdog = std::thread::spawn(move || {
        if watchdog.recv_timeout(DEADLINE).is_err() {
            signal(pid, libc::SIGKILL);
        }
    });
    let mut input = map.stdin.take().unwrap();
    let mut results = BufReader::new(map.stdout.take().unwrap());
    for item in ["a", "b b", "c"] {
        writeln!(input, "{item}").unwrap();
        input.flush().unwrap();
        // Blocks until the result is printed: with stdin still open.
        let mut line = String::new();
        results.read_line(&mut line).unwrap();
        assert_eq!(line, format!("got {item}\n"));
    }
    drop(input);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut results, &mut rest).unwrap();
    let status = map.wait().unwrap();
    done.send(()).unwrap();
    watchdog.join().unwrap();
    assert!(status.success(), "map ends 0 when stdin ends");
    assert_eq!(rest, "", "nothing more after the last item");
}

#[test]
fn map_of_a_bad_line_stops_there_and_cancels_what_runs() {
    let herd = Herd::start(POOL);
    let out = herd.map(&["p", "--", "/bin/echo"], "ok\n\u{fffd}\n");
    assert!(out.status.success(), "U+FFFD is UTF-8: {}", stderr(&out));
    let mut map = Command::new(bin("herdctl"))
        .arg("--socket")
        .arg(&herd.socket)
        .args(["map", "p", "--", "/bin/sleep", "30"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = map.stdin.take().unwrap();
    input.write_all(b"1\n").unwrap();
    input.flush().unwrap();
    herd.wait_for("the first item to run", |h| {
        let tasks: serde_json::Value =
            serde_json::from_str(&h.ok(&["--json", "tasks", "p"])).unwrap();
        tasks["tasks"].as_array().unwrap().iter().any(|t| {
            t["command"] == serde_json::json!(["/bin/sleep", "30", "1"]) && t["state"] == "running"
        })
    });
    input.write_all(b"\xff\n").unwrap();
    drop(input);
    let out = map.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "herdctl: stdin line 2 is not UTF-8; nothing after it was submitted; cancelled 1 task(s)\n"
    );
    herd.wait_for("the running item to be cancelled", |h| {
        let tasks: serde_json::Value =
            serde_json::from_str(&h.ok(&["--json", "tasks", "p"])).unwrap();
        tasks["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["command"][0] == "/bin/sleep")
            .all(|t| t["state"] == "cancelled")
    });
}

#[test]
fn results_are_held_for_the_connection_that_submitted_them() {
    use std::io::{BufRead, BufReader, Write};
    let herd = Herd::start(
        r#"
[pool.tiny]
size = 2
keep_finished = 1
"#,
    );
    // One connection: two tasks, a join on both, then both outputs. The
    // pool keeps only one ended task, but the connection still wants both.
    let mut stream = std::os::unix::net::UnixStream::connect(&herd.socket).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let submit = r#"{"v":1,"cmd":"submit","pool":"tiny","command":["/bin/echo","hi"]}"#;
    let requests = [
        submit.to_string(),
        submit.to_string(),
        r#"{"v":1,"cmd":"join","ids":[1,2]}"#.to_string(),
        r#"{"v":1,"cmd":"output","id":1}"#.to_string(),
        r#"{"v":1,"cmd":"output","id":2}"#.to_string(),
    ];
    stream
        .write_all((requests.join("\n") + "\n").as_bytes())
        .unwrap();
    let mut reader = BufReader::new(stream);
    for request in &requests {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let reply: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(reply.get("ok").is_some(), "{request} -> {line}");
        if request.contains("output") {
            assert_eq!(reply["ok"]["data"], "hi\n", "{line}");
        }
    }
    drop(reader);
    // Read (and the connection closed): the pool is back to keeping one.
    herd.wait_for("the read results to be let go", |h| {
        let tasks: serde_json::Value =
            serde_json::from_str(&h.ok(&["--json", "tasks", "tiny"])).unwrap();
        tasks["tasks"].as_array().unwrap().len() == 1
    });
}

#[test]
fn map_captures_every_short_tasks_output_exactly_and_in_order() {
    let herd = Herd::start(POOL);
    let items: String = (1..=600).map(|i| format!("{i}\n")).collect();
    // Each task writes to both streams; stdout is what map prints.
    let script =
        "echo out $1; echo err $1 >&2; [ $(( $1 % 100 )) -ne 0 ] || head -c 100000 /dev/zero";
    let out = herd.map(&["p", "--", "/bin/sh", "-c", script, "sh", "{}"], &items);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected: String = (1..=600)
        .map(|i| {
            let zeros = if i % 100 == 0 {
                "\0".repeat(100_000)
            } else {
                String::new()
            };
            format!("out {i}\n{zeros}")
        })
        .collect();
    assert!(
        stdout(&out) == expected,
        "map's stdout is not every task's, in order"
    );
}

#[test]
fn a_tasks_stderr_and_output_written_after_it_exited_are_captured() {
    let herd = Herd::start(POOL);
    // The task exits once a process of its own has left its group (so it
    // is not killed with the task's leftovers); that process still holds
    // the task's stdout and writes to it once the task has been reaped.
    let escaped = herd.path("escaped");
    let script = format!(
        "echo first; echo oops >&2; \
         setsid /bin/sh -c 'touch \"$1\"; while kill -0 $2 2>/dev/null; do sleep 0.05; done; sleep 0.2; echo late' sh {} $$ & \
         while [ ! -e {} ]; do sleep 0.01; done",
        escaped.display(),
        escaped.display()
    );
    let id = herd.submit("p", &["/bin/sh", "-c", &script]);
    herd.ok(&["join", &id.to_string()]);
    assert_eq!(herd.ok(&["output", &id.to_string(), "--stderr"]), "oops\n");
    wait_until("the late line is captured", || {
        herd.ok(&["output", &id.to_string()]) == "first\nlate\n"
    });
}

#[test]
fn tasks_get_the_pools_env_as_a_reload_changes_it_and_herdds_own() {
    let herd = Herd::start(
        r#"
[pool.p]
size = 2
env = { GREETING = "hello", PATH = "/usr/bin:/bin" }
"#,
    );
    let run = |herd: &Herd| {
        let id = herd.submit(
            "p",
            &["/bin/sh", "-c", "echo $GREETING $PATH $HERD_POOL $HERD_LOG"],
        );
        herd.ok(&["join", &id.to_string()]);
        herd.ok(&["output", &id.to_string()])
    };
    // HERD_LOG comes from herdd's own environment (the harness sets it).
    assert_eq!(run(&herd), "hello /usr/bin:/bin p debug\n");
    let text = std::fs::read_to_string(&herd.config).unwrap();
    std::fs::write(&herd.config, text.replace("\"hello\"", "\"bye\"")).unwrap();
    herd.ok(&["reload"]);
    assert_eq!(run(&herd), "bye /usr/bin:/bin p debug\n");
}
