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
use std::sync::Arc;
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

/// One pool task. Thousands may be kept after they ended (a pool's
/// `keep_finished`), so what every task holds is small (the struct's size
/// is checked by a test): the pool's name and the command are shared with
/// other tasks (`Tasks::insert`), the deadline and the end time share a
/// field (a task has a deadline only while it has not ended), and what
/// most tasks never have (a name, a reason, output, failed attempts, a
/// delayed start) is in `Extra`, allocated only for those that have it.
#[derive(Debug, Clone)]
pub struct Task {
    pub id: TaskId,
    pub pool: PoolName,
    command: Command,
    pub state: TaskState,
    flags: Flags,
    pub pid: Option<u32>,
    /// How many times it was started.
    pub attempts: u32,
    pub started_at: Option<Instant>,
    /// Until it ends, when it next needs attention: its start time
    /// (`after`, a retry's delay) while queued; its timeout while running;
    /// SIGKILL time while being stopped. Once it has ended, when it ended.
    at: Option<Instant>,
    pub exit: Option<Exit>,
    /// Timeout, retries, priority: fixed at submission.
    pub limits: TaskLimits,
    extra: Option<Box<Extra>>,
}

/// What few tasks have; `None` in [`Task`] while all of it is empty.
#[derive(Debug, Clone, Default)]
struct Extra {
    name: Option<String>,
    /// Exec error, why it was cancelled, or why it waits.
    reason: Option<String>,
    stdout: Captured,
    stderr: Captured,
    /// How each earlier attempt ended, when it failed and was retried.
    failed_attempts: Vec<Exit>,
    /// Not started before this (`after`, or a retry's delay).
    not_before: Option<Instant>,
}

impl Extra {
    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.reason.is_none()
            && self.stdout.is_empty()
            && self.stderr.is_empty()
            && self.failed_attempts.is_empty()
            && self.not_before.is_none()
    }
}

/// A task's yes/no states, in one byte.
#[derive(Debug, Clone, Copy, Default)]
struct Flags(u8);

impl Flags {
    /// Being cancelled: its exit makes it `cancelled`.
    const CANCELLING: u8 = 1;
    /// SIGKILL was sent.
    const KILLED: u8 = 2;
    /// Re-adopted after a crash of herdd: not its child, output not captured.
    const ADOPTED: u8 = 4;
    /// Being stopped because its timeout passed.
    const TIMING_OUT: u8 = 8;

    fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.0 |= flag;
        } else {
            self.0 &= !flag;
        }
    }
}

/// A pool's name, one allocation shared by the pool's tasks.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PoolName(Arc<str>);

impl PoolName {
    pub fn new(name: &str) -> PoolName {
        PoolName(name.into())
    }

    /// Whether a task other than the holder of this one has it.
    pub(super) fn is_shared(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }
}

impl std::ops::Deref for PoolName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for PoolName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PoolName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for PoolName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for PoolName {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for PoolName {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for PoolName {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

/// A task's argv in one allocation, each argument followed by a NUL
/// (which no argument can contain: submissions with one are refused).
/// Shared by the tasks submitted with the same command one after the
/// other (a batch, or a loop of submissions; see `Tasks::insert`).
#[derive(Debug, Clone)]
pub(super) struct Command(Arc<str>);

impl Command {
    fn new(argv: &[String]) -> Command {
        let mut joined = String::with_capacity(argv.iter().map(|arg| arg.len() + 1).sum());
        for arg in argv {
            joined.push_str(arg);
            joined.push('\0');
        }
        Command(joined.into())
    }

    fn argv(&self) -> Vec<String> {
        self.0.split_terminator('\0').map(str::to_string).collect()
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
        let mut task = Task {
            id,
            pool: PoolName::new(pool),
            command: Command::new(&command),
            state: TaskState::Queued,
            flags: Flags::default(),
            pid: None,
            attempts: 0,
            started_at: None,
            at: None,
            exit: None,
            limits: TaskLimits::default(),
            extra: None,
        };
        if name.is_some() {
            task.extra_mut().name = name;
        }
        task
    }

    /// Submitted with these limits; not started before `not_before`.
    pub fn with_limits(mut self, limits: TaskLimits, not_before: Option<Instant>) -> Self {
        self.limits = limits;
        self.set_not_before(not_before);
        self.at = not_before;
        self
    }

    pub fn name(&self) -> Option<&str> {
        self.extra.as_ref()?.name.as_deref()
    }

    /// Exec error, why it was cancelled, or why it waits.
    pub fn reason(&self) -> Option<&str> {
        self.extra.as_ref()?.reason.as_deref()
    }

    pub fn set_reason(&mut self, reason: Option<String>) {
        if reason.is_some() || self.extra.is_some() {
            self.extra_mut().reason = reason;
            self.trim_extra();
        }
    }

    /// How each earlier attempt ended, when it failed and was retried.
    pub fn failed_attempts(&self) -> &[Exit] {
        self.extra
            .as_ref()
            .map_or(&[], |extra| &extra.failed_attempts)
    }

    /// Not started before this (`after`, or a retry's delay).
    pub fn not_before(&self) -> Option<Instant> {
        self.extra.as_ref()?.not_before
    }

    fn set_not_before(&mut self, at: Option<Instant>) {
        if at.is_some() || self.extra.is_some() {
            self.extra_mut().not_before = at;
            self.trim_extra();
        }
    }

    /// What it captured of its stdout.
    pub fn stdout(&self) -> &Captured {
        self.extra.as_ref().map_or(&NOTHING, |extra| &extra.stdout)
    }

    /// What it captured of its stderr.
    pub fn stderr(&self) -> &Captured {
        self.extra.as_ref().map_or(&NOTHING, |extra| &extra.stderr)
    }

    fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// Lets go of [`Extra`] once nothing is left in it.
    fn trim_extra(&mut self) {
        if self.extra.as_ref().is_some_and(|extra| extra.is_empty()) {
            self.extra = None;
        }
    }

    /// When it next needs attention; `None` once it has ended.
    pub fn deadline(&self) -> Option<Instant> {
        if self.state.is_final() {
            None
        } else {
            self.at
        }
    }

    /// It needs no attention at its deadline (its pool is gone).
    pub fn clear_deadline(&mut self) {
        self.set_deadline(None);
    }

    fn set_deadline(&mut self, at: Option<Instant>) {
        if !self.state.is_final() {
            self.at = at;
        }
    }

    /// When it ended; `None` until it has.
    pub fn ended_at(&self) -> Option<Instant> {
        if self.state.is_final() {
            self.at
        } else {
            None
        }
    }

    /// Re-adopted after a crash of herdd: not its child, output not captured.
    pub fn adopted(&self) -> bool {
        self.flags.has(Flags::ADOPTED)
    }

    /// Shares `last`'s command when it is the same as this one's, and
    /// makes this one's the last (see `Tasks::insert`).
    pub(super) fn share_command(&mut self, last: &mut Option<Command>) {
        match last {
            Some(last) if last.0 == self.command.0 => self.command = last.clone(),
            Some(_) | None => *last = Some(self.command.clone()),
        }
    }

    /// Whether it may leave the queue now (its `after` or retry delay passed).
    pub fn is_due(&self, now: Instant) -> bool {
        self.not_before().is_none_or(|at| at <= now)
    }

    /// Leaves the queue for a slot: asks the shell to spawn it.
    pub fn start(&mut self, now: Instant, config: &PoolConfig, out: &mut Vec<Action>) {
        self.state = TaskState::Running;
        self.started_at = Some(now);
        self.attempts += 1;
        self.flags.set(Flags::TIMING_OUT, false);
        self.flags.set(Flags::KILLED, false);
        self.at = self.limits.timeout().map(|timeout| now + timeout);
        out.push(Action::Spawn {
            owner: Owner::Task(self.id),
            spec: Box::new(self.spawn_spec(config)),
        });
    }

    pub(super) fn spawn_spec(&self, config: &PoolConfig) -> SpawnSpec {
        let mut env = config.env.clone();
        env.insert("HERD_POOL".into(), self.pool.to_string());
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
            task: Some(self.task_ref()),
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
        self.set_reason(Some(error));
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
        let cancelling = self.flags.has(Flags::CANCELLING);
        let timing_out = self.flags.has(Flags::TIMING_OUT);
        let failed = timing_out || !exit.is_success();
        // An adopted task's status is unknown: it may have succeeded.
        let retry =
            !cancelling && failed && exit != Exit::Unknown && self.attempts <= self.limits.retries;
        if retry {
            self.retry(exit, now);
            return AttemptEnd::Retry;
        }
        let state = if cancelling {
            TaskState::Cancelled
        } else if timing_out {
            TaskState::TimedOut
        } else if exit.is_success() {
            TaskState::Exited
        } else {
            TaskState::Failed
        };
        self.exit = Some(exit);
        self.flags.set(Flags::ADOPTED, false);
        self.end(state, now);
        AttemptEnd::Final
    }

    /// Back to the queue after a failed attempt, not before its back-off.
    /// A line on its captured stderr separates the attempts' outputs.
    fn retry(&mut self, exit: Exit, now: Instant) {
        let retry = self.attempts;
        let delay = self.limits.delay_before(retry);
        let how = if self.flags.has(Flags::TIMING_OUT) {
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
        self.capture(OutputStream::Stderr).append(note.as_bytes());
        self.set_reason(Some(format!("retry {retry} of {}", self.limits.retries)));
        self.extra_mut().failed_attempts.push(exit);
        self.state = TaskState::Queued;
        self.pid = None;
        self.flags.set(Flags::ADOPTED, false);
        self.flags.set(Flags::TIMING_OUT, false);
        self.set_not_before(Some(now + delay));
        self.at = Some(now + delay);
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
                self.set_reason(Some(why.to_string()));
                self.end(TaskState::Cancelled, now);
                true
            }
            TaskState::Running => {
                if !self.flags.has(Flags::CANCELLING) {
                    self.flags.set(Flags::CANCELLING, true);
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
        self.set_reason(Some(why.to_string()));
        self.set_deadline(Some(now + config.stop_timeout));
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
        self.set_deadline(None);
        let stopping = self.flags.has(Flags::CANCELLING) || self.flags.has(Flags::TIMING_OUT);
        match self.state {
            TaskState::Queued => {}
            TaskState::Running if !stopping => {
                self.flags.set(Flags::TIMING_OUT, true);
                self.stop("timed out", now, config, out);
            }
            TaskState::Running => {
                if let (Some(pid), false) = (self.pid, self.flags.has(Flags::KILLED)) {
                    self.flags.set(Flags::KILLED, true);
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
        self.at = Some(now);
        if let Some(extra) = &mut self.extra {
            // Kept, perhaps for long, among many: no room to grow.
            extra.stdout.data.shrink_to_fit();
            extra.stderr.data.shrink_to_fit();
            extra.failed_attempts.shrink_to_fit();
        }
    }

    /// Where output of `stream` goes.
    pub fn capture(&mut self, stream: OutputStream) -> &mut Captured {
        let extra = self.extra_mut();
        match stream {
            OutputStream::Stdout => &mut extra.stdout,
            OutputStream::Stderr => &mut extra.stderr,
        }
    }

    /// Names it in events.
    fn task_ref(&self) -> TaskRef {
        TaskRef {
            id: self.id,
            pool: self.pool.to_string(),
        }
    }

    /// `convert#17` (or `convert#17 (name)`) in logs.
    pub fn label(&self) -> String {
        match self.name() {
            Some(name) => format!("{}#{} ({name})", self.pool, self.id),
            None => format!("{}#{}", self.pool, self.id),
        }
    }

    pub fn status(&self, now: Instant) -> TaskStatus {
        TaskStatus {
            id: self.id,
            pool: self.pool.to_string(),
            name: self.name().map(str::to_string),
            state: self.state,
            command: self.command.argv(),
            pid: self.pid,
            exit: self.exit.clone(),
            reason: self.reason().map(str::to_string),
            duration_ms: self.started_at.map(|start| {
                let end = self.ended_at().unwrap_or(now);
                end.saturating_duration_since(start).as_millis() as u64
            }),
            adopted: self.adopted(),
            priority: self.limits.priority,
            attempts: self.attempts,
            retries: self.limits.retries,
            failed_attempts: self.failed_attempts().to_vec(),
            // The core does no I/O: the front end fills this in when asked.
            usage: Default::default(),
        }
    }
}

/// What a task that captured nothing has.
static NOTHING: Captured = Captured {
    data: Vec::new(),
    total: 0,
};

impl Captured {
    fn is_empty(&self) -> bool {
        self.total == 0 && self.data.is_empty()
    }

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
            pool: self.pool.to_string(),
            name: self.name().map(str::to_string),
            command: self.command.argv(),
            state: self.state,
            pid: self.pid,
            pid_start: None,
            started_ago_ms: self.started_at.map(|at| ago(now, at)),
            ended_ago_ms: self.ended_at().map(|at| ago(now, at)),
            exit: self.exit.clone(),
            reason: self.reason().map(str::to_string),
            cancelling: self.flags.has(Flags::CANCELLING),
            deadline_in_ms: self.deadline().map(|at| until(now, at)),
            killed: self.flags.has(Flags::KILLED),
            stdout: with_output.then(|| self.stdout().snapshot()),
            stderr: with_output.then(|| self.stderr().snapshot()),
            adopted: self.adopted(),
            attempts: AttemptsSnapshot {
                limits: self.limits.clone(),
                attempts: self.attempts,
                failed_attempts: self.failed_attempts().to_vec(),
                not_before_in_ms: self.not_before().map(|at| until(now, at)),
                timing_out: self.flags.has(Flags::TIMING_OUT),
            },
        }
    }

    pub fn restore(snapshot: &TaskSnapshot, now: Instant, adopted: bool) -> Task {
        let restored = |captured: &Option<CapturedSnapshot>| {
            captured.as_ref().map(Captured::restore).unwrap_or_default()
        };
        let mut flags = Flags::default();
        flags.set(Flags::CANCELLING, snapshot.cancelling);
        flags.set(Flags::KILLED, snapshot.killed);
        flags.set(
            Flags::ADOPTED,
            snapshot.pid.is_some() && (adopted || snapshot.adopted),
        );
        flags.set(Flags::TIMING_OUT, snapshot.attempts.timing_out);
        let at = if snapshot.state.is_final() {
            snapshot.ended_ago_ms.map(|ms| before(now, ms))
        } else {
            snapshot.deadline_in_ms.map(|ms| after(now, ms))
        };
        let extra = Extra {
            name: snapshot.name.clone(),
            reason: snapshot.reason.clone(),
            stdout: restored(&snapshot.stdout),
            stderr: restored(&snapshot.stderr),
            failed_attempts: snapshot.attempts.failed_attempts.clone(),
            not_before: snapshot.attempts.not_before_in_ms.map(|ms| after(now, ms)),
        };
        let mut task = Task {
            id: snapshot.id,
            pool: PoolName::new(&snapshot.pool),
            command: Command::new(&snapshot.command),
            state: snapshot.state,
            flags,
            pid: snapshot.pid,
            attempts: snapshot.attempts.attempts,
            started_at: snapshot.started_ago_ms.map(|ms| before(now, ms)),
            at,
            exit: snapshot.exit.clone(),
            limits: snapshot.attempts.limits.clone(),
            extra: Some(Box::new(extra)),
        };
        task.trim_extra();
        task
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    fn pool() -> PoolConfig {
        PoolConfig {
            max_queue: 10,
            keep_finished: 10,
            ..crate::core::tests::task_pool("p", 1)
        }
    }

    /// Each kept task costs its size (boxed) plus a share of a B-tree
    /// node: 100,000 kept tasks are budgeted at under 20 MB in all. A new
    /// field most tasks do not need belongs in `Extra`, not here.
    #[test]
    fn a_task_stays_small() {
        assert!(
            std::mem::size_of::<Task>() <= 152,
            "Task is {} bytes",
            std::mem::size_of::<Task>()
        );
    }

    #[test]
    fn a_kept_task_reports_everything_it_had_and_survives_a_snapshot() {
        let start = Instant::now();
        let config = pool();
        let argv = vec!["/bin/job".to_string(), String::new(), "a b".to_string()];
        let limits = TaskLimits {
            timeout_ms: Some(5000),
            retries: 1,
            retry_delay_ms: 10,
            priority: 3,
        };
        let mut task = Task::new(7, "p", argv.clone(), Some("seven".into()))
            .with_limits(limits.clone(), Some(start + 20 * MS));
        assert_eq!(task.deadline(), Some(start + 20 * MS), "its start time");
        assert!(!task.is_due(start) && task.is_due(start + 20 * MS));
        let out = &mut Vec::new();
        let mut now = start + 20 * MS;
        task.start(now, &config, out);
        task.on_spawned(100, now, out);
        assert_eq!(task.deadline(), Some(now + 5000 * MS), "its timeout");
        task.capture(OutputStream::Stdout).append(b"first try\n");
        now += 30 * MS;
        assert_eq!(task.on_exit(Exit::Code(2), now, out), AttemptEnd::Retry);
        assert_eq!(task.reason(), Some("retry 1 of 1"));
        now += 10 * MS;
        task.start(now, &config, out);
        task.on_spawned(101, now, out);
        task.set_reason(None);
        task.capture(OutputStream::Stdout).append(b"second try\n");
        now += 40 * MS;
        assert_eq!(task.on_exit(Exit::Code(0), now, out), AttemptEnd::Final);
        assert_eq!((task.ended_at(), task.deadline()), (Some(now), None));

        let later = now + 1000 * MS;
        let status = task.status(later);
        assert_eq!(status.name.as_deref(), Some("seven"));
        assert_eq!(status.pool, "p");
        assert_eq!(status.command, argv, "an empty argument is kept");
        assert_eq!(status.state, TaskState::Exited);
        assert_eq!(status.exit, Some(Exit::Code(0)));
        assert_eq!(status.duration_ms, Some(40), "the last attempt's");
        assert_eq!(
            (status.attempts, status.retries, status.priority),
            (2, 1, 3)
        );
        assert_eq!(status.failed_attempts, [Exit::Code(2)]);
        assert_eq!(task.stdout().data, b"first try\nsecond try\n");
        let note = String::from_utf8_lossy(&task.stderr().data).into_owned();
        assert!(note.contains("attempt 1 failed"), "{note}");

        let restored = Task::restore(&task.snapshot(later, true), later, false);
        assert_eq!(restored.status(later), status);
        assert_eq!(restored.stdout().data, task.stdout().data);
        assert_eq!(restored.limits, limits);
        assert_eq!(restored.ended_at(), Some(now));
    }

    #[test]
    fn a_plain_task_has_no_extra_part_and_its_command_round_trips() {
        let now = Instant::now();
        for argv in [vec![], vec![String::new()], vec!["/bin/true".to_string()]] {
            let mut task = Task::new(1, "p", argv.clone(), None);
            assert_eq!(task.status(now).command, argv);
            task.set_reason(Some("waiting for lock".into()));
            task.set_reason(None);
            assert!(task.extra.is_none(), "nothing rare: no box");
            task.cancel("cancelled", now, &pool(), &mut Vec::new());
            assert_eq!(task.status(now).reason.as_deref(), Some("cancelled"));
            assert_eq!(task.status(now).state, TaskState::Cancelled);
        }
    }
}
