//! Task pools: a priority queue (FIFO within a priority) feeding at most
//! `size` running tasks.

use super::action::Action;
use super::semaphore::{Holder, Semaphores};
use super::snapshot::PoolSnapshot;
use super::tasks::Tasks;
use herd_common::protocol::{ErrorBody, ErrorCode, PoolStatus, PoolTally, TaskId};
use herd_config::PoolConfig;
use std::collections::VecDeque;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Pool {
    pub config: PoolConfig,
    /// Queued task ids, highest priority first, oldest first within one.
    queue: VecDeque<TaskId>,
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
        if self.queue.len() >= self.config.max_queue as usize {
            return Err(ErrorBody::new(
                ErrorCode::Refused,
                format!(
                    "pool {} is full: {} tasks queued (max_queue = {})",
                    self.name(),
                    self.queue.len(),
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
        let priority = |id: &TaskId| tasks.get(id).map_or(0, |t| t.limits.priority);
        let own = priority(&id);
        let at = self.queue.partition_point(|queued| priority(queued) >= own);
        self.queue.insert(at, id);
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
            let id = self.queue[at];
            let Some(task) = tasks.get_mut(&id) else {
                self.queue.remove(at);
                continue;
            };
            if !task.is_due(now) {
                at += 1;
                continue;
            }
            let holder = Holder::Task(id);
            let label = task.label();
            if let Err(reason) =
                semaphores.try_acquire(now, &holder, &self.config.semaphores, &label, out)
            {
                task.reason = Some(reason);
                break;
            }
            self.queue.remove(at);
            self.running += 1;
            task.reason = None;
            task.start(now, &self.config, out);
        }
    }

    /// A task of this pool has ended. `was_running`: it held a slot.
    /// Returns the ids to evict (beyond `keep_finished`).
    pub fn finished(&mut self, id: TaskId, was_running: bool) -> Vec<TaskId> {
        if was_running {
            self.running = self.running.saturating_sub(1);
        } else {
            self.queue.retain(|queued| *queued != id);
        }
        self.finished.push_back(id);
        let mut evicted = Vec::new();
        while self.finished.len() > self.config.keep_finished as usize {
            evicted.extend(self.finished.pop_front());
        }
        evicted
    }

    pub fn queued(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.queue.iter().copied()
    }

    /// Nothing queued, nothing running: what `pool join` waits for.
    pub fn is_drained(&self) -> bool {
        self.queue.is_empty() && self.running == 0
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
            queued: self.queue.len() as u32,
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
    pub fn snapshot(&self) -> PoolSnapshot {
        PoolSnapshot {
            name: self.config.name.clone(),
            queue: self.queue.iter().copied().collect(),
            running: self.running,
            finished: self.finished.iter().copied().collect(),
            closed: self.closed,
            submitted: self.submitted,
        }
    }

    pub fn restore(&mut self, snapshot: &PoolSnapshot) {
        self.queue = snapshot.queue.iter().copied().collect();
        self.running = snapshot.running;
        self.finished = snapshot.finished.iter().copied().collect();
        self.closed = snapshot.closed;
        self.submitted = snapshot.submitted;
    }
}
