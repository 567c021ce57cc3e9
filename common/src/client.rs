//! A blocking client for the control socket, used by herdctl and the tests.
//!
//! # Across `daemon-reexec`
//! herdd re-executes in place: same pid, same socket path, same state. It
//! answers every request it has carried out before it execs, answers the
//! requests that were waiting (`join`, `event wait`, ...) with the error
//! `reconnect`, and closes every connection; the new image binds the socket
//! again. So a request left without a reply was not carried out, and a
//! `reconnect` means "wait again". [`Client::call`] and the streaming calls
//! do both by themselves: they connect again (waiting while the old pid is
//! alive and the socket refuses), check through the socket's peer
//! credentials that the same herdd (pid) answers, and send the request again
//! ([`Request::resumed`]). A herdd with another pid (it crashed and was
//! started again) is not the one that was asked: the loss is reported.
//!
//! # Patience
//! Connecting and each answer are given the client's patience (default
//! [`DEFAULT_PATIENCE`]); a request that waits by design ([`Answer`]) gets
//! its own timeout plus the patience, or no limit. Past that the call fails
//! with [`ClientError::NoAnswer`] (herdctl exits 6): a stopped or wedged
//! herdd does not hang its clients for ever.

use crate::protocol::{encode_request, Answer, ErrorBody, ErrorCode, Reply, Request};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a client waits to connect, and for an answer that is due at
/// once, unless told otherwise.
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(30);

/// How often a refused connection is tried again while herdd re-executes.
const RETRY_EVERY: Duration = Duration::from_millis(10);

/// How long the socket may be missing before herdd is taken to have gone:
/// at exit herdd removes it, while a re-executed image removes and binds
/// it again within microseconds.
const MISSING_FOR: Duration = Duration::from_millis(200);

/// Why a call did not produce an `ok` payload.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon answers on the socket (missing file, refused, permission).
    #[error("cannot reach herdd at {}: {source}", path.display())]
    Unreachable { path: PathBuf, source: io::Error },
    /// The daemon answered with an error reply.
    #[error("{0}")]
    Remote(ErrorBody),
    /// The connection broke or the daemon sent something that is not a reply.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// herdd took no connection, or gave no answer, within the client's
    /// patience (it is stopped, wedged, or overloaded).
    #[error("herdd did not answer within {} (socket {})", seconds(*after), path.display())]
    NoAnswer { path: PathBuf, after: Duration },
}

/// `1s`, `1.5s`, `250ms`.
fn seconds(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else if duration < Duration::from_secs(1) {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

/// One line of a streamed reply (`events`, `logs`).
#[derive(Debug, Clone, PartialEq)]
pub enum Streamed {
    /// `{"KEY": value}`: one item (`event`, `log`, `missed`, ...).
    Item { key: String, value: Value },
    /// `{"ok": payload}`: everything asked for has been sent.
    End(Value),
    /// herdd re-executed: the request went again to the new image, whose
    /// stream starts over (a follower may see remembered items again).
    Resumed,
}

/// One connection to herdd. Requests are answered in order.
pub struct Client {
    path: PathBuf,
    patience: Duration,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// herdd's pid, from the socket's peer credentials; `None` if the
    /// kernel does not tell (another pid namespace).
    herdd: Option<u32>,
    /// The streaming request in progress, to send again after a re-exec.
    streaming: Option<Request>,
    /// The read timeout set on the socket; `None` until one is set.
    read_timeout: Option<Option<Duration>>,
}

impl Client {
    /// Connects with [`DEFAULT_PATIENCE`].
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        Client::connect_with(path, DEFAULT_PATIENCE)
    }

    /// Connects, giving herdd `patience` to take the connection and, later,
    /// to answer each request.
    pub fn connect_with(path: &Path, patience: Duration) -> Result<Client, ClientError> {
        let stream = open(path, patience)?;
        let herdd = peer_pid(&stream);
        let writer = stream
            .try_clone()
            .map_err(|err| ClientError::Protocol(err.to_string()))?;
        Ok(Client {
            path: path.to_path_buf(),
            patience,
            reader: BufReader::with_capacity(64 * 1024, stream),
            writer,
            herdd,
            streaming: None,
            read_timeout: None,
        })
    }

    /// Sends `request` and returns the `ok` payload of its reply; across a
    /// `daemon-reexec`, sends it again to the new image (module doc).
    pub fn call(&mut self, request: &Request) -> Result<Value, ClientError> {
        self.call_as(request)
    }

    /// As [`Client::call`], with the payload decoded as `T` straight from
    /// the reply line (no JSON value in between: a `status` of hundreds of
    /// instances is tens of kilobytes). A payload that is not a `T` is a
    /// protocol error.
    pub fn call_as<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T, ClientError> {
        let started = Instant::now();
        let mut current = request.clone();
        loop {
            match self.exchange(&current)? {
                Some(ReplyOf::Ok(payload)) => return Ok(payload),
                Some(ReplyOf::Error(body)) if body.code == ErrorCode::Reconnect => {
                    self.reconnect(ClientError::Remote(body))?;
                    current = request.resumed(started.elapsed());
                }
                Some(ReplyOf::Error(body)) => return Err(ClientError::Remote(body)),
                // Not carried out (herdd answers what it did before it
                // re-executes): the same request goes to the new image.
                None => self.reconnect(ClientError::Protocol(
                    "herdd closed the connection without replying".into(),
                ))?,
            }
        }
    }

    /// Sends `request` and reads its reply; `None` if the connection was
    /// lost first.
    fn exchange<T: DeserializeOwned>(
        &mut self,
        request: &Request,
    ) -> Result<Option<ReplyOf<T>>, ClientError> {
        if let Err(err) = self.writer.write_all(encode_request(request).as_bytes()) {
            return if is_loss(&err) {
                Ok(None)
            } else {
                Err(ClientError::Protocol(format!("cannot send request: {err}")))
            };
        }
        self.read_reply(request.answer())
    }

    /// Sends one request without reading the reply (for streaming verbs).
    pub fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        self.writer
            .write_all(encode_request(request).as_bytes())
            .map_err(|err| ClientError::Protocol(format!("cannot send request: {err}")))
    }

    /// Reads the next reply line, without any timeout or reconnecting;
    /// `None` when the daemon closed the connection.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ClientError> {
        self.set_timeout(None)?;
        match self.read_line()? {
            None => Ok(None),
            Some(line) => parse_reply(&line).map(Some),
        }
    }

    /// Reads a reply that is due as `answer` says; `None` if the connection
    /// was lost first.
    fn read_reply<T: DeserializeOwned>(
        &mut self,
        answer: Answer,
    ) -> Result<Option<ReplyOf<T>>, ClientError> {
        let limit = match answer {
            // Zero patience: no limit at all.
            _ if self.patience.is_zero() => None,
            Answer::Prompt => Some(self.patience),
            Answer::Within(ms) => Some(Duration::from_millis(ms).saturating_add(self.patience)),
            Answer::Unbounded => None,
        };
        self.set_timeout(limit)?;
        match self.read_line() {
            Ok(Some(line)) => parse_reply_of(&line).map(Some),
            Ok(None) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Sends a streaming request (`events`, `logs`); its lines come from
    /// [`Client::next_streamed`].
    pub fn open_stream(&mut self, request: &Request) -> Result<(), ClientError> {
        self.streaming = Some(request.clone());
        match self.writer.write_all(encode_request(request).as_bytes()) {
            Ok(()) => Ok(()),
            Err(err) if is_loss(&err) => {
                self.reconnect(ClientError::Protocol(format!("cannot send request: {err}")))?;
                self.send(request)
            }
            Err(err) => Err(ClientError::Protocol(format!("cannot send request: {err}"))),
        }
    }

    /// The next line of the stream opened by [`Client::open_stream`]; `None`
    /// when herdd closed it and is gone (it shut down). An `{"error": ...}`
    /// line is returned as [`ClientError::Remote`].
    pub fn next_streamed(&mut self) -> Result<Option<Streamed>, ClientError> {
        let request = self
            .streaming
            .clone()
            .ok_or_else(|| ClientError::Protocol("no stream was opened".into()))?;
        self.set_timeout(match request.answer() {
            Answer::Unbounded => None,
            Answer::Prompt | Answer::Within(_) => Some(self.patience),
        })?;
        let Some(line) = self.read_line()? else {
            return self.resume_stream(&request);
        };
        parse_streamed(&line).map(Some)
    }

    /// After herdd closed the stream: sends `request` again to the same
    /// herdd, re-executed; `None` when that herdd is gone. A herdd that is
    /// shutting down may still take a connection and close it at once: the
    /// send then fails and herdd is asked again, until it is gone.
    fn resume_stream(&mut self, request: &Request) -> Result<Option<Streamed>, ClientError> {
        loop {
            let closed = ClientError::Protocol("herdd closed the stream".into());
            match self.reconnect(closed) {
                Ok(()) => match self.writer.write_all(encode_request(request).as_bytes()) {
                    Ok(()) => return Ok(Some(Streamed::Resumed)),
                    Err(err) if is_loss(&err) => std::thread::sleep(RETRY_EVERY),
                    Err(err) => {
                        return Err(ClientError::Protocol(format!("cannot send request: {err}")))
                    }
                },
                Err(ClientError::NoAnswer { path, after }) => {
                    return Err(ClientError::NoAnswer { path, after })
                }
                Err(_) => return Ok(None),
            }
        }
    }

    /// Whether more of the stream has been read and not yet returned, so
    /// that the next [`Client::next_streamed`] will not block.
    pub fn has_buffered(&self) -> bool {
        !self.reader.buffer().is_empty()
    }

    /// Sets the read timeout (`None` or zero: none), unless it is set already.
    fn set_timeout(&mut self, limit: Option<Duration>) -> Result<(), ClientError> {
        let limit = limit.filter(|limit| !limit.is_zero());
        if self.read_timeout == Some(limit) {
            return Ok(());
        }
        self.reader
            .get_ref()
            .set_read_timeout(limit)
            .map_err(|err| ClientError::Protocol(format!("cannot set a read timeout: {err}")))?;
        self.read_timeout = Some(limit);
        Ok(())
    }

    /// One line; `None` at the end of the connection (or when herdd reset it).
    fn read_line(&mut self) -> Result<Option<String>, ClientError> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(line)),
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let after = self
                    .reader
                    .get_ref()
                    .read_timeout()
                    .ok()
                    .flatten()
                    .unwrap_or(self.patience);
                Err(ClientError::NoAnswer {
                    path: self.path.clone(),
                    after,
                })
            }
            Err(err) if err.kind() == io::ErrorKind::ConnectionReset => Ok(None),
            Err(err) => Err(ClientError::Protocol(format!("cannot read reply: {err}"))),
        }
    }

    /// After the connection was lost (or herdd said `reconnect`): connects
    /// again to the same herdd, waiting while its pid lives and the socket
    /// refuses (it is re-executing). Returns `lost` when that herdd is gone.
    fn reconnect(&mut self, lost: ClientError) -> Result<(), ClientError> {
        let deadline = Instant::now() + self.patience;
        let mut missing_since: Option<Instant> = None;
        loop {
            match open(&self.path, self.patience) {
                Ok(stream) => {
                    if peer_pid(&stream) != self.herdd {
                        // Another herdd: the one that was asked has gone.
                        return Err(lost);
                    }
                    let writer = stream
                        .try_clone()
                        .map_err(|err| ClientError::Protocol(err.to_string()))?;
                    self.reader = BufReader::with_capacity(64 * 1024, stream);
                    self.writer = writer;
                    self.read_timeout = None;
                    return Ok(());
                }
                Err(_) if self.herdd.is_some_and(|pid| !alive(pid)) => return Err(lost),
                Err(ClientError::Unreachable { source, .. })
                    if source.kind() == io::ErrorKind::NotFound
                        && missing_since.get_or_insert_with(Instant::now).elapsed()
                            >= MISSING_FOR =>
                {
                    return Err(lost)
                }
                Err(_) if !self.patience.is_zero() && Instant::now() >= deadline => {
                    return Err(ClientError::NoAnswer {
                        path: self.path.clone(),
                        after: self.patience,
                    })
                }
                Err(_) => std::thread::sleep(RETRY_EVERY),
            }
        }
    }
}

/// Whether a write failed because herdd closed the connection.
fn is_loss(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
    )
}

/// Connects within `patience` (zero: no limit). A Unix socket whose backlog
/// is full (herdd stopped, say) would block `connect` for ever; non-blocking,
/// it says `EAGAIN` and is tried again until the deadline.
fn open(path: &Path, patience: Duration) -> Result<UnixStream, ClientError> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let unreachable = |source: io::Error| ClientError::Unreachable {
        path: path.to_path_buf(),
        source,
    };
    let address = UnixAddr::new(path).map_err(|errno| unreachable(errno.into()))?;
    let deadline = Instant::now() + patience;
    loop {
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(|errno| unreachable(errno.into()))?;
        use std::os::fd::AsRawFd;
        match connect(fd.as_raw_fd(), &address) {
            Ok(()) => {
                let stream = UnixStream::from(fd);
                stream.set_nonblocking(false).map_err(unreachable)?;
                return Ok(stream);
            }
            Err(nix::errno::Errno::EAGAIN) if patience.is_zero() || Instant::now() < deadline => {
                std::thread::sleep(RETRY_EVERY);
            }
            Err(nix::errno::Errno::EAGAIN) => {
                return Err(ClientError::NoAnswer {
                    path: path.to_path_buf(),
                    after: patience,
                })
            }
            Err(errno) => return Err(unreachable(errno.into())),
        }
    }
}

/// The pid of the process that listens on the other end: herdd's, the same
/// across a re-exec.
fn peer_pid(stream: &UnixStream) -> Option<u32> {
    let credentials =
        nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials).ok()?;
    u32::try_from(credentials.pid()).ok().filter(|pid| *pid > 0)
}

/// Whether `pid` still runs (a zombie does not: herdd has exited).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(err) if err.kind() == io::ErrorKind::NotFound => false,
        // No /proc: ask the kernel (EPERM means it exists).
        Err(_) => {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
            !matches!(
                nix::sys::signal::kill(pid, None),
                Err(nix::errno::Errno::ESRCH)
            )
        }
    }
}

/// A reply line whose `ok` payload is expected to be a `T`.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum ReplyOf<T> {
    Ok(T),
    Error(ErrorBody),
}

/// A reply line, its payload decoded as `T`; a line that is a reply but
/// whose payload is not a `T` is told apart from one that is no reply.
fn parse_reply_of<T: DeserializeOwned>(line: &str) -> Result<ReplyOf<T>, ClientError> {
    serde_json::from_str(line).map_err(|err| match parse_reply(line) {
        Ok(_) => ClientError::Protocol(format!("unexpected reply from herdd: {err}")),
        Err(not_a_reply) => not_a_reply,
    })
}

fn parse_reply(line: &str) -> Result<Reply, ClientError> {
    serde_json::from_str(line)
        .map_err(|err| ClientError::Protocol(format!("bad reply {line:?}: {err}")))
}

/// `{"ok": ...}`, `{"error": ...}`, or a one-key item line.
fn parse_streamed(line: &str) -> Result<Streamed, ClientError> {
    let bad = || ClientError::Protocol(format!("bad stream line: {:?}", line.trim_end()));
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(line) else {
        return Err(bad());
    };
    if object.contains_key("ok") || object.contains_key("error") {
        return match parse_reply(line)? {
            Reply::Ok(payload) => Ok(Streamed::End(payload)),
            Reply::Error(body) => Err(ClientError::Remote(body)),
        };
    }
    let mut fields = object.into_iter();
    match (fields.next(), fields.next()) {
        (Some((key, value)), None) => Ok(Streamed::Item { key, value }),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reply_lines_decode_straight_into_their_payload_type() {
        #[derive(Debug, PartialEq, Deserialize)]
        struct Count {
            count: u32,
        }
        assert!(matches!(
            parse_reply_of::<Count>("{\"ok\":{\"count\":3}}\n"),
            Ok(ReplyOf::Ok(Count { count: 3 }))
        ));
        assert!(matches!(
            parse_reply_of::<Count>(r#"{"error":{"code":"permission_denied","message":"no"}}"#),
            Ok(ReplyOf::Error(body)) if body.message == "no"
        ));
        // A reply, but not with a payload of this shape.
        assert!(matches!(
            parse_reply_of::<Count>("{\"ok\":{\"count\":\"three\"}}"),
            Err(ClientError::Protocol(message)) if message.starts_with("unexpected reply from herdd")
        ));
        // No reply at all.
        assert!(matches!(
            parse_reply_of::<Count>("garbage"),
            Err(ClientError::Protocol(message)) if message.starts_with("bad reply")
        ));
        // Any payload as a JSON value, as `call` has it.
        assert!(matches!(
            parse_reply_of::<Value>("{\"ok\":[1]}"),
            Ok(ReplyOf::Ok(Value::Array(_)))
        ));
    }

    #[test]
    fn stream_lines() {
        assert_eq!(
            parse_streamed("{\"event\":{\"type\":\"ready\"}}\n").unwrap(),
            Streamed::Item {
                key: "event".into(),
                value: json!({"type": "ready"})
            }
        );
        assert_eq!(
            parse_streamed("{\"ok\":{\"count\":3}}").unwrap(),
            Streamed::End(json!({"count": 3}))
        );
        assert!(matches!(
            parse_streamed(r#"{"error":{"code":"permission_denied","message":"no"}}"#),
            Err(ClientError::Remote(body)) if body.message == "no"
        ));
        for bad in ["garbage", "[1]", "{}", "{\"a\":1,\"b\":2}"] {
            assert!(
                matches!(parse_streamed(bad), Err(ClientError::Protocol(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn durations_read_as_typed() {
        assert_eq!(seconds(Duration::from_secs(1)), "1s");
        assert_eq!(seconds(Duration::from_millis(250)), "250ms");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn a_stopped_socket_is_no_answer_and_named() {
        let dir = std::env::temp_dir().join(format!("herd-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        // A listener that never accepts nor answers: connecting works (backlog),
        // the answer never comes.
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let mut client = Client::connect_with(&path, Duration::from_millis(100)).unwrap();
        let err = client.call(&Request::SemList).unwrap_err();
        assert!(
            matches!(&err, ClientError::NoAnswer { after, .. } if *after == Duration::from_millis(100)),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "herdd did not answer within 100ms (socket {})",
                path.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn zero_patience_is_no_limit_not_an_error() {
        let dir = std::env::temp_dir().join(format!("herd-client-0-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // Answers after longer than the socket's default would matter: 300 ms.
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            (&stream).write_all(b"{\"ok\":{}}\n").unwrap();
        });
        let mut client = Client::connect_with(&path, Duration::ZERO).unwrap();
        assert_eq!(client.call(&Request::SemList).unwrap(), json!({}));
        server.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn our_own_process_is_alive_and_nonsense_is_not() {
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX - 1));
    }
}
