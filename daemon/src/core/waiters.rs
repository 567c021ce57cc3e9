//! The waiting requests, indexed so that a step looks only at those that
//! may be done: an `event wait` only when its event is set, a `join` only
//! when the task it is watching (the first of its tasks not known to have
//! ended) changed, a waiter with a deadline through a queue ordered by
//! deadline. With thousands of clients waiting on events that are not set,
//! or joining thousands of tasks, a step costs no more than without.

use super::semaphore::ClientId;
use super::{Goal, Waiter};
use herd_common::protocol::TaskId;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

/// Waiters in arrival order (replies settled in one step go out in that order).
#[derive(Debug, Default)]
pub(super) struct Waiters {
    next_seq: u64,
    all: BTreeMap<u64, Waiter>,
    /// `event wait` waiters, by event.
    by_event: HashMap<String, BTreeSet<u64>>,
    /// `join` waiters that were checked once, by the task each watches.
    by_task: HashMap<TaskId, BTreeSet<u64>>,
    /// For each of those: the task it watches and how many of its tasks
    /// (in request order) are known to have ended.
    watching: HashMap<u64, (TaskId, usize)>,
    /// Every other waiter, and new `join` waiters: checked on each step
    /// (there are few: one per `start`, `stop`, `pool join` or `sem
    /// acquire` in progress).
    others: BTreeSet<u64>,
    /// Waiters with a deadline, earliest first.
    deadlines: BTreeSet<(Instant, u64)>,
    /// The waiters of each connection, so that its closing does not walk
    /// everyone's (one set of pairs: a set per connection would cost a
    /// B-tree node for each of thousands of connections waiting once).
    by_client: BTreeSet<(ClientId, u64)>,
}

impl Waiters {
    pub fn push(&mut self, waiter: Waiter) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.insert(seq, waiter, None);
    }

    /// `watch`: for a `join` waiter, the task to watch and how far it got.
    fn insert(&mut self, seq: u64, waiter: Waiter, watch: Option<(TaskId, usize)>) {
        match (&waiter.goal, watch) {
            (Goal::EventSet(name), _) => {
                self.by_event.entry(name.clone()).or_default().insert(seq);
            }
            (Goal::TasksEnded(_), Some((task, done))) => {
                self.by_task.entry(task).or_default().insert(seq);
                self.watching.insert(seq, (task, done));
            }
            _ => {
                self.others.insert(seq);
            }
        }
        if let Some(deadline) = waiter.deadline {
            self.deadlines.insert((deadline, seq));
        }
        self.by_client.insert((waiter.client, seq));
        self.all.insert(seq, waiter);
    }

    /// Takes waiter `seq` out (to settle it, or to put it back with
    /// [`Waiters::restore`]), with how many of a `join`'s tasks were known
    /// to have ended (0 for others).
    pub fn take(&mut self, seq: u64) -> Option<(Waiter, usize)> {
        let waiter = self.all.remove(&seq)?;
        let mut done = 0;
        match &waiter.goal {
            Goal::EventSet(name) => remove_from(&mut self.by_event, name, seq),
            _ => match self.watching.remove(&seq) {
                Some((task, known)) => {
                    remove_from(&mut self.by_task, &task, seq);
                    done = known;
                }
                None => {
                    self.others.remove(&seq);
                }
            },
        }
        if let Some(deadline) = waiter.deadline {
            self.deadlines.remove(&(deadline, seq));
        }
        self.by_client.remove(&(waiter.client, seq));
        Some((waiter, done))
    }

    /// Puts back a waiter taken with [`Waiters::take`], in its old place;
    /// a `join` watching `watch`'s task, the first of its tasks not ended.
    pub fn restore(&mut self, seq: u64, waiter: Waiter, watch: Option<(TaskId, usize)>) {
        self.insert(seq, waiter, watch);
    }

    /// The waiters that may be done at `now`, in arrival order: every
    /// other waiter, the waiters of events `is_set` says are set, the
    /// `join`s watching a task in `changed`, and those whose deadline has
    /// passed.
    pub fn candidates(
        &self,
        now: Instant,
        is_set: impl Fn(&str) -> bool,
        changed: impl Iterator<Item = TaskId>,
    ) -> Vec<u64> {
        let mut seqs: BTreeSet<u64> = self.others.clone();
        for (name, waiting) in &self.by_event {
            if is_set(name) {
                seqs.extend(waiting);
            }
        }
        if !self.by_task.is_empty() {
            for task in changed {
                if let Some(waiting) = self.by_task.get(&task) {
                    seqs.extend(waiting);
                }
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

    /// Drops the waiters of a connection that closed.
    pub fn client_gone(&mut self, client: ClientId) {
        let of_client: Vec<u64> = self
            .by_client
            .range((client, 0)..=(client, u64::MAX))
            .map(|(_, seq)| *seq)
            .collect();
        for seq in of_client {
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

    /// Whether every waiter is in exactly the indexes its goal, deadline
    /// and connection say (tests).
    #[cfg(test)]
    pub fn index_is_true(&self) -> bool {
        let count = |sets: &mut dyn Iterator<Item = &BTreeSet<u64>>| -> usize {
            sets.map(BTreeSet::len).sum()
        };
        let indexed = self.others.len()
            + count(&mut self.by_event.values())
            + count(&mut self.by_task.values());
        let with_deadline = self.all.values().filter(|w| w.deadline.is_some()).count();
        let placed = self.all.iter().all(|(seq, waiter)| {
            let in_client = self.by_client.contains(&(waiter.client, *seq));
            let in_goal = match (&waiter.goal, self.watching.get(seq)) {
                (Goal::EventSet(name), None) => {
                    self.by_event.get(name).is_some_and(|s| s.contains(seq))
                }
                (Goal::TasksEnded(ids), Some((task, done))) => {
                    ids.get(*done) == Some(task)
                        && self.by_task.get(task).is_some_and(|s| s.contains(seq))
                }
                (_, None) => self.others.contains(seq),
                (_, Some(_)) => false,
            };
            in_client && in_goal
        });
        placed
            && indexed == self.all.len()
            && self.deadlines.len() == with_deadline
            && self.by_client.len() == self.all.len()
    }
}

/// Removes `seq` from the set under `key`, and the set once empty.
fn remove_from<K: std::hash::Hash + Eq>(index: &mut HashMap<K, BTreeSet<u64>>, key: &K, seq: u64) {
    if let Some(set) = index.get_mut(key) {
        set.remove(&seq);
        if set.is_empty() {
            index.remove(key);
        }
    }
}
