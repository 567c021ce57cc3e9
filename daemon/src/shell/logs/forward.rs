//! Lines forwarded out of herdd: `log = "journal"` (journald's native
//! socket) and `log = "console"` (herdd's own stdout, `web@2 | text`).
//!
//! The event loop cuts each pipe's chunk into whole lines (`LineSplitter`)
//! and queues them here as one batch; a writer thread of its own sends
//! them on. A slow or stuck reader of herdd's stdout, or a journald that
//! does not keep up, therefore never holds the loop: the queue is bounded
//! ([`QUEUE_BYTES`]), and what does not fit is dropped, counted, and said
//! once in herdd's log (with the count once the queue has room again).
//!
//! Console lines of every instance go through the one thread, a batch of
//! whole lines per write: they interleave by line, never mid-line. Both
//! streams go to stdout, so a unit's stdout and stderr lines keep their
//! order (as `docker compose` prints them).
//!
//! When journald's socket is missing or refuses a line, the line goes to
//! herdd's stdout as a console line instead, and herdd's log says so once
//! (and again when the journal takes lines again): nothing is lost for
//! want of a journald, which is what a container without one needs.

use super::file::{LineSink, Prefix};
use super::journald;
use super::lock;
use crate::core::LogTarget;
use herd_common::protocol::OutputStream;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Most bytes of lines waiting for the writer thread (4 MiB): beyond it,
/// lines are dropped rather than herdd's memory grown.
pub const QUEUE_BYTES: usize = 4 << 20;

/// How long the writer waits for journald to take one entry before it
/// drops it (a journald that is alive but stuck).
const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// The process a pipe belongs to, as its forwarded lines name it.
#[derive(Debug)]
pub struct Origin {
    pub unit: String,
    pub index: u32,
    /// `web@2`.
    pub instance: String,
    pub pid: u32,
}

/// Whole lines of one pipe, each ending in `\n` (bodies never contain one).
struct Batch {
    origin: Arc<Origin>,
    to: LogTarget,
    stream: OutputStream,
    text: Vec<u8>,
}

/// Sends forwarded lines on, from a thread of its own (started when the
/// first line comes, so a herdd without such units has no such thread).
#[derive(Clone)]
pub struct Forwarder {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<Queue>,
    /// A batch was queued (the writer waits on it).
    ready: Condvar,
    /// The queue emptied (`settle` waits on it).
    idle: Condvar,
    /// `[herd] journal_socket`.
    journal: Mutex<PathBuf>,
    start: Once,
    /// Lines dropped since the queue was last full.
    dropped: AtomicU64,
    dropping: AtomicBool,
}

#[derive(Default)]
struct Queue {
    batches: VecDeque<Batch>,
    bytes: usize,
    /// The writer is sending a batch it has taken off the queue.
    busy: bool,
}

impl Forwarder {
    pub fn new(journal: &Path) -> Forwarder {
        Forwarder {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                ready: Condvar::new(),
                idle: Condvar::new(),
                journal: Mutex::new(journal.to_path_buf()),
                start: Once::new(),
                dropped: AtomicU64::new(0),
                dropping: AtomicBool::new(false),
            }),
        }
    }

    /// A (re)loaded config's `journal_socket`; `units` have `log =
    /// "journal"`. If they cannot reach it, herdd's log says so now, and
    /// where their lines go instead.
    pub fn configure(&self, journal: &Path, units: &[String]) {
        *lock(&self.shared.journal) = journal.to_path_buf();
        if units.is_empty() {
            return;
        }
        let probe = UnixDatagram::unbound().and_then(|socket| socket.connect(journal));
        if let Err(err) = probe {
            warn!(
                journal_socket = %journal.display(),
                error = %err,
                units = %units.join(", "),
                "journald's socket cannot be reached: lines of units with log = \"journal\" \
                 go to herdd's stdout, prefixed with the instance's name, until it can"
            );
        }
    }

    /// Where `origin`'s lines from `stream` go, for its pipe's splitter.
    pub fn sink(&self, origin: Arc<Origin>, to: LogTarget, stream: OutputStream) -> ForwardSink {
        ForwardSink {
            forwarder: self.clone(),
            origin,
            to,
            stream,
        }
    }

    /// Queues a batch, or drops it if the queue is full.
    fn push(&self, batch: Batch) {
        self.shared.start.call_once(|| self.start_writer());
        let mut queue = lock(&self.shared.queue);
        if queue.bytes + batch.text.len() > QUEUE_BYTES {
            drop(queue);
            let lines = memchr::memchr_iter(b'\n', &batch.text).count() as u64;
            self.shared.dropped.fetch_add(lines, Ordering::Relaxed);
            if !self.shared.dropping.swap(true, Ordering::Relaxed) {
                warn!(
                    instance = %batch.origin.instance,
                    "forwarded output falls behind (herdd's stdout or journald is slow): \
                     lines are dropped until it catches up"
                );
            }
            return;
        }
        queue.bytes += batch.text.len();
        queue.batches.push_back(batch);
        self.shared.ready.notify_one();
    }

    /// Waits, at most until `deadline`, for every queued line to be sent
    /// (before herdd exits or re-executes).
    pub fn settle(&self, deadline: Instant) {
        let mut queue = lock(&self.shared.queue);
        while !queue.batches.is_empty() || queue.busy {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            queue = match self.shared.idle.wait_timeout(queue, left) {
                Ok((queue, _)) => queue,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    fn start_writer(&self) {
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("herd-forward".into())
            .spawn(move || Writer::new(shared).run());
        if let Err(err) = spawned {
            warn!(error = %err, "cannot start the thread that forwards output; it is dropped");
        }
    }
}

/// One pipe's end of the forwarder: what its [`super::LineSplitter`] feeds.
pub struct ForwardSink {
    forwarder: Forwarder,
    origin: Arc<Origin>,
    to: LogTarget,
    stream: OutputStream,
}

impl ForwardSink {
    pub fn origin(&self) -> &Arc<Origin> {
        &self.origin
    }

    pub fn target(&self) -> LogTarget {
        self.to
    }
}

impl LineSink for ForwardSink {
    fn prepare(&mut self) {}

    fn line(&mut self, out: &mut Vec<u8>, _prefix: &Prefix, body: &[u8]) {
        out.extend_from_slice(body);
        out.push(b'\n');
    }

    fn flush(&mut self, out: &mut Vec<u8>) {
        if out.is_empty() {
            return;
        }
        self.forwarder.push(Batch {
            origin: self.origin.clone(),
            to: self.to,
            stream: self.stream,
            text: out.clone(),
        });
        out.clear();
    }
}

/// The writer thread's state.
struct Writer {
    shared: Arc<Shared>,
    socket: Option<UnixDatagram>,
    /// Why the journal last refused a line, while it does.
    journal_failure: Option<String>,
    /// herdd's stdout cannot be written (said once).
    stdout_failed: bool,
    entry: Vec<u8>,
    console: Vec<u8>,
}

impl Writer {
    fn new(shared: Arc<Shared>) -> Writer {
        let socket = UnixDatagram::unbound()
            .and_then(|socket| {
                socket.set_write_timeout(Some(SEND_TIMEOUT))?;
                Ok(socket)
            })
            .map_err(|err| warn!(error = %err, "cannot make a socket to reach journald"))
            .ok();
        Writer {
            shared,
            socket,
            journal_failure: None,
            stdout_failed: false,
            entry: Vec::new(),
            console: Vec::new(),
        }
    }

    fn run(mut self) {
        loop {
            let mut queue = lock(&self.shared.queue);
            queue.busy = false;
            if queue.batches.is_empty() {
                self.shared.idle.notify_all();
                // Not while holding the queue: the event loop may be waiting for it.
                drop(queue);
                self.caught_up();
                queue = lock(&self.shared.queue);
            }
            let batch = {
                loop {
                    if let Some(batch) = queue.batches.pop_front() {
                        queue.bytes -= batch.text.len();
                        queue.busy = true;
                        break batch;
                    }
                    queue = match self.shared.ready.wait(queue) {
                        Ok(queue) => queue,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                }
            };
            drop(queue);
            match batch.to {
                LogTarget::Journal => self.journal(&batch),
                // Log files are written by the event loop; none come here.
                LogTarget::Console | LogTarget::File => {
                    self.console(&batch.origin, &batch.text);
                }
            }
        }
    }

    /// The queue has emptied: if lines were dropped, say how many.
    fn caught_up(&self) {
        if self.shared.dropping.swap(false, Ordering::Relaxed) {
            let dropped = self.shared.dropped.swap(0, Ordering::Relaxed);
            warn!(
                dropped_lines = dropped,
                "forwarded output caught up; lines were dropped"
            );
        }
    }

    /// One entry per line; lines journald cannot take go to stdout.
    fn journal(&mut self, batch: &Batch) {
        let path = lock(&self.shared.journal).clone();
        let priority: &[u8] = match batch.stream {
            OutputStream::Stdout => b"6",
            OutputStream::Stderr => b"3",
        };
        let origin = &batch.origin;
        let index = origin.index.to_string();
        let pid = origin.pid.to_string();
        let mut refused: Vec<u8> = Vec::new();
        for line in batch.text.split_inclusive(|b| *b == b'\n') {
            let body = &line[..line.len() - 1];
            self.entry.clear();
            journald::field(&mut self.entry, "MESSAGE", body);
            journald::field(&mut self.entry, "PRIORITY", priority);
            journald::field(&mut self.entry, "SYSLOG_IDENTIFIER", origin.unit.as_bytes());
            journald::field(&mut self.entry, "SYSLOG_PID", pid.as_bytes());
            journald::field(&mut self.entry, "HERD_INSTANCE", index.as_bytes());
            journald::field(
                &mut self.entry,
                "HERD_INSTANCE_NAME",
                origin.instance.as_bytes(),
            );
            match self.send(&path) {
                Ok(()) => self.journal_works(&path),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    // Alive but not reading: dropped, not printed elsewhere.
                    self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                    if !self.shared.dropping.swap(true, Ordering::Relaxed) {
                        warn!(journal_socket = %path.display(), "journald does not take lines in time: lines are dropped");
                    }
                }
                Err(err) => {
                    self.journal_fails(&path, &err);
                    refused.extend_from_slice(line);
                }
            }
        }
        if !refused.is_empty() {
            self.console(origin, &refused);
        }
    }

    fn send(&self, path: &Path) -> io::Result<()> {
        match &self.socket {
            Some(socket) => socket.send_to(&self.entry, path).map(drop),
            None => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }

    fn journal_works(&mut self, path: &Path) {
        if self.journal_failure.take().is_some() {
            info!(journal_socket = %path.display(), "journald takes lines again");
        }
    }

    fn journal_fails(&mut self, path: &Path, err: &io::Error) {
        let message = err.to_string();
        if self.journal_failure.as_ref() != Some(&message) {
            warn!(
                journal_socket = %path.display(),
                error = %message,
                "cannot send lines to journald: they go to herdd's stdout until it takes them"
            );
            self.journal_failure = Some(message);
        }
    }

    /// `web@2 | text` for each line, in one write.
    fn console(&mut self, origin: &Origin, text: &[u8]) {
        self.console.clear();
        for line in text.split_inclusive(|b| *b == b'\n') {
            self.console.extend_from_slice(origin.instance.as_bytes());
            self.console.extend_from_slice(b" | ");
            self.console.extend_from_slice(line);
        }
        let mut stdout = io::stdout().lock();
        let written = stdout
            .write_all(&self.console)
            .and_then(|()| stdout.flush());
        match written {
            Ok(()) => self.stdout_failed = false,
            Err(err) => {
                let lines = memchr::memchr_iter(b'\n', text).count() as u64;
                self.shared.dropped.fetch_add(lines, Ordering::Relaxed);
                if !self.stdout_failed {
                    self.stdout_failed = true;
                    warn!(error = %err, "cannot write forwarded lines to herdd's stdout: they are dropped");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Arc<Origin> {
        Arc::new(Origin {
            unit: "web".into(),
            index: 2,
            instance: "web@2".into(),
            pid: 42,
        })
    }

    #[test]
    fn lines_past_the_bound_are_dropped_and_counted() {
        let forwarder = Forwarder::new(Path::new("/nonexistent/journal.sock"));
        // No writer: the thread is "started" without one, so nothing drains.
        forwarder.shared.start.call_once(|| {});
        let line = vec![b'x'; 1023];
        let mut text = Vec::new();
        for _ in 0..1024 {
            text.extend_from_slice(&line);
            text.push(b'\n');
        }
        let batch = |text: &Vec<u8>| Batch {
            origin: origin(),
            to: LogTarget::Console,
            stream: OutputStream::Stdout,
            text: text.clone(),
        };
        for _ in 0..4 {
            forwarder.push(batch(&text));
        }
        assert_eq!(lock(&forwarder.shared.queue).bytes, QUEUE_BYTES);
        assert_eq!(forwarder.shared.dropped.load(Ordering::Relaxed), 0);
        forwarder.push(batch(&text));
        assert_eq!(lock(&forwarder.shared.queue).bytes, QUEUE_BYTES);
        assert_eq!(forwarder.shared.dropped.load(Ordering::Relaxed), 1024);
        assert!(forwarder.shared.dropping.load(Ordering::Relaxed));
    }

    #[test]
    fn journal_entries_carry_the_fields_of_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sock");
        let journald = UnixDatagram::bind(&path).unwrap();
        journald
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let forwarder = Forwarder::new(&path);
        let mut sink = forwarder.sink(origin(), LogTarget::Journal, OutputStream::Stderr);
        let mut out = Vec::new();
        let prefix = Prefix::new(&super::super::Stamp::now(), b"stderr");
        sink.line(&mut out, &prefix, b"first");
        sink.line(&mut out, &prefix, b"second");
        sink.flush(&mut out);
        let mut buffer = vec![0; 4096];
        for expected in ["first", "second"] {
            let n = journald.recv(&mut buffer).unwrap();
            let fields = journald::parse(&buffer[..n]).unwrap();
            let get = |name: &str| {
                let value = fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
                String::from_utf8(value.unwrap().clone()).unwrap()
            };
            assert_eq!(get("MESSAGE"), expected);
            assert_eq!(get("PRIORITY"), "3");
            assert_eq!(get("SYSLOG_IDENTIFIER"), "web");
            assert_eq!(get("HERD_INSTANCE"), "2");
            assert_eq!(get("SYSLOG_PID"), "42");
        }
    }
}
