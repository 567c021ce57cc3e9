//! Reaping: every SIGCHLD drains `waitpid(-1, WNOHANG)`, so exits of our own
//! children and of orphans re-parented to us are all collected. SIGCHLD
//! coalesces, so one signal may stand for many exits.

use herd_common::signals::signal_name;
use herd_common::state::Exit;
use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Collects every child that has ended since the last call.
pub fn reap_all() -> Vec<(u32, Exit)> {
    let mut exits = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => {
                exits.push((pid.as_raw() as u32, Exit::Code(code)))
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) => exits.push((
                pid.as_raw() as u32,
                Exit::Signal(signal_name(signal as i32)),
            )),
            Ok(WaitStatus::StillAlive) => break,
            // Stopped/continued are not asked for (no WUNTRACED); keep draining.
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            // ECHILD: no children left.
            Err(_) => break,
        }
    }
    exits
}

/// Makes herdd the reaper of orphaned descendants, unless it is PID 1 and
/// already is.
pub fn become_subreaper() {
    if std::process::id() == 1 {
        return;
    }
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(error = %err, "cannot become child subreaper; orphans will go to init");
    }
}
