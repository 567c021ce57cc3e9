//! `herdctl top`: in batch mode, plain frames on stdout; interactive, in a
//! pseudo-terminal, keys to sort and quit and the terminal restored.

use crate::harness::*;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn batch_mode_prints_n_frames_naming_every_instance_and_pool() {
    let herd = Herd::start(
        r#"
[service.web]
command = ["sleep", "600"]
instances = 2
[service.burn]
command = ["sh", "-c", "while :; do :; done"]
[pool.convert]
size = 2
"#,
    );
    herd.wait_state("web@1", "running");
    herd.wait_state("burn", "running");
    let out = herd.ok(&["top", "-b", "-n", "2", "-d", "0.3"]);
    let headers = out.lines().filter(|l| l.starts_with("herd - ")).count();
    assert_eq!(headers, 2, "two frames:\n{out}");
    for name in ["web@0", "web@1", "burn", "convert"] {
        assert_eq!(
            out.lines()
                .filter(|l| l.starts_with(&format!("{name} ")))
                .count(),
            2,
            "{name} in each frame:\n{out}"
        );
    }
    // The second frame has a CPU rate for every running instance.
    let last = &out[out.rfind("herd - ").unwrap()..];
    let burn = last.lines().find(|l| l.starts_with("burn ")).unwrap();
    let cpu: f64 = burn.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(cpu >= 0.0, "{burn}");
}

#[test]
fn top_needs_a_number_of_frames_that_is_a_number() {
    let herd = Herd::start("[service.web]\ncommand = [\"sleep\", \"600\"]\n");
    let out = herd.ctl(&["top", "-b", "-n", "many"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
}

/// What the terminal has shown so far (read from the pty's master side by a
/// thread: herdctl must never wait for its frames to be read).
#[derive(Clone, Default)]
struct Screen(Arc<Mutex<Vec<u8>>>);

impl Screen {
    fn read_from(master: std::fs::File) -> Screen {
        let screen = Screen::default();
        let bytes = screen.0.clone();
        std::thread::spawn(move || {
            let mut master = master;
            let mut buffer = [0u8; 16384];
            // Ends with EIO once the last slave descriptor is closed.
            while let Ok(n) = master.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                bytes.lock().unwrap().extend_from_slice(&buffer[..n]);
            }
        });
        screen
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A child killed (by its pid) if the test ends before it exits.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn interactive_top_sorts_on_a_key_and_quits_restoring_the_terminal() {
    let herd = Herd::start(
        r#"
[service.a-small]
command = ["sleep", "600"]
[service.z-big]
command = ["python3", "-c", "import time; x = bytearray(40 << 20); x[::4096] = b'x' * len(x[::4096]); time.sleep(600)"]
"#,
    );
    herd.wait_for("z-big's memory to show", |h| {
        h.instance("z-big")["memory_bytes"]
            .as_u64()
            .is_some_and(|bytes| bytes >= 30 << 20)
    });
    let size = nix::pty::Winsize {
        ws_row: 30,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).unwrap();
    let before = nix::sys::termios::tcgetattr(&pty.slave).unwrap();
    let slave = |fd: &std::os::fd::OwnedFd| Stdio::from(fd.try_clone().unwrap());
    let child = Command::new(bin("herdctl"))
        .arg("--socket")
        .arg(&herd.socket)
        .args(["top", "-d", "0.2"])
        .stdin(slave(&pty.slave))
        .stdout(slave(&pty.slave))
        .stderr(slave(&pty.slave))
        .spawn()
        .unwrap();
    let mut child = Reaped(child);
    let screen = Screen::read_from(std::fs::File::from(pty.master.try_clone().unwrap()));
    let mut keys = std::fs::File::from(pty.master);

    wait_until("a frame on the alternate screen", || {
        let text = screen.text();
        text.contains("\x1b[?1049h") && text.contains("sorted by CPU") && text.contains("z-big")
    });
    // The first frame has no CPU rates yet: CPU order falls back to names.
    let text = screen.text();
    let first = &text[text.find("sorted by CPU").unwrap()..];
    assert!(first.find("a-small") < first.find("z-big"), "{first}");

    keys.write_all(b"m").unwrap();
    wait_until("a frame sorted by memory", || {
        let text = screen.text();
        text.rfind("sorted by memory")
            .is_some_and(|at| text[at..].contains("a-small"))
    });
    let text = screen.text();
    let by_memory = &text[text.rfind("sorted by memory").unwrap()..];
    assert!(
        by_memory.find("z-big") < by_memory.find("a-small"),
        "the 40 MiB instance first:\n{by_memory}"
    );

    keys.write_all(b"q").unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < DEADLINE, "top did not quit on q");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0), "{status}");
    wait_until("the terminal restored", || {
        let text = screen.text();
        let last_frame = text.rfind("sorted by").unwrap();
        let tail = &text[last_frame..];
        tail.contains("\x1b[?1049l") && tail.contains("\x1b[?25h")
    });
    // Raw mode undone: the line discipline is as it was.
    let after = nix::sys::termios::tcgetattr(&pty.slave).unwrap();
    assert_eq!(after.local_flags, before.local_flags);
    assert_eq!(after.input_flags, before.input_flags);
    assert_eq!(after.output_flags, before.output_flags);
}
