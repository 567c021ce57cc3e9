//! Task pools in the core: queue, slots, join, cancel, output, eviction.

use super::*;
use herd_common::protocol::{CancelReport, PoolReport, SubmitReport, TaskStatus};

fn ok<T: serde::de::DeserializeOwned>(reply: Option<Reply>) -> T {
    match reply {
        Some(Reply::Ok(payload)) => serde_json::from_value(payload).expect("payload shape"),
        other => panic!("expected an ok reply, got {other:?}"),
    }
}

fn err_code(reply: Option<Reply>) -> ErrorCode {
    match reply {
        Some(Reply::Error(body)) => body.code,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

impl Harness {
    fn submit(&mut self, pool: &str, program: &str) -> (Option<Reply>, Vec<Action>) {
        let (id, actions) = self.request(Request::Submit {
            pool: pool.into(),
            command: vec![program.into()],
            name: None,
            options: Default::default(),
        });
        (reply_to(id, &actions), actions)
    }

    fn submit_ok(&mut self, pool: &str) -> TaskId {
        let report: SubmitReport = ok(self.submit(pool, "/bin/true").0);
        report.id
    }

    fn task(&mut self, id: TaskId) -> TaskStatus {
        let (rid, actions) = self.request(Request::Tasks { pool: None });
        let report: TaskReport = ok(reply_to(rid, &actions));
        report
            .tasks
            .into_iter()
            .find(|t| t.id == id)
            .unwrap_or_else(|| panic!("no task {id}"))
    }

    fn finish(&mut self, id: TaskId, exit: Exit) -> Vec<Action> {
        let pid = self.task(id).pid.expect("task runs");
        self.feed(Input::Exited { pid, exit })
    }

    fn join(&mut self, ids: Vec<TaskId>, timeout_ms: Option<u64>) -> (RequestId, Vec<Action>) {
        self.request(Request::Join { ids, timeout_ms })
    }
}

#[test]
fn at_most_size_run_and_the_queue_is_fifo() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 2)]);
    let ids: Vec<TaskId> = (0..5).map(|_| h.submit_ok("p")).collect();
    let states: Vec<TaskState> = ids.iter().map(|id| h.task(*id).state).collect();
    use TaskState::*;
    assert_eq!(states, [Running, Running, Queued, Queued, Queued]);
    // A free slot is filled in the same step, by the oldest queued task.
    let actions = h.finish(ids[1], Exit::Code(0));
    assert_eq!(task_spawns(&actions), [ids[2]]);
    assert_eq!(h.task(ids[1]).state, Exited);
    assert_eq!(h.task(ids[2]).state, Running);
    assert_eq!(h.task(ids[3]).state, Queued);
}

#[test]
fn submissions_are_refused_clearly() {
    let mut h = Harness::with_pools(
        vec![],
        vec![PoolConfig {
            max_queue: 1,
            ..task_pool("p", 1)
        }],
    );
    assert_eq!(
        err_code(h.submit("nope", "/bin/true").0),
        ErrorCode::NoSuchPool
    );
    assert_eq!(err_code(h.submit("p", "").0), ErrorCode::BadRequest);
    h.submit_ok("p"); // runs
    h.submit_ok("p"); // queued: the queue is now full
    let (id, actions) = h.request(Request::Submit {
        pool: "p".into(),
        command: vec!["/bin/true".into()],
        name: None,
        options: Default::default(),
    });
    match reply_to(id, &actions) {
        Some(Reply::Error(body)) => {
            assert_eq!(body.code, ErrorCode::Refused);
            assert!(body.message.contains("max_queue = 1"), "{}", body.message);
        }
        other => panic!("{other:?}"),
    }
    let (id, actions) = h.request(Request::PoolClose { pool: "p".into() });
    let report: PoolReport = ok(reply_to(id, &actions));
    assert!(report.pool.closed);
    let (id, actions) = h.request(Request::Submit {
        pool: "p".into(),
        command: vec!["/bin/true".into()],
        name: None,
        options: Default::default(),
    });
    match reply_to(id, &actions) {
        Some(Reply::Error(body)) => assert!(body.message.contains("closed"), "{}", body.message),
        other => panic!("{other:?}"),
    }
}

#[test]
fn join_waits_for_the_end_and_reports_codes_and_signals() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 2)]);
    let a = h.submit_ok("p");
    let b = h.submit_ok("p");
    let (rid, actions) = h.join(vec![a, b], None);
    assert!(reply_to(rid, &actions).is_none());
    assert!(
        reply_to(rid, &h.finish(a, Exit::Code(3))).is_none(),
        "b still runs"
    );
    let report: TaskReport = ok(reply_to(rid, &h.finish(b, Exit::Signal("SIGKILL".into()))));
    assert!(!report.timed_out);
    assert_eq!(report.tasks[0].exit, Some(Exit::Code(3)));
    assert_eq!(report.tasks[0].state, TaskState::Failed);
    assert_eq!(report.tasks[1].exit, Some(Exit::Signal("SIGKILL".into())));
    // Joining an ended task answers at once.
    let (rid, actions) = h.join(vec![a], None);
    let report: TaskReport = ok(reply_to(rid, &actions));
    assert_eq!(report.tasks[0].id, a);
}

#[test]
fn join_times_out_at_its_deadline() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 1)]);
    let a = h.submit_ok("p");
    let (rid, _) = h.join(vec![a], Some(250));
    assert_eq!(h.core.next_deadline(), Some(h.now + 250 * MS));
    assert!(reply_to(rid, &h.advance(249 * MS)).is_none());
    let report: TaskReport = ok(reply_to(rid, &h.advance(MS)));
    assert!(report.timed_out);
    assert_eq!(report.tasks[0].state, TaskState::Running);
    assert_eq!(h.core.next_deadline(), None);
}

/// The results a client leaves held are in the journal: its leaving is a
/// change; a client that held none leaving is not.
#[test]
fn a_submitter_leaving_its_results_held_is_journaled() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 2)]);
    let a = h.submit_ok("p");
    h.finish(a, Exit::Code(0));
    let generation = h.core.generation();
    h.feed(Input::ClientGone { client: 2 });
    assert_eq!(
        h.core.generation(),
        generation,
        "a client that held nothing"
    );
    h.feed(Input::ClientGone { client: 1 });
    assert!(
        h.core.generation() > generation,
        "the submitter, holding a result"
    );
}

#[test]
fn unknown_and_evicted_tasks_are_told_apart() {
    let mut h = Harness::with_pools(
        vec![],
        vec![PoolConfig {
            keep_finished: 1,
            ..task_pool("p", 2)
        }],
    );
    let a = h.submit_ok("p");
    let b = h.submit_ok("p");
    h.finish(a, Exit::Code(0));
    h.finish(b, Exit::Code(0)); // a is evicted: only 1 kept
                                // ... once its submitter's connection has closed (held until then).
    h.feed(Input::ClientGone { client: 1 });
    let (rid, actions) = h.join(vec![a], None);
    match reply_to(rid, &actions) {
        Some(Reply::Error(body)) => {
            assert_eq!(body.code, ErrorCode::NoSuchTask);
            assert!(body.message.contains("evicted"), "{}", body.message);
        }
        other => panic!("{other:?}"),
    }
    let (rid, actions) = h.join(vec![999], None);
    assert_eq!(err_code(reply_to(rid, &actions)), ErrorCode::NoSuchTask);
    assert_eq!(h.task(b).state, TaskState::Exited);
}

#[test]
fn a_waiting_join_sees_the_result_even_when_nothing_is_kept() {
    let mut h = Harness::with_pools(
        vec![],
        vec![PoolConfig {
            keep_finished: 0,
            ..task_pool("p", 1)
        }],
    );
    let a = h.submit_ok("p");
    let (rid, _) = h.join(vec![a], None);
    let pid = h.task(a).pid.unwrap();
    let report: TaskReport = ok(reply_to(
        rid,
        &h.feed(Input::Exited {
            pid,
            exit: Exit::Code(7),
        }),
    ));
    assert_eq!(report.tasks[0].exit, Some(Exit::Code(7)));
    h.feed(Input::ClientGone { client: 1 });
    let (rid, actions) = h.join(vec![a], None);
    assert_eq!(
        err_code(reply_to(rid, &actions)),
        ErrorCode::NoSuchTask,
        "evicted afterwards"
    );
}

#[test]
fn cancel_removes_queued_and_stops_running_tasks() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 1)]);
    let running = h.submit_ok("p");
    let queued = h.submit_ok("p");
    let pid = h.task(running).pid.unwrap();
    let (rid, actions) = h.request(Request::Cancel {
        ids: vec![queued, running],
    });
    let report: CancelReport = ok(reply_to(rid, &actions));
    assert_eq!(report.cancelled, [queued, running]);
    assert_eq!(signals(&actions), [(pid, libc::SIGTERM)]);
    assert!(
        task_spawns(&actions).is_empty(),
        "the queued task never starts"
    );
    assert_eq!(h.task(queued).state, TaskState::Cancelled);
    assert_eq!(h.task(running).state, TaskState::Running, "until it exits");
    assert_eq!(signals(&h.advance(500 * MS)), [(pid, libc::SIGKILL)]);
    h.feed(Input::Exited {
        pid,
        exit: Exit::Signal("SIGKILL".into()),
    });
    assert_eq!(h.task(running).state, TaskState::Cancelled);
    let (rid, actions) = h.request(Request::Cancel { ids: vec![running] });
    let report: CancelReport = ok(reply_to(rid, &actions));
    assert!(report.cancelled.is_empty(), "already ended");
}

#[test]
fn terminate_cancels_everything_and_pool_join_waits_for_the_drain() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 2)]);
    let ids: Vec<TaskId> = (0..4).map(|_| h.submit_ok("p")).collect();
    let (join, _) = h.request(Request::PoolJoin {
        pool: "p".into(),
        timeout_ms: None,
    });
    let (_, actions) = h.request(Request::PoolTerminate { pool: "p".into() });
    assert_eq!(signals(&actions).len(), 2);
    assert!(reply_to(join, &actions).is_none());
    let pid0 = h.task(ids[0]).pid.unwrap();
    let pid1 = h.task(ids[1]).pid.unwrap();
    h.feed(Input::Exited {
        pid: pid0,
        exit: Exit::Signal("SIGTERM".into()),
    });
    let actions = h.feed(Input::Exited {
        pid: pid1,
        exit: Exit::Signal("SIGTERM".into()),
    });
    let report: PoolReport = ok(reply_to(join, &actions));
    assert_eq!((report.pool.running, report.pool.queued), (0, 0));
    for id in ids {
        assert_eq!(h.task(id).state, TaskState::Cancelled);
    }
}

#[test]
fn an_exec_failure_fails_the_task_and_frees_the_slot() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 1)]);
    let (reply, _) = h.submit("p", "/no/such");
    let bad: SubmitReport = ok(reply);
    let next = h.submit_ok("p");
    let bad = h.task(bad.id);
    assert_eq!(bad.state, TaskState::Failed);
    assert_eq!(
        bad.reason.as_deref(),
        Some("exec /no/such: No such file or directory")
    );
    assert_eq!(h.task(next).state, TaskState::Running);
}

#[test]
fn output_is_captured_and_bounded() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 1)]);
    let a = h.submit_ok("p");
    h.feed(Input::Output {
        task: a,
        stream: OutputStream::Stdout,
        data: b"hello ".to_vec(),
    });
    h.feed(Input::Output {
        task: a,
        stream: OutputStream::Stdout,
        data: b"world\n".to_vec(),
    });
    h.feed(Input::Output {
        task: a,
        stream: OutputStream::Stderr,
        data: vec![b'x'; task::CAPTURE_LIMIT + 10],
    });
    let (rid, actions) = h.request(Request::Output {
        id: a,
        stream: OutputStream::Stdout,
    });
    let out: herd_common::protocol::OutputReport = ok(reply_to(rid, &actions));
    assert_eq!(out.data, "hello world\n");
    assert!(!out.truncated);
    let (rid, actions) = h.request(Request::Output {
        id: a,
        stream: OutputStream::Stderr,
    });
    let err: herd_common::protocol::OutputReport = ok(reply_to(rid, &actions));
    assert!(err.truncated);
    assert_eq!(err.data.len(), task::CAPTURE_LIMIT);
    assert_eq!(err.total_bytes, task::CAPTURE_LIMIT as u64 + 10);
}

#[test]
fn shutdown_cancels_the_queue_and_joins_running_tasks() {
    let mut h = Harness::with_pools(
        vec![],
        vec![
            task_pool("p", 1),
            PoolConfig {
                daemon: true,
                ..task_pool("d", 1)
            },
        ],
    );
    let joined = h.submit_ok("p");
    let queued = h.submit_ok("p");
    let daemon = h.submit_ok("d");
    let daemon_pid = h.task(daemon).pid.unwrap();
    let actions = h.feed(Input::Shutdown);
    assert_eq!(
        signals(&actions),
        [(daemon_pid, libc::SIGTERM)],
        "daemon tasks are stopped at once"
    );
    assert_eq!(h.task(queued).state, TaskState::Cancelled);
    let actions = h.finish(joined, Exit::Code(0));
    assert!(
        task_spawns(&actions).is_empty(),
        "nothing new starts during shutdown"
    );
    assert_eq!(
        h.task(joined).state,
        TaskState::Exited,
        "joined, not killed"
    );
    h.feed(Input::Exited {
        pid: daemon_pid,
        exit: Exit::Signal("SIGTERM".into()),
    });
    assert!(h.core.is_finished());
}

/// A small deterministic generator, so the property test needs no extra crate.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// For random sequences of submit / exit / cancel / terminate: never more than
/// `size` run, tasks start in submission order, and every task ends exactly once.
#[test]
fn pool_invariants_hold_for_random_sequences() {
    for seed in 0..200 {
        let mut rng = Lcg(seed);
        let size = 1 + rng.below(4) as u32;
        let mut h = Harness::with_pools(
            vec![],
            vec![PoolConfig {
                max_queue: 1000,
                keep_finished: 1000,
                ..task_pool("p", size)
            }],
        );
        let mut started: Vec<TaskId> = Vec::new();
        let mut submitted: Vec<TaskId> = Vec::new();
        let mut ended = std::collections::HashMap::<TaskId, TaskState>::new();
        for _ in 0..60 {
            let actions = match rng.below(10) {
                0..=4 => {
                    let (reply, actions) = h.submit("p", "/bin/true");
                    let report: SubmitReport = ok(reply);
                    submitted.push(report.id);
                    actions
                }
                5..=7 => {
                    let running: Vec<TaskStatus> = h
                        .all_tasks()
                        .into_iter()
                        .filter(|t| t.pid.is_some())
                        .collect();
                    match running.get(rng.below(running.len().max(1) as u64) as usize) {
                        Some(t) => h.feed(Input::Exited {
                            pid: t.pid.unwrap(),
                            exit: Exit::Code(rng.below(2) as i32),
                        }),
                        None => vec![],
                    }
                }
                8 => match submitted.get(rng.below(submitted.len().max(1) as u64) as usize) {
                    Some(id) => h.request(Request::Cancel { ids: vec![*id] }).1,
                    None => vec![],
                },
                _ => h.advance(600 * MS), // SIGKILL deadlines of cancelled tasks
            };
            started.extend(task_spawns(&actions));
            let tasks = h.all_tasks();
            let running = tasks
                .iter()
                .filter(|t| t.state == TaskState::Running)
                .count();
            assert!(
                running <= size as usize,
                "seed {seed}: {running} running > size {size}"
            );
            for task in tasks.iter().filter(|t| t.state.is_final()) {
                let first = *ended.entry(task.id).or_insert(task.state);
                assert_eq!(
                    first, task.state,
                    "seed {seed}: task {} changed its final state",
                    task.id
                );
            }
        }
        // Starts follow submission order (cancelled queued tasks are skipped).
        let mut order = submitted.iter().filter(|id| started.contains(id));
        for id in &started {
            assert_eq!(Some(id), order.next(), "seed {seed}: FIFO broken");
        }
        // Every started task is started once.
        let mut unique = started.clone();
        unique.dedup();
        assert_eq!(
            unique.len(),
            started.len(),
            "seed {seed}: a task started twice"
        );
    }
}

impl Harness {
    fn all_tasks(&mut self) -> Vec<TaskStatus> {
        let (rid, actions) = self.request(Request::Tasks { pool: None });
        let report: TaskReport = ok(reply_to(rid, &actions));
        report.tasks
    }
}

#[test]
fn a_result_is_held_for_its_submitter_until_it_reads_the_output() {
    let mut h = Harness::with_pools(
        vec![],
        vec![PoolConfig {
            keep_finished: 1,
            ..task_pool("p", 2)
        }],
    );
    let a = h.submit_ok("p");
    let b = h.submit_ok("p");
    h.finish(a, Exit::Code(0));
    h.finish(b, Exit::Code(0)); // past keep_finished, but client 1 has not read a
                                // Another client's tasks ending do not push a out either.
    h.feed(Input::Request {
        id: 3_000,
        client: 2,
        request: Request::Submit {
            pool: "p".into(),
            command: vec!["/bin/true".into()],
            name: None,
            options: Default::default(),
        },
    });
    let c = b + 1;
    h.finish(c, Exit::Code(0));
    assert_eq!(h.task(a).state, TaskState::Exited);
    let output = |h: &mut Harness, client, id| {
        let actions = h.feed(Input::Request {
            id: 5_000 + id,
            client,
            request: Request::Output {
                id,
                stream: OutputStream::Stdout,
            },
        });
        reply_to(5_000 + id, &actions)
    };
    // Someone else reading it does not release it.
    assert!(matches!(output(&mut h, 2, a), Some(Reply::Ok(_))));
    assert!(matches!(output(&mut h, 1, a), Some(Reply::Ok(_))));
    // Read by its submitter: now it goes, as the pool keeps one.
    assert_eq!(err_code(output(&mut h, 1, a)), ErrorCode::NoSuchTask);
    // b is held too, until client 1 disconnects.
    assert!(matches!(output(&mut h, 2, b), Some(Reply::Ok(_))));
    h.feed(Input::ClientGone { client: 1 });
    assert_eq!(err_code(output(&mut h, 2, b)), ErrorCode::NoSuchTask);
    assert_eq!(h.task(c).state, TaskState::Exited);
}

/// Cancelled queued tasks are left in the queue and dropped when `fill`
/// meets them: counts, admission, order and a snapshot must not see them.
#[test]
fn cancelled_queued_tasks_leave_the_queue_for_counts_order_and_snapshots() {
    let mut h = Harness::with_pools(
        vec![],
        vec![PoolConfig {
            max_queue: 4,
            ..task_pool("p", 1)
        }],
    );
    let running = h.submit_ok("p");
    let queued: Vec<TaskId> = (0..4).map(|_| h.submit_ok("p")).collect();
    // The middle ones, then the last and the first (the queue's two ends).
    h.request(Request::Cancel {
        ids: vec![queued[1], queued[2]],
    });
    let pool_status = |h: &mut Harness| h.status().pools.remove(0);
    assert_eq!(pool_status(&mut h).queued, 2);
    // Room for two more: the cancelled ones no longer count against max_queue.
    let more = [h.submit_ok("p"), h.submit_ok("p")];
    assert_eq!(err_code(h.submit("p", "/bin/true").0), ErrorCode::Refused);
    h.request(Request::Cancel {
        ids: vec![more[1], queued[0]],
    });
    assert_eq!(pool_status(&mut h).queued, 2);

    let config = test_config(vec![], vec![task_pool("p", 1)], vec![], vec![]);
    let snapshot = h.core.snapshot(h.now, false);
    assert_eq!(snapshot.pools[0].queue, [queued[3], more[0]]);
    h.core = Supervisor::restore(&config, &snapshot, h.now, false);
    assert_eq!(pool_status(&mut h).queued, 2);
    let started: Vec<TaskId> = [running, queued[3]]
        .iter()
        .flat_map(|id| task_spawns(&h.finish(*id, Exit::Code(0))))
        .collect();
    assert_eq!(started, [queued[3], more[0]]);
    assert!(pool_status(&mut h).queued == 0);
}
