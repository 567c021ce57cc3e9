//! `daemon-reexec`: herdd replaces its own image, keeping its pid, so every
//! child stays its child. The state goes to the new image in a memfd whose
//! descriptor number is passed in `HERD_RESUME_FD`; task output pipes are
//! passed by descriptor too (their close-on-exec flag cleared).

use crate::core::snapshot::Snapshot;
use herd_common::protocol::{OutputStream, TaskId};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

const RESUME_FD: &str = "HERD_RESUME_FD";

/// What one herdd image hands to the next.
#[derive(Debug, Serialize, Deserialize)]
pub struct Handover {
    pub snapshot: Snapshot,
    /// Start times of the tracked pids (see `adopt::start_time`).
    pub starts: Vec<(u32, u64)>,
    /// Task output pipes still open: (pid, task, stream, descriptor).
    pub pipes: Vec<(u32, TaskId, OutputStream, i32)>,
    /// Instances' log pipes still open.
    #[serde(default)]
    pub log_pipes: Vec<super::output::LogPipe>,
}

/// The binary and arguments herdd was started with, recorded at start-up:
/// re-executing the *path* picks up a new binary installed there.
pub struct Invocation {
    program: PathBuf,
    args: Vec<OsString>,
}

impl Invocation {
    pub fn current() -> Invocation {
        let mut args = std::env::args_os();
        let argv0 = args.next().unwrap_or_default();
        // Resolved now, at start-up: later, /proc/self/exe would name the old
        // (perhaps deleted) file rather than the path a new binary is put at.
        let program = std::env::current_exe().unwrap_or_else(|_| PathBuf::from(argv0));
        Invocation {
            program,
            args: args.collect(),
        }
    }

    pub fn program(&self) -> &std::path::Path {
        &self.program
    }

    /// Re-executes herdd with `handover`. Returns only on failure.
    pub fn exec(&self, handover: &Handover) -> std::io::Error {
        let fd = match write_memfd(handover) {
            Ok(fd) => fd,
            Err(err) => return err,
        };
        for (_, _, _, pipe) in &handover.pipes {
            keep_open_across_exec(*pipe);
        }
        for pipe in &handover.log_pipes {
            keep_open_across_exec(pipe.fd);
        }
        let error = std::process::Command::new(&self.program)
            .args(&self.args)
            .env(RESUME_FD, fd.to_string())
            .exec();
        // Still here: the exec failed. Close the memfd; the caller carries on.
        // SAFETY: `fd` came from write_memfd and is not used elsewhere.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
        error
    }
}

fn write_memfd(handover: &Handover) -> std::io::Result<i32> {
    // No MFD_CLOEXEC: the new image must inherit it.
    // SAFETY: the name is a valid C string; flags 0.
    let fd = unsafe { libc::memfd_create(c"herd-handover".as_ptr(), 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(&serde_json::to_vec(handover)?)?;
    file.rewind()?;
    Ok(file.into_raw_fd())
}

fn keep_open_across_exec(fd: i32) {
    // SAFETY: fcntl on a descriptor herdd owns.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
}

/// Whether this image was started by `daemon-reexec` (its handover not
/// taken yet).
pub fn is_resuming() -> bool {
    std::env::var_os(RESUME_FD).is_some()
}

/// The handover from the previous image, when this one was started by
/// `daemon-reexec`. Clears `HERD_RESUME_FD` so that children never see it.
pub fn take_handover() -> Option<Result<Handover, String>> {
    let fd: i32 = std::env::var(RESUME_FD).ok()?.parse().ok()?;
    std::env::remove_var(RESUME_FD);
    // SAFETY: the previous image left this descriptor open for us, and only us.
    let mut file = unsafe { File::from_raw_fd(fd) };
    let mut text = Vec::new();
    let read = file.read_to_end(&mut text);
    Some(
        read.map_err(|err| err.to_string())
            .and_then(|_| serde_json::from_slice(&text).map_err(|err| err.to_string())),
    )
}

/// Marks an inherited pipe close-on-exec again, so spawned children do not get it.
pub fn adopt_pipe(fd: i32) -> OwnedFd {
    // SAFETY: the previous image passed this descriptor to us alone.
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        OwnedFd::from_raw_fd(fd)
    }
}

/// Whether an fd number is open (used to skip pipes that did not survive).
pub fn is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only reads flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}
