//! `watchdog = "10s"`: an instance must send `WATCHDOG=1` on the notify
//! socket at least this often once it is ready, or it is restarted
//! (systemd's `WatchdogSec=`). The deadline is an instant the core keeps
//! like any other timer: no polling, time comes in as an input.

use herd_config::UnitConfig;
use std::time::Instant;

/// When an instance's watchdog fires, if it is armed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watchdog {
    due: Option<Instant>,
    /// When the countdown started (readiness or the last `WATCHDOG=1`):
    /// what a snapshot keeps, so that a re-exec does not start it afresh.
    armed_at: Option<Instant>,
}

impl Watchdog {
    /// (Re)starts the countdown, when the unit has a watchdog.
    pub fn arm(&mut self, now: Instant, config: &UnitConfig) {
        self.due = config.watchdog.map(|timeout| now + timeout);
        self.armed_at = self.due.map(|_| now);
    }

    /// No countdown: the process is stopping or gone.
    pub fn disarm(&mut self) {
        self.due = None;
        self.armed_at = None;
    }

    /// When the running countdown started, if there is one.
    pub fn armed_at(&self) -> Option<Instant> {
        self.armed_at
    }

    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Whether it has fired by `now`.
    pub fn expired(&self, now: Instant) -> bool {
        self.due.is_some_and(|due| due <= now)
    }
}

/// `WATCHDOG_USEC`, as the process is told it.
pub fn usec(config: &UnitConfig) -> Option<String> {
    config
        .watchdog
        .map(|timeout| timeout.as_micros().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_only_once_the_timeout_has_passed_since_the_last_arm() {
        let text = "[service.w]\ncommand = [\"w\"]\nwatchdog = \"10s\"\n";
        let parsed = herd_config::parse(std::path::Path::new("/t/herd.toml"), text);
        let config: UnitConfig = parsed.expect("valid").units.remove(0);
        let start = Instant::now();
        let mut watchdog = Watchdog::default();
        assert!(
            !watchdog.expired(start + Duration::from_secs(100)),
            "unarmed"
        );
        watchdog.arm(start, &config);
        assert!(!watchdog.expired(start + Duration::from_secs(9)));
        watchdog.arm(start + Duration::from_secs(9), &config);
        assert!(!watchdog.expired(start + Duration::from_secs(18)));
        assert!(watchdog.expired(start + Duration::from_secs(19)));
        assert_eq!(watchdog.armed_at(), Some(start + Duration::from_secs(9)));
        watchdog.disarm();
        assert_eq!(watchdog.due(), None);
        assert_eq!(watchdog.armed_at(), None);
        assert_eq!(usec(&config).as_deref(), Some("10000000"));
    }

    use crate::core::{Action, Input, InstanceId, Owner, Supervisor};

    const PINGER: &str = "[service.w]\ncommand = [\"w\"]\nready = \"notify\"\nwatchdog = \"10s\"\n";

    fn pinger(now: Instant) -> (Supervisor, u32) {
        let config = herd_config::parse(std::path::Path::new("/t/herd.toml"), PINGER).unwrap();
        let mut core = Supervisor::new(&config);
        core.handle(now, Input::Boot);
        let owner = Owner::Instance(InstanceId {
            unit: "w".into(),
            index: 0,
        });
        core.handle(now, Input::Spawned { owner, pid: 42 });
        ping(&mut core, now, "READY");
        (core, 42)
    }

    fn ping(core: &mut Supervisor, now: Instant, key: &str) {
        let fields = vec![(key.to_string(), "1".to_string())];
        core.handle(
            now,
            Input::Notify {
                pid: 42,
                pgid: None,
                fields,
            },
        );
    }

    fn signals(actions: &[Action]) -> Vec<i32> {
        actions
            .iter()
            .filter_map(|action| match action {
                Action::Signal { signal, .. } => Some(*signal),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_silent_instance_is_stopped_when_its_watchdog_expires_and_pings_put_it_off() {
        let start = Instant::now();
        let (mut core, _) = pinger(start);
        assert_eq!(core.next_deadline(), Some(start + Duration::from_secs(10)));
        ping(&mut core, start + Duration::from_secs(8), "WATCHDOG");
        let quiet = core.handle(start + Duration::from_secs(12), Input::Tick);
        assert!(signals(&quiet).is_empty(), "pinged at 8s: due at 18s");
        assert_eq!(core.next_deadline(), Some(start + Duration::from_secs(18)));
        let fired = core.handle(start + Duration::from_secs(18), Input::Tick);
        assert_eq!(signals(&fired), [libc::SIGTERM]);
        assert!(fired.iter().any(|action| matches!(
            action,
            Action::Publish(herd_common::events::Lifecycle::WatchdogExpired { pid: 42, .. })
        )));
    }

    /// Over a re-exec, and over a crash whose journal has it, the countdown
    /// goes on from the last `WATCHDOG=1` instead of starting afresh.
    #[test]
    fn the_countdown_survives_a_reexec_and_a_crash() {
        let config = herd_config::parse(std::path::Path::new("/t/herd.toml"), PINGER).unwrap();
        for adopted in [false, true] {
            let start = Instant::now();
            let (mut core, _) = pinger(start);
            ping(&mut core, start + Duration::from_secs(8), "WATCHDOG");
            let now = start + Duration::from_secs(12);
            let snapshot = core.snapshot(now, !adopted);
            let text = serde_json::to_string(&snapshot).unwrap();
            assert!(text.contains("\"watchdog_ago_ms\":4000"), "{text}");
            let mut core = Supervisor::restore(&config, &snapshot, now, adopted);
            core.handle(now, Input::Boot);
            assert_eq!(
                core.next_deadline(),
                Some(start + Duration::from_secs(18)),
                "adopted: {adopted}"
            );
            let fired = core.handle(start + Duration::from_secs(18), Input::Tick);
            assert_eq!(signals(&fired), [libc::SIGTERM], "adopted: {adopted}");
        }
    }
}
