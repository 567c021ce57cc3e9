//! The failure hook keys of units and pools: `on_failure`, `on_failure_timeout`.

use std::path::Path;
use std::time::Duration;

use super::{assert_single_errors, MAIN};
use crate::*;

#[test]
fn services_tasks_and_pools_take_a_hook() {
    let text = r#"
[service.web]
command = ["a"]
on_failure = ["/usr/local/bin/alert", "{unit}", "{instance}"]
on_failure_timeout = "5s"

[task.migrate]
command = ["a"]
on_failure = ["alert"]

[pool.convert]
size = 2
on_failure = ["alert", "{reason}"]

[service.plain]
command = ["a"]
"#;
    let config = parse(Path::new(MAIN), text).unwrap_or_else(|errors| panic!("{errors}"));
    let unit = |name: &str| {
        let unit = config.units.iter().find(|u| u.name == name).unwrap();
        unit.on_failure.clone()
    };
    assert_eq!(
        unit("web"),
        FailureHook {
            command: vec![
                "/usr/local/bin/alert".into(),
                "{unit}".into(),
                "{instance}".into()
            ],
            timeout: Duration::from_secs(5),
        }
    );
    assert_eq!(unit("migrate").command, ["alert"]);
    assert_eq!(unit("migrate").timeout, Duration::from_secs(60));
    assert_eq!(unit("plain"), FailureHook::default());
    assert!(unit("plain").command.is_empty(), "no hook without the key");
    assert_eq!(config.pools[0].on_failure.command, ["alert", "{reason}"]);
}

#[test]
fn bad_hooks_are_errors_at_their_place() {
    assert_single_errors(&[
        (
            "[service.web]\ncommand = [\"a\"]\non_failure = \"/usr/local/bin/alert\"\n",
            "3:14: service.web.on_failure: expected an array of strings, found a string",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\non_failure = []\n",
            "3:14: service.web.on_failure: must not be empty (give at least the program, \
             e.g. [\"/usr/bin/app\"])",
        ),
        (
            "[task.t]\ncommand = [\"a\"]\non_failure = [\"\"]\n",
            "3:15: task.t.on_failure: the program (first element) must not be empty",
        ),
        (
            "[pool.p]\nsize = 1\non_failure = [\"alert\", 3]\n",
            "3:24: pool.p.on_failure: expected an array of strings, but this element is an integer",
        ),
        (
            "[pool.p]\nsize = 1\non_failure = [\"alert\"]\non_failure_timeout = \"0s\"\n",
            "4:22: pool.p.on_failure_timeout: must be longer than 0s",
        ),
    ]);
}
