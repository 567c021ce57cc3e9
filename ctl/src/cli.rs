//! The command line as clap derive types. No behaviour lives here: each verb's
//! `exec` is in `commands/`, so `completions` can generate scripts from exactly
//! these definitions.

use crate::dbus::Bus;
use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;
use herd_common::protocol::TaskId;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// The command line with `--dbus VALUE` written as `--dbus=VALUE`, for
/// clap. The value of `--dbus` is optional, so on its own clap would read
/// `herdctl --dbus status` as the bus "status"; instead, the word after
/// `--dbus` is its value only when it is `system`, `session` or an address
/// (it has a `:`), and otherwise is left to what follows. Nothing after
/// `--` is touched (`sem acquire ... -- CMD`).
pub fn join_dbus_value(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut joined: Vec<OsString> = Vec::new();
    let mut args = args.into_iter().peekable();
    while let Some(arg) = args.next() {
        if arg == "--" {
            joined.push(arg);
            joined.extend(args);
            break;
        }
        let is_bus = |next: &OsString| {
            next.to_str()
                .is_some_and(|next| matches!(next, "system" | "session") || next.contains(':'))
        };
        if arg == "--dbus" {
            if let Some(value) = args.next_if(is_bus) {
                let mut flag = OsString::from("--dbus=");
                flag.push(value);
                joined.push(flag);
                continue;
            }
        }
        joined.push(arg);
    }
    joined
}

/// Control herdd, the herd process supervisor.
#[derive(Debug, Parser)]
#[command(name = "herdctl", version, propagate_version = true)]
pub struct Cli {
    /// herdd's control socket [default: /run/herd/herd.sock as root,
    /// $XDG_RUNTIME_DIR/herd/herd.sock otherwise]
    #[arg(long, global = true, env = "HERD_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Talk to herdd over D-Bus instead of the socket: on the system bus
    /// (`--dbus` alone), the session bus, or the bus at ADDRESS
    #[arg(
        long,
        global = true,
        value_name = "system|session|ADDRESS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "system",
        value_parser = Bus::parse,
    )]
    pub dbus: Option<Bus>,

    /// Print one JSON document on stdout instead of human output
    #[arg(long, global = true)]
    pub json: bool,

    /// Give herdd this long (`500ms`, `10s`) to take the connection and to
    /// answer, then exit 6 [default: 30s; 0: no limit]. Given before the verb; a verb's own
    /// `--timeout` (join, event wait, pool join, sem acquire) is how long
    /// herdd may wait for what was asked, and this comes on top of it; such
    /// waits, start/stop/restart and followed streams have no limit otherwise
    #[arg(long = "timeout", value_name = "D", value_parser = duration_arg)]
    pub patience: Option<Duration>,

    #[command(subcommand)]
    pub command: Command,
}

// `defer`: a verb's arguments are built only when that verb is parsed (or
// for help, completions and man pages), not all thirty on every run: most
// of herdctl's start-up time went into building the whole command tree.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Show units and their instances, with the memory, CPU time and processes of each running one, and the last and next run of each timer; exit 3 if a named unit is not running
    Status(StatusArgs),
    /// Start units or instances, waiting until they are running (or exited, for tasks); a task with a timer runs now
    Start(LifecycleArgs),
    /// Stop units or instances, waiting until their processes are gone (a timer's run under way; the timer goes on)
    Stop(LifecycleArgs),
    /// Stop, then start units or instances again (--rolling: a batch at a time, without downtime)
    Restart(RestartArgs),
    /// Send a signal to the process group of every running instance
    Kill(KillArgs),
    /// Change the number of instances of a service at run time
    Scale(ScaleArgs),
    /// Stop everything gracefully (daemon/join semantics); waits until herdd has exited
    Shutdown(ShutdownArgs),
    /// Re-read the config: start new units, stop removed ones, restart changed ones
    Reload,
    /// Re-execute herdd in place, keeping every child (e.g. after installing a new binary);
    /// waits until the new herdd answers
    DaemonReexec,
    /// Queue a task in a pool and print its id (or, with --from-file, one task per
    /// line of a file, in one request)
    Submit(SubmitArgs),
    /// Wait for tasks to end, print how they ended and exit with the task's exit code
    Join(JoinArgs),
    /// Run CMD once per line of stdin in a pool, `{}` replaced by the line; print
    /// the outputs in input order
    ///
    /// Each line is submitted as soon as it is read, so stdin may stay open
    /// (`tail -f queue | herdctl map ...`); a line that is not UTF-8 stops
    /// the map (exit 1, outstanding tasks cancelled). Each task's stdout is
    /// printed as soon as it and every task before it have ended. At most `-j N` tasks (default 256) are submitted and not yet
    /// collected at once; the pool's `size` decides how many run. Exits 0 if
    /// every task exited 0; otherwise 1, with one line per failed item on
    /// stderr. Ctrl-C cancels the tasks still outstanding and exits 130. On a
    /// terminal, a progress line is shown on stderr.
    Map(MapArgs),
    /// List pool tasks: queued, running and recently ended
    Tasks(TasksArgs),
    /// Print a task's captured stdout (or stderr)
    Output(OutputArgs),
    /// Remove queued tasks from their pool; stop running ones
    Cancel(CancelArgs),
    /// Close, terminate or wait for a task pool
    #[command(subcommand)]
    Pool(PoolCommand),
    /// List herd's semaphores, or run a command holding a slot of one
    #[command(subcommand)]
    Sem(SemCommand),
    /// List, set, clear or wait for herd's events
    #[command(subcommand)]
    Event(EventCommand),
    /// Print herd's lifecycle events: the recent ones, or with -f also new
    /// ones as they happen
    ///
    /// One line per event: started, ready, exited (code or signal),
    /// restarting, stopping, failed, task queued, semaphore acquired and
    /// released, event set and cleared, timer fired (started, skipped or
    /// queued). With --json, one JSON object per line (`{"time": ...,
    /// "type": ..., ...}`), as herdd sends it.
    Events(EventsArgs),
    /// Print units' stdout and stderr from their log files
    ///
    /// NAME is a unit (all its instances merged in time order), an
    /// instance (`web@2`), a config task, or a glob (`'web*'`). Each line
    /// is shown as `web@2 | text`; -t adds the time herdd read it. All kept
    /// lines by default (the rotated files too); -n N the last N; -f the
    /// last 10 (or -n N), then new lines as they are written, across
    /// rotations, until interrupted. With --json, one object per line:
    /// {"time", "instance", "stream", "text"}.
    Logs(LogsArgs),
    /// Print herd's metrics in Prometheus text format: per instance state,
    /// restarts, uptime, memory, CPU, processes and health probe verdict;
    /// per pool tasks by state,
    /// totals and a task duration histogram; semaphores, events, and herdd
    /// itself. The same text `[herd] metrics_listen` serves on GET /metrics.
    /// With --json: {"text": "..."}.
    Metrics,
    /// A live view of every instance and pool, busiest first: CPU %,
    /// memory, processes, state, restarts, uptime; pools with running and
    /// queued tasks. Keys: c/m/p/n sort by CPU, memory, processes, name;
    /// q or Ctrl-C quits. Not on a terminal, or with -b, plain frames go
    /// to stdout.
    Top(TopArgs),
    /// Print a shell completion script on stdout
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct ShutdownArgs {
    /// Return as soon as the shutdown has begun instead of waiting for herdd to exit
    #[arg(long)]
    pub no_block: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Units (`web`), instances (`web@2`) or globs (`'web*'`); all units when omitted
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,

    /// Leave out what each process costs (MEMORY, CPU, TASKS): herdd then
    /// reads no cgroup or /proc file, a quicker answer with many instances
    #[arg(long)]
    pub no_usage: bool,
}

// Arguments shared by `start`, `stop` and `restart`. (Not a doc comment:
// with `defer`, clap would make an `Args` struct's doc the verb's about.)
#[derive(Debug, Args)]
pub struct LifecycleArgs {
    /// Units (`web`), instances (`web@2`) or globs (`'web*'`)
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,

    /// Return as soon as herdd accepted the request instead of waiting
    #[arg(long)]
    pub no_block: bool,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub lifecycle: LifecycleArgs,

    /// Restart each named service's instances a batch of `max_unavailable`
    /// at a time, each batch ready before the next; stop at the first that
    /// does not become ready within `start_timeout` (exit 1, the rest keep
    /// running). On a terminal, each step is printed as it happens. A
    /// `daemon-reexec` meanwhile does not stop it
    #[arg(long, conflicts_with = "no_block")]
    pub rolling: bool,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Units (`web`), instances (`web@2`) or globs (`'web*'`)
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,

    /// Signal to send: a name (`SIGHUP`, `HUP`) or a number
    #[arg(
        short,
        long,
        value_name = "SIGNAL",
        default_value = "SIGTERM",
        value_parser = signal_arg
    )]
    pub signal: String,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The service to scale
    #[arg(value_name = "NAME")]
    pub name: String,

    /// The new number of instances
    #[arg(value_name = "N")]
    pub instances: u32,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The pool to queue the task in
    #[arg(value_name = "POOL")]
    pub pool: String,

    /// A label for the task, shown by `tasks`
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// While a task of this `--name` is queued or running in the pool, print
    /// its id instead of queueing another (submission that may run twice)
    #[arg(long, requires = "name")]
    pub unique: bool,

    /// Wait until the task has ended, print how, and exit with its exit code
    /// (with --from-file: every task, and the first non-zero exit code)
    #[arg(long)]
    pub wait: bool,

    /// Queue one task per line of FILE (`-`: stdin), each line split into
    /// words as a shell would (quotes, backslashes; `#` starts a comment; no
    /// variables or globs), all in one request; print their ids, one per
    /// line, in file order. Nothing is queued if a line cannot be split
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["command", "name", "unique"]
    )]
    pub from_file: Option<std::path::PathBuf>,

    #[command(flatten)]
    pub limits: TaskLimitArgs,

    /// The command and its arguments, run without a shell (put them after `--`)
    #[arg(
        value_name = "CMD",
        required_unless_present = "from_file",
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

// How each submitted task runs; unset limits take the pool's defaults
// (`task_timeout`, `retries`, `retry_delay`). (Not a doc comment: with
// `defer`, clap would make an `Args` struct's doc the verb's about.)
#[derive(Debug, Clone, Default, Args)]
pub struct TaskLimitArgs {
    /// Stop the task once it ran this long (`30s`, `5m`): stop signal, then
    /// SIGKILL after the pool's `stop_timeout`; it ends `timed out` and `join`
    /// exits 124
    #[arg(long, value_name = "D", value_parser = duration_arg)]
    pub timeout: Option<Duration>,

    /// Run the task again up to N times when it exits non-zero, is killed or
    /// times out; every attempt shows in `tasks` and `output --stderr`
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub retries: Option<u32>,

    /// Wait this long before the first retry, twice as long before each next
    #[arg(long, value_name = "D", value_parser = duration_arg)]
    pub retry_delay: Option<Duration>,

    /// Higher priorities leave the queue first; equal ones in submission order
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub priority: u32,

    /// Do not start the task before this long from now (`10s`, `1h`)
    #[arg(long, value_name = "D", value_parser = duration_arg)]
    pub after: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Task ids, as printed by `submit`
    #[arg(value_name = "ID", required = true)]
    pub ids: Vec<TaskId>,

    /// Give up after this long (`500ms`, `10s`, `2m`) and exit 1
    #[arg(long, value_name = "D", value_parser = duration_arg)]
    pub timeout: Option<Duration>,
}

/// How many tasks `map` keeps submitted and not yet collected by default.
pub const DEFAULT_MAP_JOBS: u32 = 256;

#[derive(Debug, Args)]
pub struct MapArgs {
    /// The pool to run the tasks in
    #[arg(value_name = "POOL")]
    pub pool: String,

    /// At most N items submitted and not yet printed at once (the pool's
    /// `size` decides how many of them run; herdd holds their results for
    /// this map whatever the pool's `keep_finished`)
    #[arg(
        short,
        long,
        value_name = "N",
        default_value_t = DEFAULT_MAP_JOBS,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub jobs: u32,

    #[command(flatten)]
    pub limits: TaskLimitArgs,

    /// The command; `{}` in any argument is replaced by the line (every
    /// occurrence), or the line is appended as the last argument if no
    /// argument contains `{}` (put the command after `--`)
    #[arg(
        value_name = "CMD",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TasksArgs {
    /// Only this pool's tasks
    #[arg(value_name = "POOL")]
    pub pool: Option<String>,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// The task id
    #[arg(value_name = "ID")]
    pub id: TaskId,

    /// Print what the task wrote to stderr instead of stdout
    #[arg(long)]
    pub stderr: bool,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// Task ids
    #[arg(value_name = "ID", required = true)]
    pub ids: Vec<TaskId>,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum PoolCommand {
    /// Refuse new submissions; queued and running tasks go on
    Close(PoolArgs),
    /// Cancel every queued task and stop every running one
    Terminate(PoolArgs),
    /// Wait until nothing is queued or running in the pool
    Join(PoolJoinArgs),
}

#[derive(Debug, Args)]
pub struct PoolArgs {
    /// The pool
    #[arg(value_name = "POOL")]
    pub pool: String,
}

#[derive(Debug, Args)]
pub struct PoolJoinArgs {
    /// The pool
    #[arg(value_name = "POOL")]
    pub pool: String,

    /// Give up after this long (`500ms`, `10s`, `2m`) and exit 1
    #[arg(long, value_name = "D", value_parser = duration_arg)]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum SemCommand {
    /// Show each semaphore's capacity, holders and waiters
    List,
    /// Wait for a slot of a semaphore, run CMD holding it, and release it
    /// when CMD exits
    ///
    /// The slot belongs to herdctl's connection to herdd, so it is released
    /// however herdctl or CMD ends, even by SIGKILL. herdctl exits with
    /// CMD's exit code (128+N if CMD was killed by signal N); 1 if
    /// --timeout passed before a slot was free (CMD is not run then); 127
    /// if CMD was not found, 126 if it could not be executed. Signals sent
    /// to herdctl alone (SIGTERM, SIGINT, SIGHUP, SIGQUIT) are passed on
    /// to CMD; Ctrl-C on a terminal reaches CMD directly.
    Acquire(SemAcquireArgs),
}

#[derive(Debug, Args)]
pub struct SemAcquireArgs {
    /// The semaphore
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Give up waiting for a slot after this long (`500ms`, `10s`, `2m`) and exit 1
    #[arg(long, value_name = "D", value_parser = duration_arg)]
    pub timeout: Option<Duration>,

    /// The command and its arguments, run without a shell (put them after `--`)
    #[arg(
        value_name = "CMD",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum EventCommand {
    /// Show each event and whether it is set
    List,
    /// Set an event (creating it if needed); wakes its waiters and the units
    /// gated on it
    Set(EventArgs),
    /// Clear an event (creating it if needed)
    Clear(EventArgs),
    /// Wait until an event is set; exit 0 when it is, 1 on timeout
    Wait(EventWaitArgs),
}

#[derive(Debug, Args)]
pub struct EventArgs {
    /// The event
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct EventWaitArgs {
    /// The event
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Give up after this long (`500ms`, `10s`, `2m`) and exit 1
    #[arg(long, value_name = "D", value_parser = duration_arg)]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// After the recent events, keep printing new ones until interrupted
    #[arg(short, long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Units (`web`), instances (`web@2`), config tasks or globs (`'web*'`)
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,

    /// Show only the last N lines (all kept lines by default; 10 with -f)
    #[arg(short = 'n', long = "lines", value_name = "N")]
    pub lines: Option<u64>,

    /// After the last lines, keep printing new ones until interrupted
    #[arg(short, long)]
    pub follow: bool,

    /// Start each line with the time herdd read it (UTC)
    #[arg(short, long)]
    pub timestamps: bool,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Batch mode: print plain text frames to stdout, no screen handling
    #[arg(short, long)]
    pub batch: bool,

    /// Stop after N frames (default: until quit or interrupted)
    #[arg(short = 'n', long = "iterations", value_name = "N")]
    pub iterations: Option<u64>,

    /// Seconds between frames (fractions allowed)
    #[arg(short, long, value_name = "SECONDS", default_value_t = 2.0)]
    pub delay: f64,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

/// Rejects unknown signal names while parsing, so a typo is a usage error
/// (exit 2) reported by clap, and herdd never sees it. The text is passed on
/// as typed: herdd parses it with the same `parse_signal`.
fn signal_arg(text: &str) -> Result<String, String> {
    match herd_common::signals::parse_signal(text) {
        Some(_) => Ok(text.to_string()),
        None => {
            Err("unknown signal: use a name like SIGHUP or HUP, or a number from 1 to 64".into())
        }
    }
}

/// `500ms`, `10s`, `2m`, `1h 30m`: a number with a unit, as in the config.
fn duration_arg(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|err| format!("{err}: use a number with a unit, like 500ms, 10s or 2m"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("herdctl").chain(args.iter().copied()))
    }

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse(&["status", "--json", "--socket", "/tmp/s.sock", "web"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.socket, Some(PathBuf::from("/tmp/s.sock")));
        let Command::Status(args) = cli.command else {
            panic!("expected status, got {:?}", cli.command);
        };
        assert_eq!(args.names, ["web"]);

        let cli = parse(&["--json", "shutdown"]).unwrap();
        assert!(cli.json);
        assert!(matches!(
            cli.command,
            Command::Shutdown(ShutdownArgs { no_block: false })
        ));
    }

    fn parse_joined(args: &[&str]) -> Result<Cli, clap::Error> {
        let argv = std::iter::once("herdctl")
            .chain(args.iter().copied())
            .map(OsString::from);
        Cli::try_parse_from(join_dbus_value(argv))
    }

    #[test]
    fn dbus_takes_an_optional_bus() {
        let cli = parse_joined(&["--dbus", "status"]).unwrap();
        assert_eq!(cli.dbus, Some(Bus::System));
        assert!(matches!(cli.command, Command::Status(_)));

        let cli = parse_joined(&["--dbus", "session", "status", "web"]).unwrap();
        assert_eq!(cli.dbus, Some(Bus::Session));
        let Command::Status(args) = cli.command else {
            panic!("expected status");
        };
        assert_eq!(args.names, ["web"]);

        let cli = parse_joined(&["status", "--dbus", "unix:path=/tmp/bus", "web"]).unwrap();
        assert_eq!(cli.dbus, Some(Bus::Address("unix:path=/tmp/bus".into())));
        let cli = parse_joined(&["--dbus=session", "status"]).unwrap();
        assert_eq!(cli.dbus, Some(Bus::Session));
        let cli = parse_joined(&["status", "web", "--dbus"]).unwrap();
        assert_eq!(cli.dbus, Some(Bus::System));
        assert!(parse_joined(&["status"]).unwrap().dbus.is_none());

        let err = parse_joined(&["--dbus=nowhere", "status"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);

        // After `--` everything is the command's own.
        let cli = parse_joined(&["sem", "acquire", "s", "--", "cmd", "--dbus", "session"]).unwrap();
        assert!(cli.dbus.is_none());
    }

    #[test]
    fn status_names_are_optional() {
        let cli = parse(&["status"]).unwrap();
        let Command::Status(args) = cli.command else {
            panic!("expected status");
        };
        assert!(args.names.is_empty());
        assert!(!cli.json);
    }

    #[test]
    fn lifecycle_verbs_need_names_and_take_no_block() {
        for verb in ["start", "stop", "restart"] {
            let err = parse(&[verb]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument, "{verb}");

            let cli = parse(&[verb, "web", "db@1", "--no-block"]).unwrap();
            let args = match cli.command {
                Command::Start(args) | Command::Stop(args) => args,
                Command::Restart(args) => {
                    assert!(!args.rolling);
                    args.lifecycle
                }
                _ => panic!("expected {verb}"),
            };
            assert_eq!(args.names, ["web", "db@1"]);
            assert!(args.no_block);
        }
    }

    #[test]
    fn kill_defaults_to_sigterm_and_checks_the_signal() {
        let Command::Kill(args) = parse(&["kill", "web"]).unwrap().command else {
            panic!("expected kill");
        };
        assert_eq!(args.signal, "SIGTERM");

        let Command::Kill(args) = parse(&["kill", "-s", "hup", "web", "db"]).unwrap().command
        else {
            panic!("expected kill");
        };
        assert_eq!(args.signal, "hup");
        assert_eq!(args.names, ["web", "db"]);

        let err = parse(&["kill", "--signal", "SIGFOO", "web"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn scale_takes_a_count() {
        let Command::Scale(args) = parse(&["scale", "web", "4"]).unwrap().command else {
            panic!("expected scale");
        };
        assert_eq!((args.name.as_str(), args.instances), ("web", 4));
        assert!(parse(&["scale", "web", "-1"]).is_err());
        assert!(parse(&["scale", "web"]).is_err());
    }

    #[test]
    fn completions_know_the_shells() {
        for shell in ["bash", "zsh", "fish"] {
            assert!(parse(&["completions", shell]).is_ok(), "{shell}");
        }
        assert!(parse(&["completions", "cmd.exe"]).is_err());
    }

    #[test]
    fn submit_takes_the_command_after_the_flags() {
        let Command::Submit(args) = parse(&[
            "submit", "convert", "--name", "t", "--wait", "--", "ls", "-l", "--wait",
        ])
        .unwrap()
        .command
        else {
            panic!("expected submit");
        };
        assert_eq!(args.pool, "convert");
        assert_eq!(args.name.as_deref(), Some("t"));
        assert!(args.wait);
        assert_eq!(args.command, ["ls", "-l", "--wait"]);

        // Without `--`, everything from the first word of the command on is the command.
        let Command::Submit(args) = parse(&["submit", "p", "sh", "-c", "exit 3"])
            .unwrap()
            .command
        else {
            panic!("expected submit");
        };
        assert_eq!(args.command, ["sh", "-c", "exit 3"]);
        assert!(!args.wait);

        let err = parse(&["submit", "p"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let err = parse(&["submit", "p", "--"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);

        let Command::Submit(args) = parse(&["submit", "p", "--from-file", "-", "--wait"])
            .unwrap()
            .command
        else {
            panic!("expected submit");
        };
        assert_eq!(args.from_file.as_deref(), Some(std::path::Path::new("-")));
        assert!(args.command.is_empty() && args.wait);
        let err = parse(&["submit", "p", "--from-file", "f", "--", "ls"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn submit_takes_limits_and_refuses_bad_ones() {
        let Command::Submit(args) = parse(&[
            "submit",
            "p",
            "--timeout",
            "30s",
            "--retries",
            "3",
            "--retry-delay",
            "2s",
            "--priority",
            "5",
            "--after",
            "1m",
            "--name",
            "n",
            "--unique",
            "--",
            "job",
        ])
        .unwrap()
        .command
        else {
            panic!("expected submit");
        };
        assert_eq!(args.limits.timeout, Some(Duration::from_secs(30)));
        assert_eq!(args.limits.retries, Some(3));
        assert_eq!(args.limits.retry_delay, Some(Duration::from_secs(2)));
        assert_eq!(args.limits.priority, 5);
        assert_eq!(args.limits.after, Some(Duration::from_secs(60)));
        assert!(args.unique);
        for bad in [
            &["submit", "p", "--retries", "-1", "job"][..],
            &["submit", "p", "--retries", "1001", "job"],
            &["submit", "p", "--priority", "-2", "job"],
            &["submit", "p", "--timeout", "soon", "job"],
            &["submit", "p", "--unique", "job"],
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
        let Command::Map(args) =
            parse(&["map", "p", "--timeout", "5s", "--retries", "1", "--", "x"])
                .unwrap()
                .command
        else {
            panic!("expected map");
        };
        assert_eq!(args.limits.timeout, Some(Duration::from_secs(5)));
        assert_eq!(args.limits.retries, Some(1));
    }

    #[test]
    fn join_takes_ids_and_a_duration() {
        let Command::Join(args) = parse(&["join", "17", "18", "--timeout", "500ms"])
            .unwrap()
            .command
        else {
            panic!("expected join");
        };
        assert_eq!(args.ids, [17, 18]);
        assert_eq!(args.timeout, Some(Duration::from_millis(500)));
        for (text, secs) in [("10s", 10), ("2m", 120), ("1h 30m", 5400)] {
            let Command::Join(args) = parse(&["join", "1", "--timeout", text]).unwrap().command
            else {
                panic!("expected join");
            };
            assert_eq!(args.timeout, Some(Duration::from_secs(secs)), "{text}");
        }
        let err = parse(&["join", "1", "--timeout", "10"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert!(err.to_string().contains("like 500ms, 10s or 2m"), "{err}");
        assert_eq!(
            parse(&["join", "x"]).unwrap_err().kind(),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            parse(&["join"]).unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn map_defaults_to_a_window_of_256() {
        let Command::Map(args) = parse(&["map", "p", "--", "echo", "{}"]).unwrap().command else {
            panic!("expected map");
        };
        assert_eq!(args.jobs, DEFAULT_MAP_JOBS);
        assert_eq!(args.jobs, 256);
        assert_eq!(args.command, ["echo", "{}"]);
        let Command::Map(args) = parse(&["map", "-j", "4", "p", "gzip"]).unwrap().command else {
            panic!("expected map");
        };
        assert_eq!(
            (args.jobs, args.command.as_slice()),
            (4, ["gzip".to_string()].as_slice())
        );
        assert_eq!(
            parse(&["map", "-j", "0", "p", "gzip"]).unwrap_err().kind(),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn task_verbs() {
        let Command::Tasks(args) = parse(&["tasks"]).unwrap().command else {
            panic!("expected tasks");
        };
        assert_eq!(args.pool, None);
        let Command::Output(args) = parse(&["output", "7", "--stderr"]).unwrap().command else {
            panic!("expected output");
        };
        assert_eq!((args.id, args.stderr), (7, true));
        let Command::Cancel(args) = parse(&["cancel", "7", "9"]).unwrap().command else {
            panic!("expected cancel");
        };
        assert_eq!(args.ids, [7, 9]);
        assert!(parse(&["cancel"]).is_err());
    }

    #[test]
    fn pool_subcommands() {
        let Command::Pool(PoolCommand::Join(args)) =
            parse(&["pool", "join", "convert", "--timeout", "2m"])
                .unwrap()
                .command
        else {
            panic!("expected pool join");
        };
        assert_eq!(args.pool, "convert");
        assert_eq!(args.timeout, Some(Duration::from_secs(120)));
        assert!(matches!(
            parse(&["pool", "close", "p"]).unwrap().command,
            Command::Pool(PoolCommand::Close(PoolArgs { .. }))
        ));
        assert!(matches!(
            parse(&["pool", "terminate", "p"]).unwrap().command,
            Command::Pool(PoolCommand::Terminate(PoolArgs { .. }))
        ));
        assert!(parse(&["pool", "drain", "p"]).is_err());
        assert!(parse(&["pool", "close"]).is_err());
    }

    #[test]
    fn sem_verbs() {
        assert!(matches!(
            parse(&["sem", "list"]).unwrap().command,
            Command::Sem(SemCommand::List)
        ));
        let Command::Sem(SemCommand::Acquire(args)) = parse(&[
            "sem",
            "acquire",
            "db",
            "--timeout",
            "2s",
            "--",
            "psql",
            "-c",
            "select 1",
        ])
        .unwrap()
        .command
        else {
            panic!("expected sem acquire");
        };
        assert_eq!(args.name, "db");
        assert_eq!(args.timeout, Some(Duration::from_secs(2)));
        assert_eq!(args.command, ["psql", "-c", "select 1"]);
        // Flags after CMD belong to CMD.
        let Command::Sem(SemCommand::Acquire(args)) =
            parse(&["sem", "acquire", "db", "ls", "--timeout", "1s"])
                .unwrap()
                .command
        else {
            panic!("expected sem acquire");
        };
        assert_eq!((args.timeout, args.command.len()), (None, 3));
        assert_eq!(
            parse(&["sem", "acquire", "db"]).unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert!(parse(&["sem", "acquire", "db", "--timeout", "soon", "--", "ls"]).is_err());
    }

    #[test]
    fn event_verbs() {
        assert!(matches!(
            parse(&["event", "list"]).unwrap().command,
            Command::Event(EventCommand::List)
        ));
        for verb in ["set", "clear"] {
            let cli = parse(&["event", verb, "db-ready"]).unwrap();
            let (Command::Event(EventCommand::Set(args))
            | Command::Event(EventCommand::Clear(args))) = cli.command
            else {
                panic!("expected event {verb}");
            };
            assert_eq!(args.name, "db-ready");
            assert!(parse(&["event", verb]).is_err());
        }
        let Command::Event(EventCommand::Wait(args)) =
            parse(&["event", "wait", "db-ready", "--timeout", "500ms"])
                .unwrap()
                .command
        else {
            panic!("expected event wait");
        };
        assert_eq!(args.name, "db-ready");
        assert_eq!(args.timeout, Some(Duration::from_millis(500)));
    }

    #[test]
    fn events_follow() {
        for (args, follow) in [
            (&["events"][..], false),
            (&["events", "-f"], true),
            (&["events", "--follow", "--json"], true),
        ] {
            let Command::Events(parsed) = parse(args).unwrap().command else {
                panic!("expected events");
            };
            assert_eq!(parsed.follow, follow, "{args:?}");
        }
    }

    #[test]
    fn reload_and_daemon_reexec_take_no_arguments() {
        assert!(matches!(
            parse(&["reload"]).unwrap().command,
            Command::Reload
        ));
        assert!(matches!(
            parse(&["daemon-reexec"]).unwrap().command,
            Command::DaemonReexec
        ));
        let err = parse(&["reload", "web"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownArgument);
    }
}
