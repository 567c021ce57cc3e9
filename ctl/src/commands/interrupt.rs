//! Ctrl-C for verbs that must clean up before exiting (`map` cancels the
//! tasks it submitted). The handler only sets a flag, which the verb checks
//! between requests; its blocking waits are short (`join` with a timeout),
//! so it notices within a fraction of a second.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Catches the next SIGINT. The handler is reset to the default when it
/// runs (`SA_RESETHAND`), so a second Ctrl-C kills herdctl at once even if
/// the clean-up hangs. When SIGINT is ignored (`nohup`, a background job of
/// a non-interactive shell), it stays ignored.
pub fn catch_sigint() -> io::Result<()> {
    // SAFETY: `sigaction` with a zeroed, then filled-in action and a valid
    // out-pointer; the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        let mut previous: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGINT, &action, &mut previous) != 0 {
            return Err(io::Error::last_os_error());
        }
        if previous.sa_sigaction == libc::SIG_IGN
            && libc::sigaction(libc::SIGINT, &previous, std::ptr::null_mut()) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether SIGINT arrived since [`catch_sigint`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
