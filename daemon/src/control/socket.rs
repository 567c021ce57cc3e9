//! The control socket: JSON lines (docs/protocol.md), one task per connection.
//!
//! A connection handles one request at a time: it reads a line, decodes it,
//! checks the peer may send it (auth.rs), hands it to the core and writes the
//! reply. A slow, silent or malicious client only ever blocks its own task,
//! never the supervisor, and what it can hold is bounded: at most
//! [`MAX_REQUEST_BYTES`] buffered (and all of them together at most
//! [`MAX_PENDING_BYTES`]), for at most [`STALL_TIMEOUT`], on one of at most
//! [`MAX_CONNECTIONS`] connections.

use super::auth::{Peer, Policy};
use crate::shell::events::EventHub;
use crate::shell::logs::LogHub;
use herd_common::events::Lifecycle;
use herd_common::protocol::{decode_request, ErrorCode, Reply, Request, MAX_REQUEST_BYTES};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{debug, info, warn};

/// Most connections served at once; one more gets `too_busy` and is closed.
/// Each idle connection costs a task and a [`READ_BUFFER`]; 1000 clients are
/// the documented load (docs/protocol.md).
pub const MAX_CONNECTIONS: usize = 4096;

/// Testing knob: overrides [`MAX_CONNECTIONS`] (read once at start).
const MAX_CONNECTIONS_ENV: &str = "HERD_MAX_CONNECTIONS";

/// Descriptors kept for everything else herdd opens (children's pipes, logs,
/// ...) when `RLIMIT_NOFILE` is what limits connections: `accept` failing
/// with EMFILE would leave clients waiting silently instead of told `too_busy`.
const FD_HEADROOM: u64 = 256;

/// A request must be complete this long after its first byte arrived, and a
/// reply must be taken by the client within this long; otherwise the
/// connection is closed. Defeats slowloris clients (half a line, then
/// nothing, or one byte at a time) and clients that never read. A connection
/// with nothing half-sent may stay idle for ever.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of incomplete requests all connections together may hold. Without
/// it, 4096 clients each sending 64 KiB and no newline would make herdd hold
/// 256 MiB for [`STALL_TIMEOUT`], and the allocator keep much of it after.
/// A request that does not fit gets `too_busy`.
pub const MAX_PENDING_BYTES: usize = 16 * 1024 * 1024;

/// Per-connection read buffer: any ordinary request fits in one read, and a
/// thousand idle connections cost only a few MiB.
const READ_BUFFER: usize = 2048;

/// A connection, as numbered for the core (semaphore slots held by clients
/// belong to their connection).
pub use crate::core::semaphore::ClientId;

/// What a connection tells the core.
pub enum Incoming {
    /// A decoded, authorised request, with where its reply goes.
    Request {
        client: ClientId,
        request: Request,
        reply: oneshot::Sender<Reply>,
    },
    /// The connection has closed, however it ended: what it held is released.
    Gone { client: ClientId },
}

/// Sends [`Incoming::Gone`] when the connection task ends, on every path.
struct Departure {
    client: ClientId,
    core: mpsc::UnboundedSender<Incoming>,
}

impl Drop for Departure {
    fn drop(&mut self) {
        let _ = self.core.send(Incoming::Gone {
            client: self.client,
        });
    }
}

/// The bound socket, plus the lock that makes it ours. Dropping it removes the socket file.
pub struct Control {
    pub listener: UnixListener,
    /// Connections beyond this many are turned away with `too_busy`.
    pub max_connections: usize,
    /// Who may send what; shared by every connection task.
    policy: Arc<Policy>,
    /// Bytes of incomplete requests held by all connections (see [`Pending`]).
    pending: Arc<AtomicUsize>,
    /// The id the next connection gets.
    next_client: std::sync::atomic::AtomicU64,
    path: PathBuf,
    /// flock'ed `<socket>.lock`: a second herdd on the same socket fails to take it.
    _lock: File,
}

impl Control {
    /// Binds the socket at `path`, with `control_group` (from `[herd]`) allowed
    /// to control herd. Refuses a path someone else could tamper with.
    pub fn bind(path: &Path, control_group: Option<&str>) -> anyhow::Result<Control> {
        let policy = Arc::new(Policy::load(control_group)?);
        let max_connections = max_connections()?;
        let own_uid = policy.own_uid;
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            if !dir.exists() {
                // Searchable by all, whatever the umask: the peer-credential
                // check, not the path, keeps strangers read-only. An admin who
                // wants them out entirely makes the directory 0750 or 0700
                // (the SPEC's "or nothing, if the socket mode says so").
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(dir)
                    .and_then(|()| {
                        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                    })
                    .map_err(|err| anyhow::anyhow!("cannot create {}: {err}", dir.display()))?;
            }
            let meta = std::fs::metadata(dir)
                .map_err(|err| anyhow::anyhow!("{}: {err}", dir.display()))?;
            check_owner(dir, meta.uid(), meta.mode(), own_uid)?;
        }
        let lock = take_lock(path, own_uid)?;
        // We hold the lock, so whatever is at `path` was left by a dead herdd.
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                check_owner(path, meta.uid(), 0, own_uid)?;
                std::fs::remove_file(path)?
            }
            Ok(_) => anyhow::bail!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            ),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => anyhow::bail!("{}: {err}", path.display()),
        }
        let listener = UnixListener::bind(path)
            .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", path.display()))?;
        // Everyone may connect: other users need to read status, and each
        // request is checked against the peer's credentials (auth.rs).
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
        Ok(Control {
            listener,
            max_connections,
            policy,
            pending: Arc::default(),
            next_client: std::sync::atomic::AtomicU64::new(1),
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// The task that serves one accepted connection.
    pub fn serve(
        &self,
        stream: UnixStream,
        core: mpsc::UnboundedSender<Incoming>,
        hub: Arc<EventHub>,
        logs: Arc<LogHub>,
        closing: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let pending = Pending {
            total: self.pending.clone(),
            mine: 0,
        };
        let client = self.next_client.fetch_add(1, Ordering::Relaxed);
        let connection = Connection {
            client,
            policy: self.policy.clone(),
            core,
            hub,
            logs,
        };
        serve(stream, connection, pending, closing)
    }

    /// Tells a connection beyond [`Control::max_connections`] why, and closes
    /// it, without a task: a fresh socket's send buffer is empty, so one short
    /// write cannot block. Not logged above debug: under a flood that would
    /// be a flood of log lines.
    pub fn turn_away(&self, stream: UnixStream) {
        debug!(
            max = self.max_connections,
            "too many connections; turning one away"
        );
        let reply = Reply::error(
            ErrorCode::TooBusy,
            format!(
                "herdd is serving its maximum of {} connections; try again later",
                self.max_connections
            ),
        );
        if let Ok(mut stream) = stream.into_std() {
            let _ = stream.write(reply.to_line().as_bytes());
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// [`MAX_CONNECTIONS`] (or `HERD_MAX_CONNECTIONS`), lowered if herdd could not
/// open that many descriptors.
fn max_connections() -> anyhow::Result<usize> {
    let wanted = match std::env::var(MAX_CONNECTIONS_ENV) {
        Ok(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                anyhow::anyhow!("{MAX_CONNECTIONS_ENV}={text:?}: not a positive number")
            })?,
        Err(_) => MAX_CONNECTIONS,
    };
    let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)?;
    let by_fds = usize::try_from(soft.saturating_sub(FD_HEADROOM).max(1)).unwrap_or(usize::MAX);
    if by_fds < wanted {
        warn!(
            nofile = soft,
            max_connections = by_fds,
            "RLIMIT_NOFILE allows fewer connections than {wanted}; \
             raise it (LimitNOFILE=) to serve more"
        );
    }
    Ok(wanted.min(by_fds))
}

/// Whether a file or directory on the socket path is safe to trust: owned by
/// root or by herdd's own user, and (for the directory) not writable by
/// everyone unless sticky. Otherwise someone else could swap the socket or
/// its lock for their own and impersonate herdd to its clients.
fn check_owner(path: &Path, owner: u32, mode: u32, own_uid: u32) -> anyhow::Result<()> {
    let why = if owner != 0 && owner != own_uid {
        format!("it is owned by uid {owner}")
    } else if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        "it is writable by everyone and not sticky".to_string()
    } else {
        return Ok(());
    };
    anyhow::bail!(
        "herdd refuses a socket path it does not own: {}: {why}",
        path.display()
    )
}

fn take_lock(socket: &Path, own_uid: u32) -> anyhow::Result<File> {
    let mut lock_path = socket.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = Path::new(&lock_path);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        // A symlink planted here must not make herdd create or lock another file.
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o644)
        .open(lock_path)
        .map_err(|err| anyhow::anyhow!("cannot open {}: {err}", lock_path.display()))?;
    check_owner(lock_path, lock.metadata()?.uid(), 0, own_uid)?;
    // SAFETY: flock on a descriptor we own.
    let taken = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !taken {
        anyhow::bail!(
            "another herdd is already running on {} (it holds {})",
            socket.display(),
            lock_path.display()
        );
    }
    Ok(lock)
}

/// Serves one connection until the client closes it, misbehaves, or herdd
/// exits (`closing` turns true; a request in progress is still answered).
/// What a connection task needs besides its stream.
struct Connection {
    client: ClientId,
    policy: Arc<Policy>,
    core: mpsc::UnboundedSender<Incoming>,
    hub: Arc<EventHub>,
    /// Log files, for `logs` (read here, never by the core).
    logs: Arc<LogHub>,
}

async fn serve(
    stream: UnixStream,
    connection: Connection,
    mut pending: Pending,
    mut closing: watch::Receiver<bool>,
) {
    let Connection {
        client,
        policy,
        core,
        hub,
        logs,
    } = connection;
    let _departure = Departure {
        client,
        core: core.clone(),
    };
    let peer = match Peer::of(&stream) {
        Ok(peer) => peer,
        Err(err) => {
            warn!(error = %err, "cannot read a client's credentials; closing the connection");
            return;
        }
    };
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::with_capacity(READ_BUFFER, read);
    let mut line = Vec::new();
    loop {
        line.clear();
        // One big request must not keep 64 KiB allocated for the connection's life.
        line.shrink_to(READ_BUFFER);
        let read = tokio::select! {
            read = read_line(&mut reader, &mut line, &mut pending) => read,
            _ = closing.wait_for(|closing| *closing) => return,
        };
        let reply = match read {
            Ok(Line::Complete) if line.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(Line::Complete) => match decode_request(&line) {
                Ok(Request::Events { follow }) => {
                    // Streamed here, from the hub: the core is not involved.
                    if stream_events(&hub, follow, &mut reader, &mut write, &mut closing).await {
                        continue;
                    }
                    return;
                }
                Ok(request @ Request::Logs { .. }) if policy.allows(&peer, &request) => {
                    // Read from the files here: the core is not involved.
                    let streamed =
                        super::logs::stream(&logs, request, &mut reader, &mut write, &mut closing);
                    if streamed.await {
                        continue;
                    }
                    return;
                }
                Ok(request) if policy.allows(&peer, &request) => {
                    match ask_core(&core, client, request, &mut closing).await {
                        Some(reply) => reply,
                        // Not carried out: the client may send it again.
                        None => return,
                    }
                }
                Ok(request) => {
                    let verb = request.verb();
                    warn!(uid = peer.uid, pid = peer.pid, verb, "permission denied");
                    Reply::error(ErrorCode::PermissionDenied, policy.denial(&request))
                }
                Err(body) => Reply::Error(body),
            },
            Ok(Line::TooLong) => {
                let reply = Reply::error(
                    ErrorCode::TooLarge,
                    format!("request longer than {MAX_REQUEST_BYTES} bytes"),
                );
                // The rest of the line cannot be parsed; close after telling why.
                send(&mut write, &reply).await;
                return;
            }
            Ok(Line::Stalled) => {
                info!(
                    uid = peer.uid,
                    pid = peer.pid,
                    "request not completed in time; closing the connection"
                );
                let reply = Reply::error(
                    ErrorCode::BadRequest,
                    format!(
                        "request not completed (no newline) within {STALL_TIMEOUT:?}; \
                         closing the connection"
                    ),
                );
                send(&mut write, &reply).await;
                return;
            }
            Ok(Line::OverBudget) => {
                let reply = Reply::error(
                    ErrorCode::TooBusy,
                    "herdd holds too many incomplete requests; try again later",
                );
                send(&mut write, &reply).await;
                return;
            }
            Ok(Line::End) | Err(_) => return,
        };
        if !send(&mut write, &reply).await {
            return;
        }
    }
}

/// Writes one reply; false when the client has gone, or has not taken it
/// within [`STALL_TIMEOUT`] (it stopped reading: the task must not wait for ever).
async fn send(write: &mut (impl AsyncWrite + Unpin), reply: &Reply) -> bool {
    let line = reply.to_line();
    let written = tokio::time::timeout(STALL_TIMEOUT, write.write_all(line.as_bytes())).await;
    matches!(written, Ok(Ok(())))
}

/// The core's reply; `None` if herdd stopped taking requests (to re-execute
/// or exit) before this one: it will never be carried out, and closing the
/// connection without a reply tells the client so at once.
async fn ask_core(
    core: &mpsc::UnboundedSender<Incoming>,
    client: ClientId,
    request: Request,
    closing: &mut watch::Receiver<bool>,
) -> Option<Reply> {
    let (reply, answer) = oneshot::channel();
    let gone = || Reply::error(ErrorCode::ShuttingDown, "herdd is shutting down");
    let incoming = Incoming::Request {
        client,
        request,
        reply,
    };
    if core.send(incoming).is_err() {
        return Some(gone());
    }
    let mut answer = answer;
    tokio::select! {
        biased;
        reply = &mut answer => Some(reply.unwrap_or_else(|_| gone())),
        // `closing` is set once the core has stopped: a reply is in by now or never.
        _ = closing.wait_for(|closing| *closing) => answer.try_recv().ok(),
    }
}

/// `events`: the remembered events, then (with `follow`) live ones until the
/// client closes or herdd exits; a reader that falls behind is told how many
/// it missed. Returns whether the connection may go on (only without `follow`).
async fn stream_events(
    hub: &EventHub,
    follow: bool,
    reader: &mut (impl AsyncBufRead + Unpin),
    write: &mut (impl AsyncWrite + Unpin),
    closing: &mut watch::Receiver<bool>,
) -> bool {
    let (history, mut live) = hub.subscribe();
    let count = history.len();
    for line in history {
        if !send_event(write, &line).await {
            return false;
        }
    }
    if !follow {
        return send(write, &Reply::ok(serde_json::json!({ "count": count }))).await;
    }
    loop {
        let line: Arc<str> = tokio::select! {
            received = live.recv() => match received {
                Ok(line) => line,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    crate::shell::events::encode(Lifecycle::Lagged { missed }).into()
                }
                Err(broadcast::error::RecvError::Closed) => return false,
            },
            // Whatever the client sends now is ignored; its end ends the stream.
            read = reader.fill_buf() => match read {
                Ok([]) | Err(_) => return false,
                Ok(bytes) => {
                    let n = bytes.len();
                    reader.consume(n);
                    continue;
                }
            },
            _ = closing.wait_for(|closing| *closing) => return false,
        };
        if !send_event(write, &line).await {
            return false;
        }
    }
}

/// One `{"event": ...}` line.
async fn send_event(write: &mut (impl AsyncWrite + Unpin), line: &str) -> bool {
    let framed = format!("{{\"event\":{line}}}\n");
    let written = tokio::time::timeout(STALL_TIMEOUT, write.write_all(framed.as_bytes())).await;
    matches!(written, Ok(Ok(())))
}

enum Line {
    Complete,
    TooLong,
    /// Part of a line came, but not the rest within [`STALL_TIMEOUT`].
    Stalled,
    /// Holding the line so far would exceed [`MAX_PENDING_BYTES`].
    OverBudget,
    End,
}

/// One connection's share of [`MAX_PENDING_BYTES`], given back when it drops.
struct Pending {
    total: Arc<AtomicUsize>,
    mine: usize,
}

impl Pending {
    /// Makes this connection's share `bytes`; false (holding what it held)
    /// when that would take the total over the budget.
    fn hold(&mut self, bytes: usize) -> bool {
        let more = bytes.saturating_sub(self.mine);
        if self.total.fetch_add(more, Ordering::Relaxed) + more > MAX_PENDING_BYTES {
            self.total.fetch_sub(more, Ordering::Relaxed);
            return false;
        }
        self.total
            .fetch_sub(self.mine.saturating_sub(bytes), Ordering::Relaxed);
        self.mine = bytes;
        true
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.total.fetch_sub(self.mine, Ordering::Relaxed);
    }
}

/// Reads up to a newline, never buffering more than [`MAX_REQUEST_BYTES`].
/// Waits for ever for the first byte (idle connections are fine) but at most
/// [`STALL_TIMEOUT`] from there to the newline. A line kept across reads
/// counts against [`MAX_PENDING_BYTES`] until it is complete.
async fn read_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
    pending: &mut Pending,
) -> io::Result<Line> {
    let mut deadline = None;
    loop {
        let available = match deadline {
            None => reader.fill_buf().await?,
            Some(deadline) => match tokio::time::timeout_at(deadline, reader.fill_buf()).await {
                Ok(read) => read?,
                Err(_elapsed) => return Ok(Line::Stalled),
            },
        };
        if available.is_empty() {
            pending.hold(0);
            // A last line without newline still counts (e.g. `printf '...' | socat`).
            return Ok(if line.is_empty() {
                Line::End
            } else {
                Line::Complete
            });
        }
        let (chunk, found) = match available.iter().position(|b| *b == b'\n') {
            Some(end) => (&available[..end], true),
            None => (available, false),
        };
        let taken = chunk.len() + usize::from(found);
        line.extend_from_slice(chunk);
        reader.consume(taken);
        if line.len() >= MAX_REQUEST_BYTES {
            return Ok(Line::TooLong);
        }
        if found {
            pending.hold(0);
            return Ok(Line::Complete);
        }
        if !pending.hold(line.len()) {
            return Ok(Line::OverBudget);
        }
        // Measured from the first byte, so dripping a byte at a time does not
        // extend it.
        deadline.get_or_insert_with(|| tokio::time::Instant::now() + STALL_TIMEOUT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_path_must_be_ours_or_roots_and_not_open_to_all() {
        let ours = 1000;
        let dir = Path::new("/run/herd");
        assert!(check_owner(dir, 0, 0o40755, ours).is_ok());
        assert!(check_owner(dir, ours, 0o40700, ours).is_ok());
        assert!(
            check_owner(dir, 0, 0o41777, ours).is_ok(),
            "sticky, like /tmp"
        );
        let theirs = check_owner(dir, 2000, 0o40755, ours).unwrap_err();
        assert_eq!(
            theirs.to_string(),
            "herdd refuses a socket path it does not own: /run/herd: it is owned by uid 2000"
        );
        let open = check_owner(dir, 0, 0o40777, ours).unwrap_err();
        assert!(open.to_string().contains("writable by everyone"), "{open}");
        assert!(
            check_owner(dir, 2000, 0o40755, 2000).is_ok(),
            "herdd run by 2000"
        );
    }

    fn pending(total: &Arc<AtomicUsize>) -> Pending {
        Pending {
            total: total.clone(),
            mine: 0,
        }
    }

    #[test]
    fn incomplete_requests_share_one_budget() {
        let total = Arc::default();
        let mut a = pending(&total);
        let mut b = pending(&total);
        assert!(a.hold(MAX_PENDING_BYTES - 10));
        assert!(!b.hold(11), "over the budget");
        assert!(b.hold(10));
        assert!(a.hold(5), "shrinking always works");
        assert!(b.hold(100));
        drop(b);
        assert_eq!(total.load(Ordering::Relaxed), 5);
        assert!(a.hold(0));
        assert_eq!(total.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn lines_are_read_whole_bounded_and_charged_only_while_incomplete() {
        let total: Arc<AtomicUsize> = Arc::default();
        let mut charge = pending(&total);
        let (mut client, server) = tokio::io::duplex(MAX_REQUEST_BYTES * 2);
        let mut reader = BufReader::with_capacity(READ_BUFFER, server);
        let mut line = Vec::new();

        client.write_all(b"{\"v\":1}\n{\"v\"").await.unwrap();
        let read = read_line(&mut reader, &mut line, &mut charge)
            .await
            .unwrap();
        assert!(matches!(read, Line::Complete));
        assert_eq!(line, b"{\"v\":1}");
        assert_eq!(total.load(Ordering::Relaxed), 0);

        // Half a line is charged while herdd waits for the rest.
        line.clear();
        let rest = async {
            tokio::task::yield_now().await;
            assert_eq!(total.load(Ordering::Relaxed), 4);
            client.write_all(b":2}\n").await.unwrap();
            client
        };
        let (read, mut client) = tokio::join!(read_line(&mut reader, &mut line, &mut charge), rest);
        assert!(matches!(read.unwrap(), Line::Complete));
        assert_eq!(line, b"{\"v\":2}");
        assert_eq!(total.load(Ordering::Relaxed), 0);

        line.clear();
        client
            .write_all(&vec![b'x'; MAX_REQUEST_BYTES])
            .await
            .unwrap();
        let read = read_line(&mut reader, &mut line, &mut charge)
            .await
            .unwrap();
        assert!(matches!(read, Line::TooLong));
        // The connection closes then, and gives its share back.
        drop(charge);
        assert_eq!(total.load(Ordering::Relaxed), 0);

        // A budget held by others turns an incomplete line away.
        let mut others = pending(&total);
        assert!(others.hold(MAX_PENDING_BYTES));
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = BufReader::with_capacity(READ_BUFFER, server);
        let mut charge = pending(&total);
        line.clear();
        client.write_all(b"{\"v\"").await.unwrap();
        let read = read_line(&mut reader, &mut line, &mut charge)
            .await
            .unwrap();
        assert!(matches!(read, Line::OverBudget));
        drop(client);
    }
}
