//! `herdctl kill NAME... [-s SIGNAL]`: signal the process groups of running
//! instances. The signal name was already checked while parsing.

use super::{Context, Outcome};
use crate::cli::KillArgs;
use crate::error::Error;
use crate::output;
use herd_common::protocol::{KillReport, Request};

/// Quiet when something was signalled. When nothing was (no instance is
/// running), the kill did not happen, so it fails like `pkill` matching
/// nothing: a script reloading a service should notice it is down.
pub fn exec(ctx: &Context, args: KillArgs) -> Result<Outcome, Error> {
    let report: KillReport = ctx.call(&Request::Kill {
        names: args.names,
        signal: args.signal,
    })?;
    if ctx.json {
        output::print_json(&report)?;
    }
    if report.signalled.is_empty() {
        output::print_diagnostic("no running instance matched; nothing was signalled");
        return Ok(Outcome::Failed);
    }
    Ok(Outcome::Success)
}
