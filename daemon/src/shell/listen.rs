//! Listening sockets herdd binds and holds (`[socket.NAME]`), handed to the
//! services that name them (descriptors 3.., the systemd socket-activation
//! convention). herdd holds them, not the workers: connections wait in the
//! backlog while an instance restarts, and a worker needs no privilege to
//! serve port 80.
//!
//! Sockets are bound before anything is started, kept across reloads while
//! their address stays the same (a changed address is bound anew; a reload
//! that cannot bind changes nothing), and handed to the next image at
//! `daemon-reexec` in `HERD_LISTEN_FDS` (their close-on-exec flag cleared
//! for that one exec; `inherited.rs` runs before they are adopted).

use herd_config::{ListenAddress, SocketConfig};
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

/// The environment variable that carries the sockets across `daemon-reexec`:
/// a JSON list of `[address, descriptor]`.
const HANDOVER_VAR: &str = "HERD_LISTEN_FDS";

/// One bound, listening socket.
struct Held {
    config: SocketConfig,
    fd: OwnedFd,
}

/// Every socket herdd holds, by name.
#[derive(Default)]
pub struct Sockets {
    held: BTreeMap<String, Held>,
}

/// What `status` shows of one socket.
#[derive(Debug, Clone)]
pub struct SocketInfo {
    pub name: String,
    pub listen: String,
}

impl Sockets {
    /// Binds every socket of the config, taking over those the previous
    /// image handed over (same address) instead of binding them again.
    pub fn open(configs: &[SocketConfig]) -> Result<Sockets, String> {
        let mut inherited = take_handover();
        let mut sockets = Sockets::default();
        sockets.apply_with(configs, &mut inherited)?;
        // Whatever the new config no longer names is closed here.
        drop(inherited);
        Ok(sockets)
    }

    /// Makes the held sockets those of `configs`: unchanged addresses keep
    /// their socket (backlog and Unix permissions updated), new ones are
    /// bound, the rest closed. All or nothing: on an error nothing changes.
    pub fn apply(&mut self, configs: &[SocketConfig]) -> Result<(), String> {
        let mut current = BTreeMap::new();
        for held in self.held.values() {
            let copy = held.fd.try_clone().map_err(|err| err.to_string())?;
            current.insert(held.config.listen.to_string(), copy);
        }
        let mut next = Sockets::default();
        next.apply_with(configs, &mut current)?;
        let removed: Vec<ListenAddress> = self
            .held
            .values()
            .map(|held| held.config.listen.clone())
            .filter(|old| next.held.values().all(|new| new.config.listen != *old))
            .collect();
        *self = next;
        for address in removed {
            if let ListenAddress::Unix(path) = address {
                let _ = std::fs::remove_file(path);
            }
        }
        Ok(())
    }

    /// Fills `self` (empty) with `configs`, taking sockets from `reusable`
    /// (by address) where it can.
    fn apply_with(
        &mut self,
        configs: &[SocketConfig],
        reusable: &mut BTreeMap<String, OwnedFd>,
    ) -> Result<(), String> {
        for config in configs {
            let fd = match reusable.remove(&config.listen.to_string()) {
                Some(fd) => fd,
                None => bind(&config.listen).map_err(|err| {
                    format!(
                        "{}: cannot bind socket `{}` to {}: {err}",
                        config.defined_at, config.name, config.listen
                    )
                })?,
            };
            configure(&fd, config).map_err(|err| {
                format!(
                    "{}: cannot set up socket `{}` ({}): {err}",
                    config.defined_at, config.name, config.listen
                )
            })?;
            let held = Held {
                config: config.clone(),
                fd,
            };
            self.held.insert(config.name.clone(), held);
        }
        Ok(())
    }

    /// The descriptors of `names`, in order; an error names the first one
    /// not held (cannot happen with a validated config).
    pub fn descriptors(&self, names: &[String]) -> Result<Vec<RawFd>, String> {
        names
            .iter()
            .map(|name| match self.held.get(name) {
                Some(held) => Ok(held.fd.as_raw_fd()),
                None => Err(format!("socket `{name}` is not bound")),
            })
            .collect()
    }

    /// Name and address of each socket, in name order.
    pub fn list(&self) -> Vec<SocketInfo> {
        self.held
            .values()
            .map(|held| SocketInfo {
                name: held.config.name.clone(),
                listen: held.config.listen.to_string(),
            })
            .collect()
    }

    /// Clears the close-on-exec flag of every socket and names them in
    /// `HERD_LISTEN_FDS` for the next image: call just before the re-exec.
    pub fn hand_over(&self) {
        let list: Vec<(String, RawFd)> = self
            .held
            .values()
            .map(|held| {
                let fd = held.fd.as_raw_fd();
                // SAFETY: fcntl on a descriptor herdd owns.
                unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
                (held.config.listen.to_string(), fd)
            })
            .collect();
        if let Ok(text) = serde_json::to_string(&list) {
            std::env::set_var(HANDOVER_VAR, text);
        }
    }

    /// After a failed re-exec: the sockets go back to close-on-exec.
    pub fn keep_after_failed_handover(&self) {
        std::env::remove_var(HANDOVER_VAR);
        for held in self.held.values() {
            // SAFETY: fcntl on a descriptor herdd owns.
            unsafe { libc::fcntl(held.fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}

/// The sockets the previous image handed over, by address (each marked
/// close-on-exec again). Clears the variable, so children never see it.
fn take_handover() -> BTreeMap<String, OwnedFd> {
    let Some(text) = std::env::var_os(HANDOVER_VAR) else {
        return BTreeMap::new();
    };
    std::env::remove_var(HANDOVER_VAR);
    let list: Vec<(String, RawFd)> =
        serde_json::from_str(&text.to_string_lossy()).unwrap_or_default();
    list.into_iter()
        .filter(|(_, fd)| super::reexec::is_open(*fd))
        .map(|(address, fd)| (address, super::reexec::adopt_pipe(fd)))
        .collect()
}

/// A new listening socket at `address` (close-on-exec).
fn bind(address: &ListenAddress) -> std::io::Result<OwnedFd> {
    match address {
        ListenAddress::Tcp(address) => Ok(std::net::TcpListener::bind(address)?.into()),
        ListenAddress::Unix(path) => {
            remove_stale(path)?;
            Ok(std::os::unix::net::UnixListener::bind(path)?.into())
        }
    }
}

/// A socket file left by an earlier run is removed (nothing listens on it:
/// herdd's own sockets are reused, not rebound); any other file is an error.
fn remove_stale(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "a file that is not a socket is in the way",
        )),
        Err(_) => Ok(()),
    }
}

/// Applies the backlog (again: `listen` may be called on a listening
/// socket) and, for a Unix socket, its file's mode and owner.
fn configure(fd: &OwnedFd, config: &SocketConfig) -> std::io::Result<()> {
    let backlog = config.backlog.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: listen on a socket herdd owns.
    if unsafe { libc::listen(fd.as_raw_fd(), backlog) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let ListenAddress::Unix(path) = &config.listen else {
        return Ok(());
    };
    if let Some(mode) = config.mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    let uid = config.user.as_ref().map(|user| user.uid);
    let gid = config.group.as_ref().map(|group| group.gid);
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(path, uid, gid)?;
    }
    Ok(())
}

/// Gives `spec` its sockets: the descriptors, `LISTEN_FDS`, `LISTEN_FDNAMES`
/// and a `LISTEN_PID` the fork child fills in with its own pid.
pub fn pass(spec: &mut crate::core::SpawnSpec, fds: Vec<RawFd>) {
    spec.env.insert("LISTEN_FDS".into(), fds.len().to_string());
    spec.env
        .insert("LISTEN_FDNAMES".into(), spec.sockets.join(":"));
    spec.env.insert("LISTEN_PID".into(), String::new());
    spec.listen_fds = fds;
}

/// Takes ownership of a raw descriptor (for tests).
#[cfg(test)]
fn owned(fd: RawFd) -> OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: test-only; the caller passes a descriptor it owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(name: &str, address: &str) -> SocketConfig {
        SocketConfig {
            name: name.into(),
            listen: ListenAddress::Tcp(address.parse().unwrap()),
            backlog: 16,
            mode: None,
            user: None,
            group: None,
            defined_at: "herd.toml:2:10: socket.web.listen".into(),
        }
    }

    #[test]
    fn an_unchanged_address_keeps_its_socket_and_a_failed_bind_changes_nothing() {
        let mut sockets = Sockets::open(&[tcp("web", "127.0.0.1:0")]).unwrap();
        let before = sockets.descriptors(&["web".into()]).unwrap()[0];
        let port = std::net::TcpListener::from(owned(unsafe_dup(before)))
            .local_addr()
            .unwrap();
        let mut kept = tcp("web", "127.0.0.1:0");
        kept.backlog = 64;
        // Port 0 means "any", so `127.0.0.1:0` is the same address again.
        sockets.apply(&[kept]).unwrap();
        let again = sockets.descriptors(&["web".into()]).unwrap()[0];
        let port_again = std::net::TcpListener::from(owned(unsafe_dup(again)))
            .local_addr()
            .unwrap();
        assert_eq!(port, port_again, "the socket was kept");
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = taken.local_addr().unwrap().to_string();
        let error = sockets
            .apply(&[tcp("web", "127.0.0.1:0"), tcp("api", &busy)])
            .unwrap_err();
        assert!(
            error.contains("herd.toml:2:10") && error.contains(&busy),
            "{error}"
        );
        assert_eq!(
            sockets.list().len(),
            1,
            "nothing changed: {:?}",
            sockets.list()
        );
        assert!(sockets.descriptors(&["api".into()]).is_err());
    }

    fn unsafe_dup(fd: RawFd) -> RawFd {
        // SAFETY: dup of a descriptor the test's `Sockets` holds.
        unsafe { libc::dup(fd) }
    }
}
