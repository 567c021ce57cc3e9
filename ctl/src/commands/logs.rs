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

use super::{Context, Outcome, Transport};
use crate::cli::LogsArgs;
use crate::error::Error;
use crate::output;
use herd_common::client::ClientError;
use herd_common::protocol::{encode_request, ErrorBody, LogGap, LogLine, Request};
use serde_json::Value;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::unix::net::UnixStream;

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
    let stream = UnixStream::connect(socket).map_err(|source| ClientError::Unreachable {
        path: socket.clone(),
        source,
    })?;
    (&stream)
        .write_all(encode_request(&request).as_bytes())
        .map_err(|err| protocol(format!("cannot send request: {err}")))?;
    let mut reader = BufReader::with_capacity(64 * 1024, &stream);
    let mut stdout = BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    let mut view = View {
        json: ctx.json,
        timestamps: args.timestamps,
        width: 0,
    };
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|err| protocol(format!("cannot read the logs: {err}")))?;
        if read == 0 {
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
        match parse(&line)? {
            Item::Line(log) => view.show(&mut stdout, &log)?,
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
        if reader.buffer().is_empty() {
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

/// What one line says; an `{"error": ...}` line is herdd's error, reported
/// (and exited on) as for any verb.
pub fn parse(line: &str) -> Result<Item, Error> {
    let bad = |why: &str| protocol(format!("{why}: {:?}", line.trim_end()));
    let value: Value = serde_json::from_str(line).map_err(|_| bad("bad log line"))?;
    let Value::Object(mut object) = value else {
        return Err(bad("bad log line"));
    };
    if let Some(log) = object.remove("log") {
        return serde_json::from_value(log)
            .map(Item::Line)
            .map_err(|_| bad("bad log line"));
    }
    if let Some(gap) = object.remove("missed") {
        return serde_json::from_value(gap)
            .map(Item::Missed)
            .map_err(|_| bad("bad log line"));
    }
    if object.contains_key("ok") {
        return Ok(Item::End);
    }
    if let Some(error) = object.remove("error") {
        let body: ErrorBody = serde_json::from_value(error).map_err(|_| bad("bad error reply"))?;
        return Err(Error::Client(ClientError::Remote(body)));
    }
    Err(bad("bad log line"))
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
        let line = serde_json::json!({ "log": log("web@2", "hi") }).to_string();
        assert_eq!(parse(&line).unwrap(), Item::Line(log("web@2", "hi")));
        assert_eq!(parse("{\"ok\":{\"count\":3}}\n").unwrap(), Item::End);
        assert_eq!(
            parse(r#"{"missed":{"instance":"web@2","files":3}}"#).unwrap(),
            Item::Missed(LogGap {
                instance: "web@2".into(),
                files: 3
            })
        );
        let err =
            parse(r#"{"error":{"code":"no_such_unit","message":"no such unit: x"}}"#).unwrap_err();
        assert!(
            matches!(&err, Error::Client(ClientError::Remote(body)) if body.message == "no such unit: x"),
            "{err:?}"
        );
        for bad in ["garbage", "[1]", "{\"what\":1}", "{\"log\":3}"] {
            assert!(
                matches!(parse(bad), Err(Error::Client(ClientError::Protocol(_)))),
                "{bad}"
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
