//! The control socket: JSON lines (docs/protocol.md), one task per connection.
//!
//! A connection handles one request at a time: it reads a line, decodes it,
//! hands it to the core and writes the reply. A slow, silent or malicious
//! client only ever blocks its own task, never the supervisor.

use herd_common::protocol::{decode_request, ErrorCode, Reply, Request, MAX_REQUEST_BYTES};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};

/// A decoded request on its way to the core, with where its reply goes.
pub struct Incoming {
    pub request: Request,
    pub reply: oneshot::Sender<Reply>,
}

/// The bound socket, plus the lock that makes it ours. Dropping it removes the socket file.
pub struct Control {
    pub listener: UnixListener,
    path: PathBuf,
    /// flock'ed `<socket>.lock`: a second herdd on the same socket fails to take it.
    _lock: File,
}

impl Control {
    pub fn bind(path: &Path) -> anyhow::Result<Control> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|err| anyhow::anyhow!("cannot create {}: {err}", dir.display()))?;
        }
        let lock = take_lock(path)?;
        // We hold the lock, so whatever is at `path` was left by a dead herdd.
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
            Ok(_) => anyhow::bail!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            ),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => anyhow::bail!("{}: {err}", path.display()),
        }
        let listener = UnixListener::bind(path)
            .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", path.display()))?;
        // Owner only until authorisation by peer credentials exists.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(Control {
            listener,
            path: path.to_path_buf(),
            _lock: lock,
        })
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn take_lock(socket: &Path) -> anyhow::Result<File> {
    let mut lock_path = socket.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|err| anyhow::anyhow!("cannot open {}: {err}", Path::new(&lock_path).display()))?;
    // SAFETY: flock on a descriptor we own.
    let taken = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !taken {
        anyhow::bail!(
            "another herdd is already running on {} (it holds {})",
            socket.display(),
            Path::new(&lock_path).display()
        );
    }
    Ok(lock)
}

/// Serves one connection until the client closes it, misbehaves, or herdd
/// exits (`closing` turns true; a request in progress is still answered).
pub async fn serve(
    stream: UnixStream,
    core: mpsc::UnboundedSender<Incoming>,
    mut closing: watch::Receiver<bool>,
) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = tokio::select! {
            read = read_line(&mut reader, &mut line) => read,
            _ = closing.wait_for(|closing| *closing) => return,
        };
        let reply = match read {
            Ok(Line::Complete) if line.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(Line::Complete) => match decode_request(&line) {
                Ok(request) => ask_core(&core, request).await,
                Err(body) => Reply::Error(body),
            },
            Ok(Line::TooLong) => {
                let reply = Reply::error(
                    ErrorCode::TooLarge,
                    format!("request longer than {MAX_REQUEST_BYTES} bytes"),
                );
                // The rest of the line cannot be parsed; close after telling why.
                let _ = write.write_all(reply.to_line().as_bytes()).await;
                return;
            }
            Ok(Line::End) | Err(_) => return,
        };
        if write.write_all(reply.to_line().as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn ask_core(core: &mpsc::UnboundedSender<Incoming>, request: Request) -> Reply {
    let (reply, answer) = oneshot::channel();
    let gone = || Reply::error(ErrorCode::ShuttingDown, "herdd is shutting down");
    if core.send(Incoming { request, reply }).is_err() {
        return gone();
    }
    answer.await.unwrap_or_else(|_| gone())
}

enum Line {
    Complete,
    TooLong,
    End,
}

/// Reads up to a newline, never buffering more than [`MAX_REQUEST_BYTES`].
async fn read_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
) -> io::Result<Line> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
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
            return Ok(Line::Complete);
        }
    }
}
