//! The waiting requests, indexed so that a step looks only at those that
//! may be done: an `event wait` only when its event is set, a waiter with a
//! deadline through a queue ordered by deadline. With thousands of clients
//! waiting on events that are not set, a step costs no more than without.

use super::{Goal, Waiter};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

/// Waiters in arrival order (replies settled in one step go out in that order).
#[derive(Debug, Default)]
pub(super) struct Waiters {
    next_seq: u64,
    all: BTreeMap<u64, Waiter>,
    /// `event wait` waiters, by event.
    by_event: HashMap<String, BTreeSet<u64>>,
    /// Every other waiter: checked on each step (there are few: one per
    /// `start`, `stop`, `join` or `sem acquire` in progress).
    others: BTreeSet<u64>,
    /// Waiters with a deadline, earliest first.
    deadlines: BTreeSet<(Instant, u64)>,
}

impl Waiters {
    pub fn push(&mut self, waiter: Waiter) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.insert(seq, waiter);
    }

    fn insert(&mut self, seq: u64, waiter: Waiter) {
        match &waiter.goal {
            Goal::EventSet(name) => {
                self.by_event.entry(name.clone()).or_default().insert(seq);
            }
            _ => {
                self.others.insert(seq);
            }
        }
        if let Some(deadline) = waiter.deadline {
            self.deadlines.insert((deadline, seq));
        }
        self.all.insert(seq, waiter);
    }

    /// Takes waiter `seq` out (to settle it, or to put it back with [`Waiters::restore`]).
    pub fn take(&mut self, seq: u64) -> Option<Waiter> {
        let waiter = self.all.remove(&seq)?;
        match &waiter.goal {
            Goal::EventSet(name) => {
                if let Some(set) = self.by_event.get_mut(name) {
                    set.remove(&seq);
                    if set.is_empty() {
                        self.by_event.remove(name);
                    }
                }
            }
            _ => {
                self.others.remove(&seq);
            }
        }
        if let Some(deadline) = waiter.deadline {
            self.deadlines.remove(&(deadline, seq));
        }
        Some(waiter)
    }

    /// Puts back a waiter taken with [`Waiters::take`], in its old place.
    pub fn restore(&mut self, seq: u64, waiter: Waiter) {
        self.insert(seq, waiter);
    }

    /// The waiters that may be done at `now`, in arrival order: every
    /// non-event waiter, the waiters of events `is_set` says are set, and
    /// those whose deadline has passed.
    pub fn candidates(&self, now: Instant, is_set: impl Fn(&str) -> bool) -> Vec<u64> {
        let mut seqs: BTreeSet<u64> = self.others.clone();
        for (name, waiting) in &self.by_event {
            if is_set(name) {
                seqs.extend(waiting);
            }
        }
        for (deadline, seq) in &self.deadlines {
            if *deadline > now {
                break;
            }
            seqs.insert(*seq);
        }
        seqs.into_iter().collect()
    }

    /// The earliest deadline of any waiter.
    pub fn first_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }

    /// Drops the waiters `keep` rejects.
    pub fn retain(&mut self, keep: impl Fn(&Waiter) -> bool) {
        let gone: Vec<u64> = self
            .all
            .iter()
            .filter(|(_, waiter)| !keep(waiter))
            .map(|(seq, _)| *seq)
            .collect();
        for seq in gone {
            self.take(seq);
        }
    }

    /// Every waiter, in arrival order, leaving none.
    pub fn drain(&mut self) -> Vec<Waiter> {
        let all = std::mem::take(&mut self.all);
        *self = Waiters {
            next_seq: self.next_seq,
            ..Waiters::default()
        };
        all.into_values().collect()
    }

    /// Every waiter, for tests that check the indexes against a full walk.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = &Waiter> {
        self.all.values()
    }
}
