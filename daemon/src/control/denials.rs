//! The log of denied requests, rate-limited: a user who sends request
//! after request it may not send must not flood herdd's log. The first
//! denial of a uid is logged at once; further ones within [`INTERVAL`] are
//! counted and summarised in one line when the interval ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::warn;

/// Per uid, at most one denial line and one summary line this often.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Testing knob: overrides [`INTERVAL`] (milliseconds).
const INTERVAL_ENV: &str = "HERD_DENIAL_LOG_INTERVAL_MS";

/// One uid's current interval.
struct Window {
    opened: Instant,
    /// Denials since the one logged.
    unlogged: u64,
}

pub struct Denials {
    interval: Duration,
    windows: Mutex<HashMap<u32, Window>>,
    /// Wakes [`Denials::summarise`] when a window opens.
    opened: Notify,
}

impl Denials {
    pub fn new() -> Arc<Denials> {
        let interval = std::env::var(INTERVAL_ENV)
            .ok()
            .and_then(|text| text.parse().ok())
            .map_or(INTERVAL, Duration::from_millis);
        Arc::new(Denials {
            interval,
            windows: Mutex::new(HashMap::new()),
            opened: Notify::new(),
        })
    }

    fn windows(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Window>> {
        self.windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A request of `verb` from `uid` was denied (`via`: "socket", "D-Bus").
    pub fn record(&self, uid: u32, pid: Option<i32>, verb: &str, via: &str) {
        let mut windows = self.windows();
        if let Some(window) = windows.get_mut(&uid) {
            window.unlogged += 1;
            return;
        }
        windows.insert(
            uid,
            Window {
                opened: Instant::now(),
                unlogged: 0,
            },
        );
        drop(windows);
        warn!(uid, pid, verb, "permission denied ({via})");
        self.opened.notify_one();
    }

    /// Logs the summary of every interval that has ended; returns whether
    /// any is still open.
    fn close_ended(&self, now: Instant) -> bool {
        let mut windows = self.windows();
        windows.retain(|uid, window| {
            if now.duration_since(window.opened) < self.interval {
                return true;
            }
            if window.unlogged > 0 {
                warn!(
                    uid = *uid,
                    denied = window.unlogged,
                    "permission denied {} more times in {:?}",
                    window.unlogged,
                    self.interval
                );
            }
            false
        });
        !windows.is_empty()
    }

    /// Writes the summaries as intervals end; sleeps while nothing is denied.
    pub async fn summarise(self: Arc<Self>) {
        loop {
            self.opened.notified().await;
            loop {
                tokio::time::sleep(self.interval).await;
                if !self.close_ended(Instant::now()) {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn further_denials_are_counted_and_an_interval_ends() {
        let denials = Denials::new();
        let start = Instant::now();
        for _ in 0..5 {
            denials.record(65534, None, "stop", "socket");
        }
        denials.record(1000, None, "stop", "socket");
        assert_eq!(denials.windows()[&65534].unlogged, 4);
        assert_eq!(denials.windows()[&1000].unlogged, 0);
        assert!(denials.close_ended(start), "nothing ended yet");
        assert!(!denials.close_ended(Instant::now() + denials.interval));
        assert!(denials.windows().is_empty());
    }
}
