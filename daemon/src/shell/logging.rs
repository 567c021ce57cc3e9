//! herdd's own log: `tracing` to stderr, filtered by `HERD_LOG` (default `info`).
//!
//! Its form follows where stderr goes:
//! - a terminal: timestamped lines, levels in colour (unless `NO_COLOR` is
//!   set to anything but the empty string, as <https://no-color.org> asks);
//! - journald (systemd sets `JOURNAL_STREAM` to the `device:inode` of the
//!   stream it gave herdd as stderr): lines prefixed `<N>` with the syslog
//!   priority of their level, and no timestamps, since journald adds its own;
//! - anything else (a file, a pipe): timestamped lines without escape codes.

use std::fmt;
use std::io::IsTerminal;
use std::os::unix::fs::MetadataExt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_env("HERD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        // Its report of a failed write would go to stderr too, with a
        // panicking `eprintln!`: a full disk must not bring herdd down.
        .log_internal_errors(false);
    let journal = stderr_is_journal(std::env::var("JOURNAL_STREAM").ok().as_deref());
    let _ = if journal {
        let format = Format::default()
            .without_time()
            .with_level(false)
            .with_target(false)
            .with_ansi(false);
        builder.event_format(SyslogPriority(format)).try_init()
    } else {
        let colour = colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        );
        builder.with_ansi(colour).try_init()
    };
}

/// Colour only for a terminal, and not when `NO_COLOR` is set non-empty.
fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|value| value.is_empty())
}

/// Whether `journal_stream` (`JOURNAL_STREAM`: `device:inode`) names the
/// stream that is herdd's stderr now. A herdd started from a shell inside a
/// unit inherits the variable with another stderr: then it is not journald's.
fn stderr_is_journal(journal_stream: Option<&str>) -> bool {
    let Some((device, inode)) = journal_stream.and_then(|value| value.split_once(':')) else {
        return false;
    };
    let (Ok(device), Ok(inode)) = (device.parse::<u64>(), inode.parse::<u64>()) else {
        return false;
    };
    // stat() of the /proc link is fstat(2) of the descriptor.
    std::fs::metadata("/proc/self/fd/2")
        .is_ok_and(|stderr| stderr.dev() == device && stderr.ino() == inode)
}

/// The syslog priority journald reads from a `<N>` line prefix.
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Prefixes each line of the inner format with `<N>`.
struct SyslogPriority<F>(F);

impl<S, N, F> FormatEvent<S, N> for SyslogPriority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(
            colour(true, Some(OsStr::new(""))),
            "empty NO_COLOR is unset"
        );
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
    }

    #[test]
    fn journal_stream_must_name_this_stderr() {
        assert!(!stderr_is_journal(None));
        assert!(!stderr_is_journal(Some("garbage")));
        assert!(!stderr_is_journal(Some("1:x")));
        let stderr = std::fs::metadata("/proc/self/fd/2").unwrap();
        let ours = format!("{}:{}", stderr.dev(), stderr.ino());
        assert!(stderr_is_journal(Some(&ours)));
        let other = format!("{}:{}", stderr.dev(), stderr.ino() + 1);
        assert!(!stderr_is_journal(Some(&other)));
    }

    #[test]
    fn priorities_are_syslogs() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
    }
}
