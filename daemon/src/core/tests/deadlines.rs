//! The indexes that keep a step's cost independent of how many tasks and
//! waiters herd remembers: they must say what a walk of everything says.

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
    h.core.tasks.index_is_true() && h.core.waiters.index_is_true()
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
