//! `submit-batch` and `results`: many tasks in one request, their results
//! handed to the connection that submitted them as they end, held past
//! `keep_finished`, capped per connection, carried over a re-exec.

use super::*;
use herd_common::protocol::{
    BatchReport, ResultsReport, SubmitOptions, SubmitReport, MAX_UNREAD_RESULTS,
};

fn batch(pool: &str, programs: &[&str]) -> Request {
    Request::SubmitBatch {
        pool: pool.into(),
        commands: programs.iter().map(|p| vec![p.to_string()]).collect(),
        options: Default::default(),
    }
}

fn results(ids: Vec<TaskId>, timeout_ms: Option<u64>) -> Request {
    Request::Results {
        ids,
        timeout_ms,
        linger_ms: None,
    }
}

impl Harness {
    /// `request` from `client`: the reply, if it came in this step.
    fn ask(&mut self, client: ClientId, request: Request) -> (RequestId, Option<Reply>) {
        self.next_request += 1;
        let id = self.next_request;
        let actions = self.feed(Input::Request {
            id,
            client,
            request,
        });
        (id, reply_to(id, &actions))
    }

    fn ok_batch(&mut self, client: ClientId, pool: &str, n: usize) -> Vec<TaskId> {
        let programs = vec!["/bin/true"; n];
        let report: BatchReport = payload(self.ask(client, batch(pool, &programs)).1);
        assert_eq!(report.refused, None);
        report.ids
    }

    fn end(&mut self, id: TaskId, exit: Exit) -> Vec<Action> {
        let pid = self.task_status(id).pid.expect("task runs");
        self.feed(Input::Exited { pid, exit })
    }

    fn task_status(&mut self, id: TaskId) -> herd_common::protocol::TaskStatus {
        let report: TaskReport = payload(self.ask(1, Request::Tasks { pool: None }).1);
        report.tasks.into_iter().find(|t| t.id == id).expect("task")
    }

    fn task_ids(&mut self) -> Vec<TaskId> {
        let report: TaskReport = payload(self.ask(1, Request::Tasks { pool: None }).1);
        report.tasks.iter().map(|t| t.id).collect()
    }
}

fn payload<T: serde::de::DeserializeOwned>(reply: Option<Reply>) -> T {
    match reply {
        Some(Reply::Ok(payload)) => serde_json::from_value(payload).expect("payload shape"),
        other => panic!("expected an ok reply, got {other:?}"),
    }
}

fn error(reply: Option<Reply>) -> ErrorBody {
    match reply {
        Some(Reply::Error(body)) => body,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

#[test]
fn a_batch_queues_every_command_in_order_or_none_when_one_is_bad() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 1)]);
    let bad = error(h.ask(1, batch("p", &["/bin/true", "", "/bin/true"])).1);
    assert_eq!(bad.code, ErrorCode::BadRequest);
    assert_eq!(bad.message, "command 2: a task needs a command");
    assert_eq!(
        error(h.ask(1, batch("p", &[])).1).code,
        ErrorCode::BadRequest
    );
    assert_eq!(
        error(h.ask(1, batch("q", &["/bin/true"])).1).code,
        ErrorCode::NoSuchPool
    );
    let unique = Request::SubmitBatch {
        pool: "p".into(),
        commands: vec![vec!["/bin/true".into()]],
        options: SubmitOptions {
            unique: true,
            ..Default::default()
        },
    };
    assert_eq!(error(h.ask(1, unique).1).code, ErrorCode::BadRequest);
    assert!(h.task_ids().is_empty(), "nothing was queued");

    let ids = h.ok_batch(1, "p", 3);
    assert_eq!(ids, [1, 2, 3]);
    let states: Vec<TaskState> = ids.iter().map(|id| h.task_status(*id).state).collect();
    use TaskState::*;
    assert_eq!(states, [Running, Queued, Queued]);
}

#[test]
fn a_full_queue_takes_the_commands_that_fit_and_says_why_not_the_rest() {
    let mut h = Harness::with_pools(
        vec![],
        vec![PoolConfig {
            max_queue: 2,
            ..task_pool("p", 1)
        }],
    );
    let report: BatchReport = payload(h.ask(1, batch("p", &["/bin/true"; 5])).1);
    assert_eq!(report.ids, [1, 2, 3], "one runs, two queue");
    let why = report.refused.expect("the rest was refused");
    assert!(why.contains("is full"), "{why}");
    let refused = error(h.ask(1, batch("p", &["/bin/true"])).1);
    assert_eq!(refused.code, ErrorCode::Refused);
    assert_eq!(h.task_ids(), [1, 2, 3]);
}

#[test]
fn results_waits_for_a_task_to_end_and_brings_its_stdout() {
    let mut h = Harness::with_pools(vec![], vec![task_pool("p", 2)]);
    let ids = h.ok_batch(1, "p", 2);
    let (waiting, reply) = h.ask(1, results(vec![], Some(5_000)));
    assert!(reply.is_none(), "nothing has ended yet");
    h.feed(Input::Output {
        task: ids[1],
        stream: OutputStream::Stdout,
        data: b"two\n".to_vec(),
    });
    let actions = h.end(ids[1], Exit::Code(3));
    let report: ResultsReport = payload(reply_to(waiting, &actions));
    assert_eq!(report.results.len(), 1);
    let result = &report.results[0];
    assert_eq!(
        (result.task.id, result.task.state),
        (ids[1], TaskState::Failed)
    );
    assert_eq!(result.task.exit, Some(Exit::Code(3)));
    assert_eq!(result.stdout.data, "two\n");
    assert_eq!((report.outstanding, report.timed_out), (1, false));

    // Another client's results never carry ours.
    let (_, other) = h.ask(2, results(vec![], None));
    let other: ResultsReport = payload(other);
    assert!(other.results.is_empty() && other.outstanding == 0);

    let (waiting, reply) = h.ask(1, results(vec![], Some(1_000)));
    assert!(reply.is_none());
    let actions = h.advance(Duration::from_millis(1_000));
    let report: ResultsReport = payload(reply_to(waiting, &actions));
    assert!(report.timed_out && report.results.is_empty());
    assert_eq!(report.outstanding, 1);
}

#[test]
fn results_are_held_past_keep_finished_and_read_once() {
    let mut h = Harness::with_pools(
        vec![],
        vec![PoolConfig {
            keep_finished: 1,
            ..task_pool("p", 4)
        }],
    );
    let ids = h.ok_batch(1, "p", 4);
    for id in &ids {
        h.end(*id, Exit::Code(0));
    }
    // Another client's tasks ending do not push ours out either.
    let theirs = h.ok_batch(2, "p", 2);
    for id in &theirs {
        h.end(*id, Exit::Code(0));
    }
    let report: ResultsReport = payload(h.ask(1, results(vec![], None)).1);
    let got: Vec<TaskId> = report.results.iter().map(|r| r.task.id).collect();
    assert_eq!(got, ids, "every one, lowest id first");
    assert_eq!(report.outstanding, 0);
    let again: ResultsReport = payload(h.ask(1, results(vec![], None)).1);
    assert!(again.results.is_empty(), "read once");
    // Read, ours go as the pool keeps only one: client 2's are still held.
    let kept = h.task_ids();
    assert!(ids.iter().all(|id| !kept.contains(id)), "{kept:?}");
    assert!(theirs.iter().all(|id| kept.contains(id)), "{kept:?}");
}

#[test]
fn a_connection_may_hold_only_so_many_ended_results_its_pool_let_go_of() {
    let size = MAX_UNREAD_RESULTS + 1;
    let mut h = Harness::with_pools(
        vec![],
        vec![PoolConfig {
            keep_finished: 1,
            ..task_pool("p", size as u32)
        }],
    );
    // Submitted and unread, but not ended: the pool bounds those, not the cap.
    let mut ids = h.ok_batch(1, "p", 1000);
    while ids.len() < size {
        ids.extend(h.ok_batch(1, "p", 1000.min(size - ids.len())));
    }
    let report: TaskReport = payload(h.ask(2, Request::Tasks { pool: None }).1);
    for pid in report.tasks.iter().filter_map(|t| t.pid) {
        h.feed(Input::Exited {
            pid,
            exit: Exit::Code(0),
        });
    }
    // All ended; the pool keeps one, so the cap's worth are held for client 1 alone.
    let report = error(h.ask(1, batch("p", &["/bin/true"; 20])).1);
    assert_eq!(report.code, ErrorCode::Refused);
    assert!(
        report.message.contains("no longer keeps"),
        "{}",
        report.message
    );
    let single = Request::Submit {
        pool: "p".into(),
        command: vec!["/bin/true".into()],
        name: None,
        options: Default::default(),
    };
    let refused = error(h.ask(1, single.clone()).1);
    assert_eq!(refused.code, ErrorCode::Refused);
    let _: SubmitReport = payload(h.ask(2, single.clone()).1);
    // Reading results makes room again.
    let report: ResultsReport = payload(h.ask(1, results(vec![], None)).1);
    assert!(!report.results.is_empty());
    let _: SubmitReport = payload(h.ask(1, single).1);
}

#[test]
fn held_results_are_carried_over_a_reexec_and_collected_by_id() {
    let pools = || {
        vec![PoolConfig {
            keep_finished: 1,
            ..task_pool("p", 4)
        }]
    };
    let mut h = Harness::with_pools(vec![], pools());
    let ids = h.ok_batch(1, "p", 4);
    h.end(ids[0], Exit::Code(0));
    h.end(ids[1], Exit::Code(0));
    let (_, reply) = h.ask(1, Request::DaemonReexec);
    assert!(matches!(reply, Some(Reply::Ok(_))));
    let snapshot = h.core.snapshot(h.now, true);
    let text = serde_json::to_string(&snapshot).unwrap();
    let snapshot = serde_json::from_str(&text).unwrap();
    let config = test_config(vec![], pools(), vec![], vec![]);
    h.core = Supervisor::restore(&config, &snapshot, h.now, false);
    h.feed(Input::Boot);
    // More tasks end after the re-exec: ours are not evicted meanwhile.
    h.end(ids[2], Exit::Code(0));
    let other = h.ok_batch(9, "p", 1);
    h.end(other[0], Exit::Code(0));
    // The new connection has nothing of its own: it names them.
    let nothing: ResultsReport = payload(h.ask(5, results(vec![], None)).1);
    assert_eq!(nothing.outstanding, 0);
    let report: ResultsReport = payload(h.ask(5, results(ids.clone(), None)).1);
    let got: Vec<TaskId> = report.results.iter().map(|r| r.task.id).collect();
    assert_eq!(got, &ids[..3]);
    assert_eq!(report.outstanding, 1, "the last one still runs");
    let actions = h.end(ids[3], Exit::Code(0));
    assert!(reply_to(0, &actions).is_none());
    let last: ResultsReport = payload(h.ask(5, results(vec![], None)).1);
    assert_eq!(last.results[0].task.id, ids[3]);
}

#[test]
fn carried_results_nobody_collects_are_let_go() {
    let pools = || {
        vec![PoolConfig {
            keep_finished: 0,
            ..task_pool("p", 2)
        }]
    };
    let mut h = Harness::with_pools(vec![], pools());
    let ids = h.ok_batch(1, "p", 1);
    h.end(ids[0], Exit::Code(0));
    let snapshot = h.core.snapshot(h.now, true);
    let config = test_config(vec![], pools(), vec![], vec![]);
    h.core = Supervisor::restore(&config, &snapshot, h.now, false);
    h.feed(Input::Boot);
    assert_eq!(h.task_ids(), ids, "held for whoever collects it");
    h.now += crate::core::held::CARRIED_FOR;
    assert!(h.task_ids().is_empty(), "let go after a while");
}
