//! Captured task output: the read ends of each task's stdout/stderr pipes.
//!
//! A reader task per pipe forwards chunks as they come. When the process
//! exits, the event loop drains what is left in its pipes *before* reporting
//! the exit, so a joined task's output is complete. Exit is never detected by
//! EOF: a background grandchild may hold a pipe open for ever; its later
//! writes are still captured until EOF.

use crate::core::Input;
use herd_common::protocol::{OutputStream, TaskId};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc;
use tracing::warn;

const READ_SIZE: usize = 64 * 1024;

struct Pipe {
    fd: AsyncFd<OwnedFd>,
    task: TaskId,
    stream: OutputStream,
}

impl Pipe {
    /// One non-blocking read: `Ok(None)` at EOF, `WouldBlock` when empty.
    fn read_chunk(&self) -> io::Result<Option<Input>> {
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
                task: self.task,
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

    /// Starts forwarding a new process's output.
    pub fn watch(&mut self, pid: u32, task: TaskId, stdout: OwnedFd, stderr: OwnedFd) {
        let streams = [
            (stdout, OutputStream::Stdout),
            (stderr, OutputStream::Stderr),
        ];
        self.watch_streams(pid, task, streams.into());
    }

    /// The pipes to hand to a re-executed herdd: (pid, task, stream, descriptor).
    pub fn export(&self) -> Vec<(u32, TaskId, OutputStream, i32)> {
        self.by_pid
            .iter()
            .flat_map(|(pid, pipes)| {
                pipes
                    .iter()
                    .map(|p| (*pid, p.task, p.stream, p.fd.get_ref().as_raw_fd()))
            })
            .collect()
    }

    /// Takes over pipes exported by the previous image.
    pub fn import(&mut self, pipes: Vec<(u32, TaskId, OutputStream, OwnedFd)>) {
        for (pid, task, stream, fd) in pipes {
            self.watch_streams(pid, task, vec![(fd, stream)]);
        }
    }

    fn watch_streams(&mut self, pid: u32, task: TaskId, streams: Vec<(OwnedFd, OutputStream)>) {
        let mut pipes = Vec::with_capacity(streams.len());
        for (fd, stream) in streams {
            set_nonblocking(&fd);
            // SAFETY: the AsyncFd owns `fd`, which stays open and the same for its whole life.
            match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
                Ok(fd) => pipes.push(Arc::new(Pipe { fd, task, stream })),
                Err(err) => {
                    warn!(task, error = %err, "cannot watch task output; it is not captured")
                }
            }
        }
        for pipe in &pipes {
            tokio::spawn(forward(pipe.clone(), self.chunks.clone()));
        }
        self.by_pid.entry(pid).or_default().extend(pipes);
    }

    /// Everything `pid` wrote that is still in its pipes, read without waiting.
    /// The reader tasks keep going until EOF (grandchildren may still write).
    pub fn drain(&mut self, pid: u32) -> Vec<Input> {
        let mut chunks = Vec::new();
        for pipe in self.by_pid.remove(&pid).into_iter().flatten() {
            while let Ok(Some(chunk)) = pipe.read_chunk() {
                chunks.push(chunk);
            }
        }
        chunks
    }
}

/// Forwards one pipe's chunks until EOF or an error.
async fn forward(pipe: Arc<Pipe>, chunks: mpsc::UnboundedSender<Input>) {
    loop {
        let Ok(mut ready) = pipe.fd.readable().await else {
            return;
        };
        match ready.try_io(|_| pipe.read_chunk()) {
            Ok(Ok(Some(chunk))) => {
                if chunks.send(chunk).is_err() {
                    return;
                }
            }
            Ok(Ok(None)) | Ok(Err(_)) => return,
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
