//! `herdctl output ID [--stderr]`: a task's captured output, byte for byte.

use super::{Context, Outcome};
use crate::cli::OutputArgs;
use crate::error::Error;
use crate::output;
use herd_common::protocol::{OutputReport, OutputStream, Request};

/// Writes the data as captured, adding no newline. When herd kept only the
/// first part, a note goes to stderr; that is not a failure.
pub fn exec(ctx: &Context, args: OutputArgs) -> Result<Outcome, Error> {
    let stream = if args.stderr {
        OutputStream::Stderr
    } else {
        OutputStream::Stdout
    };
    let report: OutputReport = ctx.call(&Request::Output {
        id: args.id,
        stream,
    })?;
    if ctx.json {
        output::print_json(&report)?;
    } else {
        output::print_text(&report.data)?;
    }
    if let Some(note) = truncation_note(&report) {
        output::print_diagnostic(&note);
    }
    Ok(Outcome::Success)
}

/// `output truncated: task wrote N bytes, herd kept the first M`, when it did.
pub fn truncation_note(report: &OutputReport) -> Option<String> {
    report.truncated.then(|| {
        format!(
            "output truncated: task wrote {} bytes, herd kept the first {}",
            report.total_bytes, report.kept_bytes
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_truncated_output_gets_a_note() {
        let mut report = OutputReport {
            id: 3,
            stream: OutputStream::Stdout,
            data: "abcd".into(),
            truncated: false,
            total_bytes: 4,
            kept_bytes: 4,
        };
        assert_eq!(truncation_note(&report), None);
        report.truncated = true;
        report.total_bytes = 1_000_000;
        assert_eq!(
            truncation_note(&report).unwrap(),
            "output truncated: task wrote 1000000 bytes, herd kept the first 4"
        );
    }
}
