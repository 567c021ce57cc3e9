//! `health`: a probe (a command, an HTTP GET or a TCP connect) run against
//! each instance while its process runs. The core decides when a probe is
//! due and what its result means; the shell runs it (never on the event
//! loop) and feeds the result back as [`super::Input::ProbeResult`].
//!
//! The first probe is due `interval` after the spawn, the next `interval`
//! after each result, so probes of one instance never overlap. A pass
//! makes a `ready = "health"` instance ready; `retries` counted failures
//! in a row make a running instance unhealthy, and it is restarted when
//! fewer than `max_unavailable` instances of its service are already
//! on their way back. Failures within `start_period` of the spawn do not
//! count (until a probe passes, which ends the start period).

use super::action::{Action, SpawnSpec};
use super::instance::Instance;
use super::unit::{spawn_spec, INSTANCE_PLACEHOLDER};
use super::{InstanceId, Lifecycle, Supervisor};
use herd_common::protocol::{Health as HealthView, HealthState};
use herd_common::state::State;
use herd_config::{HealthCheck, Probe, UnitConfig};
use std::time::{Duration, Instant};

/// What the shell runs for one probe, `{instance}` substituted.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSpec {
    pub kind: ProbeKind,
    /// Killed and failed when it takes longer.
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProbeKind {
    /// The probe command with the instance's environment, cwd, user and
    /// group (its output captured: the first line goes in the reason).
    Command(Box<SpawnSpec>),
    /// `http://HOST:PORT/PATH`.
    Http(String),
    /// `HOST:PORT`.
    Tcp(String),
}

/// The probe of instance `index` (named `name`) of a unit with `health`.
pub fn probe_spec(config: &UnitConfig, check: &HealthCheck, index: u32, name: &str) -> ProbeSpec {
    let number = index.to_string();
    let substitute = |text: &String| text.replace(INSTANCE_PLACEHOLDER, &number);
    let kind = match &check.probe {
        Probe::Command(argv) => {
            let mut spec = spawn_spec(config, index, name);
            spec.argv = argv.iter().map(substitute).collect();
            spec.output = super::Output::Capture;
            spec.sockets.clear();
            spec.notify = false;
            // It dies with herdd, and is no watchdog pinger.
            spec.daemon = true;
            spec.env.remove("WATCHDOG_USEC");
            spec.env.remove("WATCHDOG_PID");
            ProbeKind::Command(Box::new(spec))
        }
        Probe::Http(url) => ProbeKind::Http(substitute(url)),
        Probe::Tcp(address) => ProbeKind::Tcp(substitute(address)),
    };
    ProbeSpec {
        kind,
        timeout: check.timeout,
    }
}

/// What a probe result did to the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It passed; `news` when it was the first pass or ended failures.
    Passed { news: bool },
    /// It failed, not (yet) `retries` times in a row that count.
    Failed,
    /// `retries` counted failures in a row: the last one's message.
    Unhealthy(String),
}

/// The health of one instance's current process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// A process is being probed (from its spawn until it stops).
    active: bool,
    /// When the next probe is due; `None` while one runs.
    due: Option<Instant>,
    /// A probe passed since the spawn.
    passed: bool,
    /// Counted failures in a row.
    failures: u32,
    /// Until when failures do not count.
    grace_until: Option<Instant>,
    /// The last failure's message, until a probe passes.
    error: Option<String>,
    /// Why it was last restarted as unhealthy (kept across restarts).
    restarted: Option<String>,
}

impl Health {
    /// Its process was spawned: probe it from `interval` on.
    pub fn begin(&mut self, now: Instant, config: &UnitConfig) {
        let restarted = self.restarted.take();
        *self = Health::default();
        self.restarted = restarted;
        if let Some(check) = &config.health {
            self.active = true;
            self.due = Some(now + check.interval);
            self.grace_until = Some(now + check.start_period);
        }
    }

    /// After a re-exec or a crash of herdd: a running process is probed
    /// again a full interval from now, taken as healthy if it was ready.
    pub fn resume(&mut self, now: Instant, config: &UnitConfig, state: State) {
        match state {
            State::Starting | State::Running => {
                self.begin(now, config);
                self.passed = state == State::Running;
            }
            State::Inactive
            | State::Waiting
            | State::Stopping
            | State::Exited
            | State::Failed
            | State::Backoff => {}
        }
    }

    /// No more probes: the process is stopping or gone. True when a probe
    /// was running (the shell is then told to stop it).
    pub fn end(&mut self) -> bool {
        let running = self.active && self.due.is_none();
        self.active = false;
        self.due = None;
        running
    }

    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Whether a probe should start now; if so, it counts as running.
    pub fn start_due(&mut self, now: Instant) -> bool {
        if self.due.is_some_and(|due| due <= now) {
            self.due = None;
            return true;
        }
        false
    }

    /// Takes a probe's result; `counts` is false while failures are forgiven
    /// (the instance is still starting). Schedules the next probe.
    pub fn on_result(
        &mut self,
        now: Instant,
        check: &HealthCheck,
        result: Result<(), String>,
        counts: bool,
    ) -> Verdict {
        self.due = Some(now + check.interval);
        match result {
            Ok(()) => {
                let news = !self.passed || self.failures > 0;
                self.passed = true;
                self.failures = 0;
                self.error = None;
                Verdict::Passed { news }
            }
            Err(error) => {
                let grace = !self.passed && self.grace_until.is_some_and(|until| now < until);
                self.error = Some(error.clone());
                if !counts || grace {
                    return Verdict::Failed;
                }
                self.failures += 1;
                if self.failures >= check.retries {
                    return Verdict::Unhealthy(error);
                }
                Verdict::Failed
            }
        }
    }

    /// It is being restarted for `reason`.
    pub fn restarting(&mut self, reason: String) {
        self.restarted = Some(reason);
    }

    /// The last failure's message.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// For `status`: `None` unless a process is being probed.
    pub fn view(&self, check: Option<&HealthCheck>) -> Option<HealthView> {
        let check = check.filter(|_| self.active)?;
        let state = if self.failures >= check.retries {
            HealthState::Unhealthy
        } else if self.passed {
            HealthState::Healthy
        } else {
            HealthState::Starting
        };
        Some(HealthView {
            state,
            failures: self.failures,
            error: self.error.clone(),
            restarted: self.restarted.clone(),
        })
    }
}

/// Whether a step did nothing but start probes (a tick that changes
/// nothing the journal keeps).
pub(super) fn only_probes(actions: &[Action]) -> bool {
    !actions.is_empty()
        && actions
            .iter()
            .all(|action| matches!(action, Action::Probe { .. }))
}

/// Instances of a service on their way back: a health restart waits while
/// `max_unavailable` of them are.
fn unavailable(instances: &[Instance]) -> u32 {
    let on_the_way = |instance: &&Instance| match instance.state {
        State::Starting | State::Stopping | State::Backoff | State::Waiting => true,
        State::Inactive | State::Running | State::Exited | State::Failed => false,
    };
    instances.iter().filter(on_the_way).count() as u32
}

impl Supervisor {
    /// The shell reports the result of a probe of `id`'s process `pid`.
    pub(super) fn probe_result(
        &mut self,
        now: Instant,
        id: &InstanceId,
        pid: u32,
        result: Result<(), String>,
        out: &mut Vec<Action>,
    ) {
        let may_restart = self
            .units
            .get(&id.unit)
            .is_some_and(|unit| unavailable(&unit.instances) < unit.config.max_unavailable);
        let before = out.len();
        self.with_instance(now, id, out, |instance, ctx| {
            instance.on_probe_result(pid, result, may_restart, ctx)
        });
        // It made the instance ready or restarted it: the journal must know.
        if out[before..]
            .iter()
            .any(|action| !matches!(action, Action::Publish(Lifecycle::Healthy { .. })))
        {
            self.generation += 1;
        }
    }

    /// A reload changed only `unit`'s probe: its processes are probed the
    /// new way from a full interval on, without a restart.
    pub(super) fn follow_new_probe(&mut self, now: Instant, unit: &str, out: &mut Vec<Action>) {
        let Some(indexes) = self
            .units
            .get(unit)
            .map(|u| u.instances.iter().map(|i| i.index).collect::<Vec<_>>())
        else {
            return;
        };
        for index in indexes {
            let id = InstanceId {
                unit: unit.to_string(),
                index,
            };
            self.with_instance(now, &id, out, Instance::follow_new_probe);
        }
    }
}

#[cfg(test)]
#[path = "tests/health.rs"]
mod tests;
