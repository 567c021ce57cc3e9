//! `herdctl tasks [POOL]`: a table of the pool tasks herd knows: queued,
//! running, and the last `keep_finished` ended ones of each pool.

use super::{Context, Outcome};
use crate::cli::TasksArgs;
use crate::error::Error;
use crate::output::{self, format_duration, format_exit, Cell, Paint, Table};
use herd_common::protocol::{Request, TaskReport};

pub fn exec(ctx: &Context, args: TasksArgs) -> Result<Outcome, Error> {
    let report: TaskReport = ctx.call(&Request::Tasks { pool: args.pool })?;
    if ctx.json {
        output::print_json(&report)?;
    } else {
        output::print_text(&render_table(&report, ctx.colour))?;
    }
    Ok(Outcome::Success)
}

/// One row per task, in herdd's order. As in `status`, a REASON column
/// (exec errors, why a task was cancelled) only appears when some task has
/// a reason; an ATTEMPTS column (`2/4`: started twice, at most 4 times)
/// only when some task may be retried.
pub fn render_table(report: &TaskReport, colour: bool) -> String {
    let with_reason = report.tasks.iter().any(|task| task.reason.is_some());
    let with_attempts = report.tasks.iter().any(|task| task.retries > 0);
    let mut header = vec!["ID", "POOL", "NAME", "STATE", "PID", "DURATION", "EXIT"];
    if with_attempts {
        header.push("ATTEMPTS");
    }
    if with_reason {
        header.push("REASON");
    }
    let mut table = Table::new(&header);
    for task in &report.tasks {
        let mut row = vec![
            Cell::new(task.id.to_string()),
            Cell::new(&task.pool),
            Cell::new(task.name.as_deref().unwrap_or("-")),
            Cell::painted(task.state.as_str(), Paint::for_task_state(task.state)),
            Cell::new(task.pid.map_or_else(|| "-".into(), |pid| pid.to_string())),
            Cell::new(task.duration_ms.map_or_else(|| "-".into(), format_duration)),
            Cell::new(format_exit(task.exit.as_ref())),
        ];
        if with_attempts {
            let most = task.retries.saturating_add(1);
            row.push(Cell::new(format!("{}/{most}", task.attempts)));
        }
        if with_reason {
            row.push(Cell::new(task.reason.as_deref().unwrap_or("")));
        }
        table.push(row);
    }
    table.render(colour)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::join::tests::task;
    use herd_common::protocol::TaskStatus;
    use herd_common::state::{Exit, TaskState};

    #[test]
    fn table() {
        let report = TaskReport {
            tasks: vec![
                TaskStatus {
                    name: Some("thumbs".into()),
                    ..task(17, TaskState::Exited, Some(Exit::Code(0)), None)
                },
                TaskStatus {
                    pid: Some(4242),
                    duration_ms: Some(65_000),
                    ..task(18, TaskState::Running, None, None)
                },
                TaskStatus {
                    duration_ms: None,
                    ..task(19, TaskState::Queued, None, None)
                },
                task(
                    20,
                    TaskState::Failed,
                    None,
                    Some("exec /no/such: No such file or directory"),
                ),
                task(
                    21,
                    TaskState::Failed,
                    Some(Exit::Signal("SIGKILL".into())),
                    None,
                ),
            ],
            timed_out: false,
        };
        let expected = "\
ID  POOL     NAME    STATE    PID   DURATION  EXIT     REASON
17  convert  thumbs  exited   -     1s        code 0
18  convert  -       running  4242  1m5s      -
19  convert  -       queued   -     -         -
20  convert  -       failed   -     1s        -        exec /no/such: No such file or directory
21  convert  -       failed   -     1s        SIGKILL
";
        assert_eq!(render_table(&report, false), expected);
    }

    #[test]
    fn attempts_column_when_a_task_may_be_retried() {
        let report = TaskReport {
            tasks: vec![
                TaskStatus {
                    attempts: 3,
                    retries: 3,
                    failed_attempts: vec![Exit::Code(1), Exit::Code(1)],
                    ..task(17, TaskState::Exited, Some(Exit::Code(0)), None)
                },
                task(18, TaskState::Exited, Some(Exit::Code(0)), None),
            ],
            timed_out: false,
        };
        let expected = "\
ID  POOL     NAME  STATE   PID  DURATION  EXIT    ATTEMPTS
17  convert  -     exited  -    1s        code 0  3/4
18  convert  -     exited  -    1s        code 0  1/1
";
        assert_eq!(render_table(&report, false), expected);
    }

    #[test]
    fn no_reason_column_without_reasons() {
        let report = TaskReport {
            tasks: vec![],
            timed_out: false,
        };
        assert_eq!(
            render_table(&report, false),
            "ID  POOL  NAME  STATE  PID  DURATION  EXIT\n"
        );
    }
}
