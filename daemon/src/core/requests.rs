//! Client requests: name resolution and the verbs.

use super::instance::{Fate, Instance};
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

impl Supervisor {
    pub(super) fn request(
        &mut self,
        now: Instant,
        id: RequestId,
        client: ClientId,
        request: Request,
        out: &mut Vec<Action>,
    ) {
        let reply = match request {
            Request::Status { names } => self.status(now, &names),
            Request::Start { names, wait } => self.change(
                now,
                (id, client),
                &names,
                wait,
                Goal::Started,
                out,
                |unit, _| {
                    unit.wanted = true;
                    Instance::start
                },
            ),
            Request::Stop { names, wait } => self.change(
                now,
                (id, client),
                &names,
                wait,
                Goal::Stopped,
                out,
                |unit, whole| {
                    if whole {
                        unit.wanted = false;
                    }
                    Instance::stop
                },
            ),
            Request::Restart { names, wait } => self.change(
                now,
                (id, client),
                &names,
                wait,
                Goal::Started,
                out,
                |unit, _| {
                    unit.wanted = true;
                    Instance::restart
                },
            ),
            Request::Kill { names, signal } => self.kill(&names, &signal, out),
            Request::Scale { name, instances } => self.scale(now, &name, instances, out),
            Request::Shutdown => {
                self.begin_shutdown(now, out);
                Some(Reply::ok(serde_json::json!({})))
            }
            Request::Submit {
                pool,
                command,
                name,
            } => Some(self.submit(now, &pool, command, name, out)),
            Request::Join { ids, timeout_ms } => self.join(now, (id, client), ids, timeout_ms),
            Request::Tasks { pool } => Some(self.list_tasks(now, pool.as_deref())),
            Request::Output { id: task, stream } => Some(self.output(task, stream)),
            Request::Cancel { ids } => Some(self.cancel(now, &ids, out)),
            Request::PoolClose { pool } => Some(self.close_pool(&pool)),
            Request::PoolTerminate { pool } => Some(self.terminate_pool(now, &pool, out)),
            Request::PoolJoin { pool, timeout_ms } => {
                self.join_pool(now, (id, client), pool, timeout_ms)
            }
            Request::SemList => Some(self.sem_list()),
            Request::SemAcquire {
                name,
                timeout_ms,
                pid,
            } => self.sem_acquire(now, (id, client), name, timeout_ms, pid),
            Request::SemRelease { name } => Some(self.sem_release(client, &name, out)),
            Request::EventList => Some(self.event_list()),
            Request::EventSet { name } => Some(self.event_change(&name, true, out)),
            Request::EventClear { name } => Some(self.event_change(&name, false, out)),
            // The shell reads the file; the core applies it on `Input::ConfigLoaded`.
            Request::Reload => {
                out.push(Action::ReadConfig { id: Some(id) });
                None
            }
            Request::DaemonReexec => {
                if self.shutdown.is_some() {
                    Some(Reply::error(
                        ErrorCode::ShuttingDown,
                        "herdd is shutting down",
                    ))
                } else {
                    self.send_waiters_away(out);
                    out.push(Action::Reexec);
                    Some(Reply::ok(serde_json::json!({})))
                }
            }
            // Streamed by the connection itself (control/socket.rs), never queued here.
            Request::Events { .. } => Some(Reply::error(
                ErrorCode::BadRequest,
                "events is served by the connection, not the core",
            )),
            // Read from the log files by the connection itself (control/logs.rs).
            Request::Logs { .. } => Some(Reply::error(
                ErrorCode::BadRequest,
                "logs is served by the connection, not the core",
            )),
            Request::EventWait { name, timeout_ms } => {
                self.event_wait(now, (id, client), name, timeout_ms)
            }
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

    /// Applies a transition to every named instance; replies now, or registers
    /// a waiter that replies once they settle. `pick` sees the unit and whether
    /// all of it was named, and returns the transition.
    #[allow(clippy::too_many_arguments)]
    fn change(
        &mut self,
        now: Instant,
        (id, client): (RequestId, ClientId),
        names: &[String],
        wait: bool,
        goal: fn(Vec<InstanceId>) -> Goal,
        out: &mut Vec<Action>,
        pick: impl Fn(&mut Unit, bool) -> fn(&mut Instance, &mut super::instance::Ctx),
    ) -> Option<Reply> {
        if matches!(goal(Vec::new()), Goal::Started(_)) && self.shutdown.is_some() {
            return Some(Reply::error(
                ErrorCode::ShuttingDown,
                "herdd is shutting down",
            ));
        }
        let targets = match self.resolve(names) {
            Ok(targets) => targets,
            Err(body) => return Some(Reply::Error(body)),
        };
        let whole_units = self.whole_units(&targets);
        for target in &targets {
            let whole = whole_units.contains(&target.unit);
            let Some(unit) = self.units.get_mut(&target.unit) else {
                continue;
            };
            let transition = pick(unit, whole);
            self.with_instance(now, target, out, transition);
        }
        if wait {
            self.waiters.push(Waiter {
                id,
                client,
                goal: goal(targets),
                deadline: None,
            });
            None
        } else {
            Some(Reply::ok(self.report(now, &targets)))
        }
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
                    .get(*unit)
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
            return Some(Reply::error(
                ErrorCode::ShuttingDown,
                "herdd is shutting down",
            ));
        }
        let Some(unit) = self.units.get_mut(name) else {
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
        let unit = self
            .units
            .get_mut(name)
            .expect("caller checked the unit exists");
        match unit.position(index) {
            // Still draining from an earlier scale-down: keep it, start it again once stopped.
            Some(position) => {
                unit.instances[position].after_stop = super::instance::AfterStop::Start
            }
            None => {
                let instance = Instance::new(index, &unit.config);
                let position = unit.instances.partition_point(|i| i.index < index);
                unit.instances.insert(position, instance);
            }
        }
        let id = InstanceId {
            unit: name.to_string(),
            index,
        };
        if unit.wanted {
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

fn no_such_unit(name: &str) -> ErrorBody {
    error(ErrorCode::NoSuchUnit, format!("no such unit: {name}"))
}
