//! What instances and tasks cost, in `status` and `tasks`: memory, CPU time
//! and processes, read from their cgroups (or /proc) when asked.

use crate::harness::*;

const MIB: u64 = 1024 * 1024;

#[test]
fn a_service_holding_60_mib_shows_at_least_50_mib() {
    let herd = Herd::start(
        r#"
[service.hog]
command = ["python3", "-c", "import sys, time; b = b'x' * (60 << 20); print('held', flush=True); time.sleep(600)"]
[service.idle]
command = ["sleep", "600"]
"#,
    );
    herd.wait_for("hog to hold its memory", |h| {
        h.instance("hog")["memory_bytes"]
            .as_u64()
            .is_some_and(|bytes| bytes >= 50 * MIB)
    });
    let hog = herd.instance("hog");
    assert!(hog["processes"].as_u64().unwrap() >= 1, "{hog}");
    assert!(hog["cpu_usec"].as_u64().is_some(), "{hog}");
    let idle = herd.instance("idle");
    assert!(
        idle["memory_bytes"].as_u64().unwrap() < 50 * MIB,
        "idle is charged only its own memory: {idle}"
    );
    // The table has the columns, sizes in human units.
    let table = herd.ok(&["status"]);
    assert!(table.lines().next().unwrap().contains("MEMORY"), "{table}");
    let hog_row = table.lines().find(|l| l.starts_with("hog ")).unwrap();
    assert!(hog_row.contains('M'), "{table}");
    let block = herd.ok(&["status", "hog"]);
    assert!(block.contains("Memory: "), "{block}");
    assert!(block.contains("Tasks: 1"), "{block}");
}

#[test]
fn a_stopped_instance_reports_no_usage() {
    let herd = Herd::start(
        r#"
[service.idle]
command = ["sleep", "600"]
"#,
    );
    herd.wait_state("idle", "running");
    herd.ok(&["stop", "idle"]);
    let idle = herd.instance("idle");
    assert!(idle.get("memory_bytes").is_none(), "{idle}");
    assert!(idle.get("processes").is_none(), "{idle}");
}

#[test]
fn a_cpu_burning_task_shows_cpu_time_growing() {
    let herd = Herd::start(
        r#"
[pool.p]
size = 1
stop_timeout = "300ms"
"#,
    );
    let id: u64 = herd
        .ok(&["submit", "p", "--", "sh", "-c", "while :; do :; done"])
        .trim()
        .parse()
        .unwrap();
    let cpu = |herd: &Herd| -> Option<u64> {
        let tasks: serde_json::Value =
            serde_json::from_str(&herd.ok(&["--json", "tasks"])).unwrap();
        tasks["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)?["cpu_usec"]
            .as_u64()
    };
    herd.wait_for("the task to use CPU", |h| cpu(h).is_some_and(|u| u > 0));
    let first = cpu(&herd).unwrap();
    herd.wait_for("its CPU time to grow", |h| {
        cpu(h).is_some_and(|u| u >= first + 100_000)
    });
    herd.ok(&["cancel", &id.to_string()]);
}

#[test]
fn every_process_of_a_service_is_counted() {
    let herd = Herd::start(
        r#"
[service.family]
command = ["sh", "-c", "sleep 600 & sleep 600 & wait"]
"#,
    );
    herd.wait_for("three processes", |h| {
        h.instance("family")["processes"].as_u64() == Some(3)
    });
}
