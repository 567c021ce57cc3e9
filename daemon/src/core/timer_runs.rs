//! How the supervisor runs its timers (`timer.rs`): firing them, `overlap`,
//! runs as pool tasks, following each run to its end (whoever started it),
//! `herdctl start`/`stop`/`restart` of a pool timer, reload, and the history
//! kept across restarts.

use super::lifecycle::Lifecycle;
use super::snapshot::{after, until};
use super::timer::{Timer, TimerSnapshot};
use super::{Action, InstanceId, Supervisor};
use herd_common::protocol::{Reply, SubmitOptions, TaskId, TimerStatus};
use herd_common::state::State;
use herd_config::{Overlap, TimerSchedule};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::time::Instant;

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
        let names: Vec<String> = self.timers.keys().cloned().collect();
        for name in names {
            let Some(mut timer) = self.timers.get_mut(&name) else {
                continue;
            };
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
        self.timers.first_deadline()
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
            let mut timer = self.timers.get_mut(&name).expect("listed above");
            // An `every` deadline carried over a re-exec or a crash already
            // says when the next run is due: nothing to catch up.
            let carried = timer.deadline.is_some();
            if !carried {
                timer.arm(now, &clock);
            }
            let missed = timer.enabled && !carried && timer.missed_run(now, &clock);
            drop(timer);
            if missed {
                self.fire(now, &name, "missed while herdd was down", out);
            }
        }
    }

    /// Fires every timer whose deadline passed.
    pub(super) fn tick_timers(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.shutdown.is_some() {
            return;
        }
        for name in self.timers.due(now) {
            let clock = self.clock.clone();
            let Some(mut timer) = self.timers.get_mut(&name) else {
                continue;
            };
            let run = timer.on_deadline(now, &clock);
            drop(timer);
            if run {
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
                let mut timer = self.timers.get_mut(name).expect("looked up");
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
    /// Only timers with a run going, or whose unit's instance changed, can
    /// have one start or end.
    pub(super) fn observe_timers(&mut self, now: Instant, out: &mut Vec<Action>) {
        let mut names: std::collections::BTreeSet<String> = self.timers.busy().cloned().collect();
        let changed = self.units.take_changed();
        names.extend(
            changed
                .into_iter()
                .filter(|name| self.timers.contains_key(name)),
        );
        for name in names {
            let ended = match self.timers[&name].config.pool {
                Some(_) => self.observe_pool_run(&name),
                None => self.observe_own_run(now, &name),
            };
            let clock = self.clock.clone();
            let mut timer = self.timers.get_mut(&name).expect("listed above");
            let Some(result) = ended else {
                continue;
            };
            timer.ended(now, &clock, result);
            let queued = std::mem::take(&mut timer.queued);
            drop(timer);
            if queued {
                self.fire(now, &name, "queued", out);
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
        let mut timer = self.timers.get_mut(name)?;
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
        let mut timer = self.timers.get_mut(name)?;
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
        let Some(mut timer) = self.timers.get_mut(name) else {
            return;
        };
        if !timer.tasks.is_empty() {
            timer.queued = true;
            return;
        }
        drop(timer);
        self.fire(now, name, "herdctl restart", out);
    }

    /// `herdctl stop` of a pool timer: cancels its runs.
    pub(super) fn cancel_timer_runs(&mut self, now: Instant, name: &str, out: &mut Vec<Action>) {
        let Some(mut timer) = self.timers.get_mut(name) else {
            return;
        };
        timer.queued = false;
        let ids = timer.tasks.clone();
        drop(timer);
        if !ids.is_empty() {
            self.cancel(now, &ids, out);
        }
    }

    /// Reload: timers follow the new config; a changed one is scheduled
    /// afresh but keeps its history.
    pub(super) fn reload_timers(&mut self, now: Instant, config: &herd_config::Config) {
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
        self.timers = timers.into_iter().collect();
    }

    /// What the snapshots keep: each timer's history and what is under way.
    pub fn timer_snapshots(&self, now: Instant) -> Vec<TimerSnapshot> {
        self.timers
            .iter()
            .map(|(name, timer)| TimerSnapshot {
                running: timer.running,
                tasks: timer.tasks.clone(),
                queued: timer.queued,
                deadline_in_ms: timer.deadline.map(|d| until(now, d)),
                ..history(name, timer)
            })
            .collect()
    }

    /// What `timers.json` keeps: each timer's last run, nothing under way.
    pub fn timer_history(&self) -> Vec<TimerSnapshot> {
        self.timers
            .iter()
            .map(|(name, timer)| history(name, timer))
            .collect()
    }

    /// Takes the history of timers back (their last runs, for `persistent`
    /// and `status`). With `carry_on` (a re-exec or crash), also what was
    /// under way and when each fires next.
    pub fn restore_timers(&mut self, now: Instant, saved: &[TimerSnapshot], carry_on: bool) {
        for saved in saved {
            let Some(mut timer) = self.timers.get_mut(&saved.unit) else {
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
    match (&task.exit, task.reason()) {
        (Some(exit), _) => format!("{exit}"),
        (None, Some(reason)) => format!("{}: {reason}", task.state),
        (None, None) => task.state.to_string(),
    }
}

/// A timer's history (its runs and last slot), with nothing under way.
fn history(name: &str, timer: &Timer) -> TimerSnapshot {
    TimerSnapshot {
        unit: name.to_string(),
        last_run: timer.last_run.clone(),
        runs: timer.runs,
        last_slot: timer.last_slot.map(|slot| slot.to_string()),
        running: false,
        tasks: Vec::new(),
        queued: false,
        deadline_in_ms: None,
    }
}
