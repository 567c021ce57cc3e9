//! The live (queued or running) tasks of each pool by name, so that
//! `submit --unique` finds the one with its name without walking every task
//! herd keeps.
//!
//! It follows the tasks a step changed (the ids [`Tasks`] notes as touched),
//! so keeping it costs what changed, not what is kept.

use super::tasks::Tasks;
use herd_common::protocol::TaskId;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A pool and a task name.
type Key = (String, String);

#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct TaskNames {
    /// The live tasks with each pool and name, lowest id first.
    live: BTreeMap<Key, BTreeSet<TaskId>>,
    /// Where each of them is in `live`, to take it out when it ends or goes.
    keys: HashMap<TaskId, Key>,
}

impl TaskNames {
    /// Brings the index up to date for the tasks changed since the last
    /// [`Tasks::reindex`] (ended, removed, added).
    pub fn follow(&mut self, tasks: &Tasks) {
        for id in tasks.touched() {
            let now = tasks
                .get(&id)
                .filter(|task| !task.state.is_final())
                .and_then(|task| Some((&*task.pool, task.name()?)));
            let was = self
                .keys
                .get(&id)
                .map(|(pool, name)| (pool.as_str(), name.as_str()));
            if was == now {
                continue;
            }
            if let Some(key) = self.keys.remove(&id) {
                if let Some(ids) = self.live.get_mut(&key) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.live.remove(&key);
                    }
                }
            }
            if let Some((pool, name)) = now {
                let key = (pool.to_string(), name.to_string());
                self.live.entry(key.clone()).or_default().insert(id);
                self.keys.insert(id, key);
            }
        }
    }

    /// The live task of `pool` named `name` (the oldest if several are).
    pub fn find(&self, pool: &str, name: &str) -> Option<TaskId> {
        let key = (pool.to_string(), name.to_string());
        self.live.get(&key)?.first().copied()
    }

    /// Whether the index says what a walk of every task says (tests).
    #[cfg(test)]
    pub fn index_is_true(&self, tasks: &Tasks) -> bool {
        let mut walked = TaskNames::default();
        for task in tasks.values().filter(|task| !task.state.is_final()) {
            if let Some(name) = task.name() {
                let key = (task.pool.to_string(), name.to_string());
                walked.live.entry(key.clone()).or_default().insert(task.id);
                walked.keys.insert(task.id, key);
            }
        }
        walked == *self
    }
}
