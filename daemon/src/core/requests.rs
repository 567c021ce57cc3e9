//! Client requests: name resolution and the verbs.

use super::instance::{Ctx, Fate, Instance};
use super::semaphore::ClientId;
use super::unit::Unit;
use super::{error, Action, Goal, InstanceId, RequestId, Supervisor, Waiter};
use herd_common::names::Selector;
use herd_common::protocol::{ErrorBody, ErrorCode, KillReport, Reply, Request};
use herd_common::signals::parse_signal;
use herd_config::UnitKind;
use std::time::Instant;

/// Most instances a service may be scaled to (matches the config's limit).
const MAX_INSTANCES: u32 = 10_000;

/// What `start`, `stop` and `restart` do to each instance they name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Start,
    Stop,
    Restart,
}

impl Change {
    /// What a request that waits waits for.
    fn goal(self, targets: Vec<InstanceId>) -> Goal {
        match self {
            Change::Start | Change::Restart => Goal::Started(targets),
            Change::Stop => Goal::Stopped(targets),
        }
    }

    /// Whether it starts processes (which a shutting-down herdd refuses).
    fn starts(self) -> bool {
        match self {
            Change::Start | Change::Restart => true,
            Change::Stop => false,
        }
    }

    /// Whether the unit is wanted from now on (a stop changes that only
    /// when it names all of the unit: `whole`; `None`: unchanged), and the
    /// transition for each named instance.
    fn apply(self, whole: bool) -> (Option<bool>, fn(&mut Instance, &mut Ctx)) {
        match self {
            Change::Start => (Some(true), Instance::start),
            Change::Stop => (whole.then_some(false), Instance::stop),
            Change::Restart => (Some(true), Instance::restart),
        }
    }
}

impl Supervisor {
    /// Handles one client request: replies at once (into `out`) or
    /// registers a waiter that replies later.
    pub(super) fn request(
        &mut self,
        now: Instant,
        id: RequestId,
        client: ClientId,
        request: Request,
        out: &mut Vec<Action>,
    ) {
        let asker = (id, client);
        let reply = match request {
            Request::Status { names, .. } => self.status(now, &names),
            Request::Start { names, wait } => {
                self.change(now, asker, Change::Start, &names, wait, out)
            }
            Request::Stop { names, wait } => {
                self.change(now, asker, Change::Stop, &names, wait, out)
            }
            Request::Restart { names, wait } => {
                self.change(now, asker, Change::Restart, &names, wait, out)
            }
            Request::RollingRestart { name, resume } => {
                self.rolling_restart(now, id, &name, resume, out)
            }
            Request::Kill { names, signal } => self.kill(&names, &signal, out),
            Request::Scale { name, instances } => self.scale(now, &name, instances, out),
            Request::Shutdown => {
                self.begin_shutdown(now, out);
                Some(Reply::ok(serde_json::json!({})))
            }
            Request::Submit { .. } if self.held.room(client) == 0 => Some(Reply::error(
                herd_common::protocol::ErrorCode::Refused,
                super::held::over_cap(),
            )),
            Request::Submit {
                pool,
                command,
                name,
                options,
            } => Some(self.submit(now, &pool, command, name, options, out)),
            Request::SubmitBatch {
                pool,
                commands,
                options,
            } => Some(self.submit_batch(now, client, (&pool, commands), options, out)),
            Request::Results {
                ids,
                timeout_ms,
                linger_ms,
            } => self.results(now, asker, &ids, (timeout_ms, linger_ms), out),
            Request::Join { ids, timeout_ms } => self.join(now, asker, ids, timeout_ms),
            Request::Tasks { pool } => Some(self.list_tasks(now, pool.as_deref())),
            Request::Output { id: task, stream } => Some(self.output(task, stream)),
            Request::Cancel { ids } => Some(self.cancel(now, &ids, out)),
            Request::PoolClose { pool } => Some(self.close_pool(&pool)),
            Request::PoolTerminate { pool } => Some(self.terminate_pool(now, &pool, out)),
            Request::PoolJoin { pool, timeout_ms } => self.join_pool(now, asker, pool, timeout_ms),
            Request::SemList => Some(self.sem_list()),
            Request::SemAcquire {
                name,
                timeout_ms,
                pid,
            } => self.sem_acquire(now, asker, name, timeout_ms, pid),
            Request::SemRelease { name } => Some(self.sem_release(client, &name, out)),
            Request::EventList => Some(self.event_list()),
            Request::EventSet { name } => Some(self.event_change(&name, true, out)),
            Request::EventClear { name } => Some(self.event_change(&name, false, out)),
            Request::EventWait { name, timeout_ms } => {
                self.event_wait(now, asker, name, timeout_ms)
            }
            // The shell reads the file; the core applies it on `Input::ConfigLoaded`.
            Request::Reload => {
                out.push(Action::ReadConfig { id: Some(id) });
                None
            }
            Request::DaemonReexec => Some(self.reexec(out)),
            // Streamed by the connection itself, never queued here.
            Request::Events { .. } => Some(served_by_the_connection("events")),
            Request::Metrics => Some(served_by_the_connection("metrics")),
            // Read from the log files by the connection itself.
            Request::Logs { .. } => Some(served_by_the_connection("logs")),
        };
        if let Some(reply) = reply {
            out.push(Action::Reply { id, reply });
        }
    }

    fn status(&self, now: Instant, names: &[String]) -> Option<Reply> {
        if names.is_empty() {
            return Some(Reply::ok(self.full_report(now)));
        }
        Some(match self.resolve(names) {
            Ok(targets) => Reply::ok(self.report(now, &targets)),
            Err(body) => Reply::Error(body),
        })
    }

    /// `daemon-reexec`: the shell re-executes herdd once the reply is out.
    fn reexec(&mut self, out: &mut Vec<Action>) -> Reply {
        if self.shutdown.is_some() {
            return shutting_down();
        }
        self.send_waiters_away(out);
        self.send_rollout_waiters_away(out);
        out.push(Action::Reexec);
        Reply::ok(serde_json::json!({}))
    }

    /// Applies `change` to every named instance; replies now, or registers
    /// a waiter that replies once they settle.
    fn change(
        &mut self,
        now: Instant,
        (id, client): (RequestId, ClientId),
        change: Change,
        names: &[String],
        wait: bool,
        out: &mut Vec<Action>,
    ) -> Option<Reply> {
        if change.starts() && self.shutdown.is_some() {
            return Some(shutting_down());
        }
        let targets = match self.resolve(names) {
            Ok(targets) => targets,
            Err(body) => return Some(Reply::Error(body)),
        };
        let targets = self.change_pool_timers(now, change, targets, out);
        let whole_units = self.whole_units(&targets);
        for target in &targets {
            let whole = whole_units.contains(&target.unit);
            if !self.units.contains_key(&target.unit) {
                continue;
            }
            let (wanted, transition) = change.apply(whole);
            if let Some(wanted) = wanted {
                self.units.set_wanted(&target.unit, wanted);
            }
            self.with_instance(now, target, out, transition);
        }
        if wait {
            self.waiters.push(Waiter {
                id,
                client,
                goal: change.goal(targets),
                deadline: None,
            });
            None
        } else {
            Some(Reply::ok(self.report(now, &targets)))
        }
    }

    /// Tasks whose runs are pool tasks: `start` submits a run now, `stop`
    /// cancels the runs under way; their own instance never runs. Returns
    /// the other targets.
    fn change_pool_timers(
        &mut self,
        now: Instant,
        change: Change,
        targets: Vec<InstanceId>,
        out: &mut Vec<Action>,
    ) -> Vec<InstanceId> {
        let (pooled, others): (Vec<_>, Vec<_>) = targets
            .into_iter()
            .partition(|target| self.runs_in_pool(&target.unit));
        for target in pooled {
            match change {
                Change::Start => self.fire(now, &target.unit, "herdctl start", out),
                Change::Restart => self.restart_timer_runs(now, &target.unit, out),
                Change::Stop => self.cancel_timer_runs(now, &target.unit, out),
            }
        }
        others
    }

    /// The units all of whose instances are among `targets`.
    fn whole_units(&self, targets: &[InstanceId]) -> std::collections::HashSet<String> {
        let mut named: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for target in targets {
            *named.entry(target.unit.as_str()).or_default() += 1;
        }
        // `resolve` returns each instance once, so a count equal to the unit's size means all.
        named
            .into_iter()
            .filter(|(unit, count)| {
                self.units
                    .get(unit)
                    .is_some_and(|u| u.target_count() as usize == *count)
            })
            .map(|(unit, _)| unit.to_string())
            .collect()
    }

    fn kill(&mut self, names: &[String], signal: &str, out: &mut Vec<Action>) -> Option<Reply> {
        let Some(signal) = parse_signal(signal) else {
            return Some(Reply::error(
                ErrorCode::BadRequest,
                format!("unknown signal {signal:?}"),
            ));
        };
        let targets = match self.resolve(names) {
            Ok(targets) => targets,
            Err(body) => return Some(Reply::Error(body)),
        };
        let mut signalled = Vec::new();
        for target in &targets {
            let unit = &self.units[&target.unit];
            let Some(position) = unit.position(target.index) else {
                continue;
            };
            if let Some(pid) = unit.instances[position].pid {
                out.push(Action::Signal { pid, signal });
                signalled.push(unit.instance_name(target.index));
            }
        }
        Some(if signalled.is_empty() {
            Reply::error(ErrorCode::Failed, "no running process to signal")
        } else {
            Reply::ok(KillReport { signalled })
        })
    }

    /// Adds or removes the highest-numbered instances; the others are untouched.
    fn scale(
        &mut self,
        now: Instant,
        name: &str,
        count: u32,
        out: &mut Vec<Action>,
    ) -> Option<Reply> {
        if self.shutdown.is_some() {
            return Some(shutting_down());
        }
        let Some(mut unit) = self.units.get_mut(name) else {
            return Some(Reply::Error(no_such_unit(name)));
        };
        if unit.config.kind == UnitKind::Task {
            return Some(Reply::error(
                ErrorCode::BadRequest,
                format!("{name} is a task; only services can be scaled"),
            ));
        }
        if count > MAX_INSTANCES {
            return Some(Reply::error(
                ErrorCode::BadRequest,
                format!("at most {MAX_INSTANCES} instances"),
            ));
        }
        if count != 1 {
            unit.is_pool = true;
        }
        drop(unit);
        let mut touched = self.resize(now, name, count, out);
        let unit = &self.units[name];
        touched.extend(unit.instances.iter().map(|i| InstanceId {
            unit: name.to_string(),
            index: i.index,
        }));
        touched.sort();
        touched.dedup();
        Some(Reply::ok(self.report(now, &touched)))
    }

    /// Adds or removes the highest-numbered instances so that `count` stay;
    /// returns the ones added. The others are untouched.
    pub(super) fn resize(
        &mut self,
        now: Instant,
        name: &str,
        count: u32,
        out: &mut Vec<Action>,
    ) -> Vec<InstanceId> {
        let Some(unit) = self.units.get(name) else {
            return Vec::new();
        };
        let current = unit.target_count();
        let mut added = Vec::new();
        if count > current {
            for index in current..count {
                added.push(self.add_instance(now, name, index, out));
            }
        } else {
            let leaving: Vec<u32> = unit
                .staying()
                .map(|i| i.index)
                .filter(|index| *index >= count)
                .collect();
            for index in leaving {
                let id = InstanceId {
                    unit: name.to_string(),
                    index,
                };
                if self.with_instance(now, &id, out, Instance::remove) == Some(Fate::Remove) {
                    self.drop_instance(&id);
                }
            }
        }
        added
    }

    /// Brings instance `index` (back) into the unit and starts it if the unit is wanted.
    fn add_instance(
        &mut self,
        now: Instant,
        name: &str,
        index: u32,
        out: &mut Vec<Action>,
    ) -> InstanceId {
        let id = InstanceId {
            unit: name.to_string(),
            index,
        };
        let wanted = self.units[name].wanted;
        // Still draining from an earlier scale-down: keep it, start it again once stopped.
        let draining = self
            .units
            .instance_mut(&id)
            .map(|slot| slot.instance.after_stop = super::instance::AfterStop::Start)
            .is_some();
        if !draining {
            let instance = Instance::new(index, &self.units[name].config);
            self.units.insert_instance(name, instance);
        }
        if wanted {
            self.with_instance(now, &id, out, Instance::start);
        }
        id
    }

    /// Every instance the names select, in order, without duplicates.
    pub(super) fn resolve(&self, names: &[String]) -> Result<Vec<InstanceId>, ErrorBody> {
        if names.is_empty() {
            return Err(error(ErrorCode::BadRequest, "name at least one unit"));
        }
        let mut targets: Vec<InstanceId> = Vec::new();
        for name in names {
            let found = self.select(name)?;
            for id in found {
                if !targets.contains(&id) {
                    targets.push(id);
                }
            }
        }
        Ok(targets)
    }

    fn select(&self, name: &str) -> Result<Vec<InstanceId>, ErrorBody> {
        let ids_of = |unit: &Unit| -> Vec<InstanceId> {
            unit.staying()
                .map(|i| InstanceId {
                    unit: unit.name().to_string(),
                    index: i.index,
                })
                .collect()
        };
        match Selector::parse(name) {
            Selector::Unit(unit) => self
                .units
                .get(&unit)
                .map(ids_of)
                .ok_or_else(|| no_such_unit(&unit)),
            Selector::Instance { unit, index } => {
                let found = self.units.get(&unit).ok_or_else(|| no_such_unit(&unit))?;
                if found.staying().any(|i| i.index == index) {
                    Ok(vec![InstanceId { unit, index }])
                } else {
                    Err(error(
                        ErrorCode::NoSuchUnit,
                        format!(
                            "no instance {name}: {unit} has {} instance(s)",
                            found.target_count()
                        ),
                    ))
                }
            }
            Selector::Glob(pattern) => {
                let glob = glob::Pattern::new(&pattern).map_err(|err| {
                    error(
                        ErrorCode::BadRequest,
                        format!("bad pattern {pattern:?}: {err}"),
                    )
                })?;
                let matches_instances = pattern.contains(herd_common::names::INSTANCE_SEPARATOR);
                let mut found = Vec::new();
                for unit in self.units.values() {
                    if matches_instances {
                        found.extend(
                            ids_of(unit)
                                .into_iter()
                                .filter(|id| glob.matches(&unit.instance_name(id.index))),
                        );
                    } else if glob.matches(unit.name()) {
                        found.extend(ids_of(unit));
                    }
                }
                if found.is_empty() {
                    Err(error(
                        ErrorCode::NoSuchUnit,
                        format!("no unit matches {pattern:?}"),
                    ))
                } else {
                    Ok(found)
                }
            }
        }
    }
}

/// The refusal of anything that would start processes during shutdown.
pub(super) fn shutting_down() -> Reply {
    Reply::error(ErrorCode::ShuttingDown, "herdd is shutting down")
}

/// The reply to a streaming verb that reached the core: the connection
/// serves it itself.
fn served_by_the_connection(verb: &str) -> Reply {
    Reply::error(
        ErrorCode::BadRequest,
        format!("{verb} is served by the connection, not the core"),
    )
}

fn no_such_unit(name: &str) -> ErrorBody {
    error(ErrorCode::NoSuchUnit, format!("no such unit: {name}"))
}
