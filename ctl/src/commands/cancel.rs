//! `herdctl cancel ID...`: remove queued tasks, stop running ones.

use super::{Context, Outcome};
use crate::cli::CancelArgs;
use crate::error::Error;
use crate::output;
use herd_common::protocol::{CancelReport, Request};

/// Quiet on success. A task that had already ended is left as it was and is
/// not an error; an id herd does not know is (exit 4, herdd's message).
pub fn exec(ctx: &Context, args: CancelArgs) -> Result<Outcome, Error> {
    let report: CancelReport = ctx.call(&Request::Cancel { ids: args.ids })?;
    if ctx.json {
        output::print_json(&report)?;
    }
    Ok(Outcome::Success)
}
