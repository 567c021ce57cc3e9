//! The control socket's listener task: accepts connections, admits them
//! (admission.rs) or turns them away with `too_busy`, and runs one task per
//! connection (connection.rs). When herdd exits or re-executes, it tells
//! every connection to finish once its reply is written, waits (briefly)
//! for them, and hands itself back so that a failed re-exec can go on.

use super::admission::{Admission, Limits};
use super::auth::Peer;
use super::connection::{self, Connection, Shared};
use super::denials::Denials;
use super::socket::Control;
use crate::shell::clients::{ClientId, RequestSender};
use crate::shell::descriptors::Reserve;
use crate::shell::events::EventHub;
use crate::shell::logs::LogHub;
use herd_common::protocol::{ErrorCode, Reply};
use nix::errno::Errno;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UnixStream;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, warn};

/// How long exiting herdd waits for clients to take their last replies.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// How long to stop accepting after `accept` failed for a reason other
/// than a lack of descriptors (which the spare descriptor handles).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Reserved descriptors given up at a time when `accept` runs out.
const GIVE_UP_AT_ONCE: usize = 4;

/// At most one "accept failed" line this often.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// What the connections are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// Serve on.
    Open,
    /// herdd re-executes: answer what the core answered, drop the rest
    /// unanswered (it was never carried out; clients send it again).
    Reexec,
    /// herdd exits: what the core did not answer gets `shutting_down`.
    Exit,
}

pub struct Listener {
    control: Control,
    shared: Arc<Shared>,
    admission: Admission,
    /// Tasks of the connections being served; each ends with its peer's uid.
    connections: JoinSet<u32>,
    closing: watch::Sender<Closing>,
    next_client: ClientId,
    /// Held open so that, out of descriptors, herdd can still accept a
    /// client to tell it `too_busy` (closed for that, then opened again).
    spare: Option<OwnedFd>,
    /// The shell's descriptor reserve, spent on clients when out of descriptors.
    reserve: Arc<Reserve>,
    /// The spare was given up for the client being accepted.
    out_of_fds: bool,
    accept_failures: AcceptFailures,
}

impl Listener {
    /// A listener for `control` with `limits` (read before anything is
    /// spawned: a bad limit stops herdd at start, with nothing started).
    pub fn new(
        control: Control,
        limits: Limits,
        core: RequestSender,
        hub: Arc<EventHub>,
        logs: Arc<LogHub>,
        denials: Arc<Denials>,
        reserve: Arc<Reserve>,
    ) -> Listener {
        let shared = Arc::new(Shared {
            policy: control.policy.clone(),
            core,
            hub,
            logs,
            denials,
            pending: Arc::default(),
            idle_timeout: limits.idle_timeout,
        });
        Listener {
            control,
            shared,
            admission: Admission::new(limits),
            connections: JoinSet::new(),
            closing: watch::channel(Closing::Open).0,
            next_client: 1,
            spare: open_spare(),
            reserve,
            out_of_fds: false,
            accept_failures: AcceptFailures::default(),
        }
    }

    /// Serves connections until `stop` says how herdd closes; then lets
    /// each connection finish (see [`Closing`]) and returns itself.
    pub async fn run(mut self, mut stop: watch::Receiver<Closing>) -> Listener {
        self.closing.send_replace(Closing::Open);
        let mut paused_until: Option<Instant> = None;
        let how = loop {
            tokio::select! {
                how = stop.wait_for(|how| *how != Closing::Open) => {
                    break how.map_or(Closing::Exit, |how| *how);
                }
                accepted = self.control.listener.accept(), if paused_until.is_none() => {
                    match accepted {
                        Ok((stream, _)) => self.admit(stream),
                        Err(err) => paused_until = self.accept_failed(err),
                    }
                }
                _ = sleep_until(paused_until), if paused_until.is_some() => paused_until = None,
                Some(ended) = self.connections.join_next(), if !self.connections.is_empty() => {
                    if let Ok(uid) = ended {
                        self.admission.release(uid);
                    }
                }
            }
        };
        self.close(how).await;
        self
    }

    /// Serves `stream`, or tells it why not.
    fn admit(&mut self, stream: UnixStream) {
        if self.out_of_fds {
            self.out_of_fds = false;
            turn_away(stream, "herdd is out of file descriptors; try again later");
            self.spare = open_spare();
            return;
        }
        let peer = match Peer::of(&stream) {
            Ok(peer) => peer,
            Err(err) => {
                warn!(error = %err, "cannot read a client's credentials; closing the connection");
                return;
            }
        };
        let privileged = self.shared.policy.may_control(&peer);
        if let Err(refusal) = self.admission.admit(peer.uid, privileged) {
            // Not logged above debug: under a flood that would be a flood of lines.
            debug!(uid = peer.uid, reason = %refusal.message(), "turning a connection away");
            turn_away(stream, &refusal.message());
            return;
        }
        let client = self.next_client;
        self.next_client += 1;
        let connection = Connection {
            client,
            peer,
            stream,
        };
        // Spawned as it is: see `connection::serve`.
        let served = connection::serve(connection, self.shared.clone(), self.closing.subscribe());
        self.connections.spawn(served);
    }

    /// Out of descriptors (EMFILE, ENFILE): first a few of the shell's
    /// reserved descriptors are given up, so that the client is served
    /// (root's `status` gets through however many pipes children hold).
    /// With the reserve spent, the spare is given up so that the next
    /// accept succeeds, and that client is told so and closed (see
    /// [`Listener::admit`]): clients hear `too_busy` instead of waiting in
    /// silence. Anything else, or no spare, pauses accepting briefly
    /// (retrying at once would spin). Returns until when accepting pauses.
    fn accept_failed(&mut self, err: std::io::Error) -> Option<Instant> {
        let errno = err.raw_os_error().map(Errno::from_raw);
        let out_of_fds = matches!(errno, Some(Errno::EMFILE | Errno::ENFILE));
        if out_of_fds && self.reserve.give_up(GIVE_UP_AT_ONCE) > 0 {
            debug!("out of descriptors; serving a client from the reserve");
            return None;
        }
        self.accept_failures.log(&err);
        if out_of_fds && self.spare.take().is_some() {
            self.out_of_fds = true;
            return None;
        }
        Some(Instant::now() + ACCEPT_PAUSE)
    }

    /// Tells every connection how herdd closes and waits (at most
    /// [`FLUSH_TIMEOUT`]) for each to write its last reply.
    async fn close(&mut self, how: Closing) {
        self.closing.send_replace(how);
        let flushed = async {
            while let Some(ended) = self.connections.join_next().await {
                if let Ok(uid) = ended {
                    self.admission.release(uid);
                }
            }
        };
        if tokio::time::timeout(FLUSH_TIMEOUT, flushed).await.is_err() {
            warn!("some clients did not take their last reply");
        }
        self.connections.abort_all();
        while let Some(ended) = self.connections.join_next().await {
            if let Ok(uid) = ended {
                self.admission.release(uid);
            }
        }
    }
}

/// Tells a connection it is turned away, and closes it, without a task: a
/// fresh socket's send buffer is empty, so one short write cannot block.
fn turn_away(stream: UnixStream, why: &str) {
    let reply = Reply::error(ErrorCode::TooBusy, why);
    if let Ok(mut stream) = stream.into_std() {
        let _ = stream.write(reply.to_line().as_bytes());
    }
}

fn open_spare() -> Option<OwnedFd> {
    std::fs::File::open("/dev/null").ok().map(OwnedFd::from)
}

/// Counts failed accepts, logged at most every [`ACCEPT_LOG_EVERY`].
#[derive(Default)]
struct AcceptFailures {
    logged: Option<Instant>,
    unlogged: u64,
}

impl AcceptFailures {
    fn log(&mut self, err: &std::io::Error) {
        if self
            .logged
            .is_some_and(|at| at.elapsed() < ACCEPT_LOG_EVERY)
        {
            self.unlogged += 1;
            return;
        }
        warn!(error = %err, failed_since_last = self.unlogged, "accept failed");
        self.logged = Some(Instant::now());
        self.unlogged = 0;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline.into()).await;
    }
}
