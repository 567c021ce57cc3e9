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

#[test]
fn many_instances_each_get_their_own_figures() {
    // Enough instances that herdd reads them on two threads (leaders'
    // stat on one, cgroup member lists on the other): a figure given to
    // the wrong instance, or a member missed, shows here. Instance 7 is a
    // 60 MiB leader, instance 8 a shell whose child holds 60 MiB; the
    // others are a lone `sleep`.
    let herd = Herd::start(
        r#"
[service.many]
instances = 40
command = ["sh", "-c", "case {instance} in 7) exec python3 -c \"$HOG\";; 8) python3 -c \"$HOG\" & wait;; *) exec sleep 600;; esac"]
env = { HOG = "import time; b = b'x' * (60 << 20); time.sleep(600)" }
"#,
    );
    // (name, memory_bytes, processes, cpu_usec) of each instance.
    type Figures = (String, Option<u64>, Option<u64>, Option<u64>);
    let usage = |h: &Herd| -> Vec<Figures> {
        h.instances()
            .iter()
            .map(|i| {
                let field = |key: &str| i[key].as_u64();
                let name = i["name"].as_str().unwrap().to_string();
                (
                    name,
                    field("memory_bytes"),
                    field("processes"),
                    field("cpu_usec"),
                )
            })
            .collect()
    };
    herd.wait_for("both hogs to hold their memory", |h| {
        let all = usage(h);
        let big = |name: &str| {
            all.iter()
                .any(|(n, memory, _, _)| n == name && memory.is_some_and(|m| m >= 50 * MIB))
        };
        all.len() == 40 && big("many@7") && big("many@8")
    });
    herd.wait_for("the shell of many@8 and its child", |h| {
        h.instance("many@8")["processes"].as_u64() == Some(2)
    });
    for (name, memory, processes, cpu) in usage(&herd) {
        assert!(cpu.is_some(), "{name} has CPU time");
        let memory = memory.unwrap_or_else(|| panic!("{name} has memory"));
        match name.as_str() {
            "many@7" => assert_eq!(processes, Some(1), "{name}"),
            "many@8" => assert_eq!(processes, Some(2), "{name}"),
            _ => {
                assert_eq!(processes, Some(1), "{name}");
                assert!(memory < 50 * MIB, "{name} is charged its own memory only");
            }
        }
    }
}

/// herdd with one `sleep` instance, `idle`, once its usage is read.
fn idle_service() -> Herd {
    let herd = Herd::start(
        r#"
[service.idle]
command = ["sleep", "600"]
"#,
    );
    herd.wait_for("idle's usage", |h| {
        h.instance("idle")["processes"].as_u64() == Some(1)
    });
    herd
}

#[test]
fn status_without_usage_reads_none() {
    let herd = idle_service();
    let report: serde_json::Value =
        serde_json::from_str(&herd.ok(&["--json", "status", "--no-usage"])).unwrap();
    let idle = &report["units"][0]["instances"][0];
    assert_eq!(idle["state"], "running", "{report}");
    assert!(idle["pid"].as_u64().is_some(), "{report}");
    for key in ["memory_bytes", "memory_peak_bytes", "cpu_usec", "processes"] {
        assert!(idle.get(key).is_none(), "{key} in {report}");
    }
    let table = herd.ok(&["status", "--no-usage"]);
    assert!(table.contains("idle"), "{table}");
    assert!(!table.contains("MEMORY"), "{table}");
    let block = herd.ok(&["status", "--no-usage", "idle"]);
    assert!(!block.contains("Memory:"), "{block}");
    // The protocol's field, as any client sends it.
    let reply = herd.raw(b"{\"v\":1,\"cmd\":\"status\",\"usage\":false}\n");
    assert!(reply.contains("\"running\""), "{reply}");
    assert!(!reply.contains("memory_bytes"), "{reply}");
    let reply = herd.raw(b"{\"v\":1,\"cmd\":\"status\",\"usage\":true}\n");
    assert!(reply.contains("memory_bytes"), "{reply}");
}

/// The fields docs/protocol.md lists for an InstanceStatus.
fn documented_instance_fields() -> Vec<String> {
    let docs = std::fs::read_to_string(crate::docs::repo_root().join("docs/protocol.md")).unwrap();
    let block = docs
        .split("\nInstanceStatus:\n")
        .nth(1)
        .expect("docs/protocol.md has an InstanceStatus block");
    let block = &block[..block.find("```").unwrap()];
    block
        .lines()
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn a_running_instance_carries_the_documented_fields_with_and_without_usage() {
    let herd = idle_service();
    let documented = documented_instance_fields();
    let usage = ["memory_bytes", "memory_peak_bytes", "cpu_usec", "processes"];
    for field in usage {
        assert!(
            documented.iter().any(|d| d == field),
            "{field} in {documented:?}"
        );
    }
    let keys = |reply: &str| -> Vec<String> {
        let reply: serde_json::Value = serde_json::from_str(reply).unwrap();
        let instance = &reply["ok"]["units"][0]["instances"][0];
        assert_eq!(instance["state"], "running", "{reply}");
        let mut keys: Vec<String> = instance.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    // As herdd writes them, to any client.
    let without = keys(&herd.raw(b"{\"v\":1,\"cmd\":\"status\",\"usage\":false}\n"));
    let with = keys(&herd.raw(b"{\"v\":1,\"cmd\":\"status\"}\n"));
    for key in with.iter().chain(&without) {
        assert!(
            documented.contains(key),
            "{key} is not documented: {documented:?}"
        );
    }
    // Without usage: every field but the usage ones (and those only present
    // at times: log_error, health), none missing.
    let mut always: Vec<String> = documented
        .iter()
        .filter(|d| !usage.contains(&d.as_str()) && *d != "log_error" && *d != "health")
        .cloned()
        .collect();
    always.sort();
    assert_eq!(without, always);
    // With usage: the same and the figures this host has for it.
    let added: Vec<&String> = with.iter().filter(|key| !without.contains(key)).collect();
    assert!(
        without.iter().all(|key| with.contains(key)),
        "{with:?} {without:?}"
    );
    for key in ["memory_bytes", "cpu_usec", "processes"] {
        assert!(added.iter().any(|a| *a == key), "{key} in {added:?}");
    }
    assert!(
        added.iter().all(|a| usage.contains(&a.as_str())),
        "{added:?}"
    );
    // herdctl --json shows the same fields.
    let json = |args: &[&str]| -> Vec<String> {
        let report: serde_json::Value = serde_json::from_str(&herd.ok(args)).unwrap();
        let mut keys: Vec<String> = report["units"][0]["instances"][0]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(json(&["--json", "status", "--no-usage"]), without);
    let shown = json(&["--json", "status"]);
    assert!(
        shown.iter().all(|key| with.contains(key)) && added.iter().all(|a| shown.contains(a)),
        "{shown:?} against {with:?}"
    );
}

/// How many usage files (`/proc/<pid>/stat`, a cgroup's `cgroup.procs`)
/// process `pid` holds open.
fn usage_files(pid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    entries
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| {
            let target = target.to_string_lossy();
            let stat = target.starts_with("/proc/") && target.ends_with("/stat");
            stat || target.contains("cgroup.procs")
        })
        .count()
}

#[test]
fn figures_stay_right_across_restarts_while_files_are_kept() {
    // herdd keeps the files it read usage from open for the next status:
    // each restart gives the instance a new pid and a new cgroup, with one
    // process or two (a shell and a 60 MiB child), and the figures follow.
    let herd = Herd::start(
        r#"
[service.flip]
command = ["sh", "-c", "if [ -e $DIR/big ]; then python3 -c \"$HOG\" & wait; else exec sleep 600; fi"]
env = { HOG = "import time; b = b'x' * (60 << 20); time.sleep(600)" }
"#,
    );
    let figures = |h: &Herd| {
        let flip = h.instance("flip");
        let field = |key: &str| flip[key].as_u64();
        (field("pid"), field("processes"), field("memory_bytes"))
    };
    let small = |h: &Herd, not: Option<u64>| {
        let (pid, processes, memory) = figures(h);
        pid.is_some() && pid != not && processes == Some(1) && memory.is_some_and(|m| m < 50 * MIB)
    };
    herd.wait_for("a lone sleep", |h| small(h, None));
    let first = figures(&herd).0;
    let daemon = herd.daemon_pid();
    let stat = format!("/proc/{}/stat", first.unwrap());
    let held = |path: &str| {
        std::fs::read_dir(format!("/proc/{daemon}/fd"))
            .unwrap()
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .any(|target| target.to_string_lossy() == path)
    };
    assert!(held(&stat), "herdd keeps {stat} open for the next status");

    std::fs::write(herd.path("big"), "").unwrap();
    herd.ok(&["restart", "flip"]);
    herd.wait_for("a shell and its 60 MiB child", |h| {
        let (pid, processes, memory) = figures(h);
        pid.is_some()
            && pid != first
            && processes == Some(2)
            && memory.is_some_and(|m| m >= 50 * MIB)
    });
    let second = figures(&herd).0;

    std::fs::remove_file(herd.path("big")).unwrap();
    herd.ok(&["restart", "flip"]);
    herd.wait_for("a lone sleep again", |h| small(h, second));
    // Asked again and again with the files open: still one small process.
    for _ in 0..5 {
        assert!(small(&herd, second), "{}", herd.instance("flip"));
    }
}

#[test]
fn files_kept_for_usage_are_closed_when_nobody_asks() {
    let mut herd = Herd::configure(
        r#"
[service.idle]
instances = 20
command = ["sleep", "600"]
"#,
    );
    // A test hook: files stay open 1 s after the last read instead of 30 s.
    herd.env
        .push(("HERD_USAGE_KEEP_MS".to_string(), "1000".to_string()));
    let herd = herd.launch();
    let running = |h: &Herd| {
        let report: serde_json::Value =
            serde_json::from_str(&h.ok(&["--json", "status", "--no-usage"])).unwrap();
        let instances = report["units"][0]["instances"].as_array().cloned();
        instances.is_some_and(|all| all.len() == 20 && all.iter().all(|i| i["state"] == "running"))
    };
    wait_until("20 instances running", || running(&herd));
    let daemon = herd.daemon_pid();
    assert_eq!(usage_files(daemon), 0, "no usage read, no file open");

    let report = herd.status();
    let read = report["units"][0]["instances"].as_array().unwrap();
    assert!(
        read.iter().all(|i| i["processes"].as_u64() == Some(1)),
        "{report}"
    );
    // At least each leader's stat (and, with cgroups, each member list).
    let kept = usage_files(daemon);
    assert!(kept >= 20, "{kept} files kept after a status with usage");
    herd.status();
    assert_eq!(
        usage_files(daemon),
        kept,
        "the next status reads the same files"
    );

    // Nobody asks for 1 s: herdd closes them all on its own.
    wait_until("the usage files to be closed", || usage_files(daemon) == 0);
}
