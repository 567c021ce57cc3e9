//! Ctrl-C for verbs that must clean up before exiting (`map` cancels the
//! tasks it submitted). The handler only sets a flag, which the verb checks
//! between requests; its blocking waits are short (`join` with a timeout),
//! so it notices within a fraction of a second.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::SIGINT;
use signal_hook::flag;

/// Set by the first SIGINT after [`catch_sigint`].
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Catches the next SIGINT. A second Ctrl-C kills herdctl at once, as
/// SIGINT's default action would, even if the clean-up hangs. When SIGINT is
/// ignored (`nohup`, a background job of a non-interactive shell), it stays
/// ignored.
pub fn catch_sigint() -> io::Result<()> {
    if ignored(SIGINT)? {
        return Ok(());
    }
    // Order matters: the default action runs only once the flag is already
    // set, i.e. on the second SIGINT.
    flag::register_conditional_default(SIGINT, &INTERRUPTED)?;
    flag::register(SIGINT, &INTERRUPTED)?;
    Ok(())
}

/// Whether SIGINT arrived since [`catch_sigint`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Whether `signal` is ignored in this process (herdctl was started with it
/// ignored): then it must stay so, and installing a handler would undo that.
/// Read from the `SigIgn` mask of /proc/self/status, which says exactly that
/// without touching the signal's disposition.
pub fn ignored(signal: i32) -> io::Result<bool> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let mask = status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or_else(|| io::Error::other("/proc/self/status has no SigIgn mask"))?;
    Ok(in_mask(mask, signal))
}

/// Bit `signal - 1` of a /proc signal mask.
fn in_mask(mask: u64, signal: i32) -> bool {
    (1..=64).contains(&signal) && mask & (1 << (signal - 1)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_count_signals_from_one() {
        assert!(in_mask(0b10, 2));
        assert!(!in_mask(0b10, 1));
        assert!(!in_mask(u64::MAX, 0));
        assert!(in_mask(1 << 63, 64));
    }

    #[test]
    fn sigpipe_is_ignored_by_rust_and_sigint_is_not() {
        // The Rust runtime sets SIGPIPE to SIG_IGN before main.
        assert!(ignored(signal_hook::consts::SIGPIPE).unwrap());
        assert!(!ignored(signal_hook::consts::SIGUSR2).unwrap());
    }
}
