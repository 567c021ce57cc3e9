//! Listening sockets herd holds (`[socket.NAME]`, `sockets = [...]`): a
//! pool of Python web workers (examples/web_worker.py) serves from one
//! socket while instances restart and herdd re-executes, without a single
//! failed request; bad sockets are config errors that change nothing.

use crate::harness::{alive, stderr, stdout, Herd};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub(crate) fn worker_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/web_worker.py")
}

/// A config with a pool of `instances` workers on socket `web` at `listen`.
pub(crate) fn pool_config(listen: &str, instances: u32) -> String {
    format!(
        r#"
[socket.web]
listen = {listen:?}

[service.web]
command = ["python3", {script:?}]
instances = {instances}
sockets = ["web"]
ready = "notify"
"#,
        script = worker_script().display().to_string(),
    )
}

/// A TCP port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe port");
    probe.local_addr().expect("probe address").port()
}

#[derive(Clone)]
pub(crate) enum Target {
    Tcp(String),
    Unix(PathBuf),
}

/// One `GET /`: the body, or why it failed.
pub(crate) fn get(target: &Target) -> Result<String, String> {
    let request = b"GET / HTTP/1.0\r\nHost: herd\r\n\r\n";
    let mut response = String::new();
    let result = match target {
        Target::Tcp(address) => TcpStream::connect(address).and_then(|mut stream| {
            stream.write_all(request)?;
            stream.read_to_string(&mut response)
        }),
        Target::Unix(path) => UnixStream::connect(path).and_then(|mut stream| {
            stream.write_all(request)?;
            stream.read_to_string(&mut response)
        }),
    };
    match result {
        Ok(_) if response.starts_with("HTTP/1.0 200") => response
            .split("\r\n\r\n")
            .nth(1)
            .map(str::to_string)
            .ok_or(response),
        Ok(_) => Err(format!("bad response: {response:?}")),
        Err(error) => Err(error.to_string()),
    }
}

/// Sends requests back to back until stopped; collects every answer and
/// every failure.
pub(crate) struct Client {
    stop: Arc<AtomicBool>,
    bodies: Arc<Mutex<Vec<String>>>,
    thread: JoinHandle<Vec<String>>,
}

impl Client {
    pub(crate) fn start(target: Target) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (stop_flag, answers) = (stop.clone(), bodies.clone());
        let thread = std::thread::spawn(move || {
            let mut failures = Vec::new();
            while !stop_flag.load(Ordering::Relaxed) {
                match get(&target) {
                    Ok(body) => answers.lock().unwrap().push(body),
                    Err(error) => failures.push(error),
                }
            }
            failures
        });
        Client {
            stop,
            bodies,
            thread,
        }
    }

    pub(crate) fn answered(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }

    /// Waits until `more` further requests have been answered.
    pub(crate) fn wait_answers(&self, more: usize) {
        let target = self.answered() + more;
        crate::harness::wait_until("the pool to answer requests", || self.answered() >= target);
    }

    /// Stops; the bodies answered and the failures.
    pub(crate) fn finish(self) -> (Vec<String>, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.thread.join().expect("client thread");
        let bodies = std::mem::take(&mut *self.bodies.lock().unwrap());
        (bodies, failures)
    }
}

/// `pid=N` of a body.
pub(crate) fn field(body: &str, name: &str) -> String {
    body.split_whitespace()
        .find_map(|word| word.strip_prefix(&format!("{name}=")))
        .unwrap_or_default()
        .to_string()
}

pub(crate) fn pool_pids(herd: &Herd) -> Vec<u32> {
    (0..4).map(|i| herd.pid_of(&format!("web@{i}"))).collect()
}

pub(crate) fn wait_pool_running(herd: &Herd) {
    for i in 0..4 {
        herd.wait_state(&format!("web@{i}"), "running");
    }
}

/// Restarts one instance, then re-executes herdd, while a client sends
/// requests back to back: not one may fail.
fn serve_through_restart_and_reexec(herd: &Herd, target: Target) {
    wait_pool_running(herd);
    let client = Client::start(target.clone());
    client.wait_answers(20);
    let before = pool_pids(herd);
    herd.ok(&["restart", "web@1"]);
    herd.wait_for("web@1 to be replaced and running", |h| {
        let instance = h.instance("web@1");
        instance["state"] == "running" && instance["pid"].as_u64() != Some(before[1] as u64)
    });
    client.wait_answers(20);
    let daemon = herd.daemon_pid();
    herd.ok(&["daemon-reexec"]);
    client.wait_answers(20);
    let after = pool_pids(herd);
    let (bodies, failures) = client.finish();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert_eq!(herd.daemon_pid(), daemon);
    assert_ne!(after[1], before[1], "web@1 was restarted");
    assert_eq!(
        [after[0], after[2], after[3]],
        [before[0], before[2], before[3]],
        "the others ran on"
    );
    // After the re-exec, the pool still serves from the handed-over socket.
    assert!(get(&target).is_ok());
    for body in &bodies {
        assert_eq!(field(body, "pid"), field(body, "listen_pid"), "{body}");
        assert_eq!(field(body, "fdnames"), "web", "{body}");
    }
    // Which instance accepts a connection is the kernel's choice: the new
    // web@1 may not have been picked among the client's requests, so ask
    // until it is (wait_for fails the test at its deadline).
    let served: std::collections::BTreeSet<String> =
        bodies.iter().map(|body| field(body, "pid")).collect();
    if !served.contains(&after[1].to_string()) {
        herd.wait_for("the new web@1 to serve", |_| {
            get(&target).is_ok_and(|body| field(&body, "pid") == after[1].to_string())
        });
    }
}

#[test]
fn a_tcp_pool_serves_through_an_instance_restart_and_a_daemon_reexec() {
    let address = format!("127.0.0.1:{}", free_port());
    let herd = Herd::start(&pool_config(&address, 4));
    serve_through_restart_and_reexec(&herd, Target::Tcp(address));
}

#[test]
fn a_unix_socket_pool_gets_its_own_pid_in_listen_pid() {
    let herd = Herd::configure("");
    let path = herd.path("web.sock");
    let text = std::fs::read_to_string(&herd.config).unwrap();
    let config = pool_config(&path.display().to_string(), 4);
    std::fs::write(&herd.config, format!("{config}\n{text}")).unwrap();
    let herd = herd.launch();
    wait_pool_running(&herd);
    let pids = pool_pids(&herd);
    for _ in 0..20 {
        let body = get(&Target::Unix(path.clone())).expect("served");
        let pid: u32 = field(&body, "pid").parse().expect("pid");
        assert!(pids.contains(&pid), "{pid} is one of {pids:?}");
        assert_eq!(field(&body, "listen_pid"), pid.to_string(), "{body}");
    }
    serve_through_restart_and_reexec(&herd, Target::Unix(path));
}

#[test]
fn status_lists_sockets_and_the_services_using_them() {
    let address = format!("127.0.0.1:{}", free_port());
    let herd = Herd::start(&pool_config(&address, 1));
    let status = herd.status();
    let sockets = status["sockets"].as_array().expect("sockets in status");
    assert_eq!(sockets.len(), 1, "{status}");
    assert_eq!(sockets[0]["name"], "web");
    assert_eq!(sockets[0]["listen"], address.as_str());
    assert_eq!(sockets[0]["units"], serde_json::json!(["web"]));
    let text = herd.ok(&["status"]);
    assert!(text.contains(&address) && text.contains("SOCKET"), "{text}");
}

#[test]
fn an_address_in_use_fails_start_and_reload_naming_socket_address_and_place() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    // At start: herdd refuses to run.
    let mut herd = Herd::configure(&pool_config(&busy, 1));
    let out = std::process::Command::new(&herd.herdd)
        .arg("--config")
        .arg(&herd.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = stderr(&out);
    let at = format!("{}:3:10: socket.web.listen", herd.config.display());
    assert!(said.contains(&at) && said.contains(&busy), "{said}");
    assert!(said.contains("socket `web`"), "{said}");
    // At reload: nothing changes, the old socket serves on.
    let good = format!("127.0.0.1:{}", free_port());
    let text = std::fs::read_to_string(&herd.config).unwrap();
    let good_text = text.replace(&busy, &good);
    std::fs::write(&herd.config, &good_text).unwrap();
    herd.relaunch();
    herd.wait_state("web@0", "running");
    let pid = herd.pid_of("web@0");
    std::fs::write(&herd.config, good_text.replace(&good, &busy)).unwrap();
    let out = herd.ctl(&["reload"]);
    assert_ne!(out.status.code(), Some(0));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(said.contains(&at) && said.contains(&busy), "{said}");
    assert!(said.contains("nothing was changed"), "{said}");
    assert_eq!(herd.pid_of("web@0"), pid);
    assert!(alive(pid));
    assert!(get(&Target::Tcp(good)).is_ok(), "the old socket serves on");
    drop(taken);
}

#[test]
fn an_unknown_socket_name_is_a_config_error_and_a_reload_with_it_changes_nothing() {
    let address = format!("127.0.0.1:{}", free_port());
    let herd = Herd::start(&pool_config(&address, 1));
    herd.wait_state("web@0", "running");
    let pid = herd.pid_of("web@0");
    let text = std::fs::read_to_string(&herd.config).unwrap();
    std::fs::write(
        &herd.config,
        text.replace(r#"sockets = ["web"]"#, r#"sockets = ["nope"]"#),
    )
    .unwrap();
    let check = std::process::Command::new(&herd.herdd)
        .arg("--check-config")
        .arg("--config")
        .arg(&herd.config)
        .output()
        .unwrap();
    let said = format!("{}{}", stdout(&check), stderr(&check));
    let at = format!("{}:8:12: service.web.sockets", herd.config.display());
    assert!(!check.status.success());
    assert!(
        said.contains(&at) && said.contains("unknown socket `nope`"),
        "{said}"
    );
    let out = herd.ctl(&["reload"]);
    assert_ne!(out.status.code(), Some(0));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(said.contains(&at), "{said}");
    assert_eq!(herd.pid_of("web@0"), pid);
    assert!(get(&Target::Tcp(address)).is_ok());
}

#[test]
fn a_reload_keeps_an_unchanged_socket_and_moves_a_changed_one() {
    let old = format!("127.0.0.1:{}", free_port());
    let herd = Herd::start(&pool_config(&old, 2));
    herd.wait_state("web@0", "running");
    herd.wait_state("web@1", "running");
    let before = [herd.pid_of("web@0"), herd.pid_of("web@1")];
    // Only the backlog changes: the socket and the workers stay.
    let text = std::fs::read_to_string(&herd.config).unwrap();
    let backlog = text.replace("[socket.web]\n", "[socket.web]\nbacklog = 64\n");
    std::fs::write(&herd.config, &backlog).unwrap();
    herd.ok(&["reload"]);
    assert_eq!([herd.pid_of("web@0"), herd.pid_of("web@1")], before);
    assert!(get(&Target::Tcp(old.clone())).is_ok());
    // Another address: bound anew, the workers restart onto it, the old one closes.
    let new = format!("127.0.0.1:{}", free_port());
    std::fs::write(&herd.config, backlog.replace(&old, &new)).unwrap();
    herd.ok(&["reload"]);
    herd.wait_for("the workers to restart onto the new socket", |h| {
        (0..2).all(|i| {
            let instance = h.instance(&format!("web@{i}"));
            instance["state"] == "running"
                && !before.contains(&(instance["pid"].as_u64().unwrap_or(0) as u32))
        })
    });
    let body = get(&Target::Tcp(new)).expect("the new address serves");
    assert!(
        !before.contains(&field(&body, "pid").parse().unwrap()),
        "{body}"
    );
    assert!(get(&Target::Tcp(old)).is_err(), "the old socket is closed");
}
