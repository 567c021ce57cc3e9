//! herdd's own readiness, for `Type=notify` under systemd: `READY=1` once the
//! control socket is up and the state is restored, `STOPPING=1` when a
//! shutdown begins. `NOTIFY_SOCKET` is taken out of herdd's environment at
//! start, so that children never inherit systemd's socket (units with
//! `ready = "notify"` get herdd's own).

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use tracing::debug;

pub struct SystemdNotifier {
    target: Option<SocketAddr>,
}

impl SystemdNotifier {
    /// Reads and clears `NOTIFY_SOCKET`. Call before anything is spawned.
    pub fn from_env() -> SystemdNotifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            std::env::remove_var("NOTIFY_SOCKET");
            let path = path.to_string_lossy().into_owned();
            match path.strip_prefix('@') {
                Some(name) => SocketAddr::from_abstract_name(name.as_bytes()).ok(),
                None => SocketAddr::from_pathname(&path).ok(),
            }
        });
        SystemdNotifier { target }
    }

    pub fn ready(&self) {
        self.send("READY=1\nSTATUS=supervising");
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    fn send(&self, message: &str) {
        let Some(target) = &self.target else { return };
        let sent = UnixDatagram::unbound()
            .and_then(|socket| socket.send_to_addr(message.as_bytes(), target));
        if let Err(err) = sent {
            debug!(error = %err, "cannot notify systemd");
        }
    }
}
