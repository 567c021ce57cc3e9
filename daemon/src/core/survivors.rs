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
use std::collections::HashSet;
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

/// What [`Supervisor::adopt_survivors`] made of the survivors.
#[derive(Debug, Default)]
pub struct Adoption {
    /// To carry out: stops of survivors past their unit's instance count,
    /// semaphore grants.
    pub actions: Vec<Action>,
    /// The pids now instances of this herdd (the shell watches them).
    pub adopted: Vec<u32>,
    /// Survivors of units the config does not have, which the core cannot
    /// stop (it has no `stop_signal` for them): the shell stops them.
    pub strays: Vec<Survivor>,
}

impl Supervisor {
    /// Takes `survivors` over, before [`super::Input::Boot`]: on a fresh
    /// supervisor (no usable journal), or on one restored from a journal
    /// that missed them (`gone`: the journaled pids that no longer run).
    ///
    /// A survivor of a configured unit becomes its instance, running and
    /// adopted (watched by the shell, exit status unknown), unless that
    /// instance has a process that still runs (then the survivor is left
    /// alone: a child of it that called `setsid`). Its unit counts as
    /// wanted, so boot starts only the instances that have no survivor. A
    /// survivor whose index is past the unit's instances is stopped and
    /// dropped, as a scale-down would (the unit's `stop_signal`, then
    /// SIGKILL after its `stop_timeout`).
    pub fn adopt_survivors(
        &mut self,
        now: Instant,
        survivors: Vec<Survivor>,
        gone: &HashSet<u32>,
    ) -> Adoption {
        let mut adoption = Adoption::default();
        let mut leaving = Vec::new();
        for survivor in survivors {
            let Some(unit) = self.units.get(&survivor.unit) else {
                adoption.strays.push(survivor);
                continue;
            };
            let id = InstanceId {
                unit: survivor.unit.clone(),
                index: survivor.index,
            };
            match unit.position(survivor.index) {
                Some(position) => match unit.instances[position].pid {
                    Some(pid) if !gone.contains(&pid) => continue,
                    Some(pid) => {
                        self.pids.remove(&pid);
                    }
                    None => {}
                },
                None => {
                    let instance = Instance::new(survivor.index, &unit.config);
                    self.units.insert_instance(&survivor.unit, instance);
                    leaving.push(id.clone());
                }
            }
            let Some(slot) = self.units.instance_mut(&id) else {
                continue;
            };
            // Whatever the journal said it was doing, it runs this process now.
            let fresh = Instance::new(survivor.index, slot.config);
            let previous = std::mem::replace(&mut *slot.instance, fresh);
            let instance = &mut *slot.instance;
            instance.restarts = previous.restarts;
            instance.last_exit = previous.last_exit;
            instance.state = State::Running;
            instance.pid = Some(survivor.pid);
            instance.adopted = true;
            instance.spawned_at = Some(now.checked_sub(survivor.age).unwrap_or(now));
            instance.watchdog.arm(now, slot.config);
            instance.health.resume(now, slot.config, instance.state);
            let name = herd_common::names::instance_name(&id.unit, id.index, slot.is_pool);
            let semaphores = slot.config.semaphores.clone();
            drop(slot);
            self.units.set_wanted(&survivor.unit, true);
            let holder = Holder::Instance(id.clone());
            if self
                .semaphores
                .try_acquire(now, &holder, &semaphores, &name, &mut adoption.actions)
                .is_err()
            {
                // It runs already: it keeps running, out of line.
                self.semaphores.withdraw(&holder);
            }
            self.pids.insert(survivor.pid, Owner::Instance(id));
            adoption.adopted.push(survivor.pid);
        }
        for id in leaving {
            let out = &mut adoption.actions;
            if self.with_instance(now, &id, out, Instance::remove) == Some(Fate::Remove) {
                self.drop_instance(&id);
            }
        }
        adoption
    }
}
