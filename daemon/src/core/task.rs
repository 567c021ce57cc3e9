//! One pool task: its state machine and its captured output.

use super::action::{Action, SpawnSpec};
use super::lifecycle::Lifecycle;
use super::retry::TaskLimits;
use super::snapshot::{
    after, ago, before, hex, unhex, until, AttemptsSnapshot, CapturedSnapshot, TaskSnapshot,
};
use super::Owner;
use herd_common::events::TaskRef;
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
    command: Command,
    pub state: TaskState,
    pub pid: Option<u32>,
    pub started_at: Option<Instant>,
    pub ended_at: Option<Instant>,
    pub exit: Option<Exit>,
    /// Exec error, or why it was cancelled.
    pub reason: Option<String>,
    /// Set when a running task is being cancelled: its exit makes it `cancelled`.
    pub cancelling: bool,
    /// When it next needs attention: its start time (`after`, a retry's
    /// delay) while queued; its timeout while running; SIGKILL time while
    /// being stopped.
    pub deadline: Option<Instant>,
    killed: bool,
    /// Re-adopted after a crash of herdd: not its child, output not captured.
    pub adopted: bool,
    pub stdout: Captured,
    pub stderr: Captured,
    /// Timeout, retries, priority: fixed at submission.
    pub limits: TaskLimits,
    /// How many times it was started.
    pub attempts: u32,
    /// How each earlier attempt ended, when it failed and was retried.
    pub failed_attempts: Box<[Exit]>,
    /// Not started before this (`after`, or a retry's delay).
    pub not_before: Option<Instant>,
    /// Being stopped because its timeout passed.
    timing_out: bool,
}

/// A task's argv in one allocation, the arguments separated by NUL (which
/// no argument can contain: submissions with one are refused). One string
/// instead of a vector of strings: thousands of tasks are kept.
#[derive(Debug, Clone)]
struct Command {
    joined: Box<str>,
    /// `joined` cannot tell no argument from one empty one.
    empty: bool,
}

impl Command {
    fn new(argv: &[String]) -> Command {
        Command {
            joined: argv.join("\0").into_boxed_str(),
            empty: argv.is_empty(),
        }
    }

    fn argv(&self) -> Vec<String> {
        if self.empty {
            return Vec::new();
        }
        self.joined.split('\0').map(str::to_string).collect()
    }
}

/// What an ended attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    /// The task has ended for good.
    Final,
    /// The task is queued again for another attempt.
    Retry,
}

impl Task {
    pub fn new(id: TaskId, pool: &str, command: Vec<String>, name: Option<String>) -> Self {
        Task {
            id,
            pool: pool.to_string(),
            name,
            command: Command::new(&command),
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
            limits: TaskLimits::default(),
            attempts: 0,
            failed_attempts: Box::default(),
            not_before: None,
            timing_out: false,
        }
    }

    /// Submitted with these limits; not started before `not_before`.
    pub fn with_limits(mut self, limits: TaskLimits, not_before: Option<Instant>) -> Self {
        self.limits = limits;
        self.not_before = not_before;
        self.deadline = not_before;
        self
    }

    /// Whether it may leave the queue now (its `after` or retry delay passed).
    pub fn is_due(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|at| at <= now)
    }

    /// Leaves the queue for a slot: asks the shell to spawn it.
    pub fn start(&mut self, now: Instant, config: &PoolConfig, out: &mut Vec<Action>) {
        self.state = TaskState::Running;
        self.started_at = Some(now);
        self.ended_at = None;
        self.attempts += 1;
        self.timing_out = false;
        self.killed = false;
        self.deadline = self.limits.timeout().map(|timeout| now + timeout);
        out.push(Action::Spawn {
            owner: Owner::Task(self.id),
            spec: Box::new(self.spawn_spec(config)),
        });
    }

    pub(super) fn spawn_spec(&self, config: &PoolConfig) -> SpawnSpec {
        let mut env = config.env.clone();
        env.insert("HERD_POOL".into(), self.pool.clone());
        env.insert("HERD_TASK_ID".into(), self.id.to_string());
        SpawnSpec {
            argv: self.command.argv(),
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
            env_files: config.env_files.clone(),
            sockets: Vec::new(),
            listen_fds: Vec::new(),
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
            task: Some(self.task_ref()),
        }));
        self.reason = Some(error);
    }

    /// Its process ended: the task ends, or is queued again when the attempt
    /// failed (non-zero exit, signal, timeout) and a retry is left.
    pub fn on_exit(&mut self, exit: Exit, now: Instant, out: &mut Vec<Action>) -> AttemptEnd {
        let pid = self.pid.unwrap_or(0);
        out.push(Action::Publish(Lifecycle::Exited {
            instance: self.label(),
            pid,
            exit: exit.clone(),
            task: Some(self.task_ref()),
        }));
        let failed = self.timing_out || !exit.is_success();
        // An adopted task's status is unknown: it may have succeeded.
        let retry = !self.cancelling
            && failed
            && exit != Exit::Unknown
            && self.attempts <= self.limits.retries;
        if retry {
            self.retry(exit, now);
            return AttemptEnd::Retry;
        }
        let state = if self.cancelling {
            TaskState::Cancelled
        } else if self.timing_out {
            TaskState::TimedOut
        } else if exit.is_success() {
            TaskState::Exited
        } else {
            TaskState::Failed
        };
        self.exit = Some(exit);
        self.adopted = false;
        self.end(state, now);
        AttemptEnd::Final
    }

    /// Back to the queue after a failed attempt, not before its back-off.
    /// A line on its captured stderr separates the attempts' outputs.
    fn retry(&mut self, exit: Exit, now: Instant) {
        let retry = self.attempts;
        let delay = self.limits.delay_before(retry);
        let how = if self.timing_out {
            format!("timed out, {exit}")
        } else {
            exit.to_string()
        };
        let note = format!(
            "herd: attempt {} failed ({how}); retry {retry} of {} in {}ms\n",
            self.attempts,
            self.limits.retries,
            delay.as_millis()
        );
        self.stderr.append(note.as_bytes());
        self.reason = Some(format!("retry {retry} of {}", self.limits.retries));
        let mut failed = std::mem::take(&mut self.failed_attempts).into_vec();
        failed.push(exit);
        self.failed_attempts = failed.into_boxed_slice();
        self.state = TaskState::Queued;
        self.pid = None;
        self.adopted = false;
        self.timing_out = false;
        self.not_before = Some(now + delay);
        self.deadline = self.not_before;
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
                    self.stop(why, now, config, out);
                }
                true
            }
            TaskState::Exited | TaskState::Failed | TaskState::Cancelled | TaskState::TimedOut => {
                false
            }
        }
    }

    /// Sends the stop signal (SIGKILL follows at the deadline), saying `why`.
    fn stop(&mut self, why: &str, now: Instant, config: &PoolConfig, out: &mut Vec<Action>) {
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

    /// Its deadline passed: a queued task may now start (the pool takes it);
    /// a running one ran past its timeout and is stopped; one being stopped
    /// gets SIGKILL, once.
    pub fn on_deadline(&mut self, now: Instant, config: &PoolConfig, out: &mut Vec<Action>) {
        self.deadline = None;
        match self.state {
            TaskState::Queued => {}
            TaskState::Running if !self.cancelling && !self.timing_out => {
                self.timing_out = true;
                self.stop("timed out", now, config, out);
            }
            TaskState::Running => {
                if let (Some(pid), false) = (self.pid, self.killed) {
                    self.killed = true;
                    out.push(Action::Signal {
                        pid,
                        signal: libc::SIGKILL,
                    });
                }
            }
            TaskState::Exited | TaskState::Failed | TaskState::Cancelled | TaskState::TimedOut => {}
        }
    }

    fn end(&mut self, state: TaskState, now: Instant) {
        self.state = state;
        self.pid = None;
        self.deadline = None;
        self.ended_at = Some(now);
        // Kept, perhaps for long, among many: no room to grow.
        self.stdout.data.shrink_to_fit();
        self.stderr.data.shrink_to_fit();
    }

    pub fn capture(&mut self, stream: OutputStream) -> &mut Captured {
        match stream {
            OutputStream::Stdout => &mut self.stdout,
            OutputStream::Stderr => &mut self.stderr,
        }
    }

    /// `convert#17` (or `convert#17 (name)`) in logs.
    /// Names it in events.
    fn task_ref(&self) -> TaskRef {
        TaskRef {
            id: self.id,
            pool: self.pool.clone(),
        }
    }

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
            command: self.command.argv(),
            pid: self.pid,
            exit: self.exit.clone(),
            reason: self.reason.clone(),
            duration_ms: self.started_at.map(|start| {
                let end = self.ended_at.unwrap_or(now);
                end.saturating_duration_since(start).as_millis() as u64
            }),
            adopted: self.adopted,
            priority: self.limits.priority,
            attempts: self.attempts,
            retries: self.limits.retries,
            failed_attempts: self.failed_attempts.to_vec(),
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
            command: self.command.argv(),
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
            attempts: AttemptsSnapshot {
                limits: self.limits.clone(),
                attempts: self.attempts,
                failed_attempts: self.failed_attempts.to_vec(),
                not_before_in_ms: self.not_before.map(|at| until(now, at)),
                timing_out: self.timing_out,
            },
        }
    }

    pub fn restore(snapshot: &TaskSnapshot, now: Instant, adopted: bool) -> Task {
        Task {
            id: snapshot.id,
            pool: snapshot.pool.clone(),
            name: snapshot.name.clone(),
            command: Command::new(&snapshot.command),
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
            limits: snapshot.attempts.limits.clone(),
            attempts: snapshot.attempts.attempts,
            failed_attempts: snapshot.attempts.failed_attempts.clone().into(),
            not_before: snapshot.attempts.not_before_in_ms.map(|ms| after(now, ms)),
            timing_out: snapshot.attempts.timing_out,
        }
    }
}
