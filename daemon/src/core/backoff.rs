//! Restart pacing: exponential back-off and the start limit.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Exponential back-off from `restart_delay` to `restart_delay_max`.
///
/// A run that lasted at least `restart_delay_max` counts as stable and resets
/// the delay: a service that has been up longer than the longest wait we would
/// impose is not crash-looping.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration) -> Self {
        Backoff { next: first }
    }

    /// The delay before the next restart after a run of `run`; doubles the one after.
    pub fn next_delay(&mut self, run: Duration, first: Duration, max: Duration) -> Duration {
        if run >= max {
            self.next = first;
        }
        let delay = self.next.min(max);
        self.next = (delay * 2).min(max).max(first);
        delay
    }

    pub fn reset(&mut self, first: Duration) {
        self.next = first;
    }

    /// The delay the next restart will get (for snapshots).
    pub fn upcoming(&self) -> Duration {
        self.next
    }
}

/// The start times within the current `start_interval`, to enforce `start_limit`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartLimit {
    starts: VecDeque<Instant>,
}

impl StartLimit {
    pub fn record(&mut self, now: Instant) {
        self.starts.push_back(now);
    }

    /// Whether another start now would exceed `limit` starts within `interval`.
    pub fn exhausted(&mut self, now: Instant, limit: u32, interval: Duration) -> bool {
        while let Some(&oldest) = self.starts.front() {
            if now.saturating_duration_since(oldest) >= interval {
                self.starts.pop_front();
            } else {
                break;
            }
        }
        self.starts.len() >= limit as usize
    }

    pub fn reset(&mut self) {
        self.starts.clear();
    }

    /// The recorded start times (for snapshots).
    pub fn starts(&self) -> impl Iterator<Item = Instant> + '_ {
        self.starts.iter().copied()
    }

    pub fn from_starts(starts: impl IntoIterator<Item = Instant>) -> Self {
        StartLimit {
            starts: starts.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_up_to_the_cap() {
        let mut backoff = Backoff::new(100 * MS);
        let delays: Vec<_> = (0..6)
            .map(|_| backoff.next_delay(MS, 100 * MS, 1000 * MS))
            .collect();
        assert_eq!(
            delays,
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS]
        );
    }

    #[test]
    fn a_stable_run_resets_the_delay() {
        let mut backoff = Backoff::new(100 * MS);
        backoff.next_delay(MS, 100 * MS, 1000 * MS);
        backoff.next_delay(MS, 100 * MS, 1000 * MS);
        assert_eq!(backoff.next_delay(1000 * MS, 100 * MS, 1000 * MS), 100 * MS);
    }

    #[test]
    fn zero_delay_stays_zero() {
        let mut backoff = Backoff::new(Duration::ZERO);
        for _ in 0..3 {
            assert_eq!(
                backoff.next_delay(MS, Duration::ZERO, 30_000 * MS),
                Duration::ZERO
            );
        }
    }

    #[test]
    fn start_limit_counts_only_the_window() {
        let t0 = Instant::now();
        let mut limit = StartLimit::default();
        for i in 0..3 {
            limit.record(t0 + i * MS);
        }
        assert!(limit.exhausted(t0 + 3 * MS, 3, 1000 * MS));
        assert!(!limit.exhausted(t0 + 3 * MS, 4, 1000 * MS));
        // The first start falls out of the window after a second.
        assert!(!limit.exhausted(t0 + 1000 * MS, 3, 1000 * MS));
    }
}
