//! The least-privilege keys: `no_new_privs`, `clear_env`, `memory_max`,
//! `pids_max`, `cpu_weight` — for services, tasks and pools alike.

use std::path::Path;

use super::{assert_single_errors, MAIN};
use crate::*;

fn parse_ok(text: &str) -> Config {
    parse(Path::new(MAIN), text).unwrap_or_else(|errors| panic!("{errors}\nfor:\n{text}"))
}

#[test]
fn off_by_default() {
    let config = parse_ok(
        "[service.a]\ncommand = [\"a\"]\n[task.b]\ncommand = [\"b\"]\n[pool.c]\nsize = 1\n",
    );
    for unit in &config.units {
        assert_eq!(unit.confinement, Confinement::default(), "{}", unit.name);
    }
    assert_eq!(config.pools[0].confinement, Confinement::default());
}

#[test]
fn every_key_on_services_tasks_and_pools() {
    let keys = "no_new_privs = true\nclear_env = true\nmemory_max = \"512M\"\n\
                pids_max = 10\ncpu_weight = 50\n";
    let text = format!(
        "[service.a]\ncommand = [\"a\"]\n{keys}[task.b]\ncommand = [\"b\"]\n{keys}\
         [pool.c]\nsize = 1\n{keys}"
    );
    let config = parse_ok(&text);
    let expected = Confinement {
        no_new_privs: true,
        clear_env: true,
        memory_max: Some(512 << 20),
        pids_max: Some(10),
        cpu_weight: Some(50),
    };
    assert_eq!(config.units.len(), 2);
    for unit in &config.units {
        assert_eq!(unit.confinement, expected, "{}", unit.name);
    }
    assert_eq!(config.pools[0].confinement, expected);
}

/// Each spelling of one key and the value it must give.
#[test]
fn accepted_spellings() {
    type Check = fn(&Confinement) -> bool;
    let cases: &[(&str, Check)] = &[
        ("memory_max = \"max\"", |c| c.memory_max.is_none()),
        ("memory_max = 1048576", |c| c.memory_max == Some(1 << 20)),
        ("memory_max = \"4096\"", |c| c.memory_max == Some(4096)),
        ("memory_max = \"64k\"", |c| c.memory_max == Some(64 << 10)),
        ("memory_max = \"64K\"", |c| c.memory_max == Some(64 << 10)),
        ("memory_max = \"2G\"", |c| c.memory_max == Some(2 << 30)),
        ("memory_max = \"1T\"", |c| c.memory_max == Some(1 << 40)),
        ("pids_max = \"max\"", |c| c.pids_max.is_none()),
        ("pids_max = 1", |c| c.pids_max == Some(1)),
        ("pids_max = 4_194_304", |c| c.pids_max == Some(4_194_304)),
        ("cpu_weight = 1", |c| c.cpu_weight == Some(1)),
        ("cpu_weight = 10000", |c| c.cpu_weight == Some(10_000)),
        ("no_new_privs = false", |c| !c.no_new_privs),
        ("clear_env = false", |c| !c.clear_env),
    ];
    for (line, check) in cases {
        let config = parse_ok(&format!("[service.a]\ncommand = [\"a\"]\n{line}\n"));
        assert!(
            check(&config.units[0].confinement),
            "{line}: {:?}",
            config.units[0].confinement
        );
    }
}

#[test]
fn errors() {
    let size = "a size like \"512K\", \"10MiB\" or \"1G\", a number of bytes, or \"max\"";
    let cases = [
        (
            "no_new_privs = 1".to_string(),
            "3:16: service.a.no_new_privs: expected a boolean (true or false), found an integer"
                .to_string(),
        ),
        (
            "clear_env = \"yes\"".to_string(),
            "3:13: service.a.clear_env: expected a boolean (true or false), found a string"
                .to_string(),
        ),
        (
            "memory_max = \"512XB\"".to_string(),
            format!("3:14: service.a.memory_max: invalid size `512XB` (expected {size})"),
        ),
        (
            "memory_max = \"1.5G\"".to_string(),
            format!("3:14: service.a.memory_max: invalid size `1.5G` (expected {size})"),
        ),
        (
            "memory_max = \"\"".to_string(),
            format!("3:14: service.a.memory_max: invalid size `` (expected {size})"),
        ),
        (
            "memory_max = \"99999999999T\"".to_string(),
            format!("3:14: service.a.memory_max: invalid size `99999999999T` (expected {size})"),
        ),
        (
            "memory_max = \"0M\"".to_string(),
            "3:14: service.a.memory_max: must be more than 0 bytes".to_string(),
        ),
        (
            "memory_max = 0".to_string(),
            "3:14: service.a.memory_max: must be at least 1 (got 0)".to_string(),
        ),
        (
            "memory_max = true".to_string(),
            format!("3:14: service.a.memory_max: expected {size}, found a boolean"),
        ),
        (
            "pids_max = 0".to_string(),
            "3:12: service.a.pids_max: must be at least 1 (got 0)".to_string(),
        ),
        (
            "pids_max = 5000000".to_string(),
            "3:12: service.a.pids_max: must be at most 4194304 (got 5000000)".to_string(),
        ),
        (
            "pids_max = \"10\"".to_string(),
            "3:12: service.a.pids_max: expected a positive integer or \"max\", found a string"
                .to_string(),
        ),
        (
            "cpu_weight = 0".to_string(),
            "3:14: service.a.cpu_weight: must be at least 1 (got 0)".to_string(),
        ),
        (
            "cpu_weight = 10001".to_string(),
            "3:14: service.a.cpu_weight: must be at most 10000 (got 10001)".to_string(),
        ),
        (
            "cpu_weight = \"max\"".to_string(),
            "3:14: service.a.cpu_weight: expected an integer, found a string".to_string(),
        ),
    ];
    let texts: Vec<(String, String)> = cases
        .iter()
        .map(|(line, error)| {
            (
                format!("[service.a]\ncommand = [\"a\"]\n{line}\n"),
                error.clone(),
            )
        })
        .collect();
    let borrowed: Vec<(&str, &str)> = texts
        .iter()
        .map(|(text, error)| (text.as_str(), error.as_str()))
        .collect();
    assert_single_errors(&borrowed);
}

#[test]
fn pools_report_errors_under_their_own_key() {
    assert_single_errors(&[(
        "[pool.p]\nsize = 1\npids_max = -1\n",
        "3:12: pool.p.pids_max: must be at least 1 (got -1)",
    )]);
}
