//! `reload`: apply a new config to the running supervisor. New units start,
//! removed ones stop and go, changed ones restart with their new definition,
//! everything else is left exactly as it is.

use super::instance::{Fate, Instance};
use super::pool::Pool;
use super::unit::Unit;
use super::{Action, InstanceId, Supervisor};
use herd_common::protocol::ReloadReport;
use herd_common::state::State;
use herd_config::{Config, HerdSettings, UnitConfig, UnitKind};
use std::time::Instant;

impl Supervisor {
    pub(super) fn reload(
        &mut self,
        now: Instant,
        config: &Config,
        out: &mut Vec<Action>,
    ) -> ReloadReport {
        let mut report = ReloadReport::default();
        self.reload_herd(&config.herd, &mut report);
        self.shutdown_timeout = self.herd.shutdown_timeout;
        self.semaphores.reconfigure(
            config
                .semaphores
                .iter()
                .map(|s| (s.name.clone(), s.capacity)),
        );
        self.events
            .declare(config.events.iter().map(|e| (e.name.clone(), e.set)));
        self.reload_pools(config, &mut report, now, out);
        let gone: Vec<String> = self
            .units
            .keys()
            .filter(|name| !config.units.iter().any(|u| &u.name == *name))
            .cloned()
            .collect();
        for name in gone {
            self.remove_unit(now, &name, out);
            report.removed.push(name);
        }
        // A service whose socket moved to another address gets the new one
        // by restarting.
        let moved: Vec<&str> = config
            .sockets
            .iter()
            .filter(|new| {
                self.sockets
                    .iter()
                    .any(|old| old.name == new.name && old.listen != new.listen)
            })
            .map(|socket| socket.name.as_str())
            .collect();
        self.sockets = config.sockets.clone();
        for unit in &config.units {
            let socket_moved = unit
                .sockets
                .iter()
                .any(|name| moved.contains(&name.as_str()));
            match self.units.get(&unit.name) {
                None => {
                    self.add_unit(now, unit.clone(), out);
                    report.added.push(unit.name.clone());
                }
                Some(current) if socket_moved && current.config == *unit && !current.removing => {
                    self.restart_onto_moved_socket(now, &unit.name, out);
                    report.changed.push(unit.name.clone());
                }
                Some(current) if current.config != *unit || current.removing => {
                    self.replace_unit(now, unit.clone(), out);
                    report.changed.push(unit.name.clone());
                }
                Some(_) => {}
            }
        }
        report
    }

    /// `[herd]`: keys the shell applies at once (shutdown timeout, log
    /// settings) are reported as updated; the others (sockets, state dir,
    /// the control group) need a restart of herdd, and until then keep
    /// their old value, so each reload reports them again.
    fn reload_herd(&mut self, new: &HerdSettings, report: &mut ReloadReport) {
        let HerdSettings {
            socket,
            log_dir,
            state_dir,
            dbus,
            shutdown_timeout,
            control_group,
            log_max_size,
            log_keep,
            metrics_listen,
            journal_socket,
        } = new;
        let old = &self.herd;
        let applied = [
            (
                "shutdown_timeout",
                old.shutdown_timeout != *shutdown_timeout,
            ),
            ("log_dir", old.log_dir != *log_dir),
            ("log_max_size", old.log_max_size != *log_max_size),
            ("log_keep", old.log_keep != *log_keep),
            ("journal_socket", old.journal_socket != *journal_socket),
        ];
        let later = [
            ("socket", old.socket != *socket),
            ("state_dir", old.state_dir != *state_dir),
            ("dbus", old.dbus != *dbus),
            ("control_group", old.control_group != *control_group),
            ("metrics_listen", old.metrics_listen != *metrics_listen),
        ];
        let keys = |list: &[(&str, bool)]| -> Vec<String> {
            list.iter()
                .filter(|(_, changed)| *changed)
                .map(|(key, _)| format!("herd.{key}"))
                .collect()
        };
        report.updated.extend(keys(&applied));
        report.restart_needed = keys(&later);
        self.herd = HerdSettings {
            socket: old.socket.clone(),
            state_dir: old.state_dir.clone(),
            dbus: old.dbus.clone(),
            control_group: old.control_group.clone(),
            metrics_listen: old.metrics_listen,
            ..new.clone()
        };
    }

    fn add_unit(&mut self, now: Instant, config: UnitConfig, out: &mut Vec<Action>) {
        let name = config.name.clone();
        // A task with a timer runs when its timer says (`reload_timers`).
        let autostart = config.autostart && config.timer.is_none();
        let mut unit = Unit::new(config);
        unit.wanted = autostart;
        let indexes: Vec<u32> = unit.instances.iter().map(|i| i.index).collect();
        self.units.insert(name.clone(), unit);
        if autostart {
            for index in indexes {
                let id = InstanceId {
                    unit: name.clone(),
                    index,
                };
                self.with_instance(now, &id, out, Instance::start);
            }
        }
    }

    /// Stops every instance; the unit goes once the last one has exited.
    fn remove_unit(&mut self, now: Instant, name: &str, out: &mut Vec<Action>) {
        let Some(unit) = self.units.get(name) else {
            return;
        };
        let indexes: Vec<u32> = unit.instances.iter().map(|i| i.index).collect();
        self.units.set_removing(name, true);
        self.units.set_wanted(name, false);
        for index in indexes {
            let id = InstanceId {
                unit: name.to_string(),
                index,
            };
            if self.with_instance(now, &id, out, Instance::remove) == Some(Fate::Remove) {
                self.drop_instance(&id);
            }
        }
    }

    /// New definition: the instance count follows it (as `scale` does), and
    /// if anything else changed every instance that has (or is about to
    /// have) a process restarts with it.
    fn replace_unit(&mut self, now: Instant, config: UnitConfig, out: &mut Vec<Action>) {
        let name = config.name.clone();
        let count = match config.kind {
            UnitKind::Service => config.instances.unwrap_or(1),
            UnitKind::Task => 1,
        };
        let Some(mut unit) = self.units.get_mut(&name) else {
            return;
        };
        let settings_changed = !same_but_count(&unit.config, &config);
        let health_changed = unit.config.health != config.health;
        unit.removing = false;
        unit.is_pool = config.instances.is_some();
        unit.config = config;
        drop(unit);
        let added = self.resize(now, &name, count, out);
        if !settings_changed {
            if health_changed {
                self.follow_new_probe(now, &name, out);
            }
            return;
        }
        let unit = &self.units[&name];
        let running: Vec<InstanceId> = unit
            .staying()
            .filter(|i| !added.iter().any(|a| a.index == i.index))
            .filter(|i| match i.state {
                State::Starting | State::Running | State::Waiting | State::Backoff => true,
                State::Inactive | State::Stopping | State::Exited | State::Failed => false,
            })
            .map(|i| InstanceId {
                unit: name.clone(),
                index: i.index,
            })
            .collect();
        if unit.config.rolls_on_update() && running.len() > 1 {
            let indexes = running.iter().map(|id| id.index).collect();
            self.begin_rollout(now, &name, indexes, None, out);
            return;
        }
        for id in running {
            self.with_instance(now, &id, out, Instance::restart);
        }
    }

    /// A service whose definition is unchanged but one of whose sockets
    /// moved to another address: its running instances restart (rolling,
    /// when it rolls on update) to get the new socket.
    fn restart_onto_moved_socket(&mut self, now: Instant, name: &str, out: &mut Vec<Action>) {
        let Some(unit) = self.units.get(name) else {
            return;
        };
        let running: Vec<u32> = unit
            .staying()
            .filter(|i| match i.state {
                State::Starting | State::Running | State::Waiting | State::Backoff => true,
                State::Inactive | State::Stopping | State::Exited | State::Failed => false,
            })
            .map(|i| i.index)
            .collect();
        if unit.config.rolls_on_update() && running.len() > 1 {
            self.begin_rollout(now, name, running, None, out);
            return;
        }
        for index in running {
            let id = InstanceId {
                unit: name.to_string(),
                index,
            };
            self.with_instance(now, &id, out, Instance::restart);
        }
    }

    fn reload_pools(
        &mut self,
        config: &Config,
        report: &mut ReloadReport,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let gone: Vec<String> = self
            .pools
            .keys()
            .filter(|name| !config.pools.iter().any(|p| &p.name == *name))
            .cloned()
            .collect();
        for name in gone {
            // Its tasks are cancelled; the pool goes once they have all ended.
            self.terminate_pool(now, &name, out);
            if let Some(pool) = self.pools.get_mut(&name) {
                pool.closed = true;
                pool.removing = true;
            }
            report.removed.push(format!("pool {name}"));
        }
        for pool in &config.pools {
            match self.pools.get_mut(&pool.name) {
                None => {
                    self.pools
                        .insert(pool.name.clone(), Pool::new(pool.clone()));
                    report.added.push(format!("pool {}", pool.name));
                }
                Some(current) if current.config != *pool || current.removing => {
                    // Takes effect from the next task on; running ones go on.
                    current.config = pool.clone();
                    current.removing = false;
                    current.closed = false;
                    report.updated.push(format!("pool {}", pool.name));
                }
                Some(_) => {}
            }
        }
    }

    /// Drops removed units and pools once nothing of them runs any more.
    pub(super) fn drop_removed(&mut self) {
        self.units.drop_removed();
        let gone: Vec<String> = self
            .pools
            .iter()
            .filter(|(_, pool)| pool.removing && pool.is_drained())
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            self.pools.remove(&name);
            self.tasks.retain(|_, task| task.pool != name);
        }
    }
}

/// Whether `new` differs from `old` in its instance count alone, or also in
/// what running instances follow without a restart: its health probe (used
/// from the next probe on) and its `on_failure` hook (used at the next
/// failure). A pool of one (`instances = 1`, `web@0`) and a plain service
/// (`web`) are named differently, so turning one into the other is not a
/// count change.
fn same_but_count(old: &UnitConfig, new: &UnitConfig) -> bool {
    let counted = |config: &UnitConfig| config.instances.is_some();
    counted(old) == counted(new)
        && *old
            == UnitConfig {
                instances: old.instances,
                health: old.health.clone(),
                on_failure: old.on_failure.clone(),
                ..new.clone()
            }
}
