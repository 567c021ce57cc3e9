//! The lifecycle event stream: every `Action::Publish` becomes one JSON line,
//! kept in a short history and broadcast to `herdctl events -f` readers.
//! The broadcast buffer is bounded: a slow reader misses events (and is told
//! how many) instead of slowing herdd down.

use herd_common::events::{EventLine, Lifecycle};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::broadcast;

/// Recent events replayed to a new reader.
const HISTORY: usize = 1000;
/// Events a follower may fall behind by before it misses some.
const FOLLOW_BUFFER: usize = 4096;

/// One JSON-encoded [`EventLine`].
pub type Line = Arc<str>;

pub struct EventHub {
    history: Mutex<VecDeque<Line>>,
    live: broadcast::Sender<Line>,
}

impl EventHub {
    pub fn new() -> Arc<EventHub> {
        Arc::new(EventHub {
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
            live: broadcast::channel(FOLLOW_BUFFER).0,
        })
    }

    pub fn publish(&self, event: Lifecycle) {
        let line: Line = encode(event).into();
        let mut history = self
            .history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(line.clone());
        // Sent under the lock, so a subscriber sees each event exactly once.
        // No receivers is fine.
        let _ = self.live.send(line);
    }

    /// The remembered events, and a receiver for every later one.
    pub fn subscribe(&self) -> (Vec<Line>, broadcast::Receiver<Line>) {
        let history = self
            .history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (history.iter().cloned().collect(), self.live.subscribe())
    }
}

/// The JSON line for `event`, stamped now.
pub fn encode(event: Lifecycle) -> String {
    let line = EventLine {
        time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        event,
    };
    serde_json::to_string(&line).unwrap_or_default()
}
