//! The limits a task is submitted with (timeout, retries with back-off,
//! priority) and the checks that keep client-given numbers within bounds.

use herd_common::protocol::SubmitOptions;
use herd_config::TaskDefaults;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Most retries a submission may ask for (as the pool key `retries`).
pub const MAX_RETRIES: u32 = 1000;

/// Longest `timeout`, `after` or `retry_delay` a submission may ask for:
/// a year, far beyond any job and far from overflowing the clock.
pub const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);

/// No retry waits longer than this, however many doublings came before.
pub const MAX_BACKOFF: Duration = Duration::from_secs(24 * 3600);

/// Fixed at submission: the submission's values, else the pool's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskLimits {
    /// Stopped (stop signal, then SIGKILL) once it ran this long.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Started again up to this many times after a failed attempt.
    #[serde(default)]
    pub retries: u32,
    /// The wait before the first retry; doubled for each next one.
    #[serde(default)]
    pub retry_delay_ms: u64,
    /// Higher is started first.
    #[serde(default)]
    pub priority: u32,
}

impl TaskLimits {
    /// Checks what a client asked for; the error says which value is wrong.
    pub fn new(options: &SubmitOptions, defaults: &TaskDefaults) -> Result<TaskLimits, String> {
        let timeout_ms = match options.timeout_ms {
            Some(0) => return Err("timeout must be longer than 0ms".into()),
            Some(ms) => Some(bounded("timeout", ms)?),
            None => defaults.timeout.map(|t| t.as_millis() as u64),
        };
        let retries = options.retries.unwrap_or(defaults.retries);
        if retries > MAX_RETRIES {
            return Err(format!(
                "retries must be at most {MAX_RETRIES} (got {retries})"
            ));
        }
        let retry_delay_ms = match options.retry_delay_ms {
            Some(ms) => bounded("retry delay", ms)?,
            None => defaults.retry_delay.as_millis() as u64,
        };
        if let Some(ms) = options.after_ms {
            bounded("after", ms)?;
        }
        Ok(TaskLimits {
            timeout_ms,
            retries,
            retry_delay_ms,
            priority: options.priority,
        })
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.timeout_ms.map(Duration::from_millis)
    }

    /// The wait before retry number `retry` (1 for the first): the delay
    /// doubled `retry - 1` times, at most [`MAX_BACKOFF`].
    pub fn delay_before(&self, retry: u32) -> Duration {
        let base = Duration::from_millis(self.retry_delay_ms);
        let doublings = retry.saturating_sub(1).min(31);
        base.checked_mul(1 << doublings)
            .unwrap_or(MAX_BACKOFF)
            .min(MAX_BACKOFF)
    }
}

fn bounded(what: &str, ms: u64) -> Result<u64, String> {
    if Duration::from_millis(ms) > MAX_DELAY {
        return Err(format!("{what} must be at most 366 days (got {ms}ms)"));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(retry_delay_ms: u64) -> TaskLimits {
        TaskLimits {
            retry_delay_ms,
            ..TaskLimits::default()
        }
    }

    #[test]
    fn retries_back_off_exponentially_up_to_a_cap() {
        let l = limits(500);
        assert_eq!(l.delay_before(1), Duration::from_millis(500));
        assert_eq!(l.delay_before(2), Duration::from_millis(1000));
        assert_eq!(l.delay_before(3), Duration::from_millis(2000));
        assert_eq!(l.delay_before(1000), MAX_BACKOFF);
        assert_eq!(limits(0).delay_before(5), Duration::ZERO);
    }

    #[test]
    fn submission_values_win_over_pool_defaults() {
        let defaults = TaskDefaults {
            timeout: Some(Duration::from_secs(30)),
            retries: 2,
            retry_delay: Duration::from_secs(1),
        };
        let l = TaskLimits::new(&SubmitOptions::default(), &defaults).unwrap();
        assert_eq!(
            (l.timeout_ms, l.retries, l.retry_delay_ms),
            (Some(30_000), 2, 1000)
        );
        let asked = SubmitOptions {
            timeout_ms: Some(5),
            retries: Some(0),
            retry_delay_ms: Some(7),
            priority: 3,
            ..SubmitOptions::default()
        };
        let l = TaskLimits::new(&asked, &defaults).unwrap();
        assert_eq!(
            (l.timeout_ms, l.retries, l.retry_delay_ms, l.priority),
            (Some(5), 0, 7, 3)
        );
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let defaults = TaskDefaults::default();
        let refuse = |options: SubmitOptions, words: &str| {
            let err = TaskLimits::new(&options, &defaults).unwrap_err();
            assert!(err.contains(words), "{err}");
        };
        refuse(
            SubmitOptions {
                timeout_ms: Some(0),
                ..Default::default()
            },
            "timeout must be longer",
        );
        refuse(
            SubmitOptions {
                retries: Some(1001),
                ..Default::default()
            },
            "retries must be at most 1000",
        );
        refuse(
            SubmitOptions {
                after_ms: Some(u64::MAX),
                ..Default::default()
            },
            "after must be at most",
        );
        refuse(
            SubmitOptions {
                retry_delay_ms: Some(u64::MAX),
                ..Default::default()
            },
            "retry delay must be at most",
        );
    }
}
