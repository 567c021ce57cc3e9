//! herdctl's own signal handling: `sem acquire -- CMD` passes on the signals
//! sent to herdctl and exits with CMD's status; `map` cancels its tasks on
//! Ctrl-C.

use crate::harness::*;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

const LOCK: &str = "[semaphore.lock]\ncapacity = 1\n";

/// `herdctl sem acquire lock -- CMD...` in a process group of its own (so
/// the test can clean up CMD with it), stdout and stderr captured.
fn acquire(herd: &Herd, command: &[&str]) -> Child {
    Command::new(bin("herdctl"))
        .args(["--socket", herd.socket.to_str().unwrap()])
        .args(["sem", "acquire", "lock", "--"])
        .args(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap()
}

/// Waits until `holder` runs its command (a child of its own) while holding the slot.
fn wait_running(herd: &Herd, holder: &Child) -> u32 {
    herd.wait_for("the slot to be held", |h| {
        let list: serde_json::Value =
            serde_json::from_str(&h.ok(&["--json", "sem", "list"])).unwrap();
        list["semaphores"][0]["holders"].as_array().unwrap().len() == 1
    });
    wait_until("the command to start", || !children(holder.id()).is_empty());
    children(holder.id())[0]
}

/// Waits for `child` to exit; its exit code, or `None` if a signal killed it.
fn exit_code(mut child: Child) -> (Option<i32>, String) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), err);
        }
        if started.elapsed() > DEADLINE {
            let left = children(child.id());
            // SAFETY: killpg on the group of a process this test started.
            unsafe { libc::killpg(child.id() as i32, libc::SIGKILL) };
            let _ = child.wait();
            let mut err = String::new();
            let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
            panic!("herdctl did not exit (its children then: {left:?}); its stderr: {err}");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn slot_free(herd: &Herd) -> bool {
    let list: serde_json::Value =
        serde_json::from_str(&herd.ok(&["--json", "sem", "list"])).unwrap();
    list["semaphores"][0]["holders"]
        .as_array()
        .unwrap()
        .is_empty()
}

#[test]
fn sem_acquire_passes_sigterm_on_and_exits_143() {
    let herd = Herd::start(LOCK);
    let holder = acquire(&herd, &["/bin/sleep", "1000"]);
    let sleep = wait_running(&herd, &holder);
    signal(holder.id(), libc::SIGTERM);
    let (code, err) = exit_code(holder);
    assert_eq!(code, Some(143), "CMD died of SIGTERM: {err}");
    assert!(gone(sleep) || !alive(sleep), "sleep got the SIGTERM");
    herd.wait_for("the slot to be released", slot_free);
}

#[test]
fn sem_acquire_exits_with_the_status_of_a_command_that_handles_the_signal() {
    let herd = Herd::start(LOCK);
    for (signo, code) in [(libc::SIGHUP, 41), (libc::SIGINT, 42)] {
        // The file says the trap is in place: a signal before it would kill sh.
        let trapped = herd.path(&format!("trapped-{signo}"));
        let script = format!(
            "trap 'exit {code}' HUP INT; : > {}; while :; do sleep 0.05; done",
            trapped.display()
        );
        let holder = acquire(&herd, &["/bin/sh", "-c", &script]);
        wait_running(&herd, &holder);
        wait_until("the trap", || trapped.exists());
        signal(holder.id(), signo);
        let (exit, err) = exit_code(holder);
        assert_eq!(exit, Some(code), "signal {signo}: {err}");
        herd.wait_for("the slot to be released", slot_free);
    }
}

#[test]
fn a_signal_from_the_command_itself_is_not_sent_back_to_it() {
    let herd = Herd::start(LOCK);
    // CMD signals herdctl (its parent); herdctl must neither die of it nor
    // pass it back (the trap would make CMD exit 99).
    let script = "trap 'exit 99' TERM; kill -TERM $PPID; sleep 0.3; exit 5";
    let holder = acquire(&herd, &["/bin/sh", "-c", script]);
    let (code, err) = exit_code(holder);
    assert_eq!(code, Some(5), "{err}");
}

#[test]
fn map_cancels_its_tasks_on_ctrl_c_and_exits_130() {
    let herd = Herd::start("[pool.p]\nsize = 2\n");
    let mut map = Command::new(bin("herdctl"))
        .args(["--socket", herd.socket.to_str().unwrap()])
        .args(["map", "p", "--", "/bin/sleep", "{}"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    map.stdin
        .take()
        .unwrap()
        .write_all(b"1000\n1000\n1000\n")
        .unwrap();
    herd.wait_for("two tasks to run", |h| {
        let tasks: serde_json::Value = serde_json::from_str(&h.ok(&["--json", "tasks"])).unwrap();
        let tasks = tasks["tasks"].as_array().cloned().unwrap_or_default();
        tasks.iter().filter(|t| t["state"] == "running").count() == 2
    });
    signal(map.id(), libc::SIGINT);
    let (code, err) = exit_code(map);
    assert_eq!(code, Some(130), "{err}");
    herd.wait_for("every task to be cancelled", |h| {
        let tasks: serde_json::Value = serde_json::from_str(&h.ok(&["--json", "tasks"])).unwrap();
        let tasks = tasks["tasks"].as_array().cloned().unwrap_or_default();
        !tasks.is_empty()
            && tasks
                .iter()
                .all(|t| t["state"] != "running" && t["state"] != "queued")
    });
}
