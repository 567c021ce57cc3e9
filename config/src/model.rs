//! The validated configuration model: what herdd runs on. Every value here has
//! passed validation; defaults are filled in.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A whole configuration: `[herd]` plus every unit, includes merged.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was loaded from (includes are resolved relative to it).
    pub path: PathBuf,
    pub herd: HerdSettings,
    /// Services and tasks, in name order. Names are unique across both kinds.
    pub units: Vec<UnitConfig>,
    /// Task pools, in name order. Pool names are unique among pools (a pool
    /// may share a name with a unit: they are addressed by different verbs).
    pub pools: Vec<PoolConfig>,
    /// `[semaphore.NAME]`, in name order.
    pub semaphores: Vec<SemaphoreConfig>,
    /// `[event.NAME]`, in name order.
    pub events: Vec<EventConfig>,
    /// `[socket.NAME]`, in name order.
    pub sockets: Vec<SocketConfig>,
}

/// `[socket.NAME]`: a listening socket herdd binds and holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketConfig {
    pub name: String,
    pub listen: ListenAddress,
    /// `listen(2)` backlog. Default 1024.
    pub backlog: u32,
    /// Permissions of a Unix socket's file, e.g. 0o660.
    pub mode: Option<u32>,
    /// Owner of a Unix socket's file.
    pub user: Option<User>,
    pub group: Option<Group>,
    /// `file:line:col: socket.NAME.listen`, for bind errors found by herdd.
    pub defined_at: String,
}

/// `listen = ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    /// `"127.0.0.1:8080"`, `"[::]:80"`.
    Tcp(std::net::SocketAddr),
    /// An absolute path.
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddress::Tcp(address) => write!(f, "{address}"),
            ListenAddress::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// `[semaphore.NAME]`: a counting semaphore owned by herdd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemaphoreConfig {
    pub name: String,
    /// How many holders at once. Required, 1..=1_000_000.
    pub capacity: u32,
}

/// `[event.NAME]`: a named flag owned by herdd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventConfig {
    pub name: String,
    /// Initial state; default false.
    pub set: bool,
}

/// `[pool.NAME]`: a task pool, the daemon-side `multiprocessing.Pool`.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    pub name: String,
    /// At most this many tasks run at once. Required, 1..=10000.
    pub size: u32,
    /// Submissions beyond this many queued tasks are refused. Default 10000.
    pub max_queue: u32,
    /// Ended tasks kept for `join`/`output`; older ones are evicted. Default 1000.
    pub keep_finished: u32,
    /// Added to each task's environment.
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    pub user: Option<User>,
    pub group: Option<Group>,
    pub umask: Option<u32>,
    pub rlimits: BTreeMap<Rlimit, u64>,
    /// `no_new_privs`, `clear_env` and the cgroup limits of each task.
    pub confinement: Confinement,
    /// Default SIGTERM.
    pub stop_signal: i32,
    /// Default 10s.
    pub stop_timeout: Duration,
    /// Default `false`: running tasks are joined on shutdown.
    pub daemon: bool,
    /// Semaphores each running task holds a slot of (declared `[semaphore]`s).
    pub semaphores: Vec<String>,
    /// `task_timeout`, `retries`, `retry_delay`: what a submission that does
    /// not say gets.
    pub task_defaults: TaskDefaults,
    /// `env_file`: read at each task start, under `env`.
    pub env_files: Vec<crate::env_file::EnvFile>,
    /// `on_failure`: run when one of its tasks fails for good.
    pub on_failure: FailureHook,
}

/// `on_failure` and `on_failure_timeout` of a unit or pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureHook {
    /// argv, with `{unit}`, `{instance}` and `{reason}` still in it; empty
    /// when there is no hook (the key is absent).
    pub command: Vec<String>,
    /// Killed (SIGKILL to its process group) after this long. Default 60s.
    pub timeout: Duration,
}

impl Default for FailureHook {
    fn default() -> Self {
        FailureHook {
            command: Vec::new(),
            timeout: crate::hooks::DEFAULT_TIMEOUT,
        }
    }
}

/// A pool's defaults for the limits of each submitted task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDefaults {
    /// `task_timeout`: stop a task that ran this long. Default none.
    pub timeout: Option<Duration>,
    /// `retries`: run a failed task again up to this many times. Default 0.
    pub retries: u32,
    /// `retry_delay`: wait before the first retry, doubled for each next one.
    /// Default 1s.
    pub retry_delay: Duration,
}

impl Default for TaskDefaults {
    fn default() -> Self {
        TaskDefaults {
            timeout: None,
            retries: 0,
            retry_delay: Duration::from_secs(1),
        }
    }
}

/// `[herd]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HerdSettings {
    /// Control socket; default from `herd_common::paths::default_socket()`.
    pub socket: PathBuf,
    pub log_dir: PathBuf,
    pub state_dir: PathBuf,
    /// `"off"` (default), `"system"`, `"session"` or a bus address.
    pub dbus: String,
    /// How long shutdown joins `daemon = false` processes. Default 30s.
    pub shutdown_timeout: Duration,
    /// Members may control herd; others read only. Default none.
    pub control_group: Option<String>,
    /// `log_max_size`: a log file is rotated before it would grow past this
    /// many bytes. Default 10 MiB; units may override it.
    pub log_max_size: u64,
    /// `log_keep`: rotated files kept per instance (`.log.1` … `.log.N`).
    /// Default 5; units may override it.
    pub log_keep: u32,
    /// `metrics_listen`: where herdd serves `GET /metrics` over HTTP.
    /// Default none (off).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `journal_socket`: journald's native socket, where `log = "journal"`
    /// units' lines go. Default [`DEFAULT_JOURNAL_SOCKET`].
    pub journal_socket: PathBuf,
}

/// `journal_socket` when `[herd]` does not set it.
pub const DEFAULT_JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// `log_max_size` when `[herd]` does not set it: 10 MiB.
pub const DEFAULT_LOG_MAX_SIZE: u64 = 10 << 20;

/// `log_keep` when `[herd]` does not set it.
pub const DEFAULT_LOG_KEEP: u32 = 5;

/// Where a unit's stdout and stderr go: the keys `log`, `log_max_size` and
/// `log_keep` of `[service.NAME]` / `[task.NAME]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnitLog {
    pub mode: LogMode,
    /// Overrides `[herd] log_max_size` for this unit.
    pub max_size: Option<u64>,
    /// Overrides `[herd] log_keep` for this unit.
    pub keep: Option<u32>,
}

/// `log = "file" | "inherit" | "off" | "journal" | "console"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogMode {
    /// Captured through pipes into `<log_dir>/<unit>/<instance>.log`,
    /// timestamped and rotated (default).
    #[default]
    File,
    /// herdd's own stdout and stderr (for containers and journald).
    Inherit,
    /// `/dev/null`.
    Off,
    /// Through pipes to journald's native socket (`[herd] journal_socket`),
    /// one entry per line.
    Journal,
    /// Through pipes to herdd's own stdout, each line prefixed `web@2 | `.
    Console,
}

/// Whether a unit is a long-running service or a one-shot task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    Service,
    Task,
}

/// `[service.NAME]` or `[task.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitConfig {
    pub name: String,
    pub kind: UnitKind,
    /// argv; never empty. May contain `{instance}`.
    pub command: Vec<String>,
    /// Replicas; `None` when the key is absent (a single instance named like
    /// the unit). Services only; tasks always have one.
    pub instances: Option<u32>,
    /// Values may contain `{instance}`.
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    pub user: Option<User>,
    pub group: Option<Group>,
    /// e.g. `umask = "027"` (an octal string).
    pub umask: Option<u32>,
    /// `rlimits = { nofile = 1024, core = 0 }`: soft = hard = the value.
    pub rlimits: BTreeMap<Rlimit, u64>,
    /// `no_new_privs`, `clear_env` and the cgroup limits of each instance.
    pub confinement: Confinement,
    /// Units that must be satisfied before this one starts.
    pub after: Vec<String>,
    pub ready: Ready,
    /// Default: `on-failure` for services, `never` for tasks.
    pub restart: RestartPolicy,
    /// Default 100ms.
    pub restart_delay: Duration,
    /// Default 30s.
    pub restart_delay_max: Duration,
    /// Default 5.
    pub start_limit: u32,
    /// Default 10s.
    pub start_interval: Duration,
    /// Signal number; default SIGTERM.
    pub stop_signal: i32,
    /// Default 10s.
    pub stop_timeout: Duration,
    /// Default `true` for services, `false` for tasks.
    pub daemon: bool,
    /// Whether to start it when herdd starts. Default true. (`autostart = false`
    /// leaves it inactive until `herdctl start`.)
    pub autostart: bool,
    /// Semaphores each running instance holds a slot of (declared `[semaphore]`s).
    pub semaphores: Vec<String>,
    /// Events that must all be set before it starts (declared `[event]`s).
    pub wait_events: Vec<String>,
    /// Event set when all its instances are ready, cleared when it stops or fails
    /// (a declared `[event]`; services only).
    pub sets_event: Option<String>,
    /// With `ready = "notify"` (or a delay): how long an instance may take to
    /// become ready before it counts as a failed start. Default 90s.
    pub start_timeout: Duration,
    /// Where its output goes (`log`, `log_max_size`, `log_keep`).
    pub log: UnitLog,
    /// `env_file`: read at each start, under `env`.
    pub env_files: Vec<crate::env_file::EnvFile>,
    /// `sockets`: declared `[socket]`s passed as descriptors 3.. in this
    /// order (services only).
    pub sockets: Vec<String>,
    /// `watchdog`: a ready instance must send `WATCHDOG=1` at least this
    /// often or it is restarted (services only). Default none.
    pub watchdog: Option<Duration>,
    /// `max_unavailable`: most instances a rolling restart leaves not ready
    /// at once. Default 1, at least 1.
    pub max_unavailable: u32,
    /// `update`: how a reload that changes its settings restarts it; `None`
    /// (the key absent) rolls a unit with more than one instance.
    pub update: Option<UpdateMode>,
    /// `on_failure`: run when an instance fails (gives up).
    pub on_failure: FailureHook,
    /// `health`: the probe run against each running instance (services
    /// only). Default none.
    pub health: Option<HealthCheck>,
    /// `schedule` or `every` (tasks only): when herd runs it by itself,
    /// with `every_from`, `overlap`, `pool` and `persistent`. Default none.
    pub timer: Option<TimerConfig>,
}

/// `health = { command | http | tcp, interval, timeout, retries, start_period }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// What is probed; `{instance}` is substituted per instance.
    pub probe: Probe,
    /// Time from the end of one probe to the start of the next. Default 10s.
    pub interval: Duration,
    /// A probe still running after this long has failed (and is killed). Default 5s.
    pub timeout: Duration,
    /// Consecutive failures after which a running instance is restarted. Default 3.
    pub retries: u32,
    /// Failures this soon after the start do not count. Default 0s.
    pub start_period: Duration,
}

/// The three kinds of health probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A program run with the instance's environment: exit 0 = healthy.
    Command(Vec<String>),
    /// `http://HOST:PORT/PATH`: a GET answered 2xx or 3xx = healthy.
    Http(String),
    /// `HOST:PORT`: a TCP connection accepted = healthy.
    Tcp(String),
}

/// The timer keys of a `[task.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerConfig {
    pub when: TimerSchedule,
    /// What a firing does while the previous run is still going.
    pub overlap: Overlap,
    /// `pool`: each run is a task submitted into this pool (a declared
    /// `[pool]`) instead of the unit's own process.
    pub pool: Option<String>,
    /// `persistent`: a run missed while herdd was down happens once at start.
    pub persistent: bool,
}

/// `schedule = "CRON"` or `every = "D"`.
#[derive(Debug, Clone, PartialEq)]
pub enum TimerSchedule {
    /// Local times given by a cron expression (as written, and parsed).
    Cron {
        expression: String,
        /// Boxed: a parsed expression is large, an interval small.
        cron: Box<croner::Cron>,
    },
    /// An interval measured from the end (or, `every_from = "start"`, the
    /// start) of the last run.
    Every { interval: Duration, from: EveryFrom },
}

/// `every_from = "end" | "start"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EveryFrom {
    End,
    Start,
}

/// `overlap = "skip" | "queue" | "allow"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// The firing is dropped (default).
    Skip,
    /// One more run starts when the current one ends.
    Queue,
    /// Another run starts alongside (pool timers only).
    Allow,
}

/// `update = "rolling" | "parallel"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMode {
    /// A batch of `max_unavailable` at a time, each ready before the next.
    Rolling,
    /// All at once.
    Parallel,
}

impl UnitConfig {
    /// Whether a reload that changes its settings rolls it.
    pub fn rolls_on_update(&self) -> bool {
        match self.update {
            Some(UpdateMode::Rolling) => true,
            Some(UpdateMode::Parallel) => false,
            None => self.instances.unwrap_or(1) > 1,
        }
    }
}

/// What a process may do beyond its user, group and rlimits: the keys
/// The account `user` names, as the user database had it when the config
/// was loaded (or reloaded): starting a process then never waits on the
/// database (which may be LDAP), and an unknown name is a config error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
    /// The other groups that list it as a member (as `initgroups` finds
    /// them), without the primary group.
    pub memberships: Vec<u32>,
}

impl User {
    /// The supplementary groups of a process running as this user with
    /// primary group `gid`: `gid` and the groups that list the user.
    pub fn groups_with(&self, gid: u32) -> Vec<u32> {
        let mut groups = vec![gid];
        groups.extend(self.memberships.iter().filter(|g| **g != gid));
        groups
    }
}

/// The group `group` names, looked up like [`User`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
}

/// `no_new_privs`, `clear_env`, `memory_max`, `pids_max` and `cpu_weight`
/// (flat in the unit's or pool's table). Everything is off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confinement {
    /// `PR_SET_NO_NEW_PRIVS` before exec: setuid binaries and file
    /// capabilities grant nothing to the process or its descendants.
    pub no_new_privs: bool,
    /// Start from an empty environment: the process gets only `env`, herd's
    /// `HERD_*` variables (and `NOTIFY_SOCKET`) and a default `PATH` unless
    /// `env` sets one — nothing of herdd's own environment.
    pub clear_env: bool,
    /// cgroup `memory.max` in bytes (`"512M"`, `"2G"`, an integer, or
    /// `"max"` = `None`: no limit). Needs a writable cgroup.
    pub memory_max: Option<u64>,
    /// cgroup `pids.max`: most processes and threads at once (`"max"` = `None`).
    pub pids_max: Option<u64>,
    /// cgroup `cpu.weight`, 1..=10000 (the kernel's default is 100).
    pub cpu_weight: Option<u32>,
}

/// `ready = ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// Ready as soon as it is spawned (default).
    Started,
    /// Ready once it has stayed up this long.
    After(Duration),
    /// Ready when it sends `READY=1` to `NOTIFY_SOCKET` (the systemd protocol).
    Notify,
    /// Ready when its `health` probe first passes.
    Health,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// The resource limits `rlimits` accepts, by their key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rlimit {
    /// `nofile` — RLIMIT_NOFILE
    Nofile,
    /// `nproc` — RLIMIT_NPROC
    Nproc,
    /// `core` — RLIMIT_CORE
    Core,
    /// `memlock` — RLIMIT_MEMLOCK
    Memlock,
    /// `stack` — RLIMIT_STACK
    Stack,
    /// `as` — RLIMIT_AS
    As,
    /// `fsize` — RLIMIT_FSIZE
    Fsize,
    /// `cpu` — RLIMIT_CPU (seconds)
    Cpu,
}
