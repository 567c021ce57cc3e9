//! herd from Rust: the control protocol's verbs as typed methods.
//!
//! [`Herd`] is a blocking client: each method sends one request over the
//! control socket and returns the reply's payload as the protocol's own
//! types ([`StatusReport`], [`TaskReport`], ...), or a [`ClientError`] —
//! [`ClientError::Remote`] carries herdd's [`ErrorCode`] (see
//! [`error_code`]). It rides through `daemon-reexec` like herdctl does
//! (see [`crate::client`]). With the `tokio` feature, `AsyncHerd` offers
//! the same calls as futures.
//!
//! ```no_run
//! use herd_common::api::Herd;
//!
//! let mut herd = Herd::connect("/run/herd/herd.sock")?;
//! // multiprocessing.Pool.map, run by herdd: ordered results.
//! for result in herd.map("convert", &["sha256sum", "{}"], ["a.txt", "b.txt"])? {
//!     print!("{}", result.stdout);
//! }
//! // A semaphore slot, released when `slot` is dropped (or the process dies).
//! let slot = herd.acquire("disk", None)?.expect("no timeout: always acquired");
//! drop(slot);
//! // Lifecycle events as they happen.
//! for event in herd.events(true)? {
//!     println!("{}", event?.event);
//! }
//! # Ok::<(), herd_common::client::ClientError>(())
//! ```

use crate::client::{Client, ClientError, Streamed};
use crate::events::EventLine;
use crate::protocol::{
    AcquireReport, BatchReport, CancelReport, ErrorCode, EventChange, EventReport, OutputReport,
    OutputStream, PoolReport, ReloadReport, Request, ResultsReport, SemaphoreReport, StatusReport,
    SubmitOptions, SubmitReport, TaskId, TaskReport, TaskStatus, MAX_REQUEST_BYTES,
};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The result of every call.
pub type Result<T> = std::result::Result<T, ClientError>;

/// herdd's error code, when herdd answered with an error (`NoSuchPool`,
/// `PermissionDenied`, ...); `None` for transport errors.
pub fn error_code(error: &ClientError) -> Option<ErrorCode> {
    match error {
        ClientError::Remote(body) => Some(body.code),
        _ => None,
    }
}

/// One connection to herdd, with the protocol's verbs as methods.
pub struct Herd {
    socket: PathBuf,
    client: Client,
}

/// One task of [`Herd::map`]: how it ended and what it wrote to stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapResult {
    pub task: TaskStatus,
    pub stdout: String,
}

impl MapResult {
    /// It exited 0.
    pub fn successful(&self) -> bool {
        self.task
            .exit
            .as_ref()
            .is_some_and(|exit| exit.is_success())
    }
}

impl Herd {
    /// Connects to herdd's control socket at `socket`.
    pub fn connect(socket: impl AsRef<Path>) -> Result<Herd> {
        let socket = socket.as_ref().to_path_buf();
        let client = Client::connect(&socket)?;
        Ok(Herd { socket, client })
    }

    /// Connects to the default socket (`HERD_SOCKET`, else herdctl's default).
    pub fn connect_default() -> Result<Herd> {
        let socket = std::env::var_os("HERD_SOCKET")
            .map(PathBuf::from)
            .unwrap_or_else(crate::paths::default_socket);
        Herd::connect(socket)
    }

    /// Connects, giving herdd `patience` to take the connection and to
    /// answer each request that is due at once (zero: no limit).
    pub fn connect_with_patience(socket: impl AsRef<Path>, patience: Duration) -> Result<Herd> {
        let socket = socket.as_ref().to_path_buf();
        let client = Client::connect_with(&socket, patience)?;
        Ok(Herd { socket, client })
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends any request and returns its payload as `T`.
    pub fn call<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T> {
        let payload = self.client.call(request)?;
        serde_json::from_value(payload)
            .map_err(|err| ClientError::Protocol(format!("unexpected reply: {err}")))
    }

    /// Units, instances and pools; all of them when `names` is empty.
    pub fn status(&mut self, names: &[&str]) -> Result<StatusReport> {
        self.call(&Request::Status {
            names: strings(names),
            usage: true,
        })
    }

    /// Starts units or instances and waits until each has settled.
    pub fn start(&mut self, names: &[&str]) -> Result<StatusReport> {
        self.call(&Request::Start {
            names: strings(names),
            wait: true,
        })
    }

    /// Stops units or instances and waits until their processes are gone.
    pub fn stop(&mut self, names: &[&str]) -> Result<StatusReport> {
        self.call(&Request::Stop {
            names: strings(names),
            wait: true,
        })
    }

    /// Restarts units or instances and waits until each has settled.
    pub fn restart(&mut self, names: &[&str]) -> Result<StatusReport> {
        self.call(&Request::Restart {
            names: strings(names),
            wait: true,
        })
    }

    /// Re-reads herdd's config; a bad config changes nothing and is an error.
    pub fn reload(&mut self) -> Result<ReloadReport> {
        self.call(&Request::Reload)
    }

    /// Queues `command` (argv, no shell) in `pool`; returns the task's id.
    pub fn submit(&mut self, pool: &str, command: &[&str]) -> Result<TaskId> {
        let report: SubmitReport = self.call(&Request::Submit {
            pool: pool.to_string(),
            command: strings(command),
            name: None,
            options: Default::default(),
        })?;
        Ok(report.id)
    }

    /// Waits until every task in `ids` has ended, or `timeout` has passed
    /// (then `timed_out` is set and some tasks are still going).
    pub fn join(&mut self, ids: &[TaskId], timeout: Option<Duration>) -> Result<TaskReport> {
        self.call(&Request::Join {
            ids: ids.to_vec(),
            timeout_ms: timeout.map(millis),
        })
    }

    /// The tasks herd knows, of one pool or of all.
    pub fn tasks(&mut self, pool: Option<&str>) -> Result<TaskReport> {
        self.call(&Request::Tasks {
            pool: pool.map(str::to_string),
        })
    }

    /// What a task wrote to `stream`.
    pub fn output(&mut self, id: TaskId, stream: OutputStream) -> Result<OutputReport> {
        self.call(&Request::Output { id, stream })
    }

    /// Removes queued tasks and stops running ones.
    pub fn cancel(&mut self, ids: &[TaskId]) -> Result<CancelReport> {
        self.call(&Request::Cancel { ids: ids.to_vec() })
    }

    /// `multiprocessing.Pool.map`: one task per item, `{}` in `command`
    /// replaced by the item; results in the items' order. The tasks are
    /// queued in `submit-batch` requests (as many as the pool's queue and
    /// this connection's cap on unread results take; the rest once results
    /// have come), so the pool runs them side by side, and collected with
    /// `results` as they end (docs/protocol.md).
    pub fn map<I, S>(&mut self, pool: &str, command: &[&str], items: I) -> Result<Vec<MapResult>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let commands: Vec<Vec<String>> = items
            .into_iter()
            .map(|item| {
                let item = item.as_ref();
                command.iter().map(|arg| arg.replace("{}", item)).collect()
            })
            .collect();
        let mut results: Vec<Option<MapResult>> = vec![None; commands.len()];
        // Submitted, not yet collected: task id -> item index.
        let mut outstanding = std::collections::HashMap::new();
        let mut next = 0;
        let mut name_them = false;
        while next < commands.len() || !outstanding.is_empty() {
            if next < commands.len() {
                let batch = batch_from(&commands[next..]);
                let request = Request::SubmitBatch {
                    pool: pool.to_string(),
                    commands: commands[next..next + batch].to_vec(),
                    options: SubmitOptions::default(),
                };
                match self.call::<BatchReport>(&request) {
                    Ok(report) => {
                        for id in report.ids {
                            outstanding.insert(id, next);
                            next += 1;
                        }
                    }
                    // Back-pressure while some are outstanding: collect first.
                    Err(ClientError::Remote(body))
                        if body.code == ErrorCode::Refused && !outstanding.is_empty() => {}
                    Err(err) => return Err(err),
                }
            }
            if outstanding.is_empty() {
                continue;
            }
            // After a daemon-reexec herdd holds our tasks for the connection
            // before: name them to collect them.
            let ids = if name_them {
                outstanding.keys().copied().collect()
            } else {
                Vec::new()
            };
            let report: ResultsReport = self.call(&Request::Results {
                ids,
                timeout_ms: None,
                linger_ms: Some(5),
            })?;
            for result in report.results {
                if let Some(index) = outstanding.remove(&result.task.id) {
                    results[index] = Some(MapResult {
                        task: result.task,
                        stdout: result.stdout.data,
                    });
                }
            }
            name_them = (report.outstanding as usize) < outstanding.len();
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// Closes `pool` to new submissions; queued and running tasks go on.
    pub fn pool_close(&mut self, pool: &str) -> Result<PoolReport> {
        self.call(&Request::PoolClose {
            pool: pool.to_string(),
        })
    }

    /// Waits until `pool` has nothing queued or running (or `timeout`).
    pub fn pool_join(&mut self, pool: &str, timeout: Option<Duration>) -> Result<PoolReport> {
        self.call(&Request::PoolJoin {
            pool: pool.to_string(),
            timeout_ms: timeout.map(millis),
        })
    }

    /// Semaphores with their holders and waiters.
    pub fn semaphores(&mut self) -> Result<SemaphoreReport> {
        self.call(&Request::SemList)
    }

    /// Takes a slot of semaphore `name`, waiting in line up to `timeout`
    /// (`None`: as long as it takes); `None` if the timeout passed first.
    /// The slot holds a connection of its own: dropping the [`Slot`], or
    /// the death of this process, gives it back.
    pub fn acquire(&self, name: &str, timeout: Option<Duration>) -> Result<Option<Slot>> {
        let mut own = Herd::connect(&self.socket)?;
        let report: AcquireReport = own.call(&Request::SemAcquire {
            name: name.to_string(),
            timeout_ms: timeout.map(millis),
            pid: None,
        })?;
        Ok(report.acquired.then(|| Slot {
            herd: own,
            name: name.to_string(),
        }))
    }

    /// Events and whether they are set.
    pub fn event_list(&mut self) -> Result<EventReport> {
        self.call(&Request::EventList)
    }

    /// Sets event `name` (creating it), waking its waiters.
    pub fn event_set(&mut self, name: &str) -> Result<EventChange> {
        self.call(&Request::EventSet {
            name: name.to_string(),
        })
    }

    /// Clears event `name` (creating it).
    pub fn event_clear(&mut self, name: &str) -> Result<EventChange> {
        self.call(&Request::EventClear {
            name: name.to_string(),
        })
    }

    /// Waits until event `name` is set, or `timeout` (then `timed_out`).
    pub fn event_wait(&mut self, name: &str, timeout: Option<Duration>) -> Result<EventChange> {
        self.call(&Request::EventWait {
            name: name.to_string(),
            timeout_ms: timeout.map(millis),
        })
    }

    /// The lifecycle events herdd remembers, then (with `follow`) live ones
    /// for as long as the iterator is read. Takes over this connection.
    pub fn events(mut self, follow: bool) -> Result<Events> {
        self.client.open_stream(&Request::Events { follow })?;
        Ok(Events {
            client: self.client,
            done: false,
        })
    }
}

/// A semaphore slot from [`Herd::acquire`]; given back when dropped.
pub struct Slot {
    herd: Herd,
    name: String,
}

impl Slot {
    /// The semaphore's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Gives the slot back now, waiting for herdd to confirm it.
    pub fn release(mut self) -> Result<()> {
        let _: AcquireReport = self.herd.call(&Request::SemRelease {
            name: self.name.clone(),
        })?;
        Ok(())
    }
}

/// The event stream of [`Herd::events`].
pub struct Events {
    client: Client,
    done: bool,
}

impl Iterator for Events {
    type Item = Result<EventLine>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.client.next_streamed() {
                Ok(Some(Streamed::Item { key, value })) if key == "event" => {
                    return Some(
                        serde_json::from_value(value).map_err(|err| {
                            ClientError::Protocol(format!("unexpected event: {err}"))
                        }),
                    );
                }
                // A lag notice or another item: not an event line. After a
                // re-exec the stream starts again (remembered events may come
                // again, as the protocol says).
                Ok(Some(Streamed::Item { .. } | Streamed::Resumed)) => {}
                Ok(Some(Streamed::End(_)) | None) => self.done = true,
                Err(err) => {
                    self.done = true;
                    return Some(Err(err));
                }
            }
        }
        None
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

/// How many of `commands` (at least one, at most 1024) go in the next
/// `submit-batch`, so that it stays well within a request line.
fn batch_from(commands: &[Vec<String>]) -> usize {
    let mut bytes = 0;
    let mut count = 0;
    for command in commands.iter().take(1024) {
        // Its JSON, with room for every byte to be escaped.
        bytes += command.iter().map(|arg| arg.len() * 2 + 3).sum::<usize>() + 2;
        if count > 0 && bytes > MAX_REQUEST_BYTES / 2 {
            break;
        }
        count += 1;
    }
    count
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The same calls as [`Herd`], as futures for a tokio runtime: each runs
/// the blocking call on tokio's blocking pool, so it never stalls the
/// runtime's own threads.
#[cfg(feature = "tokio")]
pub struct AsyncHerd {
    herd: std::sync::Arc<std::sync::Mutex<Herd>>,
}

#[cfg(feature = "tokio")]
impl AsyncHerd {
    /// Connects to herdd's control socket at `socket`.
    pub async fn connect(socket: impl AsRef<Path>) -> Result<AsyncHerd> {
        let socket = socket.as_ref().to_path_buf();
        let herd = blocking(move || Herd::connect(socket)).await?;
        Ok(AsyncHerd {
            herd: std::sync::Arc::new(std::sync::Mutex::new(herd)),
        })
    }

    /// Runs `call` on the connection, off the runtime's threads.
    pub async fn with<T, F>(&self, call: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Herd) -> Result<T> + Send + 'static,
    {
        let herd = self.herd.clone();
        blocking(move || {
            let mut herd = herd
                .lock()
                .map_err(|_| ClientError::Protocol("an earlier call panicked".into()))?;
            call(&mut herd)
        })
        .await
    }

    /// [`Herd::status`].
    pub async fn status(&self, names: Vec<String>) -> Result<StatusReport> {
        self.with(move |herd| herd.status(&names.iter().map(String::as_str).collect::<Vec<_>>()))
            .await
    }

    /// [`Herd::submit`].
    pub async fn submit(&self, pool: String, command: Vec<String>) -> Result<TaskId> {
        self.with(move |herd| {
            herd.submit(
                &pool,
                &command.iter().map(String::as_str).collect::<Vec<_>>(),
            )
        })
        .await
    }

    /// [`Herd::join`]. The connection is busy until it returns: use
    /// another `AsyncHerd` for calls meanwhile.
    pub async fn join(&self, ids: Vec<TaskId>, timeout: Option<Duration>) -> Result<TaskReport> {
        self.with(move |herd| herd.join(&ids, timeout)).await
    }

    /// [`Herd::event_set`].
    pub async fn event_set(&self, name: String) -> Result<EventChange> {
        self.with(move |herd| herd.event_set(&name)).await
    }

    /// [`Herd::event_wait`].
    pub async fn event_wait(&self, name: String, timeout: Option<Duration>) -> Result<EventChange> {
        self.with(move |herd| herd.event_wait(&name, timeout)).await
    }
}

#[cfg(feature = "tokio")]
async fn blocking<T, F>(call: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|err| ClientError::Protocol(format!("the blocking call failed: {err}")))?
}
