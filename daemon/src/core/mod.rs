//! The supervisor core: a pure, synchronous state machine.
//!
//! [`Supervisor::handle`] takes the current time and one [`Input`] and returns
//! the [`Action`]s the shell must carry out. No syscalls, no sockets, no clock
//! reads happen here, so every behaviour is testable without processes or sleeps.
//! Timers are not armed: the shell asks [`Supervisor::next_deadline`] and feeds
//! [`Input::Tick`] when it passes.

pub mod action;
pub mod backoff;
pub mod input;
pub mod instance;
pub mod lifecycle;
mod requests;
pub mod unit;

#[cfg(test)]
mod tests;

pub use action::{Action, SpawnSpec};
pub use input::{Input, RequestId};
pub use lifecycle::Lifecycle;

use herd_common::protocol::{
    ErrorBody, ErrorCode, InstanceStatus, Reply, StatusReport, UnitKind as KindView, UnitStatus,
};
use herd_config::{Config, UnitKind};
use instance::{Ctx, Deps, Fate, Instance};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use unit::{AsDependency, Unit};

/// Names one instance: its unit and its index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId {
    pub unit: String,
    pub index: u32,
}

/// What a waiting request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    Started,
    Stopped,
}

/// A `start`/`stop`/`restart` request whose reply waits until its instances settle.
#[derive(Debug)]
struct Waiter {
    id: RequestId,
    goal: Goal,
    targets: Vec<InstanceId>,
}

/// Shutdown in progress.
#[derive(Debug)]
struct Shutdown {
    /// When joined (`daemon = false`) processes stop being waited for and are terminated.
    join_deadline: Instant,
    joined_terminated: bool,
}

pub struct Supervisor {
    units: BTreeMap<String, Unit>,
    /// Every live process herd spawned, to map `waitpid` results to instances.
    pids: HashMap<u32, InstanceId>,
    waiters: Vec<Waiter>,
    shutdown: Option<Shutdown>,
    shutdown_timeout: Duration,
}

impl Supervisor {
    pub fn new(config: &Config) -> Self {
        Supervisor {
            units: config
                .units
                .iter()
                .map(|unit| (unit.name.clone(), Unit::new(unit.clone())))
                .collect(),
            pids: HashMap::new(),
            waiters: Vec::new(),
            shutdown: None,
            shutdown_timeout: config.herd.shutdown_timeout,
        }
    }

    /// Feeds one input; returns what the shell must do, in order.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Boot => self.boot(now, &mut out),
            Input::Request { id, request } => self.request(now, id, request, &mut out),
            Input::Spawned { instance, pid } => {
                self.pids.insert(pid, instance.clone());
                self.with_instance(now, &instance, &mut out, |i, ctx| i.on_spawned(pid, ctx));
            }
            Input::SpawnFailed { instance, error } => {
                self.with_instance(now, &instance, &mut out, |i, ctx| {
                    i.on_spawn_failed(error, ctx)
                });
            }
            Input::Exited { pid, exit } => {
                // Unknown pids are re-parented orphans: reaped, nothing to update.
                if let Some(id) = self.pids.remove(&pid) {
                    let fate =
                        self.with_instance(now, &id, &mut out, |i, ctx| i.on_exit(exit, ctx));
                    if fate == Some(Fate::Remove) {
                        self.drop_instance(&id);
                    }
                }
            }
            Input::Tick => self.tick(now, &mut out),
            Input::Shutdown => self.begin_shutdown(now, &mut out),
        }
        self.advance_waiting(now, &mut out);
        self.settle_waiters(now, &mut out);
        out
    }

    /// The earliest time at which [`Input::Tick`] must be fed; `None` = sleep until something happens.
    pub fn next_deadline(&self) -> Option<Instant> {
        let instances = self
            .units
            .values()
            .flat_map(|u| &u.instances)
            .filter_map(|i| i.deadline);
        let join = self
            .shutdown
            .as_ref()
            .filter(|s| !s.joined_terminated)
            .map(|s| s.join_deadline);
        instances.chain(join).min()
    }

    /// Shutdown was requested and every process is gone: herdd may exit.
    pub fn is_finished(&self) -> bool {
        self.shutdown.is_some() && self.pids.is_empty()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_some()
    }

    fn boot(&mut self, now: Instant, out: &mut Vec<Action>) {
        let autostart: Vec<InstanceId> = self
            .units
            .values_mut()
            .filter(|u| u.config.autostart)
            .flat_map(|u| {
                u.wanted = true;
                let name = u.name().to_string();
                u.instances.iter().map(move |i| InstanceId {
                    unit: name.clone(),
                    index: i.index,
                })
            })
            .collect();
        for id in autostart {
            self.with_instance(now, &id, out, Instance::start);
        }
    }

    /// Runs `f` on one instance with a context built from its unit. `None` if
    /// the instance no longer exists.
    fn with_instance<R>(
        &mut self,
        now: Instant,
        id: &InstanceId,
        out: &mut Vec<Action>,
        f: impl FnOnce(&mut Instance, &mut Ctx) -> R,
    ) -> Option<R> {
        let deps = self.deps_of(&id.unit);
        let shutting_down = self.shutdown.is_some();
        let unit = self.units.get_mut(&id.unit)?;
        let name = unit.instance_name(id.index);
        let position = unit.position(id.index)?;
        let Unit {
            config, instances, ..
        } = unit;
        let mut ctx = Ctx {
            now,
            id: id.clone(),
            name,
            config,
            deps,
            shutting_down,
            out,
        };
        Some(f(&mut instances[position], &mut ctx))
    }

    fn drop_instance(&mut self, id: &InstanceId) {
        if let Some(unit) = self.units.get_mut(&id.unit) {
            if let Some(position) = unit.position(id.index) {
                unit.instances.remove(position);
            }
        }
    }

    /// Whether the units `unit` is `after` let it start.
    fn deps_of(&self, unit: &str) -> Deps {
        let Some(unit) = self.units.get(unit) else {
            return Deps::Satisfied;
        };
        let mut pending = Vec::new();
        for dependency in &unit.config.after {
            match self.units.get(dependency).map(Unit::as_dependency) {
                Some(AsDependency::Satisfied) => {}
                Some(AsDependency::Failed) => {
                    return Deps::Blocked(format!("dependency {dependency} failed"))
                }
                Some(AsDependency::Pending) | None => pending.push(dependency.as_str()),
            }
        }
        if pending.is_empty() {
            Deps::Satisfied
        } else {
            Deps::Pending(format!("waiting for {}", pending.join(", ")))
        }
    }

    /// Starts waiting instances whose dependencies are now satisfied, and
    /// refreshes the reason of those still waiting.
    fn advance_waiting(&mut self, now: Instant, out: &mut Vec<Action>) {
        let waiting: Vec<InstanceId> = self
            .units
            .values()
            .flat_map(|u| {
                u.instances
                    .iter()
                    .filter(|i| i.state == herd_common::state::State::Waiting)
                    .map(|i| InstanceId {
                        unit: u.name().to_string(),
                        index: i.index,
                    })
            })
            .collect();
        for id in waiting {
            self.with_instance(now, &id, out, Instance::launch);
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        let due: Vec<InstanceId> = self
            .units
            .values()
            .flat_map(|u| {
                u.instances
                    .iter()
                    .filter(|i| i.deadline.is_some_and(|d| d <= now))
                    .map(|i| InstanceId {
                        unit: u.name().to_string(),
                        index: i.index,
                    })
            })
            .collect();
        for id in due {
            self.with_instance(now, &id, out, Instance::on_deadline);
        }
        let join_over = self
            .shutdown
            .as_ref()
            .is_some_and(|s| !s.joined_terminated && s.join_deadline <= now);
        if join_over {
            self.terminate_joined(now, out);
        }
    }

    /// SIGTERM, SIGINT or `herdctl shutdown`. Daemon processes are stopped at
    /// once; joined ones (`daemon = false`) get `shutdown_timeout` to finish.
    /// A second request stops the joined ones at once too.
    fn begin_shutdown(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.shutdown.is_some() {
            self.terminate_joined(now, out);
            return;
        }
        self.shutdown = Some(Shutdown {
            join_deadline: now + self.shutdown_timeout,
            joined_terminated: false,
        });
        for id in self.all_instances() {
            let daemon = self.units[&id.unit].config.daemon;
            self.with_instance(now, &id, out, |instance, ctx| {
                if daemon || instance.pid.is_none() {
                    instance.stop(ctx);
                }
            });
        }
    }

    fn terminate_joined(&mut self, now: Instant, out: &mut Vec<Action>) {
        if let Some(shutdown) = &mut self.shutdown {
            shutdown.joined_terminated = true;
        }
        for id in self.all_instances() {
            self.with_instance(now, &id, out, |instance, ctx| {
                if instance.state != herd_common::state::State::Stopping {
                    instance.stop(ctx);
                }
            });
        }
    }

    fn all_instances(&self) -> Vec<InstanceId> {
        self.units
            .values()
            .flat_map(|u| {
                u.instances.iter().map(|i| InstanceId {
                    unit: u.name().to_string(),
                    index: i.index,
                })
            })
            .collect()
    }

    /// Replies to every waiter whose instances have settled.
    fn settle_waiters(&mut self, now: Instant, out: &mut Vec<Action>) {
        let mut index = 0;
        while index < self.waiters.len() {
            if self.is_settled(&self.waiters[index]) {
                let waiter = self.waiters.swap_remove(index);
                let reply = Reply::ok(self.report(now, &waiter.targets));
                out.push(Action::Reply {
                    id: waiter.id,
                    reply,
                });
            } else {
                index += 1;
            }
        }
    }

    fn is_settled(&self, waiter: &Waiter) -> bool {
        waiter.targets.iter().all(|id| {
            let Some(unit) = self.units.get(&id.unit) else {
                return true;
            };
            let Some(position) = unit.position(id.index) else {
                return true; // scaled away
            };
            let instance = &unit.instances[position];
            match waiter.goal {
                Goal::Started => instance.start_settled(&self.deps_of(&id.unit)),
                Goal::Stopped => instance.stop_settled(),
            }
        })
    }

    /// A status report of the given instances, grouped by unit.
    fn report(&self, now: Instant, targets: &[InstanceId]) -> StatusReport {
        let mut by_unit: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for id in targets {
            by_unit.entry(&id.unit).or_default().push(id.index);
        }
        let units = by_unit
            .into_iter()
            .filter_map(|(name, indexes)| {
                let unit = self.units.get(name)?;
                Some(self.unit_status(now, unit, Some(&indexes)))
            })
            .collect();
        StatusReport { units }
    }

    fn full_report(&self, now: Instant) -> StatusReport {
        StatusReport {
            units: self
                .units
                .values()
                .map(|unit| self.unit_status(now, unit, None))
                .collect(),
        }
    }

    fn unit_status(&self, now: Instant, unit: &Unit, only: Option<&[u32]>) -> UnitStatus {
        let instances = unit
            .instances
            .iter()
            .filter(|i| only.is_none_or(|only| only.contains(&i.index)))
            .map(|i| InstanceStatus {
                name: unit.instance_name(i.index),
                state: i.state,
                pid: i.pid,
                uptime_ms: i
                    .pid
                    .and(i.spawned_at)
                    .map(|at| now.saturating_duration_since(at).as_millis() as u64),
                restarts: i.restarts,
                last_exit: i.last_exit.clone(),
                reason: i.reason.clone(),
            })
            .collect();
        UnitStatus {
            name: unit.name().to_string(),
            kind: match unit.config.kind {
                UnitKind::Service => KindView::Service,
                UnitKind::Task => KindView::Task,
            },
            state: unit.state(),
            command: unit.config.command.clone(),
            instances,
        }
    }
}

fn error(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(code, message)
}
