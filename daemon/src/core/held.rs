//! Results held for the connection that submitted them: a pool keeps only
//! its last `keep_finished` ended tasks, but a task that ended while the
//! client that submitted it is still connected and has not read its output
//! stays (past that count) until the client reads it or disconnects. So a
//! `map` never loses a result it is about to collect, however small
//! `keep_finished` is and however many other clients share the pool.

use super::semaphore::ClientId;
use herd_common::protocol::TaskId;
use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Default)]
pub(super) struct Held {
    /// Who submitted each task whose output has not been read.
    submitter: HashMap<TaskId, ClientId>,
    by_client: HashMap<ClientId, BTreeSet<TaskId>>,
    /// Held tasks their pool has already let go of: dropped when released.
    evicted: BTreeSet<TaskId>,
}

impl Held {
    pub fn hold(&mut self, client: ClientId, id: TaskId) {
        self.submitter.insert(id, client);
        self.by_client.entry(client).or_default().insert(id);
    }

    /// The pool let task `id` go: true if it is held (keep it for now),
    /// false if it may be dropped.
    pub fn on_evicted(&mut self, id: TaskId) -> bool {
        let held = self.submitter.contains_key(&id);
        if held {
            self.evicted.insert(id);
        }
        held
    }

    /// `client` read task `id`'s output: if it submitted the task, the task
    /// is no longer held; true if it is to be dropped now (its pool let go
    /// of it already).
    pub fn release(&mut self, client: ClientId, id: TaskId) -> bool {
        if self.submitter.get(&id) != Some(&client) {
            return false;
        }
        self.submitter.remove(&id);
        if let Some(ids) = self.by_client.get_mut(&client) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_client.remove(&client);
            }
        }
        self.evicted.remove(&id)
    }

    /// The client disconnected: its held tasks the pool let go of, to drop.
    pub fn client_gone(&mut self, client: ClientId) -> Vec<TaskId> {
        let ids = self.by_client.remove(&client).unwrap_or_default();
        ids.into_iter()
            .filter(|id| {
                self.submitter.remove(id);
                self.evicted.remove(id)
            })
            .collect()
    }
}
