//! The one event loop: signals, client connections, child pipes, the notify
//! socket and the core's deadline become inputs; the core's actions become
//! syscalls. herdd wakes only when one of those is ready, or for the one-shot
//! journal write that follows a change: no polling, zero CPU when idle.

use super::adopt;
use super::cgroup::Cgroups;
use super::events::EventHub;
use super::fork;
use super::journal::Journal;
use super::logs::LogHub;
use super::notify::NotifySocket;
use super::output::OutputPipes;
use super::reaper;
use super::reexec::{self, Handover, Invocation};
use super::sd_notify::SystemdNotifier;
use crate::control::dbus;
use crate::control::socket::{self, Incoming};
use crate::core::{Action, Input, Output, Owner, RequestId, Supervisor};
use herd_common::protocol::Reply;
use herd_config::Config;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

/// The journal is rewritten at most this often (docs/journal.md).
const JOURNAL_EVERY: Duration = Duration::from_millis(100);

/// How long exiting herdd waits for clients to take their last replies.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// How long to stop accepting after `accept` failed (e.g. EMFILE).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Builds the single-threaded runtime and runs herdd until shutdown completes.
pub fn start(config: Config) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(config))
}

/// Why [`serve`] returned.
enum Outcome {
    /// Shutdown finished: every process has exited.
    Finished,
    /// `daemon-reexec` was asked for; replies are out.
    Reexec,
}

/// Runs the supervisor until a shutdown has stopped every process.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // Register SIGCHLD before the first spawn so no exit goes unnoticed.
    let mut signals = Signals {
        child: signal(SignalKind::child())?,
        terminate: signal(SignalKind::terminate())?,
        interrupt: signal(SignalKind::interrupt())?,
        hangup: signal(SignalKind::hangup())?,
    };
    reaper::become_subreaper();
    let systemd = SystemdNotifier::from_env();
    let invocation = Invocation::current();
    let control = socket::Control::bind(&config.herd.socket, config.herd.control_group.as_deref())?;
    let notify = NotifySocket::bind(&notify_path(&config.herd.socket))?;
    let hub = EventHub::new();
    let (inputs_tx, inputs) = mpsc::unbounded_channel::<Input>();
    let logs = LogHub::new(&config, inputs_tx.clone());
    let mut journal = Journal::new(&config.herd.state_dir);
    let mut shell = Shell {
        core: Supervisor::new(&config),
        pending: HashMap::new(),
        next_request: 0,
        outputs: OutputPipes::new(inputs_tx.clone()),
        logs,
        inputs,
        inputs_tx,
        notify_socket: notify.path.display().to_string(),
        hub: hub.clone(),
        starts: HashMap::new(),
        reexec: false,
        exec_errors: fork::ExecErrors::open()?,
        programs: HashMap::new(),
        config_path: config.path.clone(),
        systemd,
        told_stopping: false,
        cgroups: Cgroups::detect(),
    };
    // Every client (socket connections, and any other front end) sends here.
    let (requests_tx, mut requests) = mpsc::unbounded_channel::<Incoming>();
    shell.resume(&config, &journal);
    // The D-Bus front end, when `[herd] dbus` names a bus: up before READY=1.
    let dbus = dbus::start(
        &config.herd.dbus,
        config.herd.control_group.as_deref(),
        requests_tx.clone(),
        hub.clone(),
    )
    .await;
    info!(socket = %config.herd.socket.display(), units = config.units.len(), "herdd started");
    shell.systemd.ready();
    loop {
        let clients = Clients {
            requests: &mut requests,
            requests_tx: &requests_tx,
            control: &control,
        };
        match serve(&mut shell, &mut signals, clients, &notify, &mut journal).await {
            Outcome::Finished => break,
            Outcome::Reexec => {
                shell.reexec = false;
                if let Some(dbus) = &dbus {
                    dbus.flush().await;
                }
                // Output already read from task pipes (and adopted exits) waits
                // here: into the state it goes, or it is lost with this image.
                while let Ok(input) = shell.inputs.try_recv() {
                    shell.feed(input);
                }
                let handover = shell.handover();
                info!(program = %invocation.program().display(), "re-executing");
                let error = invocation.exec(&handover);
                // Still here: carry on as before, with the state we have.
                warn!(error = %error, "re-exec failed; herdd goes on as it was");
            }
        }
    }
    if let Some(dbus) = &dbus {
        dbus.flush().await;
    }
    journal.remove();
    info!("herdd stopped: every process has exited");
    Ok(())
}

/// The signals herdd acts on.
struct Signals {
    child: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

/// Where requests come from.
struct Clients<'a> {
    requests: &'a mut mpsc::UnboundedReceiver<Incoming>,
    requests_tx: &'a mpsc::UnboundedSender<Incoming>,
    control: &'a socket::Control,
}

/// Serves clients and supervises until shutdown completes or a re-exec is due;
/// then lets every connection take its last reply and closes them all.
async fn serve(
    shell: &mut Shell,
    signals: &mut Signals,
    clients: Clients<'_>,
    notify: &NotifySocket,
    journal: &mut Journal,
) -> Outcome {
    let Clients {
        requests,
        requests_tx,
        control,
    } = clients;
    // Tells connection tasks to finish once their reply is written.
    let (closing_tx, closing) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut accept_paused_until: Option<Instant> = None;
    let mut journaled = None;
    let mut journal_due: Option<Instant> = None;
    let mut last_journal: Option<Instant> = None;
    let outcome = loop {
        if shell.core.is_finished() {
            break Outcome::Finished;
        }
        if shell.reexec {
            break Outcome::Reexec;
        }
        // Journal after every step that changed state (not while idle).
        // Journal after steps that changed state, at most every JOURNAL_EVERY:
        // a busy herdd must not spend its time rewriting the journal, and a
        // crash loses at most that much (never a process: those are found again).
        if journaled != Some(shell.core.generation()) && journal_due.is_none() {
            journal_due = Some(last_journal.map_or(Instant::now(), |at| at + JOURNAL_EVERY));
        }
        if journal_due.is_some_and(|due| due <= Instant::now()) {
            journal_due = None;
            last_journal = Some(Instant::now());
            journaled = Some(shell.core.generation());
            journal.write(&shell.journal_snapshot());
            continue;
        }
        let deadline = shell.core.next_deadline();
        tokio::select! {
            _ = signals.child.recv() => shell.reap(),
            _ = shell.exec_errors.readable() => {
                for input in shell.exec_failures() {
                    shell.feed(input);
                }
            }
            _ = signals.terminate.recv() => shell.shutdown("SIGTERM"),
            _ = signals.interrupt.recv() => shell.shutdown("SIGINT"),
            _ = signals.hangup.recv() => {
                let input = shell.read_config(None);
                shell.feed(input);
            }
            Some(incoming) = requests.recv() => shell.request(incoming),
            Some(input) = shell.inputs.recv() => shell.feed(input),
            notification = notify.recv() => shell.feed(Input::Notify {
                pid: notification.pid,
                pgid: notification.pgid,
                fields: notification.fields,
            }),
            accepted = control.listener.accept(), if accept_paused_until.is_none() => match accepted {
                // Beyond the limit a client is told `too_busy` at once, not left waiting.
                Ok((stream, _)) if connections.len() >= control.max_connections => {
                    control.turn_away(stream);
                }
                Ok((stream, _)) => {
                    connections.spawn(control.serve(
                        stream,
                        requests_tx.clone(),
                        shell.hub.clone(),
                        shell.logs.clone(),
                        closing.clone(),
                    ));
                }
                Err(err) => {
                    // Out of descriptors, say: retrying at once would spin.
                    warn!(error = %err, "accept failed; pausing new connections");
                    accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                }
            },
            _ = sleep_until(accept_paused_until), if accept_paused_until.is_some() => {
                accept_paused_until = None;
            }
            _ = sleep_until(deadline), if deadline.is_some() => shell.feed(Input::Tick),
            _ = sleep_until(journal_due), if journal_due.is_some() => {}
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    };
    // Let every connection write its last reply (e.g. to `shutdown`), then close.
    let _ = closing_tx.send(true);
    let flushed = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(FLUSH_TIMEOUT, flushed).await.is_err() {
        warn!("some clients did not take their last reply");
    }
    if matches!(outcome, Outcome::Finished) {
        // Collect any orphan that ended during the last step.
        reaper::reap_all();
    }
    outcome
}

/// The notify socket lives next to the control socket: `<socket>.notify`.
fn notify_path(socket: &std::path::Path) -> std::path::PathBuf {
    let mut path = socket.as_os_str().to_owned();
    path.push(".notify");
    path.into()
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline.into()).await;
    }
}

/// The core plus what the shell must remember to carry out its actions.
struct Shell {
    core: Supervisor,
    /// Where to send the reply of each request the core has not answered yet.
    pending: HashMap<RequestId, oneshot::Sender<Reply>>,
    next_request: RequestId,
    /// Output pipes of running tasks and instances.
    outputs: OutputPipes,
    /// The log files of instances (`log = "file"`).
    logs: std::sync::Arc<LogHub>,
    /// Inputs from helper tasks: output chunks, exits of adopted processes.
    inputs: mpsc::UnboundedReceiver<Input>,
    inputs_tx: mpsc::UnboundedSender<Input>,
    /// Path given to `ready = "notify"` processes as `NOTIFY_SOCKET`.
    notify_socket: String,
    /// Where published lifecycle events go.
    hub: std::sync::Arc<EventHub>,
    /// Kernel start time of each spawned pid, for the journal (pid reuse check).
    starts: HashMap<u32, u64>,
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
}

impl Shell {
    /// Carries on from a re-exec handover or from the journal of a crashed
    /// herdd, if there is one; then boots whatever is not carried over.
    fn resume(&mut self, config: &Config, journal: &Journal) {
        let now = Instant::now();
        match reexec::take_handover() {
            Some(Ok(handover)) => {
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
                self.feed(Input::Boot);
                // Children that ended during the exec are zombies waiting for us.
                self.reap();
                return;
            }
            Some(Err(error)) => warn!(%error, "cannot read the re-exec handover; starting fresh"),
            None => {}
        }
        let Some(snapshot) = journal.load() else {
            self.feed(Input::Boot);
            return;
        };
        let recorded = snapshot_starts(&snapshot);
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
        self.feed(Input::Boot);
        for pid in gone {
            self.feed(Input::Exited {
                pid,
                exit: herd_common::state::Exit::Unknown,
            });
        }
    }

    /// What the journal keeps: the state without task output, with start times.
    fn journal_snapshot(&self) -> crate::core::snapshot::Snapshot {
        let mut snapshot = self.core.snapshot(Instant::now(), false);
        // Ended tasks stay out: they can be many, and nothing runs again for them.
        snapshot.tasks.retain(|task| !task.state.is_final());
        fill_starts(&mut snapshot, &self.starts);
        snapshot
    }

    /// Everything the next image needs.
    fn handover(&self) -> Handover {
        let mut snapshot = self.core.snapshot(Instant::now(), true);
        fill_starts(&mut snapshot, &self.starts);
        Handover {
            snapshot,
            starts: self
                .starts
                .iter()
                .map(|(pid, start)| (*pid, *start))
                .collect(),
            pipes: self.outputs.export(),
            log_pipes: self.outputs.export_logs(),
        }
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

    /// Reads the config file again for `reload` or SIGHUP. A bad config is
    /// logged with every error and changes nothing.
    fn read_config(&self, id: Option<RequestId>) -> Input {
        let config = herd_config::load(&self.config_path).map_err(|errors| {
            for error in &errors.0 {
                warn!("{error}");
            }
            format!(
                "{} is invalid; nothing was changed:\n{errors}",
                self.config_path.display()
            )
        });
        if let Ok(config) = &config {
            info!(config = %self.config_path.display(), "reloading");
            // A valid config is always applied: log files follow it now.
            self.logs.configure(config);
        }
        Input::ConfigLoaded {
            id,
            config: config.map(Box::new),
        }
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
            self.programs.remove(&pid);
            self.starts.remove(&pid);
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
            .map(|(pid, errno)| {
                let program = self.programs.get(&pid).map_or("?", String::as_str);
                Input::ExecFailed {
                    pid,
                    error: exec_message(program, errno),
                }
            })
            .collect()
    }

    /// Hands `input` to the core and carries out its actions; spawn results go
    /// back in as inputs until nothing is left to do.
    fn feed(&mut self, input: Input) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            for action in self.core.handle(Instant::now(), input) {
                if let Some(next) = self.carry_out(action) {
                    inputs.push_back(next);
                }
            }
        }
        if self.core.is_shutting_down() && !self.told_stopping {
            self.told_stopping = true;
            self.systemd.stopping();
        }
    }

    fn carry_out(&mut self, action: Action) -> Option<Input> {
        match action {
            Action::Spawn { owner, mut spec } => {
                if spec.notify {
                    spec.env
                        .insert("NOTIFY_SOCKET".into(), self.notify_socket.clone());
                }
                Some(match self.cgroups.spawn(&owner, &spec) {
                    Ok(spawned) => {
                        match (&owner, &spec.output, spawned.output) {
                            (Owner::Task(task), _, Some((stdout, stderr))) => {
                                self.outputs.watch(spawned.pid, *task, stdout, stderr);
                            }
                            (Owner::Instance(id), Output::Log { instance }, Some((out, err))) => {
                                let file = self.logs.file(id, instance);
                                self.outputs.watch_log(spawned.pid, file, out, err);
                            }
                            _ => {}
                        }
                        if let Some(start) = adopt::start_time(spawned.pid) {
                            self.starts.insert(spawned.pid, start);
                        }
                        self.programs.insert(spawned.pid, spec.argv[0].clone());
                        Input::Spawned {
                            owner,
                            pid: spawned.pid,
                        }
                    }
                    Err(error) => Input::SpawnFailed { owner, error },
                })
            }
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
            Action::Reply { id, reply } => {
                if let Some(sender) = self.pending.remove(&id) {
                    // The client may have gone; its loss is not ours.
                    let _ = sender.send(reply);
                }
                None
            }
            Action::Publish(notice) => {
                info!("{notice}");
                self.hub.publish(notice);
                None
            }
            Action::Reexec => {
                self.reexec = true;
                None
            }
            Action::ReadConfig { id } => Some(self.read_config(id)),
        }
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
