//! `herdctl logs NAME... [-n N] [-f] [-t]`: units' output from their log files.
//!
//! herdd answers `logs` with one `{"log": LogLine}` line per line of the
//! logs (instances of a unit merged in time order), then `{"ok": ...}`;
//! with `follow`, it goes on with new lines instead, until one side closes.
//! Human output, one line each (the instance names padded to line up):
//!
//! ```text
//! web@0  | listening on :8000
//! web@10 | listening on :8010
//! ```
//!
//! `-t` starts each line with the time herdd read it
//! (`2026-11-29T17:00:00.123Z web@0  | ...`). With `--json`, the LogLine
//! objects themselves, one per line: `{"time", "instance", "stream",
//! "text"}` (and `"partial": true` for a line that had no newline). When
//! herdd says a follower fell so far behind that rotated files were
//! deleted before it read them, a note goes to stderr. A closed stdout
//! (`herdctl logs web | head`) ends herdctl quietly with 0.

use super::replay::Replay;
use super::{Context, Outcome, Transport};
use crate::cli::LogsArgs;
use crate::error::Error;
use crate::output;
use herd_common::client::{Client, ClientError, Streamed};
use herd_common::protocol::{LogGap, LogLine, Request};
use serde_json::Value;
use std::io::{self, BufWriter, Write};

/// Lines shown by `-f` before the new ones when `-n` is not given (as `tail -f`).
pub const FOLLOW_LINES: u64 = 10;

pub fn exec(ctx: &Context, args: LogsArgs) -> Result<Outcome, Error> {
    let socket = match &ctx.transport {
        Transport::Socket(socket) => socket,
        Transport::Dbus(_) => {
            return Err(protocol(
                "logs streams over the control socket only; run it without --dbus".into(),
            ))
        }
    };
    let request = Request::Logs {
        names: args.names,
        lines: args.lines.or(args.follow.then_some(FOLLOW_LINES)),
        follow: args.follow,
    };
    let mut client = Client::connect_with(socket, ctx.patience)?;
    client.open_stream(&request)?;
    let mut stdout = BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    let mut view = View {
        json: ctx.json,
        timestamps: args.timestamps,
        width: 0,
    };
    let mut replay = Replay::default();
    loop {
        let item = match client.next_streamed()? {
            Some(Streamed::Item { key, value }) => item(&key, value)?,
            Some(Streamed::End(_)) => Item::End,
            // herdd re-executed: the new image sends the last lines again.
            Some(Streamed::Resumed) => {
                replay.resumed();
                continue;
            }
            None => {
                stdout.flush()?;
                // herdd went away (shutdown) while we followed: the stream is over.
                return if args.follow {
                    Ok(Outcome::Success)
                } else {
                    Err(protocol(
                        "herdd closed the connection before the end of the logs".into(),
                    ))
                };
            }
        };
        match item {
            Item::Line(log) => {
                let seen = serde_json::to_value(&log).map_err(io::Error::from)?;
                if replay.fresh(&seen) {
                    view.show(&mut stdout, &log)?;
                }
            }
            Item::Missed(gap) => {
                stdout.flush()?;
                output::print_diagnostic(&missed_note(&gap));
            }
            Item::End => {
                stdout.flush()?;
                return Ok(Outcome::Success);
            }
        }
        // Flush before waiting for more, so `-f` shows lines as they come.
        if !client.has_buffered() {
            stdout.flush()?;
        }
    }
}

/// One line of herdd's reply.
#[derive(Debug, PartialEq)]
pub enum Item {
    Line(LogLine),
    /// A follower missed whole rotated files.
    Missed(LogGap),
    /// `{"ok": ...}`: every line asked for has been sent.
    End,
}

/// What one `{"KEY": value}` line of the stream says.
pub fn item(key: &str, value: Value) -> Result<Item, Error> {
    let bad = || {
        protocol(format!(
            "bad log line: {}",
            serde_json::json!({ key: value.clone() })
        ))
    };
    match key {
        "log" => serde_json::from_value(value.clone())
            .map(Item::Line)
            .map_err(|_| bad()),
        "missed" => serde_json::from_value(value.clone())
            .map(Item::Missed)
            .map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// How lines are printed.
pub struct View {
    pub json: bool,
    pub timestamps: bool,
    /// The longest instance name so far: names are padded to it.
    pub width: usize,
}

impl View {
    pub fn show(&mut self, out: &mut impl Write, line: &LogLine) -> io::Result<()> {
        if self.json {
            serde_json::to_writer(&mut *out, line)?;
            return out.write_all(b"\n");
        }
        self.width = self.width.max(line.instance.chars().count());
        if self.timestamps {
            write!(out, "{} ", line.time)?;
        }
        // The text as the process wrote it (colours included), like `tail`.
        writeln!(
            out,
            "{:width$} | {}",
            line.instance,
            line.text,
            width = self.width
        )
    }
}

pub fn missed_note(gap: &LogGap) -> String {
    let files = if gap.files == 1 { "file" } else { "files" };
    format!(
        "{}: missed {} rotated log {files} (deleted before they could be read; reader too slow)",
        gap.instance, gap.files
    )
}

fn protocol(message: String) -> Error {
    Error::Client(ClientError::Protocol(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_common::protocol::OutputStream;

    fn log(instance: &str, text: &str) -> LogLine {
        LogLine {
            time: "2026-11-29T17:00:00.123Z".into(),
            instance: instance.into(),
            stream: OutputStream::Stdout,
            text: text.into(),
            partial: false,
        }
    }

    fn render(view: &mut View, lines: &[LogLine]) -> String {
        let mut out = Vec::new();
        for line in lines {
            view.show(&mut out, line).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn human_lines_are_tagged_and_aligned() {
        let mut view = View {
            json: false,
            timestamps: false,
            width: 0,
        };
        let text = render(
            &mut view,
            &[log("web@1", "a"), log("web@10", "b"), log("web@1", "c")],
        );
        assert_eq!(text, "web@1 | a\nweb@10 | b\nweb@1  | c\n");
        let mut view = View {
            json: false,
            timestamps: true,
            width: 0,
        };
        assert_eq!(
            render(&mut view, &[log("db", "ready")]),
            "2026-11-29T17:00:00.123Z db | ready\n"
        );
    }

    #[test]
    fn json_lines_are_the_log_objects() {
        let mut view = View {
            json: true,
            timestamps: false,
            width: 0,
        };
        let text = render(&mut view, &[log("db", "x")]);
        assert_eq!(
            text,
            "{\"time\":\"2026-11-29T17:00:00.123Z\",\"instance\":\"db\",\"stream\":\"stdout\",\"text\":\"x\"}\n"
        );
    }

    #[test]
    fn lines_of_the_reply() {
        let line = serde_json::to_value(log("web@2", "hi")).unwrap();
        assert_eq!(item("log", line).unwrap(), Item::Line(log("web@2", "hi")));
        assert_eq!(
            item(
                "missed",
                serde_json::json!({"instance": "web@2", "files": 3})
            )
            .unwrap(),
            Item::Missed(LogGap {
                instance: "web@2".into(),
                files: 3
            })
        );
        for (key, bad) in [
            ("log", serde_json::json!(3)),
            ("what", serde_json::json!(1)),
        ] {
            assert!(
                matches!(item(key, bad), Err(Error::Client(ClientError::Protocol(_)))),
                "{key}"
            );
        }
        assert_eq!(
            missed_note(&LogGap {
                instance: "web@2".into(),
                files: 1
            }),
            "web@2: missed 1 rotated log file (deleted before they could be read; reader too slow)"
        );
    }
}
