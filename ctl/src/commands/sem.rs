//! `herdctl sem list` and `herdctl sem acquire NAME [--timeout D] -- CMD...`.
//!
//! # How `acquire` holds its slot
//! herdd gives the slot to the *connection* that asked for it and takes it
//! back when that connection sends `sem-release` or closes. So herdctl
//! asks, waits for the grant on the same connection, and keeps that
//! connection open for exactly as long as CMD runs; then it releases the
//! slot explicitly (best effort) and exits with CMD's code. If herdctl is
//! killed, however hard, the kernel closes the socket and herdd frees the
//! slot: there is nothing else to clean up. The socket is close-on-exec,
//! so CMD never inherits it (a slot cannot outlive herdctl through CMD).

use super::{child, millis, Connection, Context, Outcome};
use crate::cli::{SemAcquireArgs, SemCommand};
use crate::error::Error;
use crate::output::{self, Cell, Paint, Table};
use herd_common::protocol::{AcquireReport, Request, SemaphoreReport, SemaphoreStatus};

/// How many holders or waiters a table cell names before `+N more`; the
/// JSON payload always has them all.
const NAMES_SHOWN: usize = 5;

pub fn exec(ctx: &Context, command: SemCommand) -> Result<Outcome, Error> {
    match command {
        SemCommand::List => list(ctx),
        SemCommand::Acquire(args) => acquire(ctx, args),
    }
}

fn list(ctx: &Context) -> Result<Outcome, Error> {
    let report: SemaphoreReport = ctx.call(&Request::SemList)?;
    if ctx.json {
        output::print_json(&report)?;
    } else {
        output::print_text(&render_table(&report.semaphores, ctx.colour))?;
    }
    Ok(Outcome::Success)
}

/// ```text
/// NAME  CAPACITY  HELD  HOLDERS                     WAITING
/// db    2         2/2   web@0, client 3 (pid 4242)  1: web@1
/// mail  1         0/1   -                           0
/// ```
/// HELD is yellow when every slot is taken, WAITING is the count of
/// waiters and, when there are some, who they are, first in line first.
pub fn render_table(semaphores: &[SemaphoreStatus], colour: bool) -> String {
    let mut table = Table::new(&["NAME", "CAPACITY", "HELD", "HOLDERS", "WAITING"]);
    for sem in semaphores {
        let held = sem.holders.len();
        let full = u32::try_from(held).map_or(true, |held| held >= sem.capacity);
        let waiting = match sem.waiters.len() {
            0 => "0".to_string(),
            n => format!("{n}: {}", name_list(&sem.waiters)),
        };
        table.push(vec![
            Cell::new(&sem.name),
            Cell::new(sem.capacity.to_string()),
            Cell::painted(
                format!("{held}/{}", sem.capacity),
                if full { Paint::Yellow } else { Paint::Plain },
            ),
            Cell::new(if held == 0 {
                "-".to_string()
            } else {
                name_list(&sem.holders)
            }),
            Cell::new(waiting),
        ]);
    }
    table.render(colour)
}

/// `a, b, c`, or the first [`NAMES_SHOWN`] then `+N more`.
fn name_list(names: &[String]) -> String {
    let mut text = names
        .iter()
        .take(NAMES_SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > NAMES_SHOWN {
        text.push_str(&format!(", +{} more", names.len() - NAMES_SHOWN));
    }
    text
}

/// Waits for the slot, runs CMD holding it, gives it back. CMD's stdout is
/// its own: herdctl prints nothing there on success, even with `--json`
/// (which prints the `sem-acquire` payload when the wait timed out).
fn acquire(ctx: &Context, args: SemAcquireArgs) -> Result<Outcome, Error> {
    let mut connection = ctx.connect()?;
    let report: AcquireReport = connection.call(&Request::SemAcquire {
        name: args.name.clone(),
        timeout_ms: args.timeout.map(millis),
        pid: Some(std::process::id()),
    })?;
    if !report.acquired {
        if ctx.json {
            output::print_json(&report)?;
        }
        output::print_diagnostic(&format!("timed out waiting for semaphore {}", args.name));
        return Ok(Outcome::Failed);
    }
    let result = child::run(&args.command);
    release(&mut connection, &args.name);
    result.map(Outcome::Code)
}

/// Gives the slot back and waits for herdd to confirm, so that it is free
/// by the time herdctl exits. Best effort: if herdd cannot be told, closing
/// the connection (on exit) frees the slot anyway.
fn release(connection: &mut Connection, name: &str) {
    let _: Result<serde_json::Value, Error> = connection.call(&Request::SemRelease {
        name: name.to_string(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sem(name: &str, capacity: u32, holders: &[&str], waiters: &[&str]) -> SemaphoreStatus {
        SemaphoreStatus {
            name: name.into(),
            capacity,
            holders: holders.iter().map(|s| s.to_string()).collect(),
            waiters: waiters.iter().map(|s| s.to_string()).collect(),
            waits: Default::default(),
        }
    }

    #[test]
    fn table() {
        let sems = [
            sem("db", 2, &["web@0", "client 3 (pid 4242)"], &["web@1"]),
            sem("mail", 1, &[], &[]),
            sem(
                "gpu",
                1,
                &["convert#17"],
                &["convert#18", "convert#19", "a", "b", "c", "d", "e"],
            ),
        ];
        assert_eq!(
            render_table(&sems, false),
            "\
NAME  CAPACITY  HELD  HOLDERS                     WAITING
db    2         2/2   web@0, client 3 (pid 4242)  1: web@1
mail  1         0/1   -                           0
gpu   1         1/1   convert#17                  7: convert#18, convert#19, a, b, c, +2 more
"
        );
    }

    #[test]
    fn full_semaphores_are_yellow() {
        let table = render_table(&[sem("db", 1, &["web@0"], &[])], true);
        assert!(table.contains("\x1b[33m1/1\x1b[0m"), "{table:?}");
        let table = render_table(&[sem("db", 2, &["web@0"], &[])], true);
        assert!(!table.contains('\x1b'), "{table:?}");
    }

    #[test]
    fn empty_list_is_just_the_header() {
        assert_eq!(
            render_table(&[], false),
            "NAME  CAPACITY  HELD  HOLDERS  WAITING\n"
        );
    }
}
