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
use std::time::{Duration, Instant};

/// Bumped when the format changes incompatibly; other versions are ignored.
pub const SNAPSHOT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub next_task: TaskId,
    pub units: Vec<UnitSnapshot>,
    pub pools: Vec<PoolSnapshot>,
    pub tasks: Vec<TaskSnapshot>,
    pub semaphores: Vec<SemaphoreSnapshot>,
    pub events: Vec<(String, bool)>,
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
    pub queue: Vec<TaskId>,
    pub running: u32,
    pub finished: Vec<TaskId>,
    pub closed: bool,
    pub submitted: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSnapshot {
    pub id: TaskId,
    pub pool: String,
    pub name: Option<String>,
    pub command: Vec<String>,
    pub state: TaskState,
    pub pid: Option<u32>,
    #[serde(default)]
    pub pid_start: Option<u64>,
    pub started_ago_ms: Option<u64>,
    pub ended_ago_ms: Option<u64>,
    pub exit: Option<Exit>,
    pub reason: Option<String>,
    pub cancelling: bool,
    pub deadline_in_ms: Option<u64>,
    pub killed: bool,
    /// Captured output; only in a re-exec snapshot, not in the journal.
    #[serde(default)]
    pub stdout: Option<CapturedSnapshot>,
    #[serde(default)]
    pub stderr: Option<CapturedSnapshot>,
    pub adopted: bool,
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

/// Holders that outlive a re-exec: clients' connections do not, so they are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HolderSnapshot {
    Instance { unit: String, index: u32 },
    Task { id: TaskId },
}

impl HolderSnapshot {
    pub fn from_holder(holder: &Holder) -> Option<HolderSnapshot> {
        match holder {
            Holder::Instance(id) => Some(HolderSnapshot::Instance {
                unit: id.unit.clone(),
                index: id.index,
            }),
            Holder::Task(id) => Some(HolderSnapshot::Task { id: *id }),
            Holder::Client { .. } => None,
        }
    }

    pub fn to_holder(&self) -> Holder {
        match self {
            HolderSnapshot::Instance { unit, index } => Holder::Instance(InstanceId {
                unit: unit.clone(),
                index: *index,
            }),
            HolderSnapshot::Task { id } => Holder::Task(*id),
        }
    }
}

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
            pools: self.pools.values().map(|pool| pool.snapshot()).collect(),
            tasks: self
                .tasks
                .values()
                .map(|task| task.snapshot(now, with_output))
                .collect(),
            semaphores: self.semaphores.snapshot(),
            events: self.events.snapshot(),
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
            let Some(unit) = supervisor.units.get_mut(&saved.name) else {
                continue;
            };
            unit.is_pool = saved.is_pool;
            unit.wanted = saved.wanted;
            unit.sets_event_ready = saved.sets_event_ready;
            unit.instances = saved
                .instances
                .iter()
                .map(|i| Instance::restore(i, now, adopted))
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
        supervisor.semaphores.restore(&snapshot.semaphores);
        supervisor.events.restore(&snapshot.events);
        supervisor
    }

    /// Every process the supervisor tracks.
    pub fn tracked_pids(&self) -> Vec<u32> {
        self.pids.keys().copied().collect()
    }
}
