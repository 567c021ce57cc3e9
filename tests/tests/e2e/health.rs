//! `health = {...}` probes through the real binaries: a worker whose probe
//! fails `retries` times is restarted alone and says why; `ready =
//! "health"` gates readiness and a rolling restart; http and tcp probes
//! against servers the test runs; a hung probe is killed at its timeout;
//! probes of a stopped instance stop; bad probes are config errors that a
//! reload does not apply.

use crate::harness::{alive, stderr, wait_until, Herd};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

/// The health object of `instance` in `status --json`.
fn health(herd: &Herd, instance: &str) -> serde_json::Value {
    herd.instance(instance)["health"].clone()
}

fn wait_healthy(herd: &Herd, instance: &str) {
    herd.wait_for(&format!("{instance} to be healthy"), |h| {
        health(h, instance)["state"] == "healthy"
    });
}

fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |text| text.lines().count())
}

#[test]
fn a_worker_whose_probe_fails_is_restarted_after_retries_failures_alone() {
    // While $DIR/sick-<instance> exists the probe fails, saying why, three
    // times, then removes it; each run appends a line to $DIR/probes-<instance>.
    let herd = Herd::start(
        r#"
[service.web]
command = ["sleep", "1000"]
instances = 3
env = { SICK = "$DIR/sick-{instance}" }
health = { command = ["sh", "-c", "echo >> $DIR/probes-$1; if [ -e \"$SICK\" ]; then echo x >> \"$SICK\"; [ $(wc -l < \"$SICK\") -lt 3 ] || rm \"$SICK\"; echo db down; echo more; exit 1; fi", "probe", "{instance}"], interval = "100ms", timeout = "5s", retries = 3 }
"#,
    );
    for i in 0..3 {
        wait_healthy(&herd, &format!("web@{i}"));
    }
    let before: Vec<u32> = (0..3).map(|i| herd.pid_of(&format!("web@{i}"))).collect();
    let metrics = herd.ok(&["metrics"]);
    assert!(
        metrics.contains("herd_instance_healthy{unit=\"web\",instance=\"web@1\"} 1"),
        "{metrics}"
    );
    std::fs::write(herd.path("sick-1"), "").unwrap();
    herd.wait_for("web@1 to be restarted for its health, and healthy", |h| {
        let web1 = h.instance("web@1");
        web1["restarts"].as_u64() >= Some(1) && web1["health"]["state"] == "healthy"
    });
    let web1 = herd.instance("web@1");
    assert_eq!(
        web1["restarts"], 1,
        "restarted after the third failure: {web1}"
    );
    assert_ne!(
        web1["pid"].as_u64(),
        Some(u64::from(before[1])),
        "a new process"
    );
    assert!(!alive(before[1]));
    assert_eq!(
        web1["health"]["restarted"], "unhealthy: probe exited 1: db down",
        "{web1}"
    );
    for i in [0, 2] {
        let other = herd.instance(&format!("web@{i}"));
        assert_eq!(other["pid"].as_u64(), Some(u64::from(before[i])), "{other}");
        assert_eq!(other["restarts"], 0, "{other}");
    }
    let events = herd.ok(&["events", "--json"]);
    let unhealthy: Vec<&str> = events
        .lines()
        .filter(|line| line.contains("\"unhealthy\""))
        .collect();
    assert_eq!(unhealthy.len(), 1, "{events}");
    assert!(
        unhealthy[0].contains("\"reason\":\"probe exited 1: db down\""),
        "{events}"
    );
    let block = herd.ok(&["status", "web"]);
    assert!(
        block.contains("health: healthy, last restarted: unhealthy: probe exited 1: db down"),
        "{block}"
    );
    assert!(herd.ok(&["status"]).contains("HEALTH"));
    // Probes of a stopped instance stop.
    herd.ok(&["stop", "web@0"]);
    herd.wait_state("web@0", "inactive");
    let probed = lines(&herd.path("probes-0"));
    let still = lines(&herd.path("probes-2"));
    wait_until("web@2 to be probed 5 more times", || {
        lines(&herd.path("probes-2")) >= still + 5
    });
    assert_eq!(lines(&herd.path("probes-0")), probed, "web@0 is not probed");
    assert!(health(&herd, "web@0").is_null());
}

/// Serves `GET` on a port bound after `$DIR/delay` seconds (0 if absent):
/// 200 on /healthz.
const SLOW_SERVER: &str = r#"
import http.server, os, sys, time
port, directory = int(sys.argv[1]), sys.argv[2]
try:
    time.sleep(float(open(os.path.join(directory, "delay")).read()))
except FileNotFoundError:
    pass
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"#;

/// A prefix `P` such that ports `P0` and `P1` are both free.
fn free_port_prefix() -> String {
    for prefix in (2000..6500)
        .step_by(37)
        .map(|p| p + std::process::id() % 37)
    {
        let free =
            (0..2).all(|i| TcpListener::bind(("127.0.0.1", (prefix * 10 + i) as u16)).is_ok());
        if free {
            return prefix.to_string();
        }
    }
    panic!("no two free ports");
}

#[test]
fn ready_health_gates_readiness_and_a_rolling_restart_waits_for_the_probe() {
    let prefix = free_port_prefix();
    let herd = Herd::configure("");
    std::fs::write(herd.path("server.py"), SLOW_SERVER).unwrap();
    let units = format!(
        r#"
[service.web]
command = ["python3", "$DIR/server.py", "{prefix}{{instance}}", "$DIR"]
instances = 2
ready = "health"
health = {{ http = "http://127.0.0.1:{prefix}{{instance}}/healthz", interval = "100ms", timeout = "1s", retries = 2 }}
"#
    )
    .replace("$DIR", &herd.dir.path().display().to_string());
    let text = std::fs::read_to_string(&herd.config).unwrap();
    std::fs::write(&herd.config, format!("{units}\n{text}")).unwrap();
    let herd = herd.launch();
    herd.wait_state("web@0", "running");
    herd.wait_state("web@1", "running");
    assert_eq!(health(&herd, "web@0")["state"], "healthy");
    let old: Vec<u32> = (0..2).map(|i| herd.pid_of(&format!("web@{i}"))).collect();
    // Replacements now take 2 s to listen: each stays `starting` meanwhile,
    // and the rollout does not touch web@1 before web@0's probe passes.
    std::fs::write(herd.path("delay"), "2").unwrap();
    let rolling = std::process::Command::new(crate::harness::bin("herdctl"))
        .arg("--socket")
        .arg(&herd.socket)
        .args(["restart", "--rolling", "web"])
        .spawn()
        .unwrap();
    herd.wait_for("a new web@0, still starting", |h| {
        let web0 = h.instance("web@0");
        web0["state"] == "starting" && web0["pid"].as_u64() != Some(u64::from(old[0]))
    });
    let web1 = herd.instance("web@1");
    assert_eq!(web1["pid"].as_u64(), Some(u64::from(old[1])));
    assert_eq!(web1["state"], "running", "{web1}");
    assert_eq!(health(&herd, "web@0")["state"], "starting");
    let out = rolling.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for (i, old) in old.iter().enumerate() {
        let instance = herd.instance(&format!("web@{i}"));
        assert_eq!(instance["state"], "running", "{instance}");
        assert_ne!(instance["pid"].as_u64(), Some(u64::from(*old)));
        assert_eq!(instance["health"]["state"], "healthy", "{instance}");
    }
}

/// A tiny HTTP server on a thread: answers every request with `status`
/// (which the test may change) until the process ends.
fn http_server() -> (String, Arc<AtomicU16>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let status = Arc::new(AtomicU16::new(200));
    let answer = status.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let code = answer.load(Ordering::Relaxed);
            let reply = format!("HTTP/1.1 {code} Whatever\r\nContent-Length: 0\r\n\r\n");
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (address, status)
}

#[test]
fn http_and_tcp_probes_restart_when_their_server_goes_bad() {
    let (http, status) = http_server();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_address = tcp.local_addr().unwrap().to_string();
    let herd = Herd::start(&format!(
        r#"
[service.web]
command = ["sleep", "1000"]
health = {{ http = "http://{http}/up", interval = "100ms", retries = 2 }}

[service.db]
command = ["sleep", "1000"]
health = {{ tcp = "{tcp_address}", interval = "100ms", timeout = "1s", retries = 2 }}
"#
    ));
    wait_healthy(&herd, "web");
    wait_healthy(&herd, "db");
    status.store(503, Ordering::Relaxed);
    herd.wait_for("web to be restarted for HTTP 503", |h| {
        h.instance("web")["restarts"] == 1
    });
    let restarted = health(&herd, "web")["restarted"].clone();
    assert_eq!(
        restarted,
        format!("unhealthy: probe got HTTP/1.1 503 Whatever from http://{http}/up")
    );
    assert_eq!(
        herd.instance("db")["restarts"],
        0,
        "db's server still accepts"
    );
    drop(tcp);
    herd.wait_for("db to be restarted when nothing listens", |h| {
        h.instance("db")["restarts"].as_u64() >= Some(1)
    });
    let restarted = health(&herd, "db")["restarted"].clone();
    assert_eq!(
        restarted,
        format!("unhealthy: probe could not connect to {tcp_address}: Connection refused")
    );
}

#[test]
fn a_hung_probe_is_killed_at_its_timeout_and_counts_as_a_failure() {
    let herd = Herd::start(
        r#"
[service.hang]
command = ["sleep", "1000"]
health = { command = ["sh", "-c", "echo $$ >> $DIR/probe-pids; exec sleep 1000"], interval = "100ms", timeout = "300ms", retries = 1 }
"#,
    );
    herd.wait_for("hang to be restarted for its hung probe", |h| {
        h.instance("hang")["restarts"].as_u64() >= Some(1)
    });
    assert_eq!(
        health(&herd, "hang")["restarted"],
        "unhealthy: probe timed out after 300ms"
    );
    let pids: Vec<u32> = std::fs::read_to_string(herd.path("probe-pids"))
        .unwrap()
        .lines()
        .map(|line| line.parse().unwrap())
        .collect();
    assert!(!pids.is_empty());
    // Every probe but the one running now has been killed.
    wait_until("the timed-out probes to be gone", || {
        pids.iter().filter(|pid| alive(**pid)).count() <= 1
    });
}

#[test]
fn bad_probes_are_config_errors_and_a_reload_with_them_changes_nothing() {
    let herd = Herd::start(
        r#"
[service.web]
command = ["sleep", "1000"]
"#,
    );
    herd.wait_state("web", "running");
    let pid = herd.pid_of("web");
    let text = std::fs::read_to_string(&herd.config).unwrap();
    let bad = text.replace(
        "command = [\"sleep\", \"1000\"]\n",
        "command = [\"sleep\", \"1000\"]\nready = \"health\"\n\
         health = { http = \"http://127.0.0.1:1/\", tcp = \"127.0.0.1:1\", interval = \"soon\" }\n",
    );
    assert_ne!(bad, text);
    std::fs::write(&herd.config, &bad).unwrap();
    let out = std::process::Command::new(&herd.herdd)
        .args(["--check-config", "--config"])
        .arg(&herd.config)
        .output()
        .unwrap();
    let said = stderr(&out);
    assert!(!out.status.success());
    assert!(
        said.contains(":5:42: service.web.health.tcp: a probe is one of"),
        "{said}"
    );
    assert!(
        said.contains(":5:74: service.web.health.interval: invalid duration"),
        "{said}"
    );
    let reload = herd.ctl(&["reload"]);
    assert!(!reload.status.success());
    assert!(
        stderr(&reload).contains("service.web.health.tcp"),
        "{}",
        stderr(&reload)
    );
    assert_eq!(herd.pid_of("web"), pid);
    assert!(health(&herd, "web").is_null(), "the old config stays");
    // `ready = "health"` without a probe.
    let lone = text.replace(
        "command = [\"sleep\", \"1000\"]\n",
        "command = [\"sleep\", \"1000\"]\nready = \"health\"\n",
    );
    std::fs::write(&herd.config, lone).unwrap();
    let reload = herd.ctl(&["reload"]);
    assert!(!reload.status.success());
    assert!(
        stderr(&reload)
            .contains(":4:9: service.web.ready: ready = \"health\" needs a `health` probe"),
        "{}",
        stderr(&reload)
    );
    assert_eq!(herd.pid_of("web"), pid);
}

#[test]
fn probes_go_on_after_daemon_reexec() {
    let herd = Herd::start(
        r#"
[service.web]
command = ["sleep", "1000"]
ready = "health"
health = { command = ["sh", "-c", "echo >> $DIR/probes; [ ! -e $DIR/sick ] || { echo sick; exit 1; }"], interval = "100ms", retries = 2 }
"#,
    );
    herd.wait_state("web", "running");
    let pid = herd.pid_of("web");
    herd.ok(&["daemon-reexec"]);
    let probed = lines(&herd.path("probes"));
    wait_until("probes after the re-exec", || {
        lines(&herd.path("probes")) >= probed + 3
    });
    assert_eq!(herd.pid_of("web"), pid, "the re-exec restarts nothing");
    assert_eq!(health(&herd, "web")["state"], "healthy");
    std::fs::write(herd.path("sick"), "").unwrap();
    herd.wait_for("web to be restarted for its health", |h| {
        h.instance("web")["restarts"].as_u64() >= Some(1)
    });
    assert_eq!(
        health(&herd, "web")["restarted"],
        "unhealthy: probe exited 1: sick"
    );
    std::fs::remove_file(herd.path("sick")).unwrap();
    herd.wait_state("web", "running");
    assert_ne!(herd.pid_of("web"), pid);
}

#[test]
fn a_probe_that_cannot_run_says_why() {
    let herd = Herd::start(
        r#"
[service.web]
command = ["sleep", "1000"]
health = { command = ["/no/such/probe", "{instance}"], interval = "100ms", retries = 1 }
"#,
    );
    herd.wait_for("web to be restarted for its probe", |h| {
        h.instance("web")["restarts"].as_u64() >= Some(1)
    });
    assert_eq!(
        health(&herd, "web")["restarted"],
        "unhealthy: probe could not start: exec /no/such/probe: No such file or directory"
    );
}

#[test]
fn a_reload_that_changes_the_probe_keeps_the_process_and_probes_the_new_way() {
    let herd = Herd::start(
        r#"
[service.web]
command = ["sleep", "1000"]
health = { command = ["true"], interval = "100ms", retries = 2 }
"#,
    );
    wait_healthy(&herd, "web");
    let pid = herd.pid_of("web");
    let text = std::fs::read_to_string(&herd.config).unwrap();
    let changed = text.replace(
        r#"command = ["true"]"#,
        r#"command = ["sh", "-c", "echo new probe; exit 3"]"#,
    );
    assert_ne!(changed, text);
    std::fs::write(&herd.config, changed).unwrap();
    herd.ok(&["reload"]);
    herd.wait_for("web to be restarted by the new probe", |h| {
        h.instance("web")["restarts"].as_u64() >= Some(1)
    });
    assert_eq!(
        health(&herd, "web")["restarted"],
        "unhealthy: probe exited 3: new probe"
    );
    assert!(!alive(pid) || herd.pid_of("web") != pid);
    let events = herd.ok(&["events"]);
    let stopped = events
        .lines()
        .position(|line| line.contains("stopping pid"))
        .unwrap();
    assert!(
        events
            .lines()
            .nth(stopped - 1)
            .unwrap()
            .contains("unhealthy: probe exited 3"),
        "the reload itself stopped nothing:\n{events}"
    );
}
