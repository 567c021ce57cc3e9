//! A herdd of one test's own: temp dir, config, socket; stopped by PID on drop.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long any wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// Where cargo put herdd and herdctl: next to this test binary's `deps/` folder.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo build --workspace` before the tests (the README's test command does)",
        path.display()
    );
    path
}

pub struct Herd {
    /// The herdd binary to run (tests of binary upgrades point it elsewhere).
    pub herdd: PathBuf,
    /// Extra environment for herdd.
    pub env: Vec<(String, String)>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config: PathBuf,
    daemon: Option<Child>,
}

impl Herd {
    /// Writes a config with `units` (TOML) below a `[herd]` table pointing at
    /// this test's own socket, starts herdd on it and waits until it answers.
    pub fn start(units: &str) -> Herd {
        let herd = Herd::configure(units);
        herd.launch()
    }

    /// Like [`Herd::start`] but does not start herdd.
    pub fn configure(units: &str) -> Herd {
        let dir = tempfile::Builder::new()
            .prefix("herd-e2e-")
            .tempdir()
            .expect("temp dir");
        let socket = dir.path().join("herd.sock");
        let config = dir.path().join("herd.toml");
        // `[herd]` goes last so that `units` may start with top-level keys (`include`).
        let text = format!(
            "{}\n\n[herd]\nsocket = {:?}\nstate_dir = {:?}\nlog_dir = {:?}\nshutdown_timeout = \"3s\"\n",
            units.replace("$DIR", &dir.path().display().to_string()),
            socket.display().to_string(),
            dir.path().join("state").display().to_string(),
            dir.path().join("log").display().to_string(),
        );
        std::fs::write(&config, text).expect("write config");
        Herd {
            herdd: bin("herdd"),
            env: Vec::new(),
            dir,
            socket,
            config,
            daemon: None,
        }
    }

    pub fn launch(mut self) -> Herd {
        self.relaunch();
        self
    }

    /// Starts herdd (again) on this test's config; its log is appended to.
    pub fn relaunch(&mut self) {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("herdd.log"))
            .expect("log file");
        let mut command = Command::new(&self.herdd);
        command
            .arg("--config")
            .arg(&self.config)
            .env("HERD_LOG", "debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        let started = Instant::now();
        let child = loop {
            match command.spawn() {
                // A test that just copied the binary: a child another test
                // forked meanwhile may hold the copy's descriptor until its exec.
                Err(err)
                    if err.kind() == std::io::ErrorKind::ExecutableFileBusy
                        && started.elapsed() < DEADLINE =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                spawned => break spawned.expect("spawn herdd"),
            }
        };
        self.daemon = Some(child);
        let started = Instant::now();
        // An answer, not a connect: a child of a killed herdd, between its
        // clone and its exec, still holds the old listening socket, so a
        // connect can succeed before the new herdd has bound its own.
        while !answers_request(&self.socket) {
            if let Some(status) = self
                .daemon
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("herdd exited at start ({status}):\n{}", self.log());
            }
            assert!(
                started.elapsed() < DEADLINE,
                "herdd did not open its socket:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Task `id` as `herdctl tasks --json` shows it.
    pub fn task(&self, id: u64) -> Value {
        let tasks: Value = serde_json::from_str(&self.ok(&["--json", "tasks"])).unwrap();
        tasks["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no task {id}"))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("herdd.log")).unwrap_or_default()
    }

    pub fn daemon_pid(&self) -> u32 {
        self.daemon.as_ref().expect("herdd running").id()
    }

    /// Runs `herdctl --socket <ours> ARGS`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(bin("herdctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run herdctl")
    }

    /// Runs herdctl with `input` on its stdin (written from a thread, so
    /// that herdctl's output is read meanwhile) and waits for it.
    pub fn ctl_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = Command::new(bin("herdctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run herdctl");
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = input.to_string();
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let out = child.wait_with_output().expect("wait for herdctl");
        writer
            .join()
            .expect("stdin writer")
            .expect("write herdctl's stdin");
        out
    }

    /// Runs herdctl and asserts it exited 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "herdctl {args:?} failed ({}): {}{}\n--- herdd log ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["--json", "status"])).expect("status --json is JSON")
    }

    /// Every instance, by name.
    pub fn instances(&self) -> Vec<Value> {
        self.status()["units"]
            .as_array()
            .expect("units")
            .iter()
            .flat_map(|u| u["instances"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    pub fn instance(&self, name: &str) -> Value {
        self.instances()
            .into_iter()
            .find(|i| i["name"] == name)
            .unwrap_or_else(|| panic!("no instance {name} in status"))
    }

    pub fn pid_of(&self, name: &str) -> u32 {
        self.instance(name)["pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} has no pid")) as u32
    }

    /// The pid of instance `name` once it runs its own program. Where herdd
    /// forks (not x86_64, old kernels) it reports a process as soon as it is
    /// forked, before its exec: until then /proc
    /// shows a copy of herdd (herdd's environment, and herdd's cgroups in the
    /// v1 hierarchies the child joins just before its exec), so a test that
    /// inspects the process waits for the exec.
    pub fn exec_pid_of(&self, name: &str) -> u32 {
        let pid = self.pid_of(name);
        let herdd = std::fs::canonicalize(&self.herdd).expect("herdd binary");
        wait_until(&format!("{name} (pid {pid}) to exec its program"), || {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe != herdd)
        });
        pid
    }

    /// Polls status until `check` holds, failing with `what` after [`DEADLINE`].
    pub fn wait_for(&self, what: &str, check: impl Fn(&Herd) -> bool) {
        let started = Instant::now();
        while !check(self) {
            assert!(
                started.elapsed() < DEADLINE,
                "timed out waiting for {what}; status:\n{}\n--- herdd log ---\n{}",
                self.ok(&["status"]),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until `instance` is in `state`; an instance not there yet (a
    /// reload still being applied) is waited for too.
    pub fn wait_state(&self, instance: &str, state: &str) {
        self.wait_for(&format!("{instance} to be {state}"), |h| {
            h.instances()
                .iter()
                .any(|i| i["name"] == instance && i["state"] == state)
        });
    }

    /// Sends raw bytes on a fresh connection and reads one reply line.
    pub fn raw(&self, bytes: &[u8]) -> String {
        let mut stream = UnixStream::connect(&self.socket).expect("connect");
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.write_all(bytes).expect("send");
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).expect("reply");
        line
    }

    /// Waits for herdd to exit on its own; returns its exit code.
    pub fn wait_exit(&mut self) -> i32 {
        let child = self.daemon.as_mut().expect("herdd was started");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait herdd") {
                self.daemon = None;
                return status.code().unwrap_or(-1);
            }
            assert!(started.elapsed() < DEADLINE, "herdd did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILLs herdd (and reaps it).
    pub fn kill_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Herd {
    fn drop(&mut self) {
        let Some(mut child) = self.daemon.take() else {
            return;
        };
        // Graceful first, so herdd stops its children; then SIGKILL by PID.
        signal(child.id(), libc::SIGTERM);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(8) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

pub fn signal(pid: u32, signal: i32) {
    // On a pid this test owns; an unknown signal number is a test's mistake.
    let signal = nix::sys::signal::Signal::try_from(signal).expect("a signal number");
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => process_state(&stat) != Some('Z'),
        Err(_) => false,
    }
}

/// Whether `pid` has vanished entirely (reaped: no zombie left either).
pub fn gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// The state letter of a `/proc/PID/stat` line (after the command in parentheses).
pub fn process_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
}

/// Field `index` (1-based, as in proc(5)) of `/proc/PID/stat`.
pub fn stat_field(pid: u32, index: usize) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // rest starts at field 3 (state).
    rest.split_whitespace().nth(index - 3)?.parse().ok()
}

/// Direct children of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return found;
    };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            found.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    found
}

pub fn wait_until(what: &str, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs herdctl as `nobody`, with `groups` as its only supplementary groups;
/// `transport` says how it reaches herdd (`--socket PATH` or `--dbus=ADDRESS`).
pub fn herdctl_as_nobody(transport: &[&str], groups: &[u32], args: &[&str]) -> Output {
    let mut command = Command::new("setpriv");
    command.args(["--reuid=nobody", "--regid=nogroup"]);
    if groups.is_empty() {
        command.arg("--clear-groups");
    } else {
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        command.arg(format!("--groups={}", list.join(",")));
    }
    command
        .arg(bin("herdctl"))
        .args(transport)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv")
}

/// A group `nobody` is not in, to serve as `control_group`.
pub fn some_other_group() -> (String, u32) {
    ["users", "staff", "adm", "daemon"]
        .iter()
        .find_map(|name| {
            let group = nix::unistd::Group::from_name(name).ok()??;
            (!group.mem.iter().any(|m| m == "nobody"))
                .then(|| (name.to_string(), group.gid.as_raw()))
        })
        .expect("one of users, staff, adm, daemon exists")
}

/// A herdd a test starts with a command of its own (resource limits, a
/// umask, an environment the harness's launch does not set); stopped on drop
/// (SIGTERM, then SIGKILL). Declare it after its `Herd`, so it goes first.
pub struct OwnHerdd(pub Child);

impl OwnHerdd {
    /// Starts herdd on `herd`'s config with `env`, after `prepare` has had
    /// its say on the command (e.g. a `pre_exec`), and waits until `socket`
    /// answers.
    pub fn launch(
        herd: &Herd,
        socket: &Path,
        env: &[(&str, &str)],
        prepare: impl FnOnce(&mut Command),
    ) -> OwnHerdd {
        let log = std::fs::File::create(herd.path("herdd.log")).unwrap();
        let mut command = Command::new(bin("herdd"));
        prepare(&mut command);
        let child = command
            .arg("--config")
            .arg(&herd.config)
            .envs(env.iter().copied())
            .env("HERD_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        OwnHerdd::started(child, herd, socket)
    }

    /// Takes charge of a herdd the test spawned itself (say, with its
    /// output on pipes) once `socket` answers.
    pub fn started(mut child: Child, herd: &Herd, socket: &Path) -> OwnHerdd {
        let started = Instant::now();
        while UnixStream::connect(socket).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("herdd exited at start ({status}):\n{}", herd.log());
            }
            assert!(started.elapsed() < DEADLINE, "herdd did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        OwnHerdd(child)
    }
}

impl Drop for OwnHerdd {
    fn drop(&mut self) {
        signal(self.0.id(), libc::SIGTERM);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(8) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether a herdd on `socket` answers a request (within a second). The
/// request reads nothing a test may look at (no usage, no files).
fn answers_request(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream
        .write_all(b"{\"v\":1,\"cmd\":\"event-list\"}\n")
        .is_err()
    {
        return false;
    }
    let mut line = String::new();
    matches!(BufReader::new(stream).read_line(&mut line), Ok(n) if n > 0)
}
