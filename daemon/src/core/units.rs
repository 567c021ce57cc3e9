//! Every unit with its instances, and an index of what a step would
//! otherwise find by walking every instance: the instances' deadlines, the
//! instances waiting to start, and per unit how many instances are in each
//! state (what the units `after` it see). A step costs the same with 5,000
//! instances as with 50.
//!
//! The index can only go stale through a mutable borrow, and every one is a
//! guard that brings it up to date when dropped: [`Units::instance_mut`]
//! re-does one instance (the common case: one transition),
//! [`Units::get_mut`] the whole unit (scale, reload, restore).

use super::instance::Instance;
use super::unit::{AsDependency, Unit};
use super::InstanceId;
use herd_common::state::State;
use herd_config::{UnitConfig, UnitKind};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Deref, DerefMut};
use std::time::Instant;

#[derive(Debug, Default)]
pub(super) struct Units {
    all: BTreeMap<String, Unit>,
    index: Index,
    /// Units an instance of which changed state, deadline or place since the
    /// last [`Units::take_changed`] (for the timers' runs).
    changed: BTreeSet<String>,
}

/// What the index knows of one instance, to take it out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    deadline: Option<Instant>,
    state: State,
    /// Being scaled away: not counted among the unit's instances.
    leaving: bool,
}

impl Entry {
    fn of(instance: &Instance) -> Entry {
        Entry {
            deadline: instance.next_timer(),
            state: instance.state,
            leaving: instance.is_leaving(),
        }
    }
}

/// How many of a unit's staying instances are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Counts {
    staying: u32,
    by_state: [u32; STATES],
}

const STATES: usize = 8;

fn slot(state: State) -> usize {
    match state {
        State::Inactive => 0,
        State::Waiting => 1,
        State::Starting => 2,
        State::Running => 3,
        State::Stopping => 4,
        State::Backoff => 5,
        State::Exited => 6,
        State::Failed => 7,
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Index {
    entries: BTreeMap<InstanceId, Entry>,
    deadlines: BTreeSet<(Instant, InstanceId)>,
    waiting: BTreeSet<InstanceId>,
    counts: BTreeMap<String, Counts>,
    /// Units with `sets_event`, and units removed from the config that
    /// still have instances: the only ones the per-step checks look at.
    sets_event: BTreeSet<String>,
    removing: BTreeSet<String>,
}

impl Index {
    fn add(&mut self, id: InstanceId, entry: Entry) {
        if let Some(at) = entry.deadline {
            self.deadlines.insert((at, id.clone()));
        }
        if entry.state == State::Waiting {
            self.waiting.insert(id.clone());
        }
        if !entry.leaving {
            let counts = self.counts.entry(id.unit.clone()).or_default();
            counts.staying += 1;
            counts.by_state[slot(entry.state)] += 1;
        }
        self.entries.insert(id, entry);
    }

    fn take(&mut self, id: &InstanceId) {
        let Some(entry) = self.entries.remove(id) else {
            return;
        };
        if let Some(at) = entry.deadline {
            self.deadlines.remove(&(at, id.clone()));
        }
        self.waiting.remove(id);
        if let (false, Some(counts)) = (entry.leaving, self.counts.get_mut(&id.unit)) {
            counts.staying -= 1;
            counts.by_state[slot(entry.state)] -= 1;
        }
    }

    /// Re-does one instance (`None`: it is gone); whether it changed.
    fn instance(&mut self, id: &InstanceId, instance: Option<&Instance>) -> bool {
        let entry = instance.map(Entry::of);
        if self.entries.get(id) == entry.as_ref() {
            return false;
        }
        self.take(id);
        if let Some(entry) = entry {
            self.add(id.clone(), entry);
        }
        true
    }

    /// Re-does every instance of unit `name` (`None`: the unit is gone).
    fn unit(&mut self, name: &str, unit: Option<&Unit>) {
        let ids: Vec<InstanceId> = self
            .entries
            .range(of_unit(name))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            self.take(id);
        }
        self.counts.remove(name);
        self.sets_event.remove(name);
        self.removing.remove(name);
        let Some(unit) = unit else {
            return;
        };
        self.counts.insert(name.to_string(), Counts::default());
        for instance in &unit.instances {
            let id = InstanceId {
                unit: name.to_string(),
                index: instance.index,
            };
            self.add(id, Entry::of(instance));
        }
        if unit.config.sets_event.is_some() {
            self.sets_event.insert(name.to_string());
        }
        if unit.removing {
            self.removing.insert(name.to_string());
        }
    }
}

/// Every possible instance id of unit `name`, as a range of the index.
fn of_unit(name: &str) -> std::ops::RangeInclusive<InstanceId> {
    let id = |index| InstanceId {
        unit: name.to_string(),
        index,
    };
    id(0)..=id(u32::MAX)
}

impl std::ops::Index<&str> for Units {
    type Output = Unit;

    fn index(&self, name: &str) -> &Unit {
        &self.all[name]
    }
}

impl std::ops::Index<&String> for Units {
    type Output = Unit;

    fn index(&self, name: &String) -> &Unit {
        &self.all[name]
    }
}

impl Units {
    pub fn new(units: impl IntoIterator<Item = Unit>) -> Units {
        let mut all = Units::default();
        for unit in units {
            all.insert(unit.name().to_string(), unit);
        }
        all
    }

    pub fn get(&self, name: &str) -> Option<&Unit> {
        self.all.get(name)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.all.contains_key(name)
    }

    /// Every unit, by name.
    pub fn values(&self) -> impl Iterator<Item = &Unit> + '_ {
        self.all.values()
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> + '_ {
        self.all.keys()
    }

    /// The unit, to change as a whole: its instances are indexed again when
    /// the guard is dropped (a walk of that unit).
    pub fn get_mut(&mut self, name: &str) -> Option<UnitMut<'_>> {
        let unit = self.all.get_mut(name)?;
        self.changed.insert(name.to_string());
        Some(UnitMut {
            name: name.to_string(),
            unit,
            index: &mut self.index,
        })
    }

    /// One instance, to change: only it is indexed again when the guard is
    /// dropped.
    pub fn instance_mut(&mut self, id: &InstanceId) -> Option<InstanceMut<'_>> {
        let unit = self.all.get_mut(&id.unit)?;
        let position = unit.position(id.index)?;
        let Unit {
            config,
            instances,
            is_pool,
            ..
        } = unit;
        Some(InstanceMut {
            id: id.clone(),
            config,
            is_pool: *is_pool,
            instance: &mut instances[position],
            index: &mut self.index,
            changed: &mut self.changed,
        })
    }

    /// Whether the user wants unit `name` up (no instance changes).
    pub fn set_wanted(&mut self, name: &str, wanted: bool) {
        if let Some(unit) = self.all.get_mut(name) {
            unit.wanted = wanted;
        }
    }

    /// The readiness last applied to unit `name`'s `sets_event`.
    pub fn set_sets_event_ready(&mut self, name: &str, ready: bool) {
        if let Some(unit) = self.all.get_mut(name) {
            unit.sets_event_ready = ready;
        }
    }

    /// Adds `instance` to unit `name` in index order (there is none with
    /// its index yet); only it is indexed.
    pub fn insert_instance(&mut self, name: &str, instance: Instance) {
        let Some(unit) = self.all.get_mut(name) else {
            return;
        };
        let id = InstanceId {
            unit: name.to_string(),
            index: instance.index,
        };
        let at = unit.instances.partition_point(|i| i.index < instance.index);
        unit.instances.insert(at, instance);
        self.index.instance(&id, Some(&unit.instances[at]));
        self.changed.insert(name.to_string());
    }

    /// Takes instance `id` out of its unit; only it leaves the index.
    pub fn remove_instance(&mut self, id: &InstanceId) {
        let Some(unit) = self.all.get_mut(&id.unit) else {
            return;
        };
        if let Some(position) = unit.position(id.index) {
            unit.instances.remove(position);
            self.index.instance(id, None);
            self.changed.insert(id.unit.clone());
        }
    }

    /// The units changed since the last call (see `changed`).
    pub fn take_changed(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.changed)
    }

    pub fn insert(&mut self, name: String, unit: Unit) {
        self.index.unit(&name, Some(&unit));
        self.changed.insert(name.clone());
        self.all.insert(name, unit);
    }

    pub fn remove(&mut self, name: &str) -> Option<Unit> {
        self.index.unit(name, None);
        self.changed.remove(name);
        self.all.remove(name)
    }

    /// The earliest deadline of any instance (its state's, its watchdog's
    /// or its next health probe).
    pub fn first_deadline(&self) -> Option<Instant> {
        self.index.deadlines.first().map(|(at, _)| *at)
    }

    /// The instances whose deadline is at or before `now`, earliest first.
    pub fn due(&self, now: Instant) -> Vec<InstanceId> {
        self.index
            .deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// The instances waiting to start (for dependencies, events or
    /// semaphore slots), by unit and index.
    pub fn waiting(&self) -> Vec<InstanceId> {
        self.index.waiting.iter().cloned().collect()
    }

    /// How unit `name` looks to the units `after` it (see
    /// [`Unit::as_dependency`]), from the counts: no walk of its instances.
    pub fn as_dependency(&self, name: &str) -> Option<AsDependency> {
        let unit = self.all.get(name)?;
        let counts = self.index.counts.get(name)?;
        let wanted = match unit.config.kind {
            UnitKind::Service => State::Running,
            UnitKind::Task => State::Exited,
        };
        Some(if counts.staying == 0 {
            AsDependency::Pending
        } else if counts.by_state[slot(State::Failed)] > 0 {
            AsDependency::Failed
        } else if counts.by_state[slot(wanted)] == counts.staying {
            AsDependency::Satisfied
        } else {
            AsDependency::Pending
        })
    }

    /// How many of unit `name`'s staying instances are not running.
    pub fn unavailable(&self, name: &str) -> usize {
        self.index.counts.get(name).map_or(0, |counts| {
            (counts.staying - counts.by_state[slot(State::Running)]) as usize
        })
    }

    /// The units with `sets_event`.
    pub fn setting_events(&self) -> Vec<String> {
        self.index.sets_event.iter().cloned().collect()
    }

    /// Unit `name` is gone from the config: dropped once no instance is left
    /// (see [`Units::drop_removed`]), or back in it.
    pub fn set_removing(&mut self, name: &str, removing: bool) {
        let Some(unit) = self.all.get_mut(name) else {
            return;
        };
        unit.removing = removing;
        match removing {
            true => self.index.removing.insert(name.to_string()),
            false => self.index.removing.remove(name),
        };
    }

    /// Drops the units removed from the config once no instance is left.
    pub fn drop_removed(&mut self) {
        let gone: Vec<String> = self
            .index
            .removing
            .iter()
            .filter(|name| self.all.get(*name).is_some_and(|u| u.instances.is_empty()))
            .cloned()
            .collect();
        for name in gone {
            self.remove(&name);
        }
    }

    /// Whether the index says what a walk of every instance says (tests).
    #[cfg(test)]
    pub fn index_is_true(&self) -> bool {
        let (mut deadlines, mut waiting) = (BTreeSet::new(), BTreeSet::new());
        for (name, unit) in &self.all {
            for instance in &unit.instances {
                let id = InstanceId {
                    unit: name.clone(),
                    index: instance.index,
                };
                if let Some(at) = instance.next_timer() {
                    deadlines.insert((at, id.clone()));
                }
                if instance.state == State::Waiting {
                    waiting.insert(id);
                }
            }
        }
        let named = |keep: fn(&Unit) -> bool| -> BTreeSet<String> {
            let units = self.all.values().filter(|unit| keep(unit));
            units.map(|unit| unit.name().to_string()).collect()
        };
        let walked_apart = deadlines == self.index.deadlines
            && waiting == self.index.waiting
            && named(|u| u.config.sets_event.is_some()) == self.index.sets_event
            && named(|u| u.removing) == self.index.removing;
        let mut walked = Index::default();
        for (name, unit) in &self.all {
            walked.unit(name, Some(unit));
        }
        let counts_agree = self.all.iter().all(|(name, unit)| {
            self.as_dependency(name) == Some(unit.as_dependency())
                && self.unavailable(name)
                    == unit
                        .staying()
                        .filter(|instance| instance.state != State::Running)
                        .count()
        });
        walked_apart && walked == self.index && counts_agree
    }
}

/// A unit borrowed to change: re-indexed as a whole when dropped.
pub(super) struct UnitMut<'a> {
    name: String,
    unit: &'a mut Unit,
    index: &'a mut Index,
}

impl Deref for UnitMut<'_> {
    type Target = Unit;

    fn deref(&self) -> &Unit {
        self.unit
    }
}

impl DerefMut for UnitMut<'_> {
    fn deref_mut(&mut self) -> &mut Unit {
        self.unit
    }
}

impl Drop for UnitMut<'_> {
    fn drop(&mut self) {
        self.index.unit(&self.name, Some(self.unit));
    }
}

/// One instance borrowed to change, with its unit's config: re-indexed
/// when dropped.
pub(super) struct InstanceMut<'a> {
    id: InstanceId,
    pub config: &'a UnitConfig,
    pub is_pool: bool,
    pub instance: &'a mut Instance,
    index: &'a mut Index,
    changed: &'a mut BTreeSet<String>,
}

impl Drop for InstanceMut<'_> {
    fn drop(&mut self) {
        if self.index.instance(&self.id, Some(self.instance)) {
            self.changed.insert(self.id.unit.clone());
        }
    }
}
