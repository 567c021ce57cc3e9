//! `herdctl submit POOL [--name N] [--wait] -- CMD...`: queue a task and
//! print its id alone on stdout, so `id=$(herdctl submit ...)` works.

use super::{join, Context, Outcome};
use crate::cli::{SubmitArgs, TaskLimitArgs};
use crate::error::Error;
use crate::output;
use herd_common::protocol::{Request, SubmitOptions, SubmitReport};
use std::time::Duration;

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
        options: options(&args.limits, args.unique),
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

/// What `--timeout`, `--retries`, `--retry-delay`, `--priority`, `--after`
/// (and `--unique`) ask of herdd for each task.
pub fn options(limits: &TaskLimitArgs, unique: bool) -> SubmitOptions {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    SubmitOptions {
        timeout_ms: limits.timeout.map(ms),
        retries: limits.retries,
        retry_delay_ms: limits.retry_delay.map(ms),
        priority: limits.priority,
        after_ms: limits.after.map(ms),
        unique,
    }
}
