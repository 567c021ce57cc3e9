//! Log files: capture, timestamps, rotation, `herdctl logs` (-n, -f,
//! --json), a flood that must not stall herdd, an unwritable log dir.

use crate::harness::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `2026-11-29T17:00:00.123Z`
fn is_timestamp(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 24
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b'T',
            13 | 16 => *b == b':',
            19 => *b == b'.',
            23 => *b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

/// A log file's lines as (time, stream tag, text); panics on a line
/// that is not `TIME TAG TEXT`.
fn entries(path: &Path) -> Vec<(String, String, String)> {
    let bytes = std::fs::read(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let text = String::from_utf8_lossy(&bytes);
    text.lines()
        .map(|line| {
            let (time, rest) = line.split_at(24);
            assert!(is_timestamp(time), "no timestamp: {line:?}");
            let (tag, text) = rest[1..].split_once(' ').expect("a stream tag");
            (time.to_string(), tag.to_string(), text.to_string())
        })
        .collect()
}

fn texts(path: &Path) -> Vec<String> {
    entries(path).into_iter().map(|(_, _, text)| text).collect()
}

/// `logs` output lines.
fn logs(herd: &Herd, args: &[&str]) -> Vec<String> {
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    herd.ok(&all).lines().map(str::to_string).collect()
}

fn wait_for_lines(path: &Path, count: usize) {
    wait_until(&format!("{count} lines in {}", path.display()), || {
        std::fs::read_to_string(path).is_ok_and(|text| text.lines().count() >= count)
    });
}

#[test]
fn lines_of_each_instance_go_to_its_own_file_with_timestamps() {
    let herd = Herd::start(
        r#"
[service.web]
command = ["/bin/sh", "-c", "echo hello from $HERD_INSTANCE; echo oops $HERD_INSTANCE >&2; printf 'no newline'; exec sleep 1000"]
instances = 3

[task.migrate]
command = ["/bin/sh", "-c", "echo migrated; printf 'binary \\001\\377 end\\n'"]

[service.quiet]
command = ["/bin/sh", "-c", "echo discarded; exec sleep 1000"]
log = "off"

[service.loud]
command = ["/bin/sh", "-c", "echo straight to herdd; exec sleep 1000"]
log = "inherit"
"#,
    );
    let log = herd.path("log");
    for i in 0..3 {
        let path = log.join(format!("web/web@{i}.log"));
        wait_for_lines(&path, 2);
        let lines = entries(&path);
        let streams: Vec<(&str, &str)> = lines
            .iter()
            .map(|(_, tag, text)| (tag.as_str(), text.as_str()))
            .collect();
        let hello = format!("hello from {i}");
        let oops = format!("oops {i}");
        assert!(streams.contains(&("stdout", hello.as_str())), "{lines:?}");
        assert!(streams.contains(&("stderr", oops.as_str())), "{lines:?}");
        assert!(
            !lines.iter().any(|(_, _, text)| text.contains("no newline")),
            "an unfinished line waits while the process runs: {lines:?}"
        );
    }
    // The unfinished line is written, marked, when the process exits.
    herd.ok(&["stop", "web@1"]);
    let lines = entries(&log.join("web/web@1.log"));
    assert_eq!(lines.last().unwrap().1, "stdout+", "{lines:?}");
    assert_eq!(lines.last().unwrap().2, "no newline");

    // A config task is a unit with a log of its own; bytes are kept as written.
    herd.wait_state("migrate", "exited");
    let raw = std::fs::read(log.join("migrate/migrate.log")).unwrap();
    assert!(raw.ends_with(b" stdout binary \x01\xff end\n"), "{raw:?}");
    assert_eq!(texts(&log.join("migrate/migrate.log"))[0], "migrated");

    herd.wait_state("quiet", "running");
    herd.wait_state("loud", "running");
    wait_until("the inherited line in herdd's own output", || {
        herd.log().contains("straight to herdd")
    });
    assert!(!log.join("quiet").exists(), "log = \"off\" writes nothing");
    assert!(!log.join("loud").exists());
    assert!(!herd.log().contains("discarded"));
}

#[test]
fn rotation_keeps_at_most_log_keep_files_of_bounded_size() {
    let herd = Herd::start(
        r#"
[task.count]
command = ["/usr/bin/seq", "1", "20000"]
log_max_size = "4K"
log_keep = 2
"#,
    );
    herd.wait_state("count", "exited");
    let dir = herd.path("log/count");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["count.log", "count.log.1", "count.log.2"]);
    let mut numbers = Vec::new();
    for name in ["count.log.2", "count.log.1", "count.log"] {
        let path = dir.join(name);
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= 4096, "{name} is {size} bytes");
        if name != "count.log" {
            assert!(size > 4096 - 40, "{name} is full: {size} bytes");
        }
        numbers.extend(texts(&path).iter().map(|t| t.parse::<u32>().unwrap()));
    }
    // Oldest file first, and nothing missing between the kept files.
    assert_eq!(*numbers.last().unwrap(), 20000);
    let first = numbers[0];
    assert_eq!(numbers, (first..=20000).collect::<Vec<_>>());
}

#[test]
fn logs_shows_the_last_lines_merged_and_as_json() {
    let herd = Herd::start(
        r#"
[service.web]
command = ["/bin/sh", "-c", "for i in 1 2 3; do echo web $HERD_INSTANCE says $i; sleep 0.05; done; exec sleep 1000"]
instances = 2

[task.count]
command = ["/usr/bin/seq", "1", "3000"]
log_max_size = "2K"
log_keep = 100
"#,
    );
    herd.wait_state("count", "exited");
    // -n across rotated files.
    assert_eq!(
        logs(&herd, &["count", "-n", "3"]),
        ["count | 2998", "count | 2999", "count | 3000"]
    );
    let all = logs(&herd, &["count"]);
    assert_eq!(all.len(), 3000, "every kept line, from the oldest file");
    assert_eq!(all[0], "count | 1");
    assert!(
        std::fs::read_dir(herd.path("log/count")).unwrap().count() > 10,
        "it did rotate"
    );

    // A unit: its instances merged in time order, each line tagged.
    let web0 = herd.path("log/web/web@0.log");
    let web1 = herd.path("log/web/web@1.log");
    wait_for_lines(&web0, 3);
    wait_for_lines(&web1, 3);
    let lines = logs(&herd, &["web"]);
    assert_eq!(lines.len(), 6, "{lines:?}");
    for i in 0..2 {
        let mine: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with(&format!("web@{i} | ")))
            .collect();
        assert_eq!(mine.len(), 3, "{lines:?}");
        assert!(mine[2].ends_with(&format!("web {i} says 3")));
    }
    let out = herd.ok(&["--json", "logs", "web", "-n", "4"]);
    let objects: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 4, "{out}");
    let times: Vec<&str> = objects
        .iter()
        .map(|o| o["time"].as_str().unwrap())
        .collect();
    assert!(times.iter().all(|t| is_timestamp(t)), "{times:?}");
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "in time order: {times:?}"
    );
    assert!(objects.iter().all(|o| o["stream"] == "stdout"));
    assert_eq!(
        objects[3]["text"].as_str().unwrap().split(' ').nth(3),
        Some("3")
    );
    // An instance, with -t.
    let lines = logs(&herd, &["web@1", "-n", "1", "-t"]);
    assert_eq!(lines.len(), 1);
    let (time, rest) = lines[0].split_at(24);
    assert!(is_timestamp(time));
    assert_eq!(rest, " web@1 | web 1 says 3");

    // Names that have no logs.
    let out = herd.ctl(&["logs", "nope"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let out = herd.ctl(&["logs", "../etc"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
}

/// `herdctl logs ARGS` running in the background, its lines on a channel.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    fn start(herd: &Herd, args: &[&str]) -> Follower {
        let mut child = Command::new(bin("herdctl"))
            .arg("--socket")
            .arg(&herd.socket)
            .arg("logs")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run herdctl logs -f");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follower { child, lines }
    }

    fn next(&self) -> String {
        self.lines
            .recv_timeout(DEADLINE)
            .expect("a line from logs -f in time")
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn logs_follow_goes_on_across_rotations_without_gaps() {
    let herd = Herd::start(
        r#"
[service.tick]
command = ["/bin/sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.002; done"]
log_max_size = "1K"
log_keep = 1
"#,
    );
    let path = herd.path("log/tick/tick.log");
    wait_for_lines(&path, 5);
    let follower = Follower::start(&herd, &["-f", "-n", "3", "tick"]);
    let number = |line: &str| -> u64 {
        line.strip_prefix("tick | tick ")
            .unwrap_or_else(|| panic!("unexpected line {line:?}"))
            .parse()
            .unwrap()
    };
    let first = number(&follower.next());
    let mut last = first;
    // ~40 lines per 1K file: 600 lines span more than 10 rotations.
    while last < first + 600 {
        let next = number(&follower.next());
        assert_eq!(next, last + 1, "no line skipped or repeated");
        last = next;
    }
    // The history part came from the files that were there when it started.
    let rotated = herd.path("log/tick/tick.log.1");
    assert!(rotated.exists());
    assert!(!herd.path("log/tick/tick.log.2").exists());
}

#[test]
fn logs_follow_picks_up_new_instances_and_ends_with_herdd() {
    let mut herd = Herd::start(
        r#"
[service.web]
command = ["/bin/sh", "-c", "while true; do echo up $HERD_INSTANCE; sleep 0.05; done"]
instances = 1
"#,
    );
    wait_for_lines(&herd.path("log/web/web@0.log"), 1);
    let follower = Follower::start(&herd, &["web", "-f", "-n", "0"]);
    assert_eq!(follower.next(), "web@0 | up 0");
    herd.ok(&["scale", "web", "2"]);
    let started = Instant::now();
    loop {
        if follower.next() == "web@1 | up 1" {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "web@1 never showed up");
    }
    herd.ok(&["shutdown"]);
    assert_eq!(herd.wait_exit(), 0);
    let mut follower = follower;
    let status = follower.child.wait().unwrap();
    assert!(
        status.success(),
        "logs -f ends quietly when herdd exits: {status}"
    );
}

/// Writes ~191 MiB and asserts on times: not part of the default test run
/// (CI runs it on its own, with `--ignored`, after the others).
#[test]
#[ignore = "a 191 MiB flood with timed asserts: CI runs it alone with --ignored"]
fn a_flood_does_not_stall_status_restarts_or_other_logs() {
    // 2,000,000 lines of 100 bytes: ~191 MiB (the 1 GiB figure is bench/logs).
    const LINES: u64 = 2_000_000;
    let herd = Herd::start(&format!(
        r#"
[task.flood]
command = ["/bin/sh", "-c", "yes {text} | head -n {LINES}"]
autostart = false
log_max_size = "1G"
log_keep = 0

[service.other]
command = ["/bin/sleep", "1000"]

[service.tick]
command = ["/bin/sh", "-c", "while true; do echo tick; sleep 0.01; done"]
"#,
        text = "x".repeat(99),
    ));
    herd.wait_state("other", "running");
    herd.wait_state("tick", "running");
    let before = herd.pid_of("other");
    herd.ok(&["start", "--no-block", "flood"]);
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    let mut statuses = 0;
    let mut restarted = false;
    loop {
        let asked = Instant::now();
        let state = herd.instance("flood")["state"].clone();
        worst = worst.max(asked.elapsed());
        statuses += 1;
        if !restarted && started.elapsed() > Duration::from_millis(200) {
            herd.ok(&["restart", "other"]);
            restarted = true;
        }
        if state == "exited" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the flood did not finish; state {state}"
        );
    }
    let flood_took = started.elapsed();
    assert!(restarted, "the flood was over before the restart");
    let after = herd.pid_of("other");
    assert_ne!(before, after, "the restart happened during the flood");
    assert_eq!(herd.instance("other")["state"], "running");
    // Generous for a debug build on a loaded CI machine; bench/logs
    // measures the release build against its 50 ms target.
    assert!(
        worst < Duration::from_secs(2),
        "worst status during the flood: {worst:?} ({statuses} calls, flood took {flood_took:?})"
    );
    // Nothing lost: every line, with its prefix.
    let size = std::fs::metadata(herd.path("log/flood/flood.log"))
        .unwrap()
        .len();
    assert_eq!(size, LINES * (24 + 1 + 6 + 1 + 100));
    // The other service's lines kept flowing: no long silence while flooded.
    let ticks = entries(&herd.path("log/tick/tick.log"));
    let times: Vec<&str> = ticks.iter().map(|(time, _, _)| time.as_str()).collect();
    let millis = |t: &str| -> i64 {
        let h: i64 = t[11..13].parse().unwrap();
        let m: i64 = t[14..16].parse().unwrap();
        let s: i64 = t[17..19].parse().unwrap();
        let ms: i64 = t[20..23].parse().unwrap();
        ((h * 60 + m) * 60 + s) * 1000 + ms
    };
    let gaps = times.windows(2).map(|w| millis(w[1]) - millis(w[0]));
    let longest = gaps.max().unwrap_or(0);
    eprintln!(
        "flood: {LINES} lines in {flood_took:?}; worst status {worst:?} over {statuses} calls; \
         longest silence of tick {longest} ms"
    );
    assert!(
        longest < 1000,
        "tick went {longest} ms without a line during the flood ({} ticks)",
        ticks.len()
    );
}

#[test]
fn an_unwritable_log_dir_is_reported_and_does_not_kill_herdd() {
    let herd = Herd::configure(
        r#"
[service.web]
command = ["/bin/sh", "-c", "while true; do echo alive; sleep 0.05; done"]
"#,
    );
    // The log dir is below a plain file: nothing can be created there,
    // not even by root.
    let blocker = herd.path("log");
    std::fs::write(&blocker, "not a directory").unwrap();
    let herd = herd.launch();
    herd.wait_state("web", "running");
    herd.wait_for("the log error in status", |h| {
        h.instance("web")["log_error"].is_string()
    });
    let error = herd.instance("web")["log_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("Not a directory"), "{error}");
    let table = herd.ok(&["status"]);
    assert!(table.contains("log: cannot open"), "{table}");
    // It keeps running (its pipe is read and discarded), herdd keeps answering.
    let pid = herd.pid_of("web");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(herd.pid_of("web"), pid);
    assert!(alive(herd.daemon_pid()));
    let warnings = herd
        .log()
        .matches("cannot write the log; its output is discarded")
        .count();
    assert_eq!(warnings, 1, "reported once:\n{}", herd.log());

    // Fixed: writing resumes (within the 5 s retry) and the error goes.
    std::fs::remove_file(&blocker).unwrap();
    herd.wait_for("the log to be written again", |h| {
        h.instance("web")["log_error"].is_null()
    });
    wait_for_lines(&herd.path("log/web/web.log"), 1);
    assert_eq!(texts(&herd.path("log/web/web.log"))[0], "alive");
}

#[test]
fn logging_goes_on_across_daemon_reexec() {
    let herd = Herd::start(
        r#"
[service.tick]
command = ["/bin/sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.01; done"]
"#,
    );
    let path = herd.path("log/tick/tick.log");
    wait_for_lines(&path, 3);
    let pid = herd.pid_of("tick");
    herd.ok(&["daemon-reexec"]);
    let lines = texts(&path).len();
    wait_for_lines(&path, lines + 20);
    assert_eq!(
        herd.pid_of("tick"),
        pid,
        "its pipe was handed over, not broken"
    );
    let numbers: Vec<u64> = texts(&path)
        .iter()
        .map(|t| t.strip_prefix("tick ").unwrap().parse().unwrap())
        .collect();
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
}
