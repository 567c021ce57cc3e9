//! Each kind of error, with its exact `line:column: key: message`.

use super::{assert_single_errors, errors_of, MAIN};

const UNIT_KEYS: &str = "command, instances, env, env_file, cwd, user, group, umask, rlimits, \
     no_new_privs, clear_env, memory_max, pids_max, cpu_weight, after, wait_events, semaphores, \
     ready, start_timeout, sets_event, restart, restart_delay, restart_delay_max, start_limit, \
     start_interval, stop_signal, stop_timeout, daemon, autostart, sockets, watchdog, \
     max_unavailable, update, health, log, log_max_size, log_keep, on_failure, on_failure_timeout";

const TOP_LEVEL_KEYS: &str = "include, herd, semaphore, event, service, task, pool, socket";

const NAME_RULE: &str =
    "use at most 128 ASCII letters, digits, '-', '_' and '.', not starting with '-' or '.'";

#[test]
fn unknown_keys() {
    let service =
        format!("3:1: service.web.restat: unknown key `restat` (expected one of: {UNIT_KEYS})");
    let task_keys = UNIT_KEYS
        .replace("instances, ", "")
        .replace("sets_event, ", "")
        .replace("sockets, watchdog, max_unavailable, update, health, ", "")
        + ", schedule, every, every_from, overlap, pool, persistent";
    let task = format!("3:1: task.t.restat: unknown key `restat` (expected one of: {task_keys})");
    assert_single_errors(&[
        (
            "[service.web]\ncommand = [\"a\"]\nrestat = \"always\"\n",
            &service,
        ),
        ("[task.t]\ncommand = [\"a\"]\nrestat = \"always\"\n", &task),
        (
            "[services.web]\ncommand = [\"a\"]\n",
            &format!("1:2: services: unknown key `services` (expected one of: {TOP_LEVEL_KEYS})"),
        ),
        (
            "[herd]\nsockets = \"/x\"\n",
            "2:1: herd.sockets: unknown key `sockets` (expected one of: socket, log_dir, \
             state_dir, dbus, shutdown_timeout, control_group, log_max_size, log_keep, metrics_listen, \
             journal_socket)",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nrlimits = { nofiles = 1 }\n",
            "3:13: service.web.rlimits.nofiles: unknown key `nofiles` (expected one of: \
             nofile, nproc, core, memlock, stack, as, fsize, cpu)",
        ),
    ]);
}

#[test]
fn wrong_types() {
    assert_single_errors(&[
        ("service = 1\n", "1:11: service: expected a table, found an integer"),
        ("herd = 1\n", "1:8: herd: expected a table, found an integer"),
        ("[[service.web]]\ncommand = [\"a\"]\n", "1:1: service.web: expected a table, found an array"),
        (
            "include = \"conf.d/*.toml\"\n",
            "1:11: include: expected an array of strings, found a string",
        ),
        (
            "[service.web]\ncommand = \"a b\"\n",
            "2:11: service.web.command: expected an array of strings, found a string",
        ),
        (
            "[service.web]\ncommand = [\"a\", 1]\n",
            "2:17: service.web.command: expected an array of strings, but this element is an integer",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nafter = \"db\"\n",
            "3:9: service.web.after: expected an array of strings, found a string",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\ndaemon = \"yes\"\n",
            "3:10: service.web.daemon: expected a boolean (true or false), found a string",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\ncwd = 1\n",
            "3:7: service.web.cwd: expected a string, found an integer",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nenv = [\"A=1\"]\n",
            "3:7: service.web.env: expected a table, found an array",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nenv = { A = 1 }\n",
            "3:13: service.web.env.A: expected a string, found an integer",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\numask = 27\n",
            "3:9: service.web.umask: expected an octal string like \"027\", found an integer",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nstop_timeout = true\n",
            "3:16: service.web.stop_timeout: expected a duration string like \"10s\", found a boolean",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\ninstances = \"4\"\n",
            "3:13: service.web.instances: expected a number, \"cpus\", \"cpus*N\" or \"cpus/N\" (got \"4\")",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\ninstances = \"cpus*20000\"\n",
            "3:13: service.web.instances: expected a number, \"cpus\", \"cpus*N\" or \"cpus/N\", N from 1 to 1000 (got \"cpus*20000\")",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nstop_signal = [15]\n",
            "3:15: service.web.stop_signal: expected a signal name like \"SIGTERM\" or a number, \
             found an array",
        ),
    ]);
}

#[test]
fn durations() {
    let needs_unit = "durations need a unit (ms, s, m or h), e.g. \"10s\"";
    assert_single_errors(&[
        (
            "[service.web]\ncommand = [\"a\"]\nstop_timeout = 10\n",
            &format!("3:16: service.web.stop_timeout: {needs_unit}"),
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nstop_timeout = \"10\"\n",
            &format!("3:16: service.web.stop_timeout: {needs_unit}"),
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nstop_timeout = 1.5\n",
            &format!("3:16: service.web.stop_timeout: {needs_unit}"),
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nready = 2\n",
            &format!("3:9: service.web.ready: {needs_unit}"),
        ),
        (
            "[herd]\nshutdown_timeout = 30\n",
            &format!("2:20: herd.shutdown_timeout: {needs_unit}"),
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nrestart_delay = \"5x\"\n",
            "3:17: service.web.restart_delay: unknown unit `x` in `5x`; use ms, s, m or h, e.g. \"10s\"",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nready = \"soon\"\n",
            "3:9: service.web.ready: invalid ready `soon` (expected \"started\", \"notify\", \"health\" \
             or a duration like \"2s\")",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nrestart_delay = \"2s\"\nrestart_delay_max = \"1s\"\n",
            "4:21: service.web.restart_delay_max: restart_delay_max (1s) must not be less than \
             restart_delay (2s)",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nrestart_delay = \"1m\"\n",
            "3:17: service.web.restart_delay: restart_delay_max (30s) must not be less than \
             restart_delay (1m)",
        ),
    ]);
}

#[test]
fn bad_values() {
    assert_single_errors(&[
        ("[service.web]\nrestart = \"always\"\n", "1:10: service.web: missing required key `command`"),
        (
            "[service.web]\ncommand = []\n",
            "2:11: service.web.command: must not be empty (give at least the program, e.g. [\"/usr/bin/app\"])",
        ),
        (
            "[service.web]\ncommand = [\"\"]\n",
            "2:12: service.web.command: the program (first element) must not be empty",
        ),
        (
            "[service.web]\ncommand = [\"a\", \"b\\u0000\"]\n",
            "2:17: service.web.command: must not contain a NUL character",
        ),
        (
            "[service.\"web@2\"]\ncommand = [\"a\"]\n",
            &format!("1:10: service.\"web@2\": invalid unit name `web@2` ({NAME_RULE})"),
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nrestart = \"sometimes\"\n",
            "3:11: service.web.restart: invalid restart policy `sometimes` (expected \"always\", \
             \"on-failure\" or \"never\")",
        ),
        (
            "[task.t]\ncommand = [\"a\"]\ninstances = 2\n",
            "3:1: task.t.instances: only services have instances",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\ninstances = 10001\n",
            "3:13: service.web.instances: must be at most 10000 (got 10001)",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\ninstances = -1\n",
            "3:13: service.web.instances: must be at least 0 (got -1)",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nstart_limit = 0\n",
            "3:15: service.web.start_limit: must be at least 1 (got 0)",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nstop_signal = \"SIGFOO\"\n",
            "3:15: service.web.stop_signal: unknown signal `SIGFOO` (expected a name like \
             \"SIGTERM\" or \"TERM\", or a number from 1 to 64)",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nstop_signal = 0\n",
            "3:15: service.web.stop_signal: unknown signal `0` (expected a name like \
             \"SIGTERM\" or \"TERM\", or a number from 1 to 64)",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\numask = \"089\"\n",
            "3:9: service.web.umask: invalid umask `089` (expected an octal string from \"000\" \
             to \"777\", like \"027\")",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\numask = \"1000\"\n",
            "3:9: service.web.umask: invalid umask `1000` (expected an octal string from \"000\" \
             to \"777\", like \"027\")",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nenv = { \"A=B\" = \"x\" }\n",
            "3:9: service.web.env.\"A=B\": invalid environment variable name `A=B` (must not \
             contain '=' or NUL)",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nrlimits = { core = -1 }\n",
            "3:20: service.web.rlimits.core: expected a non-negative integer or \"infinity\" (got -1)",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nrlimits = { core = \"unlimited\" }\n",
            "3:20: service.web.rlimits.core: expected a non-negative integer or \"infinity\" \
             (got \"unlimited\")",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nuser = \"\"\n",
            "3:8: service.web.user: must not be empty",
        ),
        ("[herd]\nsocket = \"\"\n", "2:10: herd.socket: must not be empty"),
        (
            "[herd]\ndbus = \"maybe\"\n",
            "2:8: herd.dbus: invalid dbus setting `maybe` (expected \"off\", \"system\", \
             \"session\" or a bus address like \"unix:path=/run/dbus/system_bus_socket\")",
        ),
    ]);
}

#[test]
fn semaphore_and_event_errors() {
    assert_single_errors(&[
        (
            "[semaphore.db]\n",
            "1:12: semaphore.db: missing required key `capacity`",
        ),
        (
            "[semaphore.db]\ncapacity = 0\n",
            "2:12: semaphore.db.capacity: must be at least 1 (got 0)",
        ),
        (
            "[semaphore.db]\ncapacity = 1_000_001\n",
            "2:12: semaphore.db.capacity: must be at most 1000000 (got 1000001)",
        ),
        (
            "[semaphore.db]\ncapacity = \"2\"\n",
            "2:12: semaphore.db.capacity: expected an integer, found a string",
        ),
        (
            "[semaphore.db]\ncapacity = 2\nsize = 3\n",
            "3:1: semaphore.db.size: unknown key `size` (expected one of: capacity)",
        ),
        (
            "[semaphore.\"a b\"]\ncapacity = 1\n",
            &format!("1:12: semaphore.\"a b\": invalid semaphore name `a b` ({NAME_RULE})"),
        ),
        (
            "semaphore = 1\n",
            "1:13: semaphore: expected a table, found an integer",
        ),
        (
            "[semaphore]\ndb = 2\n",
            "2:6: semaphore.db: expected a table, found an integer",
        ),
        (
            "[event.up]\nset = \"yes\"\n",
            "2:7: event.up.set: expected a boolean (true or false), found a string",
        ),
        (
            "[event.up]\nset = true\ninitial = true\n",
            "3:1: event.up.initial: unknown key `initial` (expected one of: set)",
        ),
        (
            "[event.\".up\"]\n",
            &format!("1:8: event.\".up\": invalid event name `.up` ({NAME_RULE})"),
        ),
        (
            "event = []\n",
            "1:9: event: expected a table, found an array",
        ),
    ]);
}

#[test]
fn semaphore_and_event_key_errors() {
    assert_single_errors(&[
        (
            "[service.web]\ncommand = [\"a\"]\nsemaphores = [\"db\", \"nope\"]\n\
             [semaphore.db]\ncapacity = 1\n",
            "3:21: service.web.semaphores: unknown semaphore `nope` (declare it with \
             [semaphore.nope])",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nsemaphores = [\"a b\"]\n",
            "3:15: service.web.semaphores: unknown semaphore `a b` (declare it with \
             [semaphore.\"a b\"])",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nwait_events = [\"up\"]\n",
            "3:16: service.web.wait_events: unknown event `up` (declare it with [event.up])",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nsets_event = \"up\"\n",
            "3:14: service.web.sets_event: unknown event `up` (declare it with [event.up])",
        ),
        (
            "[pool.p]\nsize = 1\nsemaphores = [\"db\"]\n",
            "3:15: pool.p.semaphores: unknown semaphore `db` (declare it with [semaphore.db])",
        ),
        // Only services set events; the name is not looked up.
        (
            "[task.t]\ncommand = [\"a\"]\nsets_event = \"up\"\n",
            "3:1: task.t.sets_event: only services can set events",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nsets_event = [\"up\"]\n",
            "3:14: service.web.sets_event: expected a string, found an array",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nsets_event = \"\"\n",
            "3:14: service.web.sets_event: must not be empty",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nsemaphores = \"db\"\n",
            "3:14: service.web.semaphores: expected an array of strings, found a string",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nwait_events = [1]\n",
            "3:16: service.web.wait_events: expected an array of strings, but this element is \
             an integer",
        ),
        (
            "[pool.p]\nsize = 1\nsemaphores = {}\n",
            "3:14: pool.p.semaphores: expected an array of strings, found a table",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nstart_timeout = \"0s\"\n",
            "3:17: service.web.start_timeout: must be longer than 0s",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nstart_timeout = 90\n",
            "3:17: service.web.start_timeout: durations need a unit (ms, s, m or h), e.g. \"10s\"",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nready = true\n",
            "3:9: service.web.ready: expected \"started\", \"notify\", \"health\" or a duration like \
             \"2s\", found a boolean",
        ),
    ]);
}

/// A semaphore, an event and a unit of the same name are different things:
/// none of them stands in for another.
#[test]
fn names_are_looked_up_among_their_own_kind() {
    assert_single_errors(&[
        (
            "[semaphore.db]\ncapacity = 1\n[service.db]\ncommand = [\"a\"]\nwait_events = [\"db\"]\n",
            "5:16: service.db.wait_events: unknown event `db` (declare it with [event.db])",
        ),
        (
            "[event.db]\n[task.db]\ncommand = [\"a\"]\nsemaphores = [\"db\"]\n",
            "4:15: task.db.semaphores: unknown semaphore `db` (declare it with [semaphore.db])",
        ),
        (
            "[semaphore.db]\ncapacity = 1\n[event.db]\n[pool.db]\nsize = 1\n\
             [service.web]\ncommand = [\"a\"]\nafter = [\"db\"]\n",
            "8:10: service.web.after: unknown unit `db` (no service or task has this name)",
        ),
    ]);
}

#[test]
fn toml_syntax_errors() {
    assert_single_errors(&[
        (
            "[service.web\ncommand = [\"a\"]\n",
            "1:13: unclosed table, expected `]`",
        ),
        (
            "[task.t]\ncommand = [\"a\"\n",
            "2:15: unclosed array, expected `]`",
        ),
        (
            "[task.t]\ncommand = [\"a\"]\ncommand = [\"b\"]\n",
            "3:1: duplicate key",
        ),
    ]);
}

/// Truncating a valid config anywhere, or feeding it odd bytes, must give
/// errors or a config, never a panic.
#[test]
fn never_panics() {
    let text = super::valid::FULL;
    let mut cut = 0;
    while cut < text.len() {
        let _ = crate::parse(std::path::Path::new(MAIN), &text[..cut]);
        cut += text[cut..].chars().next().map_or(1, char::len_utf8);
    }
    let odd = [
        "\u{feff}[service.a]",
        "[service.\"\"]\ncommand=[\"\"]",
        "service.a.after = [\"a\", \"a\"]",
        "[service.a]\ninstances = 99999999999999999999",
        "[service.a]\ncommand = [[\"x\"]]\nenv = { \"\" = \"\" }\nrlimits = 5",
        "[service.é]\ncommand = [\"x\"]\nafter = [\"é\", \"\"]",
    ];
    for text in odd {
        let _ = crate::parse(std::path::Path::new(MAIN), text);
    }
}

#[test]
fn cross_unit_errors() {
    assert_single_errors(&[
        (
            "[service.x]\ncommand = [\"a\"]\n[task.x]\ncommand = [\"b\"]\n",
            &format!("3:7: task.x: unit `x` is already defined as a service at {MAIN}:1:10"),
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nafter = [\"web\"]\n",
            "3:10: service.web.after: `web` cannot be after itself",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nafter = [\"db\", \"nope\"]\n[task.db]\ncommand = [\"b\"]\n",
            "3:16: service.web.after: unknown unit `nope` (no service or task has this name)",
        ),
        (
            "[service.c]\ncommand = [\"c\"]\nafter = [\"a\"]\n\
             [service.a]\ncommand = [\"a\"]\nafter = [\"x\", \"b\"]\n\
             [task.b]\ncommand = [\"b\"]\nafter = [\"c\"]\n\
             [task.x]\ncommand = [\"x\"]\n",
            "6:15: service.a.after: dependency cycle: a -> b -> c -> a (each waits for the next)",
        ),
        (
            "[service.a]\ncommand = [\"a\"]\nafter = [\"b\"]\n[service.b]\ncommand = [\"b\"]\nafter = [\"a\"]\n",
            "3:10: service.a.after: dependency cycle: a -> b -> a (each waits for the next)",
        ),
    ]);
}

#[test]
fn all_errors_in_a_file_are_reported_in_order() {
    let text = "\
[service.web]
command = [\"a\"]
restart = \"sometimes\"
instances = -4
bogus = 1

[task.migrate]
after = [\"ghost\"]
stop_timeout = 5

[pool.p]
size = 0
";
    let expected: Vec<String> = [
        "3:11: service.web.restart: invalid restart policy `sometimes` (expected \"always\", \
         \"on-failure\" or \"never\")",
        "4:13: service.web.instances: must be at least 0 (got -4)",
        &format!("5:1: service.web.bogus: unknown key `bogus` (expected one of: {UNIT_KEYS})"),
        "7:7: task.migrate: missing required key `command`",
        "8:10: task.migrate.after: unknown unit `ghost` (no service or task has this name)",
        "9:16: task.migrate.stop_timeout: durations need a unit (ms, s, m or h), e.g. \"10s\"",
        "12:8: pool.p.size: must be at least 1 (got 0)",
    ]
    .iter()
    .map(|line| format!("{MAIN}:{line}"))
    .collect();
    assert_eq!(errors_of(text), expected);
}

#[test]
fn errors_display_one_per_line() {
    let errors =
        crate::parse(std::path::Path::new(MAIN), "a = 1\nb = 2\n").expect_err("unknown keys");
    let expected = format!(
        "{MAIN}:1:1: a: unknown key `a` (expected one of: {TOP_LEVEL_KEYS})\n\
         {MAIN}:2:1: b: unknown key `b` (expected one of: {TOP_LEVEL_KEYS})"
    );
    assert_eq!(errors.to_string(), expected);
}

#[test]
fn pool_errors() {
    let pool_keys = "size, max_queue, keep_finished, semaphores, task_timeout, retries, \
                     retry_delay, env, env_file, cwd, user, group, umask, \
                     rlimits, no_new_privs, clear_env, memory_max, pids_max, cpu_weight, \
                     stop_signal, stop_timeout, daemon, on_failure, on_failure_timeout";
    assert_single_errors(&[
        (
            "[pool.convert]\nmax_queue = 5\n",
            "1:7: pool.convert: missing required key `size`",
        ),
        (
            "[pool.convert]\n",
            "1:7: pool.convert: missing required key `size`",
        ),
        (
            "[pool.convert]\nsize = 0\n",
            "2:8: pool.convert.size: must be at least 1 (got 0)",
        ),
        (
            "[pool.convert]\nsize = 10001\n",
            "2:8: pool.convert.size: must be at most 10000 (got 10001)",
        ),
        (
            "[pool.convert]\nsize = 1\nmax_queue = 0\n",
            "3:13: pool.convert.max_queue: must be at least 1 (got 0)",
        ),
        (
            "[pool.convert]\nsize = 1\nmax_queue = 1_000_001\n",
            "3:13: pool.convert.max_queue: must be at most 1000000 (got 1000001)",
        ),
        (
            "[pool.convert]\nsize = 1\nkeep_finished = -1\n",
            "3:17: pool.convert.keep_finished: must be at least 0 (got -1)",
        ),
        (
            "[pool.convert]\nsize = 1\nsizes = 2\n",
            &format!("3:1: pool.convert.sizes: unknown key `sizes` (expected one of: {pool_keys})"),
        ),
        (
            "[pool.convert]\nsize = 1\ncommand = [\"a\"]\n",
            &format!(
                "3:1: pool.convert.command: unknown key `command` (expected one of: {pool_keys})"
            ),
        ),
        (
            "[pool.convert]\nsize = 1\nwait_events = [\"db\"]\n",
            &format!(
                "3:1: pool.convert.wait_events: unknown key `wait_events` (expected one of: \
                 {pool_keys})"
            ),
        ),
        (
            "[pool.convert]\nsize = \"2\"\n",
            "2:8: pool.convert.size: expected an integer, found a string",
        ),
        (
            "[pool.convert]\nsize = 2\nkeep_finished = 1.5\n",
            "3:17: pool.convert.keep_finished: expected an integer, found a float",
        ),
        (
            "[pool.convert]\nsize = 2\ndaemon = \"no\"\n",
            "3:10: pool.convert.daemon: expected a boolean (true or false), found a string",
        ),
        (
            "[pool.convert]\nsize = 2\nstop_timeout = 5\n",
            "3:16: pool.convert.stop_timeout: durations need a unit (ms, s, m or h), e.g. \"10s\"",
        ),
        (
            "[pool.convert]\nsize = 2\nrlimits = { files = 1 }\n",
            "3:13: pool.convert.rlimits.files: unknown key `files` (expected one of: \
             nofile, nproc, core, memlock, stack, as, fsize, cpu)",
        ),
        (
            "pool = 1\n",
            "1:8: pool: expected a table, found an integer",
        ),
        (
            "[pool]\nconvert = 2\n",
            "2:11: pool.convert: expected a table, found an integer",
        ),
        (
            "[pool.\"a b\"]\nsize = 1\n",
            &format!("1:7: pool.\"a b\": invalid pool name `a b` ({NAME_RULE})"),
        ),
        (
            "[pool.convert]\nsize = 1\n[service.x]\ncommand = [\"x\"]\n[pool.convert.env]\nA = 1\n",
            "6:5: pool.convert.env.A: expected a string, found an integer",
        ),
        (
            "[pool.convert]\nsize = 1\nenv_file = [\"-\"]\n",
            "3:13: pool.convert.env_file: an env_file path may not be empty",
        ),
        (
            "[pool.convert]\nsize = 1\nenv_file = 3\n",
            "3:12: pool.convert.env_file: expected an array of strings, found an integer",
        ),
        (
            "[pool.convert]\nsize = 1\nretries = -1\n",
            "3:11: pool.convert.retries: must be at least 0 (got -1)",
        ),
        (
            "[pool.convert]\nsize = 1\nretries = 1001\n",
            "3:11: pool.convert.retries: must be at most 1000 (got 1001)",
        ),
        (
            "[pool.convert]\nsize = 1\ntask_timeout = \"0s\"\n",
            "3:16: pool.convert.task_timeout: must be longer than 0s",
        ),
        (
            "[pool.convert]\nsize = 1\nretry_delay = 5\n",
            "3:15: pool.convert.retry_delay: durations need a unit (ms, s, m or h), e.g. \"10s\"",
        ),
    ]);
}

#[test]
fn socket_errors() {
    assert_single_errors(&[
        (
            "[socket.web]\nlisten = \"localhost:80\"\n",
            "2:10: socket.web.listen: invalid listen address `localhost:80` (expected IP:PORT \
             like \"127.0.0.1:8080\" or \"[::1]:8080\", or an absolute path for a Unix socket)",
        ),
        (
            "[socket.web]\nbacklog = 8\n",
            "1:9: socket.web: missing required key `listen`",
        ),
        (
            "[socket.web]\nlisten = \"127.0.0.1:80\"\nmode = \"0660\"\n",
            "1:9: socket.web: `mode`, `user` and `group` apply to Unix sockets only",
        ),
        (
            "[socket.web]\nlisten = \"/run/web.sock\"\nmode = \"rw\"\n",
            "3:8: socket.web.mode: invalid mode `rw` (expected an octal string like \"0660\")",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nsockets = [\"nope\"]\n",
            "3:12: service.web.sockets: unknown socket `nope` (declare it with [socket.nope])",
        ),
        (
            "[task.t]\ncommand = [\"a\"]\nsockets = []\n",
            "3:1: task.t.sockets: only services have sockets",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nupdate = \"sometimes\"\n",
            "3:10: service.web.update: invalid update `sometimes` (expected \"rolling\" or \
             \"parallel\")",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nmax_unavailable = 0\n",
            "3:19: service.web.max_unavailable: must be at least 1 (got 0)",
        ),
    ]);
}

#[test]
fn health_probe_errors() {
    const KEYS: &str = "command, http, tcp, interval, timeout, retries, start_period";
    let unknown =
        format!("3:25: service.web.health.port: unknown key `port` (expected one of: {KEYS})");
    assert_single_errors(&[
        (
            "[service.web]\ncommand = [\"a\"]\nhealth = { http = \"http://a:1/\", tcp = \"a:1\" }\n",
            "3:34: service.web.health.tcp: a probe is one of command, http or tcp: `http` is \
             already set",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nhealth = { interval = \"1s\" }\n",
            "3:10: service.web.health: missing the probe: one of `command`, `http` or `tcp`",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nhealth = { tcp = \"a:1\", interval = \"5x\" }\n",
            "3:36: service.web.health.interval: unknown unit `x` in `5x`; use ms, s, m or h, e.g. \
             \"10s\"",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nhealth = { tcp = \"a:1\", timeout = \"0s\" }\n",
            "3:35: service.web.health.timeout: must be longer than 0s",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nhealth = { tcp = \"a:1\", retries = 0 }\n",
            "3:35: service.web.health.retries: must be at least 1 (got 0)",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nhealth = { tcp = \"a\" }\n",
            "3:18: service.web.health.tcp: expected HOST:PORT like \"127.0.0.1:8080\" (got \"a\")",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nhealth = { http = \"https://a/\" }\n",
            "3:19: service.web.health.http: expected a URL like \
             \"http://127.0.0.1:8080/healthz\" (got \"https://a/\")",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nhealth = { tcp = \"a:1\", port = 1 }\n",
            &unknown,
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nready = \"health\"\n",
            "3:9: service.web.ready: ready = \"health\" needs a `health` probe",
        ),
        (
            "[task.t]\ncommand = [\"a\"]\nhealth = { tcp = \"a:1\" }\n",
            "3:1: task.t.health: only services have health probes",
        ),
    ]);
}

#[test]
fn timer_errors() {
    assert_single_errors(&[
        (
            "[task.t]\ncommand = [\"a\"]\nschedule = \"*/15 * * *\"\n",
            "3:12: task.t.schedule: invalid cron expression \"*/15 * * *\": expected 5 fields \
             (minute hour day month weekday) or 6 with seconds first, got 4",
        ),
        (
            "[task.t]\ncommand = [\"a\"]\nevery = \"0s\"\n",
            "3:9: task.t.every: must be longer than 0s",
        ),
        (
            "[task.t]\ncommand = [\"a\"]\nschedule = \"@daily\"\nevery = \"1h\"\n",
            "4:9: task.t.every: a task has either `schedule` or `every`, not both",
        ),
        (
            "[task.t]\ncommand = [\"a\"]\nevery = \"1h\"\npool = \"nope\"\n",
            "4:8: task.t.pool: unknown pool `nope` (declare it with [pool.nope])",
        ),
        (
            "[task.t]\ncommand = [\"a\"]\nevery = \"1h\"\noverlap = \"skp\"\n",
            "4:11: task.t.overlap: invalid overlap `skp` (expected \"skip\", \"queue\" or \
             \"allow\")",
        ),
        (
            "[task.t]\ncommand = [\"a\"]\nevery = \"1h\"\noverlap = \"allow\"\n",
            "4:11: task.t.overlap: overlap = \"allow\" needs `pool`: a task runs one process \
             at a time, a pool runs several",
        ),
        (
            "[task.t]\ncommand = [\"a\"]\nevery = \"1h\"\nevery_from = \"middle\"\n",
            "4:14: task.t.every_from: invalid every_from `middle` (expected \"end\" or \"start\")",
        ),
        (
            "[task.t]\ncommand = [\"a\"]\npersistent = true\n",
            "3:14: task.t.persistent: needs `schedule` or `every` in the same task",
        ),
        (
            "[service.s]\ncommand = [\"a\"]\nschedule = \"@daily\"\n",
            "3:1: service.s.schedule: only tasks run on a timer",
        ),
        (
            "[task.t]\ncommand = [\"a\"]\nschedule = \"0 0 31 2 *\"\n",
            "3:12: task.t.schedule: invalid cron expression \"0 0 31 2 *\": \
             it never comes (no such date)",
        ),
    ]);
}
