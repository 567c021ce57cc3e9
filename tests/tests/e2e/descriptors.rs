//! herdd short of file descriptors: it raises its own limit, keeps a
//! reserve that children's pipes never take, refuses spawns with a clear
//! error rather than running out, still answers its clients, and recovers.

use crate::harness::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// herdd started with `RLIMIT_NOFILE` = (soft, hard) and `env`; stopped
/// (SIGTERM, then SIGKILL) on drop. Declare it after its `Herd`.
fn launch_limited(herd: &Herd, soft: u64, hard: u64, env: &[(&str, &str)]) -> OwnHerdd {
    OwnHerdd::launch(herd, &herd.socket, env, |command| {
        // SAFETY: setrlimit(2) is async-signal-safe; it runs in the child only.
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    })
}

/// `Max open files` (soft, hard) of `pid`.
fn nofile_of(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

/// Status through a raw connection that gives up after [`DEADLINE`]: a
/// herdd out of descriptors must answer, not leave the client hanging.
fn status_within_deadline(herd: &Herd) -> Value {
    let mut stream = UnixStream::connect(&herd.socket).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(b"{\"v\":1,\"cmd\":\"status\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .expect("a reply within the deadline");
    serde_json::from_str(&line).unwrap_or_else(|_| panic!("not a reply: {line:?}"))
}

fn states(status: &Value) -> Vec<(String, String)> {
    status["ok"]["units"][0]["instances"]
        .as_array()
        .unwrap_or_else(|| panic!("not a status: {status}"))
        .iter()
        .map(|i| {
            (
                i["state"].as_str().unwrap().to_string(),
                i["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn herdd_raises_its_descriptor_limit_but_its_children_keep_theirs() {
    let herd = Herd::configure(
        r#"
[service.web]
command = ["/bin/sleep", "1000"]

[service.own]
command = ["/bin/sleep", "1000"]
rlimits = { nofile = 100 }
"#,
    );
    let daemon = launch_limited(&herd, 256, 1024, &[]);
    herd.wait_state("web", "running");
    herd.wait_state("own", "running");
    assert_eq!(nofile_of(daemon.0.id()), (1024, 1024), "herdd's own");
    assert_eq!(
        nofile_of(herd.pid_of("web")),
        (256, 1024),
        "as herdd was started"
    );
    assert_eq!(nofile_of(herd.pid_of("own")), (100, 100), "rlimits decides");
}

#[test]
fn short_of_descriptors_herdd_refuses_spawns_answers_clients_and_recovers() {
    let herd = Herd::configure(
        r#"
[service.many]
command = ["/bin/sleep", "1000"]
"#,
    );
    // 200 descriptors, of which the last 50 are never spent on children.
    let _daemon = launch_limited(&herd, 200, 200, &[("HERD_FD_RESERVE", "50")]);
    herd.wait_state("many", "running");
    herd.ok(&["scale", "many", "150"]);
    let settled = || {
        let status = status_within_deadline(&herd);
        let all = states(&status);
        (all.len() == 150 && all.iter().all(|(s, _)| s == "running" || s == "failed"))
            .then_some(all)
    };
    wait_until("every instance settled", || settled().is_some());
    let all = settled().unwrap();
    let failed: Vec<_> = all.iter().filter(|(s, _)| s == "failed").collect();
    let running = all.len() - failed.len();
    assert!(
        running >= 20,
        "most descriptors go to children: {running} running"
    );
    assert!(
        !failed.is_empty(),
        "not every instance fits in 150 descriptors"
    );
    for (_, reason) in &failed {
        assert!(
            reason.contains("too many open files in herdd"),
            "a clear reason: {reason}"
        );
    }

    // Followers and root's status still get through, promptly and often.
    let followers: Vec<Child> = (0..10)
        .map(|_| {
            Command::new(bin("herdctl"))
                .args(["--socket", herd.socket.to_str().unwrap(), "events", "-f"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for _ in 0..20 {
        let status = status_within_deadline(&herd);
        assert!(status["ok"].is_object(), "{status}\n{}", herd.log());
    }
    herd.ok(&["stop", "many@0"]);
    assert!(
        !herd.log().contains("accept failed"),
        "no client was left waiting:\n{}",
        herd.log()
    );

    // Freed descriptors make spawning work again.
    herd.ok(&["scale", "many", "10"]);
    herd.ok(&["restart", "many"]);
    wait_until("ten running again", || {
        let all = states(&status_within_deadline(&herd));
        all.len() == 10 && all.iter().all(|(s, _)| s == "running")
    });
    for mut follower in followers {
        signal(follower.id(), libc::SIGTERM);
        let _ = follower.wait();
    }
}
