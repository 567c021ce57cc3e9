//! What the interface's methods share, and the one way they reach the
//! core: authorise the caller (the socket's rule, with credentials from
//! the bus), forward the request, and count the reply until it is sent.

use super::callers::Callers;
use super::errors::HerdError;
use super::{Peer, Policy};
use crate::control::denials::Denials;
use crate::control::framing;
use crate::shell::clients::RequestSender;
use crate::shell::events::EventHub;
use herd_common::protocol::{ErrorCode, Reply, Request};
use serde::de::DeserializeOwned;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::{Mutex, OnceLock};
use tokio::sync::{oneshot, Semaphore};
use tracing::warn;
use zbus::fdo;
use zbus::message::Header;
use zbus::names::BusName;

/// Most method calls waiting for the core at once (`join`, `event wait`
/// and `sem acquire` may wait long); one more is answered `too_busy`.
pub const MAX_CALLS: usize = 4096;

/// Testing knob: overrides [`MAX_CALLS`] (read once at start).
const MAX_CALLS_ENV: &str = "HERD_MAX_DBUS_CALLS";

/// [`MAX_CALLS`], or the environment's number.
pub fn max_calls() -> usize {
    std::env::var(MAX_CALLS_ENV)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(MAX_CALLS)
}

/// What the interface's methods share.
pub struct Front {
    pub core: RequestSender,
    pub policy: Arc<Policy>,
    pub hub: Arc<EventHub>,
    pub denials: Arc<Denials>,
    pub callers: Mutex<Callers>,
    /// One permit per call waiting for the core.
    pub calls: Semaphore,
    /// How many permits there are.
    pub max_calls: usize,
    /// `org.freedesktop.DBus`, for callers' credentials; set once connected.
    pub bus: OnceLock<fdo::DBusProxy<'static>>,
    /// Replies the core has given that methods have not returned yet (see
    /// [`DbusServer::flush`]).
    pub answered: AtomicUsize,
    /// Told when `answered` drops to 0.
    pub returned: tokio::sync::Notify,
}

impl Front {
    pub fn callers(&self) -> std::sync::MutexGuard<'_, Callers> {
        self.callers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Authorises `request` for the sender of `header`, hands it to the
    /// core and waits for the reply.
    pub async fn ask(&self, header: &Header<'_>, request: Request) -> Answer<'_> {
        let answer = |reply| Answer { reply, front: None };
        let Some(sender) = header.sender().map(|name| name.to_string()) else {
            // Only a peer-to-peer connection sends without a sender.
            return answer(Reply::error(
                ErrorCode::BadRequest,
                "a call without a sender cannot be served",
            ));
        };
        if let Err(denied) = self.authorise(&sender, &request).await {
            return answer(denied);
        }
        let Ok(_call) = self.calls.try_acquire() else {
            return answer(Reply::error(
                ErrorCode::TooBusy,
                format!(
                    "herdd is serving its maximum of {} D-Bus calls; try again later",
                    self.max_calls
                ),
            ));
        };
        if request == Request::Metrics {
            // Gathered from several core replies, as on the socket.
            let scraper = crate::control::metrics_http::SCRAPER;
            let reply = match crate::control::metrics::gather(&self.core, scraper).await {
                Ok(text) => Reply::ok(herd_common::protocol::MetricsReport { text }),
                Err(reply) => reply,
            };
            return answer(reply);
        }
        let (reply, receive) = oneshot::channel();
        let costs = crate::shell::usage::costs(&request);
        if !self.callers().forward(&self.core, &sender, request, reply) {
            // Gone from the bus (no one to answer), or the core has stopped.
            return answer(framing::shutting_down());
        }
        let mut reply = receive.await.unwrap_or_else(|_| framing::shutting_down());
        if costs {
            reply = crate::shell::usage::with_usage(reply).await;
        }
        self.answered.fetch_add(1, Ordering::SeqCst);
        Answer {
            reply,
            front: Some(self),
        }
    }

    /// Anyone may read; a change takes a caller the policy allows.
    async fn authorise(&self, sender: &str, request: &Request) -> Result<(), Reply> {
        if request.is_read_only() {
            return Ok(());
        }
        match self.peer(sender).await {
            Ok(peer) if self.policy.allows(&peer, request) => Ok(()),
            Ok(peer) => {
                self.denials
                    .record(peer.uid, peer.pid, &request.verb(), "D-Bus");
                Err(Reply::error(
                    ErrorCode::PermissionDenied,
                    self.policy.denial(request),
                ))
            }
            Err(err) => {
                warn!(caller = sender, error = %err, "cannot read a D-Bus caller's credentials");
                Err(Reply::error(
                    ErrorCode::PermissionDenied,
                    format!("permission denied: the bus did not tell who the caller is ({err})"),
                ))
            }
        }
    }

    /// The caller's credentials, from the bus the first time.
    pub async fn peer(&self, sender: &str) -> Result<Peer, String> {
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
pub struct Answer<'a> {
    reply: Reply,
    front: Option<&'a Front>,
}

impl Answer<'_> {
    pub fn reply(&self) -> &Reply {
        &self.reply
    }

    /// The `ok` payload as `T`, or the error as its D-Bus error.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, HerdError> {
        match &self.reply {
            Reply::Ok(value) => serde_json::from_value(value.clone())
                .map_err(|err| HerdError::Failed(format!("unexpected reply from the core: {err}"))),
            Reply::Error(body) => Err(body.clone().into()),
        }
    }

    /// The `ok` payload as JSON text.
    pub fn json(&self) -> Result<String, HerdError> {
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
