//! `herdctl metrics`: herd's metrics as Prometheus text exposition, the
//! same text a scrape of `[herd] metrics_listen` gets.

use super::{Context, Outcome};
use crate::error::Error;
use crate::output;
use herd_common::protocol::{MetricsReport, Request};

pub fn exec(ctx: &Context) -> Result<Outcome, Error> {
    let report: MetricsReport = ctx.call(&Request::Metrics)?;
    if ctx.json {
        output::print_json(&report)?;
    } else {
        output::print_text(&report.text)?;
    }
    Ok(Outcome::Success)
}
