//! D-Bus callers: each unique bus name is a client of its own, and its
//! departure from the bus releases what it held.

use crate::shell::clients::{ClientId, Incoming, RequestSender};
use herd_common::protocol::{Reply, Request};
use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::oneshot;
use tracing::{debug, error};
use zbus::fdo;

use super::front::Front;
use super::Peer;

/// D-Bus callers get client ids from here up; socket connections count up
/// from 1 and will never get this far.
pub const FIRST_CLIENT: ClientId = 1 << 48;

/// Departed unique names remembered, so that a request dispatched after its
/// sender's departure was seen is not served (see [`Callers`]). Unique
/// names are never reused on a bus, and the race is a matter of
/// milliseconds, so the most recent few thousand are plenty.
const GONE_REMEMBERED: usize = 4096;

/// Callers by unique bus name, and the names known to have left the bus.
#[derive(Default)]
pub struct Callers {
    /// The id the next new caller gets, minus [`FIRST_CLIENT`].
    next: ClientId,
    pub by_name: HashMap<String, Caller>,
    pub gone: HashSet<String>,
    /// `gone` in the order names left, to forget the oldest.
    gone_order: VecDeque<String>,
}

pub struct Caller {
    pub client: ClientId,
    /// Fetched from the bus the first time the caller asks for a change.
    pub peer: Option<Peer>,
}

impl Callers {
    /// Sends `request` to the core as `name`'s; false (and nothing sent)
    /// when `name` has left the bus. Called under the lock, as is
    /// [`Callers::depart`], so the core sees requests and departures in
    /// the order they happened.
    pub fn forward(
        &mut self,
        core: &RequestSender,
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

    pub fn client(&mut self, name: &str) -> ClientId {
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
    pub fn depart(&mut self, core: &RequestSender, name: &str) {
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

/// Polls the next item of a zbus stream.
async fn next<S: futures_core::Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

/// Tells the core about every caller that leaves the bus.
pub async fn follow_departures(front: Arc<Front>, mut departures: fdo::NameOwnerChangedStream) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn callers() -> (
        Callers,
        crate::shell::clients::RequestReceiver,
        RequestSender,
    ) {
        let (tx, rx) = crate::shell::clients::channel();
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
