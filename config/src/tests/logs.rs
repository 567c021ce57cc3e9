//! The log keys: `[herd] log_max_size/log_keep` and a unit's `log`,
//! `log_max_size`, `log_keep`.

use std::path::Path;

use super::{assert_single_errors, MAIN};
use crate::*;

#[test]
fn defaults_and_overrides() {
    let text = r#"
[herd]
log_max_size = "512K"
log_keep = 2
journal_socket = "journal.sock"

[service.web]
command = ["a"]
log_max_size = 1048576
log_keep = 0

[service.quiet]
command = ["a"]
log = "off"

[task.migrate]
command = ["a"]
log = "inherit"
log_max_size = "1G"

[service.plain]
command = ["a"]
log = "file"

[service.journaled]
command = ["a"]
log = "journal"

[task.shown]
command = ["a"]
log = "console"
"#;
    let config = parse(Path::new(MAIN), text).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(config.herd.log_max_size, 512 * 1024);
    assert_eq!(config.herd.log_keep, 2);
    // Relative to the config file's directory, like every path in `[herd]`.
    let main_dir = Path::new(MAIN).parent().unwrap();
    assert_eq!(config.herd.journal_socket, main_dir.join("journal.sock"));
    let log = |name: &str| config.units.iter().find(|u| u.name == name).unwrap().log;
    assert_eq!(
        log("web"),
        UnitLog {
            mode: LogMode::File,
            max_size: Some(1 << 20),
            keep: Some(0),
        }
    );
    assert_eq!(log("quiet").mode, LogMode::Off);
    assert_eq!(
        log("migrate"),
        UnitLog {
            mode: LogMode::Inherit,
            max_size: Some(1 << 30),
            keep: None,
        }
    );
    assert_eq!(log("plain"), UnitLog::default());
    assert_eq!(log("journaled").mode, LogMode::Journal);
    assert_eq!(log("shown").mode, LogMode::Console);

    let defaults = parse(Path::new(MAIN), "").unwrap();
    assert_eq!(defaults.herd.log_max_size, 10 << 20);
    assert_eq!(defaults.herd.log_keep, 5);
    assert_eq!(
        defaults.herd.journal_socket,
        Path::new("/run/systemd/journal/socket")
    );
}

#[test]
fn bad_values() {
    assert_single_errors(&[
        (
            "[service.web]\ncommand = [\"a\"]\nlog = \"journald\"\n",
            "3:7: service.web.log: invalid log `journald` (expected \"file\", \"inherit\", \"off\", \
             \"journal\" or \"console\")",
        ),
        (
            "[service.web]\ncommand = [\"a\"]\nlog = true\n",
            "3:7: service.web.log: expected a string, found a boolean",
        ),
        (
            "[herd]\nlog_max_size = \"10 MB\"\n",
            "2:16: herd.log_max_size: invalid size `10 MB` (expected a size like \"512K\", \
             \"10MiB\" or \"1G\", or a number of bytes)",
        ),
        (
            "[herd]\nlog_max_size = \"0K\"\n",
            "2:16: herd.log_max_size: must be more than 0 bytes",
        ),
        (
            "[herd]\nlog_max_size = 0\n",
            "2:16: herd.log_max_size: must be at least 1 (got 0)",
        ),
        (
            "[task.t]\ncommand = [\"a\"]\nlog_keep = -1\n",
            "3:12: task.t.log_keep: must be at least 0 (got -1)",
        ),
        (
            "[herd]\nlog_keep = 1001\n",
            "2:12: herd.log_keep: must be at most 1000 (got 1001)",
        ),
    ]);
}
