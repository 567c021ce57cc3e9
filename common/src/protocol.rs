//! The control protocol, version 1 (see `docs/protocol.md`).
//!
//! One JSON object per line in each direction. A request is
//! `{"v": 1, "cmd": "<verb>", ...arguments}`; a reply is `{"ok": <payload>}` or
//! `{"error": {"code": "<code>", "message": "<text>"}}`.

use crate::state::{Exit, State, TaskState};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u64 = 1;

/// Longest request line the daemon accepts, newline included. Longer lines
/// get a `too_large` error and the connection is closed.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// A request from a client. Serialised with the verb in `cmd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Units and instances; all of them when `names` is empty. With
    /// `usage` false, herdd does not read what each process costs (memory,
    /// CPU, processes): a quicker answer where only states are wanted.
    Status {
        #[serde(default)]
        names: Vec<String>,
        /// Sent only when false, so that a request for the usual status
        /// reads as it always did (and an older herdd takes it).
        #[serde(default = "default_true", skip_serializing_if = "is_true")]
        usage: bool,
    },
    /// Start units or instances; with `wait`, reply once every one is settled
    /// (running, exited, failed, or blocked by a failed dependency).
    Start {
        names: Vec<String>,
        #[serde(default = "default_true")]
        wait: bool,
    },
    /// Stop units or instances; with `wait`, reply once every process is gone.
    Stop {
        names: Vec<String>,
        #[serde(default = "default_true")]
        wait: bool,
    },
    /// Stop, then start again; with `wait`, reply once every one is settled.
    Restart {
        names: Vec<String>,
        #[serde(default = "default_true")]
        wait: bool,
    },
    /// Restart the running instances of service `name` a batch of
    /// `max_unavailable` at a time, each batch ready before the next; reply
    /// once all are, or with a `failed` error naming the instance that did
    /// not become ready (the rest keep running as they were).
    RollingRestart {
        name: String,
        /// Sent again after a `daemon-reexec` cut the wait short: wait for
        /// the rolling restart of `name` carried over from the previous
        /// image (or take its result) instead of starting another.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        resume: bool,
    },
    /// Send `signal` (a name like `SIGHUP` or `HUP`, or a number) to the
    /// process group of every running instance.
    Kill { names: Vec<String>, signal: String },
    /// Change the number of instances of a service.
    Scale { name: String, instances: u32 },
    /// Stop everything (daemon/join semantics), then herdd exits.
    Shutdown,
    /// Queue a task in a pool; replies at once with its id.
    Submit {
        pool: String,
        /// argv, run without a shell.
        command: Vec<String>,
        /// A label shown in `tasks`.
        #[serde(default)]
        name: Option<String>,
        /// Timeout, retries, priority, start delay, uniqueness.
        #[serde(default, skip_serializing_if = "SubmitOptions::is_default")]
        options: SubmitOptions,
    },
    /// Wait until every task has ended, or `timeout_ms` passed (then the reply
    /// has `timed_out: true` and the tasks' current states).
    Join {
        ids: Vec<TaskId>,
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// Tasks herd knows (queued, running, and the last `keep_finished` ended ones).
    Tasks {
        #[serde(default)]
        pool: Option<String>,
    },
    /// Captured output of a task.
    Output {
        id: TaskId,
        #[serde(default)]
        stream: OutputStream,
    },
    /// Remove queued tasks; stop running ones (stop signal, SIGKILL after `stop_timeout`).
    Cancel { ids: Vec<TaskId> },
    /// Refuse new submissions; queued and running tasks go on.
    PoolClose { pool: String },
    /// Cancel every queued task and stop every running one.
    PoolTerminate { pool: String },
    /// Wait until the pool's queue is empty and nothing runs (or `timeout_ms`).
    PoolJoin {
        pool: String,
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// Semaphores with their holders and waiters.
    SemList,
    /// Take a slot of `name` for this connection, waiting in line (FIFO) up to
    /// `timeout_ms`. The slot is held until `sem-release` or until the
    /// connection closes, however the client ends. `pid` names the client in `sem list`.
    SemAcquire {
        name: String,
        #[serde(default)]
        timeout_ms: Option<u64>,
        #[serde(default)]
        pid: Option<u32>,
    },
    /// Give back this connection's slot of `name`.
    SemRelease { name: String },
    /// Events and whether they are set.
    EventList,
    /// Set an event (creating it if needed); wakes its waiters and gated units.
    EventSet { name: String },
    /// Clear an event (creating it if needed).
    EventClear { name: String },
    /// Wait until the event is set (at once if it is), or `timeout_ms`.
    EventWait {
        name: String,
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// Re-read the config file: start new units, stop removed ones, restart
    /// changed ones, leave the rest untouched. A bad config changes nothing.
    Reload,
    /// Re-execute herdd in place (same pid, every child kept), e.g. after
    /// replacing its binary. Replies `{}`, then closes every connection.
    DaemonReexec,
    /// Stream lifecycle events: the recent ones herd remembers, one
    /// `{"event": EventLine}` line each, then (without `follow`)
    /// `{"ok": {"count": N}}`; with `follow`, live ones until the client closes.
    Events {
        #[serde(default)]
        follow: bool,
    },
    /// Stream captured stdout/stderr of units (all instances merged in time
    /// order), instances or config tasks, read back from the log files: one
    /// `{"log": LogLine}` line each (the last `lines` of them, or all kept),
    /// then (without `follow`) `{"ok": {"count": N}}`; with `follow`, new
    /// lines as they are written, across rotations, until the client closes.
    Logs {
        names: Vec<String>,
        #[serde(default)]
        lines: Option<u64>,
        #[serde(default)]
        follow: bool,
    },
    /// Everything herdd can tell a monitoring system, as Prometheus text
    /// exposition: `{"ok": MetricsReport}`.
    Metrics,
    /// Queue several tasks in a pool with one request; replies at once with
    /// their ids in order ([`BatchReport`]). A bad command, pool or option
    /// refuses the whole batch; a full queue (or this connection's cap on
    /// unread results, [`MAX_UNREAD_RESULTS`]) accepts the commands that fit,
    /// in order, and says why it stopped.
    SubmitBatch {
        pool: String,
        /// One argv per task, run without a shell.
        commands: Vec<Vec<String>>,
        /// Timeout, retries, priority, start delay of every task (`unique`
        /// is refused: batch tasks have no names).
        #[serde(default, skip_serializing_if = "SubmitOptions::is_default")]
        options: SubmitOptions,
    },
    /// The ended tasks this connection submitted (and those of `ids`, which
    /// it collects from now on, e.g. after reconnecting) whose results it
    /// has not read: each with its stdout, and read by this. Waits until at
    /// least one has ended, or `timeout_ms`; answers at once when nothing
    /// is outstanding ([`ResultsReport`]). With `linger_ms`, once one has
    /// ended, waits that much longer for more (unless all have ended).
    Results {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ids: Vec<TaskId>,
        #[serde(default)]
        timeout_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        linger_ms: Option<u64>,
    },
}

/// A pool task's id: unique for the life of herdd, across pools, never reused.
pub type TaskId = u64;

/// Which captured stream `output` returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    #[default]
    Stdout,
    Stderr,
}

impl Request {
    /// Whether the request only reads state. Users who may not control herd
    /// may still send these (README: other local users may only read status).
    pub fn is_read_only(&self) -> bool {
        match self {
            // Waiting reveals no more than status does.
            Request::Status { .. }
            | Request::Tasks { .. }
            | Request::Join { .. }
            | Request::PoolJoin { .. }
            | Request::SemList
            | Request::EventList
            | Request::EventWait { .. }
            | Request::Events { .. }
            | Request::Metrics => true,
            // Output and logs may hold secrets; they are for those who may control herd.
            Request::Output { .. } | Request::Logs { .. } | Request::Results { .. } => false,
            Request::Start { .. }
            | Request::Stop { .. }
            | Request::Restart { .. }
            | Request::RollingRestart { .. }
            | Request::Kill { .. }
            | Request::Scale { .. }
            | Request::Shutdown
            | Request::Submit { .. }
            | Request::SubmitBatch { .. }
            | Request::Cancel { .. }
            | Request::PoolClose { .. }
            | Request::PoolTerminate { .. }
            | Request::SemAcquire { .. }
            | Request::SemRelease { .. }
            | Request::EventSet { .. }
            | Request::EventClear { .. }
            | Request::DaemonReexec
            | Request::Reload => false,
        }
    }

    /// How long herdd may take to answer, by design: at once, or only when
    /// what the request waits for has happened (with or without a limit).
    /// A client's own timeout is counted from then.
    pub fn answer(&self) -> Answer {
        let wait = |timeout_ms: &Option<u64>| match timeout_ms {
            Some(ms) => Answer::Within(*ms),
            None => Answer::Unbounded,
        };
        match self {
            Request::Join { timeout_ms, .. }
            | Request::PoolJoin { timeout_ms, .. }
            | Request::SemAcquire { timeout_ms, .. }
            | Request::EventWait { timeout_ms, .. }
            | Request::Results { timeout_ms, .. } => wait(timeout_ms),
            Request::Start { wait: true, .. }
            | Request::Stop { wait: true, .. }
            | Request::Restart { wait: true, .. }
            | Request::RollingRestart { .. }
            | Request::Shutdown
            | Request::Events { follow: true }
            | Request::Logs { follow: true, .. } => Answer::Unbounded,
            Request::Status { .. }
            | Request::Start { wait: false, .. }
            | Request::Stop { wait: false, .. }
            | Request::Restart { wait: false, .. }
            | Request::Kill { .. }
            | Request::Scale { .. }
            | Request::Submit { .. }
            | Request::SubmitBatch { .. }
            | Request::Tasks { .. }
            | Request::Output { .. }
            | Request::Cancel { .. }
            | Request::PoolClose { .. }
            | Request::PoolTerminate { .. }
            | Request::SemList
            | Request::SemRelease { .. }
            | Request::EventList
            | Request::EventSet { .. }
            | Request::EventClear { .. }
            | Request::Reload
            | Request::DaemonReexec
            | Request::Events { follow: false }
            | Request::Logs { follow: false, .. }
            | Request::Metrics => Answer::Prompt,
        }
    }

    /// What to send to a new herdd image to go on waiting after a
    /// [`ErrorCode::Reconnect`] cut this request's wait short, `elapsed`
    /// after it was first sent: the same wait with what is left of its
    /// timeout. A `restart` was carried out, so it becomes a `start`.
    pub fn resumed(&self, elapsed: std::time::Duration) -> Request {
        let left = |timeout_ms: &Option<u64>| {
            let elapsed = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            timeout_ms.map(|ms| ms.saturating_sub(elapsed))
        };
        match self {
            Request::Restart { names, wait } => Request::Start {
                names: names.clone(),
                wait: *wait,
            },
            Request::Join { ids, timeout_ms } => Request::Join {
                ids: ids.clone(),
                timeout_ms: left(timeout_ms),
            },
            Request::PoolJoin { pool, timeout_ms } => Request::PoolJoin {
                pool: pool.clone(),
                timeout_ms: left(timeout_ms),
            },
            Request::SemAcquire {
                name,
                timeout_ms,
                pid,
            } => Request::SemAcquire {
                name: name.clone(),
                timeout_ms: left(timeout_ms),
                pid: *pid,
            },
            Request::EventWait { name, timeout_ms } => Request::EventWait {
                name: name.clone(),
                timeout_ms: left(timeout_ms),
            },
            Request::RollingRestart { name, .. } => Request::RollingRestart {
                name: name.clone(),
                resume: true,
            },
            Request::Results {
                ids,
                timeout_ms,
                linger_ms,
            } => Request::Results {
                ids: ids.clone(),
                timeout_ms: left(timeout_ms),
                linger_ms: *linger_ms,
            },
            other => other.clone(),
        }
    }

    /// The verb, as it appears in `cmd`.
    pub fn verb(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("cmd").and_then(|c| c.as_str()).map(str::to_string))
            .unwrap_or_default()
    }
}

fn is_true(value: &bool) -> bool {
    *value
}

fn default_true() -> bool {
    true
}

/// When herdd answers a request (see [`Request::answer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// As soon as it has read it.
    Prompt,
    /// When what it waits for happens, at the latest after this many ms.
    Within(u64),
    /// When what it waits for happens, however long that takes (or never,
    /// for a followed stream).
    Unbounded,
}

/// Machine-readable error codes; each maps to one herdctl exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not an object, a missing or wrong argument.
    BadRequest,
    /// `v` is missing or not a version this daemon speaks.
    UnsupportedVersion,
    /// `cmd` names no verb this daemon knows.
    UnknownCommand,
    /// The request line is longer than [`MAX_REQUEST_BYTES`].
    TooLarge,
    /// A name matched no unit or instance.
    NoSuchUnit,
    /// No pool of that name.
    NoSuchPool,
    /// No task with that id: never submitted, or evicted (beyond `keep_finished`).
    NoSuchTask,
    /// The pool refuses the submission: closed, or its queue is at `max_queue`.
    Refused,
    /// No semaphore of that name.
    NoSuchSemaphore,
    /// The caller may not do this.
    PermissionDenied,
    /// The operation was carried out and did not succeed (e.g. a unit failed to start).
    Failed,
    /// herdd is shutting down and takes no new work.
    ShuttingDown,
    /// herdd already serves its maximum number of connections; this one is
    /// closed after the error. Trying again later may succeed.
    TooBusy,
    /// herdd is re-executing (`daemon-reexec`): the request was carried out
    /// but its wait was cut short, and the connection closes next. Connect
    /// again (the new image answers on the same socket, with the same pid and
    /// state) and wait again: send the same request (`restart` becomes
    /// `start`, which waits without restarting twice). herdctl does this by itself.
    Reconnect,
}

impl ErrorCode {
    /// herdctl's exit code for this error (README "herdctl": 1 failed, 2 usage,
    /// 4 no such unit, 5 permission denied).
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorCode::NoSuchUnit
            | ErrorCode::NoSuchPool
            | ErrorCode::NoSuchTask
            | ErrorCode::NoSuchSemaphore => 4,
            ErrorCode::PermissionDenied => 5,
            ErrorCode::BadRequest
            | ErrorCode::UnsupportedVersion
            | ErrorCode::UnknownCommand
            | ErrorCode::TooLarge => 2,
            ErrorCode::Failed
            | ErrorCode::ShuttingDown
            | ErrorCode::Refused
            | ErrorCode::TooBusy
            | ErrorCode::Reconnect => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::NoSuchUnit => "no_such_unit",
            ErrorCode::NoSuchPool => "no_such_pool",
            ErrorCode::NoSuchTask => "no_such_task",
            ErrorCode::Refused => "refused",
            ErrorCode::NoSuchSemaphore => "no_such_semaphore",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::Failed => "failed",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::TooBusy => "too_busy",
            ErrorCode::Reconnect => "reconnect",
        }
    }
}

/// The body of an error reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// One reply line: `{"ok": payload}` or `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reply {
    Ok(serde_json::Value),
    Error(ErrorBody),
}

impl Reply {
    /// An `ok` reply carrying `payload`.
    pub fn ok(payload: impl Serialize) -> Reply {
        match serde_json::to_value(payload) {
            Ok(value) => Reply::Ok(value),
            Err(err) => Reply::error(ErrorCode::Failed, format!("cannot encode reply: {err}")),
        }
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Reply {
        Reply::Error(ErrorBody::new(code, message))
    }

    /// The reply as one line of JSON, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"error":{"code":"failed","message":"cannot encode reply"}}"#.to_string()
        });
        line.push('\n');
        line
    }
}

/// Decodes one request line. Every failure is an error body ready to send back.
pub fn decode_request(line: &[u8]) -> Result<Request, ErrorBody> {
    let value: serde_json::Value = serde_json::from_slice(line)
        .map_err(|err| ErrorBody::new(ErrorCode::BadRequest, format!("not JSON: {err}")))?;
    let serde_json::Value::Object(mut object) = value else {
        return Err(ErrorBody::new(
            ErrorCode::BadRequest,
            "a request must be a JSON object",
        ));
    };
    match object.remove("v") {
        Some(v) if v.as_u64() == Some(PROTOCOL_VERSION) => {}
        Some(v) => {
            return Err(ErrorBody::new(
                ErrorCode::UnsupportedVersion,
                format!(
                    "protocol version {v} is not supported (this herdd speaks {PROTOCOL_VERSION})"
                ),
            ))
        }
        None => {
            return Err(ErrorBody::new(
                ErrorCode::UnsupportedVersion,
                format!(
                "missing \"v\": every request carries the protocol version ({PROTOCOL_VERSION})"
            ),
            ))
        }
    }
    let verb = match object.get("cmd") {
        Some(serde_json::Value::String(verb)) => verb.clone(),
        Some(_) => {
            return Err(ErrorBody::new(
                ErrorCode::BadRequest,
                "\"cmd\" must be a string",
            ))
        }
        None => return Err(ErrorBody::new(ErrorCode::BadRequest, "missing \"cmd\"")),
    };
    if !KNOWN_VERBS.contains(&verb.as_str()) {
        return Err(ErrorBody::new(
            ErrorCode::UnknownCommand,
            format!("unknown command {verb:?}"),
        ));
    }
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|err| {
        ErrorBody::new(
            ErrorCode::BadRequest,
            format!("bad arguments for {verb:?}: {err}"),
        )
    })
}

/// Encodes a request as one line (with `v`), newline included.
pub fn encode_request(request: &Request) -> String {
    let mut value = serde_json::to_value(request).expect("requests always serialise");
    if let serde_json::Value::Object(object) = &mut value {
        object.insert("v".into(), PROTOCOL_VERSION.into());
    }
    let mut line = value.to_string();
    line.push('\n');
    line
}

/// Every `cmd` this version knows, so an unknown verb is told apart from bad arguments.
pub const KNOWN_VERBS: &[&str] = &[
    "status",
    "start",
    "stop",
    "restart",
    "kill",
    "scale",
    "shutdown",
    "submit",
    "join",
    "tasks",
    "output",
    "cancel",
    "pool-close",
    "pool-terminate",
    "pool-join",
    "sem-list",
    "sem-acquire",
    "sem-release",
    "event-list",
    "event-set",
    "event-clear",
    "event-wait",
    "events",
    "daemon-reexec",
    "reload",
    "logs",
    "rolling-restart",
    "metrics",
    "submit-batch",
    "results",
];

/// Kind of unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitKind {
    Service,
    Task,
}

/// Payload of `status` (and of `start`/`stop`/`restart`/`scale`, for the units they touched).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub units: Vec<UnitStatus>,
    /// Task pools; only in the reply to `status` without names.
    #[serde(default)]
    pub pools: Vec<PoolStatus>,
    /// Listening sockets herd holds; only in the reply to `status` without names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sockets: Vec<SocketStatus>,
}

/// A listening socket herd holds (`[socket.NAME]`), as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketStatus {
    pub name: String,
    /// `127.0.0.1:8080`, `[::1]:80` or a Unix socket's path.
    pub listen: String,
    /// The services that name it in `sockets`.
    pub units: Vec<String>,
}

/// A task pool as `status` and `pool-*` verbs show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStatus {
    pub name: String,
    /// At most this many tasks run at once.
    pub size: u32,
    pub running: u32,
    pub queued: u32,
    /// Ended tasks still kept for `join`/`output`.
    pub finished: u32,
    /// Every task ever submitted to it.
    pub submitted: u64,
    pub max_queue: u32,
    /// How many ended tasks it keeps for `join`/`output`.
    pub keep_finished: u32,
    /// `pool close` was called: submissions are refused.
    pub closed: bool,
    /// How its tasks ended, since herdd started.
    #[serde(flatten)]
    pub tally: PoolTally,
    /// Why its `on_failure` hook cannot be executed (it is not run again
    /// until the next reload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_error: Option<String>,
}

/// Upper bounds, in seconds, of the task duration histogram's buckets (the
/// last bucket, `+Inf`, is implied).
pub const TASK_DURATION_BUCKETS: [f64; 10] =
    [0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0];

/// How a pool's tasks ended, counted since herdd started (not carried over a
/// `daemon-reexec`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolTally {
    /// Tasks that exited with code 0.
    #[serde(default)]
    pub completed: u64,
    /// Tasks that failed (non-zero code, signal, exec error, timed out).
    #[serde(default)]
    pub failed: u64,
    #[serde(default)]
    pub cancelled: u64,
    /// Tasks that ran and ended, by duration: one count per bound of
    /// [`TASK_DURATION_BUCKETS`], not cumulative; then those above the last.
    #[serde(default)]
    pub duration_counts: Vec<u64>,
    /// Sum of the durations of the tasks counted there, milliseconds.
    #[serde(default)]
    pub duration_sum_ms: u64,
}

impl PoolTally {
    /// Counts a task that ended in `state` after running `ran_ms` (if it ran).
    pub fn record(&mut self, state: TaskState, ran_ms: Option<u64>) {
        match state {
            TaskState::Exited => self.completed += 1,
            // A timed-out task failed too (it did not finish its work).
            TaskState::Failed | TaskState::TimedOut => self.failed += 1,
            TaskState::Cancelled => self.cancelled += 1,
            // Not an end: nothing to count.
            TaskState::Queued | TaskState::Running => return,
        }
        let Some(ms) = ran_ms else { return };
        if self.duration_counts.len() != TASK_DURATION_BUCKETS.len() + 1 {
            self.duration_counts = vec![0; TASK_DURATION_BUCKETS.len() + 1];
        }
        let seconds = ms as f64 / 1000.0;
        let bucket = TASK_DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(TASK_DURATION_BUCKETS.len());
        self.duration_counts[bucket] += 1;
        self.duration_sum_ms += ms;
    }
}

/// Payload of `metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsReport {
    /// Prometheus text exposition format (version 0.0.4).
    pub text: String,
}

/// One pool task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub id: TaskId,
    pub pool: String,
    pub name: Option<String>,
    pub state: TaskState,
    pub command: Vec<String>,
    pub pid: Option<u32>,
    /// How it ended, when it ran and ended.
    pub exit: Option<Exit>,
    /// Why it failed without an exit (exec error) or was cancelled.
    pub reason: Option<String>,
    /// Milliseconds it ran (so far, while running).
    pub duration_ms: Option<u64>,
    /// Re-adopted after herdd crashed (exit status will be unknown, output not captured).
    #[serde(default)]
    pub adopted: bool,
    /// Its priority: higher runs first.
    #[serde(default)]
    pub priority: u32,
    /// How many times it was started (retries included).
    #[serde(default)]
    pub attempts: u32,
    /// How many retries it may use in all.
    #[serde(default)]
    pub retries: u32,
    /// How each earlier, failed attempt ended, oldest first.
    #[serde(default)]
    pub failed_attempts: Vec<Exit>,
    /// What it costs while it runs (filled in by herdd as it replies).
    #[serde(flatten)]
    pub usage: Usage,
}

/// Payload of `submit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitReport {
    pub id: TaskId,
    pub state: TaskState,
    /// `unique` was asked and a live task of that name was found: `id` is
    /// that task's, nothing was queued. Sent only when true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub existing: bool,
}

/// How many ended tasks herdd holds for one connection alone (their pool
/// has let go of them) before it refuses that connection's submissions
/// until it reads some (`output` or `results`), so that no client makes
/// herdd hold results without bound.
pub const MAX_UNREAD_RESULTS: usize = 4096;

/// A `results` reply stops adding tasks once their stdout adds up to this
/// many bytes (it always carries at least one ended task).
pub const RESULTS_REPLY_BYTES: usize = 1024 * 1024;

/// Payload of `submit-batch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchReport {
    /// The ids of the queued tasks, in the order of `commands`: all of
    /// them, or the first ones when the rest did not fit.
    pub ids: Vec<TaskId>,
    /// Why the commands after the last id were not queued (the pool's queue
    /// is full, or this connection holds its maximum of unread results).
    /// Sent only when some were not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// Payload of `results`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultsReport {
    /// Ended tasks, lowest id first; read by this reply.
    pub results: Vec<TaskResult>,
    /// How many of this connection's tasks are still unread (queued,
    /// running, or ended and left for the next reply).
    pub outstanding: u64,
    /// `timeout_ms` passed with nothing ended.
    pub timed_out: bool,
}

/// One ended task in a `results` reply: its status and its stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    pub task: TaskStatus,
    /// Its captured stdout, as `output` gives it.
    pub stdout: OutputReport,
}

/// How one submitted task runs. Absent limits take the pool's defaults
/// (`task_timeout`, `retries`, `retry_delay`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitOptions {
    /// Stop the task (stop signal, then SIGKILL) once it ran this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Run it again up to this many times when it exits non-zero or is killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Wait before the first retry; each further retry waits twice as long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay_ms: Option<u64>,
    /// Higher runs first; tasks of equal priority run in submission order.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: u32,
    /// Do not start it before this many milliseconds from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_ms: Option<u64>,
    /// With a `name`: while a task of that name is queued or running in the
    /// pool, return its id instead of queueing another.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
}

impl SubmitOptions {
    pub fn is_default(&self) -> bool {
        *self == SubmitOptions::default()
    }
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Payload of `join` and `tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReport {
    pub tasks: Vec<TaskStatus>,
    /// `join` gave up waiting at its timeout; some tasks have not ended.
    #[serde(default)]
    pub timed_out: bool,
}

/// Payload of `output`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputReport {
    pub id: TaskId,
    pub stream: OutputStream,
    /// The captured bytes as UTF-8 (invalid sequences replaced by U+FFFD).
    pub data: String,
    /// The task wrote more than herd keeps; `data` is the first part.
    pub truncated: bool,
    /// How many bytes herd kept (before any UTF-8 replacement in `data`).
    pub kept_bytes: u64,
    /// How many bytes the task wrote to this stream in all.
    pub total_bytes: u64,
}

/// One semaphore in `sem list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SemaphoreStatus {
    pub name: String,
    pub capacity: u32,
    /// Who holds a slot: `web@1`, `convert#17`, `client 3 (pid 4242)`.
    pub holders: Vec<String>,
    /// Who waits, first in line first.
    pub waiters: Vec<String>,
    /// How long holders waited for their slots, since herdd started.
    #[serde(default)]
    pub waits: WaitTally,
}

/// Upper bounds, in seconds, of the semaphore wait histogram's buckets (the
/// last bucket, `+Inf`, is implied). A slot granted at once waited 0 s.
pub const SEMAPHORE_WAIT_BUCKETS: [f64; 12] = [
    0.005, 0.05, 0.25, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
];

/// How long the slots of one semaphore were waited for: one count per
/// grant, not carried over a `daemon-reexec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitTally {
    /// Grants by wait: one count per bound of [`SEMAPHORE_WAIT_BUCKETS`],
    /// not cumulative; then those above the last.
    #[serde(default)]
    pub counts: Vec<u64>,
    /// Sum of the waits counted there, microseconds.
    #[serde(default)]
    pub sum_us: u64,
}

impl WaitTally {
    /// Counts one grant after a wait of `waited`.
    pub fn record(&mut self, waited: std::time::Duration) {
        if self.counts.len() != SEMAPHORE_WAIT_BUCKETS.len() + 1 {
            self.counts = vec![0; SEMAPHORE_WAIT_BUCKETS.len() + 1];
        }
        let seconds = waited.as_secs_f64();
        let bucket = SEMAPHORE_WAIT_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(SEMAPHORE_WAIT_BUCKETS.len());
        self.counts[bucket] += 1;
        self.sum_us = self
            .sum_us
            .saturating_add(u64::try_from(waited.as_micros()).unwrap_or(u64::MAX));
    }

    /// Every grant counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Payload of `sem-list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SemaphoreReport {
    pub semaphores: Vec<SemaphoreStatus>,
}

/// Payload of `sem-acquire`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcquireReport {
    pub name: String,
    /// False when `timeout_ms` passed first (nothing is held then).
    pub acquired: bool,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventStatus {
    pub name: String,
    pub set: bool,
}

/// Payload of `event-list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventReport {
    pub events: Vec<EventStatus>,
}

/// Payload of `event-set`, `event-clear` and `event-wait`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventChange {
    pub event: EventStatus,
    /// `event-wait` gave up at its timeout.
    #[serde(default)]
    pub timed_out: bool,
}

/// Payload of `reload`: what changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// Units and pools new in the config, now started.
    pub added: Vec<String>,
    /// Units and pools gone from the config, now stopped and dropped.
    pub removed: Vec<String>,
    /// Units whose definition changed, now restarted with it.
    pub changed: Vec<String>,
    /// Pools, semaphores and events whose settings changed in place, and
    /// `[herd]` keys applied at once (`herd.shutdown_timeout`, ...).
    #[serde(default)]
    pub updated: Vec<String>,
    /// `[herd]` keys that changed but take effect only when herdd is
    /// restarted (`herd.socket`, ...): until then the old value holds.
    #[serde(default)]
    pub restart_needed: Vec<String>,
}

/// Payload of `cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelReport {
    /// Tasks that were queued or running and are now cancelled (or being stopped).
    pub cancelled: Vec<TaskId>,
}

/// Payload of `pool-close`, `pool-terminate` and `pool-join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolReport {
    pub pool: PoolStatus,
    /// `pool-join` gave up at its timeout.
    #[serde(default)]
    pub timed_out: bool,
}

/// One unit as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitStatus {
    pub name: String,
    pub kind: UnitKind,
    /// The unit's overall state: the "least settled" of its instances.
    pub state: State,
    pub command: Vec<String>,
    pub instances: Vec<InstanceStatus>,
    /// Why its `on_failure` hook cannot be executed (it is not run again
    /// until the next reload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_error: Option<String>,
    /// A task's timer (`schedule` or `every`), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer: Option<TimerStatus>,
}

/// A task's timer as `status` shows it. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerStatus {
    /// `*/15 * * * *` or `every 10m`.
    pub schedule: String,
    /// When it runs next; none while it is not scheduled (`autostart =
    /// false`, shutting down) or waits for the current run to end.
    pub next_run_ms: Option<i64>,
    pub last_run: Option<TimerRun>,
    /// How many runs it made (kept across restarts of herdd).
    pub runs: u64,
    /// The pool its runs are submitted into, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// A run is waiting for the current one to end (`overlap = "queue"`).
    #[serde(default)]
    pub queued: bool,
}

/// One run of a timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerRun {
    /// When it started, Unix milliseconds.
    pub started_ms: i64,
    /// `exited 0`, `failed: ...`, `stopped`; none while it runs.
    pub result: Option<String>,
}

/// One instance as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// `web@2` for a pool's instance, `db` for a single service or task.
    pub name: String,
    pub state: State,
    pub pid: Option<u32>,
    /// Milliseconds since the current process was spawned.
    pub uptime_ms: Option<u64>,
    /// How many times herd restarted this instance after it exited.
    pub restarts: u32,
    pub last_exit: Option<Exit>,
    /// Why the instance is waiting, backing off or failed, or what its exec error was.
    pub reason: Option<String>,
    /// The last `STATUS=` it sent on the notify socket (`ready = "notify"`).
    #[serde(default)]
    pub notify_status: Option<String>,
    /// Its process was re-adopted after herdd crashed: herdd is no longer its
    /// parent, so its exit status will be unknown.
    #[serde(default)]
    pub adopted: bool,
    /// Its output cannot be written to its log file (unwritable or full log
    /// dir): herdd reads and discards it until writing works again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_error: Option<String>,
    /// Its health probe's verdict, for a service with `health` while a
    /// process runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// What it costs while it runs (filled in by herdd as it replies).
    #[serde(flatten)]
    pub usage: Usage,
}

/// What an instance's health probe says (`health` in `status --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub state: HealthState,
    /// Failed probes in a row that count (not those within `start_period`).
    pub failures: u32,
    /// What the last failed probe said, until one passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why herd last restarted this instance for failing its probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted: Option<String>,
}

/// `starting`: no probe has passed since the process started; `healthy`:
/// the last passed, or fewer than `retries` failed since; `unhealthy`:
/// `retries` failed in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    Starting,
    Healthy,
    Unhealthy,
}

impl std::fmt::Display for HealthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HealthState::Starting => "starting",
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
        })
    }
}

/// What a running instance or task costs, from its cgroup (or its
/// processes in /proc): absent while nothing runs or where not known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Memory in use now (the cgroup's charge, or the resident set summed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// The most it ever used, where the kernel records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_peak_bytes: Option<u64>,
    /// User plus system CPU time, microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_usec: Option<u64>,
    /// How many processes it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
}

/// One line of a log, as `logs` streams it (`{"log": LogLine}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When herdd read it: `2026-11-29T17:00:00.123Z` (UTC, milliseconds).
    pub time: String,
    /// `web@2`, `db`, `migrate`.
    pub instance: String,
    pub stream: OutputStream,
    /// The line without its newline, as UTF-8 (invalid sequences replaced).
    pub text: String,
    /// No newline followed: the process exited mid-line, or the line was
    /// longer than 64 KiB and goes on in the next line of the same stream.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// A `logs -f` reader fell so far behind that whole rotated files were
/// deleted (more than `log_keep` rotations) before it could read them
/// (`{"missed": LogGap}`); it goes on with the oldest file still there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogGap {
    pub instance: String,
    /// How many files it could not read.
    pub files: u64,
}

/// Payload of `kill`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillReport {
    /// Instances whose process group was signalled.
    pub signalled: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip() {
        let requests = [
            Request::Status {
                names: vec![],
                usage: true,
            },
            Request::Start {
                names: vec!["web".into()],
                wait: false,
            },
            Request::Kill {
                names: vec!["web@1".into()],
                signal: "HUP".into(),
            },
            Request::Scale {
                name: "web".into(),
                instances: 3,
            },
            Request::Shutdown,
            Request::Submit {
                pool: "p".into(),
                command: vec!["a b".into(), "{}".into()],
                name: Some("n".into()),
                options: SubmitOptions {
                    timeout_ms: Some(30_000),
                    retries: Some(3),
                    retry_delay_ms: Some(500),
                    priority: 2,
                    after_ms: Some(10),
                    unique: true,
                },
            },
            Request::Join {
                ids: vec![1, 2],
                timeout_ms: Some(100),
            },
            Request::Output {
                id: 3,
                stream: OutputStream::Stdout,
            },
            Request::PoolJoin {
                pool: "p".into(),
                timeout_ms: None,
            },
            Request::Logs {
                names: vec!["web".into(), "db@1".into()],
                lines: None,
                follow: false,
            },
        ];
        for request in requests {
            let line = encode_request(&request);
            assert!(line.ends_with('\n'));
            assert!(line.contains("\"v\":1"));
            assert_eq!(decode_request(line.trim_end().as_bytes()).unwrap(), request);
        }
    }

    #[test]
    fn defaults_apply() {
        let request = decode_request(br#"{"v":1,"cmd":"start","names":["a"]}"#).unwrap();
        assert_eq!(
            request,
            Request::Start {
                names: vec!["a".into()],
                wait: true
            }
        );
        let request = decode_request(br#"{"v":1,"cmd":"status"}"#).unwrap();
        assert_eq!(
            request,
            Request::Status {
                names: vec![],
                usage: true,
            }
        );
        let usual = Request::Status {
            names: vec![],
            usage: true,
        };
        let line: serde_json::Value = serde_json::from_str(&encode_request(&usual)).unwrap();
        assert_eq!(
            line,
            serde_json::json!({"v": 1, "cmd": "status", "names": []}),
            "a request for the usual status reads as it always did"
        );
        let request = decode_request(br#"{"v":1,"cmd":"status","usage":false}"#).unwrap();
        assert_eq!(
            request,
            Request::Status {
                names: vec![],
                usage: false,
            }
        );
        let request = decode_request(br#"{"v":1,"cmd":"logs","names":["web"]}"#).unwrap();
        assert_eq!(
            request,
            Request::Logs {
                names: vec!["web".into()],
                lines: None,
                follow: false
            }
        );
        assert!(!request.is_read_only(), "logs may hold secrets");
    }

    #[test]
    fn malformed_requests_get_the_right_code() {
        let cases: [(&[u8], ErrorCode); 8] = [
            (b"garbage", ErrorCode::BadRequest),
            (b"[1,2]", ErrorCode::BadRequest),
            (br#"{"cmd":"status"}"#, ErrorCode::UnsupportedVersion),
            (br#"{"v":2,"cmd":"status"}"#, ErrorCode::UnsupportedVersion),
            (br#"{"v":1}"#, ErrorCode::BadRequest),
            (br#"{"v":1,"cmd":"fly"}"#, ErrorCode::UnknownCommand),
            (
                br#"{"v":1,"cmd":"scale","name":"web"}"#,
                ErrorCode::BadRequest,
            ),
            (
                br#"{"v":1,"cmd":"status","bogus":1}"#,
                ErrorCode::BadRequest,
            ),
        ];
        for (line, code) in cases {
            let err = decode_request(line).unwrap_err();
            assert_eq!(err.code, code, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn known_verbs_match_the_request_enum() {
        // One request of every variant: each verb must be listed, and nothing else.
        let every_variant = [
            Request::Status {
                names: vec![],
                usage: true,
            },
            Request::Start {
                names: vec![],
                wait: true,
            },
            Request::Stop {
                names: vec![],
                wait: true,
            },
            Request::Restart {
                names: vec![],
                wait: true,
            },
            Request::Kill {
                names: vec![],
                signal: "TERM".into(),
            },
            Request::Scale {
                name: "a".into(),
                instances: 1,
            },
            Request::Shutdown,
            Request::Submit {
                pool: "p".into(),
                command: vec!["true".into()],
                name: None,
                options: SubmitOptions::default(),
            },
            Request::Join {
                ids: vec![1],
                timeout_ms: None,
            },
            Request::Tasks { pool: None },
            Request::Output {
                id: 1,
                stream: OutputStream::Stderr,
            },
            Request::Cancel { ids: vec![1] },
            Request::PoolClose { pool: "p".into() },
            Request::PoolTerminate { pool: "p".into() },
            Request::PoolJoin {
                pool: "p".into(),
                timeout_ms: Some(5),
            },
            Request::SemList,
            Request::SemAcquire {
                name: "s".into(),
                timeout_ms: None,
                pid: Some(1),
            },
            Request::SemRelease { name: "s".into() },
            Request::EventList,
            Request::EventSet { name: "e".into() },
            Request::EventClear { name: "e".into() },
            Request::EventWait {
                name: "e".into(),
                timeout_ms: Some(1),
            },
            Request::Events { follow: true },
            Request::DaemonReexec,
            Request::Reload,
            Request::Logs {
                names: vec!["web".into()],
                lines: Some(10),
                follow: true,
            },
            Request::RollingRestart {
                name: "web".into(),
                resume: false,
            },
            Request::Metrics,
            Request::SubmitBatch {
                pool: "p".into(),
                commands: vec![vec!["true".into()]],
                options: SubmitOptions::default(),
            },
            Request::Results {
                ids: vec![],
                timeout_ms: None,
                linger_ms: None,
            },
        ];
        let mut verbs: Vec<String> = every_variant
            .iter()
            .map(|r| {
                serde_json::to_value(r).unwrap()["cmd"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        verbs.sort();
        let mut known: Vec<&str> = KNOWN_VERBS.to_vec();
        known.sort();
        assert_eq!(verbs, known);
    }

    #[test]
    fn batches_and_results_read_and_write_as_documented() {
        let line = br#"{"v":1,"cmd":"submit-batch","pool":"p","commands":[["gzip","a"],["true"]],"options":{"retries":2}}"#;
        let Request::SubmitBatch {
            pool,
            commands,
            options,
        } = decode_request(line).unwrap()
        else {
            panic!("a submit-batch");
        };
        assert_eq!((pool.as_str(), commands.len()), ("p", 2));
        assert_eq!((commands[0][1].as_str(), options.retries), ("a", Some(2)));
        let results = decode_request(br#"{"v":1,"cmd":"results"}"#).unwrap();
        assert_eq!(
            results,
            Request::Results {
                ids: vec![],
                timeout_ms: None,
                linger_ms: None,
            }
        );
        assert_eq!(
            encode_request(&results),
            "{\"cmd\":\"results\",\"timeout_ms\":null,\"v\":1}\n"
        );
        let named = br#"{"v":1,"cmd":"results","ids":[4,5],"timeout_ms":200,"linger_ms":5}"#;
        let named = decode_request(named).unwrap();
        assert_eq!(named.answer(), Answer::Within(200));
        let resumed = named.resumed(std::time::Duration::from_millis(50));
        assert_eq!(
            resumed,
            Request::Results {
                ids: vec![4, 5],
                timeout_ms: Some(150),
                linger_ms: Some(5),
            }
        );
        for (line, code) in [
            (
                &br#"{"v":1,"cmd":"submit-batch","pool":"p","commands":["gzip"]}"#[..],
                ErrorCode::BadRequest,
            ),
            (
                br#"{"v":1,"cmd":"submit-batch","pool":"p"}"#,
                ErrorCode::BadRequest,
            ),
            (br#"{"v":1,"cmd":"results","id":4}"#, ErrorCode::BadRequest),
        ] {
            assert_eq!(decode_request(line).unwrap_err().code, code);
        }
        assert!(
            !results.is_read_only(),
            "results carry output, which may hold secrets"
        );

        let report: BatchReport = serde_json::from_str(r#"{"ids":[1,2]}"#).unwrap();
        assert_eq!((report.ids, report.refused), (vec![1, 2], None));
        let full = BatchReport {
            ids: vec![1],
            refused: Some("pool p is full".into()),
        };
        assert_eq!(
            serde_json::to_value(&full).unwrap(),
            serde_json::json!({"ids": [1], "refused": "pool p is full"})
        );
        let reply = r#"{"results":[{"task":{"id":7,"pool":"p","name":null,"state":"exited",
            "command":["true"],"pid":null,"exit":{"code":0},"reason":null,"duration_ms":3},
            "stdout":{"id":7,"stream":"stdout","data":"hi\n","truncated":false,
            "kept_bytes":3,"total_bytes":3}}],"outstanding":2,"timed_out":false}"#;
        let report: ResultsReport = serde_json::from_str(reply).unwrap();
        assert_eq!(report.results[0].task.id, 7);
        assert_eq!(report.results[0].stdout.data, "hi\n");
        assert_eq!((report.outstanding, report.timed_out), (2, false));
    }

    #[test]
    fn too_busy_is_spelled_and_mapped_once() {
        let line = Reply::error(ErrorCode::TooBusy, "busy").to_line();
        assert_eq!(
            line,
            "{\"error\":{\"code\":\"too_busy\",\"message\":\"busy\"}}\n"
        );
        assert_eq!(ErrorCode::TooBusy.as_str(), "too_busy");
        assert_eq!(ErrorCode::TooBusy.exit_code(), 1);
        let back: Reply = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(back, Reply::error(ErrorCode::TooBusy, "busy"));
    }

    #[test]
    fn reply_shapes() {
        assert_eq!(Reply::ok(serde_json::json!({})).to_line(), "{\"ok\":{}}\n");
        let line = Reply::error(ErrorCode::NoSuchUnit, "no unit \"x\"").to_line();
        assert_eq!(
            line,
            "{\"error\":{\"code\":\"no_such_unit\",\"message\":\"no unit \\\"x\\\"\"}}\n"
        );
        let back: Reply = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(back, Reply::error(ErrorCode::NoSuchUnit, "no unit \"x\""));
    }

    #[test]
    fn reconnect_is_spelled_once() {
        let line = Reply::error(ErrorCode::Reconnect, "again").to_line();
        assert_eq!(
            line,
            "{\"error\":{\"code\":\"reconnect\",\"message\":\"again\"}}\n"
        );
        let back: Reply = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(back, Reply::error(ErrorCode::Reconnect, "again"));
    }

    #[test]
    fn waits_are_told_from_prompt_answers() {
        let join = |timeout_ms| Request::Join {
            ids: vec![1],
            timeout_ms,
        };
        assert_eq!(join(None).answer(), Answer::Unbounded);
        assert_eq!(join(Some(500)).answer(), Answer::Within(500));
        assert_eq!(
            Request::Status {
                names: vec![],
                usage: true,
            }
            .answer(),
            Answer::Prompt
        );
        assert_eq!(Request::Events { follow: true }.answer(), Answer::Unbounded);
        assert_eq!(Request::Events { follow: false }.answer(), Answer::Prompt);
        let start = |wait| Request::Start {
            names: vec!["web".into()],
            wait,
        };
        assert_eq!(start(true).answer(), Answer::Unbounded);
        assert_eq!(start(false).answer(), Answer::Prompt);
    }

    #[test]
    fn a_resumed_wait_keeps_what_is_left_and_restarts_nothing() {
        let elapsed = std::time::Duration::from_millis(300);
        let wait = Request::EventWait {
            name: "e".into(),
            timeout_ms: Some(1000),
        };
        assert_eq!(
            wait.resumed(elapsed),
            Request::EventWait {
                name: "e".into(),
                timeout_ms: Some(700)
            }
        );
        let late = Request::Join {
            ids: vec![3],
            timeout_ms: Some(100),
        };
        assert_eq!(
            late.resumed(elapsed),
            Request::Join {
                ids: vec![3],
                timeout_ms: Some(0)
            }
        );
        let forever = Request::PoolJoin {
            pool: "p".into(),
            timeout_ms: None,
        };
        assert_eq!(forever.resumed(elapsed), forever);
        let restart = Request::Restart {
            names: vec!["web".into()],
            wait: true,
        };
        assert_eq!(
            restart.resumed(elapsed),
            Request::Start {
                names: vec!["web".into()],
                wait: true
            }
        );
        let rolling = Request::RollingRestart {
            name: "web".into(),
            resume: false,
        };
        assert_eq!(
            rolling.resumed(elapsed),
            Request::RollingRestart {
                name: "web".into(),
                resume: true
            },
            "waits for the rollout under way instead of starting another"
        );
        let line = encode_request(&rolling);
        assert!(!line.contains("resume"), "{line}");
    }
}
