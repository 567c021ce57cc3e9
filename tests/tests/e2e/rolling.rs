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
                    continue; // herdd re-executing, say
                };
                let ready = status["units"][0]["instances"]
                    .as_array()
                    .map(|all| all.iter().filter(|i| i["state"] == "running").count())
                    .unwrap_or(0);
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
start_timeout = "5s"
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
