//! Survivors of a killed herdd found without a journal: some instances of a
//! unit adopted, the rest started by boot, the surplus stopped.

use super::*;
use crate::core::survivors::Survivor;
use std::collections::HashSet;

fn survivor(unit: &str, index: u32, pid: u32) -> Survivor {
    Survivor {
        unit: unit.into(),
        index,
        pid,
        age: Duration::from_secs(60),
    }
}

#[test]
fn boot_starts_only_the_instances_that_have_no_survivor() {
    let mut h = Harness::new(vec![pool("web", 3), service("db")]);
    let now = h.now;
    let adoption = h.core.adopt_survivors(
        now,
        vec![survivor("web", 0, 7000), survivor("web", 2, 7002)],
        &HashSet::new(),
    );
    assert!(adoption.strays.is_empty());
    assert_eq!(adoption.adopted, [7000, 7002]);
    let actions = adoption.actions;
    assert!(signals(&actions).is_empty(), "nothing to stop: {actions:?}");
    let started: Vec<String> = spawns(&h.boot())
        .into_iter()
        .map(|(id, _)| format!("{}@{}", id.unit, id.index))
        .collect();
    assert_eq!(started, ["db@0", "web@1"], "web@0 and web@2 run already");
    for (name, pid) in [("web@0", 7000), ("web@2", 7002)] {
        let instance = h.instance(name);
        assert_eq!(instance.state, State::Running);
        assert_eq!(instance.pid, Some(pid));
        assert!(instance.adopted, "{name} is adopted");
    }
    assert!(!h.instance("web@1").adopted, "started by this herdd");
    // An adopted process's end is an exit of unknown status, like any adopted one.
    h.feed(Input::Exited {
        pid: 7002,
        exit: Exit::Unknown,
    });
    assert_eq!(h.instance("web@2").last_exit, Some(Exit::Unknown));
    assert_eq!(h.instance("web@0").pid, Some(7000), "the others go on");
}

#[test]
fn a_survivor_of_a_unit_not_started_at_boot_is_adopted_and_its_siblings_started() {
    let mut idle = pool("idle", 2);
    idle.autostart = false;
    let mut h = Harness::new(vec![idle]);
    let now = h.now;
    h.core
        .adopt_survivors(now, vec![survivor("idle", 1, 7100)], &HashSet::new());
    let started: Vec<u32> = spawns(&h.boot()).iter().map(|(id, _)| id.index).collect();
    assert_eq!(
        started,
        [0],
        "it was started before the crash: it is wanted"
    );
    assert_eq!(h.instance("idle@1").pid, Some(7100));
}

#[test]
fn survivors_the_config_has_no_room_for_are_stopped_or_handed_back() {
    let mut h = Harness::new(vec![pool("web", 1)]);
    let now = h.now;
    let adoption = h.core.adopt_survivors(
        now,
        vec![
            survivor("web", 0, 7200),
            survivor("web", 3, 7203),
            survivor("gone", 0, 7300),
        ],
        &HashSet::new(),
    );
    let signals = signals(&adoption.actions);
    assert_eq!(signals, [(7203, libc::SIGTERM)], "scaled away");
    // web@3 is indexed with its stop deadline; web@0 runs with none.
    assert!(h.core.units.index_is_true());
    assert_eq!(h.core.next_deadline(), Some(now + 500 * MS));
    let strays = adoption.strays;
    assert_eq!(
        strays,
        [survivor("gone", 0, 7300)],
        "no config to stop it by"
    );
    assert!(
        spawns(&h.boot()).is_empty(),
        "web@0 runs; web@3 is not started"
    );
    assert_eq!(h.state("web@3"), State::Stopping);
    h.feed(Input::Exited {
        pid: 7203,
        exit: Exit::Unknown,
    });
    let names: Vec<String> = h
        .status()
        .units
        .into_iter()
        .flat_map(|u| u.instances)
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["web@0"], "dropped once it has exited");
    assert!(h.core.units.index_is_true());
    assert_eq!(h.core.next_deadline(), None);
}

#[test]
fn an_adopted_survivor_holds_its_semaphore_slot() {
    let mut web = pool("web", 2);
    web.semaphores = vec!["lock".into()];
    let lock = herd_config::SemaphoreConfig {
        name: "lock".into(),
        capacity: 1,
    };
    let mut h = Harness::with_config(vec![web], vec![], vec![lock], vec![]);
    let now = h.now;
    h.core
        .adopt_survivors(now, vec![survivor("web", 1, 7400)], &HashSet::new());
    assert!(spawns(&h.boot()).is_empty(), "web@0 waits for the slot");
    assert_eq!(h.state("web@0"), State::Waiting);
    h.feed(Input::Exited {
        pid: 7400,
        exit: Exit::Unknown,
    });
    assert_eq!(h.instance("web@0").state, State::Running, "slot handed on");
}

/// A journal written before web@0 restarted: its pid there is gone, the
/// process that replaced it survived. web@1's journaled process still runs.
#[test]
fn a_survivor_the_journal_missed_replaces_its_instances_gone_process() {
    let mut h = Harness::new(vec![pool("web", 2)]);
    h.boot();
    let (old0, old1) = (
        h.instance("web@0").pid.unwrap(),
        h.instance("web@1").pid.unwrap(),
    );
    let config = test_config(vec![pool("web", 2)], vec![], vec![], vec![]);
    let snapshot = h.core.snapshot(h.now, false);
    h.core = Supervisor::restore(&config, &snapshot, h.now, true);
    let now = h.now;
    let adoption = h.core.adopt_survivors(
        now,
        vec![survivor("web", 0, 8000), survivor("web", 1, 8001)],
        &HashSet::from([old0]),
    );
    assert_eq!(
        adoption.adopted,
        [8000],
        "web@1's own process runs: 8001 is not it"
    );
    assert!(spawns(&h.boot()).is_empty());
    // The journaled process's end is reported after boot: it is nobody's now.
    let actions = h.feed(Input::Exited {
        pid: old0,
        exit: Exit::Unknown,
    });
    assert!(
        spawns(&actions).is_empty(),
        "nothing started twice: {actions:?}"
    );
    let web0 = h.instance("web@0");
    assert_eq!(
        (web0.state, web0.pid, web0.adopted),
        (State::Running, Some(8000), true)
    );
    assert_eq!(h.instance("web@1").pid, Some(old1));
}
