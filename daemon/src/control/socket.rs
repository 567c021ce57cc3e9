//! The control socket's place in the file system: the socket at its path,
//! created only where nobody else could tamper with it, and the lock that
//! makes it this herdd's. Serving it is `listener.rs`'s business; each
//! connection's, `connection.rs`'s.

use super::auth::Policy;
use crate::shell::reexec;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UnixListener;

/// How long herdd waits for its socket's lock while no herdd answers
/// there (see `lock_patience`).
const LOCK_HOLDER_WAIT: Duration = Duration::from_secs(5);

/// The bound socket, plus the lock that makes it ours. Dropping it removes the socket file.
pub struct Control {
    pub listener: UnixListener,
    /// Who may send what; shared by every connection task.
    pub policy: Arc<Policy>,
    path: PathBuf,
    /// flock'ed `<socket>.lock`: a second herdd on the same socket fails to take it.
    _lock: Flock<File>,
}

impl Control {
    /// Binds the socket at `path`, with `control_group` (from `[herd]`) allowed
    /// to control herd. Refuses a path someone else could tamper with.
    pub fn bind(path: &Path, control_group: Option<&str>) -> anyhow::Result<Control> {
        let policy = Arc::new(Policy::load(control_group)?);
        let own_uid = policy.own_uid;
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            if !dir.exists() {
                // Searchable by all, whatever the umask: the peer-credential
                // check, not the path, keeps strangers read-only. An admin who
                // wants them out entirely makes the directory 0750 or 0700
                // (README: "Authorisation and limits").
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
            policy,
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

fn take_lock(socket: &Path, own_uid: u32) -> anyhow::Result<Flock<File>> {
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
    // The lock may be held by no herdd at all: a child that herdd was
    // starting keeps a copy of the descriptor until its own exec closes it.
    // After `daemon-reexec` that is the previous image's child; after herdd
    // was killed, one of the dead herdd's, and then nothing answers on the
    // socket. Wait for that, briefly, instead of failing (nothing is served
    // yet: sleeping blocks nobody). A herdd that answers is running: refuse
    // at once.
    let mut patience = None;
    let started = Instant::now();
    let mut lock = lock;
    let taken = loop {
        match Flock::lock(lock, FlockArg::LockExclusiveNonblock) {
            Err((file, Errno::EWOULDBLOCK))
                if started.elapsed() < *patience.get_or_insert_with(|| lock_patience(socket)) =>
            {
                lock = file;
                std::thread::sleep(Duration::from_millis(5));
            }
            other => break other,
        }
    };
    taken.map_err(|(_, errno)| match errno {
        Errno::EWOULDBLOCK => anyhow::anyhow!(
            "another herdd is already running on {} (it holds {})",
            socket.display(),
            lock_path.display()
        ),
        errno => anyhow::anyhow!("cannot lock {}: {errno}", lock_path.display()),
    })
}

/// How long a held lock is waited for: a while when herdd re-executes or
/// when no herdd answers on `socket` (the holder is a child on its way to
/// its exec), not at all when one does.
fn lock_patience(socket: &Path) -> Duration {
    if reexec::is_resuming() || !answers_on(socket) {
        LOCK_HOLDER_WAIT
    } else {
        Duration::ZERO
    }
}

/// Whether something replies on `socket` within a second. A connect alone
/// proves nothing: that child of a killed herdd also holds a copy of the old
/// listening socket, which takes connections that nobody will ever answer.
fn answers_on(socket: &Path) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let mut first = [0u8; 1];
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .is_ok()
        && stream
            .write_all(b"{\"v\":1,\"cmd\":\"event-list\"}\n")
            .is_ok()
        && matches!(stream.read(&mut first), Ok(1))
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
}
