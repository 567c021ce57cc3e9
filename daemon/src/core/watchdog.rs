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
}

impl Watchdog {
    /// (Re)starts the countdown, when the unit has a watchdog.
    pub fn arm(&mut self, now: Instant, config: &UnitConfig) {
        self.due = config.watchdog.map(|timeout| now + timeout);
    }

    /// No countdown: the process is stopping or gone.
    pub fn disarm(&mut self) {
        self.due = None;
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
        watchdog.disarm();
        assert_eq!(watchdog.due(), None);
        assert_eq!(usec(&config).as_deref(), Some("10000000"));
    }

    use crate::core::{Action, Input, InstanceId, Owner, Supervisor};

    fn pinger(now: Instant) -> (Supervisor, u32) {
        let text = "[service.w]\ncommand = [\"w\"]\nready = \"notify\"\nwatchdog = \"10s\"\n";
        let config = herd_config::parse(std::path::Path::new("/t/herd.toml"), text).unwrap();
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
}
