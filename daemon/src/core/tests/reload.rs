//! `reload`: only what changed is touched.

use super::*;
use herd_common::protocol::ReloadReport;

fn config_with(units: Vec<UnitConfig>) -> Box<Config> {
    Box::new(test_config(units, vec![], vec![], vec![]))
}

impl Harness {
    fn reload(&mut self, units: Vec<UnitConfig>) -> (ReloadReport, Vec<Action>) {
        self.next_request += 1;
        let id = self.next_request;
        let actions = self.feed(Input::ConfigLoaded {
            id: Some(id),
            config: Ok(config_with(units)),
        });
        match reply_to(id, &actions) {
            Some(Reply::Ok(payload)) => (serde_json::from_value(payload).unwrap(), actions),
            other => panic!("reload failed: {other:?}"),
        }
    }
}

#[test]
fn reload_starts_new_stops_removed_restarts_changed_and_leaves_the_rest() {
    let mut h = Harness::new(vec![service("keep"), service("change"), service("drop")]);
    h.boot();
    let keep = h.instance("keep").pid.unwrap();
    let change = h.instance("change").pid.unwrap();
    let drop_pid = h.instance("drop").pid.unwrap();
    let changed = UnitConfig {
        command: vec!["/bin/sleep".into(), "999".into()],
        ..service("change")
    };
    let (report, actions) = h.reload(vec![service("keep"), changed, service("new")]);
    assert_eq!(report.added, ["new"]);
    assert_eq!(report.removed, ["drop"]);
    assert_eq!(report.changed, ["change"]);
    let signalled: Vec<u32> = signals(&actions).iter().map(|(pid, _)| *pid).collect();
    assert!(!signalled.contains(&keep), "an unchanged unit is untouched");
    assert!(signalled.contains(&change) && signalled.contains(&drop_pid));
    assert_eq!(
        spawns(&actions).len(),
        1,
        "only the new unit starts at once"
    );
    assert_eq!(h.instance("keep").pid, Some(keep));
    // The changed unit comes back with its new command once its old process is gone.
    let actions = h.exit("change", Exit::Signal("SIGTERM".into()));
    assert_eq!(spawns(&actions)[0].1.argv, ["/bin/sleep", "999"]);
    // The removed unit disappears once its process has exited.
    h.exit("drop", Exit::Signal("SIGTERM".into()));
    assert!(h.status().units.iter().all(|u| u.name != "drop"));
}

#[test]
fn a_changed_instance_count_scales_without_restarting_untouched_settings() {
    let mut h = Harness::new(vec![pool("web", 2)]);
    h.boot();
    let before = [h.instance("web@0").pid, h.instance("web@1").pid];
    let (report, actions) = h.reload(vec![pool("web", 3)]);
    assert_eq!(report.changed, ["web"]);
    // Exactly like `scale`: the third starts, the first two are untouched.
    assert!(signals(&actions).is_empty(), "{actions:?}");
    assert_eq!(spawns(&actions).len(), 1);
    assert_eq!([h.instance("web@0").pid, h.instance("web@1").pid], before);
    assert_eq!(h.instance("web@2").state, State::Running);
    // Scaling down stops only the instance that goes.
    let (_, actions) = h.reload(vec![pool("web", 2)]);
    let stopped: Vec<u32> = signals(&actions).iter().map(|(pid, _)| *pid).collect();
    assert_eq!(stopped, [h.instance("web@2").pid.unwrap()]);
    assert!(spawns(&actions).is_empty());
    assert_eq!([h.instance("web@0").pid, h.instance("web@1").pid], before);
    // A count change together with another setting restarts them all
    // (at once with `update = "parallel"`).
    let changed = UnitConfig {
        command: vec!["/bin/sleep".into(), "999".into()],
        update: Some(herd_config::UpdateMode::Parallel),
        ..pool("web", 3)
    };
    let (_, actions) = h.reload(vec![changed]);
    let stopped: Vec<u32> = signals(&actions).iter().map(|(pid, _)| *pid).collect();
    assert!(stopped.contains(&before[0].unwrap()) && stopped.contains(&before[1].unwrap()));
}

#[test]
fn a_bad_config_changes_nothing() {
    let mut h = Harness::new(vec![service("web")]);
    h.boot();
    let pid = h.instance("web").pid;
    let actions = h.feed(Input::ConfigLoaded {
        id: Some(77),
        config: Err("herd.toml:3:1: service.web.restat: unknown key".into()),
    });
    assert!(matches!(reply_to(77, &actions), Some(Reply::Error(e)) if e.message.contains("3:1")));
    assert!(signals(&actions).is_empty() && spawns(&actions).is_empty());
    assert_eq!(h.instance("web").pid, pid);
}

#[test]
fn an_identical_config_touches_nothing() {
    let mut h = Harness::new(vec![service("web"), pool("api", 3)]);
    h.boot();
    let (report, actions) = h.reload(vec![service("web"), pool("api", 3)]);
    assert_eq!(report, ReloadReport::default());
    assert!(signals(&actions).is_empty() && spawns(&actions).is_empty());
}

#[test]
fn changed_herd_settings_are_applied_or_named_as_needing_a_restart() {
    let mut h = Harness::new(vec![service("web")]);
    h.boot();
    let mut config = config_with(vec![service("web")]);
    config.herd.socket = "/elsewhere/herd.sock".into();
    config.herd.shutdown_timeout = Duration::from_secs(99);
    let reload = |h: &mut Harness, id| {
        let actions = h.feed(Input::ConfigLoaded {
            id: Some(id),
            config: Ok(config.clone()),
        });
        match reply_to(id, &actions) {
            Some(Reply::Ok(payload)) => serde_json::from_value::<ReloadReport>(payload).unwrap(),
            other => panic!("reload failed: {other:?}"),
        }
    };
    let report = reload(&mut h, 900);
    assert_eq!(report.updated, ["herd.shutdown_timeout"]);
    assert_eq!(report.restart_needed, ["herd.socket"]);
    // Still not in effect: said again; the timeout is in effect: not again.
    let report = reload(&mut h, 901);
    assert!(report.updated.is_empty());
    assert_eq!(report.restart_needed, ["herd.socket"]);
}

/// The pids signalled by `actions`.
fn stopped(actions: &[Action]) -> Vec<u32> {
    signals(actions).iter().map(|(pid, _)| *pid).collect()
}

#[test]
fn a_reload_rolls_a_pool_one_ready_instance_at_a_time() {
    let mut h = Harness::new(vec![pool("web", 3)]);
    h.boot();
    let old: Vec<u32> = (0..3)
        .map(|i| h.instance(&format!("web@{i}")).pid.unwrap())
        .collect();
    let changed = UnitConfig {
        command: vec!["/bin/sleep".into(), "999".into()],
        ..pool("web", 3)
    };
    let (_, actions) = h.reload(vec![changed]);
    assert_eq!(
        stopped(&actions),
        [old[0]],
        "one at a time (max_unavailable = 1)"
    );
    // web@0 is replaced and ready at once (ready = "started"): web@1 is next.
    let actions = h.exit("web@0", Exit::Signal("SIGTERM".into()));
    assert_eq!(spawns(&actions)[0].1.argv, ["/bin/sleep", "999"]);
    assert_eq!(stopped(&actions), [old[1]]);
    let actions = h.exit("web@1", Exit::Signal("SIGTERM".into()));
    assert_eq!(stopped(&actions), [old[2]]);
    let actions = h.exit("web@2", Exit::Signal("SIGTERM".into()));
    assert!(stopped(&actions).is_empty());
    assert!(actions.iter().any(|action| matches!(
        action,
        Action::Publish(Lifecycle::RolloutEnded { error: None, .. })
    )));
}

#[test]
fn a_rolling_restart_stops_at_a_replacement_that_fails_and_leaves_the_rest() {
    let mut h = Harness::new(vec![UnitConfig {
        max_unavailable: 2,
        ready: herd_config::Ready::After(Duration::from_secs(1)),
        ..pool("web", 4)
    }]);
    h.boot();
    h.advance(Duration::from_secs(1));
    let old: Vec<u32> = (0..4)
        .map(|i| h.instance(&format!("web@{i}")).pid.unwrap())
        .collect();
    let (id, actions) = h.request(Request::RollingRestart {
        name: "web".into(),
        resume: false,
    });
    assert_eq!(
        stopped(&actions),
        [old[0], old[1]],
        "a batch of max_unavailable"
    );
    h.exit("web@0", Exit::Signal("SIGTERM".into()));
    // The replacement of web@0 runs (a new pid) and crashes before it is ready.
    let actions = h.exit("web@0", Exit::Code(1));
    let Some(Reply::Error(error)) = reply_to(id, &actions) else {
        panic!("the rollout should have failed: {actions:?}");
    };
    assert!(error.message.contains("web@0"), "{}", error.message);
    assert_eq!(error.code, herd_common::protocol::ErrorCode::Failed);
    assert_eq!(
        h.instance("web@2").pid,
        Some(old[2]),
        "not yet restarted: untouched"
    );
    assert_eq!(h.instance("web@3").pid, Some(old[3]));
}
