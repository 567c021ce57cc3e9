//! Core tests: time is an input, so none of these sleep or spawn anything.

use super::*;
use herd_common::protocol::{OutputStream, TaskReport};
use herd_common::protocol::{Request, StatusReport};
use herd_common::state::TaskState;
use herd_common::state::{Exit, State};
use herd_config::{HerdSettings, PoolConfig, Ready, RestartPolicy, UnitConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;

const MS: Duration = Duration::from_millis(1);

fn service(name: &str) -> UnitConfig {
    UnitConfig {
        name: name.into(),
        kind: UnitKind::Service,
        command: vec!["/bin/sleep".into(), "{instance}00".into()],
        instances: None,
        env: BTreeMap::from([("PORT".into(), "80{instance}".into())]),
        cwd: None,
        user: None,
        group: None,
        umask: None,
        rlimits: BTreeMap::new(),
        confinement: Default::default(),
        after: vec![],
        ready: Ready::Started,
        restart: RestartPolicy::OnFailure,
        restart_delay: 100 * MS,
        restart_delay_max: 1000 * MS,
        start_limit: 5,
        start_interval: 10_000 * MS,
        stop_signal: libc::SIGTERM,
        stop_timeout: 500 * MS,
        daemon: true,
        autostart: true,
        semaphores: vec![],
        wait_events: vec![],
        sets_event: None,
        start_timeout: 90_000 * MS,
        log: Default::default(),
        env_files: vec![],
        sockets: vec![],
        watchdog: None,
        max_unavailable: 1,
        timer: None,
        update: None,
        health: None,
        on_failure: Default::default(),
    }
}

fn task(name: &str) -> UnitConfig {
    UnitConfig {
        kind: UnitKind::Task,
        restart: RestartPolicy::Never,
        daemon: false,
        ..service(name)
    }
}

fn pool(name: &str, instances: u32) -> UnitConfig {
    UnitConfig {
        instances: Some(instances),
        ..service(name)
    }
}

/// A config with the test's units, pools, semaphores and events.
fn test_config(
    units: Vec<UnitConfig>,
    pools: Vec<PoolConfig>,
    semaphores: Vec<herd_config::SemaphoreConfig>,
    events: Vec<herd_config::EventConfig>,
) -> Config {
    Config {
        path: PathBuf::from("/test/herd.toml"),
        herd: HerdSettings {
            socket: PathBuf::from("/test/herd.sock"),
            log_dir: PathBuf::from("/test/log"),
            state_dir: PathBuf::from("/test/state"),
            dbus: "off".into(),
            shutdown_timeout: 3000 * MS,
            control_group: None,
            log_max_size: herd_config::DEFAULT_LOG_MAX_SIZE,
            log_keep: herd_config::DEFAULT_LOG_KEEP,
            metrics_listen: None,
            journal_socket: herd_config::DEFAULT_JOURNAL_SOCKET.into(),
        },
        units,
        pools,
        semaphores,
        events,
        sockets: vec![],
    }
}

/// A task pool of `size` with roomy limits.
pub(super) fn task_pool(name: &str, size: u32) -> PoolConfig {
    PoolConfig {
        name: name.into(),
        size,
        max_queue: 100,
        keep_finished: 100,
        env: BTreeMap::new(),
        cwd: None,
        user: None,
        group: None,
        umask: None,
        rlimits: BTreeMap::new(),
        stop_signal: libc::SIGTERM,
        stop_timeout: 500 * MS,
        daemon: false,
        semaphores: vec![],
        confinement: Default::default(),
        task_defaults: Default::default(),
        env_files: vec![],
        on_failure: Default::default(),
    }
}

/// A supervisor plus a fake clock and a fake pid allocator.
struct Harness {
    core: Supervisor,
    now: Instant,
    next_pid: u32,
    next_request: RequestId,
}

impl Harness {
    fn new(units: Vec<UnitConfig>) -> Self {
        Harness::with_pools(units, vec![])
    }

    fn with_pools(units: Vec<UnitConfig>, pools: Vec<PoolConfig>) -> Self {
        Harness::with_config(units, pools, vec![], vec![])
    }

    fn with_config(
        units: Vec<UnitConfig>,
        pools: Vec<PoolConfig>,
        semaphores: Vec<herd_config::SemaphoreConfig>,
        events: Vec<herd_config::EventConfig>,
    ) -> Self {
        let config = test_config(units, pools, semaphores, events);
        Harness {
            core: Supervisor::new(&config),
            now: Instant::now(),
            next_pid: 100,
            next_request: 0,
        }
    }

    /// Feeds an input and answers every spawn like a shell whose spawns succeed,
    /// unless the program is `/no/such`. Returns all actions except spawns.
    fn feed(&mut self, input: Input) -> Vec<Action> {
        let mut seen = Vec::new();
        let next_pid = &mut self.next_pid;
        self.core.drive(self.now, input, |action| match action {
            Action::Spawn { owner, spec } if spec.argv[0] == "/no/such" => {
                Some(Input::SpawnFailed {
                    owner,
                    error: "exec /no/such: No such file or directory".into(),
                })
            }
            Action::Spawn { owner, spec } => {
                *next_pid += 1;
                seen.push(Action::Spawn {
                    owner: owner.clone(),
                    spec,
                });
                Some(Input::Spawned {
                    owner,
                    pid: *next_pid,
                })
            }
            Action::RunHook {
                subject,
                spec,
                tail,
            } => {
                let owner = Owner::Hook(subject.clone());
                let input = if spec.argv[0] == "/no/such" {
                    let error = "exec /no/such: No such file or directory".to_string();
                    Input::SpawnFailed { owner, error }
                } else {
                    *next_pid += 1;
                    Input::Spawned {
                        owner,
                        pid: *next_pid,
                    }
                };
                seen.push(Action::RunHook {
                    subject,
                    spec,
                    tail,
                });
                Some(input)
            }
            other => {
                seen.push(other);
                None
            }
        });
        seen
    }

    fn boot(&mut self) -> Vec<Action> {
        self.feed(Input::Boot)
    }

    fn advance(&mut self, by: Duration) -> Vec<Action> {
        self.now += by;
        self.feed(Input::Tick)
    }

    fn request(&mut self, request: Request) -> (RequestId, Vec<Action>) {
        self.next_request += 1;
        let id = self.next_request;
        (
            id,
            self.feed(Input::Request {
                id,
                client: 1,
                request,
            }),
        )
    }

    fn exit(&mut self, name: &str, exit: Exit) -> Vec<Action> {
        let pid = self.instance(name).pid.expect("instance has a pid");
        self.feed(Input::Exited { pid, exit })
    }

    fn status(&mut self) -> StatusReport {
        let (id, actions) = self.request(Request::Status {
            names: vec![],
            usage: true,
        });
        let reply = reply_to(id, &actions).expect("status replies at once");
        match reply {
            Reply::Ok(payload) => serde_json::from_value(payload).unwrap(),
            Reply::Error(err) => panic!("status failed: {err}"),
        }
    }

    fn instance(&mut self, name: &str) -> herd_common::protocol::InstanceStatus {
        self.status()
            .units
            .into_iter()
            .flat_map(|u| u.instances)
            .find(|i| i.name == name)
            .unwrap_or_else(|| panic!("no instance {name}"))
    }

    fn state(&mut self, name: &str) -> State {
        self.instance(name).state
    }
}

fn reply_to(id: RequestId, actions: &[Action]) -> Option<Reply> {
    actions.iter().find_map(|a| match a {
        Action::Reply { id: got, reply } if *got == id => Some(reply.clone()),
        _ => None,
    })
}

fn spawns(actions: &[Action]) -> Vec<(InstanceId, SpawnSpec)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Spawn {
                owner: Owner::Instance(instance),
                spec,
            } => Some((instance.clone(), SpawnSpec::clone(spec))),
            _ => None,
        })
        .collect()
}

fn task_spawns(actions: &[Action]) -> Vec<TaskId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Spawn {
                owner: Owner::Task(id),
                ..
            } => Some(*id),
            _ => None,
        })
        .collect()
}

fn signals(actions: &[Action]) -> Vec<(u32, i32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Signal { pid, signal } => Some((*pid, *signal)),
            _ => None,
        })
        .collect()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn boot_spawns_every_instance_with_substitution() {
    let mut h = Harness::new(vec![pool("web", 3), service("db")]);
    let spawned = spawns(&h.boot());
    assert_eq!(spawned.len(), 4);
    let (id, spec) = &spawned
        .iter()
        .find(|(id, _)| id.unit == "web" && id.index == 2)
        .unwrap();
    assert_eq!(id.index, 2);
    assert_eq!(spec.argv, ["/bin/sleep", "200"]);
    assert_eq!(spec.env["PORT"], "802");
    assert_eq!(spec.env["HERD_INSTANCE"], "2");
    assert_eq!(spec.env["HERD_UNIT"], "web");
    assert_eq!(h.state("web@2"), State::Running);
    assert_eq!(h.state("db"), State::Running);
    assert_eq!(
        h.core.next_deadline(),
        None,
        "nothing to wake up for when all run"
    );
}

#[test]
fn autostart_false_stays_inactive() {
    let mut h = Harness::new(vec![UnitConfig {
        autostart: false,
        ..service("db")
    }]);
    assert!(spawns(&h.boot()).is_empty());
    assert_eq!(h.state("db"), State::Inactive);
}

#[test]
fn ready_after_a_delay() {
    let mut h = Harness::new(vec![UnitConfig {
        ready: Ready::After(2000 * MS),
        ..service("db")
    }]);
    h.boot();
    assert_eq!(h.state("db"), State::Starting);
    assert_eq!(h.core.next_deadline(), Some(h.now + 2000 * MS));
    h.advance(1999 * MS);
    assert_eq!(h.state("db"), State::Starting);
    h.advance(MS);
    assert_eq!(h.state("db"), State::Running);
}

#[test]
fn an_exit_before_ready_is_a_crash() {
    let mut h = Harness::new(vec![UnitConfig {
        ready: Ready::After(2000 * MS),
        ..service("db")
    }]);
    h.boot();
    h.exit("db", Exit::Code(1));
    assert_eq!(h.state("db"), State::Backoff);
}

#[test]
fn crash_backs_off_then_restarts_with_growing_delays() {
    let mut h = Harness::new(vec![service("db")]);
    h.boot();
    let first_pid = h.instance("db").pid;
    h.exit("db", Exit::Signal("SIGKILL".into()));
    let db = h.instance("db");
    assert_eq!(db.state, State::Backoff);
    assert_eq!(db.last_exit, Some(Exit::Signal("SIGKILL".into())));
    assert_eq!(h.core.next_deadline(), Some(h.now + 100 * MS));
    assert!(spawns(&h.advance(99 * MS)).is_empty());
    assert_eq!(spawns(&h.advance(MS)).len(), 1);
    let db = h.instance("db");
    assert_eq!((db.state, db.restarts), (State::Running, 1));
    assert_ne!(db.pid, first_pid);
    h.exit("db", Exit::Code(3));
    assert_eq!(
        h.core.next_deadline(),
        Some(h.now + 200 * MS),
        "delay doubles"
    );
}

#[test]
fn zero_delay_restarts_in_the_same_step() {
    let mut h = Harness::new(vec![UnitConfig {
        restart_delay: Duration::ZERO,
        ..service("db")
    }]);
    h.boot();
    let actions = h.exit("db", Exit::Signal("SIGKILL".into()));
    assert_eq!(spawns(&actions).len(), 1);
    assert_eq!(h.state("db"), State::Running);
}

#[test]
fn restart_policies_decide_on_exit() {
    let cases = [
        (RestartPolicy::OnFailure, Exit::Code(0), State::Exited),
        (RestartPolicy::OnFailure, Exit::Code(1), State::Backoff),
        (
            RestartPolicy::OnFailure,
            Exit::Signal("SIGSEGV".into()),
            State::Backoff,
        ),
        (RestartPolicy::Always, Exit::Code(0), State::Backoff),
        (RestartPolicy::Always, Exit::Code(2), State::Backoff),
        (RestartPolicy::Never, Exit::Code(0), State::Exited),
        (RestartPolicy::Never, Exit::Code(2), State::Failed),
    ];
    for (restart, exit, expected) in cases {
        let mut h = Harness::new(vec![UnitConfig {
            restart,
            ..service("db")
        }]);
        h.boot();
        h.exit("db", exit.clone());
        assert_eq!(h.state("db"), expected, "{restart:?} after {exit}");
    }
}

#[test]
fn a_crash_loop_ends_failed_at_the_start_limit() {
    let mut h = Harness::new(vec![UnitConfig {
        start_limit: 3,
        ..service("db")
    }]);
    h.boot(); // start 1
    for _ in 0..2 {
        h.exit("db", Exit::Code(1));
        h.advance(1000 * MS); // starts 2 and 3
        assert_eq!(h.state("db"), State::Running);
    }
    let actions = h.exit("db", Exit::Code(1));
    let db = h.instance("db");
    assert_eq!(db.state, State::Failed);
    assert!(db.reason.unwrap().contains("start limit"));
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Publish(Lifecycle::Failed { .. }))));
    assert_eq!(h.core.next_deadline(), None, "no more restarts");
    // A user start forgives: it runs again.
    h.request(Request::Start {
        names: names(&["db"]),
        wait: false,
    });
    assert_eq!(h.state("db"), State::Running);
}

#[test]
fn starts_outside_the_interval_do_not_count() {
    let mut h = Harness::new(vec![UnitConfig {
        start_limit: 2,
        ..service("db")
    }]);
    h.boot();
    for _ in 0..5 {
        h.now += 20_000 * MS; // longer than start_interval
        h.exit("db", Exit::Code(1));
        h.advance(1000 * MS);
        assert_eq!(h.state("db"), State::Running);
    }
}

#[test]
fn exec_failure_fails_at_once_with_the_message() {
    let mut h = Harness::new(vec![UnitConfig {
        command: vec!["/no/such".into()],
        restart: RestartPolicy::Always,
        ..service("db")
    }]);
    h.boot();
    let db = h.instance("db");
    assert_eq!(db.state, State::Failed);
    assert_eq!(
        db.reason.as_deref(),
        Some("exec /no/such: No such file or directory")
    );
    assert_eq!(db.pid, None);
    assert_eq!(h.core.next_deadline(), None);
}

#[test]
fn stop_signals_the_group_then_kills_after_the_timeout() {
    let mut h = Harness::new(vec![service("db")]);
    h.boot();
    let pid = h.instance("db").pid.unwrap();
    let (id, actions) = h.request(Request::Stop {
        names: names(&["db"]),
        wait: true,
    });
    assert_eq!(signals(&actions), [(pid, libc::SIGTERM)]);
    assert!(reply_to(id, &actions).is_none(), "waits for the exit");
    assert_eq!(h.state("db"), State::Stopping);
    assert!(signals(&h.advance(499 * MS)).is_empty());
    assert_eq!(signals(&h.advance(MS)), [(pid, libc::SIGKILL)]);
    assert!(
        signals(&h.advance(10_000 * MS)).is_empty(),
        "SIGKILL only once"
    );
    let actions = h.exit("db", Exit::Signal("SIGKILL".into()));
    assert!(matches!(reply_to(id, &actions), Some(Reply::Ok(_))));
    assert_eq!(h.state("db"), State::Inactive);
    assert!(
        spawns(&actions).is_empty(),
        "a stopped unit is not restarted"
    );
}

#[test]
fn restart_stops_then_starts() {
    let mut h = Harness::new(vec![UnitConfig {
        stop_signal: libc::SIGINT,
        ..service("db")
    }]);
    h.boot();
    let pid = h.instance("db").pid.unwrap();
    let (id, actions) = h.request(Request::Restart {
        names: names(&["db"]),
        wait: true,
    });
    assert_eq!(signals(&actions), [(pid, libc::SIGINT)]);
    let actions = h.exit("db", Exit::Signal("SIGINT".into()));
    assert_eq!(spawns(&actions).len(), 1);
    assert!(matches!(reply_to(id, &actions), Some(Reply::Ok(_))));
    assert_eq!(
        h.instance("db").restarts,
        0,
        "a requested restart is not a crash"
    );
}

#[test]
fn after_waits_for_a_task_to_exit_zero() {
    let mut h = Harness::new(vec![
        task("migrate"),
        UnitConfig {
            after: names(&["migrate"]),
            ..service("db")
        },
    ]);
    let actions = h.boot();
    assert_eq!(spawns(&actions).len(), 1);
    let db = h.instance("db");
    assert_eq!(db.state, State::Waiting);
    assert_eq!(db.reason.as_deref(), Some("waiting for migrate"));
    let actions = h.exit("migrate", Exit::Code(0));
    assert_eq!(spawns(&actions)[0].0.unit, "db");
    assert_eq!(h.state("migrate"), State::Exited);
    assert_eq!(h.state("db"), State::Running);
}

#[test]
fn a_failed_dependency_blocks_and_settles_a_waiting_start() {
    let mut h = Harness::new(vec![
        task("migrate"),
        UnitConfig {
            after: names(&["migrate"]),
            autostart: false,
            ..service("db")
        },
    ]);
    h.boot();
    let (id, actions) = h.request(Request::Start {
        names: names(&["db"]),
        wait: true,
    });
    assert!(reply_to(id, &actions).is_none());
    let actions = h.exit("migrate", Exit::Code(2));
    assert!(spawns(&actions).is_empty());
    assert_eq!(h.state("migrate"), State::Failed);
    let db = h.instance("db");
    assert_eq!(db.state, State::Waiting);
    assert_eq!(db.reason.as_deref(), Some("dependency migrate failed"));
    assert!(
        matches!(reply_to(id, &actions), Some(Reply::Ok(_))),
        "start settles on a blocked dependency"
    );
}

#[test]
fn a_service_dependency_is_satisfied_when_all_instances_run() {
    let mut h = Harness::new(vec![
        UnitConfig {
            ready: Ready::After(1000 * MS),
            ..pool("db", 2)
        },
        UnitConfig {
            after: names(&["db"]),
            ..service("web")
        },
    ]);
    h.boot();
    assert_eq!(h.state("web"), State::Waiting);
    h.advance(1000 * MS);
    assert_eq!(h.state("web"), State::Running);
}

#[test]
fn shutdown_stops_daemons_now_and_joins_the_others() {
    let mut h = Harness::new(vec![service("web"), task("backup")]);
    h.boot();
    let web = h.instance("web").pid.unwrap();
    let backup = h.instance("backup").pid.unwrap();
    let actions = h.feed(Input::Shutdown);
    assert_eq!(
        signals(&actions),
        [(web, libc::SIGTERM)],
        "only the daemon is signalled"
    );
    h.exit("web", Exit::Signal("SIGTERM".into()));
    assert!(!h.core.is_finished(), "backup is still joined");
    assert_eq!(h.core.next_deadline(), Some(h.now + 3000 * MS));
    let actions = h.advance(3000 * MS);
    assert_eq!(
        signals(&actions),
        [(backup, libc::SIGTERM)],
        "joined until shutdown_timeout"
    );
    let actions = h.exit("backup", Exit::Signal("SIGTERM".into()));
    assert!(
        spawns(&actions).is_empty(),
        "nothing restarts during shutdown"
    );
    assert!(h.core.is_finished());
}

#[test]
fn a_joined_task_that_finishes_in_time_ends_the_shutdown() {
    let mut h = Harness::new(vec![task("backup")]);
    h.boot();
    h.feed(Input::Shutdown);
    let actions = h.exit("backup", Exit::Code(0));
    assert!(signals(&actions).is_empty());
    assert!(h.core.is_finished());
    let (id, actions) = h.request(Request::Start {
        names: names(&["backup"]),
        wait: true,
    });
    assert!(
        matches!(reply_to(id, &actions), Some(Reply::Error(e)) if e.code == ErrorCode::ShuttingDown)
    );
}

#[test]
fn a_second_shutdown_stops_joined_processes_at_once() {
    let mut h = Harness::new(vec![task("backup")]);
    h.boot();
    let pid = h.instance("backup").pid.unwrap();
    assert!(signals(&h.feed(Input::Shutdown)).is_empty());
    assert_eq!(signals(&h.feed(Input::Shutdown)), [(pid, libc::SIGTERM)]);
}

#[test]
fn scale_touches_only_the_highest_instances() {
    let mut h = Harness::new(vec![pool("web", 5)]);
    h.boot();
    let before: Vec<_> = (0..5)
        .map(|i| h.instance(&format!("web@{i}")).pid.unwrap())
        .collect();
    let (_, actions) = h.request(Request::Scale {
        name: "web".into(),
        instances: 3,
    });
    assert_eq!(
        signals(&actions),
        [(before[3], libc::SIGTERM), (before[4], libc::SIGTERM)]
    );
    h.exit("web@3", Exit::Signal("SIGTERM".into()));
    h.exit("web@4", Exit::Signal("SIGTERM".into()));
    let web = h.status().units.remove(0);
    assert_eq!(web.instances.len(), 3);
    let (_, actions) = h.request(Request::Scale {
        name: "web".into(),
        instances: 4,
    });
    let spawned = spawns(&actions);
    assert_eq!(spawned.len(), 1);
    assert_eq!(spawned[0].0.index, 3);
    for (i, pid) in before.iter().take(3).enumerate() {
        assert_eq!(
            h.instance(&format!("web@{i}")).pid,
            Some(*pid),
            "web@{i} untouched"
        );
    }
}

#[test]
fn scale_up_while_draining_reuses_the_instance() {
    let mut h = Harness::new(vec![pool("web", 2)]);
    h.boot();
    h.request(Request::Scale {
        name: "web".into(),
        instances: 1,
    });
    h.request(Request::Scale {
        name: "web".into(),
        instances: 2,
    });
    let actions = h.exit("web@1", Exit::Signal("SIGTERM".into()));
    assert_eq!(spawns(&actions).len(), 1, "comes back after draining");
    assert_eq!(h.state("web@1"), State::Running);
}

#[test]
fn scale_refuses_tasks_and_unknown_units() {
    let mut h = Harness::new(vec![task("migrate")]);
    let (id, actions) = h.request(Request::Scale {
        name: "migrate".into(),
        instances: 2,
    });
    assert!(
        matches!(reply_to(id, &actions), Some(Reply::Error(e)) if e.code == ErrorCode::BadRequest)
    );
    let (id, actions) = h.request(Request::Scale {
        name: "nope".into(),
        instances: 2,
    });
    assert!(
        matches!(reply_to(id, &actions), Some(Reply::Error(e)) if e.code == ErrorCode::NoSuchUnit)
    );
}

#[test]
fn kill_signals_every_running_instance() {
    let mut h = Harness::new(vec![pool("web", 2)]);
    h.boot();
    let pids: Vec<u32> = (0..2)
        .map(|i| h.instance(&format!("web@{i}")).pid.unwrap())
        .collect();
    let (id, actions) = h.request(Request::Kill {
        names: names(&["web"]),
        signal: "HUP".into(),
    });
    assert_eq!(
        signals(&actions),
        [(pids[0], libc::SIGHUP), (pids[1], libc::SIGHUP)]
    );
    assert!(matches!(reply_to(id, &actions), Some(Reply::Ok(_))));
    let (id, actions) = h.request(Request::Kill {
        names: names(&["web"]),
        signal: "NOPE".into(),
    });
    assert!(
        matches!(reply_to(id, &actions), Some(Reply::Error(e)) if e.code == ErrorCode::BadRequest)
    );
}

#[test]
fn names_resolve_to_units_instances_and_globs() {
    let h = Harness::new(vec![pool("web", 3), service("webhook"), service("db")]);
    let resolve = |list: &[&str]| h.core.resolve(&names(list));
    assert_eq!(resolve(&["web"]).unwrap().len(), 3);
    assert_eq!(
        resolve(&["web@1"]).unwrap(),
        [InstanceId {
            unit: "web".into(),
            index: 1
        }]
    );
    assert_eq!(resolve(&["web*"]).unwrap().len(), 4);
    assert_eq!(resolve(&["web@[01]"]).unwrap().len(), 2);
    assert_eq!(
        resolve(&["web", "web@1"]).unwrap().len(),
        3,
        "no duplicates"
    );
    for bad in [&["nope"][..], &["web@3"], &["x*"], &[]] {
        let err = resolve(bad).unwrap_err();
        assert!(
            matches!(err.code, ErrorCode::NoSuchUnit | ErrorCode::BadRequest),
            "{bad:?}"
        );
    }
    assert_eq!(resolve(&["web@3"]).unwrap_err().code, ErrorCode::NoSuchUnit);
}

#[test]
fn an_exit_kills_what_is_left_of_the_process_group() {
    let mut h = Harness::new(vec![service("db")]);
    h.boot();
    let pid = h.instance("db").pid.unwrap();
    let actions = h.exit("db", Exit::Code(1));
    assert!(actions.contains(&Action::KillLeftovers { pgid: pid }));
}

#[test]
fn exits_of_unknown_pids_are_ignored() {
    let mut h = Harness::new(vec![service("db")]);
    h.boot();
    let actions = h.feed(Input::Exited {
        pid: 999_999,
        exit: Exit::Code(0),
    });
    assert!(actions.is_empty());
    assert_eq!(h.state("db"), State::Running);
}

/// The (state × operation) table: every state, reached the way a user would
/// reach it, under every operation.
#[test]
fn state_by_operation_table() {
    #[derive(Debug, Clone, Copy)]
    enum Op {
        Start,
        Stop,
        Restart,
        Exit,
        Deadline,
    }
    use State::*;
    // (state, op, expected state after the op)
    let table = [
        (Inactive, Op::Start, Starting),
        (Inactive, Op::Stop, Inactive),
        (Inactive, Op::Restart, Starting),
        (Inactive, Op::Deadline, Inactive),
        (Waiting, Op::Start, Waiting),
        (Waiting, Op::Stop, Inactive),
        (Waiting, Op::Restart, Waiting),
        (Waiting, Op::Deadline, Waiting),
        (Starting, Op::Start, Starting),
        (Starting, Op::Stop, Stopping),
        (Starting, Op::Restart, Stopping),
        (Starting, Op::Exit, Backoff),
        (Starting, Op::Deadline, Running),
        (Running, Op::Start, Running),
        (Running, Op::Stop, Stopping),
        (Running, Op::Restart, Stopping),
        (Running, Op::Exit, Backoff),
        (Running, Op::Deadline, Running),
        (Stopping, Op::Start, Stopping),
        (Stopping, Op::Stop, Stopping),
        (Stopping, Op::Restart, Stopping),
        (Stopping, Op::Exit, Inactive),
        (Stopping, Op::Deadline, Stopping),
        (Exited, Op::Start, Running),
        (Exited, Op::Stop, Exited),
        (Exited, Op::Restart, Running),
        (Exited, Op::Deadline, Exited),
        (Failed, Op::Start, Running),
        (Failed, Op::Stop, Failed),
        (Failed, Op::Restart, Running),
        (Failed, Op::Deadline, Failed),
        (Backoff, Op::Start, Starting),
        (Backoff, Op::Stop, Inactive),
        (Backoff, Op::Restart, Starting),
        (Backoff, Op::Deadline, Starting),
    ];
    for (from, op, expected) in table {
        let mut h = reach(from);
        assert_eq!(h.state("svc"), from, "setting up {from}");
        match op {
            Op::Start => drop(h.request(Request::Start {
                names: names(&["svc"]),
                wait: false,
            })),
            Op::Stop => drop(h.request(Request::Stop {
                names: names(&["svc"]),
                wait: false,
            })),
            Op::Restart => drop(h.request(Request::Restart {
                names: names(&["svc"]),
                wait: false,
            })),
            Op::Exit => drop(h.exit("svc", Exit::Code(1))),
            Op::Deadline => {
                let deadline = h.core.next_deadline().unwrap_or(h.now);
                h.now = deadline;
                h.feed(Input::Tick);
            }
        }
        assert_eq!(h.state("svc"), expected, "{from} × {op:?}");
    }
}

/// A harness whose unit `svc` is in `state`. `Failed` is reached via a task that
/// exits 1 (so that `start` can run it again); `Waiting` via a dependency that never runs.
fn reach(state: State) -> Harness {
    let svc = UnitConfig {
        ready: Ready::After(1000 * MS),
        ..service("svc")
    };
    let mut h = match state {
        State::Waiting => Harness::new(vec![
            UnitConfig {
                after: names(&["dep"]),
                ..svc
            },
            UnitConfig {
                autostart: false,
                ..service("dep")
            },
        ]),
        State::Inactive => Harness::new(vec![UnitConfig {
            autostart: false,
            ..svc
        }]),
        State::Exited | State::Failed => Harness::new(vec![UnitConfig {
            restart: RestartPolicy::Never,
            ready: Ready::Started,
            ..svc
        }]),
        _ => Harness::new(vec![svc]),
    };
    h.boot();
    match state {
        State::Inactive | State::Waiting | State::Starting => {}
        State::Running => drop(h.advance(1000 * MS)),
        State::Stopping => drop(h.request(Request::Stop {
            names: names(&["svc"]),
            wait: false,
        })),
        State::Exited => drop(h.exit("svc", Exit::Code(0))),
        State::Failed => drop(h.exit("svc", Exit::Code(1))),
        State::Backoff => drop(h.exit("svc", Exit::Code(1))),
    }
    h
}

#[test]
fn inputs_are_handled_first_in_first_out() {
    // As in herdd: every spawn of one input is carried out before the
    // first spawn's result is handled, and the results in spawn order.
    let mut h = Harness::new(vec![pool("p", 3)]);
    let mut order = Vec::new();
    let mut next_pid = 0;
    h.core.drive(h.now, Input::Boot, |action| match action {
        Action::Spawn { owner, .. } => {
            next_pid += 1;
            order.push(format!("spawn {owner:?}"));
            Some(Input::Spawned {
                owner,
                pid: next_pid,
            })
        }
        Action::Publish(Lifecycle::Started { instance, pid, .. }) => {
            order.push(format!("started {instance} {pid}"));
            None
        }
        _ => None,
    });
    let spawn = |index: u32| {
        let id = InstanceId {
            unit: "p".into(),
            index,
        };
        format!("spawn {:?}", Owner::Instance(id))
    };
    assert_eq!(
        order,
        [
            spawn(0),
            spawn(1),
            spawn(2),
            "started p@0 1".into(),
            "started p@1 2".into(),
            "started p@2 3".into(),
        ]
    );
}

mod deadlines;
mod hooks;
mod jobs;
mod pools;
mod property;
mod reload;
mod results;
mod rolling;
mod survivors;
mod sync;
mod timers;
