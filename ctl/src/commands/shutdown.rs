//! `herdctl shutdown`: ask herdd to stop everything and exit.

use super::{Context, Outcome};
use crate::error::Error;
use crate::output;
use herd_common::client::{Client, ClientError};
use herd_common::protocol::Request;

/// herdd replies once the shutdown is under way (an empty object, printed
/// as such with `--json`). Unless `no_block`, herdctl then waits until herdd
/// has stopped every process and exited, which it sees as the connection
/// closing — so `herdctl shutdown && herdd ...` restarts cleanly.
pub fn exec(ctx: &Context, no_block: bool) -> Result<Outcome, Error> {
    let mut client = Client::connect(&ctx.socket)?;
    let reply = client.call(&Request::Shutdown)?;
    if !no_block {
        while client
            .next_reply()
            .map_err(|err| Error::Client(ClientError::Protocol(err.to_string())))?
            .is_some()
        {}
    }
    if ctx.json {
        output::print_json(&reply)?;
    }
    Ok(Outcome::Success)
}
