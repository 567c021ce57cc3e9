//! Captured output: the read ends of each process's stdout/stderr pipes.
//!
//! A reader task per pipe takes chunks as they come and hands them to the
//! pipe's destination: a pool task's in-memory capture (`Input::Output` to
//! the core) or a unit instance's log file (written at once, on the event
//! loop, see `logs/`). When the process exits, the event loop drains what is
//! left in its pipes *before* reporting the exit, so a joined task's output
//! is complete and an instance's last line is in its log. Exit is never
//! detected by EOF: a background grandchild may hold a pipe open for ever;
//! its later writes are still captured until EOF.

use super::logs::{lock, LineSplitter, LogFile, LogHub, Stamp};
use crate::core::{Input, InstanceId};
use herd_common::protocol::{OutputStream, TaskId};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc;
use tracing::warn;

const READ_SIZE: usize = 64 * 1024;

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
        self.lines.finish(&mut lock(&self.file), &mut out);
    }
}

impl Drop for LogSink {
    /// The pipe has ended (EOF, or herdd let go of it).
    fn drop(&mut self) {
        self.finish();
        lock(&self.file).detach();
    }
}

/// Buffers shared by every log pipe: reads and writes happen on the one
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
}

struct Pipe {
    fd: AsyncFd<OwnedFd>,
    stream: OutputStream,
    sink: Sink,
}

impl Pipe {
    /// One non-blocking read and what it became: `Ok(false)` at EOF,
    /// `WouldBlock` when empty.
    fn step(&self, chunks: &mpsc::UnboundedSender<Input>) -> io::Result<bool> {
        match &self.sink {
            Sink::Task(_) => match self.read_chunk()? {
                Some(chunk) => Ok(chunks.send(chunk).is_ok()),
                None => Ok(false),
            },
            Sink::Log(sink) => self.pump(sink),
        }
    }

    /// Log pipes: one read, written to the log file at once.
    fn pump(&self, sink: &Mutex<LogSink>) -> io::Result<bool> {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let Scratch { read, out } = &mut *scratch;
            if read.is_empty() {
                read.resize(LOG_READ_SIZE, 0);
            }
            // SAFETY: reads into a buffer we own, of the length we pass.
            let n = unsafe {
                libc::read(
                    self.fd.get_ref().as_raw_fd(),
                    read.as_mut_ptr().cast(),
                    read.len(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if n == 0 {
                return Ok(false);
            }
            let n = n as usize;
            let mut sink = lock(sink);
            if n >= READ_SIZE / 2 && !sink.grown {
                sink.grown = true;
                // SAFETY: fcntl on a descriptor we own. Failure (EPERM over
                // the user's pipe-buffer limit) leaves it as it was.
                unsafe {
                    libc::fcntl(
                        self.fd.get_ref().as_raw_fd(),
                        libc::F_SETPIPE_SZ,
                        BUSY_PIPE_SIZE as libc::c_int,
                    )
                };
            }
            let LogSink { file, lines, .. } = &mut *sink;
            lines.feed(&mut lock(file), &Stamp::now(), &read[..n], out);
            Ok(true)
        })
    }

    /// Task pipes: one non-blocking read: `Ok(None)` at EOF, `WouldBlock` when empty.
    fn read_chunk(&self) -> io::Result<Option<Input>> {
        let Sink::Task(task) = self.sink else {
            return Ok(None);
        };
        let mut buffer = [0u8; READ_SIZE];
        // SAFETY: reads into a buffer we own, of the length we pass.
        let n = unsafe {
            libc::read(
                self.fd.get_ref().as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
            )
        };
        match n {
            n if n < 0 => Err(io::Error::last_os_error()),
            0 => Ok(None),
            n => Ok(Some(Input::Output {
                task,
                stream: self.stream,
                data: buffer[..n as usize].to_vec(),
            })),
        }
    }
}

/// Pipes of live processes, by pid, and where chunks go.
pub struct OutputPipes {
    by_pid: HashMap<u32, Vec<Arc<Pipe>>>,
    chunks: mpsc::UnboundedSender<Input>,
}

impl OutputPipes {
    pub fn new(chunks: mpsc::UnboundedSender<Input>) -> Self {
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

    /// The task pipes to hand to a re-executed herdd: (pid, task, stream, descriptor).
    pub fn export(&self) -> Vec<(u32, TaskId, OutputStream, i32)> {
        self.by_pid
            .iter()
            .flat_map(|(pid, pipes)| {
                pipes.iter().filter_map(|p| match p.sink {
                    Sink::Task(task) => Some((*pid, task, p.stream, p.fd.get_ref().as_raw_fd())),
                    Sink::Log(_) => None,
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
                let Sink::Log(sink) = &pipe.sink else {
                    continue;
                };
                let mut sink = lock(sink);
                sink.finish();
                let id = lock(&sink.file).id().clone();
                let instance = lock(&sink.file).instance().to_string();
                exported.push(LogPipe {
                    pid: *pid,
                    unit: id.unit,
                    index: id.index,
                    instance,
                    stream: pipe.stream,
                    fd: pipe.fd.get_ref().as_raw_fd(),
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
            let id = InstanceId {
                unit: pipe.unit,
                index: pipe.index,
            };
            let file = hub.file(&id, &pipe.instance);
            let sink = Sink::Log(Mutex::new(LogSink::new(file, pipe.stream)));
            self.watch_streams(pipe.pid, vec![(fd, pipe.stream, sink)]);
        }
    }

    fn watch_streams(&mut self, pid: u32, streams: Vec<(OwnedFd, OutputStream, Sink)>) {
        let mut pipes = Vec::with_capacity(streams.len());
        for (fd, stream, sink) in streams {
            set_nonblocking(&fd);
            // SAFETY: the AsyncFd owns `fd`, which stays open and the same for its whole life.
            match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
                Ok(fd) => pipes.push(Arc::new(Pipe { fd, stream, sink })),
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
                Sink::Log(sink) => {
                    for _ in 0..DRAIN_READS {
                        if !matches!(pipe.pump(sink), Ok(true)) {
                            break;
                        }
                    }
                    lock(sink).finish();
                }
            }
        }
        chunks
    }
}

/// Forwards one pipe's chunks until EOF or an error. After each chunk it
/// lets every other task run (control requests, other pipes): a process
/// writing as fast as it can gets its turn, not the whole loop.
async fn forward(pipe: Arc<Pipe>, chunks: mpsc::UnboundedSender<Input>) {
    loop {
        let Ok(mut ready) = pipe.fd.readable().await else {
            return;
        };
        match ready.try_io(|_| pipe.step(&chunks)) {
            Ok(Ok(true)) => tokio::task::yield_now().await,
            Ok(Ok(false)) | Ok(Err(_)) => return,
            Err(_would_block) => continue,
        }
    }
}

fn set_nonblocking(fd: &OwnedFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}
