//! `herdctl restart --rolling NAME...`: one service after the other. herdd
//! answers when every instance is replaced and ready, or with an error
//! naming the instance that was not (exit 1).
//!
//! On a terminal (and without `--json`) each step is printed as it happens:
//! herdctl follows herdd's event stream on a second connection while it
//! waits, and prints the rollout's steps and what happens to the unit's
//! instances meanwhile:
//!
//! ```text
//! web: rolling restart 1/4: web@0
//! web@0: stopping pid 4242 with SIGTERM
//! web@0: pid 4242 exited (killed by SIGTERM)
//! web@0: started (pid 4250)
//! web@0: ready
//! web: rolling restart 2/4: web@1
//! ...
//! web: rolling restart done
//! ```
//!
//! Elsewhere it is quiet, like `restart`: the exit code (and the error on
//! stderr) is the result. Both connections follow herdd across a
//! `daemon-reexec`: the rollout goes on in the new image.

use super::replay::Replay;
use super::{Context, Outcome, Transport};
use crate::cli::LifecycleArgs;
use crate::error::Error;
use crate::output;
use herd_common::client::{Client, Streamed};
use herd_common::events::Lifecycle;
use herd_common::protocol::{Request, StatusReport};
use serde_json::Value;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

/// How long the last steps may take to arrive after herdd's answer (they
/// travel on the other connection).
const LAST_STEPS_WITHIN: Duration = Duration::from_secs(2);

pub fn exec(ctx: &Context, args: LifecycleArgs) -> Result<Outcome, Error> {
    let show_steps = !ctx.json && io::stdout().is_terminal();
    for name in args.names {
        let steps = match &ctx.transport {
            Transport::Socket(path) if show_steps => Steps::follow(path, ctx.patience, &name),
            // Over D-Bus the steps are in `herdctl --dbus events -f`.
            Transport::Socket(_) | Transport::Dbus(_) => None,
        };
        let request = Request::RollingRestart {
            name,
            resume: false,
        };
        let answer = ctx.call::<StatusReport>(&request);
        if let Some(steps) = steps {
            steps.finish();
        }
        let report = answer?;
        if ctx.json {
            output::print_json(&report)?;
        }
    }
    Ok(Outcome::Success)
}

/// A thread printing one rollout's steps from the event stream.
struct Steps {
    /// Closed when the thread has printed the rollout's end, or gave up.
    ended: mpsc::Receiver<()>,
}

impl Steps {
    /// Subscribes to the event stream before the rollout is asked for, so
    /// that no step is missed; `None` if that fails (the rollout goes on
    /// without a display).
    fn follow(path: &Path, patience: Duration, unit: &str) -> Option<Steps> {
        let mut client = Client::connect_with(path, patience).ok()?;
        client.open_stream(&Request::Events { follow: true }).ok()?;
        // The stream starts with the events herdd remembers: only those
        // from now on are this rollout's (herdd and herdctl share the
        // clock, and its stamps sort as text).
        let since = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let unit = unit.to_string();
        let (done, ended) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            let _done = done;
            let mut replay = Replay::default();
            // Said once per re-exec (connecting may take more than one go).
            let mut resume_said = false;
            loop {
                let event = match client.next_streamed() {
                    Ok(Some(Streamed::Item { key, value })) if key == "event" => value,
                    Ok(Some(Streamed::Item { .. })) => continue,
                    Ok(Some(Streamed::Resumed)) => {
                        replay.resumed();
                        if !std::mem::replace(&mut resume_said, true) {
                            show("herdd re-executed; the rolling restart goes on");
                        }
                        continue;
                    }
                    Ok(Some(Streamed::End(_)) | None) | Err(_) => return,
                };
                let fresh = event["time"].as_str().is_some_and(|time| *time >= *since);
                if !fresh || !replay.fresh(&event) {
                    continue;
                }
                let step = step_line(&event, &unit);
                if let Some(line) = &step.line {
                    show(line);
                    resume_said = false;
                }
                if step.last {
                    return;
                }
            }
        });
        Some(Steps { ended })
    }

    /// Lets the last steps be printed before the result.
    fn finish(self) {
        let _ = self.ended.recv_timeout(LAST_STEPS_WITHIN);
    }
}

fn show(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// What one event means for the display of `unit`'s rollout.
#[derive(Debug, PartialEq)]
struct Step {
    /// The line to print, if the event is about the rollout or the unit's
    /// instances.
    line: Option<String>,
    /// The rollout has ended: nothing more to print.
    last: bool,
}

/// The line for one event (an EventLine as JSON). A failed rollout's end
/// is not printed: herdctl reports the error itself.
fn step_line(event: &Value, unit: &str) -> Step {
    let about_unit = event["unit"].as_str() == Some(unit);
    let ended = about_unit && event["type"] == "rollout_ended";
    if ended {
        let done = event["error"].is_null();
        return Step {
            line: done.then(|| format!("{unit}: rolling restart done")),
            last: true,
        };
    }
    let instance = event["instance"].as_str();
    let of_unit = instance.is_some_and(|name| {
        name == unit
            || name
                .strip_prefix(unit)
                .and_then(|rest| rest.strip_prefix('@'))
                .is_some()
    });
    let line = if about_unit || of_unit {
        // Event types newer than this herdctl are shown by their type.
        Some(match serde_json::from_value::<Lifecycle>(event.clone()) {
            Ok(known) => known.to_string(),
            Err(_) => format!(
                "{}: {}",
                instance.unwrap_or(unit),
                event["type"].as_str().unwrap_or("event")
            ),
        })
    } else {
        None
    };
    Step { line, last: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(event: Value) -> Option<String> {
        let step = step_line(&event, "web");
        assert!(!step.last);
        step.line
    }

    #[test]
    fn steps_of_the_unit_and_its_instances_are_shown() {
        let step = json!({"time": "T", "type": "rollout_step", "unit": "web",
                          "instance": "web@1", "step": 2, "steps": 4});
        assert_eq!(
            line(step).as_deref(),
            Some("web: rolling restart 2/4: web@1")
        );
        let ready = json!({"time": "T", "type": "ready", "instance": "web@1"});
        assert_eq!(line(ready).as_deref(), Some("web@1: ready"));
        let started = json!({"time": "T", "type": "started", "instance": "web@1", "pid": 7});
        assert_eq!(line(started).as_deref(), Some("web@1: started (pid 7)"));
        let newer = json!({"time": "T", "type": "unhealthy", "instance": "web@1"});
        assert_eq!(line(newer).as_deref(), Some("web@1: unhealthy"));
    }

    #[test]
    fn other_units_are_not_shown() {
        for name in ["webapp@0", "db", "web#3", "other@web"] {
            let ready = json!({"time": "T", "type": "ready", "instance": name});
            assert_eq!(line(ready), None, "{name}");
        }
        let other = json!({"time": "T", "type": "rollout_step", "unit": "api",
                           "instance": "api@0", "step": 1, "steps": 2});
        assert_eq!(line(other), None);
    }

    #[test]
    fn the_end_is_the_last_step_and_only_a_success_is_printed() {
        let done = json!({"time": "T", "type": "rollout_ended", "unit": "web", "error": null});
        assert_eq!(
            step_line(&done, "web"),
            Step {
                line: Some("web: rolling restart done".into()),
                last: true
            }
        );
        let stopped = json!({"time": "T", "type": "rollout_ended", "unit": "web",
                             "error": "web@0: did not become ready"});
        assert_eq!(
            step_line(&stopped, "web"),
            Step {
                line: None,
                last: true
            }
        );
        let other = json!({"time": "T", "type": "rollout_ended", "unit": "api", "error": null});
        assert!(!step_line(&other, "web").last);
    }
}
