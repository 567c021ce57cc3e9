//! `herdctl shutdown`: ask herdd to stop everything and exit.

use super::{Context, Outcome};
use crate::error::Error;
use crate::output;
use herd_common::protocol::Request;

/// herdd replies once the shutdown is under way; the reply is an empty
/// object, printed as such with `--json` so scripts still get a document.
pub fn exec(ctx: &Context) -> Result<Outcome, Error> {
    let reply: serde_json::Map<String, serde_json::Value> = ctx.call(&Request::Shutdown)?;
    if ctx.json {
        output::print_json(&reply)?;
    }
    Ok(Outcome::Success)
}
