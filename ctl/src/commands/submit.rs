//! `herdctl submit POOL [--name N] [--wait] -- CMD...`: queue a task and
//! print its id alone on stdout, so `id=$(herdctl submit ...)` works.

use super::{join, Context, Outcome};
use crate::cli::SubmitArgs;
use crate::error::Error;
use crate::output;
use herd_common::protocol::{Request, SubmitReport};

/// With `--wait`, the task is then joined on the same connection as `join ID`
/// would: the id line is followed by the outcome line, and herdctl exits
/// with the task's exit code. With `--json` a single document is printed:
/// the submit payload, or with `--wait` the join payload (which has the id).
pub fn exec(ctx: &Context, args: SubmitArgs) -> Result<Outcome, Error> {
    let mut connection = ctx.connect()?;
    let report: SubmitReport = connection.call(&Request::Submit {
        pool: args.pool,
        command: args.command,
        name: args.name,
    })?;
    if !args.wait {
        if ctx.json {
            output::print_json(&report)?;
        } else {
            output::print_text(&format!("{}\n", report.id))?;
        }
        return Ok(Outcome::Success);
    }
    if !ctx.json {
        output::print_text(&format!("{}\n", report.id))?;
    }
    join::join(ctx, &mut connection, &[report.id], None)
}
