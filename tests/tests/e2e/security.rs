//! Authorisation by peer credentials, a socket path herdd can trust, and
//! abuse limits: many clients, slowloris clients, one client too many.
//!
//! The tests run as root and play other users with `setpriv`.

use crate::harness::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const WEB: &str = r#"
[service.web]
command = ["/bin/sleep", "1000"]
"#;

const STATUS: &[u8] = b"{\"v\":1,\"cmd\":\"status\"}\n";

/// Most memory herdd may use while it is being abused.
const MAX_RSS_KB: u64 = 64 * 1024;

/// A herd whose socket `nobody` can reach (tempdirs are 0700).
fn herd_for_others(units: &str, control_group: Option<&str>) -> Herd {
    let herd = Herd::configure(units);
    if let Some(group) = control_group {
        // The harness writes `[herd]` last, so this line lands in it.
        append(&herd.config, &format!("control_group = {group:?}\n"));
    }
    std::fs::set_permissions(herd.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    herd.launch()
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// Runs herdctl as `nobody`, with `groups` as its only supplementary groups.
fn ctl_as_nobody(herd: &Herd, groups: &[u32], args: &[&str]) -> Output {
    let socket = herd.socket.display().to_string();
    herdctl_as_nobody(&["--socket", &socket], groups, args)
}

/// Raises this process's (and so its children's) descriptor limit to at least `want`.
fn raise_nofile(want: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < want {
        // As root the hard limit may be raised too.
        setrlimit(Resource::RLIMIT_NOFILE, want, hard.max(want)).unwrap();
    }
}

/// The log with ANSI colour sequences (`ESC [ ... m`) taken out.
fn without_colours(log: &str) -> String {
    let mut plain = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            plain.push(c);
        }
    }
    plain
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Sends one status request on `stream` and returns the reply.
fn ask_status(stream: &mut UnixStream) -> Value {
    stream.write_all(STATUS).unwrap();
    let mut line = String::new();
    BufReader::new(&*stream).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|_| panic!("not a reply: {line:?}"))
}

/// herdd with an environment of its own (the harness's launch takes none),
/// and umask 077, so that the modes herdd needs cannot come from its umask.
/// Stopped on drop: declare it after its `Herd` so it is dropped first.
fn launch_daemon(herd: &Herd, socket: &Path, env: &[(&str, &str)]) -> OwnHerdd {
    OwnHerdd::launch(herd, socket, env, |command| {
        // SAFETY: umask(2) is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                libc::umask(0o077);
                Ok(())
            });
        }
    })
}

#[test]
fn a_stranger_may_read_status_but_not_change_anything() {
    let herd = herd_for_others(WEB, None);
    herd.wait_state("web", "running");
    let mode = std::fs::metadata(&herd.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o666,
        "peer credentials, not the mode, decide"
    );

    let status = ctl_as_nobody(&herd, &[], &["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    assert!(stdout(&status).contains("web"));

    for verb in [&["stop", "web"][..], &["kill", "web"], &["shutdown"]] {
        let denied = ctl_as_nobody(&herd, &[], verb);
        assert_eq!(
            denied.status.code(),
            Some(5),
            "{verb:?}: {}",
            stderr(&denied)
        );
        let message = stderr(&denied);
        assert!(message.contains("permission denied"), "{message}");
        assert!(message.contains(&format!("may {}", verb[0])), "{message}");
    }
    assert_eq!(herd.instance("web")["state"], "running", "nothing changed");
    let log = without_colours(&herd.log());
    assert!(
        log.contains("permission denied") && log.contains("uid=65534") && log.contains("pid="),
        "the denial is logged with the peer's uid and pid:\n{log}"
    );
    // Root may.
    herd.ok(&["stop", "web"]);
    assert_eq!(herd.instance("web")["state"], "inactive");
}

#[test]
fn a_control_group_member_may_control_herd() {
    let (group, gid) = some_other_group();
    let herd = herd_for_others(WEB, Some(&group));
    herd.wait_state("web", "running");

    let outsider = ctl_as_nobody(&herd, &[], &["stop", "web"]);
    assert_eq!(outsider.status.code(), Some(5), "{}", stderr(&outsider));
    assert!(
        stderr(&outsider).contains(&format!("members of group {group:?}")),
        "the message says who may: {}",
        stderr(&outsider)
    );

    let member = ctl_as_nobody(&herd, &[gid], &["stop", "web"]);
    assert_eq!(member.status.code(), Some(0), "{}", stderr(&member));
    assert_eq!(herd.instance("web")["state"], "inactive");
}

#[test]
fn an_unknown_control_group_stops_herdd_at_start() {
    let herd = Herd::configure(WEB);
    append(&herd.config, "control_group = \"no-such-group-herd-e2e\"\n");
    let out = Command::new(bin("herdd"))
        .arg("--config")
        .arg(&herd.config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let message = stderr(&out);
    assert!(
        message.contains("herd.control_group: no such group `no-such-group-herd-e2e`"),
        "{message}"
    );
    assert!(!herd.socket.exists(), "nothing is listening");
}

#[test]
fn herdd_refuses_a_socket_directory_others_could_tamper_with() {
    let herd = Herd::configure(WEB);
    let run = |herd: &Herd| {
        Command::new(bin("herdd"))
            .arg("--config")
            .arg(&herd.config)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let dir = herd.dir.path();
    // Writable by everyone, not sticky: anyone could swap the socket.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run(&herd);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("herdd refuses a socket path it does not own")
            && stderr(&out).contains("writable by everyone"),
        "{}",
        stderr(&out)
    );
    // Owned by another (non-root) user.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(dir, Some(65534), None).unwrap();
    let out = run(&herd);
    std::os::unix::fs::chown(dir, Some(0), None).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("herdd refuses a socket path it does not own")
            && stderr(&out).contains("owned by uid 65534"),
        "{}",
        stderr(&out)
    );

    // A directory herdd creates is 0755, whatever the umask.
    let nested = dir.join("run/herd");
    let socket = nested.join("herd.sock");
    std::fs::write(
        &herd.config,
        format!(
            "{WEB}\n[herd]\nsocket = {:?}\nstate_dir = {:?}\n",
            socket.display().to_string(),
            dir.join("state").display().to_string()
        ),
    )
    .unwrap();
    let _daemon = launch_daemon(&herd, &socket, &[]);
    let mode = std::fs::metadata(&nested).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o666);
}

#[test]
fn a_thousand_parallel_clients_are_all_answered() {
    const CLIENTS: usize = 1000;
    // This process and herdd (which inherits it) each need a descriptor per client.
    raise_nofile(4096);
    let herd = Herd::start(WEB);
    herd.wait_state("web", "running");
    // Every client connects first, then all ask at once.
    let connected = Arc::new(Barrier::new(CLIENTS + 1));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let socket = herd.socket.clone();
            let connected = connected.clone();
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let stream = UnixStream::connect(&socket);
                    connected.wait();
                    let mut stream = stream.expect("connect");
                    stream.set_read_timeout(Some(DEADLINE)).unwrap();
                    ask_status(&mut stream)
                })
                .expect("spawn a client thread")
        })
        .collect();
    connected.wait();
    let started = Instant::now();
    herd.ok(&["status"]);
    let during = started.elapsed();
    let mut answered = 0;
    for client in clients {
        let reply = client.join().expect("client thread");
        assert_eq!(reply["ok"]["units"][0]["name"], "web", "{reply}");
        answered += 1;
    }
    assert_eq!(answered, CLIENTS);
    assert!(during < Duration::from_secs(5), "status took {during:?}");
    let peak = std::fs::read_to_string(format!("/proc/{}/status", herd.daemon_pid()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:").map(str::to_string))
        .unwrap();
    let peak_kb: u64 = peak.trim().trim_end_matches("kB").trim().parse().unwrap();
    assert!(peak_kb < MAX_RSS_KB, "herdd peaked at {peak_kb} kB");
}

#[test]
fn slowloris_clients_are_cut_off_and_do_not_stall_herdd() {
    const SLOW: usize = 100;
    let herd = Herd::start(WEB);
    herd.wait_state("web", "running");
    let mut idle = UnixStream::connect(&herd.socket).unwrap();
    let sent = Instant::now();
    let slow: Vec<UnixStream> = (0..SLOW)
        .map(|_| {
            let mut stream = UnixStream::connect(&herd.socket).unwrap();
            stream.write_all(b"{\"v\":1,\"cmd\":\"sta").unwrap();
            stream
        })
        .collect();
    // One more drips a byte every 300 ms: that must not buy it more time.
    let mut drip = UnixStream::connect(&herd.socket).unwrap();
    let dripper = std::thread::spawn(move || {
        let started = Instant::now();
        while drip.write_all(b" ").is_ok() && started.elapsed() < DEADLINE {
            std::thread::sleep(Duration::from_millis(300));
        }
        started.elapsed()
    });

    // Served while they hang: herdctl gives up (exit 6) if herdd does not answer.
    herd.ok(&["--timeout", "5s", "status"]);
    let rss = rss_kb(herd.daemon_pid());
    assert!(rss < MAX_RSS_KB, "herdd uses {rss} kB");

    // Each is told why and closed ~10 s after its half line.
    for mut stream in slow {
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).expect("closed by herdd");
        assert!(
            reply.contains("bad_request") && reply.contains("not completed"),
            "{reply}"
        );
    }
    let cut = sent.elapsed();
    assert!(
        cut >= Duration::from_secs(9) && cut < Duration::from_secs(14),
        "slow clients cut after {cut:?}"
    );
    let dripped = dripper.join().unwrap();
    assert!(
        dripped < Duration::from_secs(12),
        "the dripper lasted {dripped:?}"
    );

    // A connection with nothing half-sent may stay as long as it likes.
    idle.set_read_timeout(Some(DEADLINE)).unwrap();
    let reply = ask_status(&mut idle);
    assert_eq!(reply["ok"]["units"][0]["name"], "web", "{reply}");
}

#[test]
fn a_client_beyond_the_connection_limit_is_told_too_busy() {
    const LIMIT: usize = 8;
    let herd = Herd::configure(WEB);
    let _daemon = launch_daemon(&herd, &herd.socket, &[("HERD_MAX_CONNECTIONS", "8")]);
    // Fill every slot; a served request proves herdd accepted the connection.
    let mut held: Vec<UnixStream> = (0..LIMIT)
        .map(|_| {
            let mut stream = UnixStream::connect(&herd.socket).unwrap();
            stream.set_read_timeout(Some(DEADLINE)).unwrap();
            assert!(ask_status(&mut stream)["ok"].is_object());
            stream
        })
        .collect();

    let mut extra = UnixStream::connect(&herd.socket).unwrap();
    extra.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut reply = String::new();
    // One error line, then the connection is closed: no hang.
    let _ = extra.read_to_string(&mut reply);
    let reply: Value = serde_json::from_str(reply.trim()).unwrap();
    assert_eq!(reply["error"]["code"], "too_busy", "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum of 8 connections"),
        "{reply}"
    );
    let busy = herd.ctl(&["status"]);
    assert_eq!(busy.status.code(), Some(1), "{}", stderr(&busy));

    // A slot freed is a slot for the next client.
    held.pop();
    wait_until("a free slot", || herd.ctl(&["status"]).status.success());
}

#[test]
fn big_incomplete_requests_cannot_make_herdd_grow() {
    // 1000 × 60 KB would be 60 MB held for 10 s without a shared budget.
    const CLIENTS: usize = 1000;
    raise_nofile(4096);
    let herd = Herd::start(WEB);
    herd.wait_state("web", "running");
    let almost = vec![b' '; 60_000];
    let clients: Vec<UnixStream> = (0..CLIENTS)
        .map(|_| {
            let mut stream = UnixStream::connect(&herd.socket).unwrap();
            // herdd may already have turned it away: then writing fails.
            let _ = stream.write_all(&almost);
            stream
        })
        .collect();
    herd.ok(&["status"]);
    let rss = rss_kb(herd.daemon_pid());
    assert!(rss < MAX_RSS_KB, "herdd uses {rss} kB");
    let (mut busy, mut cut) = (0, 0);
    for stream in clients {
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut reply = String::new();
        let _ = BufReader::new(stream).read_line(&mut reply);
        if reply.contains("too_busy") {
            busy += 1;
        } else if reply.contains("not completed") {
            cut += 1;
        } else {
            panic!("unexpected reply {reply:?}");
        }
    }
    assert!(busy > 0 && cut > 0, "{busy} turned away, {cut} cut off");
    herd.ok(&["status"]);
}

/// Runs `work` on a thread of its own whose credentials are `uid` (and the
/// test's groups): the kernel keeps credentials per thread, and a raw
/// setresuid changes only the calling thread's (glibc's wrapper would
/// change every thread of the test process). Sockets it connects carry
/// `uid` as their peer credentials, and outlive the thread.
fn as_uid<T: Send>(uid: u32, work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: a plain syscall; it changes this thread only.
                let rc = unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) };
                assert_eq!(rc, 0, "setresuid({uid})");
                work()
            })
            .join()
            .unwrap()
    })
}

/// Opens `n` connections as `uid` and says what herdd did with each: `None`
/// for a connection it kept (and still holds, in `held`), or the error
/// code it turned it away with.
fn connect_as(
    uid: u32,
    socket: &Path,
    n: usize,
    held: &mut Vec<UnixStream>,
) -> Vec<Option<String>> {
    let streams = as_uid(uid, || {
        (0..n)
            .map(|_| UnixStream::connect(socket).unwrap())
            .collect::<Vec<_>>()
    });
    streams
        .into_iter()
        .map(|stream| {
            // A turned-away connection gets its line at once and is closed;
            // a kept one answers a request (anyone may ask for status).
            let mut stream = stream;
            stream.set_read_timeout(Some(DEADLINE)).unwrap();
            let _ = stream.write_all(STATUS);
            let mut line = String::new();
            let _ = BufReader::new(&stream).read_line(&mut line);
            let reply: Value = serde_json::from_str(&line).unwrap_or_default();
            if reply["ok"].is_object() {
                held.push(stream);
                None
            } else {
                Some(
                    reply["error"]["code"]
                        .as_str()
                        .unwrap_or("closed")
                        .to_string(),
                )
            }
        })
        .collect()
}

#[test]
fn no_local_user_can_lock_root_out() {
    let herd = Herd::configure(WEB);
    std::fs::set_permissions(herd.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // 20 in all, 4 of them for privileged clients only, 6 per other uid.
    let env = [
        ("HERD_MAX_CONNECTIONS", "20"),
        ("HERD_RESERVED_CONNECTIONS", "4"),
        ("HERD_MAX_CONNECTIONS_PER_UID", "6"),
    ];
    let _daemon = launch_daemon(&herd, &herd.socket, &env);
    wait_until("web running", || {
        herd.ctl(&["status", "--json"]).status.success()
            && stdout(&herd.ctl(&["status", "--json"])).contains("running")
    });
    let mut held = Vec::new();

    // One user gets its share and is told why not beyond it.
    let nobody = connect_as(65534, &herd.socket, 10, &mut held);
    assert_eq!(
        nobody.iter().filter(|r| r.is_none()).count(),
        6,
        "{nobody:?}"
    );
    assert!(
        nobody.iter().flatten().all(|code| code == "too_busy"),
        "{nobody:?}"
    );
    let mut stream = as_uid(65534, || UnixStream::connect(&herd.socket).unwrap());
    let mut line = String::new();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    BufReader::new(&mut stream).read_line(&mut line).unwrap();
    assert!(
        line.contains("uid 65534 already holds its maximum of 6 connections"),
        "{line}"
    );

    // Other users fill what is open to all (16), and no more.
    let others: Vec<_> = [65533, 65532]
        .iter()
        .flat_map(|uid| connect_as(*uid, &herd.socket, 6, &mut held))
        .collect();
    assert_eq!(held.len(), 16, "{others:?}");
    assert!(others.iter().flatten().all(|code| code == "too_busy"));
    let late = connect_as(65531, &herd.socket, 1, &mut held);
    assert_eq!(late, [Some("too_busy".to_string())]);

    // Root still gets in, and may stop and start.
    herd.ok(&["status"]);
    herd.ok(&["stop", "web"]);
    herd.ok(&["start", "web"]);

    // Connections given back are free for others again.
    held.truncate(10);
    let held = std::cell::RefCell::new(held);
    wait_until("a slot for another uid", || {
        connect_as(65531, &herd.socket, 1, &mut held.borrow_mut()) == [None]
    });
}

#[test]
fn a_connection_that_never_speaks_is_closed_but_one_that_spoke_may_idle() {
    let herd = Herd::configure(WEB);
    let _daemon = launch_daemon(&herd, &herd.socket, &[("HERD_IDLE_TIMEOUT_MS", "1000")]);
    let mut spoke = UnixStream::connect(&herd.socket).unwrap();
    spoke.set_read_timeout(Some(DEADLINE)).unwrap();
    assert!(ask_status(&mut spoke)["ok"].is_object());

    let silent = UnixStream::connect(&herd.socket).unwrap();
    silent.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut told = String::new();
    // Told why, then closed: read_to_string ends.
    (&silent).read_to_string(&mut told).unwrap();
    let reply: Value = serde_json::from_str(told.trim()).unwrap();
    assert_eq!(reply["error"]["code"], "bad_request", "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no request within"),
        "{reply}"
    );
    // The one that spoke has been idle longer than that, and is still served.
    assert!(ask_status(&mut spoke)["ok"].is_object());
}

#[test]
fn denied_requests_are_logged_once_per_interval_with_a_count() {
    const DENIED: usize = 300;
    let herd = Herd::configure(WEB);
    std::fs::set_permissions(herd.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let env = [("HERD_DENIAL_LOG_INTERVAL_MS", "1000")];
    let _daemon = launch_daemon(&herd, &herd.socket, &env);
    let stream = as_uid(65534, || UnixStream::connect(&herd.socket).unwrap());
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    for _ in 0..DENIED {
        writer
            .write_all(b"{\"v\":1,\"cmd\":\"stop\",\"names\":[\"web\"]}\n")
            .unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.contains("permission_denied"), "{line}");
    }
    // Every denial is accounted for: logged, or counted in a summary.
    let accounted = || {
        let log = without_colours(&herd.log());
        let logged = log
            .lines()
            .filter(|l| l.contains("permission denied (socket)") && l.contains("uid=65534"))
            .count();
        let counted: usize = log
            .lines()
            .filter(|l| l.contains("more times in") && l.contains("uid=65534"))
            .filter_map(|l| {
                l.split("denied=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .sum();
        (logged, counted)
    };
    wait_until("the summary", || {
        let (logged, counted) = accounted();
        logged + counted == DENIED
    });
    let (logged, _) = accounted();
    assert!(
        logged <= 10,
        "{logged} lines for {DENIED} denials:\n{}",
        herd.log()
    );
}
