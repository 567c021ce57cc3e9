//! The typed Rust client (`herd_common::api`) against a real herdd.

use crate::harness::Herd;
use herd_common::api::{error_code, AsyncHerd, Herd as Api};
use herd_common::client::ClientError;
use herd_common::protocol::{ErrorCode, OutputStream};
use herd_common::state::{Exit, TaskState};
use std::time::Duration;

const UNITS: &str = r#"
[pool.work]
size = 2

[semaphore.disk]
capacity = 1

[event.go]
"#;

/// More items than one connection may hold unread results of (4096): the
/// map queues the rest as results come in.
#[test]
fn map_of_more_items_than_a_connection_may_hold_unread_gets_them_all() {
    let herd = Herd::start(
        r#"
[pool.wide]
size = 8
keep_finished = 10
max_queue = 10000
"#,
    );
    let mut api = Api::connect(&herd.socket).expect("connect");
    let items: Vec<String> = (0..4200).map(|n| n.to_string()).collect();
    let results = api.map("wide", &["/bin/echo", "{}"], &items).expect("map");
    let expected: Vec<String> = items.iter().map(|item| format!("{item}\n")).collect();
    assert_eq!(results.len(), expected.len(), "a result for every item");
    let wrong: Vec<_> = (results.iter().zip(&expected))
        .filter(|(got, want)| got.stdout != **want)
        .take(3)
        .map(|(got, want)| format!("expected {want:?}, got {got:?}"))
        .collect();
    if !wrong.is_empty() {
        let log = herd.log();
        let notable: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains(" DEBUG "))
            .take(40)
            .collect();
        panic!("every item once, in order: {wrong:#?}\nherdd's log above debug:\n{notable:#?}");
    }
}

#[test]
fn map_returns_ordered_results_and_join_the_exit() {
    let herd = Herd::start(UNITS);
    let mut api = Api::connect(&herd.socket).expect("connect");
    let results = api
        .map(
            "work",
            &["/bin/sh", "-c", "echo \"item $1\"; [ $1 != 2 ]", "sh", "{}"],
            ["1", "2", "3"],
        )
        .expect("map");
    let outputs: Vec<&str> = results.iter().map(|r| r.stdout.as_str()).collect();
    assert_eq!(outputs, ["item 1\n", "item 2\n", "item 3\n"]);
    let successes: Vec<bool> = results.iter().map(|r| r.successful()).collect();
    assert_eq!(successes, [true, false, true]);

    let id = api
        .submit("work", &["/bin/sh", "-c", "echo out; exit 3"])
        .expect("submit");
    let report = api.join(&[id], None).expect("join");
    assert_eq!(report.tasks[0].state, TaskState::Failed);
    assert_eq!(report.tasks[0].exit, Some(Exit::Code(3)));
    let output = api.output(id, OutputStream::Stdout).expect("output");
    assert_eq!(output.data, "out\n");
    let status = api.status(&[]).expect("status");
    assert!(status.pools.iter().any(|pool| pool.name == "work"));
}

#[test]
fn a_slot_is_held_until_dropped_and_events_wake_waiters() {
    let herd = Herd::start(UNITS);
    let mut api = Api::connect(&herd.socket).expect("connect");
    let slot = api
        .acquire("disk", None)
        .expect("acquire")
        .expect("free slot");
    let busy = api
        .acquire("disk", Some(Duration::from_millis(100)))
        .expect("second acquire");
    assert!(busy.is_none(), "a capacity-1 semaphore gave a second slot");
    drop(slot);
    let again = api
        .acquire("disk", Some(Duration::from_secs(10)))
        .expect("acquire after drop");
    again
        .expect("the dropped slot was given back")
        .release()
        .expect("release");

    let waited = api
        .event_wait("go", Some(Duration::from_millis(50)))
        .expect("wait");
    assert!(waited.timed_out && !waited.event.set);
    api.event_set("go").expect("set");
    let waited = api.event_wait("go", None).expect("wait");
    assert!(waited.event.set && !waited.timed_out);

    let events: Vec<_> = Api::connect(&herd.socket)
        .expect("connect")
        .events(false)
        .expect("events")
        .collect::<Result<_, _>>()
        .expect("event lines");
    assert!(
        events
            .iter()
            .any(|line| line.event.to_string().contains("go")),
        "no event about `go` in {events:?}"
    );
}

#[test]
fn errors_name_the_code_and_the_socket() {
    let herd = Herd::start(UNITS);
    let mut api = Api::connect(&herd.socket).expect("connect");
    let error = api.submit("nope", &["/bin/true"]).unwrap_err();
    assert_eq!(error_code(&error), Some(ErrorCode::NoSuchPool), "{error}");

    let missing = herd.path("missing.sock");
    let error = Api::connect(&missing).err().expect("no herdd there");
    assert!(matches!(error, ClientError::Unreachable { .. }), "{error}");
    assert!(error.to_string().contains(&missing.display().to_string()));
}

#[test]
fn the_async_form_runs_on_a_tokio_runtime() {
    let herd = Herd::start(UNITS);
    let socket = herd.socket.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (exit, pools) = runtime.block_on(async move {
        let api = AsyncHerd::connect(&socket).await.expect("connect");
        let id = api
            .submit(
                "work".into(),
                vec!["/bin/sh".into(), "-c".into(), "exit 4".into()],
            )
            .await
            .expect("submit");
        let report = api.join(vec![id], None).await.expect("join");
        let status = api.status(vec![]).await.expect("status");
        (report.tasks[0].exit.clone(), status.pools.len())
    });
    assert_eq!(exit, Some(Exit::Code(4)));
    assert_eq!(pools, 1);
}
