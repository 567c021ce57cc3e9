//! Timers: tasks that run on a `schedule` (cron, local time) or `every`
//! interval. The next firing is a deadline like any other: the shell wakes
//! the core when it passes ([`super::Supervisor::next_deadline`]), nothing
//! polls.
//!
//! Wall-clock time is an input: the shell tells the core what the clock
//! says ([`super::Supervisor::set_wall_clock`]) and which time zone is
//! local ([`super::Supervisor::set_time_zone`]); the core never reads a
//! clock. A cron slot is a local time; its deadline is "now" plus the wall
//! time left until it, checked again when the deadline passes:
//! - a clock set back (or a drifting monotonic clock) makes the deadline
//!   come early: the slot is not due yet, so the deadline is moved, and
//!   no slot already run is run again (slots only move forward);
//! - a clock set forward makes the slot come late: it runs once then, and
//!   the slots jumped over are folded into that run, not run one by one
//!   (the shell says when the clock was set, [`super::Supervisor::clock_changed`],
//!   so that run comes at once);
//! - a local time that a DST change skips runs at the same offset after
//!   the change (02:30 runs at 03:30), once; a local time that happens
//!   twice runs on its first occurrence only.
//!
//! How the supervisor fires them and follows their runs is in `timer_runs.rs`.

use herd_common::protocol::{TaskId, TimerRun, TimerStatus};
use herd_config::{EveryFrom, TimerConfig, TimerSchedule};
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The wall clock as the shell last read it, and the local time zone.
#[derive(Debug, Clone)]
pub struct WallClock {
    /// A moment on the monotonic clock and what the wall clock said then.
    pub(super) reading: Option<(Instant, Timestamp)>,
    pub(super) zone: TimeZone,
}

impl Default for WallClock {
    fn default() -> Self {
        WallClock {
            reading: None,
            zone: TimeZone::UTC,
        }
    }
}

impl WallClock {
    /// The wall time at `now`, from the last reading (the Unix epoch if the
    /// shell never said).
    pub fn at(&self, now: Instant) -> Timestamp {
        let Some((then, wall)) = self.reading else {
            return Timestamp::UNIX_EPOCH;
        };
        let elapsed = if now >= then {
            SignedDuration::try_from(now - then).unwrap_or(SignedDuration::MAX)
        } else {
            -SignedDuration::try_from(then - now).unwrap_or(SignedDuration::MAX)
        };
        wall.checked_add(elapsed).unwrap_or(wall)
    }

    /// The monotonic moment the wall clock reaches `wall`, seen from `now`.
    pub(super) fn instant_of(&self, now: Instant, wall: Timestamp) -> Instant {
        let left = wall.duration_since(self.at(now));
        let left = Duration::try_from(left).unwrap_or(Duration::ZERO);
        now.checked_add(left).unwrap_or(now)
    }

    fn local(&self, wall: Timestamp) -> DateTime {
        self.zone.to_datetime(wall)
    }
}

/// One run of a timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    /// `exited 0`, `failed: ...`, `stopped`; none while it runs.
    pub result: Option<String>,
}

/// A cron slot: a local time and the moment it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    local: DateTime,
    pub(super) at: Timestamp,
}

/// The timer of one task.
#[derive(Debug, Clone)]
pub struct Timer {
    pub config: TimerConfig,
    /// `autostart`: false leaves it unscheduled (`herdctl start` still runs it).
    pub enabled: bool,
    /// When it fires next.
    pub deadline: Option<Instant>,
    /// Cron: the slot `deadline` stands for.
    pub(super) slot: Option<Slot>,
    /// Cron: the latest local time run, so none is run twice.
    pub(super) last_slot: Option<DateTime>,
    pub last_run: Option<Run>,
    pub runs: u64,
    /// The task's own process runs (as last seen).
    pub running: bool,
    /// Pool runs not ended yet.
    pub tasks: Vec<TaskId>,
    /// A run waits for the current one to end (`overlap = "queue"`).
    pub queued: bool,
}

impl Timer {
    pub fn new(config: TimerConfig, enabled: bool) -> Timer {
        Timer {
            config,
            enabled,
            deadline: None,
            slot: None,
            last_slot: None,
            last_run: None,
            runs: 0,
            running: false,
            tasks: Vec::new(),
            queued: false,
        }
    }

    /// Schedules the next firing from `now` (a fresh start, a reload).
    pub fn arm(&mut self, now: Instant, clock: &WallClock) {
        self.deadline = None;
        self.slot = None;
        if !self.enabled {
            return;
        }
        match &self.config.when {
            TimerSchedule::Cron { .. } => self.arm_slot(now, clock),
            TimerSchedule::Every { interval, .. } => self.deadline = Some(now + *interval),
        }
    }

    fn arm_slot(&mut self, now: Instant, clock: &WallClock) {
        let wall = clock.at(now);
        self.slot = self.next_slot(wall, clock);
        self.deadline = self.slot.map(|slot| clock.instant_of(now, slot.at));
    }

    /// The first local time of the schedule after both the clock's `wall`
    /// and the last slot run.
    fn next_slot(&self, wall: Timestamp, clock: &WallClock) -> Option<Slot> {
        let TimerSchedule::Cron { cron, .. } = &self.config.when else {
            return None;
        };
        let local_now = clock.local(wall);
        let from = self.last_slot.map_or(local_now, |last| last.max(local_now));
        let local = cron.find_next_occurrence(&from, false).ok()?;
        // Compatible: a skipped local time maps past the gap, a repeated one
        // to its first occurrence.
        let at = clock.zone.to_ambiguous_timestamp(local).compatible().ok()?;
        Some(Slot { local, at })
    }

    /// The deadline passed: whether it is time to run. A cron slot the wall
    /// clock has not reached yet (the clock went back) is waited for again.
    pub fn on_deadline(&mut self, now: Instant, clock: &WallClock) -> bool {
        match &self.config.when {
            // From the start: the next firing is due an interval after
            // this one, run or not; from the end, once the run has ended.
            TimerSchedule::Every { interval, from } => {
                self.deadline = match from {
                    EveryFrom::Start => Some(now + *interval),
                    EveryFrom::End => None,
                };
                true
            }
            TimerSchedule::Cron { .. } => {
                let Some(slot) = self.slot else {
                    self.arm_slot(now, clock);
                    return false;
                };
                let wall = clock.at(now);
                if wall < slot.at {
                    self.deadline = Some(clock.instant_of(now, slot.at));
                    return false;
                }
                self.last_slot = Some(self.last_slot.map_or(slot.local, |l| l.max(slot.local)));
                self.arm_slot(now, clock);
                true
            }
        }
    }

    /// A run began at `now`.
    pub(super) fn started(&mut self, now: Instant, clock: &WallClock) {
        self.runs += 1;
        self.last_run = Some(Run {
            started_ms: clock.at(now).as_millisecond(),
            ended_ms: None,
            result: None,
        });
        if let TimerSchedule::Every {
            interval,
            from: EveryFrom::Start,
        } = self.config.when
        {
            if self.enabled {
                self.deadline = Some(now + interval);
            }
        }
    }

    /// The run ended at `now` with `result`.
    pub(super) fn ended(&mut self, now: Instant, clock: &WallClock, result: String) {
        if let Some(run) = &mut self.last_run {
            run.ended_ms = Some(clock.at(now).as_millisecond());
            run.result = Some(result);
        }
        if let TimerSchedule::Every {
            interval,
            from: EveryFrom::End,
        } = self.config.when
        {
            if self.enabled {
                self.deadline = Some(now + interval);
            }
        }
    }

    /// `persistent`: whether a run came due while herdd was down (after
    /// the last run it knows of, before `now`).
    pub(super) fn missed_run(&self, now: Instant, clock: &WallClock) -> bool {
        let Some(last) = self.last_run.as_ref().filter(|_| self.config.persistent) else {
            return false;
        };
        let Ok(started) = Timestamp::from_millisecond(last.started_ms) else {
            return false;
        };
        let wall = clock.at(now);
        match &self.config.when {
            TimerSchedule::Every { interval, from } => {
                let base = match (from, last.ended_ms) {
                    (EveryFrom::End, Some(ended)) => {
                        Timestamp::from_millisecond(ended).unwrap_or(started)
                    }
                    (EveryFrom::End, None) | (EveryFrom::Start, _) => started,
                };
                let interval = SignedDuration::try_from(*interval).unwrap_or(SignedDuration::MAX);
                base.checked_add(interval).is_ok_and(|due| due <= wall)
            }
            TimerSchedule::Cron { .. } => {
                let probe = Timer {
                    last_slot: Some(clock.local(started)),
                    ..self.clone()
                };
                probe
                    .next_slot(started, clock)
                    .is_some_and(|slot| slot.at <= wall)
            }
        }
    }

    pub fn status(&self, now: Instant, clock: &WallClock) -> TimerStatus {
        let schedule = match &self.config.when {
            TimerSchedule::Cron { expression, .. } => expression.clone(),
            TimerSchedule::Every { interval, from } => {
                let every = format!("every {}", humantime::format_duration(*interval));
                match from {
                    EveryFrom::End => every,
                    EveryFrom::Start => format!("{every} from the start"),
                }
            }
        };
        let next_run_ms = match (self.slot, self.deadline) {
            (Some(slot), Some(_)) => Some(slot.at.as_millisecond()),
            (None, Some(deadline)) => {
                let left = deadline.saturating_duration_since(now);
                let left = SignedDuration::try_from(left).unwrap_or(SignedDuration::MAX);
                Some(
                    clock
                        .at(now)
                        .saturating_add(left)
                        .map_or(i64::MAX, |t| t.as_millisecond()),
                )
            }
            (_, None) => None,
        };
        TimerStatus {
            schedule,
            next_run_ms,
            last_run: self.last_run.as_ref().map(|run| TimerRun {
                started_ms: run.started_ms,
                result: run.result.clone(),
            }),
            runs: self.runs,
            pool: self.config.pool.clone(),
            queued: self.queued,
        }
    }
}

/// What a timer keeps across a restart of herdd (`<state_dir>/timers.json`)
/// and a re-exec or crash (the journal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimerSnapshot {
    pub unit: String,
    pub last_run: Option<Run>,
    #[serde(default)]
    pub runs: u64,
    /// The latest local time run (`2026-12-07T16:15:00`).
    #[serde(default)]
    pub last_slot: Option<String>,
    /// Only in a re-exec or crash snapshot: what was under way.
    #[serde(default)]
    pub running: bool,
    #[serde(default)]
    pub tasks: Vec<TaskId>,
    #[serde(default)]
    pub queued: bool,
    #[serde(default)]
    pub deadline_in_ms: Option<u64>,
}
