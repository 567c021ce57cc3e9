//! `log = "journal"` (lines to journald's native socket, here a fake
//! journald of the test's own) and `log = "console"` (lines on herdd's
//! stdout, prefixed with the instance's name).

use crate::harness::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// A config whose `[herd]` table (written by the harness) also has
/// `journal_socket = "<dir>/journal.sock"`.
fn with_journal_socket(units: &str) -> Herd {
    let herd = Herd::configure(units);
    let socket = herd.path("journal.sock");
    let text = std::fs::read_to_string(&herd.config).unwrap();
    let text = text.replace(
        "[herd]\n",
        &format!(
            "[herd]\njournal_socket = {:?}\n",
            socket.display().to_string()
        ),
    );
    std::fs::write(&herd.config, text).unwrap();
    herd
}

/// A fake journald: the datagram socket herdd sends entries to.
fn journald(path: &Path) -> UnixDatagram {
    let socket = UnixDatagram::bind(path).unwrap();
    socket.set_read_timeout(Some(DEADLINE)).unwrap();
    socket
}

/// One entry of journald's native protocol: `NAME=value\n`, or `NAME\n`,
/// a 64-bit little-endian length, the value and `\n`.
fn parse_entry(mut data: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut fields = BTreeMap::new();
    while !data.is_empty() {
        let end = data.iter().position(|b| *b == b'\n').expect("a field ends");
        let line = &data[..end];
        match line.iter().position(|b| *b == b'=') {
            Some(eq) => {
                let name = String::from_utf8(line[..eq].to_vec()).unwrap();
                fields.insert(name, line[eq + 1..].to_vec());
                data = &data[end + 1..];
            }
            None => {
                let name = String::from_utf8(line.to_vec()).unwrap();
                let rest = &data[end + 1..];
                let length = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
                fields.insert(name, rest[8..8 + length].to_vec());
                assert_eq!(rest[8 + length], b'\n', "binary value ends in a newline");
                data = &rest[8 + length + 1..];
            }
        }
    }
    fields
}

/// Entries received until `enough` holds for them (each as its text fields).
fn receive(
    journald: &UnixDatagram,
    enough: impl Fn(&[BTreeMap<String, String>]) -> bool,
) -> Vec<BTreeMap<String, String>> {
    let mut entries = Vec::new();
    let mut buffer = vec![0; 256 * 1024];
    while !enough(&entries) {
        let n = journald
            .recv(&mut buffer)
            .unwrap_or_else(|err| panic!("no more entries ({err}); got {entries:#?}"));
        let entry = parse_entry(&buffer[..n])
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
            .collect();
        entries.push(entry);
    }
    entries
}

fn find<'a>(
    entries: &'a [BTreeMap<String, String>],
    message: &str,
) -> Option<&'a BTreeMap<String, String>> {
    entries
        .iter()
        .find(|e| e.get("MESSAGE").map(String::as_str) == Some(message))
}

#[test]
fn journal_entries_name_the_unit_and_instance_with_a_priority_per_stream() {
    let herd = with_journal_socket(
        r#"
[service.web]
command = ["sh", "-c", "echo out-$HERD_INSTANCE; echo err-$HERD_INSTANCE >&2; exec sleep 600"]
instances = 2
log = "journal"

[task.migrate]
command = ["sh", "-c", "echo migrated"]
log = "journal"
"#,
    );
    let journald = journald(&herd.path("journal.sock"));
    let herd = herd.launch();
    let expected = ["out-0", "err-0", "out-1", "err-1", "migrated"];
    let entries = receive(&journald, |entries| {
        expected.iter().all(|m| find(entries, m).is_some())
    });
    for (message, unit, instance, priority) in [
        ("out-0", "web", "0", "6"),
        ("err-0", "web", "0", "3"),
        ("out-1", "web", "1", "6"),
        ("err-1", "web", "1", "3"),
        ("migrated", "migrate", "0", "6"),
    ] {
        let entry = find(&entries, message).unwrap();
        assert_eq!(entry["SYSLOG_IDENTIFIER"], unit, "{entry:?}");
        assert_eq!(entry["HERD_INSTANCE"], instance, "{entry:?}");
        assert_eq!(entry["PRIORITY"], priority, "{entry:?}");
    }
    let web1 = find(&entries, "out-1").unwrap();
    assert_eq!(web1["HERD_INSTANCE_NAME"], "web@1");
    assert_eq!(web1["SYSLOG_PID"], herd.pid_of("web@1").to_string());
    // Nothing of it went to a log file.
    assert!(!herd.path("log/web").exists());
    let out = herd.ctl(&["logs", "web"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("log = \"journal\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn without_journald_lines_go_to_stdout_until_it_is_there() {
    let herd = with_journal_socket(
        r#"
[service.web]
command = ["sh", "-c", "echo hello-$$; exec sleep 600"]
log = "journal"
"#,
    );
    let herd = herd.launch();
    wait_until("the fallback line on herdd's stdout", || {
        herd.log().contains("web | hello-")
    });
    let log = herd.log();
    assert!(
        log.contains("journald's socket cannot be reached") && log.contains("journal.sock"),
        "the start says why:\n{log}"
    );

    // journald comes up: the next run's line goes there.
    let journald = journald(&herd.path("journal.sock"));
    herd.ok(&["restart", "web"]);
    let entries = receive(&journald, |entries| !entries.is_empty());
    let pid = herd.pid_of("web");
    assert_eq!(entries[0]["MESSAGE"], format!("hello-{pid}"));
    wait_until("herdd to say journald takes lines again", || {
        herd.log().contains("journald takes lines again")
    });
    assert!(!herd.log().contains(&format!("web | hello-{pid}")));
}

/// What a pipe from herdd has delivered so far, read by a thread.
#[derive(Clone, Default)]
struct Collected(Arc<Mutex<Vec<u8>>>);

impl Collected {
    fn read_from(mut pipe: impl Read + Send + 'static) -> Collected {
        let collected = Collected::default();
        let bytes = collected.0.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 65536];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                bytes.lock().unwrap().extend_from_slice(&buffer[..n]);
            }
        });
        collected
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// herdd with its stdout and stderr each on a pipe of the test's own.
fn launch_with_pipes(herd: &Herd) -> (OwnHerdd, Collected, Collected) {
    let mut child = Command::new(bin("herdd"))
        .arg("--config")
        .arg(&herd.config)
        .env("HERD_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = Collected::read_from(child.stdout.take().unwrap());
    let stderr = Collected::read_from(child.stderr.take().unwrap());
    let daemon = OwnHerdd::started(child, herd, &herd.socket);
    (daemon, stdout, stderr)
}

#[test]
fn console_lines_are_prefixed_whole_on_herdds_stdout() {
    // Each line is written in two pieces, by two instances at once.
    let herd = Herd::configure(
        r#"
[service.web]
command = ["sh", "-c", "i=0; while [ $i -lt 300 ]; do i=$((i+1)); printf 'line-%s-' $HERD_INSTANCE; printf '%s\n' $i; done; echo oops >&2; exec sleep 600"]
instances = 2
log = "console"

[task.hello]
command = ["sh", "-c", "printf 'hi\nno newline'"]
log = "console"
"#,
    );
    let (_daemon, stdout, stderr) = launch_with_pipes(&herd);
    wait_until("every line on stdout", || {
        let text = stdout.text();
        text.contains("web@0 | oops\n")
            && text.contains("web@1 | oops\n")
            && text.contains("web@0 | line-0-300\n")
            && text.contains("web@1 | line-1-300\n")
            && text.contains("hello | no newline\n")
    });
    let text = stdout.text();
    let mut next = [1u32, 1u32];
    for line in text.lines() {
        for (index, next) in next.iter_mut().enumerate() {
            let prefix = format!("web@{index} | line-{index}-");
            if let Some(number) = line.strip_prefix(&prefix) {
                let number: u32 = number
                    .parse()
                    .unwrap_or_else(|_| panic!("a line cut or mixed: {line:?}\n{text}"));
                assert_eq!(number, *next, "lines in order: {line:?}");
                *next += 1;
            } else {
                assert!(
                    !line.contains(&format!("line-{index}-")),
                    "a line cut or mixed: {line:?}"
                );
            }
        }
    }
    assert_eq!(next, [301, 301], "every line once");
    assert!(text.contains("hello | hi\n"), "{text}");
    // herdd's own log is on stderr (a pipe): no escape codes, no unit lines.
    let log = stderr.text();
    assert!(
        log.contains("web@0: started") || log.contains("web: started"),
        "{log}"
    );
    assert!(!log.contains('\x1b'), "escape codes on a pipe:\n{log:?}");
    assert!(!log.contains("| line-"), "{log}");
    let out = herd.ctl(&["logs", "web"]);
    assert!(
        stderr_of(&out).contains("log = \"console\""),
        "{}",
        stderr_of(&out)
    );
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_reload_to_console_restarts_the_instance_with_its_lines_on_stdout() {
    let herd = Herd::start(
        r#"
[service.web]
command = ["sh", "-c", "echo run-$$; exec sleep 600"]
"#,
    );
    herd.wait_state("web", "running");
    let old = herd.pid_of("web");
    let text = std::fs::read_to_string(&herd.config).unwrap();
    let text = text.replace(
        "exec sleep 600\"]\n",
        "exec sleep 600\"]\nlog = \"console\"\n",
    );
    std::fs::write(&herd.config, text).unwrap();
    herd.ok(&["reload"]);
    herd.wait_for("a new web", |h| {
        h.instances()
            .iter()
            .any(|i| i["name"] == "web" && i["state"] == "running" && i["pid"] != old)
    });
    let new = herd.pid_of("web");
    wait_until("the new run's line on stdout", || {
        herd.log().contains(&format!("web | run-{new}\n"))
    });
    let file = std::fs::read_to_string(herd.path("log/web/web.log")).unwrap();
    assert!(file.contains(&format!("run-{old}")), "{file}");
    assert!(!file.contains(&format!("run-{new}")), "{file}");
}

#[test]
fn an_unknown_log_value_is_a_config_error_at_its_place() {
    let herd = Herd::configure("[service.web]\ncommand = [\"true\"]\nlog = \"syslog\"\n");
    let out = Command::new(bin("herdd"))
        .arg("--check-config")
        .arg("--config")
        .arg(&herd.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let expected = format!(
        "{}:3:7: service.web.log: invalid log `syslog` (expected \"file\", \"inherit\", \
         \"off\", \"journal\" or \"console\")",
        herd.config.display()
    );
    assert!(stderr_of(&out).contains(&expected), "{}", stderr_of(&out));
}

#[test]
fn console_lines_go_on_across_daemon_reexec() {
    let herd = Herd::start(
        r#"
[service.web]
command = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.05; done"]
log = "console"
"#,
    );
    herd.wait_state("web", "running");
    let pid = herd.pid_of("web");
    let ticks = |h: &Herd| h.log().matches("web | tick-").count();
    wait_until("a few ticks", || ticks(&herd) >= 3);
    herd.ok(&["daemon-reexec"]);
    let before = ticks(&herd);
    wait_until("ticks after the re-exec", || ticks(&herd) >= before + 5);
    assert_eq!(herd.pid_of("web"), pid, "the same process, its pipe kept");
}

#[test]
fn a_stdout_nobody_reads_drops_console_lines_but_never_holds_herdd() {
    let herd = Herd::configure(
        r#"
[service.flood]
command = ["yes", "a line of console output that nobody reads"]
log = "console"
"#,
    );
    let log = std::fs::File::create(herd.path("herdd.log")).unwrap();
    let mut child = Command::new(bin("herdd"))
        .arg("--config")
        .arg(&herd.config)
        .env("HERD_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    // Held open and never read: the pipe fills, then herdd's writes wait.
    let _unread = child.stdout.take().unwrap();
    let _daemon = OwnHerdd::started(child, &herd, &herd.socket);
    wait_until("herdd to say it drops lines", || {
        herd.log().contains("forwarded output falls behind")
    });
    // The loop still answers, and still reads the flood (its pipe does not fill).
    for _ in 0..5 {
        herd.ok(&["status", "flood"]);
    }
    assert_eq!(herd.instance("flood")["state"], "running");
}
