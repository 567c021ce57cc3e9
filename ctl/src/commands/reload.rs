//! `herdctl reload`: herdd re-reads its config and says what changed.

use super::{Context, Outcome};
use crate::error::Error;
use crate::output;
use herd_common::protocol::{ReloadReport, Request};

/// A bad config comes back as an error (exit 1) naming every problem, and
/// herdd keeps running the old one.
pub fn exec(ctx: &Context) -> Result<Outcome, Error> {
    let report: ReloadReport = ctx.call(&Request::Reload)?;
    if ctx.json {
        output::print_json(&report)?;
    } else {
        print!("{}", describe(&report));
    }
    Ok(Outcome::Success)
}

/// `added: web, pool jobs` / `removed: ...` / `changed: ...` / `updated: ...`
/// lines, or `no changes`.
fn describe(report: &ReloadReport) -> String {
    let lines: Vec<String> = [
        ("added", &report.added),
        ("removed", &report.removed),
        ("changed", &report.changed),
        ("updated", &report.updated),
        ("not applied until herdd restarts", &report.restart_needed),
    ]
    .into_iter()
    .filter(|(_, names)| !names.is_empty())
    .map(|(what, names)| format!("{what}: {}\n", names.join(", ")))
    .collect();
    if lines.is_empty() {
        "no changes\n".to_string()
    } else {
        lines.concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_what_changed() {
        assert_eq!(describe(&ReloadReport::default()), "no changes\n");
        let report = ReloadReport {
            added: vec!["api".into(), "pool jobs".into()],
            removed: vec![],
            changed: vec!["web".into()],
            updated: vec![],
            restart_needed: vec!["herd.socket".into()],
        };
        assert_eq!(
            describe(&report),
            "added: api, pool jobs\nchanged: web\nnot applied until herdd restarts: herd.socket\n"
        );
    }
}
