//! Rolling restarts across `daemon-reexec`: the rollout is in the snapshot,
//! goes on in the next image, and its requester, sent away with
//! `reconnect`, gets the same answer when it asks again with `resume`.

use super::*;
use herd_common::protocol::ErrorCode;

/// Four instances, each ready one second after it starts.
fn slow_pool() -> Vec<UnitConfig> {
    vec![UnitConfig {
        ready: Ready::After(1000 * MS),
        ..pool("web", 4)
    }]
}

fn rolling(resume: bool) -> Request {
    Request::RollingRestart {
        name: "web".into(),
        resume,
    }
}

impl Harness {
    /// What `daemon-reexec` does: the reply, then a new core from the
    /// snapshot (through its JSON, as in the memfd) and `units` as config.
    fn reexec(&mut self, units: Vec<UnitConfig>) -> Vec<Action> {
        let (id, actions) = self.request(Request::DaemonReexec);
        assert!(matches!(reply_to(id, &actions), Some(Reply::Ok(_))));
        self.restore(units, false);
        actions
    }

    /// A new core carrying on from this one's snapshot (`adopted`: after a crash).
    fn restore(&mut self, units: Vec<UnitConfig>, adopted: bool) {
        let snapshot = self.core.snapshot(self.now, true);
        let text = serde_json::to_string(&snapshot).unwrap();
        let snapshot = serde_json::from_str(&text).unwrap();
        let config = test_config(units, vec![], vec![], vec![]);
        self.core = Supervisor::restore(&config, &snapshot, self.now, adopted);
        assert!(self.core.units.index_is_true(), "restored with its index");
        self.feed(Input::Boot);
    }

    fn pids(&mut self) -> Vec<u32> {
        (0..4)
            .map(|i| self.instance(&format!("web@{i}")).pid.unwrap())
            .collect()
    }

    /// Lets the instance being replaced exit and its replacement become
    /// ready; the actions of both steps.
    fn replace(&mut self, name: &str) -> Vec<Action> {
        let mut actions = self.exit(name, Exit::Signal("SIGTERM".into()));
        assert_eq!(self.state(name), State::Starting, "{actions:?}");
        assert!(self.core.units.index_is_true());
        actions.extend(self.advance(1000 * MS));
        assert_eq!(self.state(name), State::Running);
        assert!(self.core.units.index_is_true());
        actions
    }
}

fn running(units: Vec<UnitConfig>) -> Harness {
    let mut h = Harness::new(units);
    h.boot();
    h.advance(1000 * MS);
    h
}

fn is_reconnect(reply: Option<Reply>) -> bool {
    matches!(reply, Some(Reply::Error(body)) if body.code == ErrorCode::Reconnect)
}

#[test]
fn a_rollout_goes_on_after_a_reexec_and_answers_its_requester_once_done() {
    let mut h = running(slow_pool());
    let old = h.pids();
    let (first, actions) = h.request(rolling(false));
    assert_eq!(stopped(&actions), [old[0]]);
    let actions = h.replace("web@0");
    assert_eq!(stopped(&actions), [old[1]], "web@0 ready: web@1 next");
    // Mid-way through web@1: the requester is sent away to come back.
    h.exit("web@1", Exit::Signal("SIGTERM".into()));
    let actions = h.reexec(slow_pool());
    assert!(is_reconnect(reply_to(first, &actions)), "{actions:?}");
    let (again, actions) = h.request(rolling(true));
    assert_eq!(reply_to(again, &actions), None, "waits for the rollout");
    assert!(stopped(&actions).is_empty(), "nothing restarted again");
    // web@1's replacement becomes ready on the deadline carried over.
    let actions = h.advance(1000 * MS);
    assert_eq!(stopped(&actions), [old[2]]);
    h.replace("web@2");
    let actions = h.replace("web@3");
    let Some(Reply::Ok(payload)) = reply_to(again, &actions) else {
        panic!("the rollout should be done: {actions:?}");
    };
    let report: StatusReport = serde_json::from_value(payload).unwrap();
    assert_eq!(report.units[0].instances.len(), 4);
    let new = h.pids();
    assert!(new.iter().all(|pid| !old.contains(pid)), "all replaced");
    assert_eq!(
        h.advance(10_000 * MS)
            .iter()
            .filter(|a| matches!(a, Action::Signal { .. }))
            .count(),
        0,
        "and each only once"
    );
    assert_eq!(h.pids(), new);
}

#[test]
fn a_rollout_that_ends_before_its_requester_is_back_keeps_the_result_for_it() {
    let mut h = running(slow_pool());
    let old = h.pids();
    let (first, _) = h.request(rolling(false));
    let actions = h.reexec(slow_pool());
    assert!(is_reconnect(reply_to(first, &actions)));
    // web@0's replacement crashes before it is ready: the rollout stops.
    h.exit("web@0", Exit::Signal("SIGTERM".into()));
    let actions = h.exit("web@0", Exit::Code(1));
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::Publish(Lifecycle::RolloutEnded { error: Some(_), .. })
    )));
    let (again, actions) = h.request(rolling(true));
    let Some(Reply::Error(body)) = reply_to(again, &actions) else {
        panic!("the kept result: {actions:?}");
    };
    assert_eq!(body.code, ErrorCode::Failed);
    assert!(body.message.contains("web@0"), "{}", body.message);
    let rest: Vec<u32> = (1..4)
        .map(|i| h.instance(&format!("web@{i}")).pid.unwrap())
        .collect();
    assert_eq!(rest, old[1..], "the rest untouched");
    // Taken: a second resume has nothing to wait for, and starts nothing.
    let (late, actions) = h.request(rolling(true));
    assert!(matches!(reply_to(late, &actions), Some(Reply::Error(_))));
    assert!(stopped(&actions).is_empty());
}

#[test]
fn a_reload_rollout_goes_on_after_a_reexec_with_the_new_config() {
    let mut h = running(slow_pool());
    let old = h.pids();
    let changed = vec![UnitConfig {
        command: vec!["/bin/sleep".into(), "999".into()],
        ..slow_pool().remove(0)
    }];
    h.next_request += 1;
    let actions = h.feed(Input::ConfigLoaded {
        id: Some(h.next_request),
        config: Ok(Box::new(test_config(
            changed.clone(),
            vec![],
            vec![],
            vec![],
        ))),
    });
    assert_eq!(stopped(&actions), [old[0]]);
    let actions = h.replace("web@0");
    assert_eq!(stopped(&actions), [old[1]]);
    h.reexec(changed.clone());
    let mut respawned = Vec::new();
    for i in 1..4 {
        let actions = h.replace(&format!("web@{i}"));
        respawned.extend(spawns(&actions));
    }
    assert_eq!(respawned.len(), 3, "each of the rest once: {respawned:?}");
    assert!(respawned.iter().all(|(_, spec)| spec.argv[1] == "999"));
    assert!(h.pids().iter().all(|pid| !old.contains(pid)));
}

#[test]
fn after_a_crash_the_rollout_goes_on_but_no_requester_is_awaited() {
    let mut h = running(slow_pool());
    let old = h.pids();
    h.request(rolling(false));
    h.restore(slow_pool(), true);
    let (again, actions) = h.request(rolling(true));
    let Some(Reply::Error(body)) = reply_to(again, &actions) else {
        panic!("another herdd's requester: {actions:?}");
    };
    assert!(body.message.contains("no record"), "{}", body.message);
    // The rollout itself goes on: web@0 is being replaced, web@1 is next.
    let actions = h.replace("web@0");
    assert_eq!(stopped(&actions), [old[1]]);
}

/// The pids signalled by `actions`.
fn stopped(actions: &[Action]) -> Vec<u32> {
    signals(actions).iter().map(|(pid, _)| *pid).collect()
}
