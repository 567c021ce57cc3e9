//! One process slot of a unit and its state machine.
//!
//! Every transition is an exhaustive `match` on the state: adding a state
//! forces a decision in each of them.

use super::action::Action;
use super::backoff::{Backoff, StartLimit};
use super::health::{probe_spec, Health, Verdict};
use super::lifecycle::Lifecycle;
use super::semaphore::{Holder, Semaphores};
use super::snapshot::{after, ago, before, until, AfterStopSnapshot, InstanceSnapshot};
use super::unit::spawn_spec;
use super::watchdog::Watchdog;
use super::{InstanceId, Owner};
use herd_common::signals::signal_name;
use herd_common::state::{Exit, State};
use herd_config::{Ready, RestartPolicy, UnitConfig, UnitKind};
use std::time::{Duration, Instant};

/// Whether the units this one is `after` allow it to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deps {
    Satisfied,
    /// Not yet: the reason says what it waits for.
    Pending(String),
    /// A dependency failed: waits until someone fixes and starts it.
    Blocked(String),
}

/// Everything a transition may read or emit besides the instance itself.
pub struct Ctx<'a> {
    pub now: Instant,
    pub id: InstanceId,
    /// `web@2` or `db`.
    pub name: String,
    pub config: &'a UnitConfig,
    pub deps: Deps,
    /// During shutdown nothing is (re)started.
    pub shutting_down: bool,
    pub semaphores: &'a mut Semaphores,
    pub out: &'a mut Vec<Action>,
}

impl Ctx<'_> {
    fn holder(&self) -> Holder {
        Holder::Instance(self.id.clone())
    }

    /// Takes a slot of each of the unit's semaphores, or queues for them.
    fn acquire(&mut self) -> Result<(), String> {
        let holder = self.holder();
        self.semaphores.try_acquire(
            self.now,
            &holder,
            &self.config.semaphores,
            &self.name,
            self.out,
        )
    }

    /// The process is gone (or never came): its slots and queue places go too.
    fn release(&mut self) {
        let holder = self.holder();
        self.semaphores.release(&holder, &self.name, self.out);
    }
}

/// What to do once the current process has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStop {
    /// Stay down (`stop`).
    Stay,
    /// Start again (`restart`, or `start` while stopping).
    Start,
    /// The instance is being scaled away: drop it.
    Remove,
    /// It was stopped for not becoming ready in time: end `failed`.
    Fail,
}

/// Returned by [`Instance::on_exit`] so the unit can drop scaled-away instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Keep,
    Remove,
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub index: u32,
    pub state: State,
    pub pid: Option<u32>,
    /// When the current process was spawned (uptime, stable-run detection).
    pub spawned_at: Option<Instant>,
    /// The one timer of this instance: readiness (`starting`), the restart
    /// (`backoff`) or the SIGKILL (`stopping`).
    pub deadline: Option<Instant>,
    pub restarts: u32,
    pub last_exit: Option<Exit>,
    /// Why it is waiting, backing off or failed (exec errors included).
    pub reason: Option<String>,
    /// The last `STATUS=` it sent to the notify socket.
    pub notify_status: Option<String>,
    pub after_stop: AfterStop,
    /// SIGKILL already sent while stopping.
    killed: bool,
    /// Not herdd's child: re-adopted after a crash of herdd, watched by pidfd;
    /// its exit status cannot be known.
    pub adopted: bool,
    backoff: Backoff,
    starts: StartLimit,
    /// `watchdog`: armed while it runs, by readiness and each `WATCHDOG=1`.
    pub watchdog: Watchdog,
    /// `health`: probed while its process runs.
    pub health: Health,
}

impl Instance {
    pub fn new(index: u32, config: &UnitConfig) -> Self {
        Instance {
            index,
            state: State::Inactive,
            pid: None,
            spawned_at: None,
            deadline: None,
            restarts: 0,
            last_exit: None,
            reason: None,
            notify_status: None,
            after_stop: AfterStop::Stay,
            killed: false,
            adopted: false,
            backoff: Backoff::new(config.restart_delay),
            starts: StartLimit::default(),
            watchdog: Watchdog::default(),
            health: Health::default(),
        }
    }

    /// The earliest of its timers: the state's deadline, the watchdog and
    /// the next health probe.
    pub fn next_timer(&self) -> Option<Instant> {
        [self.deadline, self.watchdog.due(), self.health.due()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether the instance is marked to disappear once stopped.
    pub fn is_leaving(&self) -> bool {
        self.after_stop == AfterStop::Remove
    }

    /// `herdctl start`, boot, or a scale-up.
    pub fn start(&mut self, ctx: &mut Ctx) {
        match self.state {
            State::Inactive | State::Exited | State::Failed => {
                // A user start forgives earlier failures, as `systemctl start` does.
                self.starts.reset();
                self.backoff.reset(ctx.config.restart_delay);
                self.launch(ctx);
            }
            State::Waiting | State::Backoff => self.launch(ctx),
            State::Stopping => self.after_stop = AfterStop::Start,
            State::Starting | State::Running => {}
        }
    }

    /// `herdctl stop`, or shutdown.
    pub fn stop(&mut self, ctx: &mut Ctx) {
        self.stop_then(AfterStop::Stay, ctx);
    }

    /// `herdctl restart`: stop if running, then start.
    pub fn restart(&mut self, ctx: &mut Ctx) {
        match self.state {
            State::Starting | State::Running | State::Stopping => {
                self.starts.reset();
                self.stop_then(AfterStop::Start, ctx);
            }
            State::Inactive | State::Waiting | State::Exited | State::Failed | State::Backoff => {
                self.start(ctx)
            }
        }
    }

    /// Scale-down: stop, then drop. Returns [`Fate::Remove`] when there is no process to wait for.
    pub fn remove(&mut self, ctx: &mut Ctx) -> Fate {
        self.stop_then(AfterStop::Remove, ctx);
        match self.pid {
            Some(_) => Fate::Keep,
            None => Fate::Remove,
        }
    }

    fn stop_then(&mut self, after: AfterStop, ctx: &mut Ctx) {
        self.after_stop = after;
        match self.state {
            State::Starting | State::Running => self.send_stop_signal(ctx),
            State::Waiting | State::Backoff => {
                self.state = State::Inactive;
                self.deadline = None;
                self.reason = None;
                ctx.release();
            }
            // Already stopping (the new `after` applies when it exits), or nothing runs.
            State::Stopping | State::Inactive | State::Exited | State::Failed => {}
        }
    }

    fn send_stop_signal(&mut self, ctx: &mut Ctx) {
        let Some(pid) = self.pid else {
            // Spawn requested but not yet confirmed: cannot happen, the shell
            // answers a spawn before any other input. Stay consistent anyway.
            self.state = State::Inactive;
            return;
        };
        let signal = ctx.config.stop_signal;
        self.watchdog.disarm();
        self.end_probes(ctx);
        self.state = State::Stopping;
        self.killed = false;
        self.deadline = Some(ctx.now + ctx.config.stop_timeout);
        ctx.out.push(Action::Signal { pid, signal });
        ctx.out.push(Action::Publish(Lifecycle::Stopping {
            instance: ctx.name.clone(),
            pid,
            signal: signal_name(signal),
        }));
    }

    /// Spawn now if the dependencies allow, otherwise wait for them.
    pub fn launch(&mut self, ctx: &mut Ctx) {
        if ctx.shutting_down {
            self.state = State::Inactive;
            self.deadline = None;
            return;
        }
        let ready = match ctx.deps.clone() {
            Deps::Satisfied => ctx.acquire(),
            Deps::Pending(reason) | Deps::Blocked(reason) => {
                // Not in line for slots while something else holds it back.
                ctx.release();
                Err(reason)
            }
        };
        match ready {
            Ok(()) => self.spawn(ctx),
            Err(reason) => {
                self.state = State::Waiting;
                self.deadline = None;
                self.reason = Some(reason);
            }
        }
    }

    fn spawn(&mut self, ctx: &mut Ctx) {
        self.state = State::Starting;
        self.reason = None;
        self.notify_status = None;
        self.deadline = None;
        self.after_stop = AfterStop::Stay;
        self.starts.record(ctx.now);
        self.spawned_at = Some(ctx.now);
        ctx.out.push(Action::Spawn {
            owner: Owner::Instance(ctx.id.clone()),
            spec: Box::new(spawn_spec(ctx.config, self.index, &ctx.name)),
        });
    }

    /// The shell reports the spawned pid.
    pub fn on_spawned(&mut self, pid: u32, ctx: &mut Ctx) {
        self.pid = Some(pid);
        self.spawned_at = Some(ctx.now);
        ctx.out.push(Action::Publish(Lifecycle::Started {
            instance: ctx.name.clone(),
            pid,
            task: None,
        }));
        self.health.begin(ctx.now, ctx.config);
        match ctx.config.ready {
            Ready::Started => self.become_ready(ctx),
            Ready::After(delay) => self.deadline = Some(ctx.now + delay),
            Ready::Notify | Ready::Health => {
                self.deadline = Some(ctx.now + ctx.config.start_timeout)
            }
        }
    }

    /// The shell could not spawn. Exec errors do not heal by retrying, so
    /// the instance fails at once with the error as its reason.
    pub fn on_spawn_failed(&mut self, error: String, ctx: &mut Ctx) {
        self.pid = None;
        self.spawned_at = None;
        ctx.release();
        self.fail(error, ctx);
    }

    fn become_ready(&mut self, ctx: &mut Ctx) {
        self.state = State::Running;
        self.deadline = None;
        self.watchdog.arm(ctx.now, ctx.config);
        ctx.out.push(Action::Publish(Lifecycle::Ready {
            instance: ctx.name.clone(),
        }));
    }

    fn fail(&mut self, reason: String, ctx: &mut Ctx) {
        self.state = State::Failed;
        self.deadline = None;
        self.reason = Some(reason.clone());
        ctx.out.push(Action::Publish(Lifecycle::Failed {
            instance: ctx.name.clone(),
            reason,
            task: None,
        }));
    }

    /// Its process ended (reaped by the shell).
    pub fn on_exit(&mut self, exit: Exit, ctx: &mut Ctx) -> Fate {
        let pid = self.pid.take().unwrap_or(0);
        self.adopted = false;
        self.watchdog.disarm();
        self.end_probes(ctx);
        let run = self
            .spawned_at
            .take()
            .map(|at| ctx.now.saturating_duration_since(at))
            .unwrap_or_default();
        self.last_exit = Some(exit.clone());
        ctx.out.push(Action::Publish(Lifecycle::Exited {
            instance: ctx.name.clone(),
            pid,
            exit: exit.clone(),
            task: None,
        }));
        ctx.out.push(Action::KillLeftovers { pgid: pid });
        ctx.release();
        match self.state {
            State::Stopping => self.stopped(ctx),
            State::Starting | State::Running => {
                self.crashed(exit, run, ctx);
                Fate::Keep
            }
            // No process is tracked in these states; nothing to update.
            State::Inactive | State::Waiting | State::Exited | State::Failed | State::Backoff => {
                Fate::Keep
            }
        }
    }

    fn stopped(&mut self, ctx: &mut Ctx) -> Fate {
        self.deadline = None;
        self.state = State::Inactive;
        match self.after_stop {
            AfterStop::Stay => Fate::Keep,
            AfterStop::Start => {
                self.launch(ctx);
                Fate::Keep
            }
            AfterStop::Remove => Fate::Remove,
            AfterStop::Fail => {
                let reason = self.reason.take().unwrap_or_else(|| "stopped".into());
                self.fail(reason, ctx);
                Fate::Keep
            }
        }
    }

    /// A message on the notify socket from this instance's processes.
    pub fn on_notify(&mut self, fields: &[(String, String)], ctx: &mut Ctx) {
        for (key, value) in fields {
            match key.as_str() {
                "READY"
                    if value == "1"
                        && self.state == State::Starting
                        && ctx.config.ready == Ready::Notify =>
                {
                    self.become_ready(ctx);
                }
                "STATUS" => self.notify_status = Some(value.clone()),
                "WATCHDOG" if value == "1" => match self.state {
                    State::Running => self.watchdog.arm(ctx.now, ctx.config),
                    // Armed once it is ready; a stopping process is let go.
                    State::Starting
                    | State::Stopping
                    | State::Inactive
                    | State::Waiting
                    | State::Exited
                    | State::Failed
                    | State::Backoff => {}
                },
                // STOPPING=1, MAINPID=, RELOADING=1, ... are accepted and not acted on:
                // herd keeps following the process it spawned.
                _ => {}
            }
        }
    }

    /// It ended on its own: apply the restart policy, back-off and start limit.
    fn crashed(&mut self, exit: Exit, run: Duration, ctx: &mut Ctx) {
        let success = exit.is_success();
        let policy_restarts = match ctx.config.restart {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !success,
            RestartPolicy::Never => false,
        };
        if !policy_restarts || ctx.shutting_down {
            self.deadline = None;
            if success {
                self.state = State::Exited;
                self.reason = None;
            } else if ctx.shutting_down {
                self.state = State::Inactive;
            } else {
                let what = match ctx.config.kind {
                    UnitKind::Task => "task",
                    UnitKind::Service => "process",
                };
                self.fail(format!("{what} ended with {exit}"), ctx);
            }
            return;
        }
        let config = ctx.config;
        if self
            .starts
            .exhausted(ctx.now, config.start_limit, config.start_interval)
        {
            let reason = format!(
                "start limit hit: {} starts within {:?}; last {}",
                config.start_limit, config.start_interval, exit
            );
            self.fail(reason, ctx);
            return;
        }
        let delay = self
            .backoff
            .next_delay(run, config.restart_delay, config.restart_delay_max);
        self.restarts += 1;
        ctx.out.push(Action::Publish(Lifecycle::Restarting {
            instance: ctx.name.clone(),
            delay_ms: delay.as_millis() as u64,
        }));
        if delay.is_zero() {
            self.launch(ctx);
        } else {
            self.state = State::Backoff;
            self.reason = Some(format!("{exit}; restarting in {delay:?}"));
            self.deadline = Some(ctx.now + delay);
        }
    }

    /// One of its timers has passed: the watchdog, or the state's deadline.
    pub fn on_deadline(&mut self, ctx: &mut Ctx) {
        if self.watchdog.expired(ctx.now) {
            self.watchdog_expired(ctx);
            return;
        }
        if self.health.start_due(ctx.now) {
            self.probe(ctx);
        }
        if self.deadline.is_none_or(|deadline| deadline > ctx.now) {
            return;
        }
        self.deadline = None;
        match self.state {
            State::Starting => match ctx.config.ready {
                Ready::Notify => {
                    self.reason = Some(format!(
                        "did not send READY=1 within {:?}",
                        ctx.config.start_timeout
                    ));
                    self.stop_then(AfterStop::Fail, ctx);
                }
                Ready::Health => {
                    let last = self.health.error().unwrap_or("no probe finished");
                    self.reason = Some(format!(
                        "did not pass its health probe within {:?}: {last}",
                        ctx.config.start_timeout
                    ));
                    self.stop_then(AfterStop::Fail, ctx);
                }
                Ready::Started | Ready::After(_) => self.become_ready(ctx),
            },
            State::Backoff => self.launch(ctx),
            State::Stopping => {
                if let (Some(pid), false) = (self.pid, self.killed) {
                    self.killed = true;
                    ctx.out.push(Action::Signal {
                        pid,
                        signal: libc::SIGKILL,
                    });
                    ctx.out.push(Action::Publish(Lifecycle::Stopping {
                        instance: ctx.name.clone(),
                        pid,
                        signal: "SIGKILL".into(),
                    }));
                }
            }
            State::Inactive | State::Waiting | State::Running | State::Exited | State::Failed => {}
        }
    }

    /// No `WATCHDOG=1` in time: the process is taken for hung, stopped
    /// (`stop_signal`, then SIGKILL after `stop_timeout`) and started again.
    fn watchdog_expired(&mut self, ctx: &mut Ctx) {
        self.watchdog.disarm();
        let timeout = ctx.config.watchdog.unwrap_or_default();
        match (self.state, self.pid) {
            (State::Running, Some(pid)) => {
                self.restarts += 1;
                ctx.out.push(Action::Publish(Lifecycle::WatchdogExpired {
                    instance: ctx.name.clone(),
                    pid,
                    timeout_ms: timeout.as_millis() as u64,
                }));
                self.stop_then(AfterStop::Start, ctx);
                self.reason = Some(format!("watchdog: no WATCHDOG=1 within {timeout:?}"));
            }
            // The watchdog is only armed while running.
            (
                State::Running
                | State::Starting
                | State::Stopping
                | State::Inactive
                | State::Waiting
                | State::Exited
                | State::Failed
                | State::Backoff,
                _,
            ) => {}
        }
    }

    /// Asks the shell to run the health probe of the current process.
    fn probe(&mut self, ctx: &mut Ctx) {
        let (Some(pid), Some(check)) = (self.pid, &ctx.config.health) else {
            return;
        };
        ctx.out.push(Action::Probe {
            instance: ctx.id.clone(),
            pid,
            spec: Box::new(probe_spec(ctx.config, check, self.index, &ctx.name)),
        });
    }

    /// No more probes of this process; a running one is stopped.
    fn end_probes(&mut self, ctx: &mut Ctx) {
        if self.health.end() {
            ctx.out.push(Action::CancelProbe {
                instance: ctx.id.clone(),
            });
        }
    }

    /// After a reload that changed only the probe: the running probe is
    /// stopped, the next one is due a full (new) interval from now.
    pub fn follow_new_probe(&mut self, ctx: &mut Ctx) {
        self.end_probes(ctx);
        if self.pid.is_some() {
            self.health.resume(ctx.now, ctx.config, self.state);
        }
    }

    /// The result of a probe of process `pid`. `may_restart`: fewer than
    /// `max_unavailable` instances of the service are on their way back.
    pub fn on_probe_result(
        &mut self,
        pid: u32,
        result: Result<(), String>,
        may_restart: bool,
        ctx: &mut Ctx,
    ) {
        let Some(check) = &ctx.config.health else {
            return;
        };
        if self.pid != Some(pid) {
            // About a process that has gone since: its probes ended with it.
            return;
        }
        let counts = match self.state {
            State::Running => true,
            State::Starting => false,
            // Probes end when the process stops; a late result changes nothing.
            State::Stopping
            | State::Inactive
            | State::Waiting
            | State::Exited
            | State::Failed
            | State::Backoff => return,
        };
        match self.health.on_result(ctx.now, check, result, counts) {
            Verdict::Passed { news } => {
                if news {
                    ctx.out.push(Action::Publish(Lifecycle::Healthy {
                        instance: ctx.name.clone(),
                    }));
                }
                if self.state == State::Starting && ctx.config.ready == Ready::Health {
                    self.become_ready(ctx);
                }
            }
            Verdict::Failed => {}
            Verdict::Unhealthy(error) if may_restart => {
                let reason = format!("unhealthy: {error}");
                self.restarts += 1;
                self.health.restarting(reason.clone());
                ctx.out.push(Action::Publish(Lifecycle::Unhealthy {
                    instance: ctx.name.clone(),
                    pid,
                    reason: error,
                }));
                self.stop_then(AfterStop::Start, ctx);
                self.reason = Some(reason);
            }
            // Too many of its service are already on their way back: it
            // keeps running, and the next failure asks again.
            Verdict::Unhealthy(_) => {}
        }
    }

    /// For `start --wait`: has this instance reached a state the caller can act on?
    pub fn start_settled(&self, deps: &Deps) -> bool {
        match self.state {
            State::Running | State::Exited | State::Failed | State::Inactive => true,
            State::Waiting => matches!(deps, Deps::Blocked(_)),
            State::Starting | State::Stopping | State::Backoff => false,
        }
    }

    /// For `stop --wait`: is its process gone?
    pub fn stop_settled(&self) -> bool {
        self.pid.is_none() && self.state != State::Starting
    }
}

impl Instance {
    pub fn snapshot(&self, now: Instant) -> InstanceSnapshot {
        InstanceSnapshot {
            index: self.index,
            state: self.state,
            pid: self.pid,
            pid_start: None,
            spawned_ago_ms: self.spawned_at.map(|at| ago(now, at)),
            deadline_in_ms: self.deadline.map(|at| until(now, at)),
            restarts: self.restarts,
            last_exit: self.last_exit.clone(),
            reason: self.reason.clone(),
            notify_status: self.notify_status.clone(),
            after_stop: match self.after_stop {
                AfterStop::Stay => AfterStopSnapshot::Stay,
                AfterStop::Start => AfterStopSnapshot::Start,
                AfterStop::Remove => AfterStopSnapshot::Remove,
                AfterStop::Fail => AfterStopSnapshot::Fail,
            },
            killed: self.killed,
            backoff_next_ms: self.backoff.upcoming().as_millis() as u64,
            starts_ago_ms: self.starts.starts().map(|at| ago(now, at)).collect(),
            adopted: self.adopted,
            watchdog_ago_ms: self.watchdog.armed_at().map(|at| ago(now, at)),
        }
    }

    /// Rebuilds an instance; `adopted` when its process is no longer herdd's child.
    pub fn restore(snapshot: &InstanceSnapshot, now: Instant, adopted: bool) -> Instance {
        Instance {
            index: snapshot.index,
            state: snapshot.state,
            pid: snapshot.pid,
            spawned_at: snapshot.spawned_ago_ms.map(|ms| before(now, ms)),
            deadline: snapshot.deadline_in_ms.map(|ms| after(now, ms)),
            restarts: snapshot.restarts,
            last_exit: snapshot.last_exit.clone(),
            reason: snapshot.reason.clone(),
            notify_status: snapshot.notify_status.clone(),
            after_stop: match snapshot.after_stop {
                AfterStopSnapshot::Stay => AfterStop::Stay,
                AfterStopSnapshot::Start => AfterStop::Start,
                AfterStopSnapshot::Remove => AfterStop::Remove,
                AfterStopSnapshot::Fail => AfterStop::Fail,
            },
            killed: snapshot.killed,
            adopted: snapshot.pid.is_some() && (adopted || snapshot.adopted),
            backoff: Backoff::new(Duration::from_millis(snapshot.backoff_next_ms)),
            starts: StartLimit::from_starts(
                snapshot.starts_ago_ms.iter().map(|ms| before(now, *ms)),
            ),
            // Armed by the caller, which has the unit's config.
            watchdog: Watchdog::default(),
            health: Health::default(),
        }
    }
}
