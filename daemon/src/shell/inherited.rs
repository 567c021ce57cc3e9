//! Descriptors herdd inherited from whoever started it (a shell's
//! `exec 7>file`, a launcher, a container runtime) must not reach the
//! processes it starts: a child gets exactly stdin, stdout and stderr plus
//! what herd passes on purpose (task output pipes, a log pipe, `NOTIFY_SOCKET`
//! is a path). Every descriptor herdd opens itself is close-on-exec already;
//! this marks the inherited ones too, once, at start.
//!
//! They are marked, not closed: herdd itself may still need one — the
//! handover memfd and the task output pipes after a `daemon-reexec` (which
//! `reexec.rs` takes over and keeps close-on-exec), or sockets a service
//! manager passes with `LISTEN_FDS`. Marking only affects what an `exec`
//! keeps, and herdd's own re-exec clears the flag on exactly what it hands
//! over.

use std::os::fd::RawFd;

/// Marks every descriptor from 3 up close-on-exec.
pub fn mark_inherited_close_on_exec() {
    let first: libc::c_uint = 3;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on the
    // descriptors in range; it closes nothing and touches no memory.
    let marked = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if marked != 0 {
        // Kernels before 5.11: one by one.
        for fd in open_descriptors()
            .into_iter()
            .filter(|fd| *fd >= first as RawFd)
        {
            mark_close_on_exec(fd);
        }
    }
}

/// herdd's open descriptors, from /proc/self/fd.
fn open_descriptors() -> Vec<RawFd> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    // The directory's own descriptor is in the listing too; marking it is harmless.
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

fn mark_close_on_exec(fd: RawFd) {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    // SAFETY: `fd` was open a moment ago in this single-threaded start-up;
    // setting its flag cannot affect memory safety even if it was not.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
}
