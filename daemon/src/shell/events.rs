//! The lifecycle event stream: every `Action::Publish` becomes one stamped
//! [`EventLine`], kept in a short history and broadcast to followers
//! (`herdctl events -f`, D-Bus signals). Events stay typed here; each front
//! end encodes them its own way, once. The broadcast buffer is bounded: a
//! slow follower misses events (and is told how many) instead of slowing
//! herdd down.

use herd_common::events::{EventLine, Lifecycle};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::broadcast;

/// Recent events replayed to a new reader.
const HISTORY: usize = 1000;
/// Events a follower may fall behind by before it misses some.
const FOLLOW_BUFFER: usize = 4096;

/// One published event, shared by every follower.
pub type Event = Arc<EventLine>;

pub struct EventHub {
    history: Mutex<VecDeque<Event>>,
    live: broadcast::Sender<Event>,
}

/// What a follower receives next.
pub enum Next {
    Event(Event),
    /// The follower fell behind: this many events are lost to it (as the
    /// `lagged` event, stamped now).
    Lagged(Event),
    /// herdd is exiting.
    Closed,
}

/// A follower of the live events.
pub struct Follower(broadcast::Receiver<Event>);

impl Follower {
    pub async fn next(&mut self) -> Next {
        match self.0.recv().await {
            Ok(event) => Next::Event(event),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                Next::Lagged(stamp(Lifecycle::Lagged { missed }))
            }
            Err(broadcast::error::RecvError::Closed) => Next::Closed,
        }
    }
}

impl EventHub {
    pub fn new() -> Arc<EventHub> {
        Arc::new(EventHub {
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
            live: broadcast::channel(FOLLOW_BUFFER).0,
        })
    }

    pub fn publish(&self, event: Lifecycle) {
        let event = stamp(event);
        let mut history = self
            .history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(event.clone());
        // Sent under the lock, so a subscriber sees each event exactly once.
        // No receivers is fine.
        let _ = self.live.send(event);
    }

    /// The remembered events, and a follower of every later one.
    pub fn subscribe(&self) -> (Vec<Event>, Follower) {
        let history = self
            .history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (
            history.iter().cloned().collect(),
            Follower(self.live.subscribe()),
        )
    }
}

/// `event`, stamped now.
fn stamp(event: Lifecycle) -> Event {
    Arc::new(EventLine {
        time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        event,
    })
}
