//! Survivors of a killed herdd that left no usable journal: processes the
//! shell found, by the marks herd puts in every child's environment, to be
//! instances of this herdd's units (see shell/survivors.rs for how they are
//! found and proved ours). The core takes them over as those instances —
//! some instances of a unit adopted, the others started by boot as usual —
//! and stops the ones the config no longer has room for.

use super::instance::{Fate, Instance};
use super::semaphore::Holder;
use super::{Action, InstanceId, Owner, Supervisor};
use herd_common::state::State;
use std::time::{Duration, Instant};

/// A live process of unit `unit`, instance `index`, left by a previous herdd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Survivor {
    pub unit: String,
    pub index: u32,
    pub pid: u32,
    /// How long it has been running (its uptime in `status`).
    pub age: Duration,
}

impl Supervisor {
    /// Takes `survivors` over, before [`super::Input::Boot`], on a supervisor
    /// that restored nothing. A survivor of a configured unit becomes its
    /// instance, running and adopted (watched by the shell, exit status
    /// unknown), and its unit counts as wanted: boot starts only the
    /// instances that have no survivor. One whose index is past the unit's
    /// instance count is stopped and dropped, as a scale-down would (the
    /// unit's `stop_signal`, then SIGKILL after its `stop_timeout`). Returns
    /// the actions to carry out and the survivors of units the config does
    /// not have, which the core cannot stop (it has no `stop_signal` for
    /// them): the shell stops them.
    pub fn adopt_survivors(
        &mut self,
        now: Instant,
        survivors: Vec<Survivor>,
    ) -> (Vec<Action>, Vec<Survivor>) {
        let mut out = Vec::new();
        let mut strays = Vec::new();
        let mut leaving = Vec::new();
        for survivor in survivors {
            let Some(unit) = self.units.get_mut(&survivor.unit) else {
                strays.push(survivor);
                continue;
            };
            let id = InstanceId {
                unit: survivor.unit.clone(),
                index: survivor.index,
            };
            let position = match unit.position(survivor.index) {
                // Two survivors claiming one instance: the shell keeps one.
                Some(position) if unit.instances[position].pid.is_some() => {
                    strays.push(survivor);
                    continue;
                }
                Some(position) => position,
                None => {
                    let at = unit
                        .instances
                        .partition_point(|i| i.index < survivor.index);
                    unit.instances
                        .insert(at, Instance::new(survivor.index, &unit.config));
                    leaving.push(id.clone());
                    at
                }
            };
            let instance = &mut unit.instances[position];
            instance.state = State::Running;
            instance.pid = Some(survivor.pid);
            instance.adopted = true;
            instance.spawned_at = Some(now.checked_sub(survivor.age).unwrap_or(now));
            instance.watchdog.arm(now, &unit.config);
            unit.wanted = true;
            let name = unit.instance_name(survivor.index);
            let semaphores = unit.config.semaphores.clone();
            let holder = Holder::Instance(id.clone());
            if self
                .semaphores
                .try_acquire(&holder, &semaphores, &name, &mut out)
                .is_err()
            {
                // It runs already: it keeps running, out of line.
                self.semaphores.withdraw(&holder);
            }
            self.pids.insert(survivor.pid, Owner::Instance(id));
        }
        for id in leaving {
            if self.with_instance(now, &id, &mut out, Instance::remove) == Some(Fate::Remove) {
                self.drop_instance(&id);
            }
        }
        (out, strays)
    }
}
