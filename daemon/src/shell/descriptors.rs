//! herdd's file descriptors: as many as it may have, and a reserve that
//! children's pipes never take.
//!
//! At start herdd raises its soft `RLIMIT_NOFILE` to the hard limit (each
//! connection, pipe and log file is a descriptor), and gives its children
//! the soft limit it was started with, as they would have had without
//! herd (a unit's `rlimits.nofile` still sets theirs).
//!
//! The reserve is real: [`RESERVE`] descriptors (a quarter of the limit at
//! most) held open on `/dev/null`, so that whatever else herdd opens runs
//! out before them. Spawns come first to run out: one that fails for want
//! of descriptors, or that would start while the reserve is not whole,
//! fails with [`SHORT_MESSAGE`] in the instance's or task's status. The
//! control socket gives reserved descriptors up when `accept` runs out, so
//! root's `herdctl status` still gets through. Before each spawn the
//! reserve is taken back first; once it is whole, spawns work again.

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, OnceLock};
use tracing::{info, warn};

/// Descriptors kept free of children's pipes (at most a quarter of the limit).
pub const RESERVE: u64 = 64;

/// Testing knob: overrides [`RESERVE`].
const RESERVE_ENV: &str = "HERD_FD_RESERVE";

/// What a spawn refused for want of descriptors says.
pub const SHORT_MESSAGE: &str = "too many open files in herdd";

/// The soft and hard limit herdd was started with, when it raised its own.
static CHILDREN: OnceLock<(u64, u64)> = OnceLock::new();

/// Raises herdd's soft `RLIMIT_NOFILE` to its hard limit, remembering the
/// old one for children. Call once, first thing.
pub fn raise_limit() {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft >= hard {
        return;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => {
            let _ = CHILDREN.set((soft, hard));
            info!(
                from = soft,
                to = hard,
                "raised herdd's descriptor limit (RLIMIT_NOFILE)"
            );
        }
        Err(err) => warn!(error = %err, "cannot raise herdd's descriptor limit"),
    }
}

/// The `RLIMIT_NOFILE` (soft, hard) a child gets unless its `rlimits` says
/// otherwise: what herdd was started with; `None` if herdd did not change it.
pub fn children_limit() -> Option<(u64, u64)> {
    CHILDREN.get().copied()
}

/// The reserved descriptors, shared by the shell (which refills it before
/// spawning) and the control socket (which spends it on clients).
pub struct Reserve {
    held: Mutex<Vec<OwnedFd>>,
    size: usize,
}

impl Reserve {
    pub fn new() -> Arc<Reserve> {
        let (limit, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
        let wanted = std::env::var(RESERVE_ENV)
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(RESERVE);
        let reserve = Arc::new(Reserve {
            held: Mutex::new(Vec::new()),
            size: wanted.min(limit / 4) as usize,
        });
        reserve.refill();
        reserve
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Vec<OwnedFd>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes back what was given up, as far as descriptors allow; true
    /// when the reserve is whole.
    pub fn refill(&self) -> bool {
        let mut held = self.held();
        while held.len() < self.size {
            let opened = match held.first() {
                Some(fd) => fd.try_clone(),
                None => std::fs::File::open("/dev/null").map(OwnedFd::from),
            };
            match opened {
                Ok(fd) => held.push(fd),
                Err(_) => return false,
            }
        }
        true
    }

    /// Closes up to `n` reserved descriptors for the caller to use at
    /// once; how many it closed.
    pub fn give_up(&self, n: usize) -> usize {
        let mut held = self.held();
        let n = n.min(held.len());
        let keep = held.len() - n;
        held.truncate(keep);
        n
    }

    /// Why a spawn must not start now, if it must not: the reserve cannot
    /// be made whole.
    pub fn short(&self) -> Option<String> {
        if self.refill() {
            return None;
        }
        Some(format!(
            "{SHORT_MESSAGE}: it keeps {} of its descriptors (RLIMIT_NOFILE) for clients \
             and its journal; not started",
            self.size
        ))
    }

    /// `error`, from a spawn, said clearly when it failed for want of
    /// descriptors (EMFILE: herdd's own limit; ENFILE: the system's).
    pub fn explain(&self, error: String) -> String {
        let emfile = nix::errno::Errno::EMFILE.desc();
        let enfile = nix::errno::Errno::ENFILE.desc();
        if error.contains(emfile) || error.contains(enfile) {
            format!("{SHORT_MESSAGE} ({error}); not started")
        } else {
            error
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_given_up_and_taken_back() {
        let reserve = Reserve::new();
        assert_eq!(reserve.held().len(), reserve.size);
        assert_eq!(reserve.short(), None);
        assert_eq!(reserve.give_up(3), 3);
        assert_eq!(reserve.held().len(), reserve.size - 3);
        assert!(reserve.refill());
        assert_eq!(reserve.held().len(), reserve.size);
    }

    #[test]
    fn spawn_errors_for_want_of_descriptors_are_said_clearly() {
        let reserve = Reserve::new();
        let said = reserve.explain("fork: Too many open files".into());
        assert!(said.starts_with(SHORT_MESSAGE), "{said}");
        assert_eq!(
            reserve.explain("exec /x: No such file".into()),
            "exec /x: No such file"
        );
    }
}
