//! `herdctl join ID... [--timeout D]`: wait for tasks, print how each ended,
//! and exit with the task's exit code, as a shell's `wait` does. Also the
//! wording and exit-code rules that `submit --wait` and `map` share.

use super::{Connection, Context, Outcome};
use crate::cli::JoinArgs;
use crate::error::Error;
use crate::output;
use herd_common::client::ClientError;
use herd_common::protocol::{Request, TaskId, TaskReport, TaskStatus};
use herd_common::signals::parse_signal;
use herd_common::state::{Exit, TaskState};
use std::time::Duration;

pub fn exec(ctx: &Context, args: JoinArgs) -> Result<Outcome, Error> {
    let mut connection = ctx.connect()?;
    join(ctx, &mut connection, &args.ids, args.timeout)
}

/// Joins `ids` on `connection`, prints one line per task (or the payload,
/// with `--json`) and says how herdctl should exit. Shared with
/// `submit --wait`.
pub fn join(
    ctx: &Context,
    connection: &mut Connection,
    ids: &[TaskId],
    timeout: Option<Duration>,
) -> Result<Outcome, Error> {
    let report: TaskReport = connection.call(&Request::Join {
        ids: ids.to_vec(),
        timeout_ms: timeout.map(super::millis),
    })?;
    let tasks = in_order(ids, &report.tasks)?;
    if ctx.json {
        output::print_json(&report)?;
    } else {
        let lines: String = tasks
            .iter()
            .map(|task| format!("{}: {}\n", task.id, describe(task)))
            .collect();
        output::print_text(&lines)?;
    }
    let unfinished = tasks.iter().filter(|task| !task.state.is_final()).count();
    if report.timed_out || unfinished > 0 {
        let after = timeout.map_or_else(String::new, |t| {
            format!(" after {}", humantime::format_duration(t))
        });
        output::print_diagnostic(&format!(
            "timed out{after}; {unfinished} task(s) still running"
        ));
        return Ok(Outcome::Failed);
    }
    Ok(Outcome::Code(combined_exit_code(&tasks)))
}

/// The reply's tasks in the order the ids were given (the order that picks
/// "the first non-zero" exit code), whatever order herdd answered in.
fn in_order<'a>(ids: &[TaskId], tasks: &'a [TaskStatus]) -> Result<Vec<&'a TaskStatus>, Error> {
    ids.iter()
        .map(|id| {
            tasks.iter().find(|task| task.id == *id).ok_or_else(|| {
                Error::Client(ClientError::Protocol(format!(
                    "herdd's join reply has no task {id}"
                )))
            })
        })
        .collect()
}

/// How a task ended, for humans: `exited 0`, `failed (exit code 3)`,
/// `failed (killed by SIGKILL)`, `failed (exec /no/such: No such file or
/// directory)`, `cancelled`; or `queued`/`running` when it has not ended.
pub fn describe(task: &TaskStatus) -> String {
    match task.state {
        TaskState::Exited => match &task.exit {
            Some(Exit::Code(code)) => format!("exited {code}"),
            Some(exit) => format!("exited ({exit})"),
            None => "exited 0".to_string(),
        },
        TaskState::Failed => match (&task.exit, &task.reason) {
            (Some(exit), _) => format!("failed ({exit})"),
            (None, Some(reason)) => format!("failed ({reason})"),
            (None, None) => "failed".to_string(),
        },
        TaskState::Cancelled => "cancelled".to_string(),
        TaskState::TimedOut => match &task.exit {
            Some(exit) => format!("timed out ({exit})"),
            None => "timed out".to_string(),
        },
        TaskState::Queued | TaskState::Running => task.state.as_str().to_string(),
    }
}

/// A task's exit code, as a shell would report it: its own code, 128+N when
/// killed by signal N, 1 when it failed without an exit (it could not be
/// executed) or was cancelled; 124 when it timed out, as timeout(1) does.
/// 0 only for `exited`.
pub fn exit_code(task: &TaskStatus) -> u8 {
    match (task.state, &task.exit) {
        (TaskState::Exited, _) => 0,
        (TaskState::TimedOut, _) => TIMED_OUT_EXIT,
        (TaskState::Failed, Some(Exit::Code(code))) => match u8::try_from(*code & 0xff) {
            Ok(0) | Err(_) => 1,
            Ok(code) => code,
        },
        (TaskState::Failed, Some(Exit::Signal(name))) => parse_signal(name)
            .and_then(|signo| u8::try_from(128 + signo).ok())
            .unwrap_or(1),
        (TaskState::Failed, None | Some(Exit::Unknown))
        | (TaskState::Cancelled | TaskState::Queued | TaskState::Running, _) => 1,
    }
}

/// What `join` exits with for a task that ran past its timeout (timeout(1)'s code).
pub const TIMED_OUT_EXIT: u8 = 124;

/// The first non-zero exit code in the order given, or 0.
pub fn combined_exit_code(tasks: &[&TaskStatus]) -> u8 {
    tasks
        .iter()
        .map(|task| exit_code(task))
        .find(|code| *code != 0)
        .unwrap_or(0)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn task(
        id: TaskId,
        state: TaskState,
        exit: Option<Exit>,
        reason: Option<&str>,
    ) -> TaskStatus {
        TaskStatus {
            id,
            pool: "convert".into(),
            name: None,
            state,
            command: vec!["convert".into(), "a.png".into()],
            pid: None,
            exit,
            reason: reason.map(str::to_string),
            duration_ms: Some(1200),
            adopted: false,
            priority: 0,
            attempts: 1,
            retries: 0,
            failed_attempts: vec![],
            usage: Default::default(),
        }
    }

    fn samples() -> Vec<TaskStatus> {
        vec![
            task(17, TaskState::Exited, Some(Exit::Code(0)), None),
            task(18, TaskState::Failed, Some(Exit::Code(3)), None),
            task(
                19,
                TaskState::Failed,
                Some(Exit::Signal("SIGKILL".into())),
                None,
            ),
            task(
                20,
                TaskState::Failed,
                None,
                Some("exec /no/such: No such file or directory"),
            ),
            task(
                21,
                TaskState::Cancelled,
                None,
                Some("cancelled by herdctl cancel"),
            ),
            task(22, TaskState::Running, None, None),
            task(23, TaskState::Queued, None, None),
            task(
                24,
                TaskState::TimedOut,
                Some(Exit::Signal("SIGTERM".into())),
                None,
            ),
        ]
    }

    #[test]
    fn outcomes_in_words() {
        let lines: Vec<String> = samples()
            .iter()
            .map(|task| format!("{}: {}", task.id, describe(task)))
            .collect();
        assert_eq!(
            lines,
            [
                "17: exited 0",
                "18: failed (exit code 3)",
                "19: failed (killed by SIGKILL)",
                "20: failed (exec /no/such: No such file or directory)",
                "21: cancelled",
                "22: running",
                "23: queued",
                "24: timed out (killed by SIGTERM)",
            ]
        );
    }

    #[test]
    fn exit_codes_are_a_shells() {
        let codes: Vec<u8> = samples().iter().map(exit_code).collect();
        assert_eq!(codes, [0, 3, 137, 1, 1, 1, 1, 124]);
        let term = task(
            1,
            TaskState::Failed,
            Some(Exit::Signal("SIGTERM".into())),
            None,
        );
        assert_eq!(exit_code(&term), 143);
        let rt = task(
            1,
            TaskState::Failed,
            Some(Exit::Signal("SIG40".into())),
            None,
        );
        assert_eq!(exit_code(&rt), 1, "a name herd cannot map back");
        let big = task(1, TaskState::Failed, Some(Exit::Code(256)), None);
        assert_eq!(exit_code(&big), 1, "failed never exits 0");
        let odd = task(1, TaskState::Failed, Some(Exit::Code(-1)), None);
        assert_eq!(exit_code(&odd), 255);
    }

    #[test]
    fn first_non_zero_in_the_order_given() {
        let all = samples();
        let pick = |ids: &[TaskId]| {
            let tasks = in_order(ids, &all).unwrap();
            combined_exit_code(&tasks)
        };
        assert_eq!(pick(&[17]), 0);
        assert_eq!(pick(&[17, 19, 18]), 137);
        assert_eq!(pick(&[18, 19]), 3);
        assert_eq!(pick(&[17, 17]), 0);
        assert!(in_order(&[99], &all).is_err());
    }
}
