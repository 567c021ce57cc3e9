//! Health probes on the fake clock: when they are due, what results do.

use super::*;
use crate::core::{Action, Input, InstanceId, Lifecycle, Supervisor};
use herd_common::protocol::{HealthState, InstanceStatus, Request};
use herd_common::state::Exit;

const S: Duration = Duration::from_secs(1);

struct Pool {
    core: Supervisor,
    start: Instant,
    next_pid: u32,
}

fn id(unit: &str, index: u32) -> InstanceId {
    InstanceId {
        unit: unit.into(),
        index,
    }
}

impl Pool {
    /// Boots `text` (one service `w`) at `start`, every instance spawned.
    fn boot(text: &str) -> Pool {
        let config = herd_config::parse(std::path::Path::new("/t/herd.toml"), text).unwrap();
        let start = Instant::now();
        let mut pool = Pool {
            core: Supervisor::new(&config),
            start,
            next_pid: 100,
        };
        let actions = pool.core.handle(start, Input::Boot);
        pool.spawn_all(&actions, start);
        pool
    }

    fn at(&self, seconds: u64) -> Instant {
        self.start + S * seconds as u32
    }

    /// Answers every spawn in `actions` with a fresh pid.
    fn spawn_all(&mut self, actions: &[Action], now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        for action in actions {
            if let Action::Spawn { owner, .. } = action {
                self.next_pid += 1;
                let pid = self.next_pid;
                let input = Input::Spawned {
                    owner: owner.clone(),
                    pid,
                };
                out.extend(self.core.handle(now, input));
            }
        }
        out
    }

    fn tick(&mut self, now: Instant) -> Vec<Action> {
        self.core.handle(now, Input::Tick)
    }

    fn result(&mut self, now: Instant, index: u32, result: Result<(), &str>) -> Vec<Action> {
        let pid = self.instance(index).pid.expect("a process");
        let input = Input::ProbeResult {
            instance: id("w", index),
            pid,
            result: result.map_err(str::to_string),
        };
        self.core.handle(now, input)
    }

    fn instance(&mut self, index: u32) -> InstanceStatus {
        let status = self.core.handle(
            self.start,
            Input::Request {
                id: 9999,
                client: 1,
                request: Request::Status {
                    names: vec![],
                    usage: true,
                },
            },
        );
        let Some(Action::Reply {
            reply: herd_common::protocol::Reply::Ok(payload),
            ..
        }) = status
            .into_iter()
            .find(|a| matches!(a, Action::Reply { .. }))
        else {
            panic!("no status reply");
        };
        let report: herd_common::protocol::StatusReport = serde_json::from_value(payload).unwrap();
        report
            .units
            .into_iter()
            .flat_map(|u| u.instances)
            .nth(index as usize)
            .unwrap()
    }

    /// The process of instance `index` exits after a stop signal; its
    /// replacement is spawned.
    fn exit_and_respawn(&mut self, now: Instant, index: u32) -> Vec<Action> {
        let pid = self.instance(index).pid.unwrap();
        let exit = Exit::Signal("SIGTERM".into());
        let actions = self.core.handle(now, Input::Exited { pid, exit });
        let mut all = self.spawn_all(&actions, now);
        all.extend(actions);
        all
    }
}

fn probes(actions: &[Action]) -> Vec<(InstanceId, u32, ProbeKind)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Probe {
                instance,
                pid,
                spec,
            } => Some((instance.clone(), *pid, spec.kind.clone())),
            _ => None,
        })
        .collect()
}

fn stop_signals(actions: &[Action]) -> Vec<u32> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Signal { pid, .. } => Some(*pid),
            _ => None,
        })
        .collect()
}

fn published(actions: &[Action]) -> Vec<Lifecycle> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Publish(event) => Some(event.clone()),
            _ => None,
        })
        .collect()
}

const READY_ON_HEALTH: &str = r#"
[service.w]
command = ["w"]
instances = 2
ready = "health"
start_timeout = "60s"
health = { tcp = "127.0.0.1:900{instance}", interval = "2s", timeout = "1s", retries = 2 }
"#;

#[test]
fn ready_health_waits_for_the_first_passing_probe_and_failures_meanwhile_do_not_restart() {
    let mut pool = Pool::boot(READY_ON_HEALTH);
    assert_eq!(pool.instance(0).state, State::Starting);
    assert_eq!(
        pool.core.next_deadline(),
        Some(pool.at(2)),
        "interval after spawn"
    );
    assert!(probes(&pool.tick(pool.at(1))).is_empty(), "not due yet");
    let due = probes(&pool.tick(pool.at(2)));
    assert_eq!(due.len(), 2);
    let pid = pool.instance(1).pid.unwrap();
    assert_eq!(
        due[1],
        (id("w", 1), pid, ProbeKind::Tcp("127.0.0.1:9001".into())),
        "{{instance}} substituted, for the instance's current pid"
    );
    assert!(
        probes(&pool.tick(pool.at(3))).is_empty(),
        "one probe at a time"
    );
    for _ in 0..3 {
        let failed = pool.result(pool.at(3), 0, Err("probe could not connect"));
        assert!(stop_signals(&failed).is_empty(), "starting: no restart");
    }
    let health = pool.instance(0).health.unwrap();
    assert_eq!(health.state, HealthState::Starting);
    assert_eq!(health.error.as_deref(), Some("probe could not connect"));
    assert_eq!(pool.instance(0).state, State::Starting);
    assert!(probes(&pool.tick(pool.at(4))).is_empty());
    assert_eq!(
        probes(&pool.tick(pool.at(5))).len(),
        1,
        "interval after the result"
    );
    let passed = pool.result(pool.at(5), 0, Ok(()));
    let events = published(&passed);
    assert!(events.contains(&Lifecycle::Healthy {
        instance: "w@0".into()
    }));
    assert!(events.contains(&Lifecycle::Ready {
        instance: "w@0".into()
    }));
    assert_eq!(pool.instance(0).state, State::Running);
    assert_eq!(pool.instance(0).health.unwrap().state, HealthState::Healthy);
    assert_eq!(
        pool.instance(1).state,
        State::Starting,
        "the other waits for its own"
    );
    // Neither a tick that only starts probes nor a pass that changes
    // nothing is journaled; w@1 becoming ready is.
    let generation = pool.core.generation();
    assert_eq!(probes(&pool.tick(pool.at(7))).len(), 1);
    assert_eq!(
        pool.core.generation(),
        generation,
        "a tick that only probes"
    );
    pool.result(pool.at(7), 0, Ok(()));
    assert_eq!(
        pool.core.generation(),
        generation,
        "a pass that changes nothing"
    );
    pool.result(pool.at(7), 1, Ok(()));
    assert!(pool.core.generation() > generation, "w@1 became ready");
}

#[test]
fn ready_health_fails_a_start_that_never_passes_within_start_timeout() {
    let mut pool = Pool::boot(READY_ON_HEALTH);
    pool.tick(pool.at(2));
    pool.result(pool.at(2), 0, Err("probe exited 1: not yet"));
    let stopped = pool.tick(pool.at(60));
    assert_eq!(stop_signals(&stopped).len(), 2);
    let pid = pool.instance(0).pid.unwrap();
    let exit = Exit::Signal("SIGTERM".into());
    pool.core.handle(pool.at(61), Input::Exited { pid, exit });
    let failed = pool.instance(0);
    assert_eq!(failed.state, State::Failed);
    assert_eq!(
        failed.reason.as_deref(),
        Some("did not pass its health probe within 60s: probe exited 1: not yet")
    );
}

const PROBED: &str = r#"
[service.w]
command = ["w"]
instances = 3
health = { command = ["check", "{instance}"], interval = "1s", retries = 3, start_period = "5s" }
"#;

#[test]
fn retries_failures_in_a_row_restart_a_running_instance_and_say_why() {
    let mut pool = Pool::boot(PROBED);
    let old = pool.instance(1).pid.unwrap();
    let due = probes(&pool.tick(pool.at(6)));
    let ProbeKind::Command(spec) = &due[1].2 else {
        panic!("a command probe: {due:?}");
    };
    assert_eq!(spec.argv, ["check", "1"]);
    assert_eq!(spec.env.get("HERD_INSTANCE").map(String::as_str), Some("1"));
    // Two failures, a pass (the count starts again), then three failures.
    let mut now = 6;
    for result in [Err("x"), Err("x"), Ok(()), Err("a"), Err("b")] {
        let actions = pool.result(pool.at(now), 1, result);
        assert!(stop_signals(&actions).is_empty(), "{result:?} at {now}s");
        now += 1;
        pool.tick(pool.at(now));
    }
    assert_eq!(pool.instance(1).health.unwrap().failures, 2);
    let restarted = pool.result(pool.at(now), 1, Err("probe exited 1: db down"));
    assert_eq!(stop_signals(&restarted), [old]);
    assert!(published(&restarted).contains(&Lifecycle::Unhealthy {
        instance: "w@1".into(),
        pid: old,
        reason: "probe exited 1: db down".into(),
    }));
    assert!(
        restarted.contains(&Action::CancelProbe {
            instance: id("w", 1)
        }) || pool.instance(1).health.is_none(),
        "no probe of a stopping process"
    );
    let stopping = pool.instance(1);
    assert_eq!(stopping.state, State::Stopping);
    assert_eq!(
        stopping.reason.as_deref(),
        Some("unhealthy: probe exited 1: db down")
    );
    assert_eq!(stopping.restarts, 1);
    assert!(
        probes(&pool.tick(pool.at(now + 5)))
            .iter()
            .all(|p| p.0.index != 1),
        "probes of a stopped instance stop"
    );
    let late = pool.result(pool.at(now + 5), 1, Err("late"));
    assert!(
        stop_signals(&late).is_empty(),
        "a late result changes nothing"
    );
    pool.exit_and_respawn(pool.at(now + 6), 1);
    let back = pool.instance(1);
    assert_ne!(back.pid, Some(old));
    let health = back.health.unwrap();
    assert_eq!(health.state, HealthState::Starting);
    assert_eq!(
        health.restarted.as_deref(),
        Some("unhealthy: probe exited 1: db down")
    );
    for other in [0, 2] {
        assert_eq!(pool.instance(other).restarts, 0, "w@{other} untouched");
    }
}

#[test]
fn failures_within_start_period_do_not_count_until_a_probe_passes() {
    let mut pool = Pool::boot(PROBED);
    for second in 1..5 {
        pool.tick(pool.at(second));
        let actions = pool.result(pool.at(second), 0, Err("warming up"));
        assert!(stop_signals(&actions).is_empty());
    }
    assert_eq!(
        pool.instance(0).health.unwrap().failures,
        0,
        "all in start_period"
    );
    pool.tick(pool.at(5));
    pool.result(pool.at(5), 0, Err("late"));
    assert_eq!(
        pool.instance(0).health.unwrap().failures,
        1,
        "after start_period"
    );
    // A pass ends the start period early: failures count at once.
    let mut pool = Pool::boot(PROBED);
    pool.tick(pool.at(1));
    pool.result(pool.at(1), 0, Ok(()));
    pool.tick(pool.at(2));
    pool.result(pool.at(2), 0, Err("down"));
    assert_eq!(pool.instance(0).health.unwrap().failures, 1);
}

#[test]
fn no_more_than_max_unavailable_unhealthy_instances_restart_at_once() {
    let mut pool = Pool::boot(PROBED);
    let pids: Vec<u32> = (0..3).map(|i| pool.instance(i).pid.unwrap()).collect();
    pool.tick(pool.at(6));
    let mut stopped = Vec::new();
    for round in 0..3 {
        for index in 0..3 {
            let actions = pool.result(pool.at(6 + round), index, Err("down"));
            stopped.extend(stop_signals(&actions));
        }
        pool.tick(pool.at(7 + round));
    }
    assert_eq!(stopped, [pids[0]], "max_unavailable = 1: one at a time");
    let waiting = pool.instance(1).health.unwrap();
    assert_eq!(waiting.state, HealthState::Unhealthy);
    assert_eq!(pool.instance(1).state, State::Running);
    // w@0 is back (ready on spawn): the next failure of w@1 restarts it.
    pool.exit_and_respawn(pool.at(9), 0);
    assert_eq!(pool.instance(0).state, State::Running);
    pool.tick(pool.at(9));
    let actions = pool.result(pool.at(9), 1, Err("down"));
    assert_eq!(stop_signals(&actions), [pids[1]]);
    let actions = pool.result(pool.at(9), 2, Err("down"));
    assert!(stop_signals(&actions).is_empty(), "w@1 is on its way back");
}

#[test]
fn a_result_about_a_previous_process_is_ignored() {
    let mut pool = Pool::boot(PROBED);
    let old = pool.instance(0).pid.unwrap();
    pool.tick(pool.at(6));
    let input = |pid| Input::ProbeResult {
        instance: id("w", 0),
        pid,
        result: Err("stale".into()),
    };
    for _ in 0..5 {
        let actions = pool.core.handle(pool.at(6), input(old + 1000));
        assert!(stop_signals(&actions).is_empty());
    }
    assert_eq!(pool.instance(0).health.unwrap().failures, 0);
    assert_eq!(
        pool.core.handle(pool.at(6), input(old)).len(),
        0,
        "the right pid counts, and one failure does nothing yet"
    );
    assert_eq!(pool.instance(0).health.unwrap().failures, 1);
}

#[test]
fn a_reload_that_changes_only_the_probe_applies_it_without_a_restart() {
    let mut pool = Pool::boot(PROBED);
    let pids: Vec<u32> = (0..3).map(|i| pool.instance(i).pid.unwrap()).collect();
    assert_eq!(probes(&pool.tick(pool.at(1))).len(), 3, "running probes");
    let text = PROBED.replace(
        r#"command = ["check", "{instance}"], interval = "1s""#,
        r#"tcp = "127.0.0.1:800{instance}", interval = "3s""#,
    );
    assert_ne!(text, PROBED);
    let config = herd_config::parse(std::path::Path::new("/t/herd.toml"), &text).unwrap();
    let input = Input::ConfigLoaded {
        id: None,
        config: Ok(Box::new(config)),
    };
    let reloaded = pool.core.handle(pool.at(1), input);
    assert!(stop_signals(&reloaded).is_empty(), "{reloaded:?}");
    assert!(reloaded.contains(&Action::CancelProbe {
        instance: id("w", 2)
    }));
    assert!(
        probes(&pool.tick(pool.at(3))).is_empty(),
        "the new interval"
    );
    let due = probes(&pool.tick(pool.at(4)));
    assert_eq!(due.len(), 3);
    assert_eq!(due[2].2, ProbeKind::Tcp("127.0.0.1:8002".into()));
    for (index, pid) in pids.iter().enumerate() {
        assert_eq!(pool.instance(index as u32).pid, Some(*pid));
    }
}
