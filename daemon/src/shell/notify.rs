//! The sd_notify socket for `ready = "notify"` units: a datagram socket whose
//! path herdd passes in `NOTIFY_SOCKET`, read with `SO_PASSCRED` so that each
//! message comes with its sender's pid. The core matches the pid to an
//! instance (its main process, or a process in its process group);
//! messages from strangers are ignored.

use nix::sys::socket::{
    recvmsg, setsockopt, sockopt::PassCred, ControlMessageOwned, MsgFlags, UnixAddr,
};
use std::io::{self, IoSliceMut};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use tokio::net::UnixDatagram;

/// Longest message we read; sd_notify messages are short.
const MAX_MESSAGE: usize = 4096;

/// One notification: the sender's pid and process group, and `KEY=VALUE` fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub pid: u32,
    pub pgid: Option<u32>,
    pub fields: Vec<(String, String)>,
}

pub struct NotifySocket {
    socket: UnixDatagram,
    pub path: PathBuf,
}

impl NotifySocket {
    /// Binds `path` (replacing a stale file: the control socket's lock is held).
    pub fn bind(path: &Path) -> io::Result<NotifySocket> {
        let _ = std::fs::remove_file(path);
        let socket = UnixDatagram::bind(path)?;
        setsockopt(&socket, PassCred, &true).map_err(io::Error::from)?;
        // Any local process may notify; the sender's credentials decide what counts.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
        Ok(NotifySocket {
            socket,
            path: path.to_path_buf(),
        })
    }

    /// Waits for the next well-formed message.
    pub async fn recv(&self) -> Notification {
        loop {
            if self.socket.readable().await.is_err() {
                continue;
            }
            match self.socket.try_io(tokio::io::Interest::READABLE, || {
                receive(self.socket.as_raw_fd())
            }) {
                Ok(Some(notification)) => return notification,
                Ok(None) => continue,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => {
                    tracing::debug!(error = %err, "notify socket read failed");
                    continue;
                }
            }
        }
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One `recvmsg`: `None` for a message without credentials or not UTF-8.
fn receive(fd: i32) -> io::Result<Option<Notification>> {
    let mut buffer = [0u8; MAX_MESSAGE];
    let mut iov = [IoSliceMut::new(&mut buffer)];
    let mut space = nix::cmsg_space!(libc::ucred, [i32; 16]);
    let message = recvmsg::<UnixAddr>(fd, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(io::Error::from)?;
    let mut pid = None;
    for control in message.cmsgs().map_err(io::Error::from)? {
        match control {
            ControlMessageOwned::ScmCredentials(credentials) => {
                pid = Some(credentials.pid() as u32)
            }
            // systemd-notify sends a BARRIER fd and waits for it to close: close at once.
            ControlMessageOwned::ScmRights(fds) => {
                for fd in fds {
                    // SAFETY: the kernel just gave us these descriptors; nobody else owns them.
                    unsafe { libc::close(fd) };
                }
            }
            _ => {}
        }
    }
    let length = message.bytes;
    let (Some(pid), Ok(text)) = (pid, std::str::from_utf8(&buffer[..length])) else {
        return Ok(None);
    };
    let fields = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    Ok(Some(Notification {
        pid,
        pgid: process_group(pid),
        fields,
    }))
}

/// The process group of `pid`, from `/proc/PID/stat` (field 5).
fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(2)?.parse().ok()
}
