//! `herdctl shutdown`: ask herdd to stop everything and exit.

use super::{Context, Outcome};
use crate::error::Error;
use crate::output;
use herd_common::protocol::Request;

/// herdd replies once the shutdown is under way (an empty object, printed
/// as such with `--json`). Unless `no_block`, herdctl then waits until herdd
/// has stopped every process and exited, which it sees as the connection
/// closing (or, over D-Bus, herdd leaving the bus) — so
/// `herdctl shutdown && herdd ...` restarts cleanly.
pub fn exec(ctx: &Context, no_block: bool) -> Result<Outcome, Error> {
    let mut connection = ctx.connect()?;
    let reply: serde_json::Value = connection.call(&Request::Shutdown)?;
    if !no_block {
        connection.wait_closed()?;
    }
    if ctx.json {
        output::print_json(&reply)?;
    }
    Ok(Outcome::Success)
}
