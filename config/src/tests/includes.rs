//! Includes, read from a temporary directory.

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::{load, parse, Config, ConfigErrors, EventConfig, SemaphoreConfig};

/// A config tree on disk: `files` are `(relative path, text)`.
fn tree(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, text) in files {
        let path = dir.path().join(name);
        fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    }
    dir
}

fn load_ok(main: &Path) -> Config {
    load(main).unwrap_or_else(|errors| panic!("{errors}"))
}

fn load_errors(main: &Path) -> Vec<String> {
    let errors: ConfigErrors = load(main).expect_err("errors");
    errors.0.iter().map(ToString::to_string).collect()
}

fn names(config: &Config) -> Vec<&str> {
    config.units.iter().map(|unit| unit.name.as_str()).collect()
}

#[test]
fn globs_merge_units_from_every_file() {
    let dir = tree(&[
        (
            "herd.toml",
            "include = [\"conf.d/*.toml\", \"conf.d/a.toml\", \"empty/*.toml\"]\n\
             [service.main]\ncommand = [\"m\"]\nafter = [\"b\", \"nested\"]\n",
        ),
        (
            "conf.d/a.toml",
            "include = [\"../more/*.toml\"]\n[service.a]\ncommand = [\"a\"]\n",
        ),
        (
            "conf.d/b.toml",
            "[task.b]\ncommand = [\"b\"]\ncwd = \"work\"\n",
        ),
        ("conf.d/.a.toml.swp.toml", "this is not toml"),
        ("conf.d/notes.txt", "not included"),
        (
            "conf.d/dir.toml/x.toml",
            "[task.ignored]\ncommand = [\"x\"]\n",
        ),
        // Includes the main file again: read once, no duplicates.
        (
            "more/nested.toml",
            "include = [\"../herd.toml\"]\n[task.nested]\ncommand = [\"n\"]\n",
        ),
    ]);
    let config = load_ok(&dir.path().join("herd.toml"));
    assert_eq!(names(&config), ["a", "b", "main", "nested"]);
    assert_eq!(config.path, dir.path().join("herd.toml"));
    let b = &config.units[1];
    assert_eq!(
        b.cwd.as_deref(),
        Some(dir.path().join("conf.d/work").as_path())
    );
}

#[test]
fn parse_reads_includes_relative_to_the_given_path() {
    let dir = tree(&[("conf.d/a.toml", "[service.a]\ncommand = [\"a\"]\n")]);
    let main = dir.path().join("herd.toml");
    let config = parse(&main, "include = [\"conf.d/*.toml\"]\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(names(&config), ["a"]);
}

#[test]
fn errors_name_the_file_they_are_in_and_come_in_read_order() {
    let dir = tree(&[
        (
            "herd.toml",
            "include = [\"conf.d/*.toml\"]\n[service.web]\ncommand = [\"w\"]\nrestart = \"no\"\n",
        ),
        (
            "conf.d/a.toml",
            "[service.a]\ncommand = [\"a\"]\n\nstop_timeout = 5\n",
        ),
        (
            "conf.d/b.toml",
            "[herd]\nsocket = \"/x\"\n[service.web]\ncommand = [\"again\"]\n",
        ),
    ]);
    let main = dir.path().join("herd.toml");
    let a = dir.path().join("conf.d/a.toml");
    let b = dir.path().join("conf.d/b.toml");
    let expected = [
        format!(
            "{}:4:11: service.web.restart: invalid restart policy `no` (expected \"always\", \
             \"on-failure\" or \"never\")",
            main.display()
        ),
        format!(
            "{}:4:16: service.a.stop_timeout: durations need a unit (ms, s, m or h), e.g. \"10s\"",
            a.display()
        ),
        format!(
            "{}:1:2: herd: `[herd]` is only allowed in the main config file, not in an included one",
            b.display()
        ),
        format!(
            "{}:3:10: service.web: unit `web` is already defined as a service at {}:2:10",
            b.display(),
            main.display()
        ),
    ];
    assert_eq!(load_errors(&main), expected);
}

#[test]
fn a_missing_named_include_is_an_error_but_an_empty_glob_is_not() {
    let dir = tree(&[("herd.toml", "include = [\"none/*.toml\", \"extra.toml\"]\n")]);
    let main = dir.path().join("herd.toml");
    let expected = format!(
        "{}:1:27: include: included file `{}` does not exist",
        main.display(),
        dir.path().join("extra.toml").display()
    );
    assert_eq!(load_errors(&main), [expected]);
}

#[test]
fn an_unreadable_file_is_an_error_at_its_start() {
    let missing = PathBuf::from("/nonexistent/herd.toml");
    let errors = load_errors(&missing);
    assert_eq!(
        errors,
        ["/nonexistent/herd.toml:1:1: cannot read file: No such file or directory (os error 2)"]
    );
    let error = &load(&missing).expect_err("errors").0[0];
    assert_eq!((error.line, error.column, error.key.as_str()), (1, 1, ""));
}

/// What a file with a syntax error defines is unknown, so `after`,
/// `semaphores` and events naming what it may define must not add false
/// "unknown unit" (semaphore, event) errors to the real one.
#[test]
fn a_broken_include_does_not_cause_unknown_unit_errors() {
    let dir = tree(&[
        (
            "herd.toml",
            "include = [\"conf.d/*.toml\"]\n[service.web]\ncommand = [\"w\"]\nafter = [\"db\"]\n\
             semaphores = [\"db\"]\nwait_events = [\"db-up\"]\nsets_event = \"web-up\"\n",
        ),
        ("conf.d/db.toml", "[service.db]\ncommand = [\"d\"\n"),
    ]);
    let errors = load_errors(&dir.path().join("herd.toml"));
    let db = dir.path().join("conf.d/db.toml");
    assert_eq!(
        errors,
        [format!(
            "{}:2:15: unclosed array, expected `]`",
            db.display()
        )]
    );
}

#[test]
fn after_and_cycles_work_across_files() {
    let dir = tree(&[
        (
            "herd.toml",
            "include = [\"conf.d/*.toml\"]\n[service.web]\ncommand = [\"w\"]\nafter = [\"db\", \"cache\"]\n",
        ),
        ("conf.d/db.toml", "[service.db]\ncommand = [\"d\"]\nafter = [\"web\"]\n"),
    ]);
    let main = dir.path().join("herd.toml");
    let db = dir.path().join("conf.d/db.toml");
    let expected = [
        format!(
            "{}:4:16: service.web.after: unknown unit `cache` (no service or task has this name)",
            main.display()
        ),
        format!(
            "{}:3:10: service.db.after: dependency cycle: db -> web -> db (each waits for the next)",
            db.display()
        ),
    ];
    assert_eq!(load_errors(&main), expected);
}

#[test]
fn pools_may_be_defined_in_included_files_but_only_once() {
    let dir = tree(&[
        (
            "herd.toml",
            "include = [\"conf.d/*.toml\"]\n[pool.b]\nsize = 1\n\n[pool.convert]\nsize = 2\n",
        ),
        (
            "conf.d/a.toml",
            "[pool.a]\nsize = 1\ncwd = \"work\"\n\n[pool.convert]\nsize = 4\n",
        ),
        ("conf.d/b.toml", "[pool.convert]\nsize = 8\n"),
    ]);
    let main = dir.path().join("herd.toml");
    let a = dir.path().join("conf.d/a.toml");
    let b = dir.path().join("conf.d/b.toml");
    let first = format!("{}:5:7", main.display());
    let expected = [
        format!(
            "{}:5:7: pool.convert: pool `convert` is already defined at {first}",
            a.display()
        ),
        format!(
            "{}:1:7: pool.convert: pool `convert` is already defined at {first}",
            b.display()
        ),
    ];
    assert_eq!(load_errors(&main), expected);

    fs::remove_file(&b).expect("rm");
    fs::write(&a, "[pool.a]\nsize = 1\ncwd = \"work\"\n").expect("write");
    let config = load_ok(&main);
    let pools: Vec<(&str, u32)> = config
        .pools
        .iter()
        .map(|pool| (pool.name.as_str(), pool.size))
        .collect();
    assert_eq!(pools, [("a", 1), ("b", 1), ("convert", 2)]);
    assert_eq!(
        config.pools[0].cwd.as_deref(),
        Some(dir.path().join("conf.d/work").as_path())
    );
}

#[test]
fn semaphores_and_events_may_be_defined_in_included_files_but_only_once() {
    let dir = tree(&[
        (
            "herd.toml",
            "include = [\"conf.d/*.toml\"]\n[semaphore.db]\ncapacity = 2\n\n\
             [service.web]\ncommand = [\"w\"]\nsemaphores = [\"db\", \"cpu\"]\nwait_events = [\"up\"]\n",
        ),
        (
            "conf.d/a.toml",
            "[semaphore.cpu]\ncapacity = 4\n\n[event.up]\nset = true\n\n\
             [pool.p]\nsize = 1\nsemaphores = [\"db\"]\n",
        ),
    ]);
    let main = dir.path().join("herd.toml");
    let config = load_ok(&main);
    let semaphore = |name: &str, capacity| SemaphoreConfig {
        name: name.to_string(),
        capacity,
    };
    assert_eq!(config.semaphores, [semaphore("cpu", 4), semaphore("db", 2)]);
    let up = EventConfig {
        name: "up".to_string(),
        set: true,
    };
    assert_eq!(config.events, [up]);
    assert_eq!(config.units[0].semaphores, ["db", "cpu"]);
    assert_eq!(config.units[0].wait_events, ["up"]);
    assert_eq!(config.pools[0].semaphores, ["db"]);

    let a = dir.path().join("conf.d/a.toml");
    let b = dir.path().join("conf.d/b.toml");
    fs::write(&b, "[event.up]\n\n[semaphore.db]\ncapacity = 1\n").expect("write");
    let expected = [
        format!(
            "{}:1:8: event.up: event `up` is already defined at {}:4:8",
            b.display(),
            a.display()
        ),
        format!(
            "{}:3:12: semaphore.db: semaphore `db` is already defined at {}:2:12",
            b.display(),
            main.display()
        ),
    ];
    assert_eq!(load_errors(&main), expected);
}

/// `mkfifo path` (the test process has no reason to lack the right).
fn make_fifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success());
}

#[test]
fn a_fifo_include_is_refused_without_waiting_for_a_writer() {
    let dir = tree(&[("herd.toml", "include = [\"conf.d/*.toml\"]\n")]);
    fs::create_dir_all(dir.path().join("conf.d")).unwrap();
    let fifo = dir.path().join("conf.d/pipe.toml");
    make_fifo(&fifo);
    let main = dir.path().join("herd.toml");
    let expected = format!(
        "{}:1:1: include: {}: cannot read file: it is a FIFO, not a regular file",
        main.display(),
        fifo.display()
    );
    assert_eq!(load_errors(&main), [expected]);
}

#[test]
fn a_device_include_is_refused_without_reading_it() {
    let dir = tree(&[("herd.toml", "include = [\"/dev/zero\"]\n")]);
    let main = dir.path().join("herd.toml");
    let expected = format!(
        "{}:1:1: include: /dev/zero: cannot read file: it is a device, not a regular file",
        main.display()
    );
    assert_eq!(load_errors(&main), [expected]);
}

#[test]
fn a_file_larger_than_the_cap_is_refused() {
    let big = format!("# {}\n", "x".repeat(crate::source::MAX_FILE_BYTES as usize));
    let dir = tree(&[
        ("herd.toml", "include = [\"big.toml\"]\n"),
        ("big.toml", &big),
    ]);
    let main = dir.path().join("herd.toml");
    let expected = format!(
        "{}:1:1: include: {}: cannot read file: larger than {} bytes",
        main.display(),
        dir.path().join("big.toml").display(),
        crate::source::MAX_FILE_BYTES
    );
    assert_eq!(load_errors(&main), [expected]);
}

#[test]
fn includes_nested_beyond_the_cap_are_an_error_not_a_stack_overflow() {
    let depth = 5000;
    let files: Vec<(String, String)> = (0..depth)
        .map(|i| {
            let name = if i == 0 {
                "herd.toml".to_string()
            } else {
                format!("f{i}.toml")
            };
            (name, format!("include = [\"f{}.toml\"]\n", i + 1))
        })
        .chain([(format!("f{depth}.toml"), String::new())])
        .collect();
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let dir = tree(&borrowed);
    let main = dir.path().join("herd.toml");
    let cap = crate::loader::MAX_INCLUDE_DEPTH;
    let expected = format!(
        "{}:1:1: include: includes are nested more than {cap} levels deep; not reading {}",
        dir.path().join(format!("f{cap}.toml")).display(),
        dir.path().join(format!("f{}.toml", cap + 1)).display()
    );
    assert_eq!(load_errors(&main), [expected]);
    // Exactly at the cap is fine.
    let at_cap = dir.path().join(format!("f{}.toml", cap));
    fs::write(&at_cap, "").unwrap();
    load_ok(&main);
}
