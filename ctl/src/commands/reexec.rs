//! `herdctl daemon-reexec`: herdd re-executes itself in place.

use super::{Context, Outcome};
use crate::error::Error;
use crate::output;
use herd_common::protocol::Request;
use std::time::{Duration, Instant};

/// How long the new herdd may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// herdd replies, closes every connection and re-executes; herdctl waits for
/// the connection to close (over D-Bus: for the old image to leave the
/// bus), then until the new image answers `status`.
pub fn exec(ctx: &Context) -> Result<Outcome, Error> {
    let mut connection = ctx.connect()?;
    let reply: serde_json::Value = connection.call(&Request::DaemonReexec)?;
    connection.wait_closed()?;
    let started = Instant::now();
    loop {
        let answered = ctx.connect().and_then(|mut connection| {
            connection.call::<serde_json::Value>(&Request::Status {
                names: vec![],
                usage: true,
            })
        });
        match answered {
            Ok(_) => break,
            Err(err) if started.elapsed() >= READY_TIMEOUT => return Err(err),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    if ctx.json {
        output::print_json(&reply)?;
    }
    Ok(Outcome::Success)
}
