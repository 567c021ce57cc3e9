//! Survivors of a killed herdd when its journal is unusable (deleted,
//! corrupt): a herdd started again on the same socket finds them by the
//! `HERD_SOCKET` mark in their environment, adopts them as the instances they
//! are, starts only the instances that have none, stops those of units no
//! longer configured, and leaves another herdd's processes alone.

use crate::harness::*;
use std::os::unix::process::CommandExt;

/// Every process is an `sh` (a process group leader) whose `$0` is
/// `<test dir>/<unit>`, so this test can count the processes of its own herdd.
const UNITS: &str = r#"
[service.web]
command = ["/bin/sh", "-c", "sleep 1000; :", "$DIR/web"]
instances = 2
daemon = false
stop_timeout = "2s"

[service.single]
command = ["/bin/sh", "-c", "sleep 1000; :", "$DIR/single"]
daemon = false
stop_timeout = "2s"
"#;

/// The process group leaders whose `$0` is in `herd`'s directory.
fn leaders(herd: &Herd) -> Vec<u32> {
    leaders_in(&herd.dir.path().display().to_string())
}

fn leaders_in(dir: &str) -> Vec<u32> {
    let mut found: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| alive(*pid) && stat_field(*pid, 5) == Some(*pid as i64))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                cmdline
                    .split(|b| *b == 0)
                    .any(|arg| arg.starts_with(dir.as_bytes()))
            })
        })
        .collect();
    found.sort_unstable();
    found
}

/// Kills, when the test ends (passed or failed), the process groups left
/// by a test's herdds: a killed herdd's processes are nobody's once the test
/// stops looking after them.
struct KillLeftovers(Vec<String>);

impl KillLeftovers {
    fn of(herds: &[&Herd]) -> KillLeftovers {
        KillLeftovers(
            herds
                .iter()
                .map(|herd| herd.dir.path().display().to_string())
                .collect(),
        )
    }
}

impl Drop for KillLeftovers {
    fn drop(&mut self) {
        for pid in self.0.iter().flat_map(|dir| leaders_in(dir)) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn pids(herd: &Herd, names: &[&str]) -> Vec<u32> {
    names.iter().map(|name| herd.pid_of(name)).collect()
}

/// Kills herdd once its journal has every process in it; its `daemon =
/// false` processes live on.
fn kill_herdd_after_journal(herd: &mut Herd, running: &[u32]) {
    wait_until("the journal to record every process", || {
        std::fs::read_to_string(herd.path("state/journal.json")).is_ok_and(|j| {
            running
                .iter()
                .all(|pid| j.contains(&format!("\"pid\":{pid},")))
        })
    });
    herd.kill_daemon();
}

/// Kills a process group the test's herdd started (herdd is dead: nobody else will).
fn kill_group(pid: u32) {
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    wait_until("the killed survivor to be gone", || !alive(pid));
}

#[test]
fn with_the_journal_deleted_survivors_are_adopted_and_only_the_missing_instance_starts() {
    let mut herd = Herd::start(UNITS);
    // Another herdd on its own socket, running units of the same names.
    let other = Herd::start(UNITS);
    let _leftovers = KillLeftovers::of(&[&herd, &other]);
    let names = ["web@0", "web@1", "single"];
    for name in names {
        herd.wait_state(name, "running");
        other.wait_state(name, "running");
    }
    let before = pids(&herd, &names);
    let others = pids(&other, &names);
    assert_eq!(leaders(&herd), sorted(&before));
    kill_herdd_after_journal(&mut herd, &before);
    std::fs::remove_file(herd.path("state/journal.json")).unwrap();
    // web@1's process does not survive: it is the one to start again.
    kill_group(before[1]);
    herd.relaunch();
    herd.wait_for("web@1 to run again", |h| {
        h.instance("web@1")["state"] == "running"
    });
    for (name, pid) in [("web@0", before[0]), ("single", before[2])] {
        let instance = herd.instance(name);
        assert_eq!(instance["pid"].as_u64(), Some(pid as u64), "{name} adopted");
        assert_eq!(instance["adopted"], true, "{name}");
        assert_eq!(instance["state"], "running", "{name}");
    }
    let web1 = herd.pid_of("web@1");
    assert_ne!(web1, before[1]);
    assert_eq!(herd.instance("web@1")["adopted"], false);
    assert_eq!(
        leaders(&herd),
        sorted(&[before[0], web1, before[2]]),
        "one process per instance, no duplicate"
    );
    assert!(
        herd.log().contains("took over the processes"),
        "{}",
        herd.log()
    );
    // The other herdd's processes are neither adopted nor touched.
    assert_eq!(pids(&other, &names), others);
    assert!(others.iter().all(|pid| alive(*pid)));
    assert_eq!(leaders(&other), sorted(&others));
    // The adopted processes are herd's like any: stop stops them.
    herd.ok(&["stop", "web", "single"]);
    wait_until("the adopted processes to be stopped", || {
        !alive(before[0]) && !alive(before[2])
    });
    assert!(leaders(&herd).is_empty());
    assert!(others.iter().all(|pid| alive(*pid)), "still not touched");
}

#[test]
fn with_a_truncated_journal_survivors_are_adopted_and_only_the_missing_instance_starts() {
    let mut herd = Herd::start(UNITS);
    let _leftovers = KillLeftovers::of(&[&herd]);
    let names = ["web@0", "web@1", "single"];
    for name in names {
        herd.wait_state(name, "running");
    }
    let before = pids(&herd, &names);
    kill_herdd_after_journal(&mut herd, &before);
    let journal = herd.path("state/journal.json");
    let text = std::fs::read(&journal).unwrap();
    std::fs::write(&journal, &text[..text.len() / 2]).unwrap();
    kill_group(before[2]);
    herd.relaunch();
    herd.wait_for("single to run again", |h| {
        h.instance("single")["state"] == "running"
    });
    assert!(herd.log().contains("corrupt journal"), "{}", herd.log());
    assert_eq!(pids(&herd, &["web@0", "web@1"]), before[..2]);
    assert_eq!(herd.instance("web@1")["adopted"], true);
    let single = herd.pid_of("single");
    assert_ne!(single, before[2]);
    assert_eq!(
        leaders(&herd),
        sorted(&[before[0], before[1], single]),
        "nothing started twice"
    );
}

/// A process the test started as `nobody`, killed by pid when the test ends.
struct Foreign(std::process::Child);

impl Drop for Foreign {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn survivors_of_removed_units_and_instances_are_stopped_and_another_users_process_is_not_adopted() {
    let mut herd = Herd::start(UNITS);
    let _leftovers = KillLeftovers::of(&[&herd]);
    let names = ["web@0", "web@1", "single"];
    for name in names {
        herd.wait_state(name, "running");
    }
    let before = pids(&herd, &names);
    kill_herdd_after_journal(&mut herd, &before);
    let journal = herd.path("state/journal.json");
    let text = std::fs::read_to_string(&journal).unwrap();
    std::fs::write(
        &journal,
        text.replacen("\"version\":2", "\"version\":99", 1),
    )
    .unwrap();
    // Another user's process group leader that claims to be `extra`.
    let socket = herd.socket.to_str().unwrap();
    let forged = Foreign(
        std::process::Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .args(["--", "/bin/sleep", "1000"])
            .env_clear()
            .envs([("HERD_SOCKET", socket), ("HERD_UNIT", "extra")])
            .env("HERD_INSTANCE", "0")
            .process_group(0)
            .spawn()
            .expect("setpriv"),
    );
    let forged_pid = forged.0.id();
    wait_until("the forged process to run as nobody", || {
        std::fs::read(format!("/proc/{forged_pid}/environ"))
            .is_ok_and(|env| env.windows(9).any(|w| w == b"HERD_UNIT"))
    });
    // Meanwhile web went down to one instance, single went, extra came.
    let config = std::fs::read_to_string(&herd.config).unwrap();
    let start = config.find("[service.single]").unwrap();
    let end = start + config[start..].find("\n\n").unwrap();
    let config = format!("{}{}", &config[..start], &config[end..])
        .replacen("instances = 2", "instances = 1", 1)
        .replacen(
            "[herd]",
            &format!(
                "[service.extra]\ncommand = [\"/bin/sh\", \"-c\", \"sleep 1000; :\", \"{}/extra\"]\n\n[herd]",
                herd.dir.path().display()
            ),
            1,
        );
    std::fs::write(&herd.config, config).unwrap();
    herd.relaunch();
    wait_until("the survivors of web@1 and single to be stopped", || {
        !alive(before[1]) && !alive(before[2])
    });
    herd.wait_state("extra", "running");
    assert!(herd.log().contains("another version"), "{}", herd.log());
    assert_eq!(herd.pid_of("web@0"), before[0]);
    let extra = herd.pid_of("extra");
    assert_ne!(extra, forged_pid, "another user's process is never adopted");
    assert!(alive(forged_pid), "nor touched");
    herd.wait_for("web@1 to be dropped", |h| h.instances().len() == 2);
    assert_eq!(leaders(&herd), sorted(&[before[0], extra]));
}

/// The journal is written at most every 100 ms: one written before web@0
/// restarted still names its old process. The new one is found and adopted,
/// not started a second time; the survivor of a unit removed meanwhile is
/// stopped.
#[test]
fn a_journal_that_missed_a_restart_still_starts_nothing_twice() {
    let mut herd = Herd::start(UNITS);
    let _leftovers = KillLeftovers::of(&[&herd]);
    let names = ["web@0", "web@1", "single"];
    for name in names {
        herd.wait_state(name, "running");
    }
    let before = pids(&herd, &names);
    let journal = herd.path("state/journal.json");
    wait_until("the journal to record every process", || {
        std::fs::read_to_string(&journal).is_ok_and(|j| {
            before
                .iter()
                .all(|pid| j.contains(&format!("\"pid\":{pid},")))
        })
    });
    let old_journal = std::fs::read(&journal).unwrap();
    herd.ok(&["restart", "web@0"]);
    herd.wait_for("web@0 to run again", |h| {
        let web0 = h.instance("web@0");
        web0["state"] == "running" && web0["pid"].as_u64() != Some(before[0] as u64)
    });
    let web0 = herd.pid_of("web@0");
    herd.kill_daemon();
    std::fs::write(&journal, old_journal).unwrap();
    let config = std::fs::read_to_string(&herd.config).unwrap();
    let start = config.find("[service.single]").unwrap();
    let end = start + config[start..].find("\n\n").unwrap();
    std::fs::write(
        &herd.config,
        format!("{}{}", &config[..start], &config[end..]),
    )
    .unwrap();
    herd.relaunch();
    wait_until("the survivor of the removed unit to be stopped", || {
        !alive(before[2])
    });
    assert!(herd.log().contains("recovered the state"), "{}", herd.log());
    assert_eq!(pids(&herd, &["web@0", "web@1"]), [web0, before[1]]);
    assert!(herd.instances().iter().all(|i| i["adopted"] == true));
    assert_eq!(
        leaders(&herd),
        sorted(&[web0, before[1]]),
        "nothing started twice"
    );
}

/// A child that called `setsid` carries its instance's marks and leads a
/// group too: it is not taken for the instance.
#[test]
fn a_child_that_called_setsid_is_not_taken_for_its_instance() {
    let mut herd = Herd::start(
        r#"
[service.escaper]
command = ["/bin/sh", "-c", "setsid sleep 1000 & echo $! > $DIR/escaped; sleep 1000; :", "$DIR/escaper"]
daemon = false
stop_timeout = "2s"
"#,
    );
    let _leftovers = KillLeftovers::of(&[&herd]);
    herd.wait_state("escaper", "running");
    let escaped_file = herd.path("escaped");
    wait_until("the escaped child's pid", || {
        std::fs::read_to_string(&escaped_file).is_ok_and(|text| text.ends_with('\n'))
    });
    let escaped: u32 = std::fs::read_to_string(&escaped_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Killed by pid when the test ends, wherever it is by then.
    struct Escaped(u32);
    impl Drop for Escaped {
        fn drop(&mut self) {
            signal(self.0, libc::SIGKILL);
        }
    }
    let _escaped = Escaped(escaped);
    wait_until("the child to lead its own group", || {
        stat_field(escaped, 5) == Some(escaped as i64)
    });
    let leader = herd.pid_of("escaper");
    kill_herdd_after_journal(&mut herd, &[leader]);
    std::fs::remove_file(herd.path("state/journal.json")).unwrap();
    herd.relaunch();
    herd.wait_state("escaper", "running");
    assert_eq!(herd.pid_of("escaper"), leader, "the leader, not its child");
    assert_eq!(herd.instance("escaper")["adopted"], true);
    assert_eq!(leaders(&herd), [leader], "not started again");
}

/// herdd runs as root here: a survivor running as its unit's `user` is
/// that unit's, and adopted.
#[test]
fn a_survivor_running_as_its_units_user_is_adopted() {
    let mut herd = Herd::start(
        r#"
[service.low]
command = ["/bin/sh", "-c", "sleep 1000; :", "$DIR/low"]
user = "nobody"
daemon = false
stop_timeout = "2s"
"#,
    );
    let _leftovers = KillLeftovers::of(&[&herd]);
    herd.wait_state("low", "running");
    let low = herd.pid_of("low");
    wait_until("low to run as nobody", || {
        std::fs::read_to_string(format!("/proc/{low}/status")).is_ok_and(|status| {
            status
                .lines()
                .any(|l| l.starts_with("Uid:") && !l.contains("\t0\t"))
        })
    });
    kill_herdd_after_journal(&mut herd, &[low]);
    std::fs::remove_file(herd.path("state/journal.json")).unwrap();
    herd.relaunch();
    herd.wait_state("low", "running");
    assert_eq!(herd.pid_of("low"), low);
    assert_eq!(herd.instance("low")["adopted"], true);
    assert_eq!(leaders(&herd), [low]);
}

fn sorted(pids: &[u32]) -> Vec<u32> {
    let mut pids = pids.to_vec();
    pids.sort_unstable();
    pids
}
