//! Every task herd knows, with an index of the live tasks' deadlines, so
//! that a step costs the same with 100,000 tasks queued or kept as with none.
//!
//! Each task is boxed: a B-tree node holds eleven entries and is often half
//! full, which with tasks inline cost about as much again as the tasks.
//! Tasks share their pool's name, and tasks submitted one after the other
//! with the same command share it ([`Tasks::insert`]).
//! The methods are the map's. Every way of changing a task ([`Tasks::get_mut`], [`Tasks::insert`], [`Tasks::remove`],
//! [`Tasks::retain`]) notes its id as touched; [`Tasks::reindex`] (at the end
//! of each step) brings the deadline index up to date for the touched tasks
//! only. Touched ids also tell waiter settling which tasks may have ended.

use super::task::{Command, PoolName, Task};
use herd_common::protocol::TaskId;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

#[derive(Debug, Default)]
pub(super) struct Tasks {
    all: BTreeMap<TaskId, Box<Task>>,
    /// The deadline of every queued or running task that has one, earliest first.
    deadlines: BTreeSet<(Instant, TaskId)>,
    /// What `deadlines` holds for each task, to find its entry when it changes.
    indexed: HashMap<TaskId, Instant>,
    /// Tasks changed (or added, or removed) since the last [`Tasks::reindex`].
    touched: BTreeSet<TaskId>,
    /// The names of the pools tasks were inserted for, each shared by those tasks.
    pool_names: HashSet<PoolName>,
    /// The command of the task inserted last, shared with the next if equal.
    last_command: Option<Command>,
    /// What the journal's task log holds, and what changed since its last
    /// snapshot (see `task_log.rs`).
    pub(super) log: super::task_log::Index,
}

impl std::ops::Index<&TaskId> for Tasks {
    type Output = Task;

    fn index(&self, id: &TaskId) -> &Task {
        &self.all[id]
    }
}

impl Tasks {
    pub fn get(&self, id: &TaskId) -> Option<&Task> {
        self.all.get(id).map(|task| &**task)
    }

    pub fn contains_key(&self, id: &TaskId) -> bool {
        self.all.contains_key(id)
    }

    /// Every task, lowest id first.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Task> + '_ {
        self.all.values().map(|task| &**task)
    }

    #[cfg(test)]
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &TaskId> + '_ {
        self.all.keys()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn get_mut(&mut self, id: &TaskId) -> Option<&mut Task> {
        let task = self.all.get_mut(id)?;
        self.touched.insert(*id);
        Some(task)
    }

    /// Adds `task`, sharing its pool's name with the pool's other tasks
    /// and its command with the task inserted before it when the same.
    pub fn insert(&mut self, id: TaskId, mut task: Task) {
        match self.pool_names.get(&*task.pool) {
            Some(name) => task.pool = name.clone(),
            None => {
                // A new pool: forget the names no task has any more.
                self.pool_names.retain(PoolName::is_shared);
                self.pool_names.insert(task.pool.clone());
            }
        }
        task.share_command(&mut self.last_command);
        self.touched.insert(id);
        self.all.insert(id, Box::new(task));
    }

    pub fn remove(&mut self, id: &TaskId) -> Option<Task> {
        let task = self.all.remove(id)?;
        self.touched.insert(*id);
        Some(*task)
    }

    /// Keeps the tasks `keep` accepts (a walk of every task: for `reload`).
    pub fn retain(&mut self, mut keep: impl FnMut(&TaskId, &Task) -> bool) {
        let touched = &mut self.touched;
        self.all.retain(|id, task| {
            let kept = keep(id, task);
            if !kept {
                touched.insert(*id);
            }
            kept
        });
    }

    /// The tasks changed since the last [`Tasks::reindex`], lowest id first.
    pub fn touched(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.touched.iter().copied()
    }

    /// The earliest deadline of a live task, as of the last [`Tasks::reindex`].
    pub fn first_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// The live tasks whose deadline is at or before `now`, earliest first.
    pub fn due(&self, now: Instant) -> Vec<TaskId> {
        self.deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| *id)
            .collect()
    }

    /// Brings the deadline index up to date for the touched tasks: the cost
    /// grows with what changed, not with how many tasks there are.
    pub fn reindex(&mut self) {
        for id in std::mem::take(&mut self.touched) {
            self.log.changed.insert(id);
            if let Some(at) = self.indexed.remove(&id) {
                self.deadlines.remove(&(at, id));
            }
            let deadline = self.all.get(&id).and_then(|task| task.deadline());
            if let Some(at) = deadline {
                self.deadlines.insert((at, id));
                self.indexed.insert(id, at);
            }
        }
    }

    /// Whether the index says what a walk of every task says (tests).
    #[cfg(test)]
    pub fn index_is_true(&self) -> bool {
        let walked: BTreeSet<(Instant, TaskId)> = self
            .all
            .values()
            .filter_map(|task| Some((task.deadline()?, task.id)))
            .collect();
        self.touched.is_empty() && walked == self.deadlines && self.indexed.len() == walked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &Task, b: &Task) -> bool {
        std::ptr::eq(a.pool.as_ptr(), b.pool.as_ptr())
    }

    #[test]
    fn tasks_share_their_pool_name_and_a_repeated_command() {
        let mut tasks = Tasks::default();
        let argv = |arg: &str| vec!["/bin/echo".to_string(), arg.to_string()];
        tasks.insert(1, Task::new(1, "a", argv("x"), None));
        tasks.insert(2, Task::new(2, "a", argv("x"), None));
        tasks.insert(3, Task::new(3, "b", argv("y"), None));
        tasks.insert(4, Task::new(4, "a", argv("y"), None));
        assert!(same(&tasks[&1], &tasks[&2]) && same(&tasks[&1], &tasks[&4]));
        assert!(!same(&tasks[&1], &tasks[&3]));
        assert_eq!(&*tasks[&3].pool, "b");
        let now = Instant::now();
        let command = |id| tasks[&id].status(now).command;
        assert_eq!((command(1), command(2)), (argv("x"), argv("x")));
        assert_eq!((command(3), command(4)), (argv("y"), argv("y")));
        // Pool b's last task goes: its name is forgotten when a new pool comes.
        tasks.remove(&3);
        tasks.insert(5, Task::new(5, "c", argv("z"), None));
        assert!(!tasks.pool_names.contains("b"));
        assert!(tasks.pool_names.contains("a") && tasks.pool_names.contains("c"));
    }
}
