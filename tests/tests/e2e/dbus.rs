//! herd on D-Bus, end to end: each test starts a private `dbus-daemon` of its
//! own (its config in the test's temp dir, with the system bus's default
//! policy and `contrib/org.herd.Herd1.conf` included, so the shipped policy
//! is what is tested) and a herdd with `[herd] dbus = "<that address>"`.
//! Every verb over `herdctl --dbus` must give what it gives over the socket.

use crate::harness::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::pin::Pin;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A private message bus, stopped by PID on drop.
pub struct PrivateBus {
    pub address: String,
    pid: u32,
}

impl PrivateBus {
    /// Starts `dbus-daemon` listening on a socket in `dir`, with the system
    /// bus's default policy plus herd's policy file from `contrib/`.
    pub fn start(dir: &Path) -> PrivateBus {
        let contrib = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../contrib/org.herd.Herd1.conf")
            .canonicalize()
            .expect("contrib/org.herd.Herd1.conf exists");
        let config = dir.join("bus.conf");
        std::fs::write(&config, bus_config(&dir.join("bus.sock"), &contrib)).unwrap();
        let out = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args([
                "--fork",
                "--print-address=1",
                "--print-pid=1",
                "--nopidfile",
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run dbus-daemon (the dbus package)");
        assert!(out.status.success(), "dbus-daemon failed: {}", stderr(&out));
        let text = stdout(&out);
        let mut lines = text.lines();
        let address = lines.next().expect("address line").trim().to_string();
        let pid = lines
            .next()
            .and_then(|line| line.trim().parse().ok())
            .expect("pid line");
        PrivateBus { address, pid }
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        signal(self.pid, libc::SIGTERM);
        // Forked: not our child, so it cannot be waited for; watch it go.
        let started = Instant::now();
        while alive(self.pid) && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if alive(self.pid) {
            signal(self.pid, libc::SIGKILL);
        }
    }
}

/// As the system bus is set up (default deny for method calls and names,
/// holes punched by the included service policy), on a socket of our own.
fn bus_config(socket: &Path, contrib: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <include>{contrib}</include>
</busconfig>
"#,
        socket = socket.display(),
        contrib = contrib.display(),
    )
}

/// A herdd on a private bus. Fields drop in order: herdd first (it leaves
/// the bus as it stops), then the bus.
struct BusHerd {
    herd: Herd,
    bus: PrivateBus,
}

impl BusHerd {
    /// `units` under a `[herd]` with `dbus` set to a private bus; `extra`
    /// goes into `[herd]` too. Waits until herdd owns its name.
    fn start(units: &str, extra: &str, open_to_others: bool) -> BusHerd {
        BusHerd::start_with_env(units, extra, open_to_others, &[])
    }

    /// [`BusHerd::start`] with `env` for herdd.
    fn start_with_env(
        units: &str,
        extra: &str,
        open_to_others: bool,
        env: &[(&str, &str)],
    ) -> BusHerd {
        let mut herd = Herd::configure(units);
        herd.env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        if open_to_others {
            // Tempdirs are 0700: let `nobody` reach the bus socket.
            std::fs::set_permissions(herd.dir.path(), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        let bus = PrivateBus::start(herd.dir.path());
        // The harness writes `[herd]` last, so these lines land in it.
        let mut config = std::fs::OpenOptions::new()
            .append(true)
            .open(&herd.config)
            .unwrap();
        writeln!(config, "dbus = {:?}\n{extra}", bus.address).unwrap();
        let herd = herd.launch();
        let bus_herd = BusHerd { herd, bus };
        wait_until("herdd to own org.herd.Herd1", || {
            bus_herd.dctl(&["status"]).status.success()
        });
        bus_herd
    }

    /// `herdctl --dbus=<our bus> ARGS`.
    fn dctl(&self, args: &[&str]) -> Output {
        self.dctl_command(args).output().expect("run herdctl")
    }

    fn dctl_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bin("herdctl"));
        command
            .arg(format!("--dbus={}", self.bus.address))
            .args(args)
            .stdin(Stdio::null());
        command
    }

    fn dok(&self, args: &[&str]) -> String {
        let out = self.dctl(args);
        assert!(
            out.status.success(),
            "herdctl --dbus {args:?} failed ({}): {}{}\n--- herdd log ---\n{}",
            out.status,
            stdout(&out),
            stderr(&out),
            self.herd.log()
        );
        stdout(&out)
    }
}

const UNITS: &str = r#"
[service.web]
command = ["/bin/sleep", "1000"]

[service.workers]
command = ["/bin/sleep", "1000"]
instances = 1

[pool.p]
size = 2

[pool.p2]
size = 2

[semaphore.s]
capacity = 1
"#;

/// Output with what differs between two runs of the same steps taken out:
/// every number becomes `#` (pids, uptimes, durations, times, client ids)
/// and runs of spaces (table alignment after that) become one.
fn masked(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = ' ';
    for c in text.chars() {
        let c = if c.is_ascii_digit() { '#' } else { c };
        if (c == '#' && last == '#') || (c == ' ' && last == ' ') {
            continue;
        }
        out.push(c);
        last = c;
    }
    out
}

/// Runs the same step on a herd over its socket and on another over D-Bus,
/// both in the same state: same exit code (`code`), same output.
fn same(socket: &Herd, dbus: &BusHerd, args: &[&str], code: i32) {
    compare(socket.ctl(args), dbus.dctl(args), args, code, &dbus.herd);
}

fn compare(over_socket: Output, over_dbus: Output, args: &[&str], code: i32, herd: &Herd) {
    for (how, out) in [("socket", &over_socket), ("D-Bus", &over_dbus)] {
        assert_eq!(
            out.status.code(),
            Some(code),
            "herdctl {args:?} over the {how}: {}{}\n--- herdd log ---\n{}",
            stdout(out),
            stderr(out),
            herd.log()
        );
    }
    assert_eq!(
        masked(&stdout(&over_socket)),
        masked(&stdout(&over_dbus)),
        "stdout of herdctl {args:?}"
    );
    assert_eq!(
        masked(&stderr(&over_socket)),
        masked(&stderr(&over_dbus)),
        "stderr of herdctl {args:?}"
    );
}

#[test]
fn every_verb_gives_over_dbus_what_it_gives_over_the_socket() {
    // Two herds in the same state, driven by the same steps: one over its
    // socket, one over D-Bus.
    let socket = Herd::start(UNITS);
    let dbus = BusHerd::start(UNITS, "", false);
    let steps: &[(&[&str], i32)] = &[
        (&["--json", "status"], 0),
        (&["status", "nope"], 4),
        (&["--json", "stop", "nope"], 4),
        (&["stop", "web"], 0),
        (&["status", "web"], 3),
        (&["--json", "start", "web"], 0),
        (&["--json", "restart", "web"], 0),
        (&["--json", "kill", "-s", "CONT", "web"], 0),
        (&["kill", "nope"], 4),
        (&["--json", "scale", "workers", "3"], 0),
        (&["scale", "nope", "2"], 4),
        (&["submit", "p", "--", "/bin/echo", "hi"], 0),
        (&["join", "1"], 0),
        (&["--json", "join", "1"], 0),
        (&["output", "1"], 0),
        (&["--json", "output", "1"], 0),
        (
            &["submit", "p", "--wait", "--", "/bin/sh", "-c", "exit 3"],
            3,
        ),
        (&["--json", "tasks", "p"], 0),
        (&["tasks"], 0),
        (&["cancel", "99"], 4),
        (&["output", "99"], 4),
        (&["join", "99"], 4),
        (&["submit", "nopool", "--", "/bin/true"], 4),
        (&["event", "set", "go"], 0),
        (&["--json", "event", "list"], 0),
        (&["event", "wait", "go", "--timeout", "1s"], 0),
        (&["event", "clear", "go"], 0),
        (&["event", "wait", "go", "--timeout", "50ms"], 1),
        (&["event", "list"], 0),
        (&["--json", "sem", "list"], 0),
        (&["sem", "acquire", "s", "--", "/bin/sh", "-c", "exit 7"], 7),
        (&["sem", "acquire", "nosem", "--", "/bin/true"], 4),
        (&["sem", "list"], 0),
        (&["--json", "pool", "join", "p"], 0),
        (&["pool", "close", "p"], 0),
        (&["submit", "p", "--", "/bin/true"], 1),
        (&["--json", "reload"], 0),
        (&["--json", "status"], 0),
        // The lifecycle stream: the same events (times and pids aside).
        (&["events"], 0),
    ];
    for (args, code) in steps {
        same(&socket, &dbus, args, *code);
    }
    // `map` reads its items from stdin.
    let map = |mut command: Command| {
        let mut child = command
            .args(["map", "p2", "--", "/bin/echo", "item {}"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"a\nb\nc\n").unwrap();
        child.wait_with_output().unwrap()
    };
    let mut over_socket = Command::new(bin("herdctl"));
    over_socket.arg("--socket").arg(&socket.socket);
    let over_socket = map(over_socket);
    let over_dbus = map(dbus.dctl_command(&[]));
    assert_eq!(stdout(&over_dbus), "item a\nitem b\nitem c\n");
    compare(over_socket, over_dbus, &["map"], 0, &dbus.herd);
    // shutdown waits until herdd has gone, over the bus as over the socket.
    let mut socket = socket;
    let mut dbus = dbus;
    same(&socket, &dbus, &["shutdown"], 0);
    assert_eq!(socket.wait_exit(), 0);
    assert_eq!(dbus.herd.wait_exit(), 0);
}

#[test]
fn unreachable_bus_or_herdd_exits_6_naming_the_bus() {
    let out = Command::new(bin("herdctl"))
        .args(["--dbus=unix:path=/nonexistent/herd-bus", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unix:path=/nonexistent/herd-bus"),
        "{}",
        stderr(&out)
    );
    // A bus without herdd on it.
    let dir = tempfile::tempdir().unwrap();
    let bus = PrivateBus::start(dir.path());
    let out = Command::new(bin("herdctl"))
        .arg(format!("--dbus={}", bus.address))
        .args(["--json", "stop", "web"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(message.contains("herdd is not running"), "{message}");
    assert!(message.contains(&bus.address), "{message}");
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["error"]["code"], "unreachable");
    // `--dbus` alone is the system bus, and `--dbus WORD` only takes a bus.
    let out = Command::new(bin("herdctl"))
        .args(["--dbus", "nowhere", "status"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a usage error: {}",
        stderr(&out)
    );
}

/// Runs `herdctl --dbus` as `nobody`, with `groups` as its only
/// supplementary groups.
fn dctl_as_nobody(herd: &BusHerd, groups: &[u32], args: &[&str]) -> Output {
    let bus = format!("--dbus={}", herd.bus.address);
    herdctl_as_nobody(&[&bus], groups, args)
}

#[test]
fn an_unauthorised_caller_is_refused_with_exit_5_and_may_still_read() {
    let (group, gid) = some_other_group();
    let herd = BusHerd::start(
        r#"
[service.web]
command = ["/bin/sleep", "1000"]
"#,
        &format!("control_group = {group:?}"),
        true,
    );
    let pid = herd.herd.pid_of("web");
    let out = dctl_as_nobody(&herd, &[], &["stop", "web"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
    assert_eq!(herd.herd.pid_of("web"), pid, "web untouched");
    let out = dctl_as_nobody(&herd, &[], &["--json", "shutdown"]);
    assert_eq!(out.status.code(), Some(5));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["error"]["code"], "permission_denied");
    // Reading is for everyone.
    let out = dctl_as_nobody(&herd, &[], &["status", "web"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A typed method the bus policy keeps from strangers: refused by the bus.
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .args(["dbus-send", "--print-reply"])
        .arg(format!("--bus={}", herd.bus.address))
        .args([
            "--dest=org.herd.Herd1",
            "/org/herd/Herd1",
            "org.herd.Herd1.Manager.Stop",
            "array:string:web",
            "boolean:true",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("org.freedesktop.DBus.Error.AccessDenied"),
        "{}",
        stderr(&out)
    );
    // Credentials come from the bus: a member of control_group may.
    let out = dctl_as_nobody(&herd, &[gid], &["restart", "web"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_ne!(herd.herd.pid_of("web"), pid, "restarted");
    assert!(
        herd.herd.log().contains("permission denied (D-Bus)"),
        "refusals are logged"
    );
}

/// Runs `future` on a current-thread runtime, failing after [`DEADLINE`].
fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { tokio::time::timeout(DEADLINE, future).await })
        .expect("timed out")
}

async fn next<S: futures_core::Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

async fn call<B, R>(
    connection: &zbus::Connection,
    method: &str,
    body: &B,
) -> Result<R, (String, String)>
where
    B: serde::Serialize + zbus::DynamicType,
    R: for<'d> serde::Deserialize<'d> + zbus::Type,
{
    let reply = connection
        .call_method(
            Some("org.herd.Herd1"),
            "/org/herd/Herd1",
            Some("org.herd.Herd1.Manager"),
            method,
            body,
        )
        .await;
    match reply {
        Ok(message) => Ok(message.body().deserialize().expect("reply type")),
        Err(zbus::Error::MethodError(name, text, _)) => {
            Err((name.to_string(), text.unwrap_or_default()))
        }
        Err(other) => panic!("{method}: {other}"),
    }
}

#[test]
fn typed_methods_work_and_map_each_error_to_its_own_dbus_error() {
    let herd = BusHerd::start(UNITS, "", false);
    block_on(async {
        let connection = zbus::connection::Builder::address(herd.bus.address.as_str())
            .build()
            .await
            .unwrap();
        let units: Vec<(String, String)> = call(&connection, "ListUnits", &()).await.unwrap();
        assert!(units.contains(&("web".to_string(), "running".to_string())));
        let err = call::<_, String>(&connection, "Status", &(vec!["nope"],))
            .await
            .unwrap_err();
        assert_eq!(err.0, "org.herd.Herd1.Error.NoSuchUnit");
        assert!(err.1.contains("nope"), "{err:?}");
        let err = call::<_, u64>(&connection, "Submit", &("nopool", vec!["/bin/true"]))
            .await
            .unwrap_err();
        assert_eq!(err.0, "org.herd.Herd1.Error.NoSuchPool");
        let err = call::<_, String>(&connection, "TaskOutput", &(99u64, "stdout"))
            .await
            .unwrap_err();
        assert_eq!(err.0, "org.herd.Herd1.Error.NoSuchTask");
        let err = call::<_, bool>(&connection, "SemaphoreAcquire", &("nosem", 0u64))
            .await
            .unwrap_err();
        assert_eq!(err.0, "org.herd.Herd1.Error.NoSuchSemaphore");

        let id: u64 = call(&connection, "Submit", &("p", vec!["/bin/echo", "typed"]))
            .await
            .unwrap();
        let joined: String = call(&connection, "Join", &(vec![id], 0u64)).await.unwrap();
        let joined: Value = serde_json::from_str(&joined).unwrap();
        assert_eq!(joined["tasks"][0]["state"], "exited");
        let output: String = call(&connection, "TaskOutput", &(id, "stdout"))
            .await
            .unwrap();
        let output: Value = serde_json::from_str(&output).unwrap();
        assert_eq!(output["data"], "typed\n");

        let () = call(&connection, "EventSet", &("ready",)).await.unwrap();
        let set: bool = call(&connection, "EventWait", &("ready", 1000u64))
            .await
            .unwrap();
        assert!(set);
        let () = call(&connection, "EventClear", &("ready",)).await.unwrap();
        let set: bool = call(&connection, "EventWait", &("ready", 20u64))
            .await
            .unwrap();
        assert!(!set, "timed out");

        let signalled: Vec<String> = call(&connection, "Kill", &(vec!["web"], "CONT"))
            .await
            .unwrap();
        assert_eq!(signalled, ["web"]);
        let stopped: String = call(&connection, "Stop", &(vec!["web"], true))
            .await
            .unwrap();
        let stopped: Value = serde_json::from_str(&stopped).unwrap();
        assert_eq!(stopped["units"][0]["state"], "inactive");

        // A slot taken over D-Bus belongs to the caller's connection.
        let acquired: bool = call(&connection, "SemaphoreAcquire", &("s", 0u64))
            .await
            .unwrap();
        assert!(acquired);
        let list: String = call(&connection, "SemaphoreList", &()).await.unwrap();
        let list: Value = serde_json::from_str(&list).unwrap();
        assert_eq!(
            list["semaphores"][0]["holders"].as_array().unwrap().len(),
            1
        );
        // The generic method answers with the socket's reply line, errors in it.
        let reply: String = call(
            &connection,
            "Request",
            &(r#"{"v":1,"cmd":"status","names":["nope"]}"#,),
        )
        .await
        .unwrap();
        let reply: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(reply["error"]["code"], "no_such_unit");
        let reply: String = call(&connection, "Request", &("garbage",)).await.unwrap();
        assert!(reply.contains("bad_request"), "{reply}");
        drop(connection);
    });
    // The connection closed: the bus says so and herdd frees the slot.
    herd.herd
        .wait_for("the D-Bus caller's slot to be freed", |_| {
            let list: Value = serde_json::from_str(&herd.dok(&["--json", "sem", "list"])).unwrap();
            list["semaphores"][0]["holders"]
                .as_array()
                .is_some_and(|h| h.is_empty())
        });
}

#[test]
fn a_killed_sem_acquire_over_dbus_frees_its_slot_at_once() {
    let herd = BusHerd::start(UNITS, "", false);
    let mut holder = herd
        .dctl_command(&["sem", "acquire", "s", "--", "/bin/sleep", "1000"])
        .stdout(Stdio::null())
        // A process group of its own, so its `sleep` goes with it.
        .process_group(0)
        .spawn()
        .unwrap();
    let holders = || {
        let list: Value = serde_json::from_str(&herd.dok(&["--json", "sem", "list"])).unwrap();
        list["semaphores"][0]["holders"].as_array().unwrap().len()
    };
    wait_until("the slot to be held over D-Bus", || holders() == 1);
    let busy = herd.dctl(&[
        "sem",
        "acquire",
        "s",
        "--timeout",
        "50ms",
        "--",
        "/bin/true",
    ]);
    assert_eq!(busy.status.code(), Some(1), "{}", stderr(&busy));
    // SIGKILL: herdctl cannot release anything; the bus tells herdd it left.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(holder.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    holder.wait().unwrap();
    wait_until("the slot to be freed", || holders() == 0);
    let out = herd.dctl(&["sem", "acquire", "s", "--timeout", "5s", "--", "/bin/true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Signals received: (member, body as JSON-ish text).
fn signal_text(message: &zbus::Message) -> (String, String) {
    let member = message
        .header()
        .member()
        .map(|m| m.to_string())
        .unwrap_or_default();
    let body = message.body();
    let text = match member.as_str() {
        "Event" => body.deserialize::<String>().unwrap_or_default(),
        "InstanceChanged" => {
            let (instance, change): (String, String) = body.deserialize().unwrap();
            format!("{instance} {change}")
        }
        "TaskFinished" => {
            let (id, pool, success, result): (u64, String, bool, String) =
                body.deserialize().unwrap();
            format!("{pool}#{id} {success} {result}")
        }
        "EventChanged" => {
            let (name, set): (String, bool) = body.deserialize().unwrap();
            format!("{name} {set}")
        }
        _ => String::new(),
    };
    (member, text)
}

#[test]
fn signals_arrive_for_start_crash_restart_tasks_and_events() {
    let herd = BusHerd::start(
        r#"
[service.web]
command = ["/bin/sleep", "1000"]
restart = "always"
restart_delay = "10ms"

[pool.p]
size = 1
"#,
        "",
        false,
    );
    let address = herd.bus.address.clone();
    block_on(async {
        let connection = zbus::connection::Builder::address(address.as_str())
            .build()
            .await
            .unwrap();
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface("org.herd.Herd1.Manager")
            .path("/org/herd/Herd1")
            .build()
            .unwrap();
        let mut signals = zbus::MessageStream::for_match_rule(rule, &connection, None)
            .await
            .unwrap();
        let mut seen: Vec<(String, String)> = Vec::new();
        // Reads signals until one from `member` containing `text` arrives
        // after the first `from` seen; returns its position.
        let mut wait_for = async |member: &str, text: &str, from: usize, seen: &mut Vec<_>| loop {
            let found = seen[from.min(seen.len())..]
                .iter()
                .position(|(m, t): &(String, String)| m == member && t.contains(text));
            if let Some(at) = found {
                return from + at;
            }
            let message = next(&mut signals).await.expect("signal stream").unwrap();
            seen.push(signal_text(&message));
        };
        // A start...
        herd.dok(&["restart", "web"]);
        let started = wait_for("InstanceChanged", "web started", 0, &mut seen).await;
        wait_for("InstanceChanged", "web ready", started, &mut seen).await;
        wait_for(
            "Event",
            r#""type":"started","instance":"web""#,
            0,
            &mut seen,
        )
        .await;
        // ...a crash...
        let pid = herd.herd.pid_of("web");
        signal(pid, libc::SIGKILL);
        let crashed = wait_for(
            "Event",
            r#""exit":{"signal":"SIGKILL"}"#,
            started,
            &mut seen,
        )
        .await;
        let exited = wait_for("InstanceChanged", "web exited", started, &mut seen).await;
        // ...and the restart.
        let restarting = wait_for("InstanceChanged", "web restarting", exited, &mut seen).await;
        wait_for("InstanceChanged", "web started", restarting, &mut seen).await;
        assert!(crashed > started, "{seen:#?}");
        // Task completion, as systemd's JobRemoved.
        herd.dok(&["submit", "p", "--", "/bin/sh", "-c", "exit 2"]);
        wait_for("TaskFinished", "p#1 false exit code 2", 0, &mut seen).await;
        // Event changes.
        herd.dok(&["event", "set", "go"]);
        wait_for("EventChanged", "go true", 0, &mut seen).await;
    });
}

#[test]
fn events_follow_over_dbus_streams_until_herdd_leaves_the_bus() {
    let mut herd = BusHerd::start(UNITS, "", false);
    let mut follower = herd
        .dctl_command(&["--json", "events", "-f"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    // The remembered events first.
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["type"], "started");
    herd.dok(&["stop", "web"]);
    let mut stopping = false;
    for line in lines.by_ref() {
        let event: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if event["type"] == "stopping" && event["instance"] == "web" {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "the live stop came through");
    herd.dok(&["shutdown"]);
    assert_eq!(herd.herd.wait_exit(), 0);
    // herdd left the bus: the stream ends, and herdctl with 0.
    for _ in lines {}
    let started = Instant::now();
    let status = loop {
        if let Some(status) = follower.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < DEADLINE, "events -f did not end");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success());
}

#[test]
fn daemon_reexec_over_dbus_keeps_every_child_and_the_name() {
    let herd = BusHerd::start(UNITS, "", false);
    let daemon = herd.herd.daemon_pid();
    let web = herd.herd.pid_of("web");
    herd.dok(&["daemon-reexec"]);
    // The new image answers on the bus (herdctl waited for that).
    let status: Value = serde_json::from_str(&herd.dok(&["--json", "status", "web"])).unwrap();
    assert_eq!(status["units"][0]["instances"][0]["pid"], web);
    assert_eq!(herd.herd.daemon_pid(), daemon);
    assert!(alive(daemon));
}

#[test]
fn dbus_calls_waiting_for_herdd_are_capped() {
    let herd = BusHerd::start_with_env("[event.go]\n", "", false, &[("HERD_MAX_DBUS_CALLS", "2")]);
    let waiter = || herd.dctl_command(&["event", "wait", "go"]).spawn().unwrap();
    let mut waiters = vec![waiter(), waiter()];
    // With both waiting, a third call is turned away, not queued. The
    // probes run one at a time, so a refused probe means both waiters hold
    // their call. A waiter that came while a probe held a call was itself
    // turned away: it is started again. (On a loaded machine the waiters
    // may be slow to reach herdd: a longer deadline than the harness's.)
    let started = std::time::Instant::now();
    loop {
        for slot in &mut waiters {
            if slot.try_wait().unwrap().is_some() {
                *slot = waiter();
            }
        }
        let out = herd.dctl(&["status"]);
        if out.status.code() == Some(1) && stderr(&out).contains("maximum of 2 D-Bus calls") {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE * 4,
            "a third call was never turned away: {}",
            stderr(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    herd.herd.ok(&["event", "set", "go"]);
    for waiter in &mut waiters {
        assert_eq!(waiter.wait().unwrap().code(), Some(0));
    }
    herd.dok(&["status"]);
}
