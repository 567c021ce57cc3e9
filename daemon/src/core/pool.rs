//! Task pools: a priority queue (FIFO within a priority) feeding at most
//! `size` running tasks.

use super::action::Action;
use super::semaphore::{Holder, Semaphores};
use super::snapshot::PoolSnapshot;
use super::tasks::Tasks;
use herd_common::protocol::{ErrorBody, ErrorCode, PoolStatus, PoolTally, TaskId};
use herd_config::PoolConfig;
use std::collections::{HashSet, VecDeque};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Pool {
    pub config: PoolConfig,
    /// Queued task ids with their priority, highest priority first, oldest
    /// first within one.
    queue: VecDeque<(u32, TaskId)>,
    /// Ids in `queue` whose task ended there (cancelled): taking one out of
    /// the middle costs the queue's length, so `fill` drops them as it
    /// meets them, and a mass cancel costs what it cancels.
    withdrawn: HashSet<TaskId>,
    /// Tasks holding a slot (spawned or being stopped).
    running: u32,
    /// Ended task ids, oldest first: the eviction order for `keep_finished`.
    finished: VecDeque<TaskId>,
    /// `pool close`: submissions are refused.
    pub closed: bool,
    /// Tasks ever submitted.
    submitted: u64,
    /// Gone from the config (`reload`): dropped once drained.
    pub removing: bool,
    /// How its tasks ended (for metrics).
    pub tally: PoolTally,
}

impl Pool {
    pub fn new(config: PoolConfig) -> Self {
        Pool {
            config,
            queue: VecDeque::new(),
            withdrawn: HashSet::new(),
            running: 0,
            finished: VecDeque::new(),
            closed: false,
            submitted: 0,
            removing: false,
            tally: PoolTally::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Whether a new task may be queued.
    pub fn admit(&self) -> Result<(), ErrorBody> {
        if self.closed {
            return Err(ErrorBody::new(
                ErrorCode::Refused,
                format!("pool {} is closed", self.name()),
            ));
        }
        if self.queued_count() >= self.config.max_queue as usize {
            return Err(ErrorBody::new(
                ErrorCode::Refused,
                format!(
                    "pool {} is full: {} tasks queued (max_queue = {})",
                    self.name(),
                    self.queued_count(),
                    self.config.max_queue
                ),
            ));
        }
        Ok(())
    }

    /// Queues a new task (already in `tasks`) behind those of its priority.
    pub(super) fn enqueue(&mut self, id: TaskId, tasks: &Tasks) {
        self.submitted += 1;
        self.insert_by_priority(id, tasks);
    }

    /// A running task failed an attempt and will be retried: its slot is
    /// freed and it queues again behind those of its priority.
    pub(super) fn requeue(&mut self, id: TaskId, tasks: &Tasks) {
        self.running = self.running.saturating_sub(1);
        self.insert_by_priority(id, tasks);
    }

    fn insert_by_priority(&mut self, id: TaskId, tasks: &Tasks) {
        let own = tasks.get(&id).map_or(0, |t| t.limits.priority);
        let at = self.queue.partition_point(|(priority, _)| *priority >= own);
        self.queue.insert(at, (own, id));
    }

    /// Tasks waiting in the queue.
    fn queued_count(&self) -> usize {
        self.queue.len() - self.withdrawn.len()
    }

    /// Starts queued tasks in queue order while slots are free, skipping
    /// those whose start time has not come; the first due task that does
    /// not get the semaphore slots it needs keeps its place and stops the
    /// round (so a busy semaphore cannot starve it).
    pub(super) fn fill(
        &mut self,
        tasks: &mut Tasks,
        semaphores: &mut Semaphores,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let mut at = 0;
        while self.running < self.config.size && at < self.queue.len() {
            let (_, id) = self.queue[at];
            if self.withdrawn.remove(&id) {
                self.queue.remove(at);
                continue;
            }
            if tasks.get(&id).is_some_and(|task| !task.is_due(now)) {
                at += 1;
                continue;
            }
            let Some(task) = tasks.get_mut(&id) else {
                self.queue.remove(at);
                continue;
            };
            let holder = Holder::Task(id);
            let label = task.label();
            if let Err(reason) =
                semaphores.try_acquire(now, &holder, &self.config.semaphores, &label, out)
            {
                task.set_reason(Some(reason));
                break;
            }
            self.queue.remove(at);
            self.running += 1;
            task.set_reason(None);
            task.start(now, &self.config, out);
        }
    }

    /// A task of this pool has ended. `was_running`: it held a slot.
    /// Returns the ids to evict (beyond `keep_finished`).
    pub fn finished(&mut self, id: TaskId, was_running: bool) -> Vec<TaskId> {
        if was_running {
            self.running = self.running.saturating_sub(1);
        } else if self.queue.front().is_some_and(|(_, first)| *first == id) {
            self.queue.pop_front();
        } else if self.queue.back().is_some_and(|(_, last)| *last == id) {
            self.queue.pop_back();
        } else {
            self.withdrawn.insert(id);
        }
        self.finished.push_back(id);
        let mut evicted = Vec::new();
        while self.finished.len() > self.config.keep_finished as usize {
            evicted.extend(self.finished.pop_front());
        }
        evicted
    }

    pub fn queued(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.queue
            .iter()
            .map(|(_, id)| *id)
            .filter(|id| !self.withdrawn.contains(id))
    }

    /// Nothing queued, nothing running: what `pool join` waits for.
    pub fn is_drained(&self) -> bool {
        self.queued_count() == 0 && self.running == 0
    }

    pub fn running(&self) -> u32 {
        self.running
    }

    pub fn status(&self) -> PoolStatus {
        PoolStatus {
            // Filled in by the supervisor, which knows the hooks.
            hook_error: None,
            name: self.name().to_string(),
            size: self.config.size,
            running: self.running,
            queued: self.queued_count() as u32,
            finished: self.finished.len() as u32,
            submitted: self.submitted,
            max_queue: self.config.max_queue,
            keep_finished: self.config.keep_finished,
            closed: self.closed,
            tally: self.tally.clone(),
        }
    }
}

impl Pool {
    /// Without `with_queue` (the journal, whose task log has the queued
    /// tasks), the queue is left out: see [`super::snapshot::Snapshot::with_queued`].
    pub fn snapshot(&self, with_queue: bool) -> PoolSnapshot {
        PoolSnapshot {
            name: self.config.name.clone(),
            queue: match with_queue {
                true => self.queued().collect(),
                false => Vec::new(),
            },
            running: self.running,
            finished: self.finished.iter().copied().collect(),
            closed: self.closed,
            submitted: self.submitted,
        }
    }

    pub fn restore(&mut self, snapshot: &PoolSnapshot) {
        // Priorities are the tasks': see `restore_priorities`.
        self.queue = snapshot.queue.iter().map(|id| (0, *id)).collect();
        self.withdrawn.clear();
        self.running = snapshot.running;
        self.finished = snapshot.finished.iter().copied().collect();
        self.closed = snapshot.closed;
        self.submitted = snapshot.submitted;
    }

    /// After the tasks are restored: each queued id gets its task's priority.
    pub(super) fn restore_priorities(&mut self, tasks: &Tasks) {
        for (priority, id) in &mut self.queue {
            *priority = tasks.get(id).map_or(0, |t| t.limits.priority);
        }
    }
}
