//! One control-socket connection (docs/protocol.md): it reads a line,
//! decodes it, checks the peer may send it (auth.rs), hands it to the core
//! and writes the reply, one request at a time. A slow, silent or malicious
//! client only ever blocks its own task, never the supervisor, and what it
//! can hold is bounded: at most [`MAX_REQUEST_BYTES`] buffered (and all of
//! them together at most [`MAX_PENDING_BYTES`]), for at most
//! [`STALL_TIMEOUT`], on one of a limited number of connections
//! (admission.rs); a connection that never speaks is closed after its idle
//! timeout.

use super::auth::{Peer, Policy};
use super::denials::Denials;
use super::framing::{self, STALL_TIMEOUT};
use super::listener::Closing;
use crate::shell::clients::{ClientId, Incoming, RequestSender};
use crate::shell::events::{EventHub, Next};
use crate::shell::logs::LogHub;
use crate::shell::usage;
use herd_common::protocol::{decode_request, ErrorCode, Reply, Request, MAX_REQUEST_BYTES};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{oneshot, watch};
use tracing::info;

/// Bytes of incomplete requests all connections together may hold. Without
/// it, 4096 clients each sending 64 KiB and no newline would make herdd hold
/// 256 MiB for [`STALL_TIMEOUT`], and the allocator keep much of it after.
/// A request that does not fit gets `too_busy`.
pub const MAX_PENDING_BYTES: usize = 16 * 1024 * 1024;

/// Per-connection read buffer: any ordinary request fits in one read. It is
/// held only while it holds unread bytes (see `framing::LeanReader`), so
/// connections waiting for a reply or for their next request cost none.
const READ_BUFFER: usize = 2048;

/// Buffered `events` lines are written once this many bytes are ready.
const EVENTS_FLUSH_AT: usize = 16 * 1024;

/// What every connection shares.
pub struct Shared {
    pub policy: Arc<Policy>,
    pub core: RequestSender,
    pub hub: Arc<EventHub>,
    /// Log files, for `logs` (read by the connection, never by the core).
    pub logs: Arc<LogHub>,
    pub denials: Arc<Denials>,
    /// Bytes of incomplete requests held by all connections (see `Pending`).
    pub pending: Arc<AtomicUsize>,
    /// How long a connection may stay silent before its first request.
    pub idle_timeout: Duration,
}

/// One accepted connection, before it is served.
pub struct Connection {
    pub client: ClientId,
    pub peer: Peer,
    pub stream: UnixStream,
}

/// Whether the connection goes on after a request.
enum Flow {
    Continue,
    Close,
}

/// What reading and handling one request led to.
enum Handled {
    /// Answered here, or nothing to answer.
    Done(Flow),
    /// Handed to the core, whose reply comes on `answer`; `costs`: the
    /// reply gets usage figures before it is written.
    Asked {
        answer: oneshot::Receiver<Reply>,
        costs: bool,
    },
}

/// The connection task's state.
struct Session {
    client: ClientId,
    peer: Peer,
    shared: Arc<Shared>,
    reader: framing::LeanReader<tokio::net::unix::OwnedReadHalf>,
    write: OwnedWriteHalf,
    closing: watch::Receiver<Closing>,
    pending: Pending,
    /// A complete request has arrived: from now on, idle is fine.
    spoke: bool,
}

/// Sends [`Incoming::Gone`] when the connection ends, on every path
/// (what the client held is released).
impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.shared.core.send(Incoming::Gone {
            client: self.client,
        });
    }
}

/// Serves one connection until the client closes it, misbehaves, or herdd
/// exits or re-executes (`closing`; a request in progress is still
/// answered). Ends with the peer's uid (for admission.rs).
///
/// Thousands of connections may wait at once (an `event wait` each), so
/// what a waiting connection holds is kept small: the future returned here
/// is the connection's task, spawned as it is (a wrapping `async` block
/// would hold it twice), and only waiting for the core's answer happens in
/// it directly. Reading a request, handling it and writing the reply run in
/// futures boxed for the time they take.
pub fn serve(
    connection: Connection,
    shared: Arc<Shared>,
    closing: watch::Receiver<Closing>,
) -> impl std::future::Future<Output = u32> + Send {
    let Connection {
        client,
        peer,
        stream,
    } = connection;
    let (read, write) = stream.into_split();
    let session = Session {
        client,
        peer,
        pending: Pending {
            total: shared.pending.clone(),
            mine: 0,
        },
        shared,
        reader: framing::LeanReader::new(READ_BUFFER, read),
        write,
        closing,
        spoke: false,
    };
    session.run()
}

impl Session {
    async fn run(mut self) -> u32 {
        let _counted = super::metrics::Counted::default();
        loop {
            let (answer, costs) = match Box::pin(self.next()).await {
                Handled::Done(Flow::Continue) => continue,
                Handled::Done(Flow::Close) => break,
                Handled::Asked { answer, costs } => (answer, costs),
            };
            // Where a connection may stay for long (`join`, `event wait`).
            let Some(reply) = self.answer_of(answer).await else {
                break;
            };
            if let Flow::Close = Box::pin(self.deliver(reply, costs)).await {
                break;
            }
        }
        self.peer.uid
    }

    /// Reads the next request and handles it, up to handing it to the
    /// core. The line read is let go of then: a waiting connection holds
    /// no copy of its request.
    async fn next(&mut self) -> Handled {
        let mut line = Vec::new();
        let Some(read) = self.read(&mut line).await else {
            return Handled::Done(Flow::Close);
        };
        self.answer(read, &line).await
    }

    /// The next line; `None` when herdd is closing the connection.
    async fn read(&mut self, line: &mut Vec<u8>) -> Option<io::Result<Line>> {
        let idle = (!self.spoke).then_some(self.shared.idle_timeout);
        tokio::select! {
            read = read_line(&mut self.reader, line, &mut self.pending, idle) => Some(read),
            _ = self.closing.wait_for(|closing| *closing != Closing::Open) => None,
        }
    }

    /// Answers what was read, or hands it to the core.
    async fn answer(&mut self, read: io::Result<Line>, line: &[u8]) -> Handled {
        match read {
            Ok(Line::Complete) if line.iter().all(u8::is_ascii_whitespace) => {
                Handled::Done(Flow::Continue)
            }
            Ok(Line::Complete) => {
                self.spoke = true;
                match decode_request(line) {
                    Ok(request) => self.request(request).await,
                    Err(body) => Handled::Done(self.reply(&Reply::Error(body)).await),
                }
            }
            Ok(Line::Cut(cut)) => {
                // The rest cannot be parsed, or waited for: close after telling why.
                let reply = self.why_cut(cut);
                framing::send(&mut self.write, &reply).await;
                Handled::Done(Flow::Close)
            }
            Ok(Line::End) | Err(_) => Handled::Done(Flow::Close),
        }
    }

    /// What a client whose connection is cut is told.
    fn why_cut(&self, cut: Cut) -> Reply {
        match cut {
            Cut::TooLong => framing::too_large(),
            Cut::Stalled => {
                info!(
                    uid = self.peer.uid,
                    pid = self.peer.pid,
                    "request not completed in time; closing the connection"
                );
                Reply::error(
                    ErrorCode::BadRequest,
                    format!(
                        "request not completed (no newline) within {STALL_TIMEOUT:?}; \
                         closing the connection"
                    ),
                )
            }
            Cut::Idle => Reply::error(
                ErrorCode::BadRequest,
                format!(
                    "no request within {:?} of connecting; closing the connection",
                    self.shared.idle_timeout
                ),
            ),
            Cut::OverBudget => Reply::error(
                ErrorCode::TooBusy,
                "herdd holds too many incomplete requests; try again later",
            ),
        }
    }

    async fn reply(&mut self, reply: &Reply) -> Flow {
        if framing::send(&mut self.write, reply).await {
            Flow::Continue
        } else {
            Flow::Close
        }
    }

    /// A decoded request: streamed here (`events`, `logs`), or the core's.
    async fn request(&mut self, request: Request) -> Handled {
        let policy = &self.shared.policy;
        if !policy.allows(&self.peer, &request) {
            let verb = request.verb();
            let denials = &self.shared.denials;
            denials.record(self.peer.uid, self.peer.pid, &verb, "socket");
            let reply = Reply::error(ErrorCode::PermissionDenied, policy.denial(&request));
            return Handled::Done(self.reply(&reply).await);
        }
        let flow = match request {
            // Streamed from the hub: the core is not involved. (The rare,
            // large futures are boxed, so that an ordinary request does not
            // carry their size.)
            Request::Events { follow } => Box::pin(self.stream_events(follow)).await,
            // Read from the files: the core is not involved.
            request @ Request::Logs { .. } => {
                let shared = self.shared.clone();
                let streamed = Box::pin(super::logs::stream(
                    &shared.logs,
                    request,
                    &mut self.reader,
                    &mut self.write,
                    &mut self.closing,
                ));
                if streamed.await {
                    Flow::Continue
                } else {
                    Flow::Close
                }
            }
            // Gathered from several core replies and /proc: see metrics.rs.
            Request::Metrics => {
                let gathered = Box::pin(super::metrics::gather(&self.shared.core, self.client));
                let reply = match gathered.await {
                    Ok(text) => Reply::ok(herd_common::protocol::MetricsReport { text }),
                    Err(reply) => reply,
                };
                self.reply(&reply).await
            }
            request => {
                let request = crate::core::semaphore::vouch_pid(request, self.peer.pid);
                let costs = usage::costs(&request);
                match self.ask_core(request) {
                    Some(answer) => return Handled::Asked { answer, costs },
                    None => self.reply(&framing::shutting_down()).await,
                }
            }
        };
        Handled::Done(flow)
    }

    /// Hands `request` to the core: its answer comes on the receiver
    /// returned; `None` when the core has stopped taking requests.
    fn ask_core(&mut self, request: Request) -> Option<oneshot::Receiver<Reply>> {
        let (reply, answer) = oneshot::channel();
        let incoming = Incoming::Request {
            client: self.client,
            request,
            reply,
        };
        self.shared.core.send(incoming).ok().map(|()| answer)
    }

    /// The core's answer; `None` when herdd re-executes before answering:
    /// a request it did not answer was never carried out, and the client
    /// may send it again.
    async fn answer_of(&mut self, mut answer: oneshot::Receiver<Reply>) -> Option<Reply> {
        tokio::select! {
            // An answer given before herdd closes is always delivered.
            biased;
            answer = &mut answer => Some(answer.unwrap_or_else(|_| framing::shutting_down())),
            closing = self.closing.wait_for(|closing| *closing != Closing::Open) => {
                match closing.map(|closing| *closing) {
                    Ok(Closing::Reexec) => None,
                    _ => Some(framing::shutting_down()),
                }
            }
        }
    }

    /// Writes the core's reply (with usage figures when it `costs`).
    async fn deliver(&mut self, reply: Reply, costs: bool) -> Flow {
        if costs {
            let line = Box::pin(usage::line_with_usage(reply)).await;
            return if framing::write(&mut self.write, line.as_bytes()).await {
                Flow::Continue
            } else {
                Flow::Close
            };
        }
        self.reply(&reply).await
    }

    /// `events`: the remembered events, then (with `follow`) live ones until
    /// the client closes or herdd exits; a reader that falls behind is told
    /// how many it missed. The connection goes on only without `follow`.
    async fn stream_events(&mut self, follow: bool) -> Flow {
        let (history, mut live) = self.shared.hub.subscribe();
        let count = history.len();
        let mut out = Vec::with_capacity(EVENTS_FLUSH_AT * 2);
        for event in &history {
            framing::encode_event(&mut out, event);
            if out.len() >= EVENTS_FLUSH_AT && !self.flush(&mut out).await {
                return Flow::Close;
            }
        }
        if !self.flush(&mut out).await {
            return Flow::Close;
        }
        if !follow {
            return self
                .reply(&Reply::ok(serde_json::json!({ "count": count })))
                .await;
        }
        loop {
            let event = tokio::select! {
                next = live.next() => match next {
                    Next::Event(event) | Next::Lagged(event) => event,
                    Next::Closed => return Flow::Close,
                },
                // Whatever the client sends now is ignored; its end ends the stream.
                read = self.reader.fill_buf() => match read {
                    Ok([]) | Err(_) => return Flow::Close,
                    Ok(bytes) => {
                        let n = bytes.len();
                        self.reader.consume(n);
                        continue;
                    }
                },
                _ = self.closing.wait_for(|closing| *closing != Closing::Open) => {
                    return Flow::Close
                }
            };
            framing::encode_event(&mut out, &event);
            if !self.flush(&mut out).await {
                return Flow::Close;
            }
        }
    }

    async fn flush(&mut self, out: &mut Vec<u8>) -> bool {
        if out.is_empty() {
            return true;
        }
        let written = framing::write(&mut self.write, out).await;
        out.clear();
        written
    }
}

enum Line {
    Complete,
    /// The client closed its end.
    End,
    /// The connection is cut, for this reason.
    Cut(Cut),
}

enum Cut {
    TooLong,
    /// Part of a line came, but not the rest within [`STALL_TIMEOUT`].
    Stalled,
    /// Nothing at all came within the idle timeout of a connection that
    /// has not spoken yet.
    Idle,
    /// Holding the line so far would exceed [`MAX_PENDING_BYTES`].
    OverBudget,
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
/// Waits at most `idle` (or for ever) for the first byte, and at most
/// [`STALL_TIMEOUT`] from there to the newline. A line kept across reads
/// counts against [`MAX_PENDING_BYTES`] until it is complete.
async fn read_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
    pending: &mut Pending,
    idle: Option<Duration>,
) -> io::Result<Line> {
    let mut deadline = idle.map(|idle| tokio::time::Instant::now() + idle);
    loop {
        let available = match deadline {
            None => reader.fill_buf().await?,
            Some(deadline) => match tokio::time::timeout_at(deadline, reader.fill_buf()).await {
                Ok(read) => read?,
                Err(_elapsed) if line.is_empty() => return Ok(Line::Cut(Cut::Idle)),
                Err(_elapsed) => return Ok(Line::Cut(Cut::Stalled)),
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
        let first = line.is_empty();
        let (chunk, found) = match available.iter().position(|b| *b == b'\n') {
            Some(end) => (&available[..end], true),
            None => (available, false),
        };
        let taken = chunk.len() + usize::from(found);
        line.extend_from_slice(chunk);
        reader.consume(taken);
        if line.len() >= MAX_REQUEST_BYTES {
            return Ok(Line::Cut(Cut::TooLong));
        }
        if found {
            pending.hold(0);
            return Ok(Line::Complete);
        }
        if !pending.hold(line.len()) {
            return Ok(Line::Cut(Cut::OverBudget));
        }
        // Measured from the first byte, so dripping a byte at a time does
        // not extend it.
        if first && !line.is_empty() {
            deadline = Some(tokio::time::Instant::now() + STALL_TIMEOUT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::auth::Policy;
    use tokio::io::AsyncWriteExt;

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
    async fn a_connection_that_never_speaks_times_out_but_one_that_spoke_may_idle() {
        let total: Arc<AtomicUsize> = Arc::default();
        let mut charge = pending(&total);
        let (_client, server) = tokio::io::duplex(64);
        let mut reader = framing::LeanReader::new(READ_BUFFER, server);
        let mut line = Vec::new();
        let idle = Duration::from_millis(20);
        let read = read_line(&mut reader, &mut line, &mut charge, Some(idle));
        assert!(matches!(read.await.unwrap(), Line::Cut(Cut::Idle)));
        let forever = read_line(&mut reader, &mut line, &mut charge, None);
        let waited = tokio::time::timeout(Duration::from_millis(200), forever).await;
        assert!(
            waited.is_err(),
            "a connection that spoke is never cut off idle"
        );
    }

    #[tokio::test]
    async fn lines_are_read_whole_bounded_and_charged_only_while_incomplete() {
        let total: Arc<AtomicUsize> = Arc::default();
        let mut charge = pending(&total);
        let (mut client, server) = tokio::io::duplex(MAX_REQUEST_BYTES * 2);
        let mut reader = framing::LeanReader::new(READ_BUFFER, server);
        let mut line = Vec::new();

        client.write_all(b"{\"v\":1}\n{\"v\"").await.unwrap();
        let read = read_line(&mut reader, &mut line, &mut charge, None)
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
        let (read, mut client) =
            tokio::join!(read_line(&mut reader, &mut line, &mut charge, None), rest);
        assert!(matches!(read.unwrap(), Line::Complete));
        assert_eq!(line, b"{\"v\":2}");
        assert_eq!(total.load(Ordering::Relaxed), 0);

        line.clear();
        client
            .write_all(&vec![b'x'; MAX_REQUEST_BYTES])
            .await
            .unwrap();
        let read = read_line(&mut reader, &mut line, &mut charge, None)
            .await
            .unwrap();
        assert!(matches!(read, Line::Cut(Cut::TooLong)));
        // The connection closes then, and gives its share back.
        drop(charge);
        assert_eq!(total.load(Ordering::Relaxed), 0);

        // A budget held by others turns an incomplete line away.
        let mut others = pending(&total);
        assert!(others.hold(MAX_PENDING_BYTES));
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = framing::LeanReader::new(READ_BUFFER, server);
        let mut charge = pending(&total);
        line.clear();
        client.write_all(b"{\"v\"").await.unwrap();
        let read = read_line(&mut reader, &mut line, &mut charge, None)
            .await
            .unwrap();
        assert!(matches!(read, Line::Cut(Cut::OverBudget)));
        drop(client);
    }

    /// Thousands of connections may wait at once (an `event wait` each),
    /// each holding its task: this future. It was 3 kB (twice over, inside
    /// a wrapping `async` block) before reading and replying were boxed;
    /// what it holds while waiting is now its session and the wait. (Debug
    /// builds lay futures out less tightly than release builds.)
    #[tokio::test]
    async fn a_connection_future_stays_small() {
        let config = herd_config::parse(
            std::path::Path::new("herd.toml"),
            "[herd]\nsocket = \"/nonexistent/herd.sock\"\n",
        )
        .unwrap();
        let (inputs, _) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            policy: Arc::new(Policy {
                own_uid: 0,
                control_group: None,
            }),
            core: crate::shell::clients::channel().0,
            hub: EventHub::new(),
            logs: LogHub::new(&config, inputs),
            denials: Denials::new(),
            pending: Arc::default(),
            idle_timeout: Duration::from_secs(1),
        });
        let (stream, _client) = UnixStream::pair().unwrap();
        let peer = Peer {
            uid: 0,
            gid: 0,
            groups: vec![],
            pid: None,
        };
        let connection = Connection {
            client: 1,
            peer,
            stream,
        };
        let closing = watch::channel(Closing::Open).1;
        let served = serve(connection, shared, closing);
        let size = std::mem::size_of_val(&served);
        assert!(size <= 640, "the connection future is {size} bytes");
    }
}
