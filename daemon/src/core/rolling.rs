//! Rolling restarts: `herdctl restart --rolling NAME`, and a reload that
//! changes a multi-instance service (`update = "rolling"`). Instances are
//! restarted a batch at a time so that at most `max_unavailable` of the
//! unit are not ready at once; a replacement must become ready (per `ready`)
//! before the next is restarted. One that fails, or is not ready within
//! `stop_timeout` + `start_timeout`, stops the rollout: the instances not
//! yet restarted keep running as they were.
//!
//! A rollout is advanced after every input (like waiters are settled): it
//! reads instance states, never keeps its own copy of them.
//!
//! A rollout outlives `daemon-reexec` (it is in the snapshot): its
//! requester is answered `reconnect` and asks again with `resume`, which
//! waits for the carried rollout — or takes its result, kept for it if the
//! rollout ended before it came back — instead of starting another.

use super::action::Action;
use super::input::RequestId;
use super::instance::Instance;
use super::lifecycle::Lifecycle;
use super::snapshot::{after, until, RolloutSnapshot, RolloutStepSnapshot, RolloutsSnapshot};
use super::{InstanceId, Supervisor};
use herd_common::protocol::{ErrorCode, Reply};
use herd_common::state::State;
use std::collections::VecDeque;
use std::time::Instant;

/// One rolling restart under way.
#[derive(Debug, Clone)]
pub struct Rollout {
    unit: String,
    /// The request to answer when it ends (`None` for a reload).
    reply_to: Option<RequestId>,
    /// Instances still to restart, in index order.
    pending: VecDeque<u32>,
    /// Restarted, not ready yet.
    in_flight: Vec<Step>,
    steps: u32,
    started: u32,
    /// A `daemon-reexec` sent the requester away; it is expected to ask
    /// again (`resume`) for the result.
    awaited: bool,
}

#[derive(Debug, Clone)]
struct Step {
    index: u32,
    /// The process being replaced: ready means running with another pid.
    old_pid: Option<u32>,
    /// Ready by then, or the rollout stops.
    deadline: Instant,
}

/// How an instance restarted by a rollout is doing.
enum Progress {
    Ready,
    Pending,
    Failed(String),
}

impl Supervisor {
    /// `restart --rolling NAME`: `None` when the reply comes later. With
    /// `resume` (asked again after a re-exec), the rollout under way.
    pub(super) fn rolling_restart(
        &mut self,
        now: Instant,
        id: RequestId,
        name: &str,
        resume: bool,
        out: &mut Vec<Action>,
    ) -> Option<Reply> {
        if resume {
            return self.resume_rollout(now, id, name);
        }
        let Some(unit) = self.units.get(name) else {
            let message = format!("no unit named `{name}` (a rolling restart takes a unit)");
            return Some(Reply::error(ErrorCode::NoSuchUnit, message));
        };
        if self.shutdown.is_some() {
            return Some(Reply::error(
                ErrorCode::ShuttingDown,
                "herdd is shutting down",
            ));
        }
        if self.rollouts.iter().any(|rollout| rollout.unit == name) {
            let message = format!("a rolling restart of `{name}` is already under way");
            return Some(Reply::error(ErrorCode::Failed, message));
        }
        let indexes = unit
            .staying()
            .filter(|instance| is_up(instance.state))
            .map(|instance| instance.index)
            .collect();
        self.begin_rollout(now, name, indexes, Some(id), out);
        None
    }

    /// A requester back after a re-exec: it waits for its rollout, or gets
    /// the result kept for it.
    fn resume_rollout(&mut self, now: Instant, id: RequestId, name: &str) -> Option<Reply> {
        let carried = self
            .rollouts
            .iter_mut()
            .find(|rollout| rollout.unit == name && rollout.awaited);
        if let Some(rollout) = carried {
            rollout.awaited = false;
            rollout.reply_to = Some(id);
            return None;
        }
        match self.rollout_results.remove(name) {
            Some(error) => Some(self.rollout_reply(now, name, error)),
            None => Some(Reply::error(
                ErrorCode::Failed,
                format!(
                    "herdd re-executed during the rolling restart of `{name}` and has no \
                     record of it; see `herdctl status {name}` and `herdctl events`"
                ),
            )),
        }
    }

    /// Starts rolling `indexes` of unit `name`; answers `reply_to` at the end.
    pub(super) fn begin_rollout(
        &mut self,
        now: Instant,
        name: &str,
        indexes: Vec<u32>,
        reply_to: Option<RequestId>,
        out: &mut Vec<Action>,
    ) {
        // A newer rollout of the unit replaces an older one (a second reload).
        if let Some(at) = self.rollouts.iter().position(|r| r.unit == name) {
            let old = self.rollouts.remove(at);
            let error = "superseded by a newer rolling restart".to_string();
            self.end_rollout(now, old, Some(error), out);
        }
        self.rollouts.push(Rollout {
            unit: name.to_string(),
            reply_to,
            steps: indexes.len() as u32,
            pending: indexes.into(),
            in_flight: Vec::new(),
            started: 0,
            awaited: false,
        });
        // A result nobody came back for is stale now.
        self.rollout_results.remove(name);
        self.advance_rollouts(now, out);
    }

    /// Checks every rollout's restarted instances and restarts the next
    /// batch where `max_unavailable` allows.
    pub(super) fn advance_rollouts(&mut self, now: Instant, out: &mut Vec<Action>) {
        for mut rollout in std::mem::take(&mut self.rollouts) {
            match self.advance(now, &mut rollout, out) {
                Ok(true) => self.end_rollout(now, rollout, None, out),
                Ok(false) => self.rollouts.push(rollout),
                Err(error) => self.end_rollout(now, rollout, Some(error), out),
            }
        }
    }

    /// One rollout: `Ok(true)` when every instance is done.
    fn advance(
        &mut self,
        now: Instant,
        rollout: &mut Rollout,
        out: &mut Vec<Action>,
    ) -> Result<bool, String> {
        if self.shutdown.is_some() {
            return Err("herdd is shutting down".into());
        }
        let Some(unit) = self.units.get(&rollout.unit) else {
            return Err(format!("unit `{}` was removed", rollout.unit));
        };
        let config = &unit.config;
        let mut failure = None;
        rollout.in_flight.retain(|step| {
            let Some(instance) = unit.position(step.index).map(|at| &unit.instances[at]) else {
                return false; // scaled away meanwhile
            };
            match progress(instance, step, now) {
                Progress::Ready => false,
                Progress::Pending => true,
                Progress::Failed(reason) => {
                    let name = unit.instance_name(step.index);
                    failure.get_or_insert(format!("{name}: {reason}"));
                    true
                }
            }
        });
        if let Some(failure) = failure {
            return Err(failure);
        }
        let limit = config.max_unavailable as usize;
        let window = config.stop_timeout + config.start_timeout;
        let mut unavailable = self.units.unavailable(&rollout.unit);
        let mut batch = Vec::new();
        while unavailable < limit {
            let Some(index) = rollout.pending.pop_front() else {
                break;
            };
            let Some(at) = unit.position(index) else {
                continue;
            };
            let instance = &unit.instances[at];
            if !is_up(instance.state) || instance.is_leaving() {
                continue;
            }
            batch.push((index, instance.pid, unit.instance_name(index)));
            unavailable += 1;
        }
        for (index, old_pid, instance) in batch {
            rollout.started += 1;
            out.push(Action::Publish(Lifecycle::RolloutStep {
                unit: rollout.unit.clone(),
                instance,
                step: rollout.started,
                steps: rollout.steps,
            }));
            let id = InstanceId {
                unit: rollout.unit.clone(),
                index,
            };
            self.with_instance(now, &id, out, Instance::restart);
            rollout.in_flight.push(Step {
                index,
                old_pid,
                deadline: now + window,
            });
        }
        Ok(rollout.pending.is_empty() && rollout.in_flight.is_empty())
    }

    /// Publishes the end and answers the request, if any (or keeps the
    /// result for a requester a re-exec sent away).
    fn end_rollout(
        &mut self,
        now: Instant,
        rollout: Rollout,
        error: Option<String>,
        out: &mut Vec<Action>,
    ) {
        out.push(Action::Publish(Lifecycle::RolloutEnded {
            unit: rollout.unit.clone(),
            error: error.clone(),
        }));
        match rollout.reply_to {
            Some(id) => {
                let reply = self.rollout_reply(now, &rollout.unit, error);
                out.push(Action::Reply { id, reply });
            }
            None if rollout.awaited => {
                self.rollout_results.insert(rollout.unit, error);
            }
            None => {}
        }
    }

    /// The answer to `restart --rolling`: the unit's report, or why it stopped.
    fn rollout_reply(&self, now: Instant, unit: &str, error: Option<String>) -> Reply {
        match error {
            None => {
                let targets: Vec<InstanceId> = self
                    .units
                    .get(unit)
                    .map(|found| {
                        found
                            .staying()
                            .map(|instance| InstanceId {
                                unit: unit.to_string(),
                                index: instance.index,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Reply::ok(self.report(now, &targets))
            }
            Some(error) => {
                let message = format!(
                    "rolling restart of {unit} stopped: {error}; the instances not yet restarted \
                     keep running"
                );
                Reply::error(ErrorCode::Failed, message)
            }
        }
    }

    /// The earliest rollout deadline, for the shell's timer.
    pub(super) fn next_rollout_deadline(&self) -> Option<Instant> {
        self.rollouts
            .iter()
            .flat_map(|rollout| rollout.in_flight.iter().map(|step| step.deadline))
            .min()
    }

    /// `daemon-reexec`: rollouts go on in the next image (they are in the
    /// snapshot); their requesters are answered `reconnect` now, so that
    /// their connections close, and ask again with `resume`.
    pub(super) fn send_rollout_waiters_away(&mut self, out: &mut Vec<Action>) {
        for rollout in &mut self.rollouts {
            let Some(id) = rollout.reply_to.take() else {
                continue;
            };
            rollout.awaited = true;
            out.push(Action::Reply {
                id,
                reply: Reply::error(
                    ErrorCode::Reconnect,
                    "herdd is re-executing; connect again and wait again",
                ),
            });
        }
    }

    /// The rollouts, for a snapshot.
    pub(super) fn snapshot_rollouts(&self, now: Instant) -> RolloutsSnapshot {
        let under_way = self
            .rollouts
            .iter()
            .map(|rollout| RolloutSnapshot {
                unit: rollout.unit.clone(),
                pending: rollout.pending.iter().copied().collect(),
                in_flight: rollout
                    .in_flight
                    .iter()
                    .map(|step| RolloutStepSnapshot {
                        index: step.index,
                        old_pid: step.old_pid,
                        deadline_in_ms: until(now, step.deadline),
                    })
                    .collect(),
                steps: rollout.steps,
                started: rollout.started,
                awaited: rollout.awaited,
            })
            .collect();
        let ended = self
            .rollout_results
            .iter()
            .map(|(unit, error)| (unit.clone(), error.clone()))
            .collect();
        RolloutsSnapshot { under_way, ended }
    }

    /// Carries on with the rollouts of `saved`. After a crash (`adopted`)
    /// no requester comes back (its herdd is gone): none is awaited.
    pub(super) fn restore_rollouts(
        &mut self,
        saved: &RolloutsSnapshot,
        now: Instant,
        adopted: bool,
    ) {
        for rollout in &saved.under_way {
            if !self.units.contains_key(&rollout.unit) {
                continue;
            }
            self.rollouts.push(Rollout {
                unit: rollout.unit.clone(),
                reply_to: None,
                pending: rollout.pending.iter().copied().collect(),
                in_flight: rollout
                    .in_flight
                    .iter()
                    .map(|step| Step {
                        index: step.index,
                        old_pid: step.old_pid,
                        deadline: after(now, step.deadline_in_ms),
                    })
                    .collect(),
                steps: rollout.steps,
                started: rollout.started,
                awaited: rollout.awaited && !adopted,
            });
        }
        if !adopted {
            let units = &self.units;
            self.rollout_results = saved
                .ended
                .iter()
                .filter(|(unit, _)| units.contains_key(unit))
                .cloned()
                .collect();
        }
    }
}

/// Whether an instance is up (or on its way up): what a rollout restarts.
fn is_up(state: State) -> bool {
    match state {
        State::Starting | State::Running | State::Waiting | State::Backoff => true,
        State::Inactive | State::Stopping | State::Exited | State::Failed => false,
    }
}

fn progress(instance: &Instance, step: &Step, now: Instant) -> Progress {
    let why = || {
        instance
            .reason
            .clone()
            .unwrap_or_else(|| format!("{:?}", instance.state).to_lowercase())
    };
    let settled = match instance.state {
        State::Running if instance.pid != step.old_pid => return Progress::Ready,
        State::Failed | State::Exited | State::Backoff | State::Inactive => {
            return Progress::Failed(format!("did not become ready: {}", why()))
        }
        State::Running | State::Starting | State::Stopping | State::Waiting => false,
    };
    if !settled && step.deadline <= now {
        return Progress::Failed(format!(
            "did not become ready in time ({})",
            instance
                .reason
                .clone()
                .unwrap_or_else(|| "still starting".into())
        ));
    }
    Progress::Pending
}
