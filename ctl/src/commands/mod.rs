//! One module per verb, each with an `exec` (as cargo's
//! `src/bin/cargo/commands/`). A verb prints its own output and returns an
//! [`Outcome`]; failures to talk to herdd are returned as [`Error`]s and
//! reported by `main`.

mod cancel;
mod child;
mod completions;
mod event;
mod events;
mod interrupt;
mod join;
mod kill;
mod lifecycle;
mod logs;
mod map;
mod metrics;
mod output;
mod pool;
mod progress;
mod reexec;
mod reload;
mod replay;
mod rolling;
mod scale;
mod sem;
mod shutdown;
mod status;
mod submit;
mod tasks;
mod top;

use crate::cli::{Cli, Command};
use crate::dbus::{Bus, DbusClient};
use crate::error::Error;
use herd_common::client::{Client, ClientError};
use herd_common::protocol::Request;
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::time::Duration;

/// How a verb that did its job ended; `main` turns it into the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for happened.
    Success,
    /// The request was carried out and did not succeed (a unit failed to
    /// start, nothing to signal). The verb has already said why.
    Failed,
    /// `status NAME`: a named unit is not running (as `systemctl status`).
    NotRunning,
    /// Exit with this code: a joined task's own (`join`, `submit --wait`),
    /// the command's own (`sem acquire`), or 130 for an interrupted `map`.
    Code(u8),
}

/// How herdctl reaches herdd: the one place that knows there are two ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// The control socket at this path (`--socket`, or the default).
    Socket(PathBuf),
    /// herdd's name on this bus (`--dbus`), through its generic `Request`
    /// method: the same request and reply lines as on the socket.
    Dbus(Bus),
}

/// What every verb needs from the global flags.
#[derive(Debug)]
pub struct Context {
    /// Where herdd is.
    pub transport: Transport,
    /// `--json`: print one JSON document instead of human output.
    pub json: bool,
    /// Whether human output may be coloured (stdout is a terminal).
    pub colour: bool,
    /// Global `--timeout`: how long herdd has to take a connection and to
    /// give an answer that is due (herd_common::client, "Patience").
    pub patience: Duration,
}

impl Context {
    /// Sends one request over a fresh connection and decodes the `ok`
    /// payload as `T`.
    pub fn call<T: DeserializeOwned>(&self, request: &Request) -> Result<T, Error> {
        self.connect()?.call(request)
    }

    /// A connection for several requests in a row (`submit --wait`, `map`),
    /// or one that must stay open (`sem acquire` holds its slot with it).
    pub fn connect(&self) -> Result<Connection, Error> {
        Ok(match &self.transport {
            Transport::Socket(path) => {
                Connection::Socket(Client::connect_with(path, self.patience)?)
            }
            Transport::Dbus(bus) => Connection::Dbus(DbusClient::connect(bus)?),
        })
    }
}

/// One connection to herdd; herdd answers its requests in order.
pub enum Connection {
    Socket(Client),
    Dbus(DbusClient),
}

impl Connection {
    /// Sends `request`, waits for its reply and decodes the `ok` payload as
    /// `T`. A payload of the wrong shape means herdd and herdctl disagree on
    /// the protocol, which is reported as a protocol error.
    pub fn call<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T, Error> {
        let payload = match self {
            // Decoded straight from the reply line.
            Connection::Socket(client) => return Ok(client.call_as(request)?),
            Connection::Dbus(client) => client.call(request)?,
        };
        serde_json::from_value(payload).map_err(|err| {
            Error::Client(ClientError::Protocol(format!(
                "unexpected reply from herdd: {err}"
            )))
        })
    }
}

impl Connection {
    /// Waits until herdd has gone (`shutdown`, `daemon-reexec`): it closes
    /// the connection, or leaves the bus.
    pub fn wait_closed(&mut self) -> Result<(), Error> {
        match self {
            Connection::Socket(client) => {
                while client
                    .next_reply()
                    .map_err(|err| Error::Client(ClientError::Protocol(err.to_string())))?
                    .is_some()
                {}
                Ok(())
            }
            Connection::Dbus(client) => client.wait_gone(),
        }
    }
}

/// A `--timeout` as the protocol's `timeout_ms`.
pub fn millis(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
}

/// Runs the verb `cli` asks for.
pub fn exec(cli: Cli) -> Result<Outcome, Error> {
    // `--dbus` wins over a socket (which may come from HERD_SOCKET).
    let transport = match cli.dbus {
        Some(bus) => Transport::Dbus(bus),
        None => Transport::Socket(
            cli.socket
                .unwrap_or_else(herd_common::paths::default_socket),
        ),
    };
    let ctx = Context {
        transport,
        json: cli.json,
        colour: crate::output::use_colour(),
        patience: cli
            .patience
            .unwrap_or(herd_common::client::DEFAULT_PATIENCE),
    };
    match cli.command {
        Command::Status(args) => status::exec(&ctx, args),
        Command::Start(args) => lifecycle::exec(&ctx, lifecycle::Verb::Start, args),
        Command::Stop(args) => lifecycle::exec(&ctx, lifecycle::Verb::Stop, args),
        Command::Restart(args) if args.rolling => rolling::exec(&ctx, args.lifecycle),
        Command::Restart(args) => lifecycle::exec(&ctx, lifecycle::Verb::Restart, args.lifecycle),
        Command::Kill(args) => kill::exec(&ctx, args),
        Command::Scale(args) => scale::exec(&ctx, args),
        Command::Shutdown(args) => shutdown::exec(&ctx, args.no_block),
        Command::DaemonReexec => reexec::exec(&ctx),
        Command::Reload => reload::exec(&ctx),
        Command::Submit(args) => submit::exec(&ctx, args),
        Command::Join(args) => join::exec(&ctx, args),
        Command::Map(args) => map::exec(&ctx, args),
        Command::Tasks(args) => tasks::exec(&ctx, args),
        Command::Output(args) => output::exec(&ctx, args),
        Command::Cancel(args) => cancel::exec(&ctx, args),
        Command::Pool(command) => pool::exec(&ctx, command),
        Command::Sem(command) => sem::exec(&ctx, command),
        Command::Event(command) => event::exec(&ctx, command),
        Command::Events(args) => events::exec(&ctx, args.follow),
        Command::Logs(args) => logs::exec(&ctx, args),
        Command::Metrics => metrics::exec(&ctx),
        Command::Top(args) => top::exec(&ctx, args),
        Command::Completions(args) => completions::exec(args),
    }
}
