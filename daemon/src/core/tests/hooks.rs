//! Failure hooks in the core: when one is due (once per failure, never two
//! at once for an instance or pool), what it is told, its timeout, and a
//! hook that cannot be executed.

use super::*;
use crate::core::hooks::{HookSubject, LogTail};
use herd_common::protocol::SubmitReport;
use herd_config::FailureHook;

fn hook(command: &[&str]) -> FailureHook {
    FailureHook {
        command: names(command),
        timeout: 5000 * MS,
    }
}

/// The hooks `actions` ask the shell to run.
fn hooks_run(actions: &[Action]) -> Vec<(HookSubject, SpawnSpec, LogTail)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::RunHook {
                subject,
                spec,
                tail,
            } => Some((subject.clone(), SpawnSpec::clone(spec), tail.clone())),
            _ => None,
        })
        .collect()
}

/// The pid of the hook `actions` started.
fn hook_pid(actions: &[Action]) -> u32 {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Publish(Lifecycle::HookStarted { pid, .. }) => Some(*pid),
            _ => None,
        })
        .expect("a hook started")
}

fn published(actions: &[Action]) -> Vec<Lifecycle> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Publish(event) => Some(event.clone()),
            _ => None,
        })
        .collect()
}

/// A service that is never restarted, so each exit with 1 fails it.
fn fragile(name: &str, on_failure: FailureHook) -> UnitConfig {
    UnitConfig {
        restart: RestartPolicy::Never,
        on_failure,
        ..service(name)
    }
}

impl Harness {
    fn start_unit(&mut self, name: &str) -> Vec<Action> {
        self.request(Request::Start {
            names: names(&[name]),
            wait: false,
        })
        .1
    }

    fn unit_hook_error(&mut self, unit: &str) -> Option<String> {
        let status = self.status();
        let unit = status.units.into_iter().find(|u| u.name == unit).unwrap();
        unit.hook_error
    }
}

#[test]
fn a_service_that_gives_up_runs_its_hook_once_with_the_failure() {
    let mut h = Harness::new(vec![UnitConfig {
        start_limit: 2,
        on_failure: hook(&["/bin/alert", "{unit}", "{instance}", "{reason}"]),
        ..service("db")
    }]);
    h.boot();
    let restarted = h.exit("db", Exit::Code(1));
    assert!(hooks_run(&restarted).is_empty(), "restarted: not failed");
    h.advance(1000 * MS);
    let actions = h.exit("db", Exit::Code(3));
    assert_eq!(h.state("db"), State::Failed);
    let run = hooks_run(&actions);
    assert_eq!(run.len(), 1, "one hook for one failure");
    let (subject, spec, tail) = &run[0];
    let id = InstanceId {
        unit: "db".into(),
        index: 0,
    };
    assert_eq!(*subject, HookSubject::Instance(id));
    let reason = h.instance("db").reason.unwrap();
    assert!(reason.contains("start limit"), "{reason}");
    assert_eq!(spec.argv, ["/bin/alert", "db", "db", reason.as_str()]);
    assert_eq!(spec.env["HERD_UNIT"], "db");
    assert_eq!(spec.env["HERD_INSTANCE"], "db");
    assert_eq!(spec.env["HERD_EXIT_CODE"], "3");
    assert_eq!(spec.env["HERD_REASON"], reason);
    assert_eq!(spec.env["HERD_FAILURES"], "1");
    assert_eq!(spec.env["PORT"], "800", "the unit's env, substituted");
    assert!(!spec.env.contains_key("HERD_EXIT_SIGNAL"));
    assert!(spec.daemon && !spec.notify && spec.cwd.is_none());
    assert_eq!(
        *tail,
        LogTail::LogFile {
            unit: "db".into(),
            instance: "db".into()
        }
    );
    let pid = hook_pid(&actions);
    // Its end is reported, its leftovers killed; nothing runs again.
    let ended = h.feed(Input::Exited {
        pid,
        exit: Exit::Code(0),
    });
    assert!(ended.contains(&Action::KillLeftovers { pgid: pid }));
    assert!(published(&ended).contains(&Lifecycle::HookExited {
        unit: "db".into(),
        instance: "db".into(),
        pid,
        exit: Exit::Code(0),
        timed_out: false,
    }));
    assert!(hooks_run(&ended).is_empty());
    assert!(hooks_run(&h.advance(60_000 * MS)).is_empty());
}

#[test]
fn failures_while_a_hook_runs_wait_for_it_and_merge() {
    let mut h = Harness::new(vec![fragile("db", hook(&["/bin/alert"]))]);
    h.boot();
    let first = h.exit("db", Exit::Code(1));
    assert_eq!(hooks_run(&first).len(), 1);
    let pid = hook_pid(&first);
    for code in [2, 3] {
        h.start_unit("db");
        let again = h.exit("db", Exit::Code(code));
        assert_eq!(h.state("db"), State::Failed);
        assert!(hooks_run(&again).is_empty(), "never two hooks at once");
    }
    let ended = h.feed(Input::Exited {
        pid,
        exit: Exit::Code(0),
    });
    let run = hooks_run(&ended);
    assert_eq!(run.len(), 1, "the waiting failures, in one hook");
    assert_eq!(run[0].1.env["HERD_EXIT_CODE"], "3", "the newest one");
    assert_eq!(run[0].1.env["HERD_FAILURES"], "2");
    let second = hook_pid(&ended);
    let ended = h.feed(Input::Exited {
        pid: second,
        exit: Exit::Code(0),
    });
    assert!(hooks_run(&ended).is_empty(), "nothing left to report");
}

#[test]
fn each_instance_has_its_own_hook() {
    let mut h = Harness::new(vec![UnitConfig {
        instances: Some(2),
        ..fragile("web", hook(&["/bin/alert", "{instance}"]))
    }]);
    h.boot();
    let first = hooks_run(&h.exit("web@0", Exit::Code(1)));
    let second = hooks_run(&h.exit("web@1", Exit::Signal("SIGKILL".into())));
    assert_eq!(first[0].1.argv, ["/bin/alert", "web@0"]);
    assert_eq!(second[0].1.argv, ["/bin/alert", "web@1"]);
    assert_eq!(second[0].1.env["HERD_EXIT_SIGNAL"], "SIGKILL");
    assert!(!second[0].1.env.contains_key("HERD_EXIT_CODE"));
}

#[test]
fn a_hook_past_its_timeout_is_killed() {
    let mut h = Harness::new(vec![fragile("db", hook(&["/bin/alert"]))]);
    h.boot();
    let pid = hook_pid(&h.exit("db", Exit::Code(1)));
    assert_eq!(h.core.next_deadline(), Some(h.now + 5000 * MS));
    assert!(signals(&h.advance(4999 * MS)).is_empty());
    assert_eq!(signals(&h.advance(MS)), [(pid, libc::SIGKILL)]);
    assert_eq!(h.core.next_deadline(), None, "killed once");
    let ended = h.feed(Input::Exited {
        pid,
        exit: Exit::Signal("SIGKILL".into()),
    });
    assert!(published(&ended).iter().any(|event| matches!(
        event,
        Lifecycle::HookExited {
            timed_out: true,
            ..
        }
    )));
}

#[test]
fn an_exec_error_is_a_failure_without_an_exit() {
    let mut h = Harness::new(vec![UnitConfig {
        command: vec!["/no/such".into()],
        ..fragile("db", hook(&["/bin/alert"]))
    }]);
    let run = hooks_run(&h.boot());
    assert_eq!(run.len(), 1);
    let env = &run[0].1.env;
    assert!(env["HERD_REASON"].contains("/no/such"), "{env:?}");
    assert!(!env.contains_key("HERD_EXIT_CODE") && !env.contains_key("HERD_EXIT_SIGNAL"));
}

#[test]
fn a_hook_that_cannot_run_is_reported_and_not_run_until_reload() {
    let unit = fragile("db", hook(&["/no/such", "{unit}"]));
    let mut h = Harness::new(vec![unit.clone()]);
    h.boot();
    let actions = h.exit("db", Exit::Code(1));
    assert_eq!(hooks_run(&actions).len(), 1, "tried once");
    assert!(published(&actions).contains(&Lifecycle::HookFailed {
        unit: "db".into(),
        instance: "db".into(),
        error: "exec /no/such: No such file or directory".into(),
    }));
    let error = h.unit_hook_error("db").expect("status says why");
    assert!(error.contains("/no/such"), "{error}");
    assert_eq!(h.core.next_deadline(), None, "nothing retries it");
    h.start_unit("db");
    assert!(hooks_run(&h.exit("db", Exit::Code(1))).is_empty());
    // A reload (the program may be installed by now) tries it again.
    let config = test_config(vec![unit], vec![], vec![], vec![]);
    h.feed(Input::ConfigLoaded {
        id: None,
        config: Ok(Box::new(config)),
    });
    assert_eq!(h.unit_hook_error("db"), None);
    h.start_unit("db");
    assert_eq!(hooks_run(&h.exit("db", Exit::Code(1))).len(), 1);
}

#[test]
fn changing_only_the_hook_on_reload_does_not_restart() {
    let mut h = Harness::new(vec![service("db")]);
    h.boot();
    let pid = h.instance("db").pid;
    let config = test_config(
        vec![UnitConfig {
            on_failure: hook(&["/bin/alert"]),
            ..service("db")
        }],
        vec![],
        vec![],
        vec![],
    );
    let actions = h.feed(Input::ConfigLoaded {
        id: None,
        config: Ok(Box::new(config)),
    });
    assert!(signals(&actions).is_empty(), "{actions:?}");
    assert_eq!(h.instance("db").pid, pid);
}

#[test]
fn a_pool_task_that_fails_for_good_runs_the_pool_hook() {
    let mut h = Harness::with_pools(
        vec![],
        vec![PoolConfig {
            task_defaults: herd_config::TaskDefaults {
                retries: 1,
                ..Default::default()
            },
            on_failure: hook(&["/bin/alert", "{unit}", "{instance}"]),
            ..task_pool("p", 2)
        }],
    );
    let (rid, actions) = h.request(Request::Submit {
        pool: "p".into(),
        command: names(&["/bin/false"]),
        name: None,
        options: Default::default(),
    });
    let Some(Reply::Ok(payload)) = reply_to(rid, &actions) else {
        panic!("submit failed: {actions:?}");
    };
    let id = serde_json::from_value::<SubmitReport>(payload).unwrap().id;
    let task_pid = |h: &mut Harness| h.core.tasks[&id].pid.expect("the task runs");
    let pid = task_pid(&mut h);
    let retried = h.feed(Input::Exited {
        pid,
        exit: Exit::Code(1),
    });
    assert!(
        hooks_run(&retried).is_empty(),
        "a retry is left: not failed yet"
    );
    h.advance(1000 * MS);
    let pid = task_pid(&mut h);
    h.feed(Input::Output {
        task: id,
        stream: OutputStream::Stderr,
        data: b"disk full\n".to_vec(),
    });
    let failed = h.feed(Input::Exited {
        pid,
        exit: Exit::Code(4),
    });
    let run = hooks_run(&failed);
    assert_eq!(run.len(), 1);
    let (subject, spec, tail) = &run[0];
    assert_eq!(*subject, HookSubject::Pool("p".into()));
    let label = format!("p#{id}");
    assert_eq!(spec.argv, ["/bin/alert", "p", label.as_str()]);
    assert_eq!(spec.env["HERD_EXIT_CODE"], "4");
    assert_eq!(spec.env["HERD_TASK_ID"], id.to_string());
    assert_eq!(spec.env["HERD_POOL"], "p");
    assert_eq!(spec.output, Output::Inherit, "not captured as a task");
    let LogTail::Captured(bytes) = tail else {
        panic!("{tail:?}");
    };
    let text = String::from_utf8_lossy(bytes);
    assert!(text.contains("herd: attempt 1 failed"), "{text}");
    assert!(text.ends_with("disk full\n"), "{text}");
    // A task that succeeds runs no hook.
    let (rid, actions) = h.request(Request::Submit {
        pool: "p".into(),
        command: names(&["/bin/true"]),
        name: None,
        options: Default::default(),
    });
    assert!(reply_to(rid, &actions).is_some());
    let ok = h.core.tasks.keys().max().copied().unwrap();
    let pid = h.core.tasks[&ok].pid.unwrap();
    let ended = h.feed(Input::Exited {
        pid,
        exit: Exit::Code(0),
    });
    assert!(hooks_run(&ended).is_empty());
}

#[test]
fn shutdown_drops_waiting_failures_and_kills_running_hooks() {
    let mut h = Harness::new(vec![fragile("db", hook(&["/bin/alert"]))]);
    h.boot();
    let pid = hook_pid(&h.exit("db", Exit::Code(1)));
    h.start_unit("db");
    h.exit("db", Exit::Code(1)); // waits for the running hook
    h.feed(Input::Shutdown);
    assert!(!h.core.is_finished(), "the hook is still running");
    let actions = h.feed(Input::Shutdown); // a second one: terminate now
    assert!(signals(&actions).contains(&(pid, libc::SIGKILL)));
    let ended = h.feed(Input::Exited {
        pid,
        exit: Exit::Signal("SIGKILL".into()),
    });
    assert!(hooks_run(&ended).is_empty(), "no new hook during shutdown");
    assert!(h.core.is_finished());
}
