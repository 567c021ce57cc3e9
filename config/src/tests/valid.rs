//! Valid configs parse into the expected model, defaults filled in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herd_common::paths::{default_log_dir, default_socket, default_state_dir};

use herd_common::signals::parse_signal;

use super::accounts::{system_group, system_user};
use super::MAIN;
use crate::*;

/// The product specification's example config, with more keys set.
pub(super) const FULL: &str = r#"
[herd]
socket = "/run/herd/herd.sock"
log_dir = "log"
state_dir = "/var/lib/herd"
dbus = "system"
shutdown_timeout = "1m30s"
control_group = "root"

[semaphore.db]
capacity = 2

[semaphore.cpu]
capacity = 1_000_000

[event.db-ready]
set = false

[event.maintenance-over]
set = true

[task.migrate]
command = ["/usr/bin/migrate", "--up"]
semaphores = ["db"]

[service.db]
command = ["/usr/bin/postgres", "-D", "/var/lib/pg"]
after = ["migrate"]
ready = "notify"
start_timeout = "2m"
sets_event = "db-ready"
restart = "always"
stop_signal = "SIGINT"
stop_timeout = "10s"

[service.web]
command = ["/usr/bin/app", "--port", "80{instance}"]
instances = 4
after = ["db"]
wait_events = ["db-ready", "maintenance-over"]
semaphores = ["db", "cpu"]
daemon = true
user = "www-data"
group = "www-data"
cwd = "srv"
env = { APP_ENV = "prod", PORT = "80{instance}" }
umask = "027"
rlimits = { nofile = 4096, core = 0, as = "infinity" }
ready = "2s"
restart_delay = "0s"
restart_delay_max = "30s"
start_limit = 5
start_interval = "60s"
autostart = false

[pool.convert]
size = 2
semaphores = ["db"]
max_queue = 10000
keep_finished = 1000
"#;

fn sig(name: &str) -> i32 {
    parse_signal(name).expect("a known signal")
}

/// A pool of `size` with every other key at its default. The process keys
/// (`env` ... `daemon`) get their defaults from the code units and pools share,
/// whose values `unit` below spells out; a pool's `daemon` default is its own.
fn pool(name: &str, size: u32) -> PoolConfig {
    crate::process::with_default_process!(
        PoolConfig {
            name: name.to_string(),
            size,
            max_queue: 10_000,
            keep_finished: 1000,
            semaphores: Vec::new(),
            task_defaults: Default::default(),
            on_failure: no_hook(),
        },
        false
    )
}

fn unit(name: &str, kind: UnitKind, command: &[&str]) -> UnitConfig {
    let service = kind == UnitKind::Service;
    UnitConfig {
        name: name.to_string(),
        kind,
        command: command.iter().map(|word| word.to_string()).collect(),
        instances: None,
        env: BTreeMap::new(),
        cwd: None,
        user: None,
        group: None,
        umask: None,
        rlimits: BTreeMap::new(),
        confinement: Confinement {
            no_new_privs: false,
            clear_env: false,
            memory_max: None,
            pids_max: None,
            cpu_weight: None,
        },
        after: Vec::new(),
        ready: Ready::Started,
        restart: if service {
            RestartPolicy::OnFailure
        } else {
            RestartPolicy::Never
        },
        restart_delay: Duration::from_millis(100),
        restart_delay_max: Duration::from_secs(30),
        start_limit: 5,
        start_interval: Duration::from_secs(10),
        stop_signal: sig("SIGTERM"),
        stop_timeout: Duration::from_secs(10),
        daemon: service,
        autostart: true,
        semaphores: Vec::new(),
        wait_events: Vec::new(),
        sets_event: None,
        start_timeout: Duration::from_secs(90),
        log: UnitLog::default(),
        env_files: Vec::new(),
        sockets: Vec::new(),
        watchdog: None,
        max_unavailable: 1,
        timer: None,
        update: None,
        health: None,
        on_failure: no_hook(),
    }
}

/// No `on_failure`, and the default `on_failure_timeout`.
fn no_hook() -> FailureHook {
    FailureHook {
        command: Vec::new(),
        timeout: Duration::from_secs(60),
    }
}

#[test]
fn full_config() {
    let config = parse(Path::new(MAIN), FULL).unwrap_or_else(|errors| panic!("{errors}"));
    let herd = HerdSettings {
        socket: PathBuf::from("/run/herd/herd.sock"),
        log_dir: PathBuf::from("/etc/herd/log"),
        state_dir: PathBuf::from("/var/lib/herd"),
        dbus: "system".to_string(),
        shutdown_timeout: Duration::from_secs(90),
        control_group: Some("root".to_string()),
        log_max_size: DEFAULT_LOG_MAX_SIZE,
        log_keep: DEFAULT_LOG_KEEP,
        metrics_listen: None,
        journal_socket: PathBuf::from(DEFAULT_JOURNAL_SOCKET),
    };
    let migrate = UnitConfig {
        semaphores: vec!["db".to_string()],
        ..unit("migrate", UnitKind::Task, &["/usr/bin/migrate", "--up"])
    };
    let db = UnitConfig {
        after: vec!["migrate".to_string()],
        ready: Ready::Notify,
        start_timeout: Duration::from_secs(120),
        sets_event: Some("db-ready".to_string()),
        restart: RestartPolicy::Always,
        stop_signal: sig("SIGINT"),
        ..unit(
            "db",
            UnitKind::Service,
            &["/usr/bin/postgres", "-D", "/var/lib/pg"],
        )
    };
    let web = UnitConfig {
        instances: Some(4),
        after: vec!["db".to_string()],
        wait_events: vec!["db-ready".to_string(), "maintenance-over".to_string()],
        semaphores: vec!["db".to_string(), "cpu".to_string()],
        ready: Ready::After(Duration::from_secs(2)),
        user: Some(system_user("www-data")),
        group: Some(system_group("www-data")),
        cwd: Some(PathBuf::from("/etc/herd/srv")),
        env: BTreeMap::from([
            ("APP_ENV".to_string(), "prod".to_string()),
            ("PORT".to_string(), "80{instance}".to_string()),
        ]),
        umask: Some(0o027),
        rlimits: BTreeMap::from([
            (Rlimit::Nofile, 4096),
            (Rlimit::Core, 0),
            (Rlimit::As, u64::MAX),
        ]),
        restart_delay: Duration::ZERO,
        start_interval: Duration::from_secs(60),
        autostart: false,
        ..unit(
            "web",
            UnitKind::Service,
            &["/usr/bin/app", "--port", "80{instance}"],
        )
    };
    let expected = Config {
        path: PathBuf::from(MAIN),
        herd,
        units: vec![db, migrate, web],
        pools: vec![PoolConfig {
            semaphores: vec!["db".to_string()],
            ..pool("convert", 2)
        }],
        semaphores: vec![
            SemaphoreConfig {
                name: "cpu".to_string(),
                capacity: 1_000_000,
            },
            SemaphoreConfig {
                name: "db".to_string(),
                capacity: 2,
            },
        ],
        events: vec![
            EventConfig {
                name: "db-ready".to_string(),
                set: false,
            },
            EventConfig {
                name: "maintenance-over".to_string(),
                set: true,
            },
        ],
        sockets: Vec::new(),
    };
    assert_eq!(config, expected);
}

#[test]
fn defaults() {
    let text = "[service.a]\ncommand = [\"a\"]\n[task.b]\ncommand = [\"b\"]\n";
    let config = parse(Path::new(MAIN), text).unwrap_or_else(|errors| panic!("{errors}"));
    let herd = HerdSettings {
        socket: default_socket(),
        log_dir: default_log_dir(),
        state_dir: default_state_dir(),
        dbus: "off".to_string(),
        shutdown_timeout: Duration::from_secs(30),
        control_group: None,
        log_max_size: 10 * 1024 * 1024,
        log_keep: 5,
        metrics_listen: None,
        journal_socket: PathBuf::from("/run/systemd/journal/socket"),
    };
    assert_eq!(config.herd, herd);
    assert_eq!(
        config.units,
        [
            unit("a", UnitKind::Service, &["a"]),
            unit("b", UnitKind::Task, &["b"])
        ]
    );
}

#[test]
fn an_empty_file_is_a_valid_config() {
    let config = parse(Path::new(MAIN), "").unwrap_or_else(|errors| panic!("{errors}"));
    assert!(config.units.is_empty());
    assert!(config.pools.is_empty());
    assert!(config.semaphores.is_empty());
    assert!(config.events.is_empty());
}

#[test]
fn pool_defaults() {
    let text = "[pool.b]
size = 1
[pool.a]
size = 10_000
";
    let config = parse(Path::new(MAIN), text).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(config.pools, [pool("a", 10_000), pool("b", 1)]);
    let b = &config.pools[1];
    assert_eq!(b.stop_signal, sig("SIGTERM"));
    assert_eq!(b.stop_timeout, Duration::from_secs(10));
    assert!(!b.daemon, "pool tasks are joined, not daemons, by default");
    assert!(b.env.is_empty() && b.rlimits.is_empty() && b.cwd.is_none() && b.umask.is_none());
    assert!(config.units.is_empty());
}

#[test]
fn pool_with_every_key() {
    let text = r#"
[pool.convert]
size = 3
max_queue = 1_000_000
keep_finished = 0
env = { LANG = "C", OUT = "/tmp/out" }
cwd = "jobs"
user = "nobody"
group = "nogroup"
umask = "077"
rlimits = { nofile = 256, cpu = 60, core = "infinity" }
stop_signal = "INT"
stop_timeout = "1m"
daemon = true
task_timeout = "30s"
retries = 3
retry_delay = "2s"
env_file = ["/etc/herd/jobs.env", "-local.env"]

# A pool may share its name with a unit.
[service.convert]
command = ["/usr/bin/convertd"]
"#;
    let config = parse(Path::new(MAIN), text).unwrap_or_else(|errors| panic!("{errors}"));
    let expected = PoolConfig {
        size: 3,
        max_queue: 1_000_000,
        keep_finished: 0,
        env: BTreeMap::from([
            ("LANG".to_string(), "C".to_string()),
            ("OUT".to_string(), "/tmp/out".to_string()),
        ]),
        cwd: Some(PathBuf::from("/etc/herd/jobs")),
        user: Some(system_user("nobody")),
        group: Some(system_group("nogroup")),
        umask: Some(0o077),
        rlimits: BTreeMap::from([
            (Rlimit::Nofile, 256),
            (Rlimit::Cpu, 60),
            (Rlimit::Core, u64::MAX),
        ]),
        stop_signal: sig("SIGINT"),
        stop_timeout: Duration::from_secs(60),
        daemon: true,
        task_defaults: TaskDefaults {
            timeout: Some(Duration::from_secs(30)),
            retries: 3,
            retry_delay: Duration::from_secs(2),
        },
        env_files: vec![
            env_file::EnvFile {
                path: PathBuf::from("/etc/herd/jobs.env"),
                optional: false,
            },
            env_file::EnvFile {
                path: PathBuf::from("/etc/herd/local.env"),
                optional: true,
            },
        ],
        ..pool("convert", 3)
    };
    assert_eq!(config.pools, [expected]);
    assert_eq!(
        config.units,
        [unit("convert", UnitKind::Service, &["/usr/bin/convertd"])]
    );
}

/// Alternative spellings that must all be accepted, each checked on one field.
#[test]
fn accepted_spellings() {
    type Check = fn(&UnitConfig) -> bool;
    let cases: &[(&str, Check)] = &[
        ("stop_signal = \"INT\"", |u| u.stop_signal == sig("SIGINT")),
        ("stop_signal = \"sigkill\"", |u| {
            u.stop_signal == sig("SIGKILL")
        }),
        ("stop_signal = 9", |u| u.stop_signal == 9),
        ("umask = \"0027\"", |u| u.umask == Some(0o027)),
        ("umask = \"0\"", |u| u.umask == Some(0)),
        ("ready = \"started\"", |u| u.ready == Ready::Started),
        ("ready = \"notify\"", |u| u.ready == Ready::Notify),
        ("start_timeout = \"1ms\"", |u| {
            u.start_timeout == Duration::from_millis(1)
        }),
        ("ready = \"1m30s\"", |u| {
            u.ready == Ready::After(Duration::from_secs(90))
        }),
        ("restart = \"never\"", |u| u.restart == RestartPolicy::Never),
        ("instances = 0", |u| u.instances == Some(0)),
        ("instances = 10_000", |u| u.instances == Some(10_000)),
        ("start_limit = 0x10", |u| u.start_limit == 16),
        ("cwd = \"/srv\"", |u| {
            u.cwd.as_deref() == Some(Path::new("/srv"))
        }),
        ("after = [\"b\", \"b\"]", |u| u.after == ["b"]),
        ("after = []", |u| u.after.is_empty()),
        ("semaphores = [\"s\", \"t\", \"s\"]", |u| {
            u.semaphores == ["s", "t"]
        }),
        ("semaphores = []", |u| u.semaphores.is_empty()),
        ("wait_events = [\"e\", \"e\"]", |u| u.wait_events == ["e"]),
        ("sets_event = \"e\"", |u| {
            u.sets_event.as_deref() == Some("e")
        }),
        ("env = {}", |u| u.env.is_empty()),
        ("daemon = false", |u| !u.daemon),
    ];
    for (line, check) in cases {
        let text = format!(
            "[service.a]\ncommand = [\"a\"]\n{line}\n[task.b]\ncommand = [\"b\"]\n\
             [semaphore.s]\ncapacity = 1\n[semaphore.t]\ncapacity = 1\n[event.e]\n"
        );
        let config =
            parse(Path::new(MAIN), &text).unwrap_or_else(|errors| panic!("{line}: {errors}"));
        assert!(check(&config.units[0]), "{line}: {:#?}", config.units[0]);
    }
}

#[test]
fn dbus_addresses() {
    for dbus in [
        "off",
        "session",
        "unix:path=/run/dbus/system_bus_socket",
        "tcp:host=x",
    ] {
        let text = format!("[herd]\ndbus = \"{dbus}\"\n");
        let config = parse(Path::new(MAIN), &text).unwrap_or_else(|errors| panic!("{errors}"));
        assert_eq!(config.herd.dbus, dbus);
    }
}

/// Semaphores, events, units and pools have names of their own: one may share
/// a name with one of another kind.
#[test]
fn each_kind_has_names_of_its_own() {
    let text = r#"
[semaphore.db]
capacity = 1

[event.db]

[service.db]
command = ["db"]
semaphores = ["db"]
wait_events = ["db"]
sets_event = "db"

[pool.db]
size = 1
semaphores = ["db", "db"]
"#;
    let config = parse(Path::new(MAIN), text).unwrap_or_else(|errors| panic!("{errors}"));
    let db = || "db".to_string();
    let semaphore = SemaphoreConfig {
        name: db(),
        capacity: 1,
    };
    let event = EventConfig {
        name: db(),
        set: false,
    };
    assert_eq!(config.semaphores, [semaphore]);
    assert_eq!(config.events, [event], "`set` defaults to false");
    let service = UnitConfig {
        semaphores: vec![db()],
        wait_events: vec![db()],
        sets_event: Some(db()),
        ..unit("db", UnitKind::Service, &["db"])
    };
    assert_eq!(config.units, [service]);
    let pool = PoolConfig {
        semaphores: vec![db()],
        ..pool("db", 1)
    };
    assert_eq!(config.pools, [pool]);
}
