//! What clients hand the shell: requests, each with where its reply goes,
//! and departures. Defined here, on the receiving side, so that the front
//! ends (the control socket, D-Bus) depend on the shell and never the
//! other way round.
//!
//! The channel is unbounded on purpose, and bounded by construction: a
//! socket connection has at most one request in flight (it waits for the
//! reply before it reads the next line) plus its departure, and D-Bus
//! callers are capped by the D-Bus front end; both front ends cap how many
//! clients they serve at once.

use herd_common::protocol::{Reply, Request};
use tokio::sync::{mpsc, oneshot};

/// A client, as numbered for the core: semaphore slots held by clients
/// belong to their connection (or bus name) and are released when it goes.
pub use crate::core::semaphore::ClientId;

/// What a client tells the core.
pub enum Incoming {
    /// A decoded, authorised request, with where its reply goes.
    Request {
        client: ClientId,
        request: Request,
        reply: oneshot::Sender<Reply>,
    },
    /// The client has gone, however it ended: what it held is released.
    Gone { client: ClientId },
}

/// Where front ends send [`Incoming`].
pub type RequestSender = mpsc::UnboundedSender<Incoming>;

/// Where the shell receives them.
pub type RequestReceiver = mpsc::UnboundedReceiver<Incoming>;

/// A new request channel.
pub fn channel() -> (RequestSender, RequestReceiver) {
    mpsc::unbounded_channel()
}
