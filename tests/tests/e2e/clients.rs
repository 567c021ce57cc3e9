//! herdctl's side of the connection: clients that wait across
//! `daemon-reexec` end as if there had been none (same output, same exit
//! code), and a herdd that does not answer makes herdctl give up with exit 6.

use crate::harness::*;
use std::io::Write;
use std::process::{Child, Command, Stdio};

const SETUP: &str = r#"
[pool.p]
size = 2

[semaphore.m]
capacity = 1
"#;

impl Herd {
    /// Starts `herdctl map ARGS` in the background with `input` on its
    /// stdin (then closed), stdout and stderr piped.
    fn spawn_map(&self, args: &[&str], input: &str) -> Child {
        let mut map = Command::new(bin("herdctl"))
            .arg("--socket")
            .arg(&self.socket)
            .arg("map")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run herdctl map");
        let stdin = map.stdin.take();
        stdin.expect("stdin").write_all(input.as_bytes()).unwrap();
        map
    }

    /// Starts `herdctl ARGS` in the background, stdout and stderr piped.
    fn spawn_ctl(&self, args: &[&str]) -> Child {
        Command::new(bin("herdctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run herdctl")
    }

    /// `daemon-reexec`, then checks herdd kept its pid.
    fn reexec(&self) {
        self.ok(&["daemon-reexec"]);
        assert!(alive(self.daemon_pid()), "herdd survives its re-exec");
    }
}

/// Waits until `client` blocks reading its connection to herdd: its request
/// is in and it waits for the reply. Where the kernel does not say what a
/// process sleeps on, waits until it has at least connected.
fn wait_until_waiting(client: &Child) {
    let pid = client.id();
    wait_until("herdctl to wait for its reply", || {
        match std::fs::read_to_string(format!("/proc/{pid}/wchan")) {
            Ok(wchan) if wchan.contains('_') => wchan.contains("unix_stream"),
            // No wchan (hardened kernel): a socket among its descriptors.
            _ => std::fs::read_dir(format!("/proc/{pid}/fd"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
                }),
        }
    });
}

fn finish(client: Child) -> (i32, String, String) {
    let out = client.wait_with_output().expect("herdctl ends");
    (out.status.code().unwrap_or(-1), stdout(&out), stderr(&out))
}

/// A task that runs until the test creates `name` in the test's dir, then exits `code`.
fn gated(herd: &Herd, name: &str, code: i32) -> Vec<String> {
    let gate = herd.path(name).display().to_string();
    vec![
        "sh".into(),
        "-c".into(),
        format!("while [ ! -e {gate} ]; do sleep 0.02; done; exit {code}"),
    ]
}

#[test]
fn join_and_pool_join_wait_across_reexecs_and_keep_the_exit_code() {
    let herd = Herd::start(SETUP);
    let command = gated(&herd, "go", 7);
    let mut args = vec!["submit", "p", "--"];
    args.extend(command.iter().map(String::as_str));
    let id = herd.ok(&args).trim().to_string();
    let join = herd.spawn_ctl(&["join", &id]);
    let pool_join = herd.spawn_ctl(&["pool", "join", "p"]);
    wait_until_waiting(&join);
    wait_until_waiting(&pool_join);
    herd.reexec();
    wait_until_waiting(&join);
    herd.reexec();
    std::fs::write(herd.path("go"), "").unwrap();
    let (code, out, err) = finish(join);
    assert_eq!(code, 7, "join passes the task's code on: {out}{err}");
    assert_eq!(out, format!("{id}: failed (exit code 7)\n"), "{err}");
    let (code, out, err) = finish(pool_join);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
}

#[test]
fn event_wait_across_a_reexec_sees_the_event_set() {
    let herd = Herd::start(SETUP);
    let wait = herd.spawn_ctl(&["event", "wait", "ready"]);
    let with_timeout = herd.spawn_ctl(&["event", "wait", "never", "--timeout", "300ms"]);
    wait_until_waiting(&wait);
    herd.reexec();
    herd.ok(&["event", "set", "ready"]);
    let (code, out, err) = finish(wait);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    // A wait with a timeout still times out, at most once.
    let (code, _, err) = finish(with_timeout);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err, "herdctl: timed out waiting for event never\n");
}

#[test]
fn events_follow_goes_on_across_reexecs_and_ends_with_herdd() {
    let mut herd = Herd::start(SETUP);
    let follow = herd.spawn_ctl(&["events", "-f"]);
    wait_until_waiting(&follow);
    herd.ok(&["event", "set", "one"]);
    herd.reexec();
    herd.ok(&["event", "set", "two"]);
    herd.reexec();
    herd.ok(&["event", "set", "three"]);
    herd.ok(&["shutdown"]);
    herd.wait_exit();
    let (code, out, err) = finish(follow);
    assert_eq!(code, 0, "a follower ends quietly when herdd stops: {err}");
    let changes: Vec<&str> = out
        .lines()
        .filter_map(|line| line.split_once(' ').map(|(_, what)| what))
        .filter(|what| what.starts_with("event "))
        .collect();
    assert_eq!(
        changes,
        ["event one: set", "event two: set", "event three: set"],
        "each event exactly once:\n{out}"
    );
}

#[test]
fn map_across_reexecs_prints_every_result_in_order() {
    let herd = Herd::start(SETUP);
    let input: String = (1..=60).map(|n| format!("{n}\n")).collect();
    let map = herd.spawn_map(
        &[
            "p",
            "--",
            "sh",
            "-c",
            "sleep 0.01; echo $1; [ $1 != 13 ]",
            "sh",
        ],
        &input,
    );
    let pid = map.id();
    for done in [5, 20, 35] {
        wait_until("map to get on", || {
            !alive(pid) || finished_tasks(&herd) >= done
        });
        herd.reexec();
    }
    let (code, out, err) = finish(map);
    assert_eq!(out, input, "every item once, in input order: {err}");
    assert_eq!(code, 1, "one item failed: {err}");
    assert_eq!(err, "herdctl: item 13 (\"13\"): failed (exit code 1)\n");
}

/// The results a map waits for are held for it across re-execs, even by a
/// pool that keeps a single ended task: every item runs once and prints once.
#[test]
fn map_across_reexecs_loses_no_result_of_a_pool_keeping_one() {
    let herd = Herd::start(
        r#"
[pool.small]
size = 4
keep_finished = 1
"#,
    );
    let marks = herd.path("marks").display().to_string();
    let script = format!("echo $1 >> {marks}; sleep 0.02; echo $1");
    let input: String = (1..=200).map(|n| format!("{n}\n")).collect();
    let map = herd.spawn_map(&["small", "--", "sh", "-c", &script, "sh"], &input);
    let pid = map.id();
    let started = || {
        std::fs::read_to_string(&marks)
            .map(|text| text.lines().count())
            .unwrap_or(0)
    };
    for done in [30, 90, 150] {
        wait_until("map to get on", || !alive(pid) || started() >= done);
        herd.reexec();
    }
    let (code, out, err) = finish(map);
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(out == input, "every item once, in input order");
    let mut ran: Vec<u32> = std::fs::read_to_string(&marks)
        .unwrap()
        .lines()
        .map(|line| line.parse().unwrap())
        .collect();
    ran.sort_unstable();
    assert_eq!(ran, (1..=200).collect::<Vec<u32>>(), "each item ran once");
}

fn finished_tasks(herd: &Herd) -> usize {
    let tasks: serde_json::Value =
        serde_json::from_str(&herd.ok(&["--json", "tasks", "p"])).unwrap();
    tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == "exited" || t["state"] == "failed")
        .count()
}

#[test]
fn sem_acquire_holds_and_waits_across_a_reexec() {
    let herd = Herd::start(SETUP);
    let holder_command = gated(&herd, "go", 5);
    let mut args = vec!["sem", "acquire", "m", "--"];
    args.extend(holder_command.iter().map(String::as_str));
    let holder = herd.spawn_ctl(&args);
    herd.wait_for("the holder to get the slot", |h| {
        sem(h)["holders"].as_array().is_some_and(|a| a.len() == 1)
    });
    let waiter = herd.spawn_ctl(&["sem", "acquire", "m", "--", "sh", "-c", "echo B; exit 3"]);
    herd.wait_for("the second client to queue", |h| {
        sem(h)["waiters"].as_array().is_some_and(|a| a.len() == 1)
    });
    herd.reexec();
    std::fs::write(herd.path("go"), "").unwrap();
    let (code, _, err) = finish(holder);
    assert_eq!(code, 5, "the holder's command ran to its end: {err}");
    let (code, out, err) = finish(waiter);
    assert_eq!((code, out.as_str()), (3, "B\n"), "the waiter ran: {err}");
    herd.wait_for("the slot to be free", |h| {
        sem(h)["holders"].as_array().is_some_and(Vec::is_empty)
    });
}

fn sem(herd: &Herd) -> serde_json::Value {
    let list: serde_json::Value =
        serde_json::from_str(&herd.ok(&["--json", "sem", "list"])).unwrap();
    list["semaphores"][0].clone()
}

#[test]
fn a_stopped_herdd_makes_herdctl_give_up_with_exit_6() {
    let herd = Herd::start(SETUP);
    let pid = herd.daemon_pid();
    signal(pid, libc::SIGSTOP);
    let out = herd.ctl(&["--timeout", "1s", "status"]);
    let json = herd.ctl(&["--timeout", "200ms", "--json", "status"]);
    signal(pid, libc::SIGCONT);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "herdctl: herdd did not answer within 1s (socket {})\n",
            herd.socket.display()
        )
    );
    assert_eq!(json.status.code(), Some(6));
    let report: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(report["error"]["code"], "no_answer");
    // Awake again, it answers as before.
    herd.ok(&["--timeout", "1s", "status"]);
}

#[test]
fn sem_acquire_over_dbus_waits_across_a_reexec() {
    let herd = Herd::configure(SETUP);
    let bus = crate::dbus::PrivateBus::start(herd.dir.path());
    // The harness writes `[herd]` last, so this line lands in it.
    let mut config = std::fs::OpenOptions::new()
        .append(true)
        .open(&herd.config)
        .unwrap();
    writeln!(config, "dbus = {:?}", bus.address).unwrap();
    let herd = herd.launch();
    let dbus = format!("--dbus={}", bus.address);
    let dctl = |args: &[&str]| {
        Command::new(bin("herdctl"))
            .arg(&dbus)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run herdctl")
    };
    wait_until("herdd to own its name", || finish(dctl(&["status"])).0 == 0);
    let holder_command = gated(&herd, "go", 0);
    let mut args = vec!["sem", "acquire", "m", "--"];
    args.extend(holder_command.iter().map(String::as_str));
    let holder = herd.spawn_ctl(&args);
    herd.wait_for("the holder to get the slot", |h| {
        sem(h)["holders"].as_array().is_some_and(|a| a.len() == 1)
    });
    // Waits in herdd's line (visible in `sem list`) over D-Bus.
    let waiter = dctl(&["sem", "acquire", "m", "--", "sh", "-c", "echo D; exit 4"]);
    herd.wait_for("the D-Bus client to queue", |h| {
        sem(h)["waiters"].as_array().is_some_and(|a| a.len() == 1)
    });
    herd.reexec();
    std::fs::write(herd.path("go"), "").unwrap();
    assert_eq!(finish(holder).0, 0);
    let (code, out, err) = finish(waiter);
    assert_eq!((code, out.as_str()), (4, "D\n"), "{err}");
    drop(herd);
    drop(bus);
}

#[test]
fn restart_waits_across_a_reexec_and_restarts_once() {
    let herd = Herd::start(
        r#"
[service.slow]
command = ["/bin/sh", "-c", "echo started >> $DIR/starts; trap '' TERM; while :; do sleep 0.05; done"]
stop_timeout = "1s"
"#,
    );
    wait_until("slow to start", || herd.path("starts").exists());
    let first = herd.pid_of("slow");
    // Ignoring SIGTERM, it takes stop_timeout to stop: restart waits meanwhile.
    let restart = herd.spawn_ctl(&["restart", "slow"]);
    herd.wait_for("slow to be stopping", |h| {
        h.instance("slow")["state"] == "stopping"
    });
    wait_until_waiting(&restart);
    herd.reexec();
    let (code, out, err) = finish(restart);
    assert_eq!(code, 0, "{out}{err}");
    let instance = herd.instance("slow");
    assert_eq!(instance["state"], "running");
    assert_ne!(instance["pid"], first);
    let starts = std::fs::read_to_string(herd.path("starts")).unwrap();
    assert_eq!(starts.lines().count(), 2, "started, then restarted once");
}

/// A child forked just before a re-exec holds a copy of the lock's
/// descriptor until its own exec: the new image waits for it instead of
/// exiting with "another herdd is already running". The test plays that
/// child: it takes a copy of herdd's descriptor (pidfd_getfd, as root) and
/// closes it a little after the re-exec.
#[test]
fn a_reexec_waits_for_a_child_that_still_holds_the_socket_lock() {
    let herd = Herd::start(SETUP);
    let pid = herd.daemon_pid();
    let Some(copy) = copy_of_lock_descriptor(pid, &herd) else {
        eprintln!("skipped: pidfd_getfd is not allowed here");
        return;
    };
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(copy);
    });
    herd.reexec();
    release.join().unwrap();
    herd.wait_for("herdd to answer after its re-exec", |h| {
        h.ctl(&["status"]).status.success()
    });
    assert_eq!(herd.daemon_pid(), pid, "the same herdd, re-executed");
}

/// A copy of herdd's descriptor of `<socket>.lock` (the same open file, so
/// the same flock), or `None` where the kernel does not allow taking it.
fn copy_of_lock_descriptor(pid: u32, herd: &Herd) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let mut lock = herd.socket.as_os_str().to_owned();
    lock.push(".lock");
    let number = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .find(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == lock))
        .and_then(|fd| fd.file_name().to_str()?.parse::<i32>().ok())
        .expect("herdd holds its socket's lock");
    // SAFETY: plain system calls on numbers; each result is checked.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0);
        if pidfd < 0 {
            return None;
        }
        let copy = libc::syscall(libc::SYS_pidfd_getfd, pidfd, number, 0);
        libc::close(pidfd as i32);
        (copy >= 0).then(|| std::os::fd::OwnedFd::from_raw_fd(copy as i32))
    }
}
