//! Rolling restarts of a pool of web workers behind a herd socket
//! (examples/web_worker.py): `restart --rolling` and a reload that changes
//! the pool's `env` replace every worker without a failed request and never
//! leave fewer than 3 of 4 ready; a replacement that fails stops the
//! rollout with exit 1 and leaves the others alone.

use crate::harness::{stderr, Herd};
use crate::sockets::{free_port, pool_config, pool_pids, wait_pool_running, Client, Target};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Counts the ready (`running`) instances of the pool in `status` until
/// stopped; the smallest count seen.
struct ReadyWatch {
    stop: Arc<AtomicBool>,
    least: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<()>,
}

impl ReadyWatch {
    fn start(herd: &Herd) -> ReadyWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let least = Arc::new(AtomicUsize::new(usize::MAX));
        let socket = herd.socket.clone();
        let (flag, seen) = (stop.clone(), least.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let out = std::process::Command::new(crate::harness::bin("herdctl"))
                    .arg("--socket")
                    .arg(&socket)
                    .args(["--json", "status", "web"])
                    .output()
                    .expect("herdctl status");
                let Ok(status) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
                    continue;
                };
                // A fresh connection is refused while herdd re-executes.
                let Some(all) = status["units"][0]["instances"].as_array() else {
                    continue;
                };
                let ready = all.iter().filter(|i| i["state"] == "running").count();
                seen.fetch_min(ready, Ordering::Relaxed);
            }
        });
        ReadyWatch {
            stop,
            least,
            thread,
        }
    }

    fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("watch thread");
        self.least.load(Ordering::Relaxed)
    }
}

fn start_pool() -> (Herd, Target) {
    let address = format!("127.0.0.1:{}", free_port());
    let config = format!("{}env = {{ VERSION = \"1\" }}\n", pool_config(&address, 4));
    let herd = Herd::start(&config);
    wait_pool_running(&herd);
    (herd, Target::Tcp(address))
}

/// Runs `roll` under traffic; checks no request failed, every pid was
/// replaced and at least 3 of 4 were ready all along. The bodies served.
fn under_traffic(herd: &Herd, target: Target, roll: impl FnOnce()) -> Vec<String> {
    let before = pool_pids(herd);
    let client = Client::start(target);
    client.wait_answers(20);
    let watch = ReadyWatch::start(herd);
    roll();
    herd.wait_for("every worker to be replaced and ready", |h| {
        let now = pool_pids(h);
        now.iter().all(|pid| !before.contains(pid))
            && (0..4).all(|i| h.instance(&format!("web@{i}"))["state"] == "running")
    });
    client.wait_answers(20);
    let least = watch.finish();
    let (bodies, failures) = client.finish();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(least >= 3, "only {least} of 4 ready at one point");
    assert_one_at_a_time(herd);
    bodies
}

/// In the event stream, each rollout step comes only after the instance of
/// the step before was ready again: never two instances down at once.
fn assert_one_at_a_time(herd: &Herd) {
    let events = herd.ok(&["events", "--json"]);
    let mut waiting_for: Option<String> = None;
    let mut steps = 0;
    for line in events.lines() {
        let event: serde_json::Value = serde_json::from_str(line).expect("event JSON");
        match event["type"].as_str() {
            Some("rollout_step") => {
                assert_eq!(
                    waiting_for, None,
                    "a step before the last was ready:\n{events}"
                );
                waiting_for = event["instance"].as_str().map(String::from);
                steps += 1;
            }
            Some("ready") if event["instance"].as_str() == waiting_for.as_deref() => {
                waiting_for = None;
            }
            _ => {}
        }
    }
    assert_eq!(steps, 4, "{events}");
    assert_eq!(waiting_for, None, "{events}");
}

#[test]
fn restart_rolling_replaces_every_worker_without_a_failed_request() {
    let (herd, target) = start_pool();
    under_traffic(&herd, target, || {
        herd.ok(&["restart", "--rolling", "web"]);
    });
    let events = herd.ok(&["events", "--json"]);
    assert_eq!(events.matches("\"rollout_step\"").count(), 4, "{events}");
    assert!(events.contains("\"rollout_ended\""), "{events}");
}

#[test]
fn a_reload_that_changes_env_rolls_the_pool_without_a_failed_request() {
    let (herd, target) = start_pool();
    let bodies = under_traffic(&herd, target.clone(), || {
        let text = std::fs::read_to_string(&herd.config).unwrap();
        std::fs::write(
            &herd.config,
            text.replace("VERSION = \"1\"", "VERSION = \"2\""),
        )
        .unwrap();
        herd.ok(&["reload"]);
    });
    assert!(bodies.iter().any(|body| body.contains("version=1")));
    let after = crate::sockets::get(&target).expect("served");
    assert!(after.contains("version=2"), "{after}");
}

#[test]
fn a_replacement_that_fails_stops_the_rollout_and_leaves_the_others() {
    let address = format!("127.0.0.1:{}", free_port());
    let herd = Herd::configure("");
    let broken = herd.path("broken");
    let worker = crate::sockets::worker_script().display().to_string();
    let units = format!(
        r#"
[socket.web]
listen = {address:?}

[service.web]
command = ["sh", "-c", "test -e {broken} && exit 1; exec python3 {worker}"]
instances = 4
sockets = ["web"]
ready = "notify"
start_timeout = "30s"
"#,
        broken = broken.display()
    );
    let text = std::fs::read_to_string(&herd.config).unwrap();
    std::fs::write(&herd.config, format!("{units}\n{text}")).unwrap();
    let herd = herd.launch();
    wait_pool_running(&herd);
    let before = pool_pids(&herd);
    std::fs::write(&broken, "").unwrap();
    let out = herd.ctl(&["restart", "--rolling", "web"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("web@0") && said.contains("did not become ready"),
        "{said}"
    );
    let others = |h: &Herd| {
        (1..4)
            .map(|i| h.pid_of(&format!("web@{i}")))
            .collect::<Vec<_>>()
    };
    assert_eq!(others(&herd), before[1..], "the others were not touched");
    assert!(
        crate::sockets::get(&Target::Tcp(address)).is_ok(),
        "the pool serves on"
    );
}

#[test]
fn max_unavailable_zero_is_a_config_error() {
    let herd = Herd::configure("[service.a]\ncommand = [\"/bin/true\"]\nmax_unavailable = 0\n");
    let out = std::process::Command::new(&herd.herdd)
        .args(["--check-config", "--config"])
        .arg(&herd.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(said.contains(":3:19: service.a.max_unavailable"), "{said}");
}

/// A worker that notes its start in `$DIR/starts` (one line per start, its
/// instance name) and sends READY=1 half a second later, but not while
/// `$DIR/hold` exists: the test decides when a replacement becomes ready.
const HELD_WORKER: &str = r#"
import os, socket, sys, time
directory, instance = sys.argv[1], sys.argv[2]
with open(os.path.join(directory, "starts"), "a") as starts:
    starts.write(instance + "\n")
time.sleep(0.5)
while os.path.exists(os.path.join(directory, "hold")):
    time.sleep(0.05)
path = os.environ["NOTIFY_SOCKET"]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for attempt in range(200):
    try:
        sock.sendto(b"READY=1", "\0" + path[1:] if path.startswith("@") else path)
        break
    except OSError:  # herdd re-executing
        time.sleep(0.05)
time.sleep(100000)
"#;

/// Four held workers, all ready; their pids.
fn held_pool() -> (Herd, Vec<u32>) {
    let herd = Herd::configure("");
    std::fs::write(herd.path("worker.py"), HELD_WORKER).unwrap();
    let units = format!(
        r#"
[service.web]
command = ["python3", {script:?}, {dir:?}, "web@{{instance}}"]
instances = 4
ready = "notify"
env = {{ VERSION = "1" }}
"#,
        script = herd.path("worker.py").display().to_string(),
        dir = herd.dir.path().display().to_string(),
    );
    let text = std::fs::read_to_string(&herd.config).unwrap();
    std::fs::write(&herd.config, format!("{units}\n{text}")).unwrap();
    let herd = herd.launch();
    herd.wait_for("4 ready workers", |h| {
        (0..4).all(|i| h.instance(&format!("web@{i}"))["state"] == "running")
    });
    let pids = (0..4).map(|i| herd.pid_of(&format!("web@{i}"))).collect();
    (herd, pids)
}

/// With `hold` in place, starts a rollout with `begin`, waits until web@0's
/// replacement runs (not ready: held), re-executes herdd, lets the workers
/// be ready again and waits until every worker is replaced and ready.
/// Checks that each was started exactly once more and that at most one was
/// not ready at any time.
fn roll_across_reexec(herd: &Herd, before: &[u32], begin: impl FnOnce()) {
    std::fs::write(herd.path("hold"), "").unwrap();
    let watch = ReadyWatch::start(herd);
    begin();
    herd.wait_for("web@0's replacement to be starting", |h| {
        let web0 = h.instance("web@0");
        web0["state"] == "starting" && web0["pid"].as_u64() != Some(u64::from(before[0]))
    });
    herd.ok(&["daemon-reexec"]);
    assert!(
        herd.log().contains("resumed after re-exec"),
        "{}",
        herd.log()
    );
    std::fs::remove_file(herd.path("hold")).unwrap();
    herd.wait_for("every worker to be replaced and ready", |h| {
        (0..4).all(|i| {
            let instance = h.instance(&format!("web@{i}"));
            instance["state"] == "running"
                && !before.contains(&(instance["pid"].as_u64().unwrap_or(0) as u32))
        })
    });
    let least = watch.finish();
    assert!(least >= 3, "only {least} of 4 ready at one point");
    let starts = std::fs::read_to_string(herd.path("starts")).unwrap();
    for i in 0..4 {
        let name = format!("web@{i}");
        let count = starts.lines().filter(|line| *line == name).count();
        assert_eq!(count, 2, "{name} started once more, no more:\n{starts}");
    }
}

/// herdctl, on a terminal, follows the rollout into the new image: it shows
/// every step once and ends as without the re-exec.
#[test]
fn a_rolling_restart_goes_on_across_daemon_reexec_and_herdctl_gets_its_result() {
    let (herd, before) = held_pool();
    let ctl = std::process::Command::new("python3")
        .args(["-c", ON_A_TERMINAL])
        .arg(crate::harness::bin("herdctl"))
        .arg("--socket")
        .arg(&herd.socket)
        .args(["restart", "--rolling", "web"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    roll_across_reexec(&herd, &before, || {});
    let out = ctl.wait_with_output().expect("herdctl");
    let shown = crate::harness::stdout(&out).replace("\r\n", "\n");
    assert_eq!(out.status.code(), Some(0), "{shown}{}", stderr(&out));
    for i in 0..4 {
        let step = format!("web: rolling restart {}/4: web@{i}", i + 1);
        let count = shown.lines().filter(|line| *line == step).count();
        assert_eq!(count, 1, "{step:?} once in:\n{shown}");
    }
    let resumed = "herdd re-executed; the rolling restart goes on";
    let said = shown.lines().filter(|line| *line == resumed).count();
    assert_eq!(said, 1, "{shown}");
    assert!(
        shown.lines().last() == Some("web: rolling restart done"),
        "{shown}"
    );
}

#[test]
fn a_reload_rollout_goes_on_across_daemon_reexec() {
    let (herd, before) = held_pool();
    roll_across_reexec(&herd, &before, || {
        let text = std::fs::read_to_string(&herd.config).unwrap();
        let changed = text.replace("VERSION = \"1\"", "VERSION = \"2\"");
        std::fs::write(&herd.config, changed).unwrap();
        herd.ok(&["reload"]);
    });
}

/// Runs its arguments on a new pseudo-terminal, copies what they print
/// there to stdout and exits with their exit code.
const ON_A_TERMINAL: &str = r#"
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
seen = b""
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(seen)
sys.exit(os.waitstatus_to_exitcode(status))
"#;

#[test]
fn restart_rolling_shows_each_step_on_a_terminal() {
    let herd = Herd::start(
        r#"
[service.web]
command = ["sleep", "1000"]
instances = 2
ready = "300ms"
"#,
    );
    herd.wait_for("2 ready instances", |h| {
        (0..2).all(|i| h.instance(&format!("web@{i}"))["state"] == "running")
    });
    let before = [herd.pid_of("web@0"), herd.pid_of("web@1")];
    let out = std::process::Command::new("python3")
        .args(["-c", ON_A_TERMINAL])
        .arg(crate::harness::bin("herdctl"))
        .arg("--socket")
        .arg(&herd.socket)
        .args(["restart", "--rolling", "web"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("python3");
    let shown = crate::harness::stdout(&out).replace("\r\n", "\n");
    assert_eq!(out.status.code(), Some(0), "{shown}{}", stderr(&out));
    let at = |line: &str| {
        shown
            .lines()
            .position(|shown| shown == line)
            .unwrap_or_else(|| panic!("no line {line:?} in:\n{shown}"))
    };
    let steps = [
        at("web: rolling restart 1/2: web@0"),
        at(&format!("web@0: stopping pid {} with SIGTERM", before[0])),
        at("web@0: ready"),
        at("web: rolling restart 2/2: web@1"),
        at(&format!("web@1: stopping pid {} with SIGTERM", before[1])),
        at("web@1: ready"),
        at("web: rolling restart done"),
    ];
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "in order:\n{shown}");
    let new = herd.pid_of("web@0");
    assert!(
        shown.contains(&format!("web@0: started (pid {new})")),
        "{shown}"
    );
    // Off a terminal: the result only (exit 0, nothing printed).
    let out = herd.ctl(&["restart", "--rolling", "web"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(crate::harness::stdout(&out), "");
}
