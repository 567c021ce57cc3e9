//! Failure hooks (`on_failure`): a command run when an instance fails
//! (gives up: start limit hit, exec error, a task unit that failed) or a
//! pool task fails for good, told what failed through its environment.
//!
//! A hook is a process like any other: spawned by the shell
//! ([`Action::RunHook`]), its pid and exit fed back as inputs, killed
//! (SIGKILL to its process group) when it runs past `on_failure_timeout`.
//! At most one hook runs per subject (an instance; a pool, for all its
//! tasks) at a time: a failure while one runs waits for it, and further
//! failures are merged into the one waiting (the newest is reported;
//! `HERD_FAILURES` says how many it stands for). A hook that cannot be
//! executed is reported (`hook_failed`, and in `status`) and is not run
//! again for its unit or pool until the next reload: nothing retries it.

use super::action::{LogTarget, Output, SpawnSpec};
use super::lifecycle::Lifecycle;
use super::{Action, InstanceId};
use herd_common::protocol::TaskId;
use herd_common::state::{Exit, TaskState};
use herd_config::FailureHook;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How many lines of log or output `HERD_LOG_TAIL` holds.
pub const TAIL_LINES: usize = 50;

/// Whose failures one hook process at a time reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookSubject {
    /// An instance of a service or task unit.
    Instance(InstanceId),
    /// A pool: its tasks share one hook at a time.
    Pool(String),
}

/// Whose `on_failure` a hook is (a unit and a pool may share a name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookOwner {
    Unit(String),
    Pool(String),
}

impl HookSubject {
    pub fn owner(&self) -> HookOwner {
        match self {
            HookSubject::Instance(id) => HookOwner::Unit(id.unit.clone()),
            HookSubject::Pool(pool) => HookOwner::Pool(pool.clone()),
        }
    }
}

/// One failure, as the hook is told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The unit or pool (`HERD_UNIT`, `{unit}`).
    pub unit: String,
    /// `web@2`, `db` or `convert#17` (`HERD_INSTANCE`, `{instance}`).
    pub instance: String,
    /// How its process ended; `None` when it never ran (exec error).
    pub exit: Option<Exit>,
    /// `HERD_REASON`, `{reason}`.
    pub reason: String,
    /// The pool task that failed (`HERD_TASK_ID`).
    pub task: Option<TaskId>,
    pub tail: LogTail,
}

/// What `HERD_LOG_TAIL` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTail {
    /// The last [`TAIL_LINES`] lines of the log file of `instance` of
    /// `unit` (`log = "file"`), read by the shell when it spawns the hook.
    LogFile { unit: String, instance: String },
    /// Output the core captured (a pool task's), already cut to its tail.
    Captured(Vec<u8>),
    /// No log is kept where herd can read it: an empty file.
    Empty,
}

/// A hook ready to be spawned.
#[derive(Debug, Clone, PartialEq)]
struct Prepared {
    spec: SpawnSpec,
    tail: LogTail,
    timeout: Duration,
    unit: String,
    instance: String,
}

/// The hook process of one subject.
#[derive(Debug, Clone)]
struct Running {
    unit: String,
    instance: String,
    /// Known once the shell has spawned it.
    pid: Option<u32>,
    /// When it is killed.
    deadline: Instant,
    /// SIGKILL sent at the deadline.
    killed: bool,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    running: Option<Running>,
    /// The failure to report once the running hook has ended, and how many
    /// failures it stands for.
    pending: Option<(Prepared, u32)>,
}

#[derive(Debug, Clone, Default)]
pub struct Hooks {
    slots: BTreeMap<HookSubject, Slot>,
    /// When each running hook is due to be killed (those spawned and not
    /// killed yet), earliest first: no walk of every slot per step.
    deadlines: BTreeSet<(Instant, HookSubject)>,
    /// What `deadlines` holds for each subject.
    indexed: BTreeMap<HookSubject, Instant>,
    /// Hooks that could not be executed, and why: not run until reload.
    broken: BTreeMap<HookOwner, String>,
    /// herdd is shutting down: no hook starts any more.
    closed: bool,
}

impl Hooks {
    /// `failure` of `subject` happened: its hook (built from `base`, the
    /// spec the failing process was spawned with) starts now, or once the
    /// one running for `subject` has ended. Nothing without a hook, for a
    /// broken hook, or while herdd shuts down.
    pub fn failed(
        &mut self,
        now: Instant,
        (subject, failure): (HookSubject, Failure),
        hook: &FailureHook,
        base: SpawnSpec,
        out: &mut Vec<Action>,
    ) {
        if hook.command.is_empty() || self.closed || self.broken.contains_key(&subject.owner()) {
            return;
        }
        let prepared = Prepared {
            spec: hook_spec(base, &hook.command, &failure),
            timeout: hook.timeout,
            unit: failure.unit,
            instance: failure.instance,
            tail: failure.tail,
        };
        let slot = self.slots.entry(subject.clone()).or_default();
        if slot.running.is_some() {
            let merged = slot.pending.take().map_or(0, |(_, count)| count);
            slot.pending = Some((prepared, merged + 1));
            return;
        }
        start(now, subject.clone(), slot, prepared, 1, out);
        self.reindex(&subject);
    }

    /// The shell spawned the hook of `subject` as `pid`.
    pub fn on_spawned(&mut self, subject: &HookSubject, pid: u32, out: &mut Vec<Action>) {
        let Some(running) = self.running_mut(subject) else {
            return;
        };
        running.pid = Some(pid);
        out.push(Action::Publish(Lifecycle::HookStarted {
            unit: running.unit.clone(),
            instance: running.instance.clone(),
            pid,
        }));
        self.reindex(subject);
    }

    /// The hook of `subject` could not be executed: reported, and its
    /// unit's or pool's hook is broken until reload (what waited is dropped).
    pub fn on_spawn_failed(&mut self, subject: &HookSubject, error: String, out: &mut Vec<Action>) {
        let Some(slot) = self.slots.remove(subject) else {
            return;
        };
        self.reindex(subject);
        let Some(running) = slot.running else {
            return;
        };
        self.broken.insert(subject.owner(), error.clone());
        out.push(Action::Publish(Lifecycle::HookFailed {
            unit: running.unit,
            instance: running.instance,
            error,
        }));
    }

    /// The hook process `pid` of `subject` ended: the failure waiting, if
    /// any, has its hook started now (not during shutdown).
    pub fn on_exit(
        &mut self,
        now: Instant,
        subject: &HookSubject,
        (pid, exit): (u32, Exit),
        out: &mut Vec<Action>,
    ) {
        let Some(slot) = self.slots.get_mut(subject) else {
            return;
        };
        let Some(running) = slot.running.take() else {
            return;
        };
        out.push(Action::KillLeftovers { pgid: pid });
        out.push(Action::Publish(Lifecycle::HookExited {
            unit: running.unit,
            instance: running.instance,
            pid,
            exit,
            timed_out: running.killed,
        }));
        match slot.pending.take() {
            Some((prepared, count)) if !self.closed => {
                start(now, subject.clone(), slot, prepared, count, out);
            }
            Some(_) | None => {
                self.slots.remove(subject);
            }
        }
        self.reindex(subject);
    }

    /// When the next running hook is due to be killed.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Kills the hooks that ran past their timeout.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        let due: Vec<HookSubject> = self
            .deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, subject)| subject.clone())
            .collect();
        for subject in due {
            if let Some(running) = self.running_mut(&subject) {
                kill(running, out);
            }
            self.reindex(&subject);
        }
    }

    /// Brings the deadline index up to date for `subject`.
    fn reindex(&mut self, subject: &HookSubject) {
        if let Some(at) = self.indexed.remove(subject) {
            self.deadlines.remove(&(at, subject.clone()));
        }
        let running = self.slots.get(subject).and_then(|s| s.running.as_ref());
        if let Some(running) = running.filter(|r| r.pid.is_some() && !r.killed) {
            self.deadlines.insert((running.deadline, subject.clone()));
            self.indexed.insert(subject.clone(), running.deadline);
        }
    }

    /// Whether the deadline index says what a walk of every slot says (tests).
    #[cfg(test)]
    pub fn index_is_true(&self) -> bool {
        let walked: BTreeSet<(Instant, HookSubject)> = self
            .slots
            .iter()
            .filter_map(|(subject, slot)| Some((subject, slot.running.as_ref()?)))
            .filter(|(_, running)| running.pid.is_some() && !running.killed)
            .map(|(subject, running)| (running.deadline, subject.clone()))
            .collect();
        walked == self.deadlines && walked.len() == self.indexed.len()
    }

    /// Shutdown begins: no hook starts from now on, and failures waiting
    /// for one are not reported.
    pub fn shutdown(&mut self) {
        self.closed = true;
        for slot in self.slots.values_mut() {
            slot.pending = None;
        }
    }

    /// Shutdown's join time is over: running hooks are killed.
    pub fn terminate(&mut self, out: &mut Vec<Action>) {
        for running in self.slots.values_mut().filter_map(|s| s.running.as_mut()) {
            kill(running, out);
        }
        // Killed: none is due any more.
        self.deadlines.clear();
        self.indexed.clear();
    }

    /// A reload: broken hooks may work again (their command may be fixed,
    /// or the program installed).
    pub fn reloaded(&mut self) {
        self.broken.clear();
    }

    /// Why the hook of `owner` cannot run, if it cannot.
    pub fn error_of(&self, owner: &HookOwner) -> Option<String> {
        self.broken.get(owner).cloned()
    }

    fn running_mut(&mut self, subject: &HookSubject) -> Option<&mut Running> {
        self.slots.get_mut(subject)?.running.as_mut()
    }
}

impl super::Supervisor {
    /// Instance `id` has just failed (`exit`: how its process ended, if it
    /// ended just now): its unit's hook runs.
    pub(super) fn instance_failed(
        &mut self,
        now: Instant,
        id: &InstanceId,
        exit: Option<Exit>,
        out: &mut Vec<Action>,
    ) {
        let Some(unit) = self.units.get(&id.unit) else {
            return;
        };
        let Some(instance) = unit.position(id.index).map(|at| &unit.instances[at]) else {
            return;
        };
        let hook = &unit.config.on_failure;
        if hook.command.is_empty() {
            return;
        }
        let name = unit.instance_name(id.index);
        let base = super::unit::spawn_spec(&unit.config, id.index, &name);
        let tail = match &base.output {
            Output::Log {
                instance,
                to: LogTarget::File,
            } => LogTail::LogFile {
                unit: id.unit.clone(),
                instance: instance.clone(),
            },
            // Lines sent to journald or the console are not kept by herdd.
            Output::Log {
                to: LogTarget::Journal | LogTarget::Console,
                ..
            }
            | Output::Inherit
            | Output::Discard
            | Output::Capture => LogTail::Empty,
        };
        let failure = Failure {
            unit: id.unit.clone(),
            instance: name,
            exit,
            reason: instance.reason.clone().unwrap_or_else(|| "failed".into()),
            task: None,
            tail,
        };
        let subject = HookSubject::Instance(id.clone());
        self.hooks.failed(now, (subject, failure), hook, base, out);
    }

    /// Pool task `id` has ended: if it failed (after its last retry), its
    /// pool's hook runs.
    pub(super) fn task_failed(&mut self, now: Instant, id: TaskId, out: &mut Vec<Action>) {
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        let reason = match (task.state, &task.exit) {
            (TaskState::TimedOut, _) => "timed out".to_string(),
            (TaskState::Failed, Some(exit)) => format!("task ended with {exit}"),
            (TaskState::Failed, None) => task.reason().unwrap_or("failed").to_string(),
            (
                TaskState::Queued | TaskState::Running | TaskState::Exited | TaskState::Cancelled,
                _,
            ) => return,
        };
        let Some(pool) = self.pools.get(&*task.pool) else {
            return;
        };
        let hook = &pool.config.on_failure;
        if hook.command.is_empty() {
            return;
        }
        let failure = Failure {
            unit: task.pool.to_string(),
            instance: task.label(),
            exit: task.exit.clone(),
            reason,
            task: Some(id),
            tail: LogTail::Captured(captured_tail(&task.stdout().data, &task.stderr().data)),
        };
        let base = task.spawn_spec(&pool.config);
        let subject = HookSubject::Pool(task.pool.to_string());
        self.hooks.failed(now, (subject, failure), hook, base, out);
    }
}

/// Asks the shell to spawn the hook; it is killed after its timeout.
fn start(
    now: Instant,
    subject: HookSubject,
    slot: &mut Slot,
    mut prepared: Prepared,
    count: u32,
    out: &mut Vec<Action>,
) {
    prepared
        .spec
        .env
        .insert("HERD_FAILURES".into(), count.to_string());
    slot.running = Some(Running {
        unit: prepared.unit,
        instance: prepared.instance,
        pid: None,
        deadline: now + prepared.timeout,
        killed: false,
    });
    out.push(Action::RunHook {
        subject,
        spec: Box::new(prepared.spec),
        tail: prepared.tail,
    });
}

/// SIGKILL to the hook's process group, once.
fn kill(running: &mut Running, out: &mut Vec<Action>) {
    if let (Some(pid), false) = (running.pid, running.killed) {
        running.killed = true;
        out.push(Action::Signal {
            pid,
            signal: libc::SIGKILL,
        });
    }
}

/// The hook's process: `command` with `{unit}`, `{instance}` and
/// `{reason}` substituted, run as the failed process was (user, group,
/// umask, limits, `env`), with the failure in its environment. Not in the
/// failed process's `cwd` or with its `env_file`s and sockets: whatever
/// made it fail must not stop its hook. It dies with herdd.
pub fn hook_spec(base: SpawnSpec, command: &[String], failure: &Failure) -> SpawnSpec {
    let substitute = |word: &String| {
        word.replace("{unit}", &failure.unit)
            .replace("{instance}", &failure.instance)
            .replace("{reason}", &failure.reason)
    };
    let mut env = base.env;
    for variable in [
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "HERD_EXIT_CODE",
        "HERD_EXIT_SIGNAL",
    ] {
        env.remove(variable);
    }
    env.insert("HERD_UNIT".into(), failure.unit.clone());
    env.insert("HERD_INSTANCE".into(), failure.instance.clone());
    env.insert("HERD_REASON".into(), failure.reason.clone());
    match &failure.exit {
        Some(Exit::Code(code)) => {
            env.insert("HERD_EXIT_CODE".into(), code.to_string());
        }
        Some(Exit::Signal(signal)) => {
            env.insert("HERD_EXIT_SIGNAL".into(), signal.clone());
        }
        Some(Exit::Unknown) | None => {}
    }
    if let Some(task) = failure.task {
        env.insert("HERD_TASK_ID".into(), task.to_string());
    }
    SpawnSpec {
        argv: command.iter().map(substitute).collect(),
        env,
        cwd: None,
        daemon: true,
        output: match base.output {
            // A pool task's output is captured for `herdctl output`; its
            // hook's goes to herdd's own stdout and stderr.
            Output::Capture => Output::Inherit,
            other => other,
        },
        notify: false,
        env_files: Vec::new(),
        sockets: Vec::new(),
        listen_fds: Vec::new(),
        ..base
    }
}

/// The last `lines` lines of `text` (a last line without its newline counts).
pub fn last_lines(text: &[u8], lines: usize) -> &[u8] {
    if lines == 0 {
        return &text[text.len()..];
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let start = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, byte)| **byte == b'\n')
        .nth(lines.saturating_sub(1))
        .map_or(0, |(at, _)| at + 1);
    &text[start..]
}

/// A pool task's tail: the last lines of its stdout, then of its stderr.
pub fn captured_tail(stdout: &[u8], stderr: &[u8]) -> Vec<u8> {
    let mut tail = Vec::new();
    for stream in [stdout, stderr] {
        let lines = last_lines(stream, TAIL_LINES);
        tail.extend_from_slice(lines);
        if !lines.is_empty() && !lines.ends_with(b"\n") {
            tail.push(b'\n');
        }
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_counts_from_the_end() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(last_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(last_lines(b"", 5), b"");
        assert_eq!(last_lines(b"a\n", 0), b"");
        assert_eq!(captured_tail(b"out", b"err\n"), b"out\nerr\n");
    }
}
