//! The one event loop: signals, the control socket and the core's deadline
//! become inputs; the core's actions become syscalls. herdd wakes only for a
//! signal, a connection or a deadline: no polling, zero CPU when idle.

use super::events::EventHub;
use super::notify::NotifySocket;
use super::output::OutputPipes;
use super::{reaper, spawn};
use crate::control::socket::{self, Incoming};
use crate::core::{Action, Input, Owner, RequestId, Supervisor};
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

/// Runs the supervisor until a shutdown has stopped every process.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // Register SIGCHLD before the first spawn so no exit goes unnoticed.
    let mut child_signals = signal(SignalKind::child())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    reaper::become_subreaper();
    let control = socket::Control::bind(&config.herd.socket, config.herd.control_group.as_deref())?;
    let notify = NotifySocket::bind(&notify_path(&config.herd.socket))?;
    let hub = EventHub::new();
    info!(socket = %config.herd.socket.display(), units = config.units.len(), "herdd started");

    let (requests_tx, mut requests) = mpsc::unbounded_channel::<Incoming>();
    // Tells connection tasks to finish once their reply is written.
    let (closing_tx, closing) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut accept_paused_until: Option<Instant> = None;
    let (chunks_tx, chunks) = mpsc::unbounded_channel::<Input>();
    let mut shell = Shell {
        core: Supervisor::new(&config),
        pending: HashMap::new(),
        next_request: 0,
        outputs: OutputPipes::new(chunks_tx),
        chunks,
        notify_socket: notify.path.display().to_string(),
        hub: hub.clone(),
    };
    shell.feed(Input::Boot);
    while !shell.core.is_finished() {
        let deadline = shell.core.next_deadline();
        tokio::select! {
            _ = child_signals.recv() => shell.reap(),
            _ = terminate.recv() => shell.shutdown("SIGTERM"),
            _ = interrupt.recv() => shell.shutdown("SIGINT"),
            Some(incoming) = requests.recv() => shell.request(incoming),
            Some(chunk) = shell.chunks.recv() => shell.feed(chunk),
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
                        hub.clone(),
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
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Let every connection write its last reply (e.g. to `shutdown`), then close.
    let _ = closing_tx.send(true);
    drop(requests);
    let flushed = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(FLUSH_TIMEOUT, flushed).await.is_err() {
        warn!("some clients did not take their last reply");
    }
    // Collect any orphan that ended during the last step.
    reaper::reap_all();
    info!("herdd stopped: every process has exited");
    Ok(())
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
    /// Output pipes of running tasks.
    outputs: OutputPipes,
    /// Output chunks forwarded by the pipe readers.
    chunks: mpsc::UnboundedReceiver<Input>,
    /// Path given to `ready = "notify"` processes as `NOTIFY_SOCKET`.
    notify_socket: String,
    /// Where published lifecycle events go.
    hub: std::sync::Arc<EventHub>,
}

impl Shell {
    fn request(&mut self, incoming: Incoming) {
        match incoming {
            Incoming::Request {
                client,
                request,
                reply,
            } => {
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

    fn shutdown(&mut self, why: &str) {
        info!(signal = why, "shutting down");
        self.feed(Input::Shutdown);
    }

    fn reap(&mut self) {
        for (pid, exit) in reaper::reap_all() {
            // Output first, so that whoever joins the task sees all of it.
            while let Ok(chunk) = self.chunks.try_recv() {
                self.feed(chunk);
            }
            for chunk in self.outputs.drain(pid) {
                self.feed(chunk);
            }
            self.feed(Input::Exited { pid, exit });
        }
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
    }

    fn carry_out(&mut self, action: Action) -> Option<Input> {
        match action {
            Action::Spawn { owner, mut spec } => {
                if spec.notify {
                    spec.env
                        .insert("NOTIFY_SOCKET".into(), self.notify_socket.clone());
                }
                Some(match spawn::spawn(&spec) {
                    Ok(spawned) => {
                        if let (Owner::Task(task), Some((stdout, stderr))) =
                            (&owner, spawned.output)
                        {
                            self.outputs.watch(spawned.pid, *task, stdout, stderr);
                        }
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
                    .map_err(|err| err.into())
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
        }
    }
}
