//! `herdctl event list|set|clear|wait`: herd's named flags, as
//! `multiprocessing.Event`.

use super::{millis, Context, Outcome};
use crate::cli::EventCommand;
use crate::error::Error;
use crate::output::{self, Cell, Paint, Table};
use herd_common::protocol::{EventChange, EventReport, EventStatus, Request};

/// `list` prints a table; `set` and `clear` are quiet on success, like
/// systemctl; `wait` is quiet when the event is set (exit 0) and says so on
/// stderr when it timed out (exit 1). With `--json` every verb prints its
/// payload, the timed-out `wait` included.
pub fn exec(ctx: &Context, command: EventCommand) -> Result<Outcome, Error> {
    let request = match command {
        EventCommand::List => {
            let report: EventReport = ctx.call(&Request::EventList)?;
            if ctx.json {
                output::print_json(&report)?;
            } else {
                output::print_text(&render_table(&report.events, ctx.colour))?;
            }
            return Ok(Outcome::Success);
        }
        EventCommand::Set(args) => Request::EventSet { name: args.name },
        EventCommand::Clear(args) => Request::EventClear { name: args.name },
        EventCommand::Wait(args) => Request::EventWait {
            name: args.name,
            timeout_ms: args.timeout.map(millis),
        },
    };
    let change: EventChange = ctx.call(&request)?;
    if ctx.json {
        output::print_json(&change)?;
    }
    if change.timed_out {
        output::print_diagnostic(&format!(
            "timed out waiting for event {}",
            change.event.name
        ));
        return Ok(Outcome::Failed);
    }
    Ok(Outcome::Success)
}

/// ```text
/// NAME      STATE
/// db-ready  set
/// drain     clear
/// ```
/// `set` in green.
pub fn render_table(events: &[EventStatus], colour: bool) -> String {
    let mut table = Table::new(&["NAME", "STATE"]);
    for event in events {
        table.push(vec![
            Cell::new(&event.name),
            if event.set {
                Cell::painted("set", Paint::Green)
            } else {
                Cell::new("clear")
            },
        ]);
    }
    table.render(colour)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, set: bool) -> EventStatus {
        EventStatus {
            name: name.into(),
            set,
        }
    }

    #[test]
    fn table() {
        let events = [event("db-ready", true), event("drain", false)];
        assert_eq!(
            render_table(&events, false),
            "NAME      STATE\ndb-ready  set\ndrain     clear\n"
        );
        assert_eq!(
            render_table(&events[..1], true),
            "NAME      STATE\ndb-ready  \x1b[32mset\x1b[0m\n"
        );
    }
}
