//! The D-Bus front end: `org.herd.Herd1` at `/org/herd/Herd1`, interface
//! `org.herd.Herd1.Manager` (docs/protocol.md, "D-Bus").
//!
//! An adapter, like the control socket: every method builds a
//! [`Request`](herd_common::protocol::Request),
//! sends it down the same channel as the socket's connections
//! ([`Incoming`](crate::shell::clients::Incoming)) and turns the core's
//! [`Reply`](herd_common::protocol::Reply) into the D-Bus reply. No
//! behaviour is implemented twice. `Request(s) -> s` takes a socket request
//! line and returns the reply line, which is what `herdctl --dbus` uses, so
//! both transports give identical results; the typed methods are for other
//! D-Bus clients and map each protocol error code to its own D-Bus error
//! (`org.herd.Herd1.Error.NoSuchUnit`, ...).
//!
//! # Who is the client
//! A caller is its unique bus name (`:1.42`): it gets a
//! [`ClientId`](crate::shell::clients::ClientId) from a
//! range of its own (socket connections count up from 1), and what it holds
//! (a semaphore slot from `sem-acquire`) is released when the bus says the
//! name has gone (`NameOwnerChanged`), however the caller ended. That
//! notice and the caller's requests reach the core in the order the bus
//! sent them: both go through `Callers` under one lock, and a request
//! from a name already gone is dropped rather than given a slot no one
//! would ever release.
//!
//! # Authorisation
//! The socket's rule ([`Policy::allows`]): anyone may read; changing things
//! takes root, herdd's own uid or membership of `control_group`. The
//! caller's uid and groups come from the bus
//! (`org.freedesktop.DBus.GetConnectionCredentials`, which the bus took
//! from the kernel when the caller connected), fetched once per caller and
//! only when it first asks for a change.
//!
//! # Signals
//! One task follows the [`EventHub`] and emits every lifecycle event as
//! `Event(s event_json)` (the same JSON line `herdctl events --json`
//! prints), plus typed ones: `InstanceChanged(s instance, s change)`,
//! `TaskFinished(t id, s pool, b success, s result)` and
//! `EventChanged(s name, b set)`.
//!
//! zbus runs on herdd's one current-thread tokio runtime (its `tokio`
//! feature, no thread of its own); its `unixexec`/`ibus` features stay off,
//! as they would bring in `tokio::process` and its competing SIGCHLD reaper.

mod callers;
mod errors;
mod front;
mod interface;
mod signals;

pub use callers::FIRST_CLIENT;
pub use errors::HerdError;

use super::auth::Policy;
use super::denials::Denials;
use crate::shell::clients::RequestSender;
use crate::shell::events::EventHub;
use callers::{follow_departures, Callers};
use front::Front;
use herd_common::dbus::{BUS_NAME, OBJECT_PATH};
use interface::Manager;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// The caller's credentials, as for the socket.
use super::auth::Peer;
use zbus::fdo::{self, RequestNameFlags, RequestNameReply};
use zbus::object_server::SignalEmitter;

/// How long herdd waits for the bus at start before it carries on without it.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`DbusServer::flush`] waits for replies still being sent.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// The running D-Bus front end. Dropping it stops its tasks and closes the
/// connection, which gives the name back.
pub struct DbusServer {
    connection: zbus::Connection,
    front: Arc<Front>,
    tasks: Vec<JoinHandle<()>>,
}

impl DbusServer {
    /// Waits (briefly) until every method the core has answered has sent
    /// its reply on the bus: before a re-exec or exit, so that the reply to
    /// `daemon-reexec` or `shutdown` is not lost with the connection.
    pub async fn flush(&self) {
        // Let method tasks woken by the last replies take them.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        let waited = tokio::time::timeout(FLUSH_TIMEOUT, async {
            loop {
                let returned = self.front.returned.notified();
                if self.front.answered.load(Ordering::SeqCst) == 0 {
                    break;
                }
                returned.await;
            }
        })
        .await;
        if waited.is_err() {
            warn!("some D-Bus callers did not take their last reply");
        }
        // The reply goes out in the same task, right after the method returns.
        tokio::task::yield_now().await;
    }

    /// The unique name herdd has on the bus (for the log).
    pub fn unique_name(&self) -> String {
        self.connection
            .unique_name()
            .map(|name| name.to_string())
            .unwrap_or_default()
    }
}

impl Drop for DbusServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Connects to `bus` (`[herd] dbus`: "system", "session" or an address),
/// serves the interface and takes the name; `None` when `bus` is "off" or
/// the bus cannot be had within 10 s (logged: herdd goes on
/// with its socket, because a supervisor must not die or hang for want of
/// a bus, above all after a re-exec with every child in its care).
pub async fn start(bus: &str, front: Sides) -> Option<DbusServer> {
    if bus == "off" {
        return None;
    }
    match tokio::time::timeout(START_TIMEOUT, connect(bus, front)).await {
        Ok(Ok(server)) => {
            info!(bus, name = BUS_NAME, unique = %server.unique_name(), "serving D-Bus");
            Some(server)
        }
        Ok(Err(err)) => {
            error!(bus, error = %err, "cannot serve D-Bus; going on with the socket only");
            None
        }
        Err(_) => {
            error!(
                bus,
                "the bus did not answer within {START_TIMEOUT:?}; going on with the socket only"
            );
            None
        }
    }
}

/// The builder for `bus`.
fn builder(bus: &str) -> zbus::connection::Builder<'static> {
    match bus {
        "system" => zbus::connection::Builder::system(),
        "session" => zbus::connection::Builder::session(),
        address => zbus::connection::Builder::address(address),
    }
}

/// What the D-Bus front end is given: the same as the socket's.
pub struct Sides {
    pub policy: Arc<Policy>,
    pub core: RequestSender,
    pub hub: Arc<EventHub>,
    pub denials: Arc<Denials>,
}

async fn connect(bus: &str, sides: Sides) -> zbus::Result<DbusServer> {
    let hub = sides.hub.clone();
    let front = Arc::new(Front {
        core: sides.core,
        policy: sides.policy,
        hub: sides.hub,
        denials: sides.denials,
        callers: Mutex::new(Callers::default()),
        calls: tokio::sync::Semaphore::new(front::max_calls()),
        max_calls: front::max_calls(),
        bus: OnceLock::new(),
        answered: AtomicUsize::new(0),
        returned: tokio::sync::Notify::new(),
    });
    // Served before the name is taken, so that no call to the name finds
    // the object missing.
    let connection = builder(bus)
        .serve_at(
            OBJECT_PATH,
            Manager {
                front: front.clone(),
            },
        )
        .build()
        .await?;
    let proxy = fdo::DBusProxy::new(&connection).await?;
    // Subscribed before anyone can call us by name: no departure is missed.
    // arg2 = "": the name has no new owner (it is gone).
    let departures = proxy
        .receive_name_owner_changed_with_args(&[(2, "")])
        .await?;
    let _ = front.bus.set(proxy);
    // Without DO_NOT_QUEUE: right after a re-exec the bus may not yet have
    // seen the old image's connection close; herdd then waits in line.
    let flags = RequestNameFlags::empty();
    match connection.request_name_with_flags(BUS_NAME, flags).await? {
        RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner => {}
        RequestNameReply::InQueue => warn!(
            name = BUS_NAME,
            "another connection owns the name; herdd waits in line for it"
        ),
        RequestNameReply::Exists => return Err(zbus::Error::NameTaken),
    }
    let emitter = SignalEmitter::new(&connection, OBJECT_PATH)?.into_owned();
    let tasks = vec![
        tokio::spawn(follow_departures(front.clone(), departures)),
        tokio::spawn(signals::emit_events(hub, emitter)),
    ];
    Ok(DbusServer {
        connection,
        front,
        tasks,
    })
}
