//! `herdctl pool close|terminate|join POOL`: the `multiprocessing.Pool`
//! lifecycle, on a pool herd owns.

use super::{Context, Outcome};
use crate::cli::PoolCommand;
use crate::error::Error;
use crate::output;
use herd_common::protocol::{PoolReport, PoolStatus, Request};
use std::time::Duration;

/// Quiet on success (`--json` prints the pool's report). `join` waits until
/// nothing is queued or running; at `--timeout` it says what is left and
/// exits 1.
pub fn exec(ctx: &Context, command: PoolCommand) -> Result<Outcome, Error> {
    let (request, timeout) = match command {
        PoolCommand::Close(args) => (Request::PoolClose { pool: args.pool }, None),
        PoolCommand::Terminate(args) => (Request::PoolTerminate { pool: args.pool }, None),
        PoolCommand::Join(args) => (
            Request::PoolJoin {
                pool: args.pool,
                timeout_ms: args.timeout.map(super::millis),
            },
            args.timeout,
        ),
    };
    let report: PoolReport = ctx.call(&request)?;
    if ctx.json {
        output::print_json(&report)?;
    }
    if report.timed_out {
        output::print_diagnostic(&timeout_message(&report.pool, timeout));
        return Ok(Outcome::Failed);
    }
    Ok(Outcome::Success)
}

/// `timed out after 10s; pool convert still has 2 running and 5 queued task(s)`.
fn timeout_message(pool: &PoolStatus, timeout: Option<Duration>) -> String {
    let after = timeout.map_or_else(String::new, |t| {
        format!(" after {}", humantime::format_duration(t))
    });
    format!(
        "timed out{after}; pool {} still has {} running and {} queued task(s)",
        pool.name, pool.running, pool.queued
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_says_what_is_left() {
        let pool = PoolStatus {
            name: "convert".into(),
            size: 2,
            running: 2,
            queued: 5,
            finished: 10,
            submitted: 17,
            max_queue: 10_000,
            keep_finished: 1000,
            closed: false,
            tally: Default::default(),
            hook_error: None,
        };
        assert_eq!(
            timeout_message(&pool, Some(Duration::from_secs(10))),
            "timed out after 10s; pool convert still has 2 running and 5 queued task(s)"
        );
    }
}
