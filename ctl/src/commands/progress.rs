//! `map`'s progress line on stderr, when stderr is a terminal:
//!
//! ```text
//! [#######-------------] 37/100  2 failed  12.3/s  ETA 5s
//! ```
//!
//! Drawn in place (carriage return, erase line) and erased before anything
//! else is written to the terminal, so it never mixes with real output.

use crate::output::format_duration;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often the line is redrawn at most while tasks complete quickly.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// Width of the bar between the brackets.
const BAR_WIDTH: usize = 20;

/// Moves to the start of the line and erases it.
const ERASE_LINE: &str = "\r\x1b[2K";

pub struct Progress {
    /// Off when stderr is not a terminal: then nothing is ever drawn.
    enabled: bool,
    /// Whether stdout goes to the same place, so the line must be erased
    /// before each result is printed.
    shares_stdout: bool,
    total: usize,
    /// Whether more items may come (stdin is still open): the total is
    /// then shown as `N+` and there is no ETA.
    more: bool,
    done: usize,
    failed: usize,
    start: Instant,
    /// When the line was last drawn; `None` while it is not on screen.
    drawn_at: Option<Instant>,
}

impl Progress {
    /// A progress line for items yet to come, shown only on a terminal.
    pub fn new() -> Progress {
        Progress {
            enabled: io::stderr().is_terminal(),
            shares_stdout: io::stdout().is_terminal(),
            total: 0,
            more: true,
            done: 0,
            failed: 0,
            start: Instant::now(),
            drawn_at: None,
        }
    }

    /// Counts one more item to do.
    pub fn item_added(&mut self) {
        self.total += 1;
    }

    /// No more items will come.
    pub fn input_done(&mut self) {
        self.more = false;
    }

    /// Counts one more collected item.
    pub fn item_done(&mut self, ok: bool) {
        self.done += 1;
        if !ok {
            self.failed += 1;
        }
    }

    /// Redraws the line if it is not on screen, or was drawn long enough
    /// ago that the rate and ETA are worth refreshing.
    pub fn draw(&mut self) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self
            .drawn_at
            .is_some_and(|at| now.duration_since(at) < REDRAW_EVERY && self.done < self.total)
        {
            return;
        }
        let total = Total {
            known: self.total,
            more: self.more,
        };
        let line = render(self.done, total, self.failed, self.start.elapsed());
        let _ = write!(io::stderr().lock(), "{ERASE_LINE}{line}");
        self.drawn_at = Some(now);
    }

    /// Erases the line (before a message on stderr, or at the end).
    pub fn clear(&mut self) {
        if self.drawn_at.take().is_some() {
            let _ = write!(io::stderr().lock(), "{ERASE_LINE}");
        }
    }

    /// Erases the line before a result goes to stdout, if stdout is the
    /// same terminal.
    pub fn before_stdout(&mut self) {
        if self.shares_stdout {
            self.clear();
        }
    }
}

/// How many items there are: `known` so far, and whether `more` may come.
#[derive(Debug, Clone, Copy)]
pub struct Total {
    pub known: usize,
    pub more: bool,
}

/// `[#######-------------] 37/100  2 failed  12.3/s  ETA 5s`; the failed
/// count only when there are failures, rate and ETA once something is done.
/// While more items may come: `37/100+` and no ETA.
pub fn render(done: usize, total: Total, failed: usize, elapsed: Duration) -> String {
    let Total { known: total, more } = total;
    let filled = (done * BAR_WIDTH).checked_div(total).unwrap_or(BAR_WIDTH);
    let mut line = format!(
        "[{}{}] {done}/{total}{}",
        "#".repeat(filled),
        "-".repeat(BAR_WIDTH - filled),
        if more { "+" } else { "" }
    );
    if failed > 0 {
        line.push_str(&format!("  {failed} failed"));
    }
    let seconds = elapsed.as_secs_f64();
    if done > 0 && seconds > 0.0 {
        let rate = done as f64 / seconds;
        line.push_str(&format!("  {rate:.1}/s"));
        if done < total && !more {
            let eta_ms = (total - done) as f64 / rate * 1000.0;
            line.push_str(&format!("  ETA {}", format_duration(eta_ms as u64)));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(known: usize) -> Total {
        Total { known, more: false }
    }

    #[test]
    fn lines() {
        assert_eq!(
            render(0, all(100), 0, Duration::ZERO),
            "[--------------------] 0/100"
        );
        assert_eq!(
            render(25, all(100), 2, Duration::from_secs(5)),
            "[#####---------------] 25/100  2 failed  5.0/s  ETA 15s"
        );
        assert_eq!(
            render(3, all(3), 0, Duration::from_millis(1500)),
            "[####################] 3/3  2.0/s"
        );
        assert_eq!(
            render(0, all(0), 0, Duration::ZERO),
            "[####################] 0/0"
        );
    }

    #[test]
    fn while_stdin_is_open_the_total_is_a_lower_bound() {
        let so_far = Total {
            known: 100,
            more: true,
        };
        assert_eq!(
            render(25, so_far, 0, Duration::from_secs(5)),
            "[#####---------------] 25/100+  5.0/s"
        );
    }
}
