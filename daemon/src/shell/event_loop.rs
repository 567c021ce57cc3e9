//! The one event loop: signals, client requests, child pipes, the notify
//! socket and the core's deadline become inputs; the core's actions become
//! syscalls. herdd wakes only when one of those is ready, or for the one-shot
//! journal write that follows a change: no polling, zero CPU when idle.
//!
//! Clients reach it only through the request channel ([`super::clients`]):
//! accepting connections and D-Bus calls is the front ends' business, wired
//! to the shell in `server.rs`.

use super::adopt;
use super::cgroup::Cgroups;
use super::clients::{Incoming, RequestReceiver};
use super::clock_changes::ClockChanges;
use super::descriptors::Reserve;
use super::events::EventHub;
use super::fork;
use super::heap;
use super::hook_tail;
use super::journal::Journal;
use super::listen::{self, Sockets};
use super::logs::{LogHub, Origin};
use super::notify::{Notification, NotifySocket};
use super::output::OutputPipes;
use super::probe::Probes;
use super::reaper;
use super::reexec::{self, Handover};
use super::sd_notify::SystemdNotifier;
use super::spawn::{spawn_confined, spawn_confined_all, Spawned};
use super::survivors;
use crate::core::hooks::{HookSubject, LogTail};
use crate::core::survivors::Survivor;
use crate::core::{Action, Input, LogTarget, Output, Owner, RequestId, Supervisor};
use herd_common::protocol::Reply;
use herd_config::Config;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::{HashMap, HashSet};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// The journal is rewritten at most this often (docs/journal.md).
const JOURNAL_EVERY: Duration = Duration::from_millis(100);

/// Rewriting the journal takes at most one part in this many of herdd's
/// time: a state with tens of thousands of queued tasks takes tens of
/// milliseconds to journal, and is journaled less often.
const JOURNAL_SHARE: u32 = 10;

/// How long herdd waits, before it exits or re-executes, for lines still
/// queued for journald or its stdout (a stuck reader loses them).
const FORWARD_SETTLE: Duration = Duration::from_secs(2);

/// Why [`Shell::serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Shutdown finished: every process has exited.
    Finished,
    /// `daemon-reexec` was asked for; its reply is on its way.
    Reexec,
}

/// The signals herdd acts on.
struct Signals {
    child: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> std::io::Result<Signals> {
        Ok(Signals {
            child: signal(SignalKind::child())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }
}

/// What woke the loop.
enum Wake {
    Child,
    ExecError,
    Terminate,
    Interrupt,
    Hangup,
    Request(Incoming),
    Input(Input),
    Notify(Notification),
    /// Some output pipe has something to read.
    Output,
    /// The core's deadline has come.
    Tick,
    /// The wall clock was set.
    ClockChanged,
    /// A journal write is due.
    Journal,
    /// A burst is over: give freed heap back (see heap.rs).
    TrimHeap,
}

/// When the journal is written: after steps that changed state, at most
/// every [`JOURNAL_EVERY`].
#[derive(Default)]
struct JournalSchedule {
    /// The core generation last written.
    journaled: Option<u64>,
    due: Option<Instant>,
    last: Option<Instant>,
    /// What the last write took, times [`JOURNAL_SHARE`].
    spacing: Duration,
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline.into()).await;
    }
}

/// The notify socket lives next to the control socket: `<socket>.notify`.
fn notify_path(socket: &std::path::Path) -> std::path::PathBuf {
    let mut path = socket.as_os_str().to_owned();
    path.push(".notify");
    path.into()
}

/// The core plus what the shell must remember to carry out its actions.
pub struct Shell {
    core: Supervisor,
    /// Where to send the reply of each request the core has not answered yet.
    pending: HashMap<RequestId, oneshot::Sender<Reply>>,
    next_request: RequestId,
    /// Requests and departures from every front end.
    requests: RequestReceiver,
    /// Output pipes of running tasks and instances.
    outputs: OutputPipes,
    /// The log files of instances (`log = "file"`).
    logs: Arc<LogHub>,
    /// Inputs from helper tasks: log errors, exits of adopted processes
    /// (at most one each per process: unbounded is bounded enough).
    inputs: mpsc::UnboundedReceiver<Input>,
    inputs_tx: mpsc::UnboundedSender<Input>,
    signals: Signals,
    notify: NotifySocket,
    /// Path given to `ready = "notify"` processes as `NOTIFY_SOCKET`.
    notify_socket: String,
    /// Where published lifecycle events go.
    hub: Arc<EventHub>,
    journal: Journal,
    journal_schedule: JournalSchedule,
    /// Kernel start time of each spawned pid, for the journal (pid reuse check).
    starts: HashMap<u32, u64>,
    /// Spawned pids whose start time the spawn did not give: read from
    /// `/proc` only when the journal needs it (most pool tasks have been
    /// reaped by then). Until reaped, a pid is still our child's.
    unread_starts: HashSet<u32>,
    /// A `daemon-reexec` reply has gone out: leave the loop and re-execute.
    reexec: bool,
    /// Where children report a failed exec.
    exec_errors: fork::ExecErrors,
    /// The program of each live child, for exec error messages.
    programs: HashMap<u32, String>,
    /// The config file, read again on `reload` and SIGHUP.
    config_path: std::path::PathBuf,
    /// systemd's notify socket, when herdd runs as a `Type=notify` service.
    systemd: SystemdNotifier,
    /// `STOPPING=1` has been sent.
    told_stopping: bool,
    /// The cgroup of each process (when cgroups are writable); removes
    /// herd's cgroups when dropped.
    cgroups: Cgroups,
    /// Descriptors children's pipes never take (see descriptors.rs).
    reserve: Arc<Reserve>,
    /// The listening sockets herdd holds for services (`[socket.NAME]`).
    sockets: Sockets,
    /// Health probes under way.
    probes: Probes,
    /// The control socket, given to every child as `HERD_SOCKET`: it marks
    /// them as this herdd's (see survivors.rs).
    control_socket: String,
    /// Wakes the loop when the wall clock is set (timers follow it).
    clock_changes: ClockChanges,
    /// When to give freed heap back after a burst.
    heap: heap::Trim,
}

impl Shell {
    /// Sets up everything the loop watches, before the first spawn: SIGCHLD
    /// is registered so no exit goes unnoticed. Call it once the control
    /// socket's lock is held (the notify socket next to it is replaced).
    pub fn new(config: &Config, requests: RequestReceiver) -> anyhow::Result<Shell> {
        let signals = Signals::register()?;
        reaper::become_subreaper();
        let notify = NotifySocket::bind(&notify_path(&config.herd.socket))?;
        let (inputs_tx, inputs) = mpsc::unbounded_channel::<Input>();
        let probe_results = inputs_tx.clone();
        let logs = LogHub::new(config, inputs_tx.clone());
        Ok(Shell {
            core: Supervisor::new(config),
            pending: HashMap::new(),
            next_request: 0,
            requests,
            outputs: OutputPipes::new()?,
            logs,
            inputs,
            inputs_tx,
            notify_socket: notify.path.display().to_string(),
            signals,
            notify,
            hub: EventHub::new(),
            journal: Journal::open(&config.herd.state_dir)?,
            journal_schedule: JournalSchedule::default(),
            starts: HashMap::new(),
            unread_starts: HashSet::new(),
            reexec: false,
            exec_errors: fork::ExecErrors::open()?,
            programs: HashMap::new(),
            config_path: config.path.clone(),
            systemd: SystemdNotifier::from_env(),
            told_stopping: false,
            cgroups: Cgroups::detect(),
            reserve: Reserve::new(),
            // Before anything is started: a service may need its socket.
            sockets: Sockets::open(&config.sockets).map_err(anyhow::Error::msg)?,
            probes: Probes::new(probe_results),
            control_socket: config.herd.socket.to_string_lossy().into_owned(),
            clock_changes: ClockChanges::open(),
            heap: heap::Trim::default(),
        })
    }

    /// The lifecycle event stream, for the front ends.
    pub fn events(&self) -> Arc<EventHub> {
        self.hub.clone()
    }

    /// The log files, for `logs` (read by the front ends, never the core).
    pub fn logs(&self) -> Arc<LogHub> {
        self.logs.clone()
    }

    /// The descriptor reserve, which the control socket may spend on clients.
    pub fn reserve(&self) -> Arc<Reserve> {
        self.reserve.clone()
    }

    /// Tells systemd (if it started herdd) that herdd is up.
    pub fn ready(&self) {
        self.systemd.ready();
    }

    /// Serves requests and supervises until shutdown completes or a
    /// re-exec is due. The caller then lets clients take their last
    /// replies: see `server.rs`.
    pub async fn serve(&mut self) -> Outcome {
        loop {
            if self.core.is_finished() {
                return Outcome::Finished;
            }
            if self.reexec {
                self.reexec = false;
                return Outcome::Reexec;
            }
            if self.write_journal_if_due() {
                continue;
            }
            let wake = self.next_wake().await;
            self.handle(wake);
        }
    }

    /// After [`Outcome::Finished`] and the last replies: collects any orphan
    /// that ended during the last step, and closes the journal (a clean exit) and removes herd's cgroups.
    pub async fn finish(mut self) {
        reaper::reap_all();
        // The last lines of stopped instances, before herdd's stdout closes.
        self.logs
            .forwarder()
            .settle(Instant::now() + FORWARD_SETTLE);
        self.journal.close(true);
        self.cgroups.close().await;
    }

    /// Journals after steps that changed state, at most every JOURNAL_EVERY
    /// (or JOURNAL_SHARE times what the last write took, if longer): a busy
    /// herdd must not spend its time rewriting the journal, and a crash
    /// loses at most that much (never a process: those are found again).
    /// True when it wrote.
    fn write_journal_if_due(&mut self) -> bool {
        let schedule = &mut self.journal_schedule;
        if schedule.journaled != Some(self.core.generation()) && schedule.due.is_none() {
            schedule.due = Some(schedule.last.map_or(Instant::now(), |at| {
                at + JOURNAL_EVERY.max(schedule.spacing)
            }));
        }
        if schedule.due.is_none_or(|due| due > Instant::now()) {
            return false;
        }
        schedule.due = None;
        schedule.last = Some(Instant::now());
        schedule.journaled = Some(self.core.generation());
        let started = Instant::now();
        let changes = self.journal_changes();
        self.journal.write(changes);
        self.journal_schedule.spacing = started.elapsed() * JOURNAL_SHARE;
        true
    }

    /// Waits for the next thing to do.
    async fn next_wake(&mut self) -> Wake {
        let deadline = self.core.next_deadline();
        let journal_due = self.journal_schedule.due;
        let trim_due = self.heap.due();
        tokio::select! {
            _ = self.signals.child.recv() => Wake::Child,
            _ = self.exec_errors.readable() => Wake::ExecError,
            _ = self.signals.terminate.recv() => Wake::Terminate,
            _ = self.signals.interrupt.recv() => Wake::Interrupt,
            _ = self.signals.hangup.recv() => Wake::Hangup,
            Some(incoming) = self.requests.recv() => Wake::Request(incoming),
            Some(input) = self.inputs.recv() => Wake::Input(input),
            _ = self.outputs.wait() => Wake::Output,
            notification = self.notify.recv() => Wake::Notify(notification),
            _ = sleep_until(deadline), if deadline.is_some() => Wake::Tick,
            _ = sleep_until(journal_due), if journal_due.is_some() => Wake::Journal,
            _ = sleep_until(trim_due), if trim_due.is_some() => Wake::TrimHeap,
            _ = self.clock_changes.changed() => Wake::ClockChanged,
        }
    }

    fn handle(&mut self, wake: Wake) {
        match wake {
            Wake::Child => self.reap(),
            Wake::ExecError => {
                for input in self.exec_failures() {
                    self.feed(input);
                }
            }
            Wake::Terminate => self.shutdown("SIGTERM"),
            Wake::Interrupt => self.shutdown("SIGINT"),
            Wake::Hangup => self.read_config(None),
            Wake::Request(incoming) => self.request(incoming),
            Wake::Input(input) => {
                let input = self.bind_reloaded_sockets(input);
                self.feed(input)
            }
            Wake::Notify(notification) => self.feed(Input::Notify {
                pid: notification.pid,
                pgid: notification.pgid,
                fields: notification.fields,
            }),
            Wake::Output => {
                for chunk in self.outputs.read_ready() {
                    self.feed(chunk);
                }
            }
            Wake::Tick => self.feed(Input::Tick),
            // The timers' deadlines move; one that passed is the next Tick.
            Wake::ClockChanged => {
                let now = Instant::now();
                self.core.set_wall_clock(now, jiff::Timestamp::now());
                self.core.clock_changed(now);
            }
            // The next turn writes it.
            Wake::Journal => {}
            Wake::TrimHeap => self.heap.trim(),
        }
    }

    /// Before boot: the local time zone that `schedule`s are read in (TZ or
    /// /etc/localtime, read once at start), and on a `fresh` start the
    /// timers' last runs from `timers.json` (a re-exec or a crash brings
    /// them in its snapshot).
    fn prepare_timers(&mut self, fresh: bool) {
        let zone = jiff::tz::TimeZone::try_system().unwrap_or_else(|error| {
            warn!(%error, "cannot tell the local time zone; timers use UTC");
            jiff::tz::TimeZone::UTC
        });
        self.core.set_time_zone(zone);
        if fresh {
            let saved = self.journal.load_timers();
            self.core.restore_timers(Instant::now(), &saved, false);
        }
    }

    /// Carries on from a re-exec handover or from the journal of a crashed
    /// herdd, if there is one; then boots whatever is not carried over.
    pub fn resume(&mut self, config: &Config) {
        let now = Instant::now();
        match reexec::take_handover() {
            Some(Ok(mut handover)) => {
                let holders_gone = adopt::watch_holders(&mut handover.snapshot, &self.inputs_tx);
                self.core = Supervisor::restore(config, &handover.snapshot, now, false);
                self.starts = handover.starts.into_iter().collect();
                let pipes = handover
                    .pipes
                    .into_iter()
                    .filter(|(_, _, _, fd)| reexec::is_open(*fd))
                    .map(|(pid, task, stream, fd)| (pid, task, stream, reexec::adopt_pipe(fd)))
                    .collect();
                self.outputs.import(pipes);
                let log_pipes = handover
                    .log_pipes
                    .into_iter()
                    .filter(|pipe| reexec::is_open(pipe.fd))
                    .map(|pipe| {
                        let fd = reexec::adopt_pipe(pipe.fd);
                        (pipe, fd)
                    })
                    .collect();
                self.outputs.import_logs(log_pipes, &self.logs);
                info!(processes = self.starts.len(), "resumed after re-exec");
                self.prepare_timers(false);
                self.feed(Input::Boot);
                self.holders_gone(holders_gone);
                // Children that ended during the exec are zombies waiting for us.
                self.reap();
                return;
            }
            Some(Err(error)) => warn!(%error, "cannot read the re-exec handover; starting fresh"),
            None => {}
        }
        let Some(mut snapshot) = self.journal.load() else {
            self.journal.forget_starts();
            let (_, ended) = self.adopt_survivors(config, &[]);
            self.prepare_timers(true);
            self.feed(Input::Boot);
            for pid in ended {
                let exit = herd_common::state::Exit::Unknown;
                self.feed(Input::Exited { pid, exit });
            }
            return;
        };
        let recorded = snapshot_starts(&snapshot);
        let holders_gone = adopt::watch_holders(&mut snapshot, &self.inputs_tx);
        self.core = Supervisor::restore(config, &snapshot, now, true);
        let mut gone = Vec::new();
        for pid in self.core.tracked_pids() {
            let start = recorded.get(&pid).copied();
            if adopt::is_same_process(pid, start) && adopt::watch(pid, self.inputs_tx.clone()) {
                self.starts.extend(start.map(|start| (pid, start)));
                self.cgroups.adopt(pid);
            } else {
                gone.push(pid);
            }
        }
        info!(
            adopted = self.starts.len(),
            gone = gone.len(),
            "recovered the state of a previous herdd from its journal"
        );
        // Processes started after the journal's last write.
        let (adopted, ended) = self.adopt_survivors(config, &gone);
        gone.retain(|pid| !adopted.contains(pid));
        gone.extend(ended);
        self.prepare_timers(false);
        self.feed(Input::Boot);
        self.holders_gone(holders_gone);
        for pid in gone {
            self.feed(Input::Exited {
                pid,
                exit: herd_common::state::Exit::Unknown,
            });
        }
    }

    /// Takes over the processes a killed herdd on the same socket left
    /// running and the journal (if any) does not account for, so that boot
    /// starts only what is missing (see survivors.rs). `gone` are the
    /// journaled pids that no longer run. Returns the pids adopted, and
    /// those adopted that ended before they could be watched.
    fn adopt_survivors(&mut self, config: &Config, gone: &[u32]) -> (Vec<u32>, Vec<u32>) {
        let tracked: HashSet<u32> = self.core.tracked_pids().into_iter().collect();
        let gone: HashSet<u32> = gone.iter().copied().collect();
        // A journaled process that runs is adopted already.
        let found: Vec<(Survivor, u64)> = survivors::find(config)
            .into_iter()
            .filter(|(s, _)| !tracked.contains(&s.pid) || gone.contains(&s.pid))
            .collect();
        if found.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let starts: HashMap<u32, u64> = found.iter().map(|(s, start)| (s.pid, *start)).collect();
        let found = found.into_iter().map(|(survivor, _)| survivor).collect();
        let adoption = self.core.adopt_survivors(Instant::now(), found, &gone);
        let mut ended = Vec::new();
        for pid in &adoption.adopted {
            let start = starts[pid];
            if adopt::watch_if_same(*pid, start, self.inputs_tx.clone()) {
                self.starts.insert(*pid, start);
                self.cgroups.adopt(*pid);
            } else {
                ended.push(*pid);
            }
        }
        if !adoption.adopted.is_empty() || !adoption.strays.is_empty() {
            info!(
                adopted = adoption.adopted.len(),
                stopped = adoption.strays.len(),
                "took over the processes the previous herdd on this socket left"
            );
        }
        let strays = adoption.strays.into_iter().map(|stray| {
            let start = starts[&stray.pid];
            (stray, start)
        });
        survivors::stop_strays(strays.collect());
        for action in adoption.actions {
            if let Some(input) = self.carry_out(action) {
                self.feed(input);
            }
        }
        (adoption.adopted, ended)
    }

    /// Processes that held semaphore slots and ended while herdd was away.
    fn holders_gone(&mut self, pids: Vec<u32>) {
        for pid in pids {
            let exit = herd_common::state::Exit::Unknown;
            self.feed(Input::Exited { pid, exit });
        }
    }

    /// What the journal writes next: the state without task output, with
    /// start times, and the changes to its task log.
    fn journal_changes(&mut self) -> crate::core::snapshot::JournalChanges {
        if self.journal.wants_new_log() {
            self.core.journal_log_anew();
        }
        self.read_starts();
        let mut changes = self.core.journal_changes(Instant::now());
        fill_starts(&mut changes.snapshot, &self.starts);
        adopt::fill_holder_starts(&mut changes.snapshot);
        changes
    }

    /// The start times not read yet, from `/proc` (see [`Shell::unread_starts`]).
    fn read_starts(&mut self) {
        for pid in self.unread_starts.drain() {
            if let Some(start) = adopt::start_time(pid) {
                self.starts.insert(pid, start);
            }
        }
    }

    /// Everything the next image needs.
    pub fn handover(&mut self) -> Handover {
        // Adopted exits wait in the queue: into the state they go, or they
        // are lost with this image. (Output not read yet waits in its pipe,
        // which the new image reads.)
        while let Ok(input) = self.inputs.try_recv() {
            self.feed(input);
        }
        self.sockets.hand_over();
        self.read_starts();
        let mut snapshot = self.core.snapshot(Instant::now(), true);
        fill_starts(&mut snapshot, &self.starts);
        adopt::fill_holder_starts(&mut snapshot);
        let handover = Handover {
            snapshot,
            starts: self
                .starts
                .iter()
                .map(|(pid, start)| (*pid, *start))
                .collect(),
            pipes: self.outputs.export(),
            log_pipes: self.outputs.export_logs(),
        };
        // The new image starts with an empty queue.
        self.logs
            .forwarder()
            .settle(Instant::now() + FORWARD_SETTLE);
        handover
    }

    /// A reloaded config's sockets are bound before the core sees it: a
    /// socket that cannot be bound makes the whole reload an error that
    /// changes nothing.
    fn bind_reloaded_sockets(&mut self, input: Input) -> Input {
        let Input::ConfigLoaded {
            id,
            config: Ok(config),
        } = input
        else {
            return input;
        };
        match self.sockets.apply(&config.sockets) {
            Ok(()) => Input::ConfigLoaded {
                id,
                config: Ok(config),
            },
            Err(error) => {
                warn!("{error}");
                let path = config.path.display();
                Input::ConfigLoaded {
                    id,
                    config: Err(format!(
                        "{path} cannot be applied; nothing was changed:\n{error}"
                    )),
                }
            }
        }
    }

    /// The listening sockets, for `status`.
    pub fn sockets(&self) -> Vec<listen::SocketInfo> {
        self.sockets.list()
    }

    /// After a failed re-exec: the sockets handed over stay herdd's own.
    pub fn reexec_failed(&self) {
        self.sockets.keep_after_failed_handover();
    }

    fn request(&mut self, incoming: Incoming) {
        match incoming {
            Incoming::Request {
                client,
                request,
                reply,
            } => {
                if reply.is_closed() {
                    // Its connection has gone (closed at a re-exec, say): the
                    // client was told nothing, so nothing is to be done.
                    return;
                }
                let id = self.next_request;
                self.next_request += 1;
                self.pending.insert(id, reply);
                self.feed(Input::Request {
                    id,
                    client,
                    request,
                });
            }
            Incoming::Gone { client } => self.feed(Input::ClientGone { client }),
        }
    }

    /// Reads the config file again for `reload` or SIGHUP, on a blocking
    /// thread (a config on a slow or hung file system must not stall the
    /// loop); the result comes back as `Input::ConfigLoaded`. A bad config
    /// is logged with every error and changes nothing.
    fn read_config(&self, id: Option<RequestId>) {
        /// One read at a time, so results come back in the order asked for.
        static READING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let path = self.config_path.clone();
        let logs = self.logs.clone();
        let inputs = self.inputs_tx.clone();
        tokio::task::spawn_blocking(move || {
            let _one = READING
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let loaded = std::panic::catch_unwind(|| herd_config::load(&path));
            let config = match loaded {
                Ok(Ok(config)) => {
                    info!(config = %path.display(), "reloading");
                    // A valid config is always applied: log files follow it now.
                    logs.configure(&config);
                    Ok(Box::new(config))
                }
                Ok(Err(errors)) => {
                    for error in &errors.0 {
                        warn!("{error}");
                    }
                    Err(format!(
                        "{} is invalid; nothing was changed:\n{errors}",
                        path.display()
                    ))
                }
                Err(_) => Err(format!(
                    "reading {} failed (a bug in herd); nothing was changed",
                    path.display()
                )),
            };
            let _ = inputs.send(Input::ConfigLoaded { id, config });
        });
    }

    fn shutdown(&mut self, why: &str) {
        info!(signal = why, "shutting down");
        self.feed(Input::Shutdown);
    }

    fn reap(&mut self) {
        let exits = reaper::reap_all();
        // A child whose exec failed wrote its error before it exited (127):
        // the error goes in first, then its exit is that of a pid the core
        // no longer tracks.
        for input in self.exec_failures() {
            self.feed(input);
        }
        for (pid, exit) in exits {
            if self.probes.reaped(pid, &exit) {
                continue;
            }
            self.programs.remove(&pid);
            self.starts.remove(&pid);
            self.unread_starts.remove(&pid);
            // Output first, so that whoever joins the task sees all of it.
            while let Ok(input) = self.inputs.try_recv() {
                self.feed(input);
            }
            for chunk in self.outputs.drain(pid) {
                self.feed(chunk);
            }
            self.feed(Input::Exited { pid, exit });
        }
        // Killed leftovers have left their cgroups by now, or will by the next reap.
        self.cgroups.sweep();
    }

    /// Children that reported a failed exec: as inputs for the core.
    fn exec_failures(&mut self) -> Vec<Input> {
        self.exec_errors
            .drain()
            .into_iter()
            .filter_map(|(pid, errno)| {
                if self.probes.exec_failed(pid, errno) {
                    return None;
                }
                let program = self.programs.get(&pid).map_or("?", String::as_str);
                let error = exec_message(program, errno);
                Some(Input::ExecFailed { pid, error })
            })
            .collect()
    }

    /// Hands `input` to the core and carries out its actions; spawn results go
    /// back in as inputs until nothing is left to do.
    fn feed(&mut self, input: Input) {
        self.heap.busy(Instant::now());
        // Timers need the wall clock; the core never reads one itself.
        self.core
            .set_wall_clock(Instant::now(), jiff::Timestamp::now());
        let mut cascade = crate::core::Cascade::new(input);
        loop {
            let journal = &mut self.journal;
            // Task starts are recorded before any of them is spawned (docs/journal.md).
            let next = cascade.next_with(&mut self.core, Instant::now(), |batch| {
                journal.record_starts(batch)
            });
            let Some(action) = next else { break };
            if let Action::Spawn { owner, spec } = action {
                // Spawns handed out together start side by side (fork.rs),
                // so many: each holds its cgroup's descriptors and pipes
                // from before its clone until the batch is done.
                const SPAWN_BATCH: usize = 64;
                let mut batch = vec![(owner, spec)];
                while batch.len() < SPAWN_BATCH {
                    let Some(spawn) = cascade.next_queued_spawn() else {
                        break;
                    };
                    batch.push(spawn);
                }
                for next in self.spawn_all(batch) {
                    cascade.feed_back(next);
                }
                continue;
            }
            if let Some(next) = self.carry_out(action) {
                cascade.feed_back(next);
            }
        }
        self.journal.save_timers(&self.core.timer_history());
        if self.core.is_shutting_down() && !self.told_stopping {
            self.told_stopping = true;
            self.systemd.stopping();
        }
    }

    /// Spawns a process for `owner` and watches its output; the result
    /// goes back to the core as an input.
    fn spawn(&mut self, owner: Owner, spec: Box<crate::core::SpawnSpec>) -> Input {
        match self.ready_to_spawn(owner, spec) {
            Ok((owner, spec)) => {
                let result = spawn_confined(&mut self.cgroups, &owner, &spec);
                self.spawn_result(owner, &spec, result)
            }
            Err((owner, error)) => Input::SpawnFailed { owner, error },
        }
    }

    /// Spawns a process for each of `batch`, side by side, and watches their
    /// output; the results, in order, go back to the core as inputs.
    fn spawn_all(&mut self, batch: Vec<(Owner, Box<crate::core::SpawnSpec>)>) -> Vec<Input> {
        let ready: Vec<_> = batch
            .into_iter()
            .map(|(owner, spec)| self.ready_to_spawn(owner, spec))
            .collect();
        let specs: Vec<(&Owner, &crate::core::SpawnSpec)> = ready
            .iter()
            .filter_map(|ready| ready.as_ref().ok())
            .map(|(owner, spec)| (owner, &**spec))
            .collect();
        let mut results = spawn_confined_all(&mut self.cgroups, &specs).into_iter();
        ready
            .into_iter()
            .map(|ready| match ready {
                Ok((owner, spec)) => {
                    let result = results.next().unwrap_or_else(|| Err("not started".into()));
                    self.spawn_result(owner, &spec, result)
                }
                Err((owner, error)) => Input::SpawnFailed { owner, error },
            })
            .collect()
    }

    /// The input for the core that says how a spawn went.
    fn spawn_result(
        &mut self,
        owner: Owner,
        spec: &crate::core::SpawnSpec,
        result: Result<Spawned, String>,
    ) -> Input {
        match result {
            Ok(spawned) => self.spawned(owner, spec, spawned),
            Err(error) => Input::SpawnFailed {
                owner,
                error: self.reserve.explain(error),
            },
        }
    }

    /// The spec as it is spawned (with herdd's sockets), or, when it
    /// cannot be, why.
    fn ready_to_spawn(
        &mut self,
        owner: Owner,
        mut spec: Box<crate::core::SpawnSpec>,
    ) -> Result<(Owner, Box<crate::core::SpawnSpec>), (Owner, String)> {
        if let Some(error) = self.reserve.short() {
            return Err((owner, error));
        }
        if spec.notify {
            spec.env
                .insert("NOTIFY_SOCKET".into(), self.notify_socket.clone());
        }
        spec.env
            .insert(survivors::SOCKET_VAR.into(), self.control_socket.clone());
        if !spec.sockets.is_empty() {
            match self.sockets.descriptors(&spec.sockets) {
                Ok(fds) => listen::pass(&mut spec, fds),
                Err(error) => return Err((owner, error)),
            }
        }
        Ok((owner, spec))
    }

    /// Watches the output of a process just spawned and records it.
    fn spawned(&mut self, owner: Owner, spec: &crate::core::SpawnSpec, spawned: Spawned) -> Input {
        match (&owner, &spec.output, spawned.output) {
            (Owner::Task(task), _, Some((stdout, stderr))) => {
                self.outputs.watch(spawned.pid, *task, stdout, stderr);
            }
            (Owner::Instance(id), Output::Log { instance, to }, Some((out, err)))
            | (
                Owner::Hook(HookSubject::Instance(id)),
                Output::Log { instance, to },
                Some((out, err)),
            ) => match to {
                LogTarget::File => {
                    let file = self.logs.file(id, instance);
                    self.outputs.watch_log(spawned.pid, file, out, err);
                }
                LogTarget::Journal | LogTarget::Console => {
                    let origin = Origin {
                        unit: id.unit.clone(),
                        index: id.index,
                        instance: instance.clone(),
                        pid: spawned.pid,
                    };
                    self.outputs
                        .watch_forward(origin, *to, &self.logs, out, err);
                }
            },
            _ => {}
        }
        if let Some(start) = spawned.start_time {
            self.starts.insert(spawned.pid, start);
        } else {
            self.unread_starts.insert(spawned.pid);
        }
        self.programs.insert(spawned.pid, spec.argv[0].clone());
        Input::Spawned {
            owner,
            pid: spawned.pid,
        }
    }

    fn carry_out(&mut self, action: Action) -> Option<Input> {
        match action {
            Action::Spawn { owner, spec } => Some(self.spawn(owner, spec)),
            Action::Signal { pid, signal } => {
                let result = Signal::try_from(signal)
                    .and_then(|signal| killpg(Pid::from_raw(pid as i32), signal));
                if let Err(err) = result {
                    // ESRCH: the group is already gone; its exit is on the way.
                    debug!(pid, signal, error = %err, "signal not delivered");
                }
                None
            }
            Action::KillLeftovers { pgid } => {
                // ESRCH (the usual case) means the group died with its leader.
                let _ = killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
                // The cgroup also reaches processes that left the group (setsid).
                self.cgroups.kill_leftovers(pgid);
                None
            }
            Action::KillPoolLeftovers { pool } => {
                self.cgroups.kill_pool_leftovers(&pool);
                None
            }
            Action::Reply { id, reply } => {
                if let Some(sender) = self.pending.remove(&id) {
                    // The client may have gone; its loss is not ours.
                    let _ = sender.send(reply);
                }
                None
            }
            Action::Publish(notice) => {
                if notice.is_routine_task_event() {
                    debug!("{notice}");
                } else {
                    info!("{notice}");
                }
                self.hub.publish(notice);
                None
            }
            Action::Reexec => {
                self.reexec = true;
                None
            }
            Action::ReadConfig { id } => {
                self.read_config(id);
                None
            }
            Action::Probe {
                instance,
                pid,
                spec,
            } => {
                let short = self.reserve.short();
                self.probes.start(instance, pid, *spec, short);
                None
            }
            Action::CancelProbe { instance } => {
                self.probes.cancel(&instance);
                None
            }
            Action::RunHook {
                subject,
                spec,
                tail,
            } => Some(self.run_hook(subject, spec, tail)),
        }
    }

    /// Spawns a failure hook the way every process is spawned, with its
    /// log tail as descriptor 3 (`HERD_LOG_TAIL`). A tail that cannot be
    /// made leaves it `/dev/null`: the hook still runs.
    fn run_hook(
        &mut self,
        subject: HookSubject,
        mut spec: Box<crate::core::SpawnSpec>,
        tail: LogTail,
    ) -> Input {
        let tail = hook_tail::prepare(&tail, &self.logs)
            .inspect_err(|err| warn!(error = %err, "cannot prepare a failure hook's log tail"))
            .ok();
        let path = match &tail {
            Some(fd) => {
                spec.listen_fds = vec![fd.as_raw_fd()];
                hook_tail::TAIL_PATH
            }
            None => "/dev/null",
        };
        spec.env.insert("HERD_LOG_TAIL".into(), path.into());
        // herdd's copy of the tail closes once the child has its own.
        self.spawn(Owner::Hook(subject), spec)
    }
}

/// Records each tracked pid's kernel start time in the snapshot.
fn fill_starts(snapshot: &mut crate::core::snapshot::Snapshot, starts: &HashMap<u32, u64>) {
    for instance in snapshot
        .units
        .iter_mut()
        .flat_map(|u| u.instances.iter_mut())
    {
        instance.pid_start = instance.pid.and_then(|pid| starts.get(&pid).copied());
    }
    for task in &mut snapshot.tasks {
        task.pid_start = task.pid.and_then(|pid| starts.get(&pid).copied());
    }
}

/// The start times a snapshot recorded, by pid.
fn snapshot_starts(snapshot: &crate::core::snapshot::Snapshot) -> HashMap<u32, u64> {
    let instances = snapshot
        .units
        .iter()
        .flat_map(|u| &u.instances)
        .filter_map(|i| Some((i.pid?, i.pid_start?)));
    let tasks = snapshot
        .tasks
        .iter()
        .filter_map(|t| Some((t.pid?, t.pid_start?)));
    instances.chain(tasks).collect()
}

/// `exec /path: Exec format error`.
fn exec_message(program: &str, errno: i32) -> String {
    format!(
        "exec {program}: {}",
        nix::errno::Errno::from_raw(errno).desc()
    )
}
