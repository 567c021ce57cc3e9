//! `herdctl daemon-reexec`: herdd re-executes itself in place.

use super::{Context, Outcome};
use crate::error::Error;
use crate::output;
use herd_common::client::{Client, ClientError};
use herd_common::protocol::Request;
use std::time::{Duration, Instant};

/// How long the new herdd may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// herdd replies, closes every connection and re-executes; herdctl waits for
/// the connection to close, then until the new image answers `status`.
pub fn exec(ctx: &Context) -> Result<Outcome, Error> {
    let mut client = Client::connect(&ctx.socket)?;
    let reply = client.call(&Request::DaemonReexec)?;
    while client
        .next_reply()
        .map_err(|err| Error::Client(ClientError::Protocol(err.to_string())))?
        .is_some()
    {}
    let started = Instant::now();
    loop {
        let answered = Client::connect(&ctx.socket)
            .and_then(|mut client| client.call(&Request::Status { names: vec![] }));
        match answered {
            Ok(_) => break,
            Err(err) if started.elapsed() >= READY_TIMEOUT => return Err(err.into()),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    if ctx.json {
        output::print_json(&reply)?;
    }
    Ok(Outcome::Success)
}
