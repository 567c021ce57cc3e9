//! Human and machine output: aligned tables, short durations, colour only on
//! a terminal, and JSON documents. Rendering returns `String`s so it can be
//! tested exactly; only the `print_*` functions touch stdout and stderr.

use herd_common::state::{Exit, State, TaskState};
use serde::Serialize;
use std::io::{self, IsTerminal, Write};

/// Whether human output may carry ANSI colour: only when stdout is a terminal
/// and the user did not opt out with `NO_COLOR` (<https://no-color.org>).
pub fn use_colour() -> bool {
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A colour for a piece of text; `Plain` is the terminal's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paint {
    Plain,
    Green,
    Yellow,
    Red,
}

impl Paint {
    /// How a state is coloured: green when up, red when given up, yellow while
    /// in between, plain when at rest.
    pub fn for_state(state: State) -> Paint {
        match state {
            State::Running => Paint::Green,
            State::Failed => Paint::Red,
            State::Waiting | State::Starting | State::Stopping | State::Backoff => Paint::Yellow,
            State::Inactive | State::Exited => Paint::Plain,
        }
    }

    /// How a pool task's state is coloured, in the same spirit.
    pub fn for_task_state(state: TaskState) -> Paint {
        match state {
            TaskState::Running => Paint::Green,
            TaskState::Failed | TaskState::TimedOut => Paint::Red,
            TaskState::Queued | TaskState::Cancelled => Paint::Yellow,
            TaskState::Exited => Paint::Plain,
        }
    }

    /// `text` wrapped in this colour's escape codes when `colour` is on.
    pub fn apply(self, text: &str, colour: bool) -> String {
        let code = match self {
            Paint::Plain => return text.to_string(),
            Paint::Green => "32",
            Paint::Yellow => "33",
            Paint::Red => "1;31",
        };
        if colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// One table cell: its text and colour. Widths are measured on the text, so
/// colour never breaks alignment.
#[derive(Debug, Clone)]
pub struct Cell {
    text: String,
    paint: Paint,
}

impl Cell {
    pub fn new(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            paint: Paint::Plain,
        }
    }

    pub fn painted(text: impl Into<String>, paint: Paint) -> Cell {
        Cell {
            text: text.into(),
            paint,
        }
    }
}

/// A left-aligned table with a header row, columns two spaces apart and no
/// trailing spaces (so output diffs and greps cleanly).
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| Cell::new(*h)).collect()],
        }
    }

    pub fn push(&mut self, row: Vec<Cell>) {
        self.rows.push(row);
    }

    pub fn render(&self, colour: bool) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(c))
                    .map(|cell| width(&cell.text))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c > 0 {
                    line.push_str("  ");
                }
                line.push_str(&cell.paint.apply(&cell.text, colour));
                if c + 1 < row.len() {
                    line.push_str(&" ".repeat(widths[c] - width(&cell.text)));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Display width of `text`; a char count is exact for what tables hold
/// (names, states, numbers) and close enough for free-form reasons.
fn width(text: &str) -> usize {
    text.chars().count()
}

/// A duration in its two most significant units, as `ps`/`systemctl` users
/// read them: `450ms`, `3s`, `5m12s`, `2h3m`, `4d2h`.
pub fn format_duration(ms: u64) -> String {
    const SECOND: u64 = 1000;
    const MINUTE: u64 = 60 * SECOND;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    match ms {
        ms if ms < SECOND => format!("{ms}ms"),
        ms if ms < MINUTE => format!("{}s", ms / SECOND),
        ms if ms < HOUR => format!("{}m{}s", ms / MINUTE, ms % MINUTE / SECOND),
        ms if ms < DAY => format!("{}h{}m", ms / HOUR, ms % HOUR / MINUTE),
        ms => format!("{}d{}h", ms / DAY, ms % DAY / HOUR),
    }
}

/// A moment (Unix milliseconds) in the local time zone, with how far it is
/// from `now_ms`: `2026-12-07 16:15:00 CET (in 4m10s)`, `... (3m0s ago)`.
pub fn format_moment(ms: i64, now_ms: i64) -> String {
    let zone = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);
    let local = match jiff::Timestamp::from_millisecond(ms) {
        Ok(at) => at
            .to_zoned(zone)
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        Err(_) => return ms.to_string(),
    };
    let distance = format_duration(ms.abs_diff(now_ms));
    if ms >= now_ms {
        format!("{local} (in {distance})")
    } else {
        format!("{local} ({distance} ago)")
    }
}

/// The wall clock now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// A size as `systemctl status` shows memory: `812K`, `60.2M`, `1.5G`
/// (binary units, one decimal from M up).
pub fn format_bytes(bytes: u64) -> String {
    const K: u64 = 1024;
    match bytes {
        b if b < K => format!("{b}B"),
        b if b < K * K => format!("{}K", b / K),
        b if b < K * K * K => format!("{:.1}M", b as f64 / (K * K) as f64),
        b if b < K * K * K * K => format!("{:.1}G", b as f64 / (K * K * K) as f64),
        b => format!("{:.1}T", b as f64 / (K * K * K * K) as f64),
    }
}

/// CPU time: `0.124s`, `12.5s` under a minute, else as [`format_duration`].
pub fn format_cpu(usec: u64) -> String {
    match usec {
        u if u < 10_000_000 => format!("{:.3}s", u as f64 / 1e6),
        u if u < 60_000_000 => format!("{:.1}s", u as f64 / 1e6),
        u => format_duration(u / 1000),
    }
}

/// An exit status in a few characters: `code 1`, `SIGKILL`, or `-` for none.
pub fn format_exit(exit: Option<&Exit>) -> String {
    match exit {
        Some(Exit::Code(code)) => format!("code {code}"),
        Some(Exit::Signal(signal)) => signal.clone(),
        Some(Exit::Unknown) => "unknown".to_string(),
        None => "-".to_string(),
    }
}

/// A command line as a shell would need it typed, so a user can copy it.
pub fn format_command(argv: &[String]) -> String {
    argv.iter()
        .map(String::as_str)
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(arg: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./-_{}".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Writes human output to stdout. Errors (a closed pipe) are returned, not
/// panicked on as `print!` would.
pub fn print_text(text: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// Writes `value` as one compact JSON document and a newline to stdout.
pub fn print_json(value: &impl Serialize) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    serde_json::to_writer(&mut stdout, value)?;
    stdout.write_all(b"\n")?;
    stdout.flush()
}

/// Writes `herdctl: message` to stderr. If stderr itself is gone there is
/// nobody left to tell, so that error is ignored.
pub fn print_diagnostic(message: &str) {
    let _ = writeln!(io::stderr().lock(), "herdctl: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            (0, "0ms"),
            (999, "999ms"),
            (3_000, "3s"),
            (59_999, "59s"),
            (60_000, "1m0s"),
            (312_000, "5m12s"),
            (3_600_000, "1h0m"),
            (2 * 3_600_000 + 3 * 60_000 + 59_000, "2h3m"),
            (4 * 86_400_000 + 2 * 3_600_000 + 1, "4d2h"),
            (400 * 86_400_000, "400d0h"),
        ];
        for (ms, text) in cases {
            assert_eq!(format_duration(ms), text, "{ms} ms");
        }
    }

    #[test]
    fn exits() {
        assert_eq!(format_exit(Some(&Exit::Code(1))), "code 1");
        assert_eq!(
            format_exit(Some(&Exit::Signal("SIGKILL".into()))),
            "SIGKILL"
        );
        assert_eq!(format_exit(None), "-");
    }

    #[test]
    fn commands_are_quoted_only_when_needed() {
        let argv = ["/usr/bin/app", "--port", "80{instance}", "a b", "it's", ""];
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            format_command(&argv),
            r#"/usr/bin/app --port 80{instance} 'a b' 'it'\''s' ''"#
        );
    }

    #[test]
    fn tables_align_without_trailing_spaces() {
        let mut table = Table::new(&["NAME", "STATE", "NOTE"]);
        table.push(vec![
            Cell::new("web@10"),
            Cell::new("running"),
            Cell::new(""),
        ]);
        table.push(vec![Cell::new("db"), Cell::new("failed"), Cell::new("bad")]);
        assert_eq!(
            table.render(false),
            "NAME    STATE    NOTE\n\
             web@10  running\n\
             db      failed   bad\n"
        );
    }

    #[test]
    fn colour_does_not_break_alignment() {
        let mut table = Table::new(&["STATE", "PID"]);
        table.push(vec![Cell::painted("failed", Paint::Red), Cell::new("-")]);
        table.push(vec![Cell::painted("running", Paint::Green), Cell::new("7")]);
        assert_eq!(
            table.render(true),
            "STATE    PID\n\
             \x1b[1;31mfailed\x1b[0m   -\n\
             \x1b[32mrunning\x1b[0m  7\n"
        );
    }
}
