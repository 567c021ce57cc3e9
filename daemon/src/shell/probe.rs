//! Health probes, run as tokio tasks beside the event loop: a probe never
//! blocks it, whatever it waits for. Each ends in one
//! [`Input::ProbeResult`] on the shell's input queue, unless it was
//! cancelled because its instance's process is stopping or gone.
//!
//! A command probe is spawned like an instance's process (its own process
//! group, the instance's environment, user and group, dies with herdd) and
//! is reaped by herdd's one reaper, which hands its exit here; a probe
//! still running at its timeout, or cancelled, has its process group
//! killed. An `http` probe is one `GET` over a plain TCP connection, judged
//! by the status line alone; a `tcp` probe only connects.

use super::spawn;
use crate::core::health::{ProbeKind, ProbeSpec};
use crate::core::{Input, InstanceId, SpawnSpec};
use herd_common::state::Exit;
use herd_config::HttpTarget;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

/// The most of a probe's output (or an HTTP response head) kept.
const KEPT_OUTPUT: usize = 4096;

/// Longest reason line kept from a probe's output.
const REASON_CHARS: usize = 200;

/// How a command probe's process ended, and its exec error if it had one.
type Ending = (Exit, Option<String>);

type Outcome = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// The probes under way.
pub struct Probes {
    /// The probe task of each instance (finished ones linger until replaced).
    running: HashMap<InstanceId, AbortHandle>,
    /// Command probes' processes not yet reaped, by pid, with their program.
    exits: HashMap<u32, (oneshot::Sender<Ending>, String)>,
    /// Exec errors of probe processes, until they are reaped.
    exec_errors: HashMap<u32, String>,
    results: mpsc::UnboundedSender<Input>,
}

impl Probes {
    /// Results go to `results`, the shell's input queue (one per probe at
    /// most, and at most one probe per instance runs).
    pub fn new(results: mpsc::UnboundedSender<Input>) -> Probes {
        Probes {
            running: HashMap::new(),
            exits: HashMap::new(),
            exec_errors: HashMap::new(),
            results,
        }
    }

    /// Starts the probe of `instance`'s process `pid`.
    pub fn start(
        &mut self,
        instance: InstanceId,
        pid: u32,
        spec: ProbeSpec,
        short: Option<String>,
    ) {
        self.cancel(&instance);
        let probe: Outcome = match spec.kind {
            ProbeKind::Command(command) => match short {
                Some(error) => Box::pin(std::future::ready(Err(error))),
                None => self.command(&command),
            },
            ProbeKind::Http(url) => Box::pin(http(url)),
            ProbeKind::Tcp(address) => Box::pin(tcp(address)),
        };
        let results = self.results.clone();
        let id = instance.clone();
        let timeout = spec.timeout;
        let task = tokio::spawn(async move {
            let result = match tokio::time::timeout(timeout, probe).await {
                Ok(result) => result,
                // Dropping the probe killed its process group, if it had one.
                Err(_) => Err(format!("probe timed out after {timeout:?}")),
            };
            let _ = results.send(Input::ProbeResult {
                instance: id,
                pid,
                result,
            });
        });
        self.running.insert(instance, task.abort_handle());
    }

    /// Stops `instance`'s probe, if one runs: its result never comes.
    pub fn cancel(&mut self, instance: &InstanceId) {
        if let Some(task) = self.running.remove(instance) {
            task.abort();
        }
    }

    /// A child reported that its exec failed with `errno`: true if it was
    /// a probe's process (its result will say so).
    pub fn exec_failed(&mut self, pid: u32, errno: i32) -> bool {
        let Some((_, program)) = self.exits.get(&pid) else {
            return false;
        };
        let error = format!("cannot run {program}: {}", Errno::from_raw(errno).desc());
        self.exec_errors.insert(pid, error);
        true
    }

    /// The reaper collected `pid`: true if it was a probe's process, whose
    /// group's leftovers are then killed (as an instance's are).
    pub fn reaped(&mut self, pid: u32, exit: &Exit) -> bool {
        let Some((waiting, _)) = self.exits.remove(&pid) else {
            return false;
        };
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        let error = self.exec_errors.remove(&pid);
        // Its probe may have timed out or been cancelled meanwhile.
        let _ = waiting.send((exit.clone(), error));
        true
    }

    /// Spawns a command probe; the future reads its output and waits for its end.
    fn command(&mut self, spec: &SpawnSpec) -> Outcome {
        let spawned = match spawn::spawn(spec, &[], None) {
            Ok(spawned) => spawned,
            Err(error) => {
                return Box::pin(std::future::ready(Err(format!(
                    "probe could not start: {error}"
                ))))
            }
        };
        let (sender, ending) = oneshot::channel();
        let program = spec.argv.first().cloned().unwrap_or_default();
        self.exits.insert(spawned.pid, (sender, program));
        let group = Group {
            pgid: spawned.pid,
            ending,
        };
        Box::pin(run_command(group, spawned.output))
    }
}

/// A command probe's process group, killed if the probe is dropped (timed
/// out or cancelled) before its process was reaped.
struct Group {
    pgid: u32,
    ending: oneshot::Receiver<Ending>,
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Err(oneshot::error::TryRecvError::Empty) = self.ending.try_recv() {
            let _ = killpg(Pid::from_raw(self.pgid as i32), Signal::SIGKILL);
        }
    }
}

async fn run_command(mut group: Group, output: Option<(OwnedFd, OwnedFd)>) -> Result<(), String> {
    let (stdout, stderr) = match output {
        Some((stdout, stderr)) => tokio::join!(read_head(stdout), read_head(stderr)),
        None => (Vec::new(), Vec::new()),
    };
    let (exit, exec_error) = match (&mut group.ending).await {
        Ok(ending) => ending,
        Err(_) => (Exit::Unknown, None),
    };
    if exit.is_success() {
        return Ok(());
    }
    let what = match &exit {
        Exit::Code(code) => format!("probe exited {code}"),
        Exit::Signal(signal) => format!("probe killed by {signal}"),
        Exit::Unknown => "probe ended, status unknown".to_string(),
    };
    let said = exec_error.or_else(|| first_line(&stdout).or_else(|| first_line(&stderr)));
    Err(match said {
        Some(line) => format!("{what}: {line}"),
        None => what,
    })
}

/// The first [`KEPT_OUTPUT`] bytes written to a pipe; the rest is read
/// and dropped until end of file.
async fn read_head(fd: OwnedFd) -> Vec<u8> {
    let mut kept = Vec::new();
    if let Ok(flags) = fcntl(&fd, FcntlArg::F_GETFL) {
        let _ = fcntl(
            &fd,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        );
    }
    // SAFETY: the AsyncFd owns `fd`, which stays open and the same for its whole life.
    let Ok(fd) = (unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }) else {
        return kept;
    };
    let mut buffer = [0u8; 1024];
    loop {
        let Ok(mut ready) = fd.readable().await else {
            return kept;
        };
        let read = ready.try_io(|fd| {
            nix::unistd::read(fd.get_ref(), &mut buffer).map_err(std::io::Error::from)
        });
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => return kept,
            Ok(Ok(n)) => {
                let room = KEPT_OUTPUT.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&buffer[..room]);
            }
            // Not readable after all: wait again.
            Err(_) => {}
        }
    }
}

/// The first non-blank line of `output`, trimmed and shortened.
fn first_line(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    let line = text.lines().map(str::trim).find(|line| !line.is_empty())?;
    let mut kept: String = line.chars().take(REASON_CHARS).collect();
    if kept.len() < line.len() {
        kept.push('…');
    }
    Some(kept)
}

/// `tcp = "HOST:PORT"`: healthy when a connection is accepted.
async fn tcp(address: String) -> Result<(), String> {
    connect(&address).await.map(drop)
}

async fn connect(address: &str) -> Result<TcpStream, String> {
    TcpStream::connect(address)
        .await
        .map_err(|error| format!("probe could not connect to {address}: {}", describe(&error)))
}

/// `http = "URL"`: healthy when a `GET` is answered 2xx or 3xx.
async fn http(url: String) -> Result<(), String> {
    let target = HttpTarget::parse(&url).map_err(|error| format!("probe: {error}"))?;
    let mut stream = connect(&target.address).await?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: herd-health-probe\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n",
        target.path, target.host
    );
    let failed = |error: std::io::Error| format!("probe {url}: {}", describe(&error));
    stream.write_all(request.as_bytes()).await.map_err(failed)?;
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.contains(&b'\n') && head.len() < KEPT_OUTPUT {
        let n = stream.read(&mut buffer).await.map_err(failed)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..n]);
    }
    let line = first_line(&head).unwrap_or_default();
    match status_code(&line) {
        Some(200..=399) => Ok(()),
        Some(_) => Err(format!("probe got {line} from {url}")),
        None if line.is_empty() => Err(format!("probe got no HTTP response from {url}")),
        None => Err(format!("probe got no HTTP status line from {url}: {line}")),
    }
}

/// `HTTP/1.1 204 No Content` -> 204.
fn status_code(line: &str) -> Option<u16> {
    let mut words = line.split_ascii_whitespace();
    let version = words.next()?;
    let code = words.next()?;
    if !version.starts_with("HTTP/") || code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// "Connection refused" rather than "Connection refused (os error 111)".
fn describe(error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => Errno::from_raw(code).desc().to_string(),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const TEST_TIMEOUT: Duration = Duration::from_secs(5);

    #[test]
    fn status_lines_and_reasons() {
        assert_eq!(status_code("HTTP/1.1 204 No Content"), Some(204));
        assert_eq!(status_code("HTTP/1.0 503"), Some(503));
        assert_eq!(status_code("SSH-2.0-OpenSSH"), None);
        assert_eq!(status_code("HTTP/1.1 2000 x"), None);
        assert_eq!(
            first_line(b"\n  \n oops: down \nmore"),
            Some("oops: down".into())
        );
        assert_eq!(first_line(b" \n"), None);
        let long = "x".repeat(500);
        assert_eq!(
            first_line(long.as_bytes()).unwrap().chars().count(),
            REASON_CHARS + 1
        );
    }

    #[tokio::test]
    async fn tcp_and_http_probes_judge_what_answers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let serve = |status: &'static str| {
            let listener = &listener;
            async move {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut request = [0u8; 512];
                let n = stream.read(&mut request).await.unwrap();
                let request = String::from_utf8_lossy(&request[..n]).to_string();
                let reply = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                stream.write_all(reply.as_bytes()).await.unwrap();
                request
            }
        };
        let url = format!("http://{address}/healthz");
        let (request, result) = tokio::join!(serve("200 OK"), http(url.clone()));
        assert_eq!(result, Ok(()));
        assert!(
            request.starts_with("GET /healthz HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains(&format!("Host: {address}\r\n")),
            "{request}"
        );
        let (_, result) = tokio::join!(serve("302 Found"), http(url.clone()));
        assert_eq!(result, Ok(()));
        let (_, result) = tokio::join!(serve("503 Service Unavailable"), http(url.clone()));
        assert_eq!(
            result,
            Err(format!(
                "probe got HTTP/1.1 503 Service Unavailable from {url}"
            ))
        );
        let (_, result) = tokio::join!(listener.accept(), tcp(address.clone()));
        assert_eq!(result, Ok(()));
        drop(listener);
        let refused = tokio::time::timeout(TEST_TIMEOUT, tcp(address.clone())).await;
        assert_eq!(
            refused.unwrap(),
            Err(format!(
                "probe could not connect to {address}: Connection refused"
            ))
        );
    }
}
