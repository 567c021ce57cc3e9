//! `herdctl map POOL [-j N] -- CMD... {}`: `Pool.map` over the lines of
//! stdin. One task per line, `{}` replaced by the line; each task's stdout
//! is printed in input order as soon as it and every task before it have
//! ended.
//!
//! # How
//! Lines are submitted as they arrive: a thread reads stdin, so a slow
//! producer (`tail -f queue | herdctl map ...`) is served line by line and
//! never holds up collecting results or noticing Ctrl-C; a line is picked
//! up within [`POLL_MS`]. One connection carries two requests in turn:
//! `submit-batch` queues every line read so far (up to the window) in one
//! request, and `results` waits until some of our tasks have ended and
//! brings back all that have, each with its stdout. So the round trips
//! grow with how often herdd has news, not with the number of items: herdd
//! keeps the pool busy from its queue meanwhile. Results are printed in
//! input order; those that come early wait in herdctl. At most `-j N`
//! items are submitted and not yet printed, which bounds what waits here
//! and in herdd (a slow task holds the window). herdd holds our ended
//! tasks for us until `results` has brought them, whatever the pool's
//! `keep_finished`. Nothing is asked of herdd before the first line, so
//! `map` of empty input does nothing.
//!
//! A batch that herdd does not take whole (the pool's queue is at
//! `max_queue`, or the connection holds its maximum of unread results)
//! while some of ours are outstanding is back-pressure: the rest is sent
//! again after the next results. Refused with nothing outstanding (closed
//! pool) is an error.
//!
//! Ctrl-C cancels every task submitted and not yet collected and exits 130.
//! So does any error (herdd went away, stdout closed, a line of stdin that
//! is not UTF-8, which is where reading stops): nothing is left running
//! behind the user's back, as far as herdd can still be told. A
//! `daemon-reexec` meanwhile is not an error: the client carries on with
//! the new image (herd_common::client), and when herdd says it holds fewer
//! of our tasks than we wait for (they were held for the connection before
//! the re-exec) the next `results` names them, which collects them.

use super::progress::Progress;
use super::{interrupt, join, submit, Connection, Context, Outcome};
use crate::cli::MapArgs;
use crate::error::Error;
use crate::output;
use herd_common::client::ClientError;
use herd_common::protocol::{
    BatchReport, CancelReport, ErrorCode, OutputReport, Request, ResultsReport, SubmitOptions,
    TaskId, TaskResult, TaskStatus,
};
use herd_common::state::{Exit, TaskState};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead};
use std::sync::mpsc;
use std::time::Duration;

/// How long one `results` may wait, so Ctrl-C, new lines and the progress
/// line are attended to a few times a second.
const POLL_MS: u64 = 200;

/// Once one of our tasks has ended, herdd waits this much longer for more
/// before it answers `results`: while tasks end by the hundred a second, a
/// reply carries a few dozen of them, and herdd answers fewer requests (its
/// queue keeps the pool busy meanwhile; the window is rarely that short).
/// A result is printed at most this much later than it could be, which no
/// one watching a terminal sees; the last one comes at once (nothing
/// outstanding is left to linger for).
const LINGER_MS: u64 = 20;

/// The exit code of a `map` stopped by Ctrl-C, as a shell reports SIGINT.
const INTERRUPTED_EXIT: u8 = 130;

pub fn exec(ctx: &Context, args: MapArgs) -> Result<Outcome, Error> {
    interrupt::catch_sigint().map_err(|err| Error::Input(format!("cannot catch SIGINT: {err}")))?;
    let mut run = Run {
        ctx,
        pool: args.pool,
        template: args.command,
        options: submit::options(&args.limits, false),
        window: usize::try_from(args.jobs).unwrap_or(usize::MAX).max(1),
        progress: Progress::new(),
        items: Vec::new(),
        input: Some(read_lines()),
        submitted: 0,
        outstanding: HashMap::new(),
        collected: BTreeMap::new(),
        printed: 0,
        held_elsewhere: false,
        failed: 0,
    };
    // Nothing is asked of herdd before there is something to do.
    while run.items.is_empty() && run.input.is_some() {
        if interrupt::interrupted() {
            return Ok(Outcome::Code(INTERRUPTED_EXIT));
        }
        run.take_lines(Duration::from_millis(POLL_MS))?;
    }
    if run.items.is_empty() {
        return Ok(Outcome::Success);
    }
    let result = ctx
        .connect()
        .and_then(|mut connection| run.run(&mut connection));
    run.progress.clear();
    match result {
        Ok(true) => Ok(if run.failed == 0 {
            Outcome::Success
        } else {
            Outcome::Failed
        }),
        Ok(false) => {
            output::print_diagnostic(&format!("interrupted; {}", run.cancel_outstanding()));
            Ok(Outcome::Code(INTERRUPTED_EXIT))
        }
        Err(Error::Input(message)) => {
            let cancelled = run.cancel_outstanding();
            Err(Error::Input(format!("{message}; {cancelled}")))
        }
        Err(err) => {
            run.cancel_outstanding();
            Err(err)
        }
    }
}

/// One line of stdin without its newline, or why stdin could not be read.
type Line = io::Result<Vec<u8>>;

/// Reads stdin on a thread of its own, one line per message; the channel
/// closes at the end of stdin (or after a read error, which is sent). A
/// final newline does not start an empty item; empty lines in between are
/// items.
fn read_lines() -> mpsc::Receiver<Line> {
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        loop {
            let mut line = Vec::new();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    if lines.send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    let _ = lines.send(Err(err));
                    return;
                }
            }
        }
    });
    received
}

/// Line `number` (from 1) of stdin as an item. Items become arguments,
/// which the protocol carries as strings: a line that is not UTF-8 is
/// refused, and reading stops there.
pub fn item(number: usize, line: Vec<u8>) -> Result<String, Error> {
    String::from_utf8(line).map_err(|_| {
        Error::Input(format!(
            "stdin line {number} is not UTF-8; nothing after it was submitted"
        ))
    })
}

/// The command for one item: every `{}` in every argument replaced by the
/// item (as `xargs -I{}`), or the item appended if no argument has `{}`.
pub fn command_for(template: &[String], item: &str) -> Vec<String> {
    if template.iter().any(|arg| arg.contains("{}")) {
        template.iter().map(|arg| arg.replace("{}", item)).collect()
    } else {
        template
            .iter()
            .cloned()
            .chain(std::iter::once(item.to_string()))
            .collect()
    }
}

/// `item 3 ("foo"): failed (exit code 2)`: items are numbered from 1, as
/// the lines of stdin.
pub fn failure_line(index: usize, item: &str, task: &TaskStatus) -> String {
    format!("item {} ({item:?}): {}", index + 1, join::describe(task))
}

/// `--json`: one line per item, in input order, fields in this order.
#[derive(Serialize)]
struct MapLine<'a> {
    item: &'a str,
    id: TaskId,
    state: TaskState,
    exit: Option<&'a Exit>,
    /// Why it failed without an exit, or was cancelled.
    reason: Option<&'a str>,
    stdout: &'a str,
}

/// The state of one `map`.
struct Run<'a> {
    ctx: &'a Context,
    pool: String,
    template: Vec<String>,
    /// Timeout, retries, priority, start delay of every task.
    options: SubmitOptions,
    /// At most this many items submitted and not yet printed (`-j`).
    window: usize,
    /// The lines of stdin read so far.
    items: Vec<String>,
    /// Where more lines come from; `None` once stdin has ended.
    input: Option<mpsc::Receiver<Line>>,
    /// How many items have been submitted; the next one to submit.
    submitted: usize,
    /// Submitted, result not yet received: task id -> item index.
    outstanding: HashMap<TaskId, usize>,
    /// Results received and not yet printed (an earlier item is not done),
    /// by item index.
    collected: BTreeMap<usize, TaskResult>,
    /// How many items have been printed; the next one to print.
    printed: usize,
    /// herdd holds fewer of our tasks for this connection than are
    /// outstanding (they were submitted on the connection before a
    /// re-exec): the next `results` names them all.
    held_elsewhere: bool,
    failed: usize,
    progress: Progress,
}

impl Run<'_> {
    /// Runs until every item is printed (`Ok(true)`) or Ctrl-C
    /// (`Ok(false)`); the caller cancels what is outstanding then.
    fn run(&mut self, connection: &mut Connection) -> Result<bool, Error> {
        loop {
            self.take_lines(Duration::ZERO)?;
            self.fill(connection)?;
            self.progress.draw();
            if interrupt::interrupted() {
                return Ok(false);
            }
            if self.outstanding.is_empty() {
                if self.input.is_none() && self.submitted == self.items.len() {
                    return Ok(true);
                }
                // Everything submitted is printed: wait for stdin.
                self.take_lines(Duration::from_millis(POLL_MS))?;
                continue;
            }
            let ids = if self.held_elsewhere {
                let mut ids: Vec<TaskId> = self.outstanding.keys().copied().collect();
                ids.sort_unstable();
                ids
            } else {
                Vec::new()
            };
            let report: ResultsReport = connection.call(&Request::Results {
                ids,
                timeout_ms: Some(POLL_MS),
                linger_ms: Some(LINGER_MS),
            })?;
            self.receive(report)?;
        }
    }

    /// Takes in one `results` reply and prints what is now in order.
    fn receive(&mut self, report: ResultsReport) -> Result<(), Error> {
        for result in report.results {
            // Not ours (another user of this connection): not expected.
            if let Some(index) = self.outstanding.remove(&result.task.id) {
                self.collected.insert(index, result);
            }
        }
        let held = usize::try_from(report.outstanding).unwrap_or(usize::MAX);
        self.held_elsewhere = held < self.outstanding.len();
        while let Some(result) = self.collected.remove(&self.printed) {
            self.print(self.printed, &result.task, &result.stdout)?;
            self.printed += 1;
        }
        Ok(())
    }

    /// Takes the lines stdin has given, waiting up to `wait` for the first.
    fn take_lines(&mut self, wait: Duration) -> Result<(), Error> {
        let Some(input) = &self.input else {
            return Ok(());
        };
        let mut next = if wait.is_zero() {
            input.try_recv().map_err(Gone::from)
        } else {
            input.recv_timeout(wait).map_err(Gone::from)
        };
        loop {
            match next {
                Ok(Ok(line)) => {
                    self.items.push(item(self.items.len() + 1, line)?);
                    self.progress.item_added();
                }
                Ok(Err(err)) => return Err(Error::Input(format!("cannot read stdin: {err}"))),
                Err(Gone::NotYet) => return Ok(()),
                Err(Gone::Ended) => {
                    self.input = None;
                    self.progress.input_done();
                    return Ok(());
                }
            }
            next = input.try_recv().map_err(Gone::from);
        }
    }

    /// Submits items, a batch at a time, until the window is full or stdin
    /// is used up. A batch herdd does not take whole while some tasks are
    /// outstanding is back-pressure: stop here and try again after the
    /// next results.
    fn fill(&mut self, connection: &mut Connection) -> Result<(), Error> {
        while self.submitted < self.items.len()
            && self.submitted - self.printed < self.window
            && !interrupt::interrupted()
        {
            let room = self.window - (self.submitted - self.printed);
            let commands = self.batch(room);
            let sent = commands.len();
            let request = Request::SubmitBatch {
                pool: self.pool.clone(),
                commands,
                options: self.options.clone(),
            };
            match connection.call::<BatchReport>(&request) {
                Ok(report) => {
                    for id in &report.ids {
                        self.outstanding.insert(*id, self.submitted);
                        self.submitted += 1;
                    }
                    if report.ids.len() < sent {
                        return Ok(());
                    }
                }
                Err(Error::Client(ClientError::Remote(body)))
                    if body.code == ErrorCode::Refused && !self.outstanding.is_empty() =>
                {
                    return Ok(());
                }
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// The commands of the next items to submit: at most `room` of them,
    /// [`submit::BATCH_COMMANDS`] and about [`submit::BATCH_BYTES`]
    /// (always at least one).
    fn batch(&self, room: usize) -> Vec<Vec<String>> {
        let mut commands = Vec::new();
        let mut bytes = 0;
        for item in &self.items[self.submitted..] {
            if commands.len() >= room.min(submit::BATCH_COMMANDS) {
                break;
            }
            let command = command_for(&self.template, item);
            let size = submit::encoded_size(&command);
            if !commands.is_empty() && bytes + size > submit::BATCH_BYTES {
                break;
            }
            bytes += size;
            commands.push(command);
        }
        commands
    }

    /// Prints one collected item: its stdout (or JSON line), and on stderr
    /// why it failed or that its output was cut.
    fn print(
        &mut self,
        index: usize,
        task: &TaskStatus,
        output: &OutputReport,
    ) -> Result<(), Error> {
        let item = &self.items[index];
        let ok = task.state == TaskState::Exited;
        self.progress.before_stdout();
        if self.ctx.json {
            output::print_json(&MapLine {
                item,
                id: task.id,
                state: task.state,
                exit: task.exit.as_ref(),
                reason: task.reason.as_deref(),
                stdout: &output.data,
            })?;
        } else {
            output::print_text(&output.data)?;
        }
        let mut notes = Vec::new();
        if let Some(note) = super::output::truncation_note(output) {
            notes.push(format!("item {} ({item:?}): {note}", index + 1));
        }
        if !ok {
            self.failed += 1;
            notes.push(failure_line(index, item, task));
        }
        if !notes.is_empty() {
            self.progress.clear();
            for note in notes {
                output::print_diagnostic(&note);
            }
        }
        self.progress.item_done(ok);
        self.progress.draw();
        Ok(())
    }

    /// Cancels every task submitted and not yet collected, on a fresh
    /// connection (the main one may be broken), and says what came of it.
    fn cancel_outstanding(&mut self) -> String {
        let mut ids: Vec<TaskId> = self.outstanding.keys().copied().collect();
        ids.sort_unstable();
        if ids.is_empty() {
            return "no task was running".to_string();
        }
        let result: Result<CancelReport, Error> = self.ctx.call(&Request::Cancel { ids });
        match result {
            Ok(report) => format!("cancelled {} task(s)", report.cancelled.len()),
            Err(err) => format!("could not cancel the tasks: {err}"),
        }
    }
}

/// Why no line was taken from stdin.
enum Gone {
    /// None yet: stdin is open.
    NotYet,
    /// stdin has ended.
    Ended,
}

impl From<mpsc::TryRecvError> for Gone {
    fn from(err: mpsc::TryRecvError) -> Self {
        match err {
            mpsc::TryRecvError::Empty => Gone::NotYet,
            mpsc::TryRecvError::Disconnected => Gone::Ended,
        }
    }
}

impl From<mpsc::RecvTimeoutError> for Gone {
    fn from(err: mpsc::RecvTimeoutError) -> Self {
        match err {
            mpsc::RecvTimeoutError::Timeout => Gone::NotYet,
            mpsc::RecvTimeoutError::Disconnected => Gone::Ended,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::join::tests::task;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn braces_are_replaced_everywhere_or_the_item_appended() {
        assert_eq!(
            command_for(&strings(&["convert", "{}", "thumbs/{}.{}.png"]), "a b"),
            strings(&["convert", "a b", "thumbs/a b.a b.png"])
        );
        assert_eq!(
            command_for(&strings(&["gzip", "-9"]), "f.txt"),
            strings(&["gzip", "-9", "f.txt"])
        );
        assert_eq!(
            command_for(&strings(&["echo", "{x}"]), "i"),
            strings(&["echo", "{x}", "i"])
        );
    }

    #[test]
    fn lines_become_items() {
        assert_eq!(item(1, b"a b ".to_vec()).unwrap(), "a b ");
        assert_eq!(item(2, Vec::new()).unwrap(), "");
        let err = item(2, b"\xff".to_vec()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stdin line 2 is not UTF-8; nothing after it was submitted"
        );
    }

    #[test]
    fn failures_name_the_item() {
        let failed = task(9, TaskState::Failed, Some(Exit::Code(2)), None);
        assert_eq!(
            failure_line(2, "foo", &failed),
            "item 3 (\"foo\"): failed (exit code 2)"
        );
        let cancelled = task(9, TaskState::Cancelled, None, None);
        assert_eq!(
            failure_line(0, "say \"hi\"", &cancelled),
            "item 1 (\"say \\\"hi\\\"\"): cancelled"
        );
    }
}
