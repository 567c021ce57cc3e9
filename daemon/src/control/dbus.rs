//! The D-Bus front end: `org.herd.Herd1` at `/org/herd/Herd1`, interface
//! `org.herd.Herd1.Manager` (docs/protocol.md, "D-Bus").
//!
//! An adapter, like the control socket: every method builds a [`Request`],
//! sends it down the same channel as the socket's connections
//! ([`Incoming`]) and turns the core's [`Reply`] into the D-Bus reply. No
//! behaviour is implemented twice. `Request(s) -> s` takes a socket request
//! line and returns the reply line, which is what `herdctl --dbus` uses, so
//! both transports give identical results; the typed methods are for other
//! D-Bus clients and map each protocol error code to its own D-Bus error
//! (`org.herd.Herd1.Error.NoSuchUnit`, ...).
//!
//! # Who is the client
//! A caller is its unique bus name (`:1.42`): it gets a [`ClientId`] from a
//! range of its own (socket connections count up from 1), and what it holds
//! (a semaphore slot from `sem-acquire`) is released when the bus says the
//! name has gone (`NameOwnerChanged`), however the caller ended. That
//! notice and the caller's requests reach the core in the order the bus
//! sent them: both go through [`Callers`] under one lock, and a request
//! from a name already gone is dropped rather than given a slot no one
//! would ever release.
//!
//! # Authorisation
//! The socket's rule ([`Policy::allows`]): anyone may read; changing things
//! takes root, herdd's own uid or membership of `control_group`. The
//! caller's uid and groups come from the bus
//! (`org.freedesktop.DBus.GetConnectionCredentials`, which the bus took
//! from the kernel when the caller connected), fetched once per caller and
//! only when it first asks for a change.
//!
//! # Signals
//! One task follows the [`EventHub`] and emits every lifecycle event as
//! `Event(s event_json)` (the same JSON line `herdctl events --json`
//! prints), plus typed ones: `InstanceChanged(s instance, s change)`,
//! `TaskFinished(t id, s pool, b success, s result)` and
//! `EventChanged(s name, b set)`.
//!
//! zbus runs on herdd's one current-thread tokio runtime (its `tokio`
//! feature, no thread of its own); its `unixexec`/`ibus` features stay off,
//! as they would bring in `tokio::process` and its competing SIGCHLD reaper.

use super::auth::{Peer, Policy};
use super::socket::{ClientId, Incoming};
use crate::shell::events::{self, EventHub};
use herd_common::dbus::{BUS_NAME, OBJECT_PATH};
use herd_common::events::{EventLine, Lifecycle};
use herd_common::protocol::{
    decode_request, ErrorBody, ErrorCode, OutputStream, Reply, Request, StatusReport,
    MAX_REQUEST_BYTES,
};
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};
use zbus::fdo::{self, RequestNameFlags, RequestNameReply};
use zbus::message::Header;
use zbus::names::BusName;
use zbus::object_server::SignalEmitter;

/// D-Bus callers get client ids from here up; socket connections count up
/// from 1 and will never get this far.
pub const FIRST_CLIENT: ClientId = 1 << 48;

/// How long herdd waits for the bus at start before it carries on without it.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`DbusServer::flush`] waits for replies still being sent.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// Departed unique names remembered, so that a request dispatched after its
/// sender's departure was seen is not served (see [`Callers`]). Unique
/// names are never reused on a bus, and the race is a matter of
/// milliseconds, so the most recent few thousand are plenty.
const GONE_REMEMBERED: usize = 4096;

/// The running D-Bus front end. Dropping it stops its tasks and closes the
/// connection, which gives the name back.
pub struct DbusServer {
    connection: zbus::Connection,
    front: Arc<Front>,
    tasks: Vec<JoinHandle<()>>,
}

impl DbusServer {
    /// Waits (briefly) until every method the core has answered has sent
    /// its reply on the bus: before a re-exec or exit, so that the reply to
    /// `daemon-reexec` or `shutdown` is not lost with the connection.
    pub async fn flush(&self) {
        // Let method tasks woken by the last replies take them.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        let waited = tokio::time::timeout(FLUSH_TIMEOUT, async {
            loop {
                let returned = self.front.returned.notified();
                if self.front.answered.load(Ordering::SeqCst) == 0 {
                    break;
                }
                returned.await;
            }
        })
        .await;
        if waited.is_err() {
            warn!("some D-Bus callers did not take their last reply");
        }
        // The reply goes out in the same task, right after the method returns.
        tokio::task::yield_now().await;
    }

    /// The unique name herdd has on the bus (for the log).
    pub fn unique_name(&self) -> String {
        self.connection
            .unique_name()
            .map(|name| name.to_string())
            .unwrap_or_default()
    }
}

impl Drop for DbusServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Connects to `bus` (`[herd] dbus`: "system", "session" or an address),
/// serves the interface and takes the name; `None` when `bus` is "off" or
/// the bus cannot be had within [`START_TIMEOUT`] (logged: herdd goes on
/// with its socket, because a supervisor must not die or hang for want of
/// a bus, above all after a re-exec with every child in its care).
pub async fn start(
    bus: &str,
    control_group: Option<&str>,
    core: mpsc::UnboundedSender<Incoming>,
    hub: Arc<EventHub>,
) -> Option<DbusServer> {
    if bus == "off" {
        return None;
    }
    let policy = match Policy::load(control_group) {
        Ok(policy) => policy,
        Err(err) => {
            error!(error = %err, "D-Bus not started");
            return None;
        }
    };
    match tokio::time::timeout(START_TIMEOUT, connect(bus, policy, core, hub)).await {
        Ok(Ok(server)) => {
            info!(bus, name = BUS_NAME, unique = %server.unique_name(), "serving D-Bus");
            Some(server)
        }
        Ok(Err(err)) => {
            error!(bus, error = %err, "cannot serve D-Bus; going on with the socket only");
            None
        }
        Err(_) => {
            error!(
                bus,
                "the bus did not answer within {START_TIMEOUT:?}; going on with the socket only"
            );
            None
        }
    }
}

/// The builder for `bus`.
fn builder(bus: &str) -> zbus::connection::Builder<'static> {
    match bus {
        "system" => zbus::connection::Builder::system(),
        "session" => zbus::connection::Builder::session(),
        address => zbus::connection::Builder::address(address),
    }
}

async fn connect(
    bus: &str,
    policy: Policy,
    core: mpsc::UnboundedSender<Incoming>,
    hub: Arc<EventHub>,
) -> zbus::Result<DbusServer> {
    let front = Arc::new(Front {
        core,
        policy,
        hub: hub.clone(),
        callers: Mutex::new(Callers::default()),
        bus: OnceLock::new(),
        answered: AtomicUsize::new(0),
        returned: tokio::sync::Notify::new(),
    });
    // Served before the name is taken, so that no call to the name finds
    // the object missing.
    let connection = builder(bus)
        .serve_at(
            OBJECT_PATH,
            Manager {
                front: front.clone(),
            },
        )
        .build()
        .await?;
    let proxy = fdo::DBusProxy::new(&connection).await?;
    // Subscribed before anyone can call us by name: no departure is missed.
    // arg2 = "": the name has no new owner (it is gone).
    let departures = proxy
        .receive_name_owner_changed_with_args(&[(2, "")])
        .await?;
    let _ = front.bus.set(proxy);
    // Without DO_NOT_QUEUE: right after a re-exec the bus may not yet have
    // seen the old image's connection close; herdd then waits in line.
    let flags = RequestNameFlags::empty();
    match connection.request_name_with_flags(BUS_NAME, flags).await? {
        RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner => {}
        RequestNameReply::InQueue => warn!(
            name = BUS_NAME,
            "another connection owns the name; herdd waits in line for it"
        ),
        RequestNameReply::Exists => return Err(zbus::Error::NameTaken),
    }
    let emitter = SignalEmitter::new(&connection, OBJECT_PATH)?.into_owned();
    let tasks = vec![
        tokio::spawn(follow_departures(front.clone(), departures)),
        tokio::spawn(emit_events(hub, emitter)),
    ];
    Ok(DbusServer {
        connection,
        front,
        tasks,
    })
}

/// What the interface's methods share.
struct Front {
    core: mpsc::UnboundedSender<Incoming>,
    policy: Policy,
    hub: Arc<EventHub>,
    callers: Mutex<Callers>,
    /// `org.freedesktop.DBus`, for callers' credentials; set once connected.
    bus: OnceLock<fdo::DBusProxy<'static>>,
    /// Replies the core has given that methods have not returned yet (see
    /// [`DbusServer::flush`]).
    answered: AtomicUsize,
    /// Told when `answered` drops to 0.
    returned: tokio::sync::Notify,
}

/// Callers by unique bus name, and the names known to have left the bus.
#[derive(Default)]
struct Callers {
    /// The id the next new caller gets, minus [`FIRST_CLIENT`].
    next: ClientId,
    by_name: HashMap<String, Caller>,
    gone: HashSet<String>,
    /// `gone` in the order names left, to forget the oldest.
    gone_order: VecDeque<String>,
}

struct Caller {
    client: ClientId,
    /// Fetched from the bus the first time the caller asks for a change.
    peer: Option<Peer>,
}

impl Callers {
    /// Sends `request` to the core as `name`'s; false (and nothing sent)
    /// when `name` has left the bus. Called under the lock, as is
    /// [`Callers::depart`], so the core sees requests and departures in
    /// the order they happened.
    fn forward(
        &mut self,
        core: &mpsc::UnboundedSender<Incoming>,
        name: &str,
        request: Request,
        reply: oneshot::Sender<Reply>,
    ) -> bool {
        if self.gone.contains(name) {
            return false;
        }
        let client = self.client(name);
        core.send(Incoming::Request {
            client,
            request,
            reply,
        })
        .is_ok()
    }

    fn client(&mut self, name: &str) -> ClientId {
        if let Some(caller) = self.by_name.get(name) {
            return caller.client;
        }
        let client = FIRST_CLIENT + self.next;
        self.next += 1;
        self.by_name
            .insert(name.to_string(), Caller { client, peer: None });
        client
    }

    /// `name` has left the bus: whatever it held is released.
    fn depart(&mut self, core: &mpsc::UnboundedSender<Incoming>, name: &str) {
        if let Some(caller) = self.by_name.remove(name) {
            debug!(caller = name, client = caller.client, "D-Bus caller gone");
            let _ = core.send(Incoming::Gone {
                client: caller.client,
            });
        }
        if self.gone.insert(name.to_string()) {
            self.gone_order.push_back(name.to_string());
            while self.gone_order.len() > GONE_REMEMBERED {
                if let Some(oldest) = self.gone_order.pop_front() {
                    self.gone.remove(&oldest);
                }
            }
        }
    }
}

impl Front {
    fn callers(&self) -> std::sync::MutexGuard<'_, Callers> {
        self.callers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Authorises `request` for the sender of `header`, hands it to the
    /// core and waits for the reply.
    async fn ask(&self, header: &Header<'_>, request: Request) -> Answer<'_> {
        let answer = |reply| Answer { reply, front: None };
        let Some(sender) = header.sender().map(|name| name.to_string()) else {
            // Only a peer-to-peer connection sends without a sender.
            return answer(Reply::error(
                ErrorCode::BadRequest,
                "a call without a sender cannot be served",
            ));
        };
        if !request.is_read_only() {
            match self.peer(&sender).await {
                Ok(peer) if self.policy.allows(&peer, &request) => {}
                Ok(peer) => {
                    warn!(
                        uid = peer.uid,
                        pid = peer.pid,
                        caller = sender,
                        verb = request.verb(),
                        "permission denied (D-Bus)"
                    );
                    return answer(Reply::error(
                        ErrorCode::PermissionDenied,
                        self.policy.denial(&request),
                    ));
                }
                Err(err) => {
                    warn!(caller = sender, error = %err, "cannot read a D-Bus caller's credentials");
                    return answer(Reply::error(
                        ErrorCode::PermissionDenied,
                        format!(
                            "permission denied: the bus did not tell who the caller is ({err})"
                        ),
                    ));
                }
            }
        }
        let (reply, receive) = oneshot::channel();
        let shutting_down = || Reply::error(ErrorCode::ShuttingDown, "herdd is shutting down");
        if !self.callers().forward(&self.core, &sender, request, reply) {
            // Gone from the bus (no one to answer), or the core has stopped.
            return answer(shutting_down());
        }
        let reply = receive.await.unwrap_or_else(|_| shutting_down());
        self.answered.fetch_add(1, Ordering::SeqCst);
        Answer {
            reply,
            front: Some(self),
        }
    }

    /// The caller's credentials, from the bus the first time.
    async fn peer(&self, sender: &str) -> Result<Peer, String> {
        if let Some(peer) = self
            .callers()
            .by_name
            .get(sender)
            .and_then(|caller| caller.peer.clone())
        {
            return Ok(peer);
        }
        let bus = self.bus.get().ok_or("not connected yet")?;
        let name = BusName::try_from(sender).map_err(|err| err.to_string())?;
        let credentials = bus
            .get_connection_credentials(name)
            .await
            .map_err(|err| err.to_string())?;
        let uid = credentials
            .unix_user_id()
            .ok_or("the bus gave no UnixUserID")?;
        let peer = Peer {
            uid,
            // UnixGroupIDs holds the primary group and the supplementary
            // ones alike; no gid stands out as primary, so none is (-1).
            gid: u32::MAX,
            groups: credentials.unix_group_ids().cloned().unwrap_or_default(),
            pid: credentials
                .process_id()
                .and_then(|pid| i32::try_from(pid).ok()),
        };
        let mut callers = self.callers();
        if !callers.gone.contains(sender) {
            callers.client(sender);
            if let Some(caller) = callers.by_name.get_mut(sender) {
                caller.peer = Some(peer.clone());
            }
        }
        Ok(peer)
    }
}

/// A reply from the core, counted in [`Front::answered`] until the method
/// that asked has returned (and so zbus sends it).
struct Answer<'a> {
    reply: Reply,
    front: Option<&'a Front>,
}

impl Answer<'_> {
    fn reply(&self) -> &Reply {
        &self.reply
    }

    /// The `ok` payload as `T`, or the error as its D-Bus error.
    fn payload<T: DeserializeOwned>(&self) -> Result<T, HerdError> {
        match &self.reply {
            Reply::Ok(value) => serde_json::from_value(value.clone())
                .map_err(|err| HerdError::Failed(format!("unexpected reply from the core: {err}"))),
            Reply::Error(body) => Err(body.clone().into()),
        }
    }

    /// The `ok` payload as JSON text.
    fn json(&self) -> Result<String, HerdError> {
        self.payload::<serde_json::Value>()
            .map(|value| value.to_string())
    }
}

impl Drop for Answer<'_> {
    fn drop(&mut self) {
        if let Some(front) = self.front {
            if front.answered.fetch_sub(1, Ordering::SeqCst) == 1 {
                front.returned.notify_waiters();
            }
        }
    }
}

/// The D-Bus errors of the typed methods: one per protocol [`ErrorCode`],
/// named `org.herd.Herd1.Error.<Code>` (herd_common::dbus::error_name).
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.herd.Herd1.Error")]
pub enum HerdError {
    #[zbus(error)]
    ZBus(zbus::Error),
    BadRequest(String),
    UnsupportedVersion(String),
    UnknownCommand(String),
    TooLarge(String),
    NoSuchUnit(String),
    NoSuchPool(String),
    NoSuchTask(String),
    Refused(String),
    NoSuchSemaphore(String),
    PermissionDenied(String),
    Failed(String),
    ShuttingDown(String),
    TooBusy(String),
    Reconnect(String),
}

impl From<ErrorBody> for HerdError {
    fn from(body: ErrorBody) -> Self {
        let message = body.message;
        match body.code {
            ErrorCode::BadRequest => HerdError::BadRequest(message),
            ErrorCode::UnsupportedVersion => HerdError::UnsupportedVersion(message),
            ErrorCode::UnknownCommand => HerdError::UnknownCommand(message),
            ErrorCode::TooLarge => HerdError::TooLarge(message),
            ErrorCode::NoSuchUnit => HerdError::NoSuchUnit(message),
            ErrorCode::NoSuchPool => HerdError::NoSuchPool(message),
            ErrorCode::NoSuchTask => HerdError::NoSuchTask(message),
            ErrorCode::Refused => HerdError::Refused(message),
            ErrorCode::NoSuchSemaphore => HerdError::NoSuchSemaphore(message),
            ErrorCode::PermissionDenied => HerdError::PermissionDenied(message),
            ErrorCode::Failed => HerdError::Failed(message),
            ErrorCode::ShuttingDown => HerdError::ShuttingDown(message),
            ErrorCode::TooBusy => HerdError::TooBusy(message),
            ErrorCode::Reconnect => HerdError::Reconnect(message),
        }
    }
}

/// A timeout argument: 0 means none.
fn timeout(ms: u64) -> Option<u64> {
    (ms > 0).then_some(ms)
}

/// The object at `/org/herd/Herd1`.
struct Manager {
    front: Arc<Front>,
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
            Reply::error(
                ErrorCode::TooLarge,
                format!("request longer than {MAX_REQUEST_BYTES} bytes"),
            )
        } else {
            match decode_request(request_json.as_bytes()) {
                Ok(Request::Events { .. }) => Reply::error(
                    ErrorCode::BadRequest,
                    "\"events\" is a stream: over D-Bus, call RecentEvents and listen to the \
                     Event signal",
                ),
                Ok(request) => return line(self.ask(&header, request).await.reply()),
                Err(body) => Reply::Error(body),
            }
        };
        line(&reply)
    }

    /// The lifecycle events herd remembers, oldest first, one JSON
    /// EventLine each (as `herdctl events --json` prints them).
    async fn recent_events(&self) -> Vec<String> {
        let (history, _) = self.front.hub.subscribe();
        history.iter().map(|line| line.to_string()).collect()
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
        self.ask(&header, Request::Status { names }).await.json()
    }

    /// Every unit with its state.
    async fn list_units(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<(String, String)>, HerdError> {
        let answer = self.ask(&header, Request::Status { names: vec![] }).await;
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
    async fn event(emitter: &SignalEmitter<'_>, event_json: &str) -> zbus::Result<()>;

    /// An instance (`web@2`) or task (`convert#17`) changed: `change` is the
    /// event type (started, ready, exited, restarting, stopping, failed).
    #[zbus(signal)]
    async fn instance_changed(
        emitter: &SignalEmitter<'_>,
        instance: &str,
        change: &str,
    ) -> zbus::Result<()>;

    /// A pool task ended (as systemd's JobRemoved): `result` says how
    /// ("exit code 0", "killed by SIGTERM", or why it could not run).
    #[zbus(signal)]
    async fn task_finished(
        emitter: &SignalEmitter<'_>,
        id: u64,
        pool: &str,
        success: bool,
        result: &str,
    ) -> zbus::Result<()>;

    /// An event was set or cleared.
    #[zbus(signal)]
    async fn event_changed(emitter: &SignalEmitter<'_>, name: &str, set: bool) -> zbus::Result<()>;
}

/// A reply as the socket would send it, without the newline.
fn line(reply: &Reply) -> String {
    let mut line = reply.to_line();
    line.truncate(line.trim_end().len());
    line
}

/// Polls the next item of a zbus stream.
async fn next<S: futures_core::Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

/// Tells the core about every caller that leaves the bus.
async fn follow_departures(front: Arc<Front>, mut departures: fdo::NameOwnerChangedStream) {
    while let Some(signal) = next(&mut departures).await {
        let Ok(args) = signal.args() else { continue };
        // A unique name (`:1.42`) whose owner has gone: a connection closed.
        let name = args.name().to_string();
        if name.starts_with(':') && args.new_owner().is_none() {
            front.callers().depart(&front.core, &name);
        }
    }
    // The connection to the bus is gone (the bus stopped or restarted), and
    // with it every caller's claim: release what they held.
    let mut callers = front.callers();
    let names: Vec<String> = callers.by_name.keys().cloned().collect();
    for name in names {
        callers.depart(&front.core, &name);
    }
    error!("lost the connection to the bus; D-Bus is off until herdd is restarted or re-executed");
}

/// Emits every published lifecycle event as signals.
async fn emit_events(hub: Arc<EventHub>, emitter: SignalEmitter<'static>) {
    let (_, mut live) = hub.subscribe();
    loop {
        let line: events::Line = match live.recv().await {
            Ok(line) => line,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                events::encode(Lifecycle::Lagged { missed }).into()
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if let Err(err) = emit(&emitter, &line).await {
            debug!(error = %err, "cannot emit a D-Bus signal");
        }
    }
}

async fn emit(emitter: &SignalEmitter<'_>, line: &str) -> zbus::Result<()> {
    Manager::event(emitter, line).await?;
    let Ok(EventLine { event, .. }) = serde_json::from_str::<EventLine>(line) else {
        return Ok(());
    };
    match &event {
        Lifecycle::Started { instance, .. }
        | Lifecycle::Ready { instance }
        | Lifecycle::Restarting { instance, .. }
        | Lifecycle::Stopping { instance, .. } => {
            Manager::instance_changed(emitter, instance, change(&event)).await?;
        }
        Lifecycle::Exited { instance, exit, .. } => {
            Manager::instance_changed(emitter, instance, change(&event)).await?;
            if let Some((id, pool)) = task_of(instance) {
                let result = exit.to_string();
                Manager::task_finished(emitter, id, pool, exit.is_success(), &result).await?;
            }
        }
        Lifecycle::Failed { instance, reason } => {
            Manager::instance_changed(emitter, instance, change(&event)).await?;
            // A task fails without exiting only when it could not be run.
            if let Some((id, pool)) = task_of(instance) {
                Manager::task_finished(emitter, id, pool, false, reason).await?;
            }
        }
        Lifecycle::EventChanged { event, set } => {
            Manager::event_changed(emitter, event, *set).await?;
        }
        Lifecycle::TaskQueued { .. }
        | Lifecycle::SemaphoreAcquired { .. }
        | Lifecycle::SemaphoreReleased { .. }
        | Lifecycle::Lagged { .. } => {}
    }
    Ok(())
}

/// The event's type, as in its JSON (`started`).
fn change(event: &Lifecycle) -> &'static str {
    match event {
        Lifecycle::Started { .. } => "started",
        Lifecycle::Ready { .. } => "ready",
        Lifecycle::Exited { .. } => "exited",
        Lifecycle::Restarting { .. } => "restarting",
        Lifecycle::Stopping { .. } => "stopping",
        Lifecycle::Failed { .. } => "failed",
        Lifecycle::TaskQueued { .. } => "task_queued",
        Lifecycle::SemaphoreAcquired { .. } => "semaphore_acquired",
        Lifecycle::SemaphoreReleased { .. } => "semaphore_released",
        Lifecycle::EventChanged { .. } => "event_changed",
        Lifecycle::Lagged { .. } => "lagged",
    }
}

/// The id and pool of a task's label: `convert#17` or `convert#17 (name)`.
fn task_of(label: &str) -> Option<(u64, &str)> {
    let (pool, rest) = label.split_once('#')?;
    let digits = rest.split(' ').next()?;
    Some((digits.parse().ok()?, pool))
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_common::dbus::{error_name, ERROR_CODES};
    use zbus::DBusError;

    #[test]
    fn each_error_code_is_its_own_dbus_error() {
        for code in ERROR_CODES {
            let error = HerdError::from(ErrorBody::new(code, "why"));
            assert_eq!(error.name().as_str(), error_name(code), "{code:?}");
            assert_eq!(error.description(), Some("why"));
        }
    }

    #[test]
    fn task_labels() {
        assert_eq!(task_of("convert#17"), Some((17, "convert")));
        assert_eq!(task_of("convert#17 (thumb a.png)"), Some((17, "convert")));
        assert_eq!(task_of("web@2"), None);
        assert_eq!(task_of("db"), None);
    }

    #[test]
    fn event_types_match_their_json() {
        let event = Lifecycle::Restarting {
            instance: "web".into(),
            delay_ms: 5,
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], change(&event));
    }

    fn callers() -> (
        Callers,
        mpsc::UnboundedReceiver<Incoming>,
        mpsc::UnboundedSender<Incoming>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Callers::default(), rx, tx)
    }

    #[test]
    fn callers_get_ids_of_their_own_and_a_departure_reaches_the_core_after_their_requests() {
        let (mut callers, mut core, tx) = callers();
        let (reply, _answer) = oneshot::channel();
        assert!(callers.forward(&tx, ":1.7", Request::SemList, reply));
        let (reply, _answer) = oneshot::channel();
        assert!(callers.forward(&tx, ":1.8", Request::SemList, reply));
        let first = match core.try_recv().unwrap() {
            Incoming::Request { client, .. } => client,
            Incoming::Gone { .. } => panic!("a request first"),
        };
        assert_eq!(first, FIRST_CLIENT);
        assert!(matches!(
            core.try_recv().unwrap(),
            Incoming::Request { client, .. } if client == FIRST_CLIENT + 1
        ));
        callers.depart(&tx, ":1.7");
        assert!(matches!(
            core.try_recv().unwrap(),
            Incoming::Gone { client } if client == FIRST_CLIENT
        ));
        // A request dispatched after its sender left is not served: it
        // could take a slot no departure would ever give back.
        let (reply, _answer) = oneshot::channel();
        assert!(!callers.forward(&tx, ":1.7", Request::SemList, reply));
        assert!(core.try_recv().is_err());
        // A name that never called leaves no trace in the core.
        callers.depart(&tx, ":1.99");
        assert!(core.try_recv().is_err());
    }

    #[test]
    fn departed_names_are_remembered_boundedly() {
        let (mut callers, _core, tx) = callers();
        for n in 0..GONE_REMEMBERED + 10 {
            callers.depart(&tx, &format!(":1.{n}"));
        }
        assert_eq!(callers.gone.len(), GONE_REMEMBERED);
        assert!(!callers.gone.contains(":1.0"));
        assert!(callers
            .gone
            .contains(&format!(":1.{}", GONE_REMEMBERED + 9)));
    }
}
