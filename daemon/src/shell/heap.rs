//! Gives freed heap back to the kernel once a burst of work is over.
//!
//! glibc returns memory only from the top of its heap; what a burst frees
//! in between (journal snapshots, replies, request buffers, the connections
//! of clients that came and went) stays resident among what is still in
//! use. With 20,000 kept tasks that was half of herdd's RSS. `malloc_trim`
//! releases those free pages. It walks the free lists, so it runs once
//! after a burst, when herdd has been quiet for [`QUIET`], never while idle.

use std::time::{Duration, Instant};

/// Steps (inputs fed to the core) that make a burst.
const BURST: u32 = 1000;

/// How long herdd must have been quiet after a burst before trimming.
pub const QUIET: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Trim {
    steps: u32,
    due: Option<Instant>,
}

impl Trim {
    /// A step ran at `now`: after a burst, a trim is due once quiet.
    pub fn busy(&mut self, now: Instant) {
        self.steps = self.steps.saturating_add(1);
        if self.steps >= BURST {
            self.due = Some(now + QUIET);
        }
    }

    /// When to trim; `None` while nothing worth trimming happened.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    pub fn trim(&mut self) {
        self.steps = 0;
        self.due = None;
        // SAFETY: malloc_trim takes no pointers; it only releases free
        // pages of glibc's heap, under the allocator's own locks.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_is_due_only_after_a_burst_and_once_quiet() {
        let mut trim = Trim::default();
        let start = Instant::now();
        for _ in 0..BURST - 1 {
            trim.busy(start);
        }
        assert_eq!(trim.due(), None, "a few steps are no burst");
        trim.busy(start);
        assert_eq!(trim.due(), Some(start + QUIET));
        // Still busy: the trim waits for quiet.
        trim.busy(start + QUIET / 2);
        assert_eq!(trim.due(), Some(start + QUIET / 2 + QUIET));
        trim.trim();
        assert_eq!(trim.due(), None, "once per burst");
        trim.busy(start + QUIET * 3);
        assert_eq!(trim.due(), None);
    }
}
