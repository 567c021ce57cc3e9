//! The indexes that keep a step's cost independent of how many tasks,
//! waiters and instances herd remembers: they must say what a walk of
//! everything says.

use super::*;
use herd_common::protocol::{SubmitOptions, SubmitReport, TaskStatus};

fn submit(h: &mut Harness, options: SubmitOptions) -> TaskId {
    let (id, actions) = h.request(Request::Submit {
        pool: "p".into(),
        command: vec!["/bin/job".into(), String::new(), "two words".into()],
        name: None,
        options,
    });
    match reply_to(id, &actions) {
        Some(Reply::Ok(payload)) => serde_json::from_value::<SubmitReport>(payload).unwrap().id,
        other => panic!("expected ok, got {other:?}"),
    }
}

fn after(ms: u64) -> SubmitOptions {
    SubmitOptions {
        after_ms: Some(ms),
        ..Default::default()
    }
}

fn task(h: &Harness, id: TaskId) -> TaskStatus {
    h.core.tasks[&id].status(h.now)
}

fn end(h: &mut Harness, id: TaskId) -> Vec<Action> {
    let pid = task(h, id).pid.expect("task runs");
    h.feed(Input::Exited {
        pid,
        exit: Exit::Code(0),
    })
}

fn indexes_are_true(h: &Harness) -> bool {
    h.core.tasks.index_is_true()
        && h.core.waiters.index_is_true()
        && h.core.units.index_is_true()
        && h.core.hooks.index_is_true()
        && h.core.timers.index_is_true()
        && h.core.task_names.index_is_true(&h.core.tasks)
}

#[test]
fn queued_tasks_start_exactly_when_due_in_deadline_order_and_cancelled_ones_leave_the_index() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 4)]);
    let late = submit(&mut h, after(3000));
    let early = submit(&mut h, after(1000));
    let cancelled = submit(&mut h, after(500));
    assert_eq!(h.core.next_deadline(), Some(h.now + 500 * MS));
    h.request(Request::Cancel {
        ids: vec![cancelled],
    });
    assert_eq!(task(&h, cancelled).state, TaskState::Cancelled);
    assert_eq!(h.core.next_deadline(), Some(h.now + 1000 * MS));
    assert!(indexes_are_true(&h));
    assert!(task_spawns(&h.advance(999 * MS)).is_empty());
    assert_eq!(task_spawns(&h.advance(MS)), [early]);
    assert_eq!(h.core.next_deadline(), Some(h.now + 2000 * MS));
    assert!(task_spawns(&h.advance(1999 * MS)).is_empty());
    assert_eq!(task_spawns(&h.advance(MS)), [late]);
    assert_eq!(
        h.core.next_deadline(),
        None,
        "running tasks without timeout"
    );
    end(&mut h, early);
    end(&mut h, late);
    assert_eq!(h.core.next_deadline(), None);
    assert!(indexes_are_true(&h));
    assert_eq!(
        task(&h, late).command,
        ["/bin/job", "", "two words"],
        "the argv is kept as given"
    );
}

#[test]
fn finished_and_evicted_tasks_leave_no_deadline_and_a_restore_rebuilds_the_index() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 2)]);
    let done: Vec<TaskId> = (0..150)
        .map(|_| {
            let id = submit(&mut h, after(0));
            end(&mut h, id);
            id
        })
        .collect();
    assert!(done.iter().all(|id| h
        .core
        .tasks
        .get(id)
        .is_none_or(|t| t.state == TaskState::Exited)));
    // Its results were held for the submitting connection; it closes.
    h.feed(Input::ClientGone { client: 1 });
    assert_eq!(h.core.tasks.len(), 100, "keep_finished = 100");
    let timed = submit(
        &mut h,
        SubmitOptions {
            timeout_ms: Some(700),
            ..Default::default()
        },
    );
    let _queued = submit(&mut h, after(400));
    assert_eq!(h.core.next_deadline(), Some(h.now + 400 * MS));
    assert!(indexes_are_true(&h));

    let config = test_config(vec![], vec![task_pool("p", 2)], vec![], vec![]);
    let snapshot = h.core.snapshot(h.now, true);
    h.core = Supervisor::restore(&config, &snapshot, h.now, false);
    assert!(indexes_are_true(&h), "restored with its index");
    assert_eq!(h.core.next_deadline(), Some(h.now + 400 * MS));
    let pid = task(&h, timed).pid.unwrap();
    h.advance(400 * MS);
    assert_eq!(h.core.next_deadline(), Some(h.now + 300 * MS));
    assert_eq!(signals(&h.advance(300 * MS)), [(pid, libc::SIGTERM)]);
    assert!(indexes_are_true(&h));
}

#[test]
fn a_join_is_answered_once_every_task_ended_whatever_their_order() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 3)]);
    let ids: Vec<TaskId> = (0..3).map(|_| submit(&mut h, after(0))).collect();
    let (join, _) = h.request(Request::Join {
        ids: ids.clone(),
        timeout_ms: None,
    });
    assert!(indexes_are_true(&h));
    // The join watches the first task; the others ending first do not answer it.
    for id in [ids[2], ids[1]] {
        let actions = end(&mut h, id);
        assert!(reply_to(join, &actions).is_none());
        assert!(indexes_are_true(&h));
    }
    let actions = end(&mut h, ids[0]);
    let Some(Reply::Ok(payload)) = reply_to(join, &actions) else {
        panic!("the join is answered when its last task ends: {actions:?}");
    };
    let report: TaskReport = serde_json::from_value(payload).unwrap();
    assert_eq!(report.tasks.len(), 3);
    assert!(!report.timed_out);
    assert!(indexes_are_true(&h));
}

#[test]
fn a_closing_connection_takes_only_its_own_waiters_with_it() {
    let event = herd_config::EventConfig {
        name: "go".into(),
        set: false,
    };
    let mut h = Harness::with_config(vec![], vec![], vec![], vec![event]);
    let wait = |h: &mut Harness, id: RequestId, client| {
        h.feed(Input::Request {
            id,
            client,
            request: Request::EventWait {
                name: "go".into(),
                timeout_ms: Some(60_000),
            },
        })
    };
    wait(&mut h, 1001, 7);
    wait(&mut h, 1002, 8);
    wait(&mut h, 1003, 7);
    h.feed(Input::ClientGone { client: 7 });
    assert!(indexes_are_true(&h));
    let (_, actions) = h.request(Request::EventSet { name: "go".into() });
    assert!(reply_to(1002, &actions).is_some());
    assert!(reply_to(1001, &actions).is_none() && reply_to(1003, &actions).is_none());
    assert_eq!(h.core.next_deadline(), None, "no waiter deadline left");
    assert!(indexes_are_true(&h));
}

fn web(h: &Harness, index: u32) -> &instance::Instance {
    let unit = &h.core.units["web"];
    &unit.instances[unit.position(index).expect("instance exists")]
}

#[test]
fn instance_deadlines_and_waiting_instances_follow_crashes_scaling_and_dependencies() {
    let mut h = Harness::new(vec![
        UnitConfig {
            ready: Ready::After(1000 * MS),
            ..pool("web", 30)
        },
        UnitConfig {
            after: vec!["web".into()],
            ..service("db")
        },
    ]);
    h.boot();
    let booted = h.now;
    assert_eq!(h.core.next_deadline(), Some(booted + 1000 * MS));
    assert_eq!(h.core.units.waiting().len(), 1, "db waits for web");
    assert!(indexes_are_true(&h));

    // One instance crashes before it is ready: only it has an earlier deadline.
    h.now += 200 * MS;
    h.exit("web@7", Exit::Code(1));
    assert_eq!(h.core.next_deadline(), Some(h.now + 100 * MS));
    assert!(indexes_are_true(&h));
    let restarted: Vec<InstanceId> = spawns(&h.advance(100 * MS))
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(restarted.len(), 1);
    assert_eq!(restarted[0].index, 7);
    let web7_ready = h.now + 1000 * MS;
    assert_eq!(h.core.next_deadline(), Some(booted + 1000 * MS));

    // The other 29 become ready at once; db still waits for web@7.
    h.now = booted + 1000 * MS;
    assert!(spawns(&h.feed(Input::Tick)).is_empty());
    assert_eq!(h.core.next_deadline(), Some(web7_ready));
    assert_eq!(web(&h, 7).state, State::Starting);
    assert_eq!(h.core.units.waiting().len(), 1);
    assert!(indexes_are_true(&h));
    h.now = web7_ready;
    let started = spawns(&h.feed(Input::Tick));
    assert_eq!(started.len(), 1, "db starts once all of web runs");
    assert_eq!(started[0].0.unit, "db");
    assert!(h.core.units.waiting().is_empty());
    assert_eq!(h.core.next_deadline(), None, "everything runs");
    assert!(indexes_are_true(&h));

    // Scaled down: the 20 leaving instances each have a stop deadline,
    // and leave the index once their process has gone.
    h.request(Request::Scale {
        name: "web".into(),
        instances: 10,
    });
    assert_eq!(h.core.next_deadline(), Some(h.now + 500 * MS));
    assert_eq!(h.core.units.due(h.now + 500 * MS).len(), 20);
    assert!(indexes_are_true(&h));
    for index in 10..30 {
        let pid = web(&h, index).pid.expect("still stopping");
        h.feed(Input::Exited {
            pid,
            exit: Exit::Signal("SIGTERM".into()),
        });
        assert!(indexes_are_true(&h));
    }
    assert_eq!(h.core.units["web"].instances.len(), 10);
    assert_eq!(h.core.next_deadline(), None);
    assert!(indexes_are_true(&h));
}

fn submit_named(h: &mut Harness, pool: &str, name: &str, unique: bool) -> SubmitReport {
    let (id, actions) = h.request(Request::Submit {
        pool: pool.into(),
        command: vec!["/bin/job".into()],
        name: Some(name.into()),
        options: SubmitOptions {
            unique,
            ..Default::default()
        },
    });
    match reply_to(id, &actions) {
        Some(Reply::Ok(payload)) => serde_json::from_value(payload).unwrap(),
        other => panic!("expected ok, got {other:?}"),
    }
}

#[test]
fn a_unique_submit_finds_the_live_task_of_its_name_and_not_a_finished_one() {
    let pools = || vec![task_pool("p", 1), task_pool("q", 1)];
    let mut h = Harness::with_pools(vec![], pools());
    let finished = submit_named(&mut h, "p", "nightly", false).id;
    end(&mut h, finished);
    assert_eq!(task(&h, finished).state, TaskState::Exited, "kept");
    // A finished task of that name does not count.
    let first = submit_named(&mut h, "p", "nightly", true);
    assert!(!first.existing);
    assert_ne!(first.id, finished);
    assert!(indexes_are_true(&h));
    // A second live one (queued behind it) is not found while the first lives.
    let queued = submit_named(&mut h, "p", "nightly", false).id;
    let again = submit_named(&mut h, "p", "nightly", true);
    assert_eq!((again.id, again.existing), (first.id, true));
    // The name is per pool.
    let elsewhere = submit_named(&mut h, "q", "nightly", true);
    assert!(!elsewhere.existing);
    assert!(indexes_are_true(&h));
    // The first ends: the queued one is the live one now; cancelled, none is.
    end(&mut h, first.id);
    let again = submit_named(&mut h, "p", "nightly", true);
    assert_eq!((again.id, again.existing), (queued, true));
    let pid = task(&h, queued).pid.expect("it runs now");
    h.request(Request::Cancel { ids: vec![queued] });
    h.feed(Input::Exited {
        pid,
        exit: Exit::Signal("SIGTERM".into()),
    });
    assert_eq!(task(&h, queued).state, TaskState::Cancelled);
    let fresh = submit_named(&mut h, "p", "nightly", true);
    assert!(!fresh.existing);
    assert!(fresh.id > queued);
    assert!(indexes_are_true(&h));
    // A restore (re-exec) finds it again.
    let config = test_config(vec![], pools(), vec![], vec![]);
    let snapshot = h.core.snapshot(h.now, true);
    h.core = Supervisor::restore(&config, &snapshot, h.now, false);
    assert!(indexes_are_true(&h), "restored with its index");
    let again = submit_named(&mut h, "p", "nightly", true);
    assert_eq!((again.id, again.existing), (fresh.id, true));
}
