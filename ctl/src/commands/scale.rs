//! `herdctl scale NAME N`: change a service's number of instances.

use super::{Context, Outcome};
use crate::cli::ScaleArgs;
use crate::error::Error;
use crate::output;
use herd_common::protocol::{Request, StatusReport};

/// Quiet on success; `--json` prints the scaled unit's status.
pub fn exec(ctx: &Context, args: ScaleArgs) -> Result<Outcome, Error> {
    let report: StatusReport = ctx.call(&Request::Scale {
        name: args.name,
        instances: args.instances,
    })?;
    if ctx.json {
        output::print_json(&report)?;
    }
    Ok(Outcome::Success)
}
