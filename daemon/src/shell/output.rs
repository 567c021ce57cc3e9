//! Captured output: the read ends of each process's stdout/stderr pipes.
//!
//! A reader task per pipe takes chunks as they come and hands them to the
//! pipe's destination: a pool task's in-memory capture (`Input::Output` to
//! the core), a unit instance's log file (written at once, on the event
//! loop, see `logs/`), or whole lines handed to the forwarder for journald
//! or herdd's stdout (`logs/forward.rs`). When the process exits, the event loop drains what is
//! left in its pipes *before* reporting the exit, so a joined task's output
//! is complete and an instance's last line is in its log. Exit is never
//! detected by EOF: a background grandchild may hold a pipe open for ever;
//! its later writes are still captured until EOF.

use super::logs::{lock, ForwardSink, LineSplitter, LogFile, LogHub, Origin, Stamp};
use crate::core::{Input, InstanceId, LogTarget};
use herd_common::protocol::{OutputStream, TaskId};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc;
use tracing::warn;

const READ_SIZE: usize = 64 * 1024;

/// Chunks of task output queued for the core at most (4 MiB): beyond it,
/// tasks' pipes wait (see `forward`).
pub const QUEUED_CHUNKS: usize = 64;

/// A log pipe that delivers at least half the kernel's default pipe size
/// (64 KiB) in one read grows to this (the most an unprivileged process
/// may ask for): a process writing as fast as it can then blocks and wakes
/// far less often. Quiet pipes keep the default, which costs nothing until
/// written.
const BUSY_PIPE_SIZE: usize = 1024 * 1024;

/// Log reads take up to this much at once (one buffer for all pipes).
const LOG_READ_SIZE: usize = 256 * 1024;

/// Reads of one pipe when its process exits: enough to empty any pipe, but
/// bounded, so a grandchild that keeps writing cannot hold the loop.
const DRAIN_READS: usize = 64;

/// Where a pipe's bytes go.
enum Sink {
    /// A pool task's capture, kept by the core.
    Task(TaskId),
    /// A unit instance's log file.
    Log(Mutex<LogSink>),
    /// A unit instance's lines for journald or herdd's stdout.
    Forward(Mutex<ForwardedLines>),
}

/// A pipe whose bytes are cut into lines on the event loop.
trait Lines {
    /// Cuts `data` (read at `now`) into lines and sends the whole ones on;
    /// `out` is scratch space.
    fn feed(&mut self, now: &Stamp, data: &[u8], out: &mut Vec<u8>);
    /// Sends an unfinished line on, marked partial.
    fn finish(&mut self);
    /// Whether the pipe was made [`BUSY_PIPE_SIZE`] (or that failed: not again).
    fn grown(&mut self) -> &mut bool;
}

impl Lines for LogSink {
    fn feed(&mut self, now: &Stamp, data: &[u8], out: &mut Vec<u8>) {
        self.lines.feed(&mut *lock(&self.file), now, data, out);
    }

    fn finish(&mut self) {
        LogSink::finish(self);
    }

    fn grown(&mut self) -> &mut bool {
        &mut self.grown
    }
}

/// One pipe's lines for the forwarder.
struct ForwardedLines {
    sink: ForwardSink,
    lines: LineSplitter,
    grown: bool,
}

impl Lines for ForwardedLines {
    fn feed(&mut self, now: &Stamp, data: &[u8], out: &mut Vec<u8>) {
        self.lines.feed(&mut self.sink, now, data, out);
    }

    fn finish(&mut self) {
        let mut out = Vec::new();
        self.lines.finish(&mut self.sink, &mut out);
    }

    fn grown(&mut self) -> &mut bool {
        &mut self.grown
    }
}

impl Drop for ForwardedLines {
    /// The pipe has ended: an unfinished line goes out too.
    fn drop(&mut self) {
        Lines::finish(self);
    }
}

/// One pipe's share of an instance's log file.
struct LogSink {
    file: Arc<Mutex<LogFile>>,
    lines: LineSplitter,
    /// The pipe was made [`BUSY_PIPE_SIZE`] (or that failed: not again).
    grown: bool,
}

impl LogSink {
    fn new(file: Arc<Mutex<LogFile>>, stream: OutputStream) -> LogSink {
        lock(&file).attach();
        LogSink {
            file,
            lines: LineSplitter::new(stream),
            grown: false,
        }
    }

    /// Writes an unfinished line, marked partial.
    fn finish(&mut self) {
        let mut out = Vec::new();
        self.lines.finish(&mut *lock(&self.file), &mut out);
    }
}

impl Drop for LogSink {
    /// The pipe has ended (EOF, or herdd let go of it).
    fn drop(&mut self) {
        self.finish();
        lock(&self.file).detach();
    }
}

/// Buffers shared by every pipe: reads and writes happen on the one
/// event-loop thread, one at a time, so a thousand pipes need one pair.
struct Scratch {
    read: Vec<u8>,
    out: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch {
            read: Vec::new(),
            out: Vec::new(),
        })
    };
}

/// A log pipe handed to a re-executed herdd.
#[derive(Debug, Serialize, Deserialize)]
pub struct LogPipe {
    pub pid: u32,
    pub unit: String,
    pub index: u32,
    /// `web@2`: names the log file.
    pub instance: String,
    pub stream: OutputStream,
    pub fd: i32,
    /// Where its lines go (absent from older images: a log file).
    #[serde(default = "log_file")]
    pub to: LogTarget,
    /// The process the pipe came from (forwarded lines name it).
    #[serde(default)]
    pub process: u32,
}

fn log_file() -> LogTarget {
    LogTarget::File
}

struct Pipe {
    fd: AsyncFd<OwnedFd>,
    stream: OutputStream,
    sink: Sink,
    /// A read found its end (EOF): its reader task stops without reading
    /// it again. (Draining at a task's exit usually finds the end first.)
    ended: AtomicBool,
}

impl Pipe {
    /// One non-blocking read and what it became: `Ok(false)` at EOF,
    /// `WouldBlock` when empty. A task pipe's chunk goes out through
    /// `room`, its place in the queue, taken before reading.
    fn step(&self, room: Option<mpsc::Permit<'_, Input>>) -> io::Result<bool> {
        match (&self.sink, room) {
            (Sink::Task(_), Some(room)) => match self.read_chunk()? {
                Some(chunk) => {
                    room.send(chunk);
                    Ok(true)
                }
                None => Ok(false),
            },
            (Sink::Task(_), None) => Ok(false),
            (Sink::Log(sink), _) => self.pump(sink),
            (Sink::Forward(sink), _) => self.pump(sink),
        }
    }

    /// Log and forwarded pipes: one read, its lines written or queued at once.
    fn pump<L: Lines>(&self, sink: &Mutex<L>) -> io::Result<bool> {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let Scratch { read, out } = &mut *scratch;
            if read.len() < LOG_READ_SIZE {
                read.resize(LOG_READ_SIZE, 0);
            }
            let n = nix::unistd::read(self.fd.get_ref(), read).map_err(io::Error::from)?;
            if n == 0 {
                return Ok(false);
            }
            let mut sink = lock(sink);
            if n >= READ_SIZE / 2 && !*sink.grown() {
                *sink.grown() = true;
                // Failure (EPERM over the user's pipe-buffer limit) leaves it as it was.
                let _ = fcntl(
                    self.fd.get_ref(),
                    FcntlArg::F_SETPIPE_SZ(BUSY_PIPE_SIZE as libc::c_int),
                );
            }
            sink.feed(&Stamp::now(), &read[..n], out);
            Ok(true)
        })
    }

    /// What is left in a line pipe, at its process's exit: read without
    /// waiting, and an unfinished last line sent on (marked partial).
    fn drain_lines<L: Lines>(&self, sink: &Mutex<L>) {
        for _ in 0..DRAIN_READS {
            if !matches!(self.pump(sink), Ok(true)) {
                break;
            }
        }
        lock(sink).finish();
    }

    /// Task pipes: one non-blocking read: `Ok(None)` at EOF (remembered:
    /// see [`Pipe::ended`]), `WouldBlock` when empty. It reads into the
    /// shared scratch buffer, so a read that finds nothing (most of them:
    /// the EOF of a task that wrote nothing) costs no buffer to clear or
    /// allocate.
    fn read_chunk(&self) -> io::Result<Option<Input>> {
        let Sink::Task(task) = self.sink else {
            return Ok(None);
        };
        SCRATCH.with(|scratch| {
            let read = &mut scratch.borrow_mut().read;
            if read.len() < READ_SIZE {
                read.resize(READ_SIZE, 0);
            }
            let buffer = &mut read[..READ_SIZE];
            match nix::unistd::read(self.fd.get_ref(), buffer).map_err(io::Error::from)? {
                0 => {
                    self.ended.store(true, Ordering::Relaxed);
                    Ok(None)
                }
                n => Ok(Some(Input::Output {
                    task,
                    stream: self.stream,
                    data: buffer[..n].to_vec(),
                })),
            }
        })
    }
}

/// Pipes of live processes, by pid, and where chunks go.
pub struct OutputPipes {
    by_pid: HashMap<u32, Vec<Arc<Pipe>>>,
    chunks: mpsc::Sender<Input>,
}

impl OutputPipes {
    /// Task output goes to `chunks`, a queue of at most [`QUEUED_CHUNKS`].
    pub fn new(chunks: mpsc::Sender<Input>) -> Self {
        OutputPipes {
            by_pid: HashMap::new(),
            chunks,
        }
    }

    /// Starts forwarding a new task's output.
    pub fn watch(&mut self, pid: u32, task: TaskId, stdout: OwnedFd, stderr: OwnedFd) {
        let streams = [
            (stdout, OutputStream::Stdout, Sink::Task(task)),
            (stderr, OutputStream::Stderr, Sink::Task(task)),
        ];
        self.watch_streams(pid, streams.into());
    }

    /// Starts writing a new instance process's output to its log file.
    pub fn watch_log(
        &mut self,
        pid: u32,
        file: Arc<Mutex<LogFile>>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) {
        let streams = [
            (stdout, OutputStream::Stdout),
            (stderr, OutputStream::Stderr),
        ]
        .map(|(fd, stream)| {
            let sink = Sink::Log(Mutex::new(LogSink::new(file.clone(), stream)));
            (fd, stream, sink)
        });
        self.watch_streams(pid, streams.into());
    }

    /// Starts forwarding a new instance process's lines `to` journald or
    /// herdd's stdout.
    pub fn watch_forward(
        &mut self,
        origin: Origin,
        to: LogTarget,
        hub: &LogHub,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) {
        let pid = origin.pid;
        let origin = Arc::new(origin);
        let streams = [
            (stdout, OutputStream::Stdout),
            (stderr, OutputStream::Stderr),
        ]
        .map(|(fd, stream)| {
            let sink = hub.forwarder().sink(origin.clone(), to, stream);
            (fd, stream, forwarded(sink, stream))
        });
        self.watch_streams(pid, streams.into());
    }

    /// The task pipes to hand to a re-executed herdd: (pid, task, stream, descriptor).
    pub fn export(&self) -> Vec<(u32, TaskId, OutputStream, i32)> {
        self.by_pid
            .iter()
            .flat_map(|(pid, pipes)| {
                pipes.iter().filter_map(|p| match p.sink {
                    Sink::Task(task) => Some((*pid, task, p.stream, p.fd.get_ref().as_raw_fd())),
                    Sink::Log(_) | Sink::Forward(_) => None,
                })
            })
            .collect()
    }

    /// The log pipes to hand to a re-executed herdd. Unfinished lines are
    /// written now (marked partial): the new image starts each pipe afresh.
    pub fn export_logs(&self) -> Vec<LogPipe> {
        let mut exported = Vec::new();
        for (pid, pipes) in &self.by_pid {
            for pipe in pipes {
                let (id, instance, to, process) = match &pipe.sink {
                    Sink::Task(_) => continue,
                    Sink::Log(sink) => {
                        let mut sink = lock(sink);
                        sink.finish();
                        let file = lock(&sink.file);
                        let instance = file.instance().to_string();
                        (file.id().clone(), instance, LogTarget::File, *pid)
                    }
                    Sink::Forward(sink) => {
                        let mut sink = lock(sink);
                        Lines::finish(&mut *sink);
                        let origin = sink.sink.origin();
                        let id = InstanceId {
                            unit: origin.unit.clone(),
                            index: origin.index,
                        };
                        (id, origin.instance.clone(), sink.sink.target(), origin.pid)
                    }
                };
                exported.push(LogPipe {
                    pid: *pid,
                    unit: id.unit,
                    index: id.index,
                    instance,
                    stream: pipe.stream,
                    fd: pipe.fd.get_ref().as_raw_fd(),
                    to,
                    process,
                });
            }
        }
        exported
    }

    /// Takes over task pipes exported by the previous image.
    pub fn import(&mut self, pipes: Vec<(u32, TaskId, OutputStream, OwnedFd)>) {
        for (pid, task, stream, fd) in pipes {
            self.watch_streams(pid, vec![(fd, stream, Sink::Task(task))]);
        }
    }

    /// Takes over log pipes exported by the previous image.
    pub fn import_logs(&mut self, pipes: Vec<(LogPipe, OwnedFd)>, hub: &LogHub) {
        for (pipe, fd) in pipes {
            let sink = match pipe.to {
                LogTarget::File => {
                    let id = InstanceId {
                        unit: pipe.unit,
                        index: pipe.index,
                    };
                    let file = hub.file(&id, &pipe.instance);
                    Sink::Log(Mutex::new(LogSink::new(file, pipe.stream)))
                }
                LogTarget::Journal | LogTarget::Console => {
                    let origin = Arc::new(Origin {
                        unit: pipe.unit,
                        index: pipe.index,
                        instance: pipe.instance,
                        pid: pipe.process,
                    });
                    let sink = hub.forwarder().sink(origin, pipe.to, pipe.stream);
                    forwarded(sink, pipe.stream)
                }
            };
            self.watch_streams(pipe.pid, vec![(fd, pipe.stream, sink)]);
        }
    }

    fn watch_streams(&mut self, pid: u32, streams: Vec<(OwnedFd, OutputStream, Sink)>) {
        let mut pipes = Vec::with_capacity(streams.len());
        for (fd, stream, sink) in streams {
            set_nonblocking(&fd);
            // SAFETY: the AsyncFd owns `fd`, which stays open and the same for its whole life.
            match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
                Ok(fd) => pipes.push(Arc::new(Pipe {
                    fd,
                    stream,
                    sink,
                    ended: AtomicBool::new(false),
                })),
                Err(err) => {
                    warn!(pid, error = %err, "cannot watch a process's output; it is not captured")
                }
            }
        }
        for pipe in &pipes {
            tokio::spawn(forward(pipe.clone(), self.chunks.clone()));
        }
        self.by_pid.entry(pid).or_default().extend(pipes);
    }

    /// Everything `pid` wrote that is still in its pipes, read without
    /// waiting: task chunks to feed to the core; log lines are written (an
    /// unfinished last line too, marked partial). The reader tasks keep
    /// going until EOF (grandchildren may still write).
    pub fn drain(&mut self, pid: u32) -> Vec<Input> {
        let mut chunks = Vec::new();
        for pipe in self.by_pid.remove(&pid).into_iter().flatten() {
            match &pipe.sink {
                Sink::Task(_) => {
                    for _ in 0..DRAIN_READS {
                        match pipe.read_chunk() {
                            Ok(Some(chunk)) => chunks.push(chunk),
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
                Sink::Log(sink) => pipe.drain_lines(sink),
                Sink::Forward(sink) => pipe.drain_lines(sink),
            }
        }
        chunks
    }
}

/// Forwards one pipe's chunks until EOF or an error. After each chunk it
/// lets every other task run (control requests, other pipes): a process
/// writing as fast as it can gets its turn, not the whole loop. A task's
/// pipe is read only once its chunk has room in the queue: a task writing
/// faster than herdd takes its output waits in its pipe (the kernel blocks
/// its writes), instead of herdd's memory growing; and no chunk is ever
/// held outside the queue, so draining the queue and then the pipe at
/// exit keeps the output in order.
async fn forward(pipe: Arc<Pipe>, chunks: mpsc::Sender<Input>) {
    loop {
        let Ok(mut ready) = pipe.fd.readable().await else {
            return;
        };
        if pipe.ended.load(Ordering::Relaxed) {
            return;
        }
        let room = match pipe.sink {
            Sink::Task(_) => match chunks.reserve().await {
                Ok(room) => Some(room),
                // herdd is exiting.
                Err(_) => return,
            },
            Sink::Log(_) | Sink::Forward(_) => None,
        };
        match ready.try_io(|_| pipe.step(room)) {
            Ok(Ok(true)) => tokio::task::yield_now().await,
            Ok(Ok(false)) | Ok(Err(_)) => return,
            Err(_would_block) => continue,
        }
    }
}

fn forwarded(sink: ForwardSink, stream: OutputStream) -> Sink {
    Sink::Forward(Mutex::new(ForwardedLines {
        sink,
        lines: LineSplitter::new(stream),
        grown: false,
    }))
}

/// One `fcntl` rather than a read and a write of the flags: the read end of
/// a pipe herdd made (`pipe2` with `O_CLOEXEC` alone, a descriptor flag) has
/// no other status flag that `F_SETFL` could clear.
fn set_nonblocking(fd: &OwnedFd) {
    let _ = fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;

    #[tokio::test]
    async fn a_task_writing_faster_than_herdd_takes_its_output_waits_in_its_pipe() {
        const CHUNK: usize = 64 * 1024;
        let (chunks_tx, mut chunks) = mpsc::channel(2);
        let mut pipes = OutputPipes::new(chunks_tx);
        let (stdout, writer) = nix::unistd::pipe().unwrap();
        let (stderr, _stderr_writer) = nix::unistd::pipe().unwrap();
        pipes.watch(1, 7, stdout, stderr);
        set_nonblocking(&writer);
        let data = vec![b'x'; CHUNK];
        let mut written = 0;
        // Nobody takes the chunks: the writer must soon find its pipe full,
        // however often the reader task gets to run.
        let mut full_in_a_row = 0;
        while full_in_a_row < 100 && written < 1000 * CHUNK {
            match nix::unistd::write(&writer, &data) {
                Ok(n) => {
                    written += n;
                    full_in_a_row = 0;
                }
                Err(Errno::EAGAIN) => full_in_a_row += 1,
                Err(err) => panic!("{err}"),
            }
            tokio::task::yield_now().await;
        }
        // The queue (2 chunks) plus the pipe (64 KiB) plus one read in hand.
        assert!(
            written <= 4 * CHUNK,
            "{written} bytes taken without a reader"
        );

        // Taking the chunks lets the rest through, all of it, in order.
        drop(writer);
        let mut taken = 0;
        while taken < written {
            match chunks.recv().await {
                Some(Input::Output { task: 7, data, .. }) => taken += data.len(),
                other => panic!("unexpected {:?}", other.is_some()),
            }
        }
        assert_eq!(taken, written);
    }
}
