//! One pool task: its state machine and its captured output.

use super::action::{Action, SpawnSpec};
use super::lifecycle::Lifecycle;
use super::snapshot::{after, ago, before, hex, unhex, until, CapturedSnapshot, TaskSnapshot};
use super::Owner;
use herd_common::protocol::{OutputStream, TaskId, TaskStatus};
use herd_common::signals::signal_name;
use herd_common::state::{Exit, TaskState};
use herd_config::PoolConfig;
use std::time::Instant;

/// How much of each stream herd keeps per task; the rest is counted, not kept.
pub const CAPTURE_LIMIT: usize = 4 * 1024 * 1024;

/// A bounded capture of one output stream.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub data: Vec<u8>,
    /// Everything the task wrote, kept or not.
    pub total: u64,
}

impl Captured {
    pub fn append(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = CAPTURE_LIMIT.saturating_sub(self.data.len());
        self.data.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    pub fn truncated(&self) -> bool {
        self.total > self.data.len() as u64
    }
}

#[derive(Debug, Clone)]
pub struct Task {
    pub id: TaskId,
    pub pool: String,
    pub name: Option<String>,
    pub command: Vec<String>,
    pub state: TaskState,
    pub pid: Option<u32>,
    pub started_at: Option<Instant>,
    pub ended_at: Option<Instant>,
    pub exit: Option<Exit>,
    /// Exec error, or why it was cancelled.
    pub reason: Option<String>,
    /// Set when a running task is being cancelled: its exit makes it `cancelled`.
    pub cancelling: bool,
    /// SIGKILL time while cancelling.
    pub deadline: Option<Instant>,
    killed: bool,
    /// Re-adopted after a crash of herdd: not its child, output not captured.
    pub adopted: bool,
    pub stdout: Captured,
    pub stderr: Captured,
}

impl Task {
    pub fn new(id: TaskId, pool: &str, command: Vec<String>, name: Option<String>) -> Self {
        Task {
            id,
            pool: pool.to_string(),
            name,
            command,
            state: TaskState::Queued,
            pid: None,
            started_at: None,
            ended_at: None,
            exit: None,
            reason: None,
            cancelling: false,
            deadline: None,
            killed: false,
            adopted: false,
            stdout: Captured::default(),
            stderr: Captured::default(),
        }
    }

    /// Leaves the queue for a slot: asks the shell to spawn it.
    pub fn start(&mut self, now: Instant, config: &PoolConfig, out: &mut Vec<Action>) {
        self.state = TaskState::Running;
        self.started_at = Some(now);
        out.push(Action::Spawn {
            owner: Owner::Task(self.id),
            spec: Box::new(self.spawn_spec(config)),
        });
    }

    fn spawn_spec(&self, config: &PoolConfig) -> SpawnSpec {
        let mut env = config.env.clone();
        env.insert("HERD_POOL".into(), self.pool.clone());
        env.insert("HERD_TASK_ID".into(), self.id.to_string());
        SpawnSpec {
            argv: self.command.clone(),
            env,
            cwd: config.cwd.clone(),
            user: config.user.clone(),
            group: config.group.clone(),
            umask: config.umask,
            rlimits: config.rlimits.iter().map(|(k, v)| (*k, *v)).collect(),
            confinement: Box::new(config.confinement),
            daemon: config.daemon,
            output: super::action::Output::Capture,
            notify: false,
        }
    }

    pub fn on_spawned(&mut self, pid: u32, now: Instant, out: &mut Vec<Action>) {
        self.pid = Some(pid);
        self.started_at = Some(now);
        out.push(Action::Publish(Lifecycle::Started {
            instance: self.label(),
            pid,
        }));
    }

    /// Could not be executed: ends `failed` with the exec error.
    pub fn on_spawn_failed(&mut self, error: String, now: Instant, out: &mut Vec<Action>) {
        self.end(TaskState::Failed, now);
        out.push(Action::Publish(Lifecycle::Failed {
            instance: self.label(),
            reason: error.clone(),
        }));
        self.reason = Some(error);
    }

    pub fn on_exit(&mut self, exit: Exit, now: Instant, out: &mut Vec<Action>) {
        let pid = self.pid.unwrap_or(0);
        out.push(Action::Publish(Lifecycle::Exited {
            instance: self.label(),
            pid,
            exit: exit.clone(),
        }));
        let state = if self.cancelling {
            TaskState::Cancelled
        } else if exit.is_success() {
            TaskState::Exited
        } else {
            TaskState::Failed
        };
        self.exit = Some(exit);
        self.adopted = false;
        self.end(state, now);
    }

    /// `cancel`, `pool terminate` or shutdown. Returns whether it was still
    /// queued or running (and so is now cancelled or being stopped).
    pub fn cancel(
        &mut self,
        why: &str,
        now: Instant,
        config: &PoolConfig,
        out: &mut Vec<Action>,
    ) -> bool {
        match self.state {
            TaskState::Queued => {
                self.reason = Some(why.to_string());
                self.end(TaskState::Cancelled, now);
                true
            }
            TaskState::Running => {
                if !self.cancelling {
                    self.cancelling = true;
                    self.reason = Some(why.to_string());
                    self.deadline = Some(now + config.stop_timeout);
                    if let Some(pid) = self.pid {
                        out.push(Action::Signal {
                            pid,
                            signal: config.stop_signal,
                        });
                        out.push(Action::Publish(Lifecycle::Stopping {
                            instance: self.label(),
                            pid,
                            signal: signal_name(config.stop_signal),
                        }));
                    }
                }
                true
            }
            TaskState::Exited | TaskState::Failed | TaskState::Cancelled => false,
        }
    }

    /// Its stop timeout passed while cancelling: SIGKILL, once.
    pub fn on_deadline(&mut self, out: &mut Vec<Action>) {
        self.deadline = None;
        if let (Some(pid), false) = (self.pid, self.killed) {
            self.killed = true;
            out.push(Action::Signal {
                pid,
                signal: libc::SIGKILL,
            });
        }
    }

    fn end(&mut self, state: TaskState, now: Instant) {
        self.state = state;
        self.pid = None;
        self.deadline = None;
        self.ended_at = Some(now);
    }

    pub fn capture(&mut self, stream: OutputStream) -> &mut Captured {
        match stream {
            OutputStream::Stdout => &mut self.stdout,
            OutputStream::Stderr => &mut self.stderr,
        }
    }

    /// `convert#17` (or `convert#17 (name)`) in logs.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("{}#{} ({name})", self.pool, self.id),
            None => format!("{}#{}", self.pool, self.id),
        }
    }

    pub fn status(&self, now: Instant) -> TaskStatus {
        TaskStatus {
            id: self.id,
            pool: self.pool.clone(),
            name: self.name.clone(),
            state: self.state,
            command: self.command.clone(),
            pid: self.pid,
            exit: self.exit.clone(),
            reason: self.reason.clone(),
            duration_ms: self.started_at.map(|start| {
                let end = self.ended_at.unwrap_or(now);
                end.saturating_duration_since(start).as_millis() as u64
            }),
            adopted: self.adopted,
            // The core does no I/O: the front end fills this in when asked.
            usage: Default::default(),
        }
    }
}

impl Captured {
    fn snapshot(&self) -> CapturedSnapshot {
        CapturedSnapshot {
            hex: hex(&self.data),
            total: self.total,
        }
    }

    fn restore(snapshot: &CapturedSnapshot) -> Captured {
        Captured {
            data: unhex(&snapshot.hex),
            total: snapshot.total,
        }
    }
}

impl Task {
    /// `with_output`: include captured output (re-exec), or not (the journal).
    pub fn snapshot(&self, now: Instant, with_output: bool) -> TaskSnapshot {
        TaskSnapshot {
            id: self.id,
            pool: self.pool.clone(),
            name: self.name.clone(),
            command: self.command.clone(),
            state: self.state,
            pid: self.pid,
            pid_start: None,
            started_ago_ms: self.started_at.map(|at| ago(now, at)),
            ended_ago_ms: self.ended_at.map(|at| ago(now, at)),
            exit: self.exit.clone(),
            reason: self.reason.clone(),
            cancelling: self.cancelling,
            deadline_in_ms: self.deadline.map(|at| until(now, at)),
            killed: self.killed,
            stdout: with_output.then(|| self.stdout.snapshot()),
            stderr: with_output.then(|| self.stderr.snapshot()),
            adopted: self.adopted,
        }
    }

    pub fn restore(snapshot: &TaskSnapshot, now: Instant, adopted: bool) -> Task {
        Task {
            id: snapshot.id,
            pool: snapshot.pool.clone(),
            name: snapshot.name.clone(),
            command: snapshot.command.clone(),
            state: snapshot.state,
            pid: snapshot.pid,
            started_at: snapshot.started_ago_ms.map(|ms| before(now, ms)),
            ended_at: snapshot.ended_ago_ms.map(|ms| before(now, ms)),
            exit: snapshot.exit.clone(),
            reason: snapshot.reason.clone(),
            cancelling: snapshot.cancelling,
            deadline: snapshot.deadline_in_ms.map(|ms| after(now, ms)),
            killed: snapshot.killed,
            adopted: snapshot.pid.is_some() && (adopted || snapshot.adopted),
            stdout: snapshot
                .stdout
                .as_ref()
                .map(Captured::restore)
                .unwrap_or_default(),
            stderr: snapshot
                .stderr
                .as_ref()
                .map(Captured::restore)
                .unwrap_or_default(),
        }
    }
}
