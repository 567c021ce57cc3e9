//! Bounded queues: a task that writes faster than herdd can take its output
//! is slowed down, not allowed to grow herdd's memory, and herdd keeps
//! answering meanwhile.

use crate::harness::*;

/// Peak resident memory of `pid` so far (`VmHWM`), in KiB.
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[test]
fn tasks_flooding_their_output_cannot_grow_herdd() {
    const TASKS: usize = 8;
    // What herdd may keep: 4 MiB of capture per task (32 MiB), one read
    // buffer and herdd itself, with the allocator's slack: a debug herdd
    // peaks near 80 MB here. Output waits in the tasks' pipes until herdd
    // reads it (shell/output.rs); this is the whole daemon's bound.
    const MAX_PEAK_KB: u64 = 128 * 1024;
    let herd = Herd::start(
        r#"
[pool.flood]
size = 8
"#,
    );
    let ids: Vec<String> = (0..TASKS)
        .map(|_| {
            herd.ok(&[
                "submit",
                "flood",
                "--",
                "/bin/sh",
                "-c",
                "head -c 50000000 /dev/zero",
            ])
            .trim()
            .to_string()
        })
        .collect();
    // herdd answers while the tasks flood it.
    for _ in 0..5 {
        herd.ok(&["status"]);
        herd.ok(&["tasks"]);
    }
    let mut join = vec!["join"];
    join.extend(ids.iter().map(String::as_str));
    let out = herd.ctl(&join);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Every byte was taken (counted), none lost to the bound.
    for id in &ids {
        let request = format!("{{\"v\":1,\"cmd\":\"output\",\"id\":{id}}}\n");
        let reply: serde_json::Value = serde_json::from_str(&herd.raw(request.as_bytes())).unwrap();
        assert_eq!(reply["ok"]["total_bytes"], 50_000_000u64, "task {id}");
    }
    let peak = peak_rss_kb(herd.daemon_pid());
    assert!(peak < MAX_PEAK_KB, "herdd peaked at {peak} kB");
}
