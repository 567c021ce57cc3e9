//! herdctl over D-Bus (`--dbus [system|session|ADDRESS]`).
//!
//! Every verb sends the very request line it would send on the socket
//! through herdd's generic method `org.herd.Herd1.Manager.Request` and gets
//! the very reply line back, so output and exit codes are the same on both
//! transports. What the socket tells by closing the connection is told on
//! the bus by herdd's unique name leaving it (`shutdown`, `daemon-reexec`,
//! the end of `events -f`). `events` reads `RecentEvents` and then follows
//! the `Event` signal.
//!
//! A semaphore slot taken over D-Bus belongs to this process's bus
//! connection, and herdd frees it when the bus says the connection is gone,
//! however herdctl ended; the socket is close-on-exec, so a command run by
//! `sem acquire` cannot keep it.
//!
//! zbus is async; herdctl is not. Each [`DbusClient`] owns a current-thread
//! tokio runtime and blocks on it for each call: no thread is started.

use crate::error::Error;
use herd_common::client::ClientError;
use herd_common::dbus::{
    error_code, BUS_NAME, EVENT_SIGNAL, INTERFACE, OBJECT_PATH, RECENT_EVENTS_METHOD,
    REQUEST_METHOD,
};
use herd_common::protocol::{encode_request, ErrorBody, ErrorCode, Reply, Request};
use std::collections::HashSet;
use std::pin::Pin;
use std::time::{Duration, Instant};
use zbus::fdo::DBusProxy;
use zbus::message::Type as MessageType;
use zbus::names::BusName;
use zbus::{DBusError, MatchRule, MessageStream};

/// How long a re-executed herdd may take to own its name again.
const BACK_WITHIN: Duration = Duration::from_secs(30);

/// Which bus `--dbus` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    System,
    Session,
    /// A D-Bus address (`unix:path=/run/dbus/system_bus_socket`).
    Address(String),
}

impl Bus {
    /// Parses the value of `--dbus` (clap's value parser): `system`,
    /// `session`, or an address, which always has a `:` (`unix:path=...`).
    pub fn parse(text: &str) -> Result<Bus, String> {
        match text {
            "system" => Ok(Bus::System),
            "session" => Ok(Bus::Session),
            address if address.contains(':') => Ok(Bus::Address(address.to_string())),
            other => Err(format!(
                "{other:?} is not a bus: expected \"system\", \"session\" or a D-Bus address \
                 such as \"unix:path=/run/dbus/system_bus_socket\""
            )),
        }
    }

    /// For messages: `the system bus`, `the bus at unix:path=...`.
    pub fn describe(&self) -> String {
        match self {
            Bus::System => "the system bus".to_string(),
            Bus::Session => "the session bus".to_string(),
            Bus::Address(address) => format!("the bus at {address}"),
        }
    }

    fn builder(&self) -> zbus::connection::Builder<'static> {
        match self {
            Bus::System => zbus::connection::Builder::system(),
            Bus::Session => zbus::connection::Builder::session(),
            Bus::Address(address) => zbus::connection::Builder::address(address.as_str()),
        }
    }
}

/// Why herdd cannot be talked to over D-Bus, before any request reached it.
#[derive(Debug)]
pub struct BusError {
    /// [`Bus::describe`] of the bus tried.
    pub bus: String,
    pub message: String,
    /// The bus refused us (its policy), rather than herdd being absent.
    pub denied: bool,
}

/// One connection to the bus, talking to whoever owns `org.herd.Herd1`.
pub struct DbusClient {
    runtime: tokio::runtime::Runtime,
    connection: zbus::Connection,
    bus: Bus,
    /// herdd's unique name when we connected: its leaving the bus is
    /// herdd's exit (or re-exec).
    owner: String,
}

impl DbusClient {
    /// Connects to `bus` and finds herdd on it; exit 6 (unreachable) if
    /// either fails.
    pub fn connect(bus: &Bus) -> Result<DbusClient, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| protocol(format!("cannot start an async runtime: {err}")))?;
        let connection = runtime.block_on(bus.builder().build()).map_err(|err| {
            unreachable(
                bus,
                format!("cannot connect to {}: {}", bus.describe(), describe(&err)),
            )
        })?;
        let owner = runtime
            .block_on(async {
                let proxy = DBusProxy::new(&connection).await?;
                let name = BusName::from_static_str(BUS_NAME)?;
                Ok::<_, zbus::Error>(proxy.get_name_owner(name).await?)
            })
            .map_err(|err| bus_failure(bus, &err))?;
        Ok(DbusClient {
            runtime,
            connection,
            bus: bus.clone(),
            owner: owner.to_string(),
        })
    }

    /// Sends `request` through `Request` and returns the `ok` payload, or
    /// herdd's error reply as [`ClientError::Remote`], exactly as the socket
    /// client does. A wait that herdd's re-exec cut short (`reconnect`) is
    /// taken up again with the new image once it is back on the bus.
    pub fn call(&mut self, request: &Request) -> Result<serde_json::Value, Error> {
        let started = Instant::now();
        let mut current = request.clone();
        loop {
            match self.call_once(&current) {
                Err(Error::Client(ClientError::Remote(body)))
                    if body.code == ErrorCode::Reconnect =>
                {
                    self.wait_back()?;
                    current = request.resumed(started.elapsed());
                }
                result => return result,
            }
        }
    }

    /// After a re-exec: waits until the old image has left the bus and the
    /// new one owns herdd's name.
    fn wait_back(&mut self) -> Result<(), Error> {
        self.wait_gone()?;
        let deadline = Instant::now() + BACK_WITHIN;
        loop {
            let owner = self.runtime.block_on(async {
                let proxy = DBusProxy::new(&self.connection).await?;
                let name = BusName::from_static_str(BUS_NAME)?;
                Ok::<_, zbus::Error>(proxy.get_name_owner(name).await?)
            });
            match owner {
                Ok(owner) => {
                    self.owner = owner.to_string();
                    return Ok(());
                }
                Err(err) if Instant::now() >= deadline => return Err(self.failure(&err)),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    fn call_once(&mut self, request: &Request) -> Result<serde_json::Value, Error> {
        let line = encode_request(request);
        let line = line.trim_end();
        let reply = self.runtime.block_on(async {
            let message = self
                .connection
                .call_method(
                    Some(BUS_NAME),
                    OBJECT_PATH,
                    Some(INTERFACE),
                    REQUEST_METHOD,
                    &(line,),
                )
                .await?;
            message.body().deserialize::<String>()
        });
        let reply = reply.map_err(|err| self.failure(&err))?;
        match serde_json::from_str::<Reply>(&reply) {
            Ok(Reply::Ok(payload)) => Ok(payload),
            Ok(Reply::Error(body)) => Err(Error::Client(ClientError::Remote(body))),
            Err(err) => Err(protocol(format!("bad reply {reply:?}: {err}"))),
        }
    }

    /// Waits until herdd (as it was when we connected) has left the bus:
    /// it exited, or re-executed (the new image has a new unique name).
    pub fn wait_gone(&mut self) -> Result<(), Error> {
        let owner = self.owner.clone();
        let result = self.runtime.block_on(async {
            let proxy = DBusProxy::new(&self.connection).await?;
            let mut changes = proxy
                .receive_name_owner_changed_with_args(&[(0, owner.as_str())])
                .await?;
            // Subscribed first, then asked: the departure cannot slip between.
            if !proxy
                .name_has_owner(BusName::try_from(owner.as_str())?)
                .await?
            {
                return Ok(());
            }
            while let Some(change) = next(&mut changes).await {
                if change.args()?.new_owner().is_none() {
                    return Ok(());
                }
            }
            // The bus itself went away: so did herdd's place on it.
            Ok(())
        });
        result.map_err(|err: zbus::Error| self.failure(&err))
    }

    /// `events [-f]`: hands each remembered event (a JSON EventLine) to
    /// `show`, then with `follow` each live one, until herdd leaves the bus.
    pub fn events(
        &mut self,
        follow: bool,
        mut show: impl FnMut(&str) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let owner = self.owner.clone();
        let connection = self.connection.clone();
        let failure = |err: zbus::Error| self.failure(&err);
        self.runtime.block_on(async {
            // Subscribed before the history is read, so nothing published
            // in between is missed; what is both in the history and in
            // the first signals is shown once.
            let mut live = None;
            let mut gone = None;
            if follow {
                let rule = MatchRule::builder()
                    .msg_type(MessageType::Signal)
                    .sender(owner.as_str())
                    .path(OBJECT_PATH)
                    .interface(INTERFACE)
                    .member(EVENT_SIGNAL)
                    .build()
                    .map_err(failure)?;
                let stream = MessageStream::for_match_rule(rule, &connection, None)
                    .await
                    .map_err(failure)?;
                live = Some(stream);
                let proxy = DBusProxy::new(&connection).await.map_err(failure)?;
                let changes = proxy
                    .receive_name_owner_changed_with_args(&[(0, owner.as_str())])
                    .await
                    .map_err(failure)?;
                gone = Some(changes);
            }
            let history: Vec<String> = async {
                connection
                    .call_method(
                        Some(BUS_NAME),
                        OBJECT_PATH,
                        Some(INTERFACE),
                        RECENT_EVENTS_METHOD,
                        &(),
                    )
                    .await?
                    .body()
                    .deserialize()
            }
            .await
            .map_err(failure)?;
            for line in &history {
                show(line)?;
            }
            let (Some(mut live), Some(mut gone)) = (live, gone) else {
                return Ok(());
            };
            let mut seen: HashSet<&str> = history.iter().map(String::as_str).collect();
            loop {
                tokio::select! {
                    message = next(&mut live) => {
                        let Some(message) = message else { return Ok(()) };
                        let line: String = message
                            .map_err(failure)?
                            .body()
                            .deserialize()
                            .map_err(failure)?;
                        if !seen.is_empty() {
                            if seen.contains(line.as_str()) {
                                continue;
                            }
                            // Past the history: no more duplicates can come.
                            seen.clear();
                        }
                        show(&line)?;
                    }
                    change = next(&mut gone) => match change {
                        // herdd has left the bus (shutdown, re-exec): the stream is over.
                        None => return Ok(()),
                        Some(change) => {
                            if change.args().map_err(failure)?.new_owner().is_none() {
                                return Ok(());
                            }
                        }
                    },
                }
            }
        })
    }

    /// Turns a zbus failure into herdctl's error: herdd absent or gone
    /// (exit 6), refused by the bus (exit 5), one of herdd's errors (its
    /// code's exit), or a broken exchange.
    fn failure(&self, err: &zbus::Error) -> Error {
        bus_failure(&self.bus, err)
    }
}

fn bus_failure(bus: &Bus, err: &zbus::Error) -> Error {
    let Some((name, text)) = error_name(err) else {
        return protocol(format!("D-Bus: {}", describe(err)));
    };
    if let Some(code) = error_code(&name) {
        return Error::Client(ClientError::Remote(ErrorBody::new(code, text)));
    }
    match name.as_str() {
        "org.freedesktop.DBus.Error.ServiceUnknown"
        | "org.freedesktop.DBus.Error.NameHasNoOwner" => unreachable(
            bus,
            format!(
                "herdd is not running (no one owns {BUS_NAME} on {})",
                bus.describe()
            ),
        ),
        "org.freedesktop.DBus.Error.AccessDenied" => Error::Bus(BusError {
            bus: bus.describe(),
            message: format!(
                "permission denied ({} refused the call to {BUS_NAME}: {text})",
                bus.describe()
            ),
            denied: true,
        }),
        "org.freedesktop.DBus.Error.NoReply" | "org.freedesktop.DBus.Error.Disconnected" => {
            protocol("herdd left the bus without replying".to_string())
        }
        _ => protocol(format!("D-Bus error {name}: {text}")),
    }
}

/// The D-Bus error name and text of an error reply.
fn error_name(err: &zbus::Error) -> Option<(String, String)> {
    match err {
        zbus::Error::MethodError(name, text, _) => {
            Some((name.to_string(), text.clone().unwrap_or_default()))
        }
        zbus::Error::FDO(err) => Some((
            err.name().to_string(),
            err.description().unwrap_or_default().to_string(),
        )),
        _ => None,
    }
}

/// zbus's message, without the `I/O error: ` prefix and ` (os error 2)`
/// suffix a user has no use for.
fn describe(err: &zbus::Error) -> String {
    let text = match err {
        zbus::Error::InputOutput(io) => crate::error::describe_io(io),
        other => other.to_string(),
    };
    match text.rsplit_once(" (os error ") {
        Some((message, code)) if code.trim_end_matches(')').parse::<i32>().is_ok() => {
            message.to_string()
        }
        _ => text,
    }
}

fn unreachable(bus: &Bus, message: String) -> Error {
    Error::Bus(BusError {
        bus: bus.describe(),
        message,
        denied: false,
    })
}

fn protocol(message: String) -> Error {
    Error::Client(ClientError::Protocol(message))
}

/// Polls the next item of a zbus stream.
async fn next<S: futures_core::Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_values() {
        assert_eq!(Bus::parse("system"), Ok(Bus::System));
        assert_eq!(Bus::parse("session"), Ok(Bus::Session));
        assert_eq!(
            Bus::parse("unix:path=/tmp/b"),
            Ok(Bus::Address("unix:path=/tmp/b".into()))
        );
        assert!(Bus::parse("status").is_err());
        assert_eq!(
            Bus::Address("unix:path=/tmp/b".into()).describe(),
            "the bus at unix:path=/tmp/b"
        );
    }

    #[test]
    fn an_absent_bus_is_unreachable_and_named() {
        let bus = Bus::Address("unix:path=/nonexistent/herd-test-bus".into());
        let Err(err) = DbusClient::connect(&bus) else {
            panic!("connected to a bus that does not exist");
        };
        let Error::Bus(BusError {
            message, denied, ..
        }) = &err
        else {
            panic!("not a bus error: {err:?}");
        };
        assert!(!denied);
        assert!(
            message
                .starts_with("cannot connect to the bus at unix:path=/nonexistent/herd-test-bus: "),
            "{message}"
        );
    }

    #[test]
    fn herds_own_errors_keep_their_code() {
        let bus = Bus::System;
        let err = zbus::Error::FDO(Box::new(zbus::fdo::Error::ServiceUnknown("x".into())));
        assert!(matches!(
            bus_failure(&bus, &err),
            Error::Bus(BusError { denied: false, .. })
        ));
        let err = zbus::Error::FDO(Box::new(zbus::fdo::Error::AccessDenied("no".into())));
        assert!(matches!(
            bus_failure(&bus, &err),
            Error::Bus(BusError { denied: true, .. })
        ));
    }
}
