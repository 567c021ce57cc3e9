//! `herdctl events [-f]`: herd's lifecycle stream.
//!
//! herdd answers `events` with one `{"event": EventLine}` line per event
//! it remembers, then `{"ok": ...}`; with `follow`, it goes on with live
//! events instead, until one side closes. So the reply is read as a stream
//! (`Client::open_stream`), which a `daemon-reexec` does not end: herdctl
//! follows the new image, without showing an event twice (`replay`). Each
//! event is printed, and flushed, as it arrives:
//!
//! ```text
//! 2026-11-29T17:00:00.123Z web@1: pid 42 exited (killed by SIGKILL)
//! ```
//!
//! With `--json`, the EventLine object itself, one per line, exactly as
//! herdd sent it (so event types newer than this herdctl pass through).
//! When herdd says this reader fell behind (`lagged`), human output tells
//! it on stderr: `herdctl: missed 12 events (reader too slow)`. A closed
//! stdout (`herdctl events -f | head`) ends herdctl quietly with 0.

use super::replay::Replay;
use super::{Context, Outcome, Transport};
use crate::dbus::{Bus, DbusClient};
use crate::error::Error;
use crate::output;
use herd_common::client::{Client, ClientError, Streamed};
use herd_common::events::{EventLine, Lifecycle};
use herd_common::protocol::{ErrorBody, Request};
use serde_json::Value;
use std::io::{self, Write};

pub fn exec(ctx: &Context, follow: bool) -> Result<Outcome, Error> {
    let socket = match &ctx.transport {
        Transport::Socket(socket) => socket,
        Transport::Dbus(bus) => return over_dbus(ctx, bus, follow),
    };
    let mut client = Client::connect_with(socket, ctx.patience)?;
    client.open_stream(&Request::Events { follow })?;
    let mut replay = Replay::default();
    loop {
        match client.next_streamed()? {
            Some(Streamed::Item { key, value }) => {
                let event = event_of(&key, value)?;
                if replay.fresh(&event) {
                    show(&event, ctx.json)?;
                }
            }
            Some(Streamed::End(_)) => return Ok(Outcome::Success),
            // herdd re-executed: the new image's stream starts over.
            Some(Streamed::Resumed) => replay.resumed(),
            // herdd went away (shutdown) while we followed: the stream is over.
            None if follow => return Ok(Outcome::Success),
            None => {
                return Err(protocol(
                    "herdd closed the connection before the end of the events".into(),
                ))
            }
        }
    }
}

/// The EventLine of one `{"event": EventLine}` line of the stream.
fn event_of(key: &str, value: Value) -> Result<Value, Error> {
    match (key, value) {
        ("event", event @ Value::Object(_)) => Ok(event),
        (key, value) => Err(protocol(format!(
            "bad event line: {}",
            serde_json::json!({ key: value })
        ))),
    }
}

/// Over D-Bus: the remembered events from `RecentEvents`, then (with
/// `follow`) each `Event` signal until herdd leaves the bus. Each is a bare
/// EventLine, shown exactly as one from the socket.
fn over_dbus(ctx: &Context, bus: &Bus, follow: bool) -> Result<Outcome, Error> {
    let mut client = DbusClient::connect(bus)?;
    client.events(follow, |line| match parse(line)? {
        Item::Event(event) => show(&event, ctx.json),
        Item::End => Ok(()),
    })?;
    Ok(Outcome::Success)
}

/// One line of herdd's reply.
#[derive(Debug, PartialEq)]
pub enum Item {
    /// An EventLine, as JSON.
    Event(Value),
    /// `{"ok": ...}`: every remembered event has been sent.
    End,
}

/// What one line says; an `{"error": ...}` line is herdd's error, reported
/// (and exited on) as for any verb.
pub fn parse(line: &str) -> Result<Item, Error> {
    let bad = |why: &str| protocol(format!("{why}: {:?}", line.trim_end()));
    let value: Value = serde_json::from_str(line).map_err(|_| bad("bad event line"))?;
    let Value::Object(mut object) = value else {
        return Err(bad("bad event line"));
    };
    if object.contains_key("ok") {
        return Ok(Item::End);
    }
    if let Some(error) = object.remove("error") {
        let body: ErrorBody = serde_json::from_value(error).map_err(|_| bad("bad error reply"))?;
        return Err(Error::Client(ClientError::Remote(body)));
    }
    match object.remove("event") {
        Some(event @ Value::Object(_)) => Ok(Item::Event(event)),
        // A bare EventLine (its own `event` field, if any, is an event's name).
        Some(name) if object.contains_key("type") => {
            object.insert("event".into(), name);
            Ok(Item::Event(Value::Object(object)))
        }
        None if object.contains_key("type") => Ok(Item::Event(Value::Object(object))),
        _ => Err(bad("bad event line")),
    }
}

/// Prints one event: the JSON line, or the human line (the lagged notice
/// on stderr).
fn show(event: &Value, json: bool) -> Result<(), Error> {
    let mut stdout = io::stdout().lock();
    if json {
        serde_json::to_writer(&mut stdout, event).map_err(io::Error::from)?;
        stdout.write_all(b"\n")?;
    } else {
        match render(event) {
            Rendered::Line(text) => writeln!(stdout, "{text}")?,
            Rendered::Lagged(text) => {
                drop(stdout);
                output::print_diagnostic(&text);
                return Ok(());
            }
        }
    }
    stdout.flush()?;
    Ok(())
}

/// How an event reads for a human.
#[derive(Debug, PartialEq)]
pub enum Rendered {
    /// For stdout: `TIME WHAT`.
    Line(String),
    /// For stderr: this reader missed events.
    Lagged(String),
}

/// `2026-11-29T17:00:00.123Z web@1: pid 42 exited (killed by SIGKILL)`.
/// An event type this herdctl does not know is shown as
/// `TIME TYPE: {other fields}` rather than dropped.
pub fn render(event: &Value) -> Rendered {
    match serde_json::from_value::<EventLine>(event.clone()) {
        Ok(EventLine {
            event: lagged @ Lifecycle::Lagged { .. },
            ..
        }) => Rendered::Lagged(lagged.to_string()),
        Ok(line) => Rendered::Line(format!("{} {}", line.time, line.event)),
        Err(_) => {
            let mut rest = event.as_object().cloned().unwrap_or_default();
            let text = |value: Option<Value>| match value {
                Some(Value::String(text)) => text,
                Some(other) => other.to_string(),
                None => "?".to_string(),
            };
            let time = text(rest.remove("time"));
            let kind = text(rest.remove("type"));
            if rest.is_empty() {
                Rendered::Line(format!("{time} {kind}"))
            } else {
                Rendered::Line(format!("{time} {kind}: {}", Value::Object(rest)))
            }
        }
    }
}

fn protocol(message: String) -> Error {
    Error::Client(ClientError::Protocol(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(event: Lifecycle) -> Value {
        serde_json::to_value(EventLine {
            time: "2026-11-29T17:00:00.123Z".into(),
            event,
        })
        .unwrap()
    }

    #[test]
    fn human_lines() {
        let cases = [
            (
                line(Lifecycle::Exited {
                    instance: "web@1".into(),
                    pid: 42,
                    exit: herd_common::state::Exit::Signal("SIGKILL".into()),
                    task: None,
                }),
                "2026-11-29T17:00:00.123Z web@1: pid 42 exited (killed by SIGKILL)",
            ),
            (
                line(Lifecycle::Started {
                    instance: "db".into(),
                    pid: 7,
                    task: None,
                }),
                "2026-11-29T17:00:00.123Z db: started (pid 7)",
            ),
            (
                line(Lifecycle::EventChanged {
                    event: "db-ready".into(),
                    set: true,
                }),
                "2026-11-29T17:00:00.123Z event db-ready: set",
            ),
        ];
        for (event, text) in cases {
            assert_eq!(render(&event), Rendered::Line(text.into()));
        }
    }

    #[test]
    fn lagged_goes_to_stderr() {
        assert_eq!(
            render(&line(Lifecycle::Lagged { missed: 12 })),
            Rendered::Lagged("missed 12 events (reader too slow)".into())
        );
    }

    #[test]
    fn unknown_types_are_shown_not_dropped() {
        let event = json!({"time": "T", "type": "reloaded", "units": 3});
        assert_eq!(
            render(&event),
            Rendered::Line("T reloaded: {\"units\":3}".into())
        );
        assert_eq!(
            render(&json!({"time": "T", "type": "ping"})),
            Rendered::Line("T ping".into())
        );
    }

    #[test]
    fn lines_of_the_reply() {
        let event = line(Lifecycle::Ready {
            instance: "db".into(),
        });
        let wrapped = json!({ "event": event }).to_string();
        assert_eq!(parse(&wrapped).unwrap(), Item::Event(event.clone()));
        assert_eq!(
            parse(&format!("{event}\n")).unwrap(),
            Item::Event(event),
            "a bare EventLine"
        );
        let changed = line(Lifecycle::EventChanged {
            event: "db-ready".into(),
            set: false,
        });
        assert_eq!(
            parse(&changed.to_string()).unwrap(),
            Item::Event(changed),
            "a bare event_changed keeps its event name"
        );
        assert_eq!(parse("{\"ok\":{\"count\":3}}\n").unwrap(), Item::End);

        let err = parse(r#"{"error":{"code":"permission_denied","message":"no"}}"#).unwrap_err();
        assert!(
            matches!(&err, Error::Client(ClientError::Remote(body)) if body.message == "no"),
            "{err:?}"
        );
        for bad in ["garbage", "[1]", "{\"what\":1}", "{\"event\":3}"] {
            assert!(
                matches!(parse(bad), Err(Error::Client(ClientError::Protocol(_)))),
                "{bad}"
            );
        }
    }
}
