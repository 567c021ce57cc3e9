//! Processes herdd did not spawn in this life: after a crash of herdd its
//! `daemon = false` children live on, re-parented elsewhere. herdd cannot
//! `waitpid` them, so it watches them with a pidfd (readable when the
//! process ends) and reports an exit of unknown status. The same watch keeps
//! a semaphore slot of a client process across a re-exec or crash of herdd
//! until that process ends.

use crate::core::snapshot::Snapshot;
use crate::core::Input;
use herd_common::state::Exit;
use std::os::fd::{FromRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc;

/// The kernel's start time of `pid` (clock ticks since boot, field 22 of
/// /proc/PID/stat): with the pid it names one process, even after pid reuse.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` is still the process that had `start`, and not a zombie.
pub fn is_same_process(pid: u32, start: Option<u64>) -> bool {
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie);
    alive && (start.is_none() || start_time(pid) == start)
}

/// A pidfd: names one process for as long as it is open, whatever happens
/// to its pid, and becomes readable when that process ends.
pub struct PidFd(AsyncFd<OwnedFd>);

impl PidFd {
    /// `pid`'s pidfd, if it can be opened (and watched).
    pub fn open(pid: u32) -> Option<PidFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return None;
        }
        // SAFETY: the descriptor was just created and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // SAFETY: the AsyncFd owns `fd`, which stays open for its whole life.
        unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .ok()
            .map(PidFd)
    }

    /// `pid`'s pidfd if `pid` is, once the pidfd is open, still the live
    /// process that had kernel start time `start`: checked after opening,
    /// so the descriptor cannot name a later process that reused the pid.
    pub fn open_if_same(pid: u32, start: u64) -> Option<PidFd> {
        let fd = PidFd::open(pid)?;
        is_same_process(pid, Some(start)).then_some(fd)
    }

    /// Waits until the process has ended.
    pub async fn ended(&self) {
        let _ = self.0.readable().await;
    }

    /// Reports the process's end as `Input::Exited { exit: Unknown }`.
    fn report_end(self, pid: u32, inputs: mpsc::UnboundedSender<Input>) {
        tokio::spawn(async move {
            self.ended().await;
            let _ = inputs.send(Input::Exited {
                pid,
                exit: Exit::Unknown,
            });
        });
    }
}

/// Reports `pid`'s end as `Input::Exited { exit: Unknown }`. Returns false if
/// it cannot be watched (then it is treated as already gone).
pub fn watch(pid: u32, inputs: mpsc::UnboundedSender<Input>) -> bool {
    let Some(fd) = PidFd::open(pid) else {
        return false;
    };
    fd.report_end(pid, inputs);
    true
}

/// Like [`watch`], for `pid` only while it is the process with kernel start
/// time `start` (see [`PidFd::open_if_same`]).
pub fn watch_if_same(pid: u32, start: u64, inputs: mpsc::UnboundedSender<Input>) -> bool {
    let Some(fd) = PidFd::open_if_same(pid, start) else {
        return false;
    };
    fd.report_end(pid, inputs);
    true
}

/// Records the start time of every process holding a semaphore slot that
/// outlives herdd's connections (see [`Snapshot::carried_holders`]).
pub fn fill_holder_starts(snapshot: &mut Snapshot) {
    for (pid, start) in snapshot.carried_holders() {
        *start = start.or_else(|| start_time(*pid));
    }
}

/// Watches every process holding a carried-over semaphore slot, so that its
/// end releases the slot; returns those already gone (or another process
/// by now), whose slots go at once.
pub fn watch_holders(snapshot: &mut Snapshot, inputs: &mpsc::UnboundedSender<Input>) -> Vec<u32> {
    let mut gone: Vec<u32> = snapshot
        .carried_holders()
        .filter(|(pid, start)| !(is_same_process(**pid, **start) && watch(**pid, inputs.clone())))
        .map(|(pid, _)| *pid)
        .collect();
    gone.sort_unstable();
    gone.dedup();
    gone
}
