//! Semaphores, events, `sets_event` and `ready = "notify"` in the core.

use super::*;
use herd_common::protocol::{AcquireReport, EventChange, SemaphoreReport};
use herd_config::{EventConfig, SemaphoreConfig};

fn semaphore(name: &str, capacity: u32) -> SemaphoreConfig {
    SemaphoreConfig {
        name: name.into(),
        capacity,
    }
}

fn event(name: &str, set: bool) -> EventConfig {
    EventConfig {
        name: name.into(),
        set,
    }
}

fn payload<T: serde::de::DeserializeOwned>(reply: Option<Reply>) -> T {
    match reply {
        Some(Reply::Ok(value)) => serde_json::from_value(value).expect("payload shape"),
        other => panic!("expected ok, got {other:?}"),
    }
}

impl Harness {
    fn request_from(
        &mut self,
        client: semaphore::ClientId,
        request: Request,
    ) -> (RequestId, Vec<Action>) {
        self.next_request += 1;
        let id = self.next_request;
        (
            id,
            self.feed(Input::Request {
                id,
                client,
                request,
            }),
        )
    }

    fn sem_list(&mut self) -> SemaphoreReport {
        let (id, actions) = self.request(Request::SemList);
        payload(reply_to(id, &actions))
    }

    fn running_count(&mut self) -> usize {
        self.status()
            .units
            .iter()
            .flat_map(|u| &u.instances)
            .filter(|i| i.state == State::Running)
            .count()
    }
}

#[test]
fn a_shared_semaphore_gates_instances_fifo() {
    let mut h = Harness::with_config(
        vec![UnitConfig {
            semaphores: names(&["db"]),
            ..pool("web", 4)
        }],
        vec![],
        vec![semaphore("db", 2)],
        vec![],
    );
    h.boot();
    assert_eq!(h.running_count(), 2);
    let waiting = h.instance("web@2");
    assert_eq!(waiting.state, State::Waiting);
    assert_eq!(
        waiting.reason.as_deref(),
        Some("waiting for semaphore db (2/2 held)")
    );
    let list = h.sem_list();
    assert_eq!(list.semaphores[0].holders, ["web@0", "web@1"]);
    assert_eq!(list.semaphores[0].waiters, ["web@2", "web@3"]);
    // A holder's exit frees its slot for the first in line, in the same step.
    let actions = h.exit("web@0", Exit::Code(1));
    let started: Vec<u32> = spawns(&actions).iter().map(|(id, _)| id.index).collect();
    assert_eq!(started, [2]);
    assert_eq!(h.state("web@3"), State::Waiting);
    assert_eq!(h.state("web@0"), State::Backoff);
}

#[test]
fn stopping_a_waiter_gives_up_its_place() {
    let mut h = Harness::with_config(
        vec![UnitConfig {
            semaphores: names(&["db"]),
            ..pool("web", 3)
        }],
        vec![],
        vec![semaphore("db", 1)],
        vec![],
    );
    h.boot();
    h.request(Request::Stop {
        names: names(&["web@1"]),
        wait: false,
    });
    assert_eq!(h.sem_list().semaphores[0].waiters, ["web@2"]);
    let actions = h.exit("web@0", Exit::Code(1));
    assert_eq!(spawns(&actions)[0].0.index, 2);
}

#[test]
fn pool_tasks_hold_semaphore_slots() {
    let mut h = Harness::with_config(
        vec![],
        vec![PoolConfig {
            semaphores: names(&["db"]),
            ..task_pool("p", 3)
        }],
        vec![semaphore("db", 1)],
        vec![],
    );
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (id, actions) = h.request(Request::Submit {
            pool: "p".into(),
            command: vec!["/bin/true".into()],
            name: None,
            options: Default::default(),
        });
        let report: herd_common::protocol::SubmitReport = payload(reply_to(id, &actions));
        ids.push(report.id);
    }
    let (id, actions) = h.request(Request::Tasks { pool: None });
    let tasks: TaskReport = payload(reply_to(id, &actions));
    let states: Vec<TaskState> = tasks.tasks.iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        [TaskState::Running, TaskState::Queued, TaskState::Queued]
    );
    assert!(tasks.tasks[1]
        .reason
        .as_deref()
        .unwrap()
        .contains("semaphore db"));
    let pid = tasks.tasks[0].pid.unwrap();
    let actions = h.feed(Input::Exited {
        pid,
        exit: Exit::Code(0),
    });
    assert_eq!(task_spawns(&actions), [ids[1]]);
}

#[test]
fn client_slots_are_fifo_and_die_with_the_connection() {
    let mut h = Harness::with_config(vec![], vec![], vec![semaphore("s", 1)], vec![]);
    let acquire = |timeout_ms| Request::SemAcquire {
        name: "s".into(),
        timeout_ms,
        pid: Some(42),
    };
    let (first, actions) = h.request_from(10, acquire(None));
    let granted: AcquireReport = payload(reply_to(first, &actions));
    assert!(granted.acquired);
    let (second, actions) = h.request_from(11, acquire(None));
    assert!(reply_to(second, &actions).is_none(), "waits in line");
    let (third, _) = h.request_from(12, acquire(Some(100)));
    assert_eq!(h.sem_list().semaphores[0].holders, ["client 10 (pid 42)"]);
    // The holder's connection closes (herdctl was SIGKILLed): the next in line gets it.
    let actions = h.feed(Input::ClientGone { client: 10 });
    let granted: AcquireReport = payload(reply_to(second, &actions));
    assert!(granted.acquired);
    // The third gives up at its timeout and leaves the line.
    let timed_out: AcquireReport = payload(reply_to(third, &h.advance(100 * MS)));
    assert!(!timed_out.acquired);
    assert!(h.sem_list().semaphores[0].waiters.is_empty());
    // An explicit release.
    let (id, actions) = h.request_from(11, Request::SemRelease { name: "s".into() });
    assert!(matches!(reply_to(id, &actions), Some(Reply::Ok(_))));
    assert!(h.sem_list().semaphores[0].holders.is_empty());
    let (id, actions) = h.request_from(11, acquire(None));
    assert!(payload::<AcquireReport>(reply_to(id, &actions)).acquired);
    let (id, actions) = h.request_from(
        1,
        Request::SemAcquire {
            name: "nope".into(),
            timeout_ms: None,
            pid: None,
        },
    );
    assert!(
        matches!(reply_to(id, &actions), Some(Reply::Error(e)) if e.code == ErrorCode::NoSuchSemaphore)
    );
}

/// Random exits, stops, starts, client acquisitions and disconnects: holders
/// never exceed capacity, and a slot is held only by something alive.
#[test]
fn semaphore_invariants_hold_for_random_sequences() {
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
    for seed in 0..150 {
        let mut rng = Lcg(seed);
        let capacity = 1 + rng.below(3) as u32;
        let mut h = Harness::with_config(
            vec![UnitConfig {
                semaphores: names(&["s"]),
                restart_delay: Duration::ZERO,
                ..pool("web", 5)
            }],
            vec![],
            vec![semaphore("s", capacity)],
            vec![],
        );
        h.boot();
        for _ in 0..80 {
            let index = rng.below(5);
            let name = format!("web@{index}");
            match rng.below(6) {
                0 | 1 => {
                    if let Some(pid) = h.instance(&name).pid {
                        h.feed(Input::Exited {
                            pid,
                            exit: Exit::Signal("SIGKILL".into()),
                        });
                    }
                }
                2 => drop(h.request(Request::Stop {
                    names: vec![name],
                    wait: false,
                })),
                3 => drop(h.request(Request::Start {
                    names: vec![name],
                    wait: false,
                })),
                4 => {
                    let request = Request::SemAcquire {
                        name: "s".into(),
                        timeout_ms: Some(50),
                        pid: None,
                    };
                    h.request_from(100 + rng.below(3), request);
                }
                _ => drop(h.feed(Input::ClientGone {
                    client: 100 + rng.below(3),
                })),
            }
            h.advance(60 * MS);
            let list = h.sem_list();
            let s = &list.semaphores[0];
            assert!(
                s.holders.len() <= capacity as usize,
                "seed {seed}: {} holders > {capacity}",
                s.holders.len()
            );
            let status = h.status();
            for holder in &s.holders {
                if holder.starts_with("web@") {
                    let instance = status.units[0]
                        .instances
                        .iter()
                        .find(|i| &i.name == holder)
                        .unwrap();
                    assert!(
                        instance.pid.is_some(),
                        "seed {seed}: {holder} holds a slot without a process"
                    );
                }
            }
            for instance in &status.units[0].instances {
                if instance.pid.is_some() {
                    assert!(
                        s.holders.contains(&instance.name),
                        "seed {seed}: {} runs without a slot",
                        instance.name
                    );
                }
            }
        }
    }
}

#[test]
fn wait_events_gate_a_unit_until_set() {
    let mut h = Harness::with_config(
        vec![UnitConfig {
            wait_events: names(&["go"]),
            ..service("db")
        }],
        vec![],
        vec![],
        vec![event("go", false)],
    );
    h.boot();
    let db = h.instance("db");
    assert_eq!(db.state, State::Waiting);
    assert_eq!(db.reason.as_deref(), Some("waiting for event go"));
    let (wait, _) = h.request(Request::EventWait {
        name: "go".into(),
        timeout_ms: None,
    });
    let (id, actions) = h.request(Request::EventSet { name: "go".into() });
    let change: EventChange = payload(reply_to(id, &actions));
    assert!(change.event.set);
    let woke: EventChange = payload(reply_to(wait, &actions));
    assert!(woke.event.set && !woke.timed_out);
    assert_eq!(spawns(&actions).len(), 1);
    assert_eq!(h.state("db"), State::Running);
    // Clearing it later does not stop what runs; it gates the next start.
    h.request(Request::EventClear { name: "go".into() });
    assert_eq!(h.state("db"), State::Running);
    let (wait, _) = h.request(Request::EventWait {
        name: "go".into(),
        timeout_ms: Some(200),
    });
    let timed_out: EventChange = payload(reply_to(wait, &h.advance(200 * MS)));
    assert!(timed_out.timed_out && !timed_out.event.set);
}

#[test]
fn sets_event_follows_a_service_through_start_crash_and_restart() {
    let mut h = Harness::with_config(
        vec![
            UnitConfig {
                sets_event: Some("db-ready".into()),
                ready: Ready::Notify,
                ..service("db")
            },
            UnitConfig {
                wait_events: names(&["db-ready"]),
                ..service("web")
            },
        ],
        vec![],
        vec![],
        vec![event("db-ready", false)],
    );
    h.boot();
    let is_set = |h: &mut Harness| {
        let (id, actions) = h.request(Request::EventList);
        let report: herd_common::protocol::EventReport = payload(reply_to(id, &actions));
        report.events[0].set
    };
    assert!(!is_set(&mut h));
    assert_eq!(h.state("web"), State::Waiting);
    let pid = h.instance("db").pid.unwrap();
    h.feed(Input::Notify {
        pid,
        pgid: Some(pid),
        fields: vec![("READY".into(), "1".into())],
    });
    assert!(is_set(&mut h));
    assert_eq!(h.state("web"), State::Running, "gated unit starts once set");
    h.exit("db", Exit::Code(1));
    assert!(!is_set(&mut h), "cleared when the service fails");
    h.advance(100 * MS);
    assert_eq!(h.state("db"), State::Starting);
    let pid = h.instance("db").pid.unwrap();
    h.feed(Input::Notify {
        pid,
        pgid: Some(pid),
        fields: vec![("READY".into(), "1".into())],
    });
    assert!(is_set(&mut h), "set again after the restart is ready");
    h.request(Request::Stop {
        names: names(&["db"]),
        wait: false,
    });
    h.exit("db", Exit::Signal("SIGTERM".into()));
    assert!(!is_set(&mut h), "cleared when stopped");
}

#[test]
fn notify_readiness_comes_from_the_unit_and_times_out() {
    let mut h = Harness::new(vec![UnitConfig {
        ready: Ready::Notify,
        start_timeout: 1000 * MS,
        ..service("db")
    }]);
    h.boot();
    let pid = h.instance("db").pid.unwrap();
    // A stranger's READY=1 is ignored.
    h.feed(Input::Notify {
        pid: 9999,
        pgid: Some(9999),
        fields: vec![("READY".into(), "1".into())],
    });
    assert_eq!(h.state("db"), State::Starting);
    // A helper in its process group (systemd-notify run by a script) counts.
    h.feed(Input::Notify {
        pid: pid + 1000,
        pgid: Some(pid),
        fields: vec![("STATUS".into(), "warming up".into())],
    });
    assert_eq!(
        h.instance("db").notify_status.as_deref(),
        Some("warming up")
    );
    assert_eq!(h.state("db"), State::Starting);
    // No READY=1 within start_timeout: stopped, then failed with the reason.
    let actions = h.advance(1000 * MS);
    assert_eq!(signals(&actions), [(pid, libc::SIGTERM)]);
    h.exit("db", Exit::Signal("SIGTERM".into()));
    let db = h.instance("db");
    assert_eq!(db.state, State::Failed);
    assert!(db.reason.unwrap().contains("READY=1"));
}

/// Over a re-exec or crash a client's slot becomes its process's: kept while
/// that process lives, taken back by a new connection of it, released when
/// it ends; a waiting client's place is not carried over.
#[test]
fn a_client_slot_outlives_herdd_with_its_process() {
    let mut h = Harness::with_config(vec![], vec![], vec![semaphore("s", 1)], vec![]);
    let acquire = |pid| Request::SemAcquire {
        name: "s".into(),
        timeout_ms: None,
        pid: Some(pid),
    };
    let (id, actions) = h.request_from(10, acquire(42));
    assert!(payload::<AcquireReport>(reply_to(id, &actions)).acquired);
    let (waiting, actions) = h.request_from(11, acquire(43));
    assert!(reply_to(waiting, &actions).is_none());
    let snapshot = h.core.snapshot(h.now, true);
    let config = test_config(vec![], vec![], vec![semaphore("s", 1)], vec![]);
    h.core = Supervisor::restore(&config, &snapshot, h.now, false);
    assert_eq!(h.core.carried_holders(), [42]);
    assert_eq!(
        h.sem_list().semaphores[0].holders,
        ["pid 42 (kept over a restart of herdd)"]
    );
    assert!(h.sem_list().semaphores[0].waiters.is_empty());
    // Another process waits; the holder's new connection takes its slot back.
    let (other, actions) = h.request_from(1, acquire(43));
    assert!(reply_to(other, &actions).is_none(), "still held");
    let (again, actions) = h.request_from(2, acquire(42));
    assert!(payload::<AcquireReport>(reply_to(again, &actions)).acquired);
    assert_eq!(h.sem_list().semaphores[0].holders, ["client 2 (pid 42)"]);
    // Gone without reconnecting: its end (reported by the shell) frees it.
    let snapshot = h.core.snapshot(h.now, true);
    h.core = Supervisor::restore(&config, &snapshot, h.now, false);
    let (other, actions) = h.request_from(1, acquire(43));
    assert!(reply_to(other, &actions).is_none());
    let actions = h.feed(Input::Exited {
        pid: 42,
        exit: herd_common::state::Exit::Unknown,
    });
    assert!(payload::<AcquireReport>(reply_to(other, &actions)).acquired);
    assert_eq!(h.sem_list().semaphores[0].holders, ["client 1 (pid 43)"]);
}

/// A client's leaving changes the journal only when it held a slot or had
/// a place in line: a client that only read (one `herdctl status`) is no
/// reason for a journal write.
#[test]
fn a_client_leaving_is_journaled_only_when_it_held_or_waited() {
    let mut h = Harness::with_config(vec![], vec![], vec![semaphore("s", 1)], vec![]);
    let acquire = Request::SemAcquire {
        name: "s".into(),
        timeout_ms: None,
        pid: Some(42),
    };
    h.request_from(10, Request::SemList);
    h.request_from(11, acquire.clone());
    h.request_from(12, acquire);
    let generation = h.core.generation();
    h.feed(Input::ClientGone { client: 10 });
    assert_eq!(h.core.generation(), generation, "a client that only read");
    h.feed(Input::ClientGone { client: 12 });
    assert!(h.core.generation() > generation, "a place in line");
    let generation = h.core.generation();
    h.feed(Input::ClientGone { client: 11 });
    assert!(h.core.generation() > generation, "a slot");
    assert!(h.sem_list().semaphores[0].holders.is_empty());
}
