//! The interface `org.herd.Herd1.Manager` at `/org/herd/Herd1`: each
//! method builds a request and turns the core's reply into its D-Bus reply.

use super::errors::HerdError;
use super::front::{Answer, Front};
use crate::control::framing;
use herd_common::protocol::{
    decode_request, ErrorCode, OutputStream, Reply, Request, StatusReport, MAX_REQUEST_BYTES,
};
use std::sync::Arc;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

/// A timeout argument: 0 means none.
fn timeout(ms: u64) -> Option<u64> {
    (ms > 0).then_some(ms)
}

/// The object at `/org/herd/Herd1`.
pub struct Manager {
    pub front: Arc<Front>,
}

impl Manager {
    async fn ask(&self, header: &Header<'_>, request: Request) -> Answer<'_> {
        self.front.ask(header, request).await
    }
}

/// Methods return JSON text (`s`) where the socket's payload is an object
/// with more in it than D-Bus types say well; docs/protocol.md has each.
#[zbus::interface(name = "org.herd.Herd1.Manager")]
impl Manager {
    /// The control protocol over D-Bus: one request line (docs/protocol.md)
    /// in, its reply line out, errors included (`{"error": ...}`), exactly
    /// as on the socket. `events` is a stream and so not served here: call
    /// RecentEvents and listen to the Event signal.
    async fn request(&self, #[zbus(header)] header: Header<'_>, request_json: String) -> String {
        let reply = if request_json.len() >= MAX_REQUEST_BYTES {
            framing::too_large()
        } else {
            match decode_request(request_json.as_bytes()) {
                Ok(Request::Events { .. }) => Reply::error(
                    ErrorCode::BadRequest,
                    "\"events\" is a stream: over D-Bus, call RecentEvents and listen to the \
                     Event signal",
                ),
                Ok(request) => return framing::line(self.ask(&header, request).await.reply()),
                Err(body) => Reply::Error(body),
            }
        };
        framing::line(&reply)
    }

    /// The lifecycle events herd remembers, oldest first, one JSON
    /// EventLine each (as `herdctl events --json` prints them).
    async fn recent_events(&self) -> Vec<String> {
        let (history, _) = self.front.hub.subscribe();
        history
            .iter()
            .map(|line| serde_json::to_string(&**line).unwrap_or_default())
            .collect()
    }

    /// Start units or instances (names or globs); with `wait`, return once
    /// each is settled. Returns the status payload of the units touched.
    async fn start(
        &self,
        #[zbus(header)] header: Header<'_>,
        names: Vec<String>,
        wait: bool,
    ) -> Result<String, HerdError> {
        self.ask(&header, Request::Start { names, wait })
            .await
            .json()
    }

    async fn stop(
        &self,
        #[zbus(header)] header: Header<'_>,
        names: Vec<String>,
        wait: bool,
    ) -> Result<String, HerdError> {
        self.ask(&header, Request::Stop { names, wait })
            .await
            .json()
    }

    async fn restart(
        &self,
        #[zbus(header)] header: Header<'_>,
        names: Vec<String>,
        wait: bool,
    ) -> Result<String, HerdError> {
        self.ask(&header, Request::Restart { names, wait })
            .await
            .json()
    }

    /// Signal the process groups; returns the instances signalled.
    async fn kill(
        &self,
        #[zbus(header)] header: Header<'_>,
        names: Vec<String>,
        signal: String,
    ) -> Result<Vec<String>, HerdError> {
        let answer = self.ask(&header, Request::Kill { names, signal }).await;
        answer
            .payload::<herd_common::protocol::KillReport>()
            .map(|report| report.signalled)
    }

    async fn scale(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: String,
        instances: u32,
    ) -> Result<String, HerdError> {
        self.ask(&header, Request::Scale { name, instances })
            .await
            .json()
    }

    /// The status payload (JSON) of the named units, or of everything.
    async fn status(
        &self,
        #[zbus(header)] header: Header<'_>,
        names: Vec<String>,
    ) -> Result<String, HerdError> {
        self.ask(&header, Request::Status { names, usage: true })
            .await
            .json()
    }

    /// Every unit with its state.
    async fn list_units(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<(String, String)>, HerdError> {
        let answer = self
            .ask(
                &header,
                Request::Status {
                    names: vec![],
                    usage: false,
                },
            )
            .await;
        let report: StatusReport = answer.payload()?;
        Ok(report
            .units
            .into_iter()
            .map(|unit| (unit.name, unit.state.as_str().to_string()))
            .collect())
    }

    /// Re-read the config; returns what changed (JSON).
    async fn reload(&self, #[zbus(header)] header: Header<'_>) -> Result<String, HerdError> {
        self.ask(&header, Request::Reload).await.json()
    }

    /// Stop everything, then herdd exits (and leaves the bus).
    async fn shutdown(&self, #[zbus(header)] header: Header<'_>) -> Result<(), HerdError> {
        self.ask(&header, Request::Shutdown)
            .await
            .payload::<serde_json::Value>()
            .map(drop)
    }

    /// Re-execute herdd in place; the new image takes the name again.
    async fn daemon_reexec(&self, #[zbus(header)] header: Header<'_>) -> Result<(), HerdError> {
        self.ask(&header, Request::DaemonReexec)
            .await
            .payload::<serde_json::Value>()
            .map(drop)
    }

    /// Queue a task (argv, no shell); returns its id.
    async fn submit(
        &self,
        #[zbus(header)] header: Header<'_>,
        pool: String,
        command: Vec<String>,
    ) -> Result<u64, HerdError> {
        let request = Request::Submit {
            pool,
            command,
            name: None,
            options: Default::default(),
        };
        let answer = self.ask(&header, request).await;
        answer
            .payload::<herd_common::protocol::SubmitReport>()
            .map(|report| report.id)
    }

    /// Wait for tasks to end (`timeout_ms` 0: no limit); the join payload (JSON).
    async fn join(
        &self,
        #[zbus(header)] header: Header<'_>,
        ids: Vec<u64>,
        timeout_ms: u64,
    ) -> Result<String, HerdError> {
        let request = Request::Join {
            ids,
            timeout_ms: timeout(timeout_ms),
        };
        self.ask(&header, request).await.json()
    }

    /// Tasks of `pool` ("" for every pool), as JSON.
    async fn list_tasks(
        &self,
        #[zbus(header)] header: Header<'_>,
        pool: String,
    ) -> Result<String, HerdError> {
        let pool = (!pool.is_empty()).then_some(pool);
        self.ask(&header, Request::Tasks { pool }).await.json()
    }

    /// Captured output of a task; `stream` is "stdout" or "stderr". JSON.
    async fn task_output(
        &self,
        #[zbus(header)] header: Header<'_>,
        id: u64,
        stream: String,
    ) -> Result<String, HerdError> {
        let stream = match stream.as_str() {
            "" | "stdout" => OutputStream::Stdout,
            "stderr" => OutputStream::Stderr,
            other => {
                return Err(HerdError::BadRequest(format!(
                    "stream {other:?}: expected \"stdout\" or \"stderr\""
                )))
            }
        };
        self.ask(&header, Request::Output { id, stream })
            .await
            .json()
    }

    /// Cancel tasks; returns the ids that were queued or running.
    async fn cancel(
        &self,
        #[zbus(header)] header: Header<'_>,
        ids: Vec<u64>,
    ) -> Result<Vec<u64>, HerdError> {
        let answer = self.ask(&header, Request::Cancel { ids }).await;
        answer
            .payload::<herd_common::protocol::CancelReport>()
            .map(|report| report.cancelled)
    }

    async fn pool_close(
        &self,
        #[zbus(header)] header: Header<'_>,
        pool: String,
    ) -> Result<String, HerdError> {
        self.ask(&header, Request::PoolClose { pool }).await.json()
    }

    async fn pool_terminate(
        &self,
        #[zbus(header)] header: Header<'_>,
        pool: String,
    ) -> Result<String, HerdError> {
        self.ask(&header, Request::PoolTerminate { pool })
            .await
            .json()
    }

    async fn pool_join(
        &self,
        #[zbus(header)] header: Header<'_>,
        pool: String,
        timeout_ms: u64,
    ) -> Result<String, HerdError> {
        let request = Request::PoolJoin {
            pool,
            timeout_ms: timeout(timeout_ms),
        };
        self.ask(&header, request).await.json()
    }

    /// Semaphores with holders and waiters (JSON).
    async fn semaphore_list(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<String, HerdError> {
        self.ask(&header, Request::SemList).await.json()
    }

    /// Take a slot of `name` for the calling bus connection (`timeout_ms` 0:
    /// wait as long as it takes). Held until SemaphoreRelease or until the
    /// caller leaves the bus. Returns whether it was acquired.
    async fn semaphore_acquire(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: String,
        timeout_ms: u64,
    ) -> Result<bool, HerdError> {
        let pid = match header.sender() {
            Some(sender) => self.front.peer(sender.as_str()).await.ok(),
            None => None,
        }
        .and_then(|peer| peer.pid)
        .and_then(|pid| u32::try_from(pid).ok());
        let request = Request::SemAcquire {
            name,
            timeout_ms: timeout(timeout_ms),
            pid,
        };
        let answer = self.ask(&header, request).await;
        answer
            .payload::<herd_common::protocol::AcquireReport>()
            .map(|report| report.acquired)
    }

    async fn semaphore_release(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: String,
    ) -> Result<(), HerdError> {
        self.ask(&header, Request::SemRelease { name })
            .await
            .payload::<serde_json::Value>()
            .map(drop)
    }

    /// Every event and whether it is set.
    async fn event_list(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<(String, bool)>, HerdError> {
        let answer = self.ask(&header, Request::EventList).await;
        answer
            .payload::<herd_common::protocol::EventReport>()
            .map(|report| {
                report
                    .events
                    .into_iter()
                    .map(|event| (event.name, event.set))
                    .collect()
            })
    }

    async fn event_set(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: String,
    ) -> Result<(), HerdError> {
        self.ask(&header, Request::EventSet { name })
            .await
            .payload::<serde_json::Value>()
            .map(drop)
    }

    async fn event_clear(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: String,
    ) -> Result<(), HerdError> {
        self.ask(&header, Request::EventClear { name })
            .await
            .payload::<serde_json::Value>()
            .map(drop)
    }

    /// Wait until the event is set (`timeout_ms` 0: no limit); returns
    /// whether it is set (false: timed out).
    async fn event_wait(
        &self,
        #[zbus(header)] header: Header<'_>,
        name: String,
        timeout_ms: u64,
    ) -> Result<bool, HerdError> {
        let request = Request::EventWait {
            name,
            timeout_ms: timeout(timeout_ms),
        };
        let answer = self.ask(&header, request).await;
        answer
            .payload::<herd_common::protocol::EventChange>()
            .map(|change| change.event.set && !change.timed_out)
    }

    /// Every lifecycle event, as the JSON EventLine `herdctl events --json` prints.
    #[zbus(signal)]
    pub async fn event(emitter: &SignalEmitter<'_>, event_json: &str) -> zbus::Result<()>;

    /// An instance (`web@2`) or task (`convert#17`) changed: `change` is the
    /// event type (started, ready, exited, restarting, stopping, failed).
    #[zbus(signal)]
    pub async fn instance_changed(
        emitter: &SignalEmitter<'_>,
        instance: &str,
        change: &str,
    ) -> zbus::Result<()>;

    /// A pool task ended (as systemd's JobRemoved): `result` says how
    /// ("exit code 0", "killed by SIGTERM", or why it could not run).
    #[zbus(signal)]
    pub async fn task_finished(
        emitter: &SignalEmitter<'_>,
        id: u64,
        pool: &str,
        success: bool,
        result: &str,
    ) -> zbus::Result<()>;

    /// An event was set or cleared.
    #[zbus(signal)]
    pub async fn event_changed(
        emitter: &SignalEmitter<'_>,
        name: &str,
        set: bool,
    ) -> zbus::Result<()>;
}
