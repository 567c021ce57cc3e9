//! `herdctl submit POOL [--name N] [--wait] -- CMD...`: queue a task and
//! print its id alone on stdout, so `id=$(herdctl submit ...)` works.
//! `herdctl submit POOL --from-file FILE`: queue one task per line of FILE
//! with `submit-batch` and print their ids, one per line.

use super::{join, Connection, Context, Outcome};
use crate::cli::{SubmitArgs, TaskLimitArgs};
use crate::error::Error;
use crate::output;
use herd_common::protocol::{
    BatchReport, Request, SubmitOptions, SubmitReport, TaskId, MAX_REQUEST_BYTES,
};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// At most this many commands go in one `submit-batch`...
pub const BATCH_COMMANDS: usize = 1024;

/// ... and at most about this many bytes of them, well within a request line.
pub const BATCH_BYTES: usize = MAX_REQUEST_BYTES / 2;

/// With `--wait`, the task is then joined on the same connection as `join ID`
/// would: the id line is followed by the outcome line, and herdctl exits
/// with the task's exit code. With `--json` a single document is printed:
/// the submit payload, or with `--wait` the join payload (which has the id).
pub fn exec(ctx: &Context, args: SubmitArgs) -> Result<Outcome, Error> {
    if let Some(file) = &args.from_file {
        return from_file(ctx, &args, file);
    }
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

/// `--from-file`: every line is split before anything is sent, so a line
/// that cannot be split queues nothing. The commands go in one request (or
/// as few as fit in request lines); `--wait` then joins them all.
fn from_file(ctx: &Context, args: &SubmitArgs, file: &Path) -> Result<Outcome, Error> {
    let commands = parse_commands(&read_file(file)?, file)?;
    if commands.is_empty() {
        return Err(Error::Input(format!(
            "{} has no command to submit",
            shown(file)
        )));
    }
    let mut connection = ctx.connect()?;
    let (ids, refused) = submit_all(&mut connection, &args.pool, commands, args)?;
    if ctx.json && !args.wait {
        output::print_json(&BatchReport {
            ids: ids.clone(),
            refused: refused.clone(),
        })?;
    } else if !ctx.json {
        let lines: String = ids.iter().map(|id| format!("{id}\n")).collect();
        output::print_text(&lines)?;
    }
    if let Some(why) = refused {
        return Err(Error::Input(format!(
            "only the first {} command(s) were queued: {why}",
            ids.len()
        )));
    }
    if !args.wait {
        return Ok(Outcome::Success);
    }
    join::join(ctx, &mut connection, &ids, None)
}

/// Sends `commands` in batches; the ids queued, and why the rest was not
/// (a full queue) if it was not.
fn submit_all(
    connection: &mut Connection,
    pool: &str,
    commands: Vec<Vec<String>>,
    args: &SubmitArgs,
) -> Result<(Vec<TaskId>, Option<String>), Error> {
    let mut ids = Vec::with_capacity(commands.len());
    for batch in batches(commands) {
        let sent = batch.len();
        let request = Request::SubmitBatch {
            pool: pool.to_string(),
            commands: batch,
            options: options(&args.limits, false),
        };
        let report = match connection.call::<BatchReport>(&request) {
            Ok(report) => report,
            // A later batch refused whole: say what was queued before it.
            Err(crate::error::Error::Client(herd_common::client::ClientError::Remote(body)))
                if !ids.is_empty() =>
            {
                return Ok((ids, Some(body.message)));
            }
            Err(err) => return Err(err),
        };
        let got = report.ids.len();
        ids.extend(report.ids);
        if got < sent {
            return Ok((ids, report.refused));
        }
    }
    Ok((ids, None))
}

/// `commands` cut into `submit-batch` requests that fit a request line.
pub fn batches(commands: Vec<Vec<String>>) -> Vec<Vec<Vec<String>>> {
    let mut batches: Vec<Vec<Vec<String>>> = Vec::new();
    let mut bytes = 0;
    for command in commands {
        let size = encoded_size(&command);
        match batches.last_mut() {
            Some(batch) if batch.len() < BATCH_COMMANDS && bytes + size <= BATCH_BYTES => {
                bytes += size;
                batch.push(command);
            }
            _ => {
                bytes = size;
                batches.push(vec![command]);
            }
        }
    }
    batches
}

/// About how many bytes `command` takes in a request: its JSON, with room
/// for every byte to be escaped.
pub fn encoded_size(command: &[String]) -> usize {
    command.iter().map(|arg| arg.len() * 2 + 3).sum::<usize>() + 2
}

fn read_file(file: &Path) -> Result<String, Error> {
    let mut text = String::new();
    let read = if file == Path::new("-") {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_string(&mut text))
    };
    read.map_err(|err| Error::Input(format!("cannot read {}: {err}", shown(file))))?;
    Ok(text)
}

fn shown(file: &Path) -> String {
    if file == Path::new("-") {
        "stdin".to_string()
    } else {
        file.display().to_string()
    }
}

/// One command per line, split as a shell splits words; blank lines and
/// comments are skipped. The first line that cannot be split is an error
/// naming it.
pub fn parse_commands(text: &str, file: &Path) -> Result<Vec<Vec<String>>, Error> {
    let mut commands = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let words = shlex::split(line).ok_or_else(|| {
            Error::Input(format!(
                "{}:{}: cannot split {line:?} into words (a quote is not closed, or \
                 it ends in a backslash); nothing was submitted",
                shown(file),
                number + 1
            ))
        })?;
        if !words.is_empty() {
            commands.push(words);
        }
    }
    Ok(commands)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_as_a_shell_would_and_comments_skipped() {
        let text = "convert 'a b.png' out\\ 1.png\n\n# a comment\necho \"x y\" # trailing\n";
        let commands = parse_commands(text, Path::new("f")).unwrap();
        assert_eq!(
            commands,
            vec![vec!["convert", "a b.png", "out 1.png"], vec!["echo", "x y"],]
        );
        let err = parse_commands("ok\necho 'open\n", Path::new("jobs.txt")).unwrap_err();
        assert!(
            err.to_string().starts_with("jobs.txt:2: cannot split"),
            "{err}"
        );
    }

    #[test]
    fn batches_fit_a_request_line_and_keep_the_order() {
        let big = vec!["x".repeat(BATCH_BYTES / 4)];
        let commands: Vec<Vec<String>> = (0..5).map(|_| big.clone()).collect();
        let cut = batches(commands.clone());
        assert!(cut.len() > 1);
        assert_eq!(cut.concat(), commands);
        for batch in &cut {
            let line = herd_common::protocol::encode_request(&Request::SubmitBatch {
                pool: "p".into(),
                commands: batch.clone(),
                options: SubmitOptions::default(),
            });
            assert!(line.len() < MAX_REQUEST_BYTES);
        }
        let many: Vec<Vec<String>> = (0..BATCH_COMMANDS + 1)
            .map(|i| vec![i.to_string()])
            .collect();
        assert_eq!(batches(many).len(), 2);
    }
}
