//! Captured output: the read ends of each process's stdout/stderr pipes.
//!
//! Every pipe is in one private epoll set, edge-triggered, which the event
//! loop waits on as one descriptor ([`OutputPipes::wait`]); it then reads
//! the pipes that have something ([`OutputPipes::read_ready`]), one read
//! each per turn, so a process writing as fast as it can gets its turn and
//! not the whole loop. A pipe's bytes go to its destination: a pool task's
//! in-memory capture (`Input::Output` for the core, fed at once), a unit
//! instance's log file (written at once, see `logs/`), or whole lines
//! handed to the forwarder for journald or herdd's stdout
//! (`logs/forward.rs`). A task writing faster than herdd takes its output
//! waits in its pipe (the kernel blocks its writes): herdd holds no chunk
//! outside the pipe and the core.
//!
//! When the process exits, the event loop drains what is left in its pipes
//! *before* reporting the exit, so a joined task's output is complete and
//! an instance's last line is in its log. Exit is never detected by EOF: a
//! background grandchild may hold a pipe open for ever; its later writes
//! are still captured until EOF.
//!
//! A pipe costs herdd one `epoll_ctl` (the add) and its reads: at EOF its
//! descriptor is closed, which takes it out of the set, since herdd holds
//! the only reference to the read end (children get it close-on-exec).
//! A child that is still between its clone and its exec may hold a copy
//! for a moment; events of such a pipe carry a generation that no longer
//! matches and are ignored (and edge-triggered, they come once per
//! change, not on every wait).

use super::logs::{lock, ForwardSink, LineSplitter, LogFile, LogHub, Origin, Stamp};
use crate::core::{Input, InstanceId, LogTarget};
use herd_common::protocol::{OutputStream, TaskId};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tracing::warn;

/// Reads of task pipes take up to this much at once.
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

/// Events taken from the private epoll set per `epoll_wait`.
const EVENTS: usize = 256;

/// Where a pipe's bytes go.
enum Sink {
    /// A pool task's capture, kept by the core.
    Task(TaskId),
    /// A unit instance's log file.
    Log(LogSink),
    /// A unit instance's lines for journald or herdd's stdout.
    Forward(ForwardedLines),
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

/// One pipe in the set.
struct Pipe {
    fd: OwnedFd,
    stream: OutputStream,
    sink: Sink,
    /// It is in [`OutputPipes::ready`] (an edge came).
    queued: bool,
}

/// What one read of a pipe came to.
enum Read {
    /// Bytes; `full` when they filled the buffer (more may be waiting).
    Data { chunk: Option<Input>, full: bool },
    /// Nothing to read now (`EAGAIN`): the next write brings an edge.
    Empty,
    /// EOF or an error: the pipe is done.
    End,
}

impl Pipe {
    /// One non-blocking read, its bytes sent where they go: a task's as a
    /// chunk for the core, a log pipe's lines written or queued at once.
    fn read(&mut self, buffers: &mut Buffers) -> Read {
        let size = match self.sink {
            Sink::Task(_) => READ_SIZE,
            Sink::Log(_) | Sink::Forward(_) => LOG_READ_SIZE,
        };
        if buffers.read.len() < size {
            buffers.read.resize(size, 0);
        }
        let n = match nix::unistd::read(&self.fd, &mut buffers.read[..size]) {
            Ok(0) => return Read::End,
            Ok(n) => n,
            Err(nix::errno::Errno::EAGAIN) => return Read::Empty,
            Err(nix::errno::Errno::EINTR) => {
                return Read::Data {
                    chunk: None,
                    full: true,
                }
            }
            Err(_) => return Read::End,
        };
        let data = &buffers.read[..n];
        let chunk = match &mut self.sink {
            Sink::Task(task) => Some(Input::Output {
                task: *task,
                stream: self.stream,
                data: data.to_vec(),
            }),
            Sink::Log(sink) => {
                feed_lines(&self.fd, sink, data, &mut buffers.out);
                None
            }
            Sink::Forward(sink) => {
                feed_lines(&self.fd, sink, data, &mut buffers.out);
                None
            }
        };
        Read::Data {
            chunk,
            full: n == size,
        }
    }

    /// At the end of the pipe, or when its process has exited and the pipe
    /// was drained: an unfinished last line goes on, marked partial.
    fn finish_lines(&mut self) {
        match &mut self.sink {
            Sink::Task(_) => {}
            Sink::Log(sink) => Lines::finish(sink),
            Sink::Forward(sink) => Lines::finish(sink),
        }
    }
}

/// Cuts a log pipe's `data` into lines and sends them on; a pipe that
/// delivers much at once is made bigger.
fn feed_lines<L: Lines>(fd: &OwnedFd, sink: &mut L, data: &[u8], out: &mut Vec<u8>) {
    if data.len() >= READ_SIZE / 2 && !*sink.grown() {
        *sink.grown() = true;
        // Failure (EPERM over the user's pipe-buffer limit) leaves it as it was.
        let _ = fcntl(fd, FcntlArg::F_SETPIPE_SZ(BUSY_PIPE_SIZE as libc::c_int));
    }
    sink.feed(&Stamp::now(), data, out);
}

/// Scratch space shared by every pipe: reads happen on the event loop, one
/// at a time, so a thousand pipes need one pair.
#[derive(Default)]
struct Buffers {
    read: Vec<u8>,
    out: Vec<u8>,
}

/// A pipe's place: its index in [`OutputPipes::slots`] and the generation
/// of that slot, which changes whenever the slot is given to another pipe.
/// It is the epoll event's data.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Token {
    index: u32,
    generation: u32,
}

impl Token {
    fn to_data(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    fn from_data(data: u64) -> Token {
        Token {
            index: data as u32,
            generation: (data >> 32) as u32,
        }
    }
}

#[derive(Default)]
struct Slot {
    generation: u32,
    pipe: Option<Pipe>,
}

/// The pipes of processes, in one private epoll set.
pub struct OutputPipes {
    /// The set (edge-triggered), registered with tokio's own.
    set: AsyncFd<OwnedFd>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// The pipes of each live process.
    by_pid: HashMap<u32, Vec<Token>>,
    /// Pipes to read: an edge came for them.
    ready: VecDeque<Token>,
    buffers: Buffers,
}

impl OutputPipes {
    /// An empty set (its epoll descriptor registered with the runtime).
    pub fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 reads no memory of ours.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the AsyncFd owns `fd`, which stays open and the same for its whole life.
        let set = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|err| err.into_parts().1)?;
        Ok(OutputPipes {
            set,
            slots: Vec::new(),
            free: Vec::new(),
            by_pid: HashMap::new(),
            ready: VecDeque::new(),
            buffers: Buffers::default(),
        })
    }

    /// Starts capturing a new task's output.
    pub fn watch(&mut self, pid: u32, task: TaskId, stdout: OwnedFd, stderr: OwnedFd) {
        self.add(pid, stdout, OutputStream::Stdout, Sink::Task(task));
        self.add(pid, stderr, OutputStream::Stderr, Sink::Task(task));
    }

    /// Starts writing a new instance process's output to its log file.
    pub fn watch_log(
        &mut self,
        pid: u32,
        file: Arc<Mutex<LogFile>>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) {
        for (fd, stream) in [
            (stdout, OutputStream::Stdout),
            (stderr, OutputStream::Stderr),
        ] {
            let sink = Sink::Log(LogSink::new(file.clone(), stream));
            self.add(pid, fd, stream, sink);
        }
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
        for (fd, stream) in [
            (stdout, OutputStream::Stdout),
            (stderr, OutputStream::Stderr),
        ] {
            let sink = hub.forwarder().sink(origin.clone(), to, stream);
            self.add(pid, fd, stream, forwarded(sink, stream));
        }
    }

    /// The task pipes to hand to a re-executed herdd: (pid, task, stream, descriptor).
    pub fn export(&self) -> Vec<(u32, TaskId, OutputStream, i32)> {
        let mut exported = Vec::new();
        for (pid, tokens) in &self.by_pid {
            for pipe in tokens.iter().filter_map(|token| self.pipe(*token)) {
                if let Sink::Task(task) = pipe.sink {
                    exported.push((*pid, task, pipe.stream, pipe.fd.as_raw_fd()));
                }
            }
        }
        exported
    }

    /// The log pipes to hand to a re-executed herdd. Unfinished lines are
    /// written now (marked partial): the new image starts each pipe afresh.
    pub fn export_logs(&mut self) -> Vec<LogPipe> {
        let mut exported = Vec::new();
        let tokens: Vec<(u32, Token)> = self
            .by_pid
            .iter()
            .flat_map(|(pid, tokens)| tokens.iter().map(|token| (*pid, *token)))
            .collect();
        for (pid, token) in tokens {
            let Some(pipe) = self.pipe_mut(token) else {
                continue;
            };
            let (id, instance, to, process) = match &mut pipe.sink {
                Sink::Task(_) => continue,
                Sink::Log(sink) => {
                    sink.finish();
                    let file = lock(&sink.file);
                    let instance = file.instance().to_string();
                    (file.id().clone(), instance, LogTarget::File, pid)
                }
                Sink::Forward(sink) => {
                    Lines::finish(sink);
                    let origin = sink.sink.origin();
                    let id = InstanceId {
                        unit: origin.unit.clone(),
                        index: origin.index,
                    };
                    (id, origin.instance.clone(), sink.sink.target(), origin.pid)
                }
            };
            exported.push(LogPipe {
                pid,
                unit: id.unit,
                index: id.index,
                instance,
                stream: pipe.stream,
                fd: pipe.fd.as_raw_fd(),
                to,
                process,
            });
        }
        exported
    }

    /// Takes over task pipes exported by the previous image.
    pub fn import(&mut self, pipes: Vec<(u32, TaskId, OutputStream, OwnedFd)>) {
        for (pid, task, stream, fd) in pipes {
            self.add(pid, fd, stream, Sink::Task(task));
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
                    Sink::Log(LogSink::new(file, pipe.stream))
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
            self.add(pipe.pid, fd, pipe.stream, sink);
        }
    }

    /// Puts a pipe of `pid` in the set. A pipe that cannot be added is
    /// closed (its process then writes into nothing), and said.
    fn add(&mut self, pid: u32, fd: OwnedFd, stream: OutputStream, sink: Sink) {
        set_nonblocking(&fd);
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        let token = Token {
            index,
            generation: slot.generation,
        };
        if let Err(error) = control(&self.set, libc::EPOLL_CTL_ADD, &fd, token) {
            warn!(pid, %error, "cannot watch a process's output; it is not captured");
            self.free.push(index);
            return;
        }
        slot.pipe = Some(Pipe {
            fd,
            stream,
            sink,
            queued: false,
        });
        self.by_pid.entry(pid).or_default().push(token);
    }

    fn pipe(&self, token: Token) -> Option<&Pipe> {
        let slot = self.slots.get(token.index as usize)?;
        slot.pipe
            .as_ref()
            .filter(|_| slot.generation == token.generation)
    }

    fn pipe_mut(&mut self, token: Token) -> Option<&mut Pipe> {
        pipe_in(&mut self.slots, token)
    }

    /// Closes a pipe (which takes it out of the set) and frees its slot.
    fn close(&mut self, token: Token) {
        let Some(slot) = self.slots.get_mut(token.index as usize) else {
            return;
        };
        if slot.generation != token.generation {
            return;
        }
        if let Some(mut pipe) = slot.pipe.take() {
            pipe.finish_lines();
            slot.generation = slot.generation.wrapping_add(1);
            self.free.push(token.index);
        }
    }

    /// Waits until some pipe may have something to read (or its end). Safe
    /// to cancel: what it learnt is kept for [`OutputPipes::read_ready`].
    pub async fn wait(&mut self) {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        loop {
            if !self.ready.is_empty() {
                return;
            }
            let Ok(mut guard) = self.set.readable().await else {
                return std::future::pending().await;
            };
            let taken = guard.try_io(|set| {
                // SAFETY: `events` has room for EVENTS entries; timeout 0.
                let n = unsafe {
                    libc::epoll_wait(set.as_raw_fd(), events.as_mut_ptr(), EVENTS as i32, 0)
                };
                match n {
                    n if n < 0 => Err(io::Error::last_os_error()),
                    0 => Err(io::ErrorKind::WouldBlock.into()),
                    n => Ok(n as usize),
                }
            });
            let n = match taken {
                Ok(Ok(n)) => n,
                Ok(Err(_)) | Err(_) => 0,
            };
            if n > 0 && n < EVENTS {
                // Everything pending was taken: the next events reach us
                // through the runtime's own epoll, in its turn with every
                // other task's (clients' connections among them), so a
                // process writing flat out cannot hold the loop.
                guard.clear_ready();
            }
            drop(guard);
            {
                for event in &events[..n] {
                    self.mark_ready(Token::from_data(event.u64));
                }
            }
        }
    }

    /// Queues a pipe for reading, unless it is queued already or gone (an
    /// event of a closed pipe's copy in a child not yet exec'd).
    fn mark_ready(&mut self, token: Token) {
        if let Some(pipe) = self.pipe_mut(token) {
            if !pipe.queued {
                pipe.queued = true;
                self.ready.push_back(token);
            }
        }
    }

    /// One read of each pipe that was ready when called: task chunks for
    /// the core, in the order read; log lines are written. A pipe whose
    /// read filled the buffer is reported again by the set (a later turn
    /// reads on); one at its end is closed.
    pub fn read_ready(&mut self) -> Vec<Input> {
        let mut chunks = Vec::new();
        for _ in 0..self.ready.len() {
            let Some(token) = self.ready.pop_front() else {
                break;
            };
            let buffers = &mut self.buffers;
            let Some(pipe) = pipe_in(&mut self.slots, token) else {
                continue;
            };
            match pipe.read(buffers) {
                Read::Data { chunk, full } => {
                    chunks.extend(chunk);
                    pipe.queued = false;
                    if full {
                        // More may be waiting, and no edge comes for it:
                        // re-arming makes the set report it again.
                        rearm(&self.set, &pipe.fd, token);
                    }
                }
                Read::Empty => pipe.queued = false,
                Read::End => self.close(token),
            }
        }
        chunks
    }

    /// Everything `pid` wrote that is still in its pipes, read without
    /// waiting: task chunks to feed to the core; log lines are written (an
    /// unfinished last line too, marked partial). A pipe at its end is
    /// closed; one that a grandchild still holds stays in the set until
    /// its end.
    pub fn drain(&mut self, pid: u32) -> Vec<Input> {
        let mut chunks = Vec::new();
        for token in self.by_pid.remove(&pid).into_iter().flatten() {
            let mut ended = false;
            for _ in 0..DRAIN_READS {
                let buffers = &mut self.buffers;
                let Some(pipe) = pipe_in(&mut self.slots, token) else {
                    break;
                };
                match pipe.read(buffers) {
                    Read::Data { chunk, .. } => chunks.extend(chunk),
                    Read::Empty => break,
                    Read::End => {
                        ended = true;
                        break;
                    }
                }
            }
            if ended {
                self.close(token);
            } else if let Some(pipe) = self.pipe_mut(token) {
                pipe.finish_lines();
            }
        }
        chunks
    }

    /// How many pipes are open (for tests).
    #[cfg(test)]
    fn open(&self) -> usize {
        self.slots.iter().filter(|slot| slot.pipe.is_some()).count()
    }
}

/// The pipe `token` names, unless its slot was freed (and maybe reused) since.
fn pipe_in(slots: &mut [Slot], token: Token) -> Option<&mut Pipe> {
    let slot = slots.get_mut(token.index as usize)?;
    slot.pipe
        .as_mut()
        .filter(|_| slot.generation == token.generation)
}

/// Adds (`EPOLL_CTL_ADD`) or re-arms (`EPOLL_CTL_MOD`) a pipe in the set,
/// edge-triggered, its events carrying `token`.
fn control(set: &AsyncFd<OwnedFd>, op: libc::c_int, fd: &OwnedFd, token: Token) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
        u64: token.to_data(),
    };
    // SAFETY: both descriptors are open; the kernel copies `event`.
    let done =
        unsafe { libc::epoll_ctl(set.get_ref().as_raw_fd(), op, fd.as_raw_fd(), &mut event) };
    if done < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the set report `fd` again if it is still readable (a modify
/// re-checks readiness): after a read that filled the buffer.
fn rearm(set: &AsyncFd<OwnedFd>, fd: &OwnedFd, token: Token) {
    if let Err(error) = control(set, libc::EPOLL_CTL_MOD, fd, token) {
        warn!(%error, "cannot re-arm an output pipe; it is read on its next write");
    }
}

fn forwarded(sink: ForwardSink, stream: OutputStream) -> Sink {
    Sink::Forward(ForwardedLines {
        sink,
        lines: LineSplitter::new(stream),
        grown: false,
    })
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
    use std::time::Duration;

    /// Waits (at most 10 s) for something to read, and reads it.
    async fn next_turn(pipes: &mut OutputPipes) -> Vec<Input> {
        tokio::time::timeout(Duration::from_secs(10), pipes.wait())
            .await
            .expect("no output pipe became ready within 10 s");
        pipes.read_ready()
    }

    /// (task, stream, bytes) of each chunk.
    fn chunks(inputs: Vec<Input>) -> Vec<(TaskId, OutputStream, Vec<u8>)> {
        inputs
            .into_iter()
            .map(|input| match input {
                Input::Output { task, stream, data } => (task, stream, data),
                _ => panic!("not an output chunk"),
            })
            .collect()
    }

    fn task_pipes(pipes: &mut OutputPipes, pid: u32, task: TaskId) -> (OwnedFd, OwnedFd) {
        let (stdout, stdout_writer) = nix::unistd::pipe().unwrap();
        let (stderr, stderr_writer) = nix::unistd::pipe().unwrap();
        pipes.watch(pid, task, stdout, stderr);
        (stdout_writer, stderr_writer)
    }

    #[tokio::test]
    async fn a_turn_reads_each_ready_pipe_once_and_everything_comes_in_order() {
        let mut pipes = OutputPipes::new().unwrap();
        let (a_out, a_err) = task_pipes(&mut pipes, 1, 7);
        let (b_out, _b_err) = task_pipes(&mut pipes, 2, 8);
        set_nonblocking(&a_out);
        // `a` fills its pipe (the kernel's 64 KiB), `b` writes a line and so does `a`'s stderr.
        let pattern: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut written = 0;
        while let Ok(n) = nix::unistd::write(&a_out, &pattern[written..]) {
            written += n;
        }
        nix::unistd::write(&b_out, b"b\n").unwrap();
        nix::unistd::write(&a_err, b"e\n").unwrap();

        let first = chunks(next_turn(&mut pipes).await);
        let mut tasks: Vec<_> = first
            .iter()
            .map(|(task, stream, _)| (*task, *stream))
            .collect();
        tasks.sort_by_key(|(task, stream)| (*task, *stream == OutputStream::Stderr));
        assert_eq!(
            tasks,
            [
                (7, OutputStream::Stdout),
                (7, OutputStream::Stderr),
                (8, OutputStream::Stdout)
            ],
            "one read of each ready pipe per turn"
        );
        // The rest of `a`'s stdout, as its writer goes on, in order.
        let mut got: Vec<u8> = first
            .into_iter()
            .filter(|(task, stream, _)| (*task, *stream) == (7, OutputStream::Stdout))
            .flat_map(|(_, _, data)| data)
            .collect();
        while got.len() < pattern.len() {
            match nix::unistd::write(&a_out, &pattern[written..]) {
                Ok(n) => written += n,
                Err(Errno::EAGAIN) => {}
                Err(err) => panic!("{err}"),
            }
            for (task, stream, data) in chunks(next_turn(&mut pipes).await) {
                assert_eq!((task, stream), (7, OutputStream::Stdout));
                got.extend(data);
            }
        }
        assert_eq!(got, pattern);
    }

    #[tokio::test]
    async fn a_pipe_a_grandchild_holds_is_read_after_the_exit_until_its_end() {
        let mut pipes = OutputPipes::new().unwrap();
        let (out, err) = task_pipes(&mut pipes, 1, 7);
        nix::unistd::write(&out, b"before exit\n").unwrap();
        drop(err); // the task's stderr ends with it; its stdout lives on in a grandchild
        let drained = chunks(pipes.drain(1));
        assert_eq!(
            drained,
            [(7, OutputStream::Stdout, b"before exit\n".to_vec())]
        );
        assert_eq!(
            pipes.open(),
            1,
            "stderr, at its end, is closed; stdout is not"
        );

        nix::unistd::write(&out, b"after\n").unwrap();
        let later = chunks(next_turn(&mut pipes).await);
        assert_eq!(later, [(7, OutputStream::Stdout, b"after\n".to_vec())]);
        drop(out);
        while pipes.open() > 0 {
            assert!(next_turn(&mut pipes).await.is_empty());
        }
    }

    #[tokio::test]
    async fn pipes_at_their_end_are_closed_at_the_exit_and_their_slots_reused() {
        let mut pipes = OutputPipes::new().unwrap();
        for pid in 1..=1000 {
            let (out, err) = task_pipes(&mut pipes, pid, u64::from(pid));
            nix::unistd::write(&out, format!("{pid}\n").as_bytes()).unwrap();
            drop((out, err));
            let got = chunks(pipes.drain(pid));
            assert_eq!(
                got,
                [(
                    u64::from(pid),
                    OutputStream::Stdout,
                    format!("{pid}\n").into_bytes()
                )]
            );
            assert_eq!(pipes.open(), 0);
        }
        assert_eq!(
            pipes.slots.len(),
            2,
            "each task reused the slots of the one before"
        );
        // Their events (still queued in the set when they were closed) are
        // gone with them or ignored: nothing is read.
        assert!(pipes.read_ready().is_empty());
    }
}
