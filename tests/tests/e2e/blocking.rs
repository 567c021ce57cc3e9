//! Nothing a client asks for blocks herdd's event loop: `logs` reads its
//! files on blocking threads, so a log file that cannot be read (a stand-in
//! for a hung file system: a FIFO nobody writes) holds up only that client.

use crate::harness::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;

/// Whether some thread of `pid` waits in the kernel at `wchan`.
fn waits_in(pid: u32, wchan: &str) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("wchan")).is_ok_and(|w| w.trim() == wchan)
    })
}

#[test]
fn a_log_file_that_hangs_does_not_stall_herdd() {
    let herd = Herd::start(
        r#"
[service.web]
command = ["/bin/sleep", "1000"]
"#,
    );
    herd.wait_state("web", "running");
    // A unit with a log directory may be read; its log is a FIFO no one writes.
    let dir = herd.path("log").join("slow");
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("slow.log");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();

    let mut logs = UnixStream::connect(&herd.socket).unwrap();
    logs.set_read_timeout(Some(DEADLINE)).unwrap();
    logs.write_all(b"{\"v\":1,\"cmd\":\"logs\",\"names\":[\"slow\"]}\n")
        .unwrap();
    // herdd is stuck opening the FIFO (open(2) waits for a writer).
    let pid = herd.daemon_pid();
    wait_until("herdd opening the FIFO", || {
        waits_in(pid, "wait_for_partner")
    });

    // Meanwhile everyone else is served.
    let mut status = UnixStream::connect(&herd.socket).unwrap();
    status.set_read_timeout(Some(DEADLINE)).unwrap();
    status.write_all(b"{\"v\":1,\"cmd\":\"status\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(&status)
        .read_line(&mut line)
        .expect("status answered while a log read hangs");
    let reply: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(reply["ok"]["units"][0]["name"], "web", "{reply}");
    herd.ok(&["stop", "web"]);

    // A writer comes and goes: the hung read ends, and its client is answered.
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap(),
    );
    let mut reply = String::new();
    BufReader::new(&mut logs).read_line(&mut reply).unwrap();
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["ok"]["count"], 0, "{reply}");
    let mut rest = Vec::new();
    logs.shutdown(std::net::Shutdown::Write).unwrap();
    let _ = logs.read_to_end(&mut rest);
}
