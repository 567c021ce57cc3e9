//! Timers through herdd and herdctl: `every`, `schedule`, `overlap`,
//! `pool`, `herdctl start`/`stop`, `persistent` across a restart of herdd,
//! and config errors. Runs are counted from what the commands write and
//! from `status`/`events`; no assertion is on how long anything took.

use crate::harness::*;
use serde_json::Value;

/// The timer of `unit` as `status --json` shows it.
fn timer(herd: &Herd, unit: &str) -> Value {
    herd.status()["units"]
        .as_array()
        .expect("units")
        .iter()
        .find(|u| u["name"] == unit)
        .unwrap_or_else(|| panic!("no unit {unit}"))["timer"]
        .clone()
}

fn runs(herd: &Herd, unit: &str) -> u64 {
    timer(herd, unit)["runs"].as_u64().unwrap_or(0)
}

/// `herdctl --json events` (the recent ones).
fn events(herd: &Herd) -> Vec<Value> {
    herd.ok(&["--json", "events"])
        .lines()
        .map(|line| serde_json::from_str(line).expect("an event per line"))
        .collect()
}

/// The outcomes of `unit`'s timer firings, in order.
fn fired(herd: &Herd, unit: &str) -> Vec<String> {
    events(herd)
        .iter()
        .filter(|e| e["type"] == "timer_fired" && e["unit"] == unit)
        .map(|e| e["outcome"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[test]
fn an_every_1s_task_runs_again_and_again_and_each_run_is_in_status_and_events() {
    let herd = Herd::start(
        r#"
[task.tick]
command = ["/bin/sh", "-c", "date +%s%N >> $DIR/ticks"]
every = "1s"
"#,
    );
    herd.wait_for("3 runs", |h| runs(h, "tick") >= 3);
    let timer = timer(&herd, "tick");
    assert_eq!(timer["schedule"], "every 1s");
    let last = &timer["last_run"];
    herd.wait_for("the last run to end", |h| {
        !self::timer(h, "tick")["last_run"]["result"].is_null()
    });
    assert!(last["started_ms"].as_i64().unwrap() <= now_ms());
    assert_eq!(
        self::timer(&herd, "tick")["last_run"]["result"],
        "exit code 0"
    );
    assert!(self::timer(&herd, "tick")["next_run_ms"].as_i64().unwrap() > 0);
    // Each run wrote its start; an interval from the end of the last run
    // keeps at least a second between them.
    let ticks: Vec<u128> = lines(&herd.path("ticks"))
        .iter()
        .map(|l| l.parse().expect("nanoseconds"))
        .collect();
    assert!(ticks.len() >= 3, "{ticks:?}");
    for pair in ticks.windows(2) {
        assert!(pair[1] - pair[0] >= 1_000_000_000, "{ticks:?}");
    }
    // Each run is in the events: the firing, the start and the exit.
    let events = events(&herd);
    let count = |kind: &str| {
        events
            .iter()
            .filter(|e| e["type"] == kind && (e["unit"] == "tick" || e["instance"] == "tick"))
            .count()
    };
    assert!(count("timer_fired") >= 3, "{events:?}");
    assert!(count("started") >= 3, "{events:?}");
    assert!(count("exited") >= 3, "{events:?}");
    // The human views.
    let table = herd.ok(&["status"]);
    assert!(
        table.contains("TIMER") && table.contains("every 1s"),
        "{table}"
    );
    // (`status NAME` exits 3: a task is not "running".)
    let block = stdout(&herd.ctl(&["status", "tick"]));
    assert!(
        block.contains("Last run:") && block.contains("Next run:"),
        "{block}"
    );
}

#[test]
fn a_schedule_with_seconds_fires_on_its_seconds() {
    let herd = Herd::start(
        r#"
[task.cron]
command = ["/bin/sh", "-c", "echo run >> $DIR/runs"]
schedule = "*/2 * * * * *"
"#,
    );
    herd.wait_for("2 runs", |h| lines(&h.path("runs")).len() >= 2);
    let timer = timer(&herd, "cron");
    assert_eq!(timer["schedule"], "*/2 * * * * *");
    assert!(timer["runs"].as_u64().unwrap() >= 2);
    let next = timer["next_run_ms"].as_i64().expect("scheduled");
    assert_eq!(next % 2000, 0, "on an even second: {next}");
    assert!(fired(&herd, "cron").iter().all(|o| o == "started (due)"));
}

#[test]
fn overlap_skip_never_starts_a_second_run_while_one_is_going() {
    let herd = Herd::start(
        r#"
[task.slow]
command = ["/bin/sh", "-c", "echo start >> $DIR/log; sleep 1.5; echo end >> $DIR/log"]
every = "500ms"
every_from = "start"
overlap = "skip"
"#,
    );
    herd.wait_for("two runs and a skipped firing", |h| {
        lines(&h.path("log")).iter().filter(|l| *l == "end").count() >= 2
            && fired(h, "slow").iter().any(|o| o.starts_with("skipped"))
    });
    // Runs never overlap: starts and ends alternate.
    let log = lines(&herd.path("log"));
    for (i, line) in log.iter().enumerate() {
        let expected = if i % 2 == 0 { "start" } else { "end" };
        assert_eq!(line, expected, "{log:?}");
    }
}

#[test]
fn a_pool_timer_runs_each_time_as_a_task_of_the_pool() {
    let herd = Herd::start(
        r#"
[pool.io]
size = 1

[task.job]
command = ["/bin/sh", "-c", "echo $HERD_UNIT-$HERD_POOL >> $DIR/runs"]
every = "1s"
pool = "io"
"#,
    );
    herd.wait_for("a pool run", |h| {
        self::timer(h, "job")["last_run"]["result"] == "exit code 0"
    });
    let tasks: Value = serde_json::from_str(&herd.ok(&["--json", "tasks", "io"])).unwrap();
    let task = &tasks["tasks"][0];
    assert_eq!(task["pool"], "io");
    assert_eq!(task["name"], "job");
    // The task's own process never ran.
    let instance = herd.instance("job");
    assert_eq!(instance["state"], "inactive");
    assert!(instance["last_exit"].is_null());
    assert!(fired(&herd, "job")[0].starts_with("submitted to pool io as task "));
    assert_eq!(timer(&herd, "job")["pool"], "io");
}

#[test]
fn start_runs_a_timer_now_stop_cancels_it_and_autostart_false_does_not_schedule() {
    let herd = Herd::start(
        r#"
[task.yearly]
command = ["/bin/sh", "-c", "echo run >> $DIR/yearly"]
schedule = "@yearly"

[task.manual]
command = ["/bin/sleep", "60"]
every = "1s"
autostart = false
"#,
    );
    assert!(
        timer(&herd, "manual")["next_run_ms"].is_null(),
        "not scheduled"
    );
    let next_year = timer(&herd, "yearly")["next_run_ms"].as_i64().unwrap();
    herd.ok(&["start", "yearly"]);
    herd.wait_for("the run started now", |h| {
        lines(&h.path("yearly")).len() == 1
    });
    herd.wait_for("its result", |h| {
        self::timer(h, "yearly")["last_run"]["result"] == "exit code 0"
    });
    assert_eq!(
        timer(&herd, "yearly")["next_run_ms"].as_i64().unwrap(),
        next_year
    );
    assert!(fired(&herd, "yearly").is_empty(), "a start is not a firing");

    herd.ok(&["start", "manual"]);
    herd.wait_state("manual", "running");
    let pid = herd.pid_of("manual");
    herd.ok(&["stop", "manual"]);
    wait_until("the run to be stopped", || gone(pid));
    herd.wait_for("the stopped run in status", |h| {
        !self::timer(h, "manual")["last_run"]["result"].is_null()
    });
    assert_eq!(timer(&herd, "manual")["runs"], 1);
    assert!(
        timer(&herd, "manual")["next_run_ms"].is_null(),
        "still not scheduled"
    );
}

#[test]
fn a_persistent_timer_catches_up_once_after_herdd_was_down() {
    // One slot, a few seconds from now (UTC, also herdd's zone here),
    // that passes while herdd is down.
    let slot = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(5))
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC);
    let schedule = slot.strftime("%-S %-M %-H %-d %-m *").to_string();
    let mut herd = Herd::configure(&format!(
        r#"
[task.caught]
command = ["/bin/sh", "-c", "echo run >> $DIR/caught"]
schedule = "{schedule}"
persistent = true

[task.missed]
command = ["/bin/sh", "-c", "echo run >> $DIR/missed"]
schedule = "{schedule}"
"#
    ));
    herd.env.push(("TZ".into(), "UTC".into()));
    herd.relaunch();
    // A first run of each, so herdd has a last run to catch up from.
    herd.ok(&["start", "caught", "missed"]);
    herd.wait_for("both first runs to end", |h| {
        ["caught", "missed"]
            .iter()
            .all(|u| !self::timer(h, u)["last_run"]["result"].is_null())
    });
    herd.ok(&["shutdown"]);
    assert_eq!(herd.wait_exit(), 0);
    assert_eq!(
        lines(&herd.path("caught")).len(),
        1,
        "the slot came while herdd was up"
    );
    let slot_ms = slot.timestamp().as_millisecond();
    wait_until("the slot to pass", || now_ms() > slot_ms + 200);

    herd.relaunch();
    herd.wait_for("the missed run", |h| lines(&h.path("caught")).len() == 2);
    assert_eq!(
        fired(&herd, "caught"),
        ["started (missed while herdd was down)"]
    );
    // Only the persistent one, and only once.
    assert_eq!(lines(&herd.path("missed")).len(), 1);
    herd.wait_for("the caught-up run to end", |h| {
        self::timer(h, "caught")["last_run"]["result"] == "exit code 0"
    });
    let timer = timer(&herd, "caught");
    assert_eq!(timer["runs"], 2, "kept across the restart: {timer}");
    assert!(timer["next_run_ms"].as_i64().unwrap() > slot_ms + 300 * 86_400_000);
    assert_eq!(lines(&herd.path("caught")).len(), 2);
}

#[test]
fn timer_config_errors_name_the_key_and_a_bad_reload_changes_nothing() {
    let good = r#"
[pool.io]
size = 1

[task.job]
command = ["/bin/true"]
every = "1h"
"#;
    let herd = Herd::start(good);
    let text = std::fs::read_to_string(&herd.config).unwrap();
    for (bad, error) in [
        (
            "schedule = \"61 * * * *\"",
            "task.job.schedule: invalid cron expression \"61 * * * *\"",
        ),
        ("every = \"0s\"", "task.job.every: must be longer than 0s"),
        (
            "every = \"1h\"\nschedule = \"@daily\"",
            "task.job.every: a task has either `schedule` or `every`, not both",
        ),
        (
            "every = \"1h\"\npool = \"nope\"",
            "task.job.pool: unknown pool `nope` (declare it with [pool.nope])",
        ),
        (
            "every = \"1h\"\noverlap = \"skp\"",
            "task.job.overlap: invalid overlap `skp`",
        ),
    ] {
        std::fs::write(&herd.config, text.replace("every = \"1h\"", bad)).unwrap();
        let check = std::process::Command::new(bin("herdd"))
            .arg("--check-config")
            .arg("--config")
            .arg(&herd.config)
            .output()
            .unwrap();
        assert_ne!(check.status.code(), Some(0));
        let said = stderr(&check) + &stdout(&check);
        let at = format!("{}:", herd.config.display());
        assert!(said.contains(&at) && said.contains(error), "{bad}: {said}");
        let out = herd.ctl(&["reload"]);
        assert_ne!(out.status.code(), Some(0), "{bad}");
        let said = format!("{}{}", stdout(&out), stderr(&out));
        assert!(said.contains(error), "{bad}: {said}");
        assert_eq!(timer(&herd, "job")["schedule"], "every 1h", "{bad}");
    }
    // A good reload takes the new schedule.
    let good = text.replace("every = \"1h\"", "schedule = \"@daily\"\npool = \"io\"");
    std::fs::write(&herd.config, good).unwrap();
    herd.ok(&["reload"]);
    let timer = timer(&herd, "job");
    assert_eq!(timer["schedule"], "@daily");
    assert_eq!(timer["pool"], "io");
    assert_eq!(
        timer["next_run_ms"].as_i64().unwrap() % 60_000,
        0,
        "at a full minute"
    );
}

#[test]
fn a_timer_keeps_its_history_and_its_run_over_daemon_reexec_and_a_crash() {
    let mut herd = Herd::start(
        r#"
[task.job]
command = ["/bin/sh", "-c", "echo start >> $DIR/log; sleep 1; echo end >> $DIR/log"]
every = "1s"
"#,
    );
    // Re-exec while a run goes on: it is carried over, ends once, and the
    // timer counts on from where it was.
    herd.wait_for("a run going on", |h| {
        h.instance("job")["state"] == "running"
    });
    let before = runs(&herd, "job");
    let pid = herd.daemon_pid();
    herd.ok(&["daemon-reexec"]);
    assert_eq!(herd.daemon_pid(), pid);
    assert!(
        runs(&herd, "job") >= before,
        "history kept over the re-exec"
    );
    herd.wait_for("the next run after the re-exec", |h| {
        runs(h, "job") > before
    });
    // A crash: the journal brings the history back.
    herd.wait_for("a run to end", |h| {
        !self::timer(h, "job")["last_run"]["result"].is_null()
    });
    let count = runs(&herd, "job");
    herd.kill_daemon();
    herd.relaunch();
    // The journal is written up to 100 ms after a change: it may not have
    // the latest run, but it has the ones before.
    assert!(
        runs(&herd, "job") + 1 >= count,
        "history kept over the crash"
    );
    herd.wait_for("a run after the crash", |h| runs(h, "job") > count);
    // No two runs ever overlapped: starts and ends alternate (a run cut off
    // by the crash may leave a start without an end, then the next start).
    let log = lines(&herd.path("log"));
    for pair in log.windows(2) {
        assert!(!(pair[0] == "end" && pair[1] == "end"), "{log:?}");
    }
}
