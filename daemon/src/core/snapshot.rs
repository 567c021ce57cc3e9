//! The supervisor's state as data: what `daemon-reexec` hands to the new
//! image and what the crash journal keeps (docs/journal.md).
//!
//! Times are stored relative to the moment of the snapshot (`*_ago_ms`,
//! `*_in_ms`), because `Instant`s mean nothing to another process. Config
//! is not stored: it is read again, and the snapshot is applied to the units
//! and pools that still exist.

use super::semaphore::Holder;
use super::InstanceId;
use herd_common::protocol::TaskId;
use herd_common::state::{Exit, State, TaskState};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// A whole snapshot: a re-exec's handover, and the journal of an older
/// herdd. Bumped when the format changes incompatibly; other versions are
/// ignored.
pub const SNAPSHOT_VERSION: u32 = 1;

/// A journal whose queued tasks are in its task log (see `task_log.rs`):
/// the snapshot keeps the other live tasks, and `task_log` says how much of
/// the log it covers. An older herdd, which knows only version 1, ignores
/// it (with a warning) rather than lose the queue without a word.
pub const JOURNAL_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub next_task: TaskId,
    pub units: Vec<UnitSnapshot>,
    pub pools: Vec<PoolSnapshot>,
    pub tasks: Vec<TaskSnapshot>,
    pub semaphores: Vec<SemaphoreSnapshot>,
    pub events: Vec<(String, bool)>,
    /// Rolling restarts under way, and results kept for their requesters.
    #[serde(default, skip_serializing_if = "RolloutsSnapshot::is_empty")]
    pub rollouts: RolloutsSnapshot,
    /// Timers' last runs and what was under way.
    #[serde(default)]
    pub timers: Vec<super::timer::TimerSnapshot>,
    /// Tasks held for the clients that submitted them (see `held.rs`),
    /// carried over without their connections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<TaskId>,
    /// In a journal of version 2: the log holding the queued tasks that
    /// `tasks` leaves out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_log: Option<TaskLogRef>,
}

/// Which task log a journal's snapshot goes with, and how much of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskLogRef {
    /// The log is `journal.tasks.<generation>`.
    pub generation: u64,
    /// The snapshot covers the log's first `length` bytes; what follows
    /// them was written for a snapshot that did not make it to the disk.
    pub length: u64,
}

/// One journal write: the snapshot without the tasks in the task log, and
/// what changed in the log since the last write.
#[derive(Debug)]
pub struct JournalChanges {
    /// Of version [`JOURNAL_VERSION`]; its `task_log` is the writer's to fill in.
    pub snapshot: Snapshot,
    /// Tasks the log gets (again): queued, nothing relative to the snapshot's time.
    pub queued: Vec<TaskSnapshot>,
    /// Tasks that leave the log: started, ended, gone, or now written whole.
    pub left: Vec<TaskId>,
    /// How many of `queued` the log did not hold yet.
    pub added: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitSnapshot {
    pub name: String,
    pub is_pool: bool,
    pub wanted: bool,
    pub sets_event_ready: bool,
    pub instances: Vec<InstanceSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceSnapshot {
    pub index: u32,
    pub state: State,
    pub pid: Option<u32>,
    /// Kernel start time of `pid` (field 22 of /proc/PID/stat), to tell it
    /// from a later process that reused the pid. Filled in by the shell.
    #[serde(default)]
    pub pid_start: Option<u64>,
    pub spawned_ago_ms: Option<u64>,
    pub deadline_in_ms: Option<u64>,
    pub restarts: u32,
    pub last_exit: Option<Exit>,
    pub reason: Option<String>,
    pub notify_status: Option<String>,
    pub after_stop: AfterStopSnapshot,
    pub killed: bool,
    pub backoff_next_ms: u64,
    pub starts_ago_ms: Vec<u64>,
    pub adopted: bool,
    /// When its watchdog countdown last started (readiness or the last
    /// `WATCHDOG=1`), so that it goes on where it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchdog_ago_ms: Option<u64>,
}

/// Rolling restarts (core/rolling.rs) carried over a re-exec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutsSnapshot {
    #[serde(default)]
    pub under_way: Vec<RolloutSnapshot>,
    /// Rollouts that ended while their requester, sent away by a re-exec,
    /// had not asked again: (unit, error; `None` when done).
    #[serde(default)]
    pub ended: Vec<(String, Option<String>)>,
}

impl RolloutsSnapshot {
    pub fn is_empty(&self) -> bool {
        self.under_way.is_empty() && self.ended.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutSnapshot {
    pub unit: String,
    /// Instances not restarted yet, in order.
    pub pending: Vec<u32>,
    /// Restarted, not ready yet.
    pub in_flight: Vec<RolloutStepSnapshot>,
    pub steps: u32,
    pub started: u32,
    /// Its requester was answered `reconnect` and is expected back.
    pub awaited: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutStepSnapshot {
    pub index: u32,
    /// The process being replaced.
    pub old_pid: Option<u32>,
    pub deadline_in_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterStopSnapshot {
    Stay,
    Start,
    Remove,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolSnapshot {
    pub name: String,
    /// In a journal of version 2, empty: the queue is every queued task of
    /// the pool, rebuilt on load (see [`Snapshot::with_queued`]).
    pub queue: Vec<TaskId>,
    pub running: u32,
    pub finished: Vec<TaskId>,
    pub closed: bool,
    pub submitted: u64,
}

/// A task. The journal rewrites every task not ended yet at each snapshot,
/// so what is empty (`null`, no attempts yet) is left out: a queued task is
/// written in a third of the bytes and time. Every field left out reads
/// back as it was, in this image and in older ones (missing `Option`s are
/// `None`, the rest have defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSnapshot {
    pub id: TaskId,
    pub pool: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub command: Vec<String>,
    pub state: TaskState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ago_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ago_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<Exit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub cancelling: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_in_ms: Option<u64>,
    pub killed: bool,
    /// Captured output; only in a re-exec snapshot, not in the journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<CapturedSnapshot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<CapturedSnapshot>,
    pub adopted: bool,
    /// Limits, attempts made, and when a queued retry may start.
    #[serde(default, skip_serializing_if = "AttemptsSnapshot::is_empty")]
    pub attempts: AttemptsSnapshot,
}

/// A task's limits and the attempts it made so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttemptsSnapshot {
    #[serde(default, skip_serializing_if = "is_default")]
    pub limits: super::retry::TaskLimits,
    #[serde(default, skip_serializing_if = "is_default")]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_attempts: Vec<Exit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_in_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub timing_out: bool,
}

impl AttemptsSnapshot {
    fn is_empty(&self) -> bool {
        *self == AttemptsSnapshot::default()
    }
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapturedSnapshot {
    /// The kept bytes, hex-encoded (JSON has no bytes).
    pub hex: String,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SemaphoreSnapshot {
    pub name: String,
    pub holders: Vec<HolderSnapshot>,
    pub waiters: Vec<HolderSnapshot>,
}

/// Holders that outlive a re-exec or a crash. A client's slot becomes its
/// process's: `start` (the kernel start time, filled in by the shell) tells
/// that process from a later one with the same pid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HolderSnapshot {
    Instance {
        unit: String,
        index: u32,
    },
    Task {
        id: TaskId,
    },
    Process {
        pid: u32,
        #[serde(default)]
        start: Option<u64>,
    },
}

impl HolderSnapshot {
    pub fn from_holder(holder: &Holder) -> Option<HolderSnapshot> {
        match holder {
            Holder::Instance(id) => Some(HolderSnapshot::Instance {
                unit: id.unit.clone(),
                index: id.index,
            }),
            Holder::Task(id) => Some(HolderSnapshot::Task { id: *id }),
            Holder::Client { pid, .. } => {
                pid.map(|pid| HolderSnapshot::Process { pid, start: None })
            }
            Holder::Process { pid } => Some(HolderSnapshot::Process {
                pid: *pid,
                start: None,
            }),
        }
    }

    pub fn to_holder(&self) -> Holder {
        match self {
            HolderSnapshot::Instance { unit, index } => Holder::Instance(InstanceId {
                unit: unit.clone(),
                index: *index,
            }),
            HolderSnapshot::Task { id } => Holder::Task(*id),
            HolderSnapshot::Process { pid, .. } => Holder::Process { pid: *pid },
        }
    }
}

impl Snapshot {
    /// The whole state (version 1) from a journal of version 2 and the
    /// tasks its task log has queued: those go back among the tasks, and
    /// each pool's queue is rebuilt from its queued tasks, by priority and,
    /// within one, oldest (lowest id) first. (A task queued again for a
    /// retry thus takes the place of its id, not the end of the queue.)
    pub fn with_queued(mut self, queued: Vec<TaskSnapshot>) -> Snapshot {
        self.tasks.extend(queued);
        self.tasks.sort_by_key(|task| task.id);
        let mut queues: std::collections::HashMap<&str, Vec<(std::cmp::Reverse<u32>, TaskId)>> =
            std::collections::HashMap::new();
        for task in &self.tasks {
            if task.state == TaskState::Queued {
                let priority = std::cmp::Reverse(task.attempts.limits.priority);
                queues
                    .entry(&task.pool)
                    .or_default()
                    .push((priority, task.id));
            }
        }
        for pool in &mut self.pools {
            let mut queue = queues.remove(pool.name.as_str()).unwrap_or_default();
            queue.sort_unstable();
            pool.queue = queue.into_iter().map(|(_, id)| id).collect();
        }
        self.version = SNAPSHOT_VERSION;
        self.task_log = None;
        self
    }

    /// Every process holding a semaphore slot carried over, with its start time.
    pub fn carried_holders(&mut self) -> impl Iterator<Item = (&mut u32, &mut Option<u64>)> {
        self.semaphores
            .iter_mut()
            .flat_map(|s| s.holders.iter_mut())
            .filter_map(|h| match h {
                HolderSnapshot::Process { pid, start } => Some((pid, start)),
                HolderSnapshot::Instance { .. } | HolderSnapshot::Task { .. } => None,
            })
    }

    /// Ends the tasks that a crashed herdd may have started after it wrote
    /// this snapshot: queued ones whose start was `recorded` (their spawn
    /// followed the record), and running ones without a pid (a snapshot
    /// taken while a spawn was under way). Each may have run, so none is started
    /// again: it ends `failed` with an unknown exit, and gives back its pool
    /// slot or queue place and any semaphore slot. Returns how many.
    pub fn settle_unconfirmed_starts(&mut self, recorded: &HashSet<TaskId>) -> usize {
        let mut settled = HashSet::new();
        for task in &mut self.tasks {
            let was_running = match task.state {
                TaskState::Queued if recorded.contains(&task.id) => false,
                TaskState::Running if task.pid.is_none() => true,
                TaskState::Queued
                | TaskState::Running
                | TaskState::Exited
                | TaskState::Failed
                | TaskState::Cancelled
                | TaskState::TimedOut => continue,
            };
            if let Some(pool) = self.pools.iter_mut().find(|p| p.name == task.pool) {
                if was_running {
                    pool.running = pool.running.saturating_sub(1);
                } else {
                    pool.queue.retain(|id| *id != task.id);
                }
                pool.finished.push(task.id);
            }
            task.state = TaskState::Failed;
            task.exit = Some(Exit::Unknown);
            task.reason = Some(UNCONFIRMED_START.to_string());
            task.started_ago_ms = task.started_ago_ms.or(Some(0));
            task.ended_ago_ms = Some(0);
            task.cancelling = false;
            task.deadline_in_ms = None;
            settled.insert(task.id);
        }
        let gone =
            |h: &HolderSnapshot| matches!(h, HolderSnapshot::Task { id } if settled.contains(id));
        for semaphore in &mut self.semaphores {
            semaphore.holders.retain(|h| !gone(h));
            semaphore.waiters.retain(|h| !gone(h));
        }
        settled.len()
    }
}

/// Why a task ended that a crashed herdd may have started.
pub const UNCONFIRMED_START: &str =
    "herdd died while starting it; it may have run, so it was not started again";

/// How long ago `then` was, in whole milliseconds.
pub fn ago(now: Instant, then: Instant) -> u64 {
    now.saturating_duration_since(then).as_millis() as u64
}

/// How long until `then`, in whole milliseconds (0 if past).
pub fn until(now: Instant, then: Instant) -> u64 {
    then.saturating_duration_since(now).as_millis() as u64
}

/// `ms` milliseconds before `now` (or `now` if the clock cannot go that far back).
pub fn before(now: Instant, ms: u64) -> Instant {
    now.checked_sub(Duration::from_millis(ms)).unwrap_or(now)
}

pub fn after(now: Instant, ms: u64) -> Instant {
    now + Duration::from_millis(ms)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(text: &str) -> Vec<u8> {
    text.as_bytes()
        .chunks(2)
        .filter_map(|pair| std::str::from_utf8(pair).ok())
        .filter_map(|pair| u8::from_str_radix(pair, 16).ok())
        .collect()
}

impl super::Supervisor {
    /// The whole state, `with_output` for a re-exec (the journal leaves task
    /// output out: it is large and a crashed herdd's pipes are gone anyway).
    pub fn snapshot(&self, now: Instant, with_output: bool) -> Snapshot {
        self.snapshot_of(now, with_output, self.tasks.values(), true)
    }

    /// What the journal keeps, whole: the state without task output and
    /// without ended tasks (they can be many, and nothing runs again for
    /// them). What [`super::Supervisor::journal_changes`] and the task log add up to.
    #[cfg(test)]
    pub fn journal_snapshot(&self, now: Instant) -> Snapshot {
        let live = self.tasks.values().filter(|task| !task.state.is_final());
        self.snapshot_of(now, false, live, true)
    }

    /// What the journal writes next: the state without task output, without
    /// ended tasks (they can be many, and nothing runs again for them), and
    /// without the queued tasks of its task log, whose changes since the
    /// last call come along. Costs what changed, and the live tasks that
    /// are not in the log (running ones, and queued ones waiting for a
    /// time): not the queue.
    pub fn journal_changes(&mut self, now: Instant) -> JournalChanges {
        let mut changed = std::mem::take(&mut self.tasks.log.changed);
        changed.extend(self.tasks.touched());
        let (mut queued, mut left, mut added) = (Vec::new(), Vec::new(), 0);
        for id in changed {
            let live = self.tasks.get(&id).filter(|task| !task.state.is_final());
            let live = live.map(|task| task.snapshot(now, false));
            let log = &mut self.tasks.log;
            match live {
                Some(task) if super::task_log::belongs_in_log(&task) => {
                    log.whole.remove(&id);
                    added += usize::from(log.logged.insert(id));
                    queued.push(task);
                }
                live => {
                    if live.is_some() {
                        log.whole.insert(id);
                    } else {
                        log.whole.remove(&id);
                    }
                    if log.logged.remove(&id) {
                        left.push(id);
                    }
                }
            }
        }
        let whole = self.tasks.log.whole.iter().map(|id| &self.tasks[id]);
        let mut snapshot = self.snapshot_of(now, false, whole, false);
        snapshot.version = JOURNAL_VERSION;
        JournalChanges {
            snapshot,
            queued,
            left,
            added,
        }
    }

    /// Starts the journal's task log over: the next
    /// [`super::Supervisor::journal_changes`] has every queued task (for a new
    /// log, after a failed write or in a new herdd).
    pub fn journal_log_anew(&mut self) {
        let live: std::collections::BTreeSet<TaskId> = self
            .tasks
            .values()
            .filter(|task| !task.state.is_final())
            .map(|task| task.id)
            .collect();
        let log = &mut self.tasks.log;
        log.logged.clear();
        log.whole.clear();
        log.changed = live;
    }

    fn snapshot_of<'a>(
        &'a self,
        now: Instant,
        with_output: bool,
        tasks: impl Iterator<Item = &'a super::Task>,
        with_queues: bool,
    ) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            next_task: self.next_task,
            units: self
                .units
                .values()
                .map(|unit| UnitSnapshot {
                    name: unit.name().to_string(),
                    is_pool: unit.is_pool,
                    wanted: unit.wanted,
                    sets_event_ready: unit.sets_event_ready,
                    instances: unit.instances.iter().map(|i| i.snapshot(now)).collect(),
                })
                .collect(),
            pools: self
                .pools
                .values()
                .map(|pool| pool.snapshot(with_queues))
                .collect(),
            tasks: tasks.map(|task| task.snapshot(now, with_output)).collect(),
            semaphores: self.semaphores.snapshot(),
            events: self.events.snapshot(),
            rollouts: self.snapshot_rollouts(now),
            timers: self.timer_snapshots(now),
            held: self.held.snapshot(),
            task_log: None,
        }
    }

    /// A supervisor for `config` carrying on from `snapshot`. With `adopted`
    /// (recovery after a crash) its processes are no longer herdd's children:
    /// the shell watches them by pidfd and reports the ones already gone.
    /// Units and pools that are no longer configured are left out.
    pub fn restore(
        config: &herd_config::Config,
        snapshot: &Snapshot,
        now: Instant,
        adopted: bool,
    ) -> Self {
        use super::{Instance, Owner, Task};
        let mut supervisor = super::Supervisor::new(config);
        supervisor.next_task = snapshot.next_task;
        for saved in &snapshot.units {
            let Some(mut unit) = supervisor.units.get_mut(&saved.name) else {
                continue;
            };
            unit.is_pool = saved.is_pool;
            unit.wanted = saved.wanted;
            unit.sets_event_ready = saved.sets_event_ready;
            unit.instances = saved
                .instances
                .iter()
                .map(|i| {
                    let mut instance = Instance::restore(i, now, adopted);
                    // The countdown goes on from its last start (a snapshot
                    // of an older herdd has none: a full period from now).
                    if instance.state == herd_common::state::State::Running {
                        let armed = i.watchdog_ago_ms.map_or(now, |ms| before(now, ms));
                        instance.watchdog.arm(armed, &unit.config);
                    }
                    if instance.pid.is_some() {
                        instance.health.resume(now, &unit.config, instance.state);
                    }
                    instance
                })
                .collect();
            supervisor.restored.insert(saved.name.clone());
            for instance in &unit.instances {
                if let Some(pid) = instance.pid {
                    let id = InstanceId {
                        unit: saved.name.clone(),
                        index: instance.index,
                    };
                    supervisor.pids.insert(pid, Owner::Instance(id));
                }
            }
        }
        for saved in &snapshot.pools {
            if let Some(pool) = supervisor.pools.get_mut(&saved.name) {
                pool.restore(saved);
            }
        }
        for saved in &snapshot.tasks {
            if !supervisor.pools.contains_key(&saved.pool) {
                continue;
            }
            let task = Task::restore(saved, now, adopted);
            if let Some(pid) = task.pid {
                supervisor.pids.insert(pid, Owner::Task(task.id));
            }
            supervisor.tasks.insert(task.id, task);
        }
        supervisor.carry_held(snapshot, now);
        supervisor.semaphores.restore(&snapshot.semaphores, now);
        supervisor.events.restore(&snapshot.events);
        supervisor.restore_rollouts(&snapshot.rollouts, now, adopted);
        supervisor.restore_timers(now, &snapshot.timers, true);
        for pool in supervisor.pools.values_mut() {
            pool.restore_priorities(&supervisor.tasks);
        }
        supervisor.reindex_tasks();
        supervisor
    }

    /// Holds the tasks the snapshot held for clients, until a client
    /// collects them (see `held.rs`). Those no pool keeps any more are
    /// dropped once let go.
    fn carry_held(&mut self, snapshot: &Snapshot, now: Instant) {
        let kept: HashSet<TaskId> = snapshot
            .pools
            .iter()
            .flat_map(|pool| pool.finished.iter().copied())
            .collect();
        let tasks = &self.tasks;
        let carried = snapshot.held.iter().filter_map(|id| {
            let ended = tasks.get(id)?.state.is_final();
            Some((*id, ended, ended && !kept.contains(id)))
        });
        self.held.carry(now, carried);
    }

    /// Every process the supervisor tracks.
    pub fn tracked_pids(&self) -> Vec<u32> {
        self.pids.keys().copied().collect()
    }

    /// Processes holding semaphore slots carried over a re-exec or crash:
    /// the shell watches them and reports their end as an exit.
    pub fn carried_holders(&self) -> Vec<u32> {
        self.semaphores.carried_pids()
    }
}

/// A task of pool `p` running `/bin/true`, nothing else set: for tests.
#[cfg(test)]
pub(crate) fn test_task(id: TaskId, state: TaskState, pid: Option<u32>) -> TaskSnapshot {
    TaskSnapshot {
        id,
        pool: "p".into(),
        name: None,
        command: vec!["/bin/true".into()],
        state,
        pid,
        pid_start: None,
        started_ago_ms: None,
        ended_ago_ms: None,
        exit: None,
        reason: None,
        cancelling: false,
        deadline_in_ms: None,
        killed: false,
        stdout: None,
        stderr: None,
        adopted: false,
        attempts: AttemptsSnapshot::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use test_task as task;
    /// Tasks 1 (running with a pid), 2 (running, spawn not confirmed),
    /// 3 and 4 (queued; 3's start was recorded), 2 holding a slot of `s`.
    fn crashed() -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            next_task: 5,
            units: vec![],
            pools: vec![PoolSnapshot {
                name: "p".into(),
                queue: vec![3, 4],
                running: 2,
                finished: vec![],
                closed: false,
                submitted: 4,
            }],
            tasks: vec![
                task(1, TaskState::Running, Some(100)),
                task(2, TaskState::Running, None),
                task(3, TaskState::Queued, None),
                task(4, TaskState::Queued, None),
            ],
            semaphores: vec![SemaphoreSnapshot {
                name: "s".into(),
                holders: vec![HolderSnapshot::Task { id: 2 }],
                waiters: vec![HolderSnapshot::Task { id: 3 }],
            }],
            events: vec![],
            rollouts: RolloutsSnapshot::default(),
            timers: vec![],
            held: vec![],
            task_log: None,
        }
    }

    #[test]
    fn a_task_that_may_have_started_is_ended_not_queued_again() {
        let mut snapshot = crashed();
        let settled = snapshot.settle_unconfirmed_starts(&HashSet::from([3]));
        assert_eq!(settled, 2);
        let state = |id: TaskId| snapshot.tasks.iter().find(|t| t.id == id).unwrap();
        assert_eq!(state(1).state, TaskState::Running, "its pid is adopted");
        assert_eq!(state(4).state, TaskState::Queued, "never started: runs");
        for id in [2, 3] {
            assert_eq!(state(id).state, TaskState::Failed);
            assert_eq!(state(id).exit, Some(Exit::Unknown));
            assert_eq!(state(id).reason.as_deref(), Some(UNCONFIRMED_START));
        }
        let pool = &snapshot.pools[0];
        assert_eq!(pool.queue, [4]);
        assert_eq!(pool.running, 1);
        assert_eq!(pool.finished, [2, 3]);
        assert!(snapshot.semaphores[0].holders.is_empty());
        assert!(snapshot.semaphores[0].waiters.is_empty());
    }

    /// Journals written before rollouts and watchdog countdowns were kept
    /// still load, and a snapshot without either is written as before.
    #[test]
    fn the_fields_added_later_are_optional() {
        let text = serde_json::to_string(&crashed()).unwrap();
        assert!(!text.contains("rollouts"), "{text}");
        assert_eq!(serde_json::from_str::<Snapshot>(&text).unwrap(), crashed());
        let instance = r#"{"index": 0, "state": "running", "pid": 4242, "pid_start": 1,
            "spawned_ago_ms": 5123, "deadline_in_ms": null, "restarts": 0, "last_exit": null,
            "reason": null, "notify_status": null, "after_stop": "stay", "killed": false,
            "backoff_next_ms": 100, "starts_ago_ms": [5123], "adopted": false}"#;
        let instance: InstanceSnapshot = serde_json::from_str(instance).unwrap();
        assert_eq!(instance.watchdog_ago_ms, None);
    }

    /// A queued task is written without its empty fields, reads back the
    /// same, and a task written whole (by an older image) still reads.
    #[test]
    fn a_queued_task_is_written_without_its_empty_fields() {
        let queued = task(4, TaskState::Queued, None);
        let text = serde_json::to_string(&queued).unwrap();
        assert_eq!(
            text,
            r#"{"id":4,"pool":"p","command":["/bin/true"],"state":"queued","cancelling":false,"killed":false,"adopted":false}"#
        );
        assert_eq!(serde_json::from_str::<TaskSnapshot>(&text).unwrap(), queued);
        let mut retried = task(5, TaskState::Queued, None);
        retried.attempts.attempts = 1;
        retried.attempts.failed_attempts = vec![Exit::Code(3)];
        retried.attempts.limits.retries = 2;
        retried.attempts.not_before_in_ms = Some(250);
        let text = serde_json::to_string(&retried).unwrap();
        assert_eq!(
            serde_json::from_str::<TaskSnapshot>(&text).unwrap(),
            retried
        );
        let whole = r#"{"id": 4, "pool": "p", "name": null, "command": ["/bin/true"],
            "state": "queued", "pid": null, "pid_start": null, "started_ago_ms": null,
            "ended_ago_ms": null, "exit": null, "reason": null, "cancelling": false,
            "deadline_in_ms": null, "killed": false, "stdout": null, "stderr": null,
            "adopted": false, "attempts": {"limits": {"timeout_ms": null, "retries": 0,
            "retry_delay_ms": 0, "priority": 0}, "attempts": 0, "failed_attempts": [],
            "not_before_in_ms": null, "timing_out": false}}"#;
        assert_eq!(serde_json::from_str::<TaskSnapshot>(whole).unwrap(), queued);
    }

    #[test]
    fn without_start_records_only_unconfirmed_spawns_are_settled() {
        let mut snapshot = crashed();
        assert_eq!(snapshot.settle_unconfirmed_starts(&HashSet::new()), 1);
        assert_eq!(snapshot.pools[0].queue, [3, 4]);
    }
}
