//! Timers on the fake clocks: the monotonic clock of the harness and a wall
//! clock the tests set (and jump). Time zones with DST come from POSIX TZ
//! strings, so no zone database is read.

use super::*;
use herd_config::{EveryFrom, Overlap, TimerConfig, TimerSchedule};
use jiff::civil::{date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Central Europe: CET, CEST from the last Sunday of March 02:00 to the
/// last Sunday of October 03:00.
const CET: &str = "CET-1CEST,M3.5.0,M10.5.0/3";

fn cron(expression: &str) -> TimerSchedule {
    TimerSchedule::Cron {
        expression: expression.into(),
        cron: Box::new(herd_config::parse_cron(expression).expect("valid")),
    }
}

fn every(interval: Duration, from: EveryFrom) -> TimerSchedule {
    TimerSchedule::Every { interval, from }
}

fn timed(name: &str, when: TimerSchedule, overlap: Overlap, pool: Option<&str>) -> UnitConfig {
    UnitConfig {
        timer: Some(TimerConfig {
            when,
            overlap,
            pool: pool.map(str::to_string),
            persistent: false,
        }),
        ..task(name)
    }
}

/// A harness whose wall clock reads `local` in `zone`.
fn at(units: Vec<UnitConfig>, zone: &TimeZone, local: DateTime) -> Harness {
    let mut h = Harness::with_pools(units, vec![task_pool("p", 4)]);
    h.core.set_time_zone(zone.clone());
    let wall = zone.to_ambiguous_timestamp(local).compatible().unwrap();
    h.core.set_wall_clock(h.now, wall);
    h
}

fn wall(h: &Harness) -> Timestamp {
    h.core.clock.at(h.now)
}

/// Sets the wall clock to `to` (the monotonic clock does not move).
fn jump(h: &mut Harness, to: Timestamp) {
    h.core.set_wall_clock(h.now, to);
}

/// Moves both clocks from deadline to deadline until the wall clock passes
/// `until`; each run of unit `name` ends `run` after it started. Returns
/// the wall times the runs started at.
fn run_until(h: &mut Harness, name: &str, run: Duration, until: Timestamp) -> Vec<Timestamp> {
    let mut started = Vec::new();
    let mut ends: Vec<(Instant, u32)> = Vec::new();
    for _ in 0..100_000 {
        let next_end = ends.iter().map(|(at, _)| *at).min();
        let next = [h.core.next_deadline(), next_end]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { break };
        if h.core.clock.at(next) > until {
            break;
        }
        h.now = next.max(h.now);
        let actions = match ends.iter().position(|(at, _)| *at <= h.now) {
            Some(i) => {
                let (_, pid) = ends.remove(i);
                h.feed(Input::Exited {
                    pid,
                    exit: Exit::Code(0),
                })
            }
            None => h.feed(Input::Tick),
        };
        if spawns(&actions).iter().any(|(id, _)| id.unit == name) {
            started.push(wall(h));
            let pid = h.instance(name).pid.expect("spawned");
            ends.push((h.now + run, pid));
        }
    }
    // Both clocks end at `until`.
    if let Ok(left) = Duration::try_from(until.duration_since(wall(h))) {
        h.now += left;
    }
    started
}

/// `h:m` on 2026-06-01, UTC: the clock-jump tests' wall times.
fn june_first_utc(h: i8, m: i8) -> Timestamp {
    date(2026, 6, 1)
        .at(h, m, 0, 0)
        .to_zoned(TimeZone::UTC)
        .unwrap()
        .timestamp()
}

fn local(zone: &TimeZone, times: &[Timestamp]) -> Vec<String> {
    times
        .iter()
        .map(|t| {
            t.to_zoned(zone.clone())
                .strftime("%m-%d %H:%M %Z")
                .to_string()
        })
        .collect()
}

fn timer_of(h: &mut Harness, name: &str) -> herd_common::protocol::TimerStatus {
    h.status()
        .units
        .into_iter()
        .find(|u| u.name == name)
        .and_then(|u| u.timer)
        .expect("a timer")
}

#[test]
fn a_daily_run_in_the_hour_dst_skips_runs_once_after_the_change() {
    let zone = TimeZone::posix(CET).unwrap();
    let units = vec![timed("job", cron("30 2 * * *"), Overlap::Skip, None)];
    let mut h = at(units, &zone, date(2026, 3, 28).at(12, 0, 0, 0));
    h.boot();
    let end = date(2026, 3, 31)
        .at(0, 0, 0, 0)
        .to_zoned(zone.clone())
        .unwrap();
    let runs = run_until(&mut h, "job", 10 * MS, end.timestamp());
    // 02:30 does not exist on the 29th: it runs at 03:30 CEST, once.
    assert_eq!(
        local(&zone, &runs),
        ["03-29 03:30 CEST", "03-30 02:30 CEST"],
    );
}

#[test]
fn a_daily_run_in_the_hour_dst_repeats_runs_once() {
    let zone = TimeZone::posix(CET).unwrap();
    let units = vec![timed("job", cron("30 2 * * *"), Overlap::Skip, None)];
    let mut h = at(units, &zone, date(2026, 10, 24).at(12, 0, 0, 0));
    h.boot();
    let end = date(2026, 10, 27)
        .at(0, 0, 0, 0)
        .to_zoned(zone.clone())
        .unwrap();
    let runs = run_until(&mut h, "job", 10 * MS, end.timestamp());
    // 02:30 happens twice on the 25th (CEST, then CET): it runs the first time only.
    assert_eq!(local(&zone, &runs), ["10-25 02:30 CEST", "10-26 02:30 CET"],);
}

#[test]
fn every_quarter_hour_keeps_its_pace_when_the_clocks_spring_forward() {
    let zone = TimeZone::posix(CET).unwrap();
    let units = vec![timed("job", cron("*/15 * * * *"), Overlap::Skip, None)];
    let mut h = at(units, &zone, date(2026, 3, 29).at(1, 0, 0, 0));
    h.boot();
    let end = date(2026, 3, 29)
        .at(4, 0, 0, 0)
        .to_zoned(zone.clone())
        .unwrap();
    let runs = run_until(&mut h, "job", 10 * MS, end.timestamp());
    assert_eq!(
        local(&zone, &runs),
        [
            "03-29 01:15 CET",
            "03-29 01:30 CET",
            "03-29 01:45 CET",
            // The skipped hour's first slot, 02:00, runs at 03:00; the rest
            // of that hour never comes.
            "03-29 03:00 CEST",
            "03-29 03:15 CEST",
            "03-29 03:30 CEST",
            "03-29 03:45 CEST",
            "03-29 04:00 CEST",
        ],
    );
    for pair in runs.windows(2) {
        assert_eq!(pair[1].duration_since(pair[0]).as_secs(), 15 * 60);
    }
}

#[test]
fn every_quarter_hour_runs_each_local_time_once_when_the_clocks_fall_back() {
    let zone = TimeZone::posix(CET).unwrap();
    let units = vec![timed("job", cron("*/15 * * * *"), Overlap::Skip, None)];
    let mut h = at(units, &zone, date(2026, 10, 25).at(1, 50, 0, 0));
    h.boot();
    let end = date(2026, 10, 25)
        .at(3, 20, 0, 0)
        .to_zoned(zone.clone())
        .unwrap();
    let runs = run_until(&mut h, "job", 10 * MS, end.timestamp());
    assert_eq!(
        local(&zone, &runs),
        [
            "10-25 02:00 CEST",
            "10-25 02:15 CEST",
            "10-25 02:30 CEST",
            "10-25 02:45 CEST",
            // 02:00 to 02:59 CET repeat local times already run.
            "10-25 03:00 CET",
            "10-25 03:15 CET",
        ],
    );
}

#[test]
fn a_clock_set_back_does_not_run_a_slot_again() {
    let zone = TimeZone::UTC;
    let units = vec![timed("job", cron("*/15 * * * *"), Overlap::Skip, None)];
    let mut h = at(units, &zone, date(2026, 6, 1).at(9, 55, 0, 0));
    h.boot();
    let mut runs = run_until(&mut h, "job", 10 * MS, june_first_utc(10, 20));
    assert_eq!(local(&zone, &runs), ["06-01 10:00 UTC", "06-01 10:15 UTC"]);
    jump(&mut h, june_first_utc(9, 20));
    runs.extend(run_until(&mut h, "job", 10 * MS, june_first_utc(10, 50)));
    assert_eq!(
        local(&zone, &runs),
        [
            "06-01 10:00 UTC",
            "06-01 10:15 UTC",
            // Not 09:30 to 10:15 again.
            "06-01 10:30 UTC",
            "06-01 10:45 UTC",
        ],
    );
}

#[test]
fn a_clock_set_forward_runs_the_jumped_slots_once() {
    let zone = TimeZone::UTC;
    let units = vec![timed("job", cron("*/15 * * * *"), Overlap::Skip, None)];
    let mut h = at(units, &zone, date(2026, 6, 1).at(9, 55, 0, 0));
    h.boot();
    let mut runs = run_until(&mut h, "job", 10 * MS, june_first_utc(10, 20));
    jump(&mut h, june_first_utc(12, 20));
    runs.extend(run_until(&mut h, "job", 10 * MS, june_first_utc(13, 0)));
    assert_eq!(
        local(&zone, &runs),
        [
            "06-01 10:00 UTC",
            "06-01 10:15 UTC",
            // 10:30 came due (late) with the clock at 12:30: one run for
            // the jumped slots, then the schedule goes on.
            "06-01 12:30 UTC",
            "06-01 12:45 UTC",
            "06-01 13:00 UTC",
        ],
    );
}

#[test]
fn told_of_a_clock_set_forward_the_jumped_slots_run_once_at_once() {
    let zone = TimeZone::UTC;
    let units = vec![timed("job", cron("*/15 * * * *"), Overlap::Skip, None)];
    let mut h = at(units, &zone, date(2026, 6, 1).at(9, 55, 0, 0));
    h.boot();
    let mut runs = run_until(&mut h, "job", 10 * MS, june_first_utc(10, 20));
    jump(&mut h, june_first_utc(12, 20));
    let now = h.now;
    h.core.clock_changed(now);
    assert_eq!(h.core.next_deadline(), Some(now), "10:30 is due now");
    runs.extend(run_until(&mut h, "job", 10 * MS, june_first_utc(12, 50)));
    assert_eq!(
        local(&zone, &runs),
        [
            "06-01 10:00 UTC",
            "06-01 10:15 UTC",
            "06-01 12:20 UTC",
            "06-01 12:30 UTC",
            "06-01 12:45 UTC",
        ],
    );
}

#[test]
fn told_of_a_clock_set_back_a_slot_waits_for_its_time() {
    let zone = TimeZone::UTC;
    let units = vec![timed("job", cron("0 * * * *"), Overlap::Skip, None)];
    let mut h = at(units, &zone, date(2026, 6, 1).at(9, 55, 0, 0));
    h.boot();
    assert_eq!(h.core.next_deadline(), Some(h.now + 300 * SECOND));
    let back = date(2026, 6, 1)
        .at(8, 55, 0, 0)
        .to_zoned(TimeZone::UTC)
        .unwrap();
    jump(&mut h, back.timestamp());
    let now = h.now;
    h.core.clock_changed(now);
    assert_eq!(
        h.core.next_deadline(),
        Some(now + 3900 * SECOND),
        "10:00, not 9:00"
    );
}

#[test]
fn every_counts_from_the_end_of_the_last_run_or_from_its_start() {
    let zone = TimeZone::UTC;
    let start = date(2026, 6, 1).at(0, 0, 0, 0);
    let second = |s: i64| {
        let t0 = start.to_zoned(TimeZone::UTC).unwrap().timestamp();
        t0.checked_add(jiff::SignedDuration::from_secs(s)).unwrap()
    };
    let from_end = vec![timed(
        "job",
        every(10 * SECOND, EveryFrom::End),
        Overlap::Skip,
        None,
    )];
    let mut h = at(from_end, &zone, start);
    h.boot();
    let runs = run_until(&mut h, "job", 3 * SECOND, second(40));
    assert_eq!(runs, [second(10), second(23), second(36)]);

    let from_start = vec![timed(
        "job",
        every(10 * SECOND, EveryFrom::Start),
        Overlap::Skip,
        None,
    )];
    let mut h = at(from_start, &zone, start);
    h.boot();
    let runs = run_until(&mut h, "job", 3 * SECOND, second(40));
    assert_eq!(runs, [second(10), second(20), second(30), second(40)]);
}

const SECOND: Duration = Duration::from_secs(1);

fn fired(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Publish(Lifecycle::TimerFired { outcome, .. }) => Some(outcome.clone()),
            _ => None,
        })
        .collect()
}

/// `every 1s from the start` with runs of 2.5 s, under `overlap`: the
/// outcomes of the firings at 1, 2, 3 and 4 s (the run ends at 3.5 s).
fn overlapping(overlap: Overlap) -> (Vec<String>, usize) {
    let units = vec![timed("job", every(SECOND, EveryFrom::Start), overlap, None)];
    let mut h = at(units, &TimeZone::UTC, date(2026, 6, 1).at(0, 0, 0, 0));
    h.boot();
    let mut outcomes = fired(&h.advance(SECOND));
    let mut spawned = 1;
    outcomes.extend(fired(&h.advance(SECOND)));
    outcomes.extend(fired(&h.advance(SECOND)));
    h.now += 500 * MS;
    let actions = h.exit("job", Exit::Code(0));
    spawned += spawns(&actions).len();
    outcomes.extend(fired(&actions));
    let actions = h.advance(500 * MS);
    spawned += spawns(&actions).len();
    outcomes.extend(fired(&actions));
    (outcomes, spawned)
}

#[test]
fn overlap_skip_drops_firings_while_a_run_goes_on() {
    let (outcomes, spawned) = overlapping(Overlap::Skip);
    assert_eq!(
        outcomes,
        [
            "started (due)",
            "skipped: the previous run is still going",
            "skipped: the previous run is still going",
            "started (due)",
        ]
    );
    assert_eq!(spawned, 2);
}

#[test]
fn overlap_queue_runs_once_more_when_the_run_ends() {
    let (outcomes, spawned) = overlapping(Overlap::Queue);
    assert_eq!(
        outcomes,
        [
            "started (due)",
            "queued: the previous run is still going",
            "queued: the previous run is still going",
            // At the end of the first run: one run for both queued firings
            // (the next firing is due a second after it started).
            "started (queued)",
        ]
    );
    assert_eq!(spawned, 2);
}

#[test]
fn a_pool_timer_submits_tasks_and_allow_lets_them_overlap() {
    let units = vec![timed(
        "job",
        every(SECOND, EveryFrom::Start),
        Overlap::Allow,
        Some("p"),
    )];
    let mut h = at(units, &TimeZone::UTC, date(2026, 6, 1).at(0, 0, 0, 0));
    assert!(spawns(&h.boot()).is_empty());
    let first = h.advance(SECOND);
    let second = h.advance(SECOND);
    assert_eq!(task_spawns(&first), [1]);
    assert_eq!(task_spawns(&second), [2], "the first still runs: allowed");
    assert!(
        spawns(&second).is_empty(),
        "the task's own process never runs"
    );
    let timer = timer_of(&mut h, "job");
    assert_eq!(timer.runs, 2);
    assert_eq!(timer.pool.as_deref(), Some("p"));
    // `stop` cancels both runs.
    let (_, actions) = h.request(Request::Stop {
        names: names(&["job"]),
        wait: false,
    });
    assert_eq!(signals(&actions).len(), 2, "{actions:?}");
}

#[test]
fn start_runs_a_timer_now_and_autostart_false_never_schedules() {
    let units = vec![UnitConfig {
        autostart: false,
        ..timed("job", cron("* * * * * *"), Overlap::Skip, None)
    }];
    let mut h = at(units, &TimeZone::UTC, date(2026, 6, 1).at(0, 0, 0, 0));
    assert!(spawns(&h.boot()).is_empty());
    assert_eq!(h.core.next_deadline(), None, "not scheduled");
    assert_eq!(timer_of(&mut h, "job").next_run_ms, None);
    let (_, actions) = h.request(Request::Start {
        names: names(&["job"]),
        wait: false,
    });
    assert_eq!(spawns(&actions).len(), 1);
    h.now += 2 * SECOND;
    h.exit("job", Exit::Code(3));
    let timer = timer_of(&mut h, "job");
    let last = timer.last_run.expect("the run is recorded");
    assert_eq!(
        last.result.as_deref(),
        Some("failed: task ended with exit code 3")
    );
    assert_eq!(timer.runs, 1);
    assert_eq!(h.core.next_deadline(), None, "still not scheduled");
}

#[test]
fn status_tells_the_next_run_in_wall_time() {
    let units = vec![timed("job", cron("0 */5 * * * *"), Overlap::Skip, None)];
    let mut h = at(units, &TimeZone::UTC, date(2026, 6, 1).at(10, 1, 0, 0));
    h.boot();
    let next = timer_of(&mut h, "job").next_run_ms.expect("scheduled");
    let expected = date(2026, 6, 1)
        .at(10, 5, 0, 0)
        .to_zoned(TimeZone::UTC)
        .unwrap();
    assert_eq!(next, expected.timestamp().as_millisecond());
    assert_eq!(h.core.next_deadline(), Some(h.now + 240 * SECOND));
}

/// A `persistent` timer whose last run was a day ago, restored at boot.
fn restarted(persistent: bool, when: TimerSchedule) -> Vec<Action> {
    let mut unit = timed("job", when, Overlap::Skip, None);
    if let Some(timer) = &mut unit.timer {
        timer.persistent = persistent;
    }
    let mut h = at(vec![unit], &TimeZone::UTC, date(2026, 6, 2).at(12, 0, 0, 0));
    let day_ago = date(2026, 6, 1)
        .at(12, 0, 0, 0)
        .to_zoned(TimeZone::UTC)
        .unwrap();
    let saved = timer::TimerSnapshot {
        unit: "job".into(),
        last_run: Some(timer::Run {
            started_ms: day_ago.timestamp().as_millisecond(),
            ended_ms: Some(day_ago.timestamp().as_millisecond() + 1000),
            result: Some("exit code 0".into()),
        }),
        runs: 1,
        last_slot: None,
        running: false,
        tasks: vec![],
        queued: false,
        deadline_in_ms: None,
    };
    let now = h.now;
    h.core.restore_timers(now, &[saved], false);
    h.boot()
}

#[test]
fn persistent_timers_catch_up_once_at_boot() {
    // 03:00 passed while herdd was down.
    let actions = restarted(true, cron("0 3 * * *"));
    assert_eq!(spawns(&actions).len(), 1);
    assert_eq!(fired(&actions), ["started (missed while herdd was down)"]);
    assert!(spawns(&restarted(false, cron("0 3 * * *"))).is_empty());
    let actions = restarted(true, every(Duration::from_secs(3600), EveryFrom::End));
    assert_eq!(spawns(&actions).len(), 1);
    // Not due yet: the last run ended a day ago, the interval is two days.
    let actions = restarted(true, every(Duration::from_secs(2 * 86400), EveryFrom::End));
    assert!(spawns(&actions).is_empty());
}

#[test]
fn a_timer_keeps_its_last_run_over_a_snapshot() {
    let units = vec![timed(
        "job",
        every(SECOND, EveryFrom::End),
        Overlap::Skip,
        None,
    )];
    let mut h = at(
        units.clone(),
        &TimeZone::UTC,
        date(2026, 6, 1).at(0, 0, 0, 0),
    );
    h.boot();
    h.advance(SECOND);
    let snapshot = h.core.snapshot(h.now, true);
    let config = test_config(units, vec![task_pool("p", 4)], vec![], vec![]);
    let mut restored = Supervisor::restore(&config, &snapshot, h.now, false);
    let status = restored.handle(
        h.now,
        Input::Request {
            id: 1,
            client: 1,
            request: Request::Status {
                names: vec![],
                usage: true,
            },
        },
    );
    let Some(Reply::Ok(payload)) = reply_to(1, &status) else {
        panic!("status");
    };
    let report: StatusReport = serde_json::from_value(payload).unwrap();
    let timer = report.units[0].timer.clone().unwrap();
    assert_eq!(timer.runs, 1);
    assert_eq!(timer.last_run.unwrap().result, None, "still running");
    // The run ends in the new image: the timer sees it and schedules the next.
    let pid = report.units[0].instances[0].pid.unwrap();
    restored.handle(
        h.now,
        Input::Exited {
            pid,
            exit: Exit::Code(0),
        },
    );
    assert_eq!(restored.next_deadline(), Some(h.now + SECOND));
}

#[test]
fn a_persistent_interval_carried_over_a_restart_runs_once_at_its_deadline() {
    let mut unit = timed("job", every(SECOND, EveryFrom::End), Overlap::Skip, None);
    if let Some(timer) = &mut unit.timer {
        timer.persistent = true;
    }
    let units = vec![unit];
    let mut h = at(
        units.clone(),
        &TimeZone::UTC,
        date(2026, 6, 1).at(0, 0, 0, 0),
    );
    h.boot();
    h.advance(SECOND);
    h.now += 100 * MS;
    h.exit("job", Exit::Code(0));
    // The journal: next run due in 1 s. herdd comes back 5 s later.
    let snapshot = h.core.snapshot(h.now, false);
    let later = h.now + 5 * SECOND;
    let config = test_config(units, vec![task_pool("p", 4)], vec![], vec![]);
    let mut core = Supervisor::restore(&config, &snapshot, later, true);
    core.set_wall_clock(later, h.core.clock.at(later));
    let spawned = std::cell::Cell::new(0);
    let answer = |action: Action| match action {
        Action::Spawn { owner, .. } => {
            spawned.set(spawned.get() + 1);
            Some(Input::Spawned { owner, pid: 7000 })
        }
        _ => None,
    };
    core.drive(later, Input::Boot, answer);
    assert_eq!(
        spawned.get(),
        0,
        "the carried deadline is not caught up at boot"
    );
    assert_eq!(core.next_deadline(), Some(later + SECOND));
    core.drive(later + SECOND, Input::Tick, answer);
    assert_eq!(
        spawned.get(),
        1,
        "one run, at the carried deadline; no catch-up besides"
    );
}
