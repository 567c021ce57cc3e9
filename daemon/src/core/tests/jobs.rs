//! Task limits in the core: timeouts, retries with back-off, priorities,
//! delayed starts and unique names, all against the test clock.

use super::*;
use herd_common::protocol::{SubmitOptions, SubmitReport, TaskStatus};

fn submit(h: &mut Harness, name: Option<&str>, options: SubmitOptions) -> Reply {
    let (id, actions) = h.request(Request::Submit {
        pool: "p".into(),
        command: vec!["/bin/job".into()],
        name: name.map(str::to_string),
        options,
    });
    reply_to(id, &actions).expect("submit replies at once")
}

fn submitted(h: &mut Harness, options: SubmitOptions) -> SubmitReport {
    match submit(h, None, options) {
        Reply::Ok(payload) => serde_json::from_value(payload).unwrap(),
        other => panic!("expected ok, got {other:?}"),
    }
}

fn task(h: &mut Harness, id: TaskId) -> TaskStatus {
    let (rid, actions) = h.request(Request::Tasks { pool: None });
    let Some(Reply::Ok(payload)) = reply_to(rid, &actions) else {
        panic!("tasks failed");
    };
    let report: TaskReport = serde_json::from_value(payload).unwrap();
    report.tasks.into_iter().find(|t| t.id == id).unwrap()
}

fn end(h: &mut Harness, id: TaskId, exit: Exit) -> Vec<Action> {
    let pid = task(h, id).pid.expect("task runs");
    h.feed(Input::Exited { pid, exit })
}

#[test]
fn a_task_past_its_timeout_is_stopped_killed_and_ends_timed_out() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 1)]);
    let id = submitted(
        &mut h,
        SubmitOptions {
            timeout_ms: Some(1000),
            ..Default::default()
        },
    )
    .id;
    let pid = task(&mut h, id).pid.unwrap();
    assert_eq!(h.core.next_deadline(), Some(h.now + 1000 * MS));
    assert!(signals(&h.advance(999 * MS)).is_empty());
    assert_eq!(signals(&h.advance(MS)), [(pid, libc::SIGTERM)]);
    // It ignores SIGTERM: SIGKILL after the pool's stop_timeout (500ms).
    assert!(signals(&h.advance(499 * MS)).is_empty());
    assert_eq!(signals(&h.advance(MS)), [(pid, libc::SIGKILL)]);
    end(&mut h, id, Exit::Signal("SIGKILL".into()));
    let status = task(&mut h, id);
    assert_eq!(status.state, TaskState::TimedOut);
    assert_eq!(status.exit, Some(Exit::Signal("SIGKILL".into())));
    assert_eq!(h.core.next_deadline(), None);
}

#[test]
fn a_failed_attempt_is_retried_after_a_doubling_delay() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 1)]);
    let id = submitted(
        &mut h,
        SubmitOptions {
            retries: Some(3),
            retry_delay_ms: Some(100),
            ..Default::default()
        },
    )
    .id;
    end(&mut h, id, Exit::Code(1));
    let status = task(&mut h, id);
    assert_eq!((status.state, status.attempts), (TaskState::Queued, 1));
    assert_eq!(h.core.next_deadline(), Some(h.now + 100 * MS));
    assert!(task_spawns(&h.advance(99 * MS)).is_empty());
    assert_eq!(task_spawns(&h.advance(MS)), [id]);
    end(&mut h, id, Exit::Signal("SIGSEGV".into()));
    // The second retry waits twice as long.
    assert!(task_spawns(&h.advance(199 * MS)).is_empty());
    assert_eq!(task_spawns(&h.advance(MS)), [id]);
    end(&mut h, id, Exit::Code(0));
    let status = task(&mut h, id);
    assert_eq!(status.state, TaskState::Exited);
    assert_eq!(status.attempts, 3);
    assert_eq!(
        status.failed_attempts,
        [Exit::Code(1), Exit::Signal("SIGSEGV".into())]
    );
    let (rid, actions) = h.request(Request::Output {
        id,
        stream: herd_common::protocol::OutputStream::Stderr,
    });
    let Some(Reply::Ok(payload)) = reply_to(rid, &actions) else {
        panic!("output failed")
    };
    let data = payload["data"].as_str().unwrap().to_string();
    assert!(
        data.contains("attempt 1 failed (exit code 1); retry 1 of 3"),
        "{data}"
    );
    assert!(
        data.contains("attempt 2 failed (killed by SIGSEGV); retry 2 of 3"),
        "{data}"
    );
}

#[test]
fn retries_run_out_and_a_join_waits_for_the_last_attempt() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 1)]);
    let id = submitted(
        &mut h,
        SubmitOptions {
            retries: Some(1),
            retry_delay_ms: Some(0),
            ..Default::default()
        },
    )
    .id;
    let (join, _) = h.request(Request::Join {
        ids: vec![id],
        timeout_ms: None,
    });
    // A zero delay retries in the same step.
    let actions = end(&mut h, id, Exit::Code(2));
    assert_eq!(task_spawns(&actions), [id]);
    assert!(reply_to(join, &actions).is_none(), "not ended yet");
    let actions = end(&mut h, id, Exit::Code(3));
    assert!(reply_to(join, &actions).is_some());
    let status = task(&mut h, id);
    assert_eq!(status.state, TaskState::Failed);
    assert_eq!(status.exit, Some(Exit::Code(3)));
    assert_eq!(status.attempts, 2);
}

#[test]
fn a_timed_out_attempt_is_retried_and_cancel_ends_a_waiting_retry() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 1)]);
    let id = submitted(
        &mut h,
        SubmitOptions {
            timeout_ms: Some(50),
            retries: Some(5),
            retry_delay_ms: Some(1000),
            ..Default::default()
        },
    )
    .id;
    h.advance(50 * MS);
    end(&mut h, id, Exit::Signal("SIGTERM".into()));
    assert_eq!(task(&mut h, id).state, TaskState::Queued);
    h.request(Request::Cancel { ids: vec![id] });
    assert_eq!(task(&mut h, id).state, TaskState::Cancelled);
    assert!(task_spawns(&h.advance(5000 * MS)).is_empty());
}

#[test]
fn higher_priority_runs_first_and_fifo_within_a_priority() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 1)]);
    let priority = |priority| SubmitOptions {
        priority,
        ..Default::default()
    };
    let first = submitted(&mut h, priority(0)).id; // takes the only slot
    let low = submitted(&mut h, priority(0)).id;
    let high_a = submitted(&mut h, priority(5)).id;
    let mid = submitted(&mut h, priority(1)).id;
    let high_b = submitted(&mut h, priority(5)).id;
    let mut order = Vec::new();
    let mut running = first;
    for _ in 0..4 {
        let spawned = task_spawns(&end(&mut h, running, Exit::Code(0)));
        assert_eq!(spawned.len(), 1);
        running = spawned[0];
        order.push(running);
    }
    assert_eq!(order, [high_a, high_b, mid, low]);
}

#[test]
fn after_delays_the_start_without_blocking_the_queue() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 1)]);
    let later = submitted(
        &mut h,
        SubmitOptions {
            after_ms: Some(2000),
            ..Default::default()
        },
    );
    assert_eq!(later.state, TaskState::Queued);
    assert_eq!(h.core.next_deadline(), Some(h.now + 2000 * MS));
    // A task submitted after it may run before it.
    let now = submitted(&mut h, SubmitOptions::default());
    assert_eq!(now.state, TaskState::Running);
    end(&mut h, now.id, Exit::Code(0));
    assert!(task_spawns(&h.advance(1999 * MS)).is_empty());
    assert_eq!(task_spawns(&h.advance(MS)), [later.id]);
}

#[test]
fn unique_returns_the_live_task_of_that_name() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 1)]);
    let unique = || SubmitOptions {
        unique: true,
        ..Default::default()
    };
    let report = |reply: Reply| -> SubmitReport {
        match reply {
            Reply::Ok(payload) => serde_json::from_value(payload).unwrap(),
            other => panic!("{other:?}"),
        }
    };
    let first = report(submit(&mut h, Some("nightly"), unique()));
    assert!(!first.existing);
    let again = report(submit(&mut h, Some("nightly"), unique()));
    assert_eq!((again.id, again.existing), (first.id, true));
    // Without `unique`, or under another name, a new task is queued.
    let other = report(submit(&mut h, Some("nightly"), SubmitOptions::default()));
    assert_ne!(other.id, first.id);
    // Once it ended, the live task of that name is the other one...
    end(&mut h, first.id, Exit::Code(0));
    let again = report(submit(&mut h, Some("nightly"), unique()));
    assert_eq!((again.id, again.existing), (other.id, true));
    // ... and once none is live, the name is free again.
    end(&mut h, other.id, Exit::Code(0));
    let next = report(submit(&mut h, Some("nightly"), unique()));
    assert!(!next.existing);
    assert!(next.id > other.id);
    let Reply::Error(body) = submit(&mut h, None, unique()) else {
        panic!("unique without a name must be refused")
    };
    assert_eq!(body.code, ErrorCode::BadRequest);
}

#[test]
fn pool_defaults_apply_and_bad_values_are_refused() {
    let mut h = Harness::with_pools(
        vec![],
        vec![PoolConfig {
            task_defaults: herd_config::TaskDefaults {
                timeout: Some(300 * MS),
                retries: 1,
                retry_delay: 10 * MS,
            },
            ..task_pool("p", 1)
        }],
    );
    let id = submitted(&mut h, SubmitOptions::default()).id;
    assert_eq!(task(&mut h, id).retries, 1);
    let pid = task(&mut h, id).pid.unwrap();
    assert_eq!(signals(&h.advance(300 * MS)), [(pid, libc::SIGTERM)]);
    let before = h.core.tasks.len();
    for options in [
        SubmitOptions {
            retries: Some(1001),
            ..Default::default()
        },
        SubmitOptions {
            timeout_ms: Some(0),
            ..Default::default()
        },
    ] {
        let Reply::Error(body) = submit(&mut h, None, options) else {
            panic!("must be refused")
        };
        assert_eq!(body.code, ErrorCode::BadRequest);
    }
    assert_eq!(h.core.tasks.len(), before, "nothing queued");
}

#[test]
fn limits_and_attempts_survive_a_snapshot() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 1)]);
    let id = submitted(
        &mut h,
        SubmitOptions {
            retries: Some(2),
            retry_delay_ms: Some(1000),
            priority: 4,
            ..Default::default()
        },
    )
    .id;
    end(&mut h, id, Exit::Code(1));
    let task = &h.core.tasks[&id];
    let restored = crate::core::task::Task::restore(&task.snapshot(h.now, false), h.now, false);
    assert_eq!(restored.limits, task.limits);
    assert_eq!(restored.attempts, 1);
    assert_eq!(restored.failed_attempts(), [Exit::Code(1)]);
    assert_eq!(restored.not_before(), Some(h.now + 1000 * MS));
}
