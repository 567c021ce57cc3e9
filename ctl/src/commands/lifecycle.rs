//! `herdctl start|stop|restart NAME... [--no-block]`: one module, because the
//! three differ only in the request they send and in whether a failed start
//! can be reported.

use super::{Context, Outcome};
use crate::cli::LifecycleArgs;
use crate::error::Error;
use crate::output;
use herd_common::protocol::{Request, StatusReport};
use herd_common::state::State;

/// Which of the three verbs runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Start,
    Stop,
    Restart,
}

impl Verb {
    fn request(self, names: Vec<String>, wait: bool) -> Request {
        match self {
            Verb::Start => Request::Start { names, wait },
            Verb::Stop => Request::Stop { names, wait },
            Verb::Restart => Request::Restart { names, wait },
        }
    }

    /// Only a waited start can tell whether the units came up; a stop that
    /// finds an instance already `failed` has still done its job.
    fn checks_start(self) -> bool {
        match self {
            Verb::Start | Verb::Restart => true,
            Verb::Stop => false,
        }
    }
}

/// Quiet on success, like systemctl. With `--json` the report of the touched
/// units is printed; failures also go to stderr either way.
pub fn exec(ctx: &Context, verb: Verb, args: LifecycleArgs) -> Result<Outcome, Error> {
    let wait = !args.no_block;
    let report: StatusReport = ctx.call(&verb.request(args.names, wait))?;
    if ctx.json {
        output::print_json(&report)?;
    }
    if !(wait && verb.checks_start()) {
        return Ok(Outcome::Success);
    }
    let failures = start_failures(&report);
    for failure in &failures {
        output::print_diagnostic(failure);
    }
    Ok(if failures.is_empty() {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

/// One line per instance that did not come up after a waited start: those
/// that `failed`, and those still `waiting` with a reason, which herdd only
/// reports once what they wait for has failed (a failed `after` dependency).
fn start_failures(report: &StatusReport) -> Vec<String> {
    report
        .units
        .iter()
        .flat_map(|unit| &unit.instances)
        .filter_map(|instance| {
            let reason = instance.reason.as_deref();
            match (instance.state, reason) {
                (State::Failed, Some(reason)) => {
                    Some(format!("{} failed: {reason}", instance.name))
                }
                (State::Failed, None) => Some(match &instance.last_exit {
                    Some(exit) => format!("{} failed: {exit}", instance.name),
                    None => format!("{} failed", instance.name),
                }),
                (State::Waiting, Some(reason)) => {
                    Some(format!("{} did not start: {reason}", instance.name))
                }
                (
                    State::Waiting
                    | State::Inactive
                    | State::Starting
                    | State::Running
                    | State::Stopping
                    | State::Exited
                    | State::Backoff,
                    _,
                ) => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_common::protocol::{InstanceStatus, UnitKind, UnitStatus};
    use herd_common::state::Exit;

    fn instance(name: &str, state: State, reason: Option<&str>) -> InstanceStatus {
        InstanceStatus {
            name: name.into(),
            state,
            pid: None,
            uptime_ms: None,
            restarts: 0,
            last_exit: None,
            reason: reason.map(str::to_string),
            notify_status: None,
            adopted: false,
            log_error: None,
            health: None,
            usage: Default::default(),
        }
    }

    fn report(instances: Vec<InstanceStatus>) -> StatusReport {
        StatusReport {
            sockets: Vec::new(),
            units: vec![UnitStatus {
                name: "web".into(),
                kind: UnitKind::Service,
                state: State::Failed,
                command: vec!["/no/such".into()],
                instances,
                hook_error: None,
                timer: None,
            }],
            pools: vec![],
        }
    }

    #[test]
    fn failed_and_blocked_instances_are_reported() {
        let report = report(vec![
            instance("web@0", State::Running, None),
            instance(
                "web@1",
                State::Failed,
                Some("exec /no/such: No such file or directory"),
            ),
            instance("web@2", State::Waiting, Some("dependency migrate failed")),
            InstanceStatus {
                last_exit: Some(Exit::Code(3)),
                ..instance("web@3", State::Failed, None)
            },
            instance("web@4", State::Failed, None),
            instance("web@5", State::Exited, None),
            instance("web@6", State::Waiting, None),
        ]);
        assert_eq!(
            start_failures(&report),
            [
                "web@1 failed: exec /no/such: No such file or directory",
                "web@2 did not start: dependency migrate failed",
                "web@3 failed: exit code 3",
                "web@4 failed",
            ]
        );
    }

    #[test]
    fn healthy_start_reports_nothing() {
        let report = report(vec![instance("web@0", State::Running, None)]);
        assert!(start_failures(&report).is_empty());
    }

    #[test]
    fn requests_carry_wait() {
        assert_eq!(
            Verb::Restart.request(vec!["a".into()], false),
            Request::Restart {
                names: vec!["a".into()],
                wait: false
            }
        );
        assert!(!Verb::Stop.checks_start());
    }
}
