//! The timers of every unit that has one, with an index of their next
//! firings and of the timers with a run under way, so that a step looks at
//! the timers that are due or busy, not at every timer in the config.
//!
//! As with the instances (`units.rs`), a timer can only be changed through
//! a guard that indexes it again when dropped.

use super::timer::Timer;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Deref, DerefMut};
use std::time::Instant;

#[derive(Debug, Default)]
pub(super) struct Timers {
    all: BTreeMap<String, Timer>,
    index: Index,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Index {
    /// Each timer's next firing, earliest first.
    deadlines: BTreeSet<(Instant, String)>,
    /// What `deadlines` holds for each timer.
    indexed: BTreeMap<String, Instant>,
    /// Timers whose run is going (their own process, or pool tasks).
    busy: BTreeSet<String>,
}

impl Index {
    fn follow(&mut self, name: &str, timer: Option<&Timer>) {
        let deadline = timer.and_then(|t| t.deadline);
        if self.indexed.get(name).copied() != deadline {
            if let Some(at) = self.indexed.remove(name) {
                self.deadlines.remove(&(at, name.to_string()));
            }
            if let Some(at) = deadline {
                self.deadlines.insert((at, name.to_string()));
                self.indexed.insert(name.to_string(), at);
            }
        }
        let busy = timer.is_some_and(|t| t.running || !t.tasks.is_empty());
        if busy != self.busy.contains(name) {
            match busy {
                true => self.busy.insert(name.to_string()),
                false => self.busy.remove(name),
            };
        }
    }
}

impl std::ops::Index<&str> for Timers {
    type Output = Timer;

    fn index(&self, name: &str) -> &Timer {
        &self.all[name]
    }
}

impl std::ops::Index<&String> for Timers {
    type Output = Timer;

    fn index(&self, name: &String) -> &Timer {
        &self.all[name]
    }
}

impl FromIterator<(String, Timer)> for Timers {
    fn from_iter<I: IntoIterator<Item = (String, Timer)>>(timers: I) -> Timers {
        let mut all = Timers::default();
        for (name, timer) in timers {
            all.index.follow(&name, Some(&timer));
            all.all.insert(name, timer);
        }
        all
    }
}

impl Timers {
    pub fn get(&self, name: &str) -> Option<&Timer> {
        self.all.get(name)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.all.contains_key(name)
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> + '_ {
        self.all.keys()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Timer)> + '_ {
        self.all.iter()
    }

    /// The timer, to change: indexed again when the guard is dropped.
    pub fn get_mut(&mut self, name: &str) -> Option<TimerMut<'_>> {
        let timer = self.all.get_mut(name)?;
        Some(TimerMut {
            name: name.to_string(),
            timer,
            index: &mut self.index,
        })
    }

    pub fn remove(&mut self, name: &str) -> Option<Timer> {
        self.index.follow(name, None);
        self.all.remove(name)
    }

    /// The earliest firing of any timer.
    pub fn first_deadline(&self) -> Option<Instant> {
        self.index.deadlines.first().map(|(at, _)| *at)
    }

    /// The timers whose firing is at or before `now`, earliest first.
    pub fn due(&self, now: Instant) -> Vec<String> {
        self.index
            .deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, name)| name.clone())
            .collect()
    }

    /// The timers with a run going.
    pub fn busy(&self) -> impl Iterator<Item = &String> + '_ {
        self.index.busy.iter()
    }

    /// Whether the index says what a walk of every timer says (tests).
    #[cfg(test)]
    pub fn index_is_true(&self) -> bool {
        let deadlines: BTreeSet<(Instant, String)> = self
            .all
            .iter()
            .filter_map(|(name, timer)| Some((timer.deadline?, name.clone())))
            .collect();
        let busy: BTreeSet<String> = self
            .all
            .iter()
            .filter(|(_, timer)| timer.running || !timer.tasks.is_empty())
            .map(|(name, _)| name.clone())
            .collect();
        deadlines == self.index.deadlines
            && busy == self.index.busy
            && self.index.indexed.len() == deadlines.len()
    }
}

/// A timer borrowed to change: indexed again when dropped.
pub(super) struct TimerMut<'a> {
    name: String,
    timer: &'a mut Timer,
    index: &'a mut Index,
}

impl Deref for TimerMut<'_> {
    type Target = Timer;

    fn deref(&self) -> &Timer {
        self.timer
    }
}

impl DerefMut for TimerMut<'_> {
    fn deref_mut(&mut self) -> &mut Timer {
        self.timer
    }
}

impl Drop for TimerMut<'_> {
    fn drop(&mut self) {
        self.index.follow(&self.name, Some(self.timer));
    }
}
