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
//!   (the shell says when the clock was set, [`Supervisor::clock_changed`],
//!   so that run comes at once);
//! - a local time that a DST change skips runs at the same offset after
//!   the change (02:30 runs at 03:30), once; a local time that happens
//!   twice runs on its first occurrence only.

use super::lifecycle::Lifecycle;
use super::snapshot::{after, until};
use super::{Action, InstanceId, Supervisor};
use herd_common::protocol::{Reply, SubmitOptions, TaskId, TimerRun, TimerStatus};
use herd_common::state::State;
use herd_config::{EveryFrom, Overlap, TimerConfig, TimerSchedule};
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The wall clock as the shell last read it, and the local time zone.
#[derive(Debug, Clone)]
pub struct WallClock {
    /// A moment on the monotonic clock and what the wall clock said then.
    reading: Option<(Instant, Timestamp)>,
    zone: TimeZone,
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
    fn instant_of(&self, now: Instant, wall: Timestamp) -> Instant {
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
struct Slot {
    local: DateTime,
    at: Timestamp,
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
    slot: Option<Slot>,
    /// Cron: the latest local time run, so none is run twice.
    last_slot: Option<DateTime>,
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
    fn started(&mut self, now: Instant, clock: &WallClock) {
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
    fn ended(&mut self, now: Instant, clock: &WallClock, result: String) {
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
    fn missed_run(&self, now: Instant, clock: &WallClock) -> bool {
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

/// How a firing or `herdctl start` ends.
enum Fired {
    Started,
    Submitted(TaskId),
    Queued,
    Skipped,
    Refused(String),
}

impl Supervisor {
    /// What the wall clock says at `now` (the shell calls this before it
    /// hands the core an input).
    pub fn set_wall_clock(&mut self, now: Instant, wall: Timestamp) {
        self.clock.reading = Some((now, wall));
    }

    /// The local time zone that `schedule`s are read in.
    pub fn set_time_zone(&mut self, zone: TimeZone) {
        self.clock.zone = zone;
    }

    /// The wall clock was set (the shell's word, after a new
    /// [`Supervisor::set_wall_clock`]): each cron slot's deadline follows
    /// it. A slot the clock jumped past is due now (it runs once, at the
    /// next tick); one it moved away from is waited for.
    pub fn clock_changed(&mut self, now: Instant) {
        let clock = self.clock.clone();
        for timer in self.timers.values_mut() {
            if let (Some(slot), Some(_)) = (timer.slot, timer.deadline) {
                timer.deadline = Some(clock.instant_of(now, slot.at));
            }
        }
    }

    /// The earliest timer; none while shutting down (nothing would run).
    pub(super) fn next_timer_deadline(&self) -> Option<Instant> {
        if self.shutdown.is_some() {
            return None;
        }
        self.timers.values().filter_map(|t| t.deadline).min()
    }

    pub(super) fn timer_status(&self, now: Instant, unit: &str) -> Option<TimerStatus> {
        Some(self.timers.get(unit)?.status(now, &self.clock))
    }

    /// Whether `unit` runs as tasks of a pool (its own instance never runs).
    pub(super) fn runs_in_pool(&self, unit: &str) -> bool {
        self.timers
            .get(unit)
            .is_some_and(|t| t.config.pool.is_some())
    }

    /// Boot: schedules every timer, and runs once now those `persistent`
    /// ones that missed a run while herdd was down.
    pub(super) fn boot_timers(&mut self, now: Instant, out: &mut Vec<Action>) {
        let names: Vec<String> = self.timers.keys().cloned().collect();
        for name in names {
            let clock = self.clock.clone();
            let timer = self.timers.get_mut(&name).expect("listed above");
            // An `every` deadline carried over a re-exec or a crash already
            // says when the next run is due: nothing to catch up.
            let carried = timer.deadline.is_some();
            if !carried {
                timer.arm(now, &clock);
            }
            if timer.enabled && !carried && timer.missed_run(now, &clock) {
                self.fire(now, &name, "missed while herdd was down", out);
            }
        }
    }

    /// Fires every timer whose deadline passed.
    pub(super) fn tick_timers(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.shutdown.is_some() {
            return;
        }
        let due: Vec<String> = self
            .timers
            .iter()
            .filter(|(_, t)| t.deadline.is_some_and(|d| d <= now))
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            let clock = self.clock.clone();
            let Some(timer) = self.timers.get_mut(&name) else {
                continue;
            };
            if timer.on_deadline(now, &clock) {
                self.fire(now, &name, "due", out);
            }
        }
    }

    /// A run, now: by the timer (`why` says why) or by `herdctl start`.
    pub(super) fn fire(&mut self, now: Instant, name: &str, why: &str, out: &mut Vec<Action>) {
        let outcome = match self.fire_run(now, name, out) {
            Fired::Started => format!("started ({why})"),
            Fired::Submitted(id) => {
                let pool = self.timers[name].config.pool.clone().unwrap_or_default();
                format!("submitted to pool {pool} as task {id} ({why})")
            }
            Fired::Queued => "queued: the previous run is still going".to_string(),
            Fired::Skipped => "skipped: the previous run is still going".to_string(),
            Fired::Refused(message) => format!("not run: {message}"),
        };
        out.push(Action::Publish(Lifecycle::TimerFired {
            unit: name.to_string(),
            outcome,
        }));
    }

    fn fire_run(&mut self, now: Instant, name: &str, out: &mut Vec<Action>) -> Fired {
        if self.shutdown.is_some() {
            return Fired::Refused("herdd is shutting down".into());
        }
        let Some(timer) = self.timers.get(name) else {
            return Fired::Refused("no timer".into());
        };
        let busy = timer.running || !timer.tasks.is_empty();
        let overlap = timer.config.overlap;
        let pool = timer.config.pool.clone();
        if busy {
            match overlap {
                Overlap::Skip => return Fired::Skipped,
                Overlap::Queue => {
                    self.timers.get_mut(name).expect("looked up").queued = true;
                    return Fired::Queued;
                }
                Overlap::Allow => {}
            }
        }
        let Some(pool) = pool else {
            let id = InstanceId {
                unit: name.to_string(),
                index: 0,
            };
            self.with_instance(now, &id, out, super::Instance::start);
            // Seen as started by `observe_timers`, like a `herdctl start`.
            return Fired::Started;
        };
        let command = self.units[name].config.command.clone();
        let id = self.next_task;
        let options = SubmitOptions::default();
        match self.submit(now, &pool, command, Some(name.to_string()), options, out) {
            Reply::Ok(_) if self.tasks.contains_key(&id) => {
                let clock = self.clock.clone();
                let timer = self.timers.get_mut(name).expect("looked up");
                timer.tasks.push(id);
                timer.started(now, &clock);
                Fired::Submitted(id)
            }
            Reply::Ok(_) => Fired::Refused("the pool took no task".into()),
            Reply::Error(body) => Fired::Refused(body.message),
        }
    }

    /// After each input: notes runs that started or ended (whoever started
    /// them), and starts a queued run once the previous one has ended.
    pub(super) fn observe_timers(&mut self, now: Instant, out: &mut Vec<Action>) {
        let names: Vec<String> = self.timers.keys().cloned().collect();
        for name in names {
            let ended = match self.timers[&name].config.pool {
                Some(_) => self.observe_pool_run(&name),
                None => self.observe_own_run(now, &name),
            };
            let clock = self.clock.clone();
            let timer = self.timers.get_mut(&name).expect("listed above");
            if let Some(result) = ended {
                timer.ended(now, &clock, result);
                if timer.queued {
                    timer.queued = false;
                    self.fire(now, &name, "queued", out);
                }
            }
        }
    }

    /// The task's own instance: `Some(result)` when a run just ended.
    fn observe_own_run(&mut self, now: Instant, name: &str) -> Option<String> {
        let instance = self.units.get(name)?.instances.first()?;
        let active = match instance.state {
            State::Starting | State::Running | State::Stopping | State::Backoff => true,
            State::Inactive | State::Waiting | State::Exited | State::Failed => false,
        };
        let result = match instance.state {
            State::Failed => format!("failed: {}", instance.reason.clone().unwrap_or_default()),
            State::Exited => match &instance.last_exit {
                Some(exit) => format!("{exit}"),
                None => "exited".to_string(),
            },
            // Stopped (`herdctl stop`, shutdown), or still going (then
            // unused).
            State::Inactive
            | State::Waiting
            | State::Starting
            | State::Running
            | State::Stopping
            | State::Backoff => "stopped".to_string(),
        };
        let clock = self.clock.clone();
        let timer = self.timers.get_mut(name)?;
        match (timer.running, active) {
            (false, true) => {
                timer.running = true;
                timer.started(now, &clock);
                None
            }
            (true, false) => {
                timer.running = false;
                Some(result)
            }
            (false, false) | (true, true) => None,
        }
    }

    /// Pool runs: `Some(result)` when the last of them just ended.
    fn observe_pool_run(&mut self, name: &str) -> Option<String> {
        let timer = self.timers.get(name)?;
        if timer.tasks.is_empty() {
            return None;
        }
        let mut result = None;
        let tasks = &self.tasks;
        let live: Vec<TaskId> = timer
            .tasks
            .iter()
            .copied()
            .filter(|id| match tasks.get(id) {
                Some(task) if !task.state.is_final() => true,
                Some(task) => {
                    result = Some(task_result(task));
                    false
                }
                None => false,
            })
            .collect();
        let timer = self.timers.get_mut(name)?;
        timer.tasks = live;
        match (timer.tasks.is_empty(), result) {
            (true, result) => Some(result.unwrap_or_else(|| "ended".into())),
            (false, _) => None,
        }
    }

    /// `herdctl restart` of a pool timer: cancels its runs, then runs it
    /// again once they have ended (at once if none was going).
    pub(super) fn restart_timer_runs(&mut self, now: Instant, name: &str, out: &mut Vec<Action>) {
        self.cancel_timer_runs(now, name, out);
        match self.timers.get_mut(name) {
            Some(timer) if !timer.tasks.is_empty() => timer.queued = true,
            Some(_) => self.fire(now, name, "herdctl restart", out),
            None => {}
        }
    }

    /// `herdctl stop` of a pool timer: cancels its runs.
    pub(super) fn cancel_timer_runs(&mut self, now: Instant, name: &str, out: &mut Vec<Action>) {
        let Some(timer) = self.timers.get_mut(name) else {
            return;
        };
        timer.queued = false;
        let ids = timer.tasks.clone();
        if !ids.is_empty() {
            self.cancel(now, &ids, out);
        }
    }

    /// Reload: timers follow the new config; a changed one is scheduled
    /// afresh but keeps its history.
    pub(super) fn reload_timers(
        &mut self,
        now: Instant,
        config: &herd_config::Config,
        out: &mut Vec<Action>,
    ) {
        let _ = out;
        let mut timers = std::collections::BTreeMap::new();
        for unit in &config.units {
            let Some(new) = &unit.timer else { continue };
            let timer = match self.timers.remove(&unit.name) {
                Some(old) if old.config == *new && old.enabled == unit.autostart => old,
                Some(old) => {
                    let mut timer = Timer {
                        config: new.clone(),
                        enabled: unit.autostart,
                        ..old
                    };
                    timer.arm(now, &self.clock);
                    timer
                }
                None => {
                    let mut timer = Timer::new(new.clone(), unit.autostart);
                    timer.arm(now, &self.clock);
                    timer
                }
            };
            timers.insert(unit.name.clone(), timer);
        }
        self.timers = timers;
    }

    /// What `<state_dir>/timers.json` and the snapshots keep.
    pub fn timer_snapshots(&self, now: Instant) -> Vec<TimerSnapshot> {
        self.timers
            .iter()
            .map(|(name, timer)| TimerSnapshot {
                unit: name.clone(),
                last_run: timer.last_run.clone(),
                runs: timer.runs,
                last_slot: timer.last_slot.map(|slot| slot.to_string()),
                running: timer.running,
                tasks: timer.tasks.clone(),
                queued: timer.queued,
                deadline_in_ms: timer.deadline.map(|d| until(now, d)),
            })
            .collect()
    }

    /// What `timers.json` keeps: each timer's last run, nothing under way.
    pub fn timer_history(&self) -> Vec<TimerSnapshot> {
        self.timers
            .iter()
            .map(|(name, timer)| TimerSnapshot {
                unit: name.clone(),
                last_run: timer.last_run.clone(),
                runs: timer.runs,
                last_slot: timer.last_slot.map(|slot| slot.to_string()),
                running: false,
                tasks: Vec::new(),
                queued: false,
                deadline_in_ms: None,
            })
            .collect()
    }

    /// Takes the history of timers back (their last runs, for `persistent`
    /// and `status`). With `carry_on` (a re-exec or crash), also what was
    /// under way and when each fires next.
    pub fn restore_timers(&mut self, now: Instant, saved: &[TimerSnapshot], carry_on: bool) {
        for saved in saved {
            let Some(timer) = self.timers.get_mut(&saved.unit) else {
                continue;
            };
            timer.last_run = saved.last_run.clone();
            timer.runs = saved.runs;
            timer.last_slot = saved.last_slot.as_deref().and_then(|s| s.parse().ok());
            if carry_on {
                timer.running = saved.running;
                timer.tasks = saved.tasks.clone();
                timer.queued = saved.queued;
                if let (Some(ms), TimerSchedule::Every { .. }) =
                    (saved.deadline_in_ms, &timer.config.when)
                {
                    timer.deadline = timer.enabled.then(|| after(now, ms));
                }
            }
        }
    }
}

fn task_result(task: &super::Task) -> String {
    match (&task.exit, &task.reason) {
        (Some(exit), _) => format!("{exit}"),
        (None, Some(reason)) => format!("{}: {reason}", task.state),
        (None, None) => task.state.to_string(),
    }
}
