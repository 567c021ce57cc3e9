//! Results held for the connection that submitted them: a pool keeps only
//! its last `keep_finished` ended tasks, but a task that ended while the
//! client that submitted it is still connected and has not read its output
//! stays (past that count) until the client reads it or disconnects. So a
//! `map` never loses a result it is about to collect, however small
//! `keep_finished` is and however many other clients share the pool.
//!
//! What a pool bounds itself (its queue, its `keep_finished`) is not
//! counted against a client; what herdd holds only for it is: a client may
//! hold at most [`MAX_UNREAD_RESULTS`] ended tasks that their pool has
//! already let go of, and is refused new submissions while it does.
//! `results` hands a client its ended tasks, waiting (one such request per
//! client) until one does. Across a `daemon-reexec` or a crash
//! the holds are carried over without their connections, which are gone:
//! a client that names the tasks in `results` collects them, and what is
//! not collected within [`CARRIED_FOR`] is let go.

use super::semaphore::ClientId;
use super::RequestId;
use herd_common::protocol::{TaskId, MAX_UNREAD_RESULTS};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// How long holds carried over a re-exec or crash wait for a client to
/// collect them.
pub const CARRIED_FOR: Duration = Duration::from_secs(60);

/// The holder of carried-over holds (no connection has this number: they
/// count up from 1).
const CARRIED: ClientId = ClientId::MAX;

/// One client's held tasks.
#[derive(Debug, Default, Clone)]
struct Holds {
    /// Every task it submitted (or collects) and has not read.
    all: BTreeSet<TaskId>,
    /// Those of them that have ended: what `results` hands out, in id order.
    ended: BTreeSet<TaskId>,
    /// How many of them their pool has let go of: held for this client only.
    evicted: usize,
}

/// A `results` request waiting for a task of its client to end.
#[derive(Debug, Clone, Copy)]
pub(super) struct ResultsWaiter {
    pub request: RequestId,
    pub deadline: Option<Instant>,
    /// Once a task has ended, how much longer to wait for more (so that a
    /// reply carries several: fewer round trips while many end).
    pub linger: Option<Duration>,
    /// When lingering ends (set once a task has ended).
    pub lingering_until: Option<Instant>,
}

/// Waiting `results` requests are indexed so that a step costs what
/// changed, not the number of clients waiting: by their deadlines (and ends
/// of lingering), and by the clients whose holds changed since the last
/// [`Held::due`], the only ones whose request can have become ready.
#[derive(Debug, Default, Clone)]
pub(super) struct Held {
    /// Who holds each task whose output has not been read.
    submitter: HashMap<TaskId, ClientId>,
    by_client: HashMap<ClientId, Holds>,
    /// Held tasks their pool has already let go of: dropped when released.
    evicted: BTreeSet<TaskId>,
    /// `results` requests waiting, one per client at most.
    waiting: BTreeMap<ClientId, ResultsWaiter>,
    /// Their deadlines and ends of lingering, earliest first.
    deadlines: BTreeSet<(Instant, ClientId)>,
    /// Clients whose holds or request changed since the last [`Held::due`].
    changed: BTreeSet<ClientId>,
    /// When the holds carried over a re-exec or crash are let go.
    carried_until: Option<Instant>,
}

/// Whether a waiting `results` request is due at `now`, given its client's
/// holds: the client has an ended task (and has lingered, unless all have
/// ended), or nothing outstanding, or the deadline passed; with whether it
/// timed out. The first look after a task ended starts the lingering.
fn is_due(holds: Option<&Holds>, waiter: &mut ResultsWaiter, now: Instant) -> Option<bool> {
    let (ended, all) = holds.map_or((0, 0), |h| (h.ended.len(), h.all.len()));
    let ready = all == 0 || ended > 0;
    let late = waiter.deadline.is_some_and(|d| d <= now);
    let lingered = match waiter.linger {
        Some(linger) if ended > 0 && ended < all => {
            *waiter.lingering_until.get_or_insert(now + linger) <= now
        }
        Some(_) | None => true,
    };
    ((ready && lingered) || late).then_some(!ready)
}

/// Why a client may not submit more.
pub(super) fn over_cap() -> String {
    format!(
        "this connection has {MAX_UNREAD_RESULTS} ended tasks whose results it has not read and \
         that their pool no longer keeps, the most herdd holds for one connection; read some \
         (results or output) and submit again"
    )
}

impl Held {
    pub fn hold(&mut self, client: ClientId, id: TaskId, ended: bool) {
        if let Some(previous) = self.submitter.insert(id, client) {
            if previous != client {
                self.unlist(previous, id);
            }
        }
        let evicted = self.evicted.contains(&id);
        self.changed.insert(client);
        let holds = self.by_client.entry(client).or_default();
        if holds.all.insert(id) && evicted {
            holds.evicted += 1;
        }
        if ended {
            holds.ended.insert(id);
        }
    }

    /// How many more tasks `client` may submit before it reads some: the
    /// cap less the ended tasks held for it alone.
    pub fn room(&self, client: ClientId) -> usize {
        let held = self.by_client.get(&client).map_or(0, |h| h.evicted);
        MAX_UNREAD_RESULTS.saturating_sub(held)
    }

    /// How many of `client`'s tasks are unread.
    pub fn outstanding(&self, client: ClientId) -> usize {
        self.by_client.get(&client).map_or(0, |h| h.all.len())
    }

    /// Task `id` has ended: its holder's `results` may hand it out.
    pub fn on_ended(&mut self, id: TaskId) {
        if let Some(client) = self.submitter.get(&id) {
            if let Some(holds) = self.by_client.get_mut(client) {
                holds.ended.insert(id);
                self.changed.insert(*client);
            }
        }
    }

    /// The pool let task `id` go: true if it is held (keep it for now),
    /// false if it may be dropped.
    pub fn on_evicted(&mut self, id: TaskId) -> bool {
        let Some(client) = self.submitter.get(&id) else {
            return false;
        };
        if self.evicted.insert(id) {
            if let Some(holds) = self.by_client.get_mut(client) {
                holds.evicted += 1;
            }
        }
        true
    }

    /// `client` read task `id`'s output: if it holds the task, the task is
    /// no longer held; true if it is to be dropped now (its pool let go of
    /// it already).
    pub fn release(&mut self, client: ClientId, id: TaskId) -> bool {
        if self.submitter.get(&id) != Some(&client) {
            return false;
        }
        self.submitter.remove(&id);
        self.unlist(client, id);
        self.evicted.remove(&id)
    }

    fn unlist(&mut self, client: ClientId, id: TaskId) {
        if let Some(holds) = self.by_client.get_mut(&client) {
            self.changed.insert(client);
            if holds.all.remove(&id) && self.evicted.contains(&id) {
                holds.evicted -= 1;
            }
            holds.ended.remove(&id);
            if holds.all.is_empty() {
                self.by_client.remove(&client);
            }
        }
    }

    /// The ended tasks `client` has not read, lowest id first.
    pub fn ended(&self, client: ClientId) -> impl Iterator<Item = TaskId> + '_ {
        self.by_client
            .get(&client)
            .into_iter()
            .flat_map(|holds| holds.ended.iter().copied())
    }

    /// The client disconnected: its held tasks the pool let go of, to drop.
    pub fn client_gone(&mut self, client: ClientId) -> Vec<TaskId> {
        self.take_waiter(client);
        let ids = self.by_client.remove(&client).unwrap_or_default().all;
        let dropped = ids
            .into_iter()
            .filter(|id| {
                self.submitter.remove(id);
                self.evicted.remove(id)
            })
            .collect();
        // A hash map keeps the room it once needed: after a client that
        // submitted 100,000 tasks, megabytes of it.
        if self.submitter.len() < self.submitter.capacity() / 4 {
            self.submitter.shrink_to_fit();
        }
        if self.by_client.len() < self.by_client.capacity() / 4 {
            self.by_client.shrink_to_fit();
        }
        dropped
    }

    pub fn wait(&mut self, client: ClientId, waiter: ResultsWaiter) -> Option<ResultsWaiter> {
        let earlier = self.take_waiter(client);
        self.index(client, &waiter);
        self.waiting.insert(client, waiter);
        self.changed.insert(client);
        earlier
    }

    fn index(&mut self, client: ClientId, waiter: &ResultsWaiter) {
        for at in waiter.deadline.into_iter().chain(waiter.lingering_until) {
            self.deadlines.insert((at, client));
        }
    }

    /// Takes `client`'s waiting request out, and out of the index.
    fn take_waiter(&mut self, client: ClientId) -> Option<ResultsWaiter> {
        let waiter = self.waiting.remove(&client)?;
        for at in waiter.deadline.into_iter().chain(waiter.lingering_until) {
            self.deadlines.remove(&(at, client));
        }
        Some(waiter)
    }

    /// The waiting `results` requests that are due at `now`: their client
    /// has an ended task (and has lingered, unless all have ended), or
    /// nothing outstanding, or the deadline passed. Taken out; each with
    /// whether it timed out.
    /// Looks only at the requests of clients whose holds changed and at
    /// those whose deadline or lingering came.
    pub fn due(&mut self, now: Instant) -> Vec<(ClientId, ResultsWaiter, bool)> {
        let mut candidates = std::mem::take(&mut self.changed);
        let came = self.deadlines.iter().take_while(|(at, _)| *at <= now);
        candidates.extend(came.map(|(_, client)| *client));
        let mut due = Vec::new();
        for client in candidates {
            let Some(waiter) = self.waiting.get_mut(&client) else {
                continue;
            };
            let lingering = waiter.lingering_until;
            match is_due(self.by_client.get(&client), waiter, now) {
                Some(timed_out) => due.push((client, timed_out)),
                None => {
                    if let Some(at) = waiter.lingering_until.filter(|_| lingering.is_none()) {
                        self.deadlines.insert((at, client));
                    }
                }
            }
        }
        due.into_iter()
            .filter_map(|(client, timed_out)| {
                let waiter = self.take_waiter(client)?;
                Some((client, waiter, timed_out))
            })
            .collect()
    }

    /// What [`Held::due`] must give, found by a walk of every waiting
    /// request (tests).
    #[cfg(test)]
    pub fn due_by_walk(&mut self, now: Instant) -> Vec<(ClientId, RequestId, bool)> {
        let by_client = &self.by_client;
        let due: Vec<(ClientId, bool)> = self
            .waiting
            .iter_mut()
            .filter_map(|(client, waiter)| {
                Some((*client, is_due(by_client.get(client), waiter, now)?))
            })
            .collect();
        due.into_iter()
            .filter_map(|(client, timed_out)| {
                let waiter = self.waiting.remove(&client)?;
                Some((client, waiter.request, timed_out))
            })
            .collect()
    }

    /// The earliest deadline (or end of lingering) of a waiting `results`,
    /// or the moment carried-over holds are let go.
    pub fn next_deadline(&self) -> Option<Instant> {
        let first = self.deadlines.first().map(|(at, _)| *at);
        first.into_iter().chain(self.carried_until).min()
    }

    /// How many `results` requests wait (tests).
    #[cfg(test)]
    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    /// What [`Held::next_deadline`] must say, by a walk (tests).
    #[cfg(test)]
    pub fn next_deadline_by_walk(&self) -> Option<Instant> {
        self.waiting
            .values()
            .flat_map(|w| w.deadline.into_iter().chain(w.lingering_until))
            .chain(self.carried_until)
            .min()
    }

    /// Every waiting `results` request (herdd re-executes).
    pub fn drain_waiting(&mut self) -> Vec<RequestId> {
        self.deadlines.clear();
        std::mem::take(&mut self.waiting)
            .into_values()
            .map(|w| w.request)
            .collect()
    }

    /// The held tasks, for a snapshot: they are carried over without their
    /// connections.
    pub fn snapshot(&self) -> Vec<TaskId> {
        let mut ids: Vec<TaskId> = self.submitter.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Holds carried over from a snapshot: `(id, ended, evicted)` of each.
    /// They wait [`CARRIED_FOR`] from `now` for a client to collect them.
    pub fn carry(&mut self, now: Instant, ids: impl IntoIterator<Item = (TaskId, bool, bool)>) {
        for (id, ended, evicted) in ids {
            if evicted {
                self.evicted.insert(id);
            }
            self.hold(CARRIED, id, ended);
        }
        if self.by_client.contains_key(&CARRIED) {
            self.carried_until = Some(now + CARRIED_FOR);
        }
    }

    /// Lets the carried-over holds go once nobody collected them in time:
    /// the tasks to drop (their pool let go of them).
    pub fn expire_carried(&mut self, now: Instant) -> Vec<TaskId> {
        match self.carried_until {
            Some(until) if until <= now => {
                self.carried_until = None;
                self.client_gone(CARRIED)
            }
            Some(_) | None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_tasks_are_handed_to_their_holder_in_id_order_and_counted() {
        let mut held = Held::default();
        for id in [3, 1, 2] {
            held.hold(7, id, false);
        }
        assert_eq!(held.outstanding(7), 3);
        assert_eq!(held.room(7), MAX_UNREAD_RESULTS, "the pool keeps them all");
        held.on_ended(2);
        held.on_ended(1);
        assert_eq!(held.ended(7).collect::<Vec<_>>(), [1, 2]);
        assert!(!held.release(8, 1), "only the holder reads it for good");
        assert!(!held.release(7, 1), "not evicted: nothing to drop");
        assert!(held.on_evicted(2));
        assert_eq!(held.room(7), MAX_UNREAD_RESULTS - 1, "held for 7 alone");
        assert!(held.release(7, 2), "evicted while held: dropped now");
        assert_eq!(held.room(7), MAX_UNREAD_RESULTS);
        assert_eq!(held.outstanding(7), 1);
        assert_eq!(held.ended(7).count(), 0);
    }

    #[test]
    fn collecting_moves_a_hold_to_the_collector() {
        let mut held = Held::default();
        held.hold(1, 5, true);
        held.hold(2, 5, true);
        assert_eq!(held.outstanding(1), 0);
        assert_eq!(held.ended(2).collect::<Vec<_>>(), [5]);
        assert!(held.client_gone(1).is_empty());
        assert_eq!(held.outstanding(2), 1);
    }

    #[test]
    fn a_waiting_results_is_due_when_a_task_ends_or_nothing_is_left_or_late() {
        let now = Instant::now();
        let mut held = Held::default();
        held.hold(1, 10, false);
        let waiter = |request, deadline| ResultsWaiter {
            request,
            deadline,
            linger: None,
            lingering_until: None,
        };
        held.wait(1, waiter(100, Some(now + Duration::from_secs(1))));
        held.wait(2, waiter(200, None));
        let due = held.due(now);
        assert_eq!(due.len(), 1, "client 2 has nothing outstanding");
        assert_eq!((due[0].0, due[0].1.request, due[0].2), (2, 200, false));
        assert!(held.due(now).is_empty());
        assert_eq!(held.next_deadline(), Some(now + Duration::from_secs(1)));
        held.on_ended(10);
        let due = held.due(now);
        assert_eq!((due[0].0, due[0].2), (1, false));
        held.wait(1, waiter(101, Some(now)));
        held.release(1, 10);
        held.hold(1, 11, false);
        let due = held.due(now);
        assert_eq!((due[0].1.request, due[0].2), (101, true), "timed out");
    }

    #[test]
    fn a_lingering_results_waits_for_more_unless_all_have_ended() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let mut held = Held::default();
        for id in 1..=3 {
            held.hold(1, id, false);
        }
        let waiter = ResultsWaiter {
            request: 100,
            deadline: Some(now + ms(200)),
            linger: Some(ms(5)),
            lingering_until: None,
        };
        held.wait(1, waiter);
        held.on_ended(1);
        assert!(held.due(now).is_empty(), "lingers for more");
        assert_eq!(held.next_deadline(), Some(now + ms(5)));
        held.on_ended(2);
        assert!(held.due(now + ms(4)).is_empty());
        let due = held.due(now + ms(5));
        assert_eq!((due[0].1.request, due[0].2), (100, false));
        held.release(1, 1);
        held.release(1, 2);
        held.wait(1, waiter);
        held.on_ended(3);
        assert_eq!(held.due(now).len(), 1, "all have ended: no lingering");
    }

    #[test]
    fn carried_holds_wait_for_a_collector_then_go() {
        let now = Instant::now();
        let mut held = Held::default();
        held.carry(now, [(4, true, true), (5, false, false)]);
        assert_eq!(
            held.next_deadline(),
            Some(now + CARRIED_FOR),
            "herdd wakes for it"
        );
        assert!(held.expire_carried(now).is_empty());
        held.hold(3, 5, false);
        let later = now + CARRIED_FOR;
        assert_eq!(held.expire_carried(later), [4], "evicted: dropped");
        assert_eq!(held.next_deadline(), None);
        assert_eq!(held.outstanding(3), 1, "collected before: still held");
        assert_eq!(held.snapshot(), [5]);
    }

    #[test]
    fn a_client_that_held_many_leaves_no_room_behind() {
        let mut held = Held::default();
        for id in 1..=10_000 {
            held.hold(1, id, true);
        }
        held.hold(2, 20_000, false);
        assert!(held.submitter.capacity() >= 10_000);
        assert!(held.client_gone(1).is_empty());
        assert!(
            held.submitter.capacity() < 100,
            "room for {}",
            held.submitter.capacity()
        );
        assert_eq!(held.outstanding(2), 1, "the other client's hold stays");
    }

    /// Random holds, ends, reads, evictions, disconnects, `results`
    /// requests and time passing: after each, the requests the index finds
    /// due, and the next deadline, are what a walk of every request finds.
    #[test]
    fn the_index_finds_what_a_walk_of_every_waiting_request_finds() {
        let ms = Duration::from_millis;
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        let mut now = Instant::now();
        let mut indexed = Held::default();
        let mut walked = Held::default();
        let (mut due, mut waited) = (0, 0);
        for request in 0..30_000 {
            let client = next(6) + 1;
            let id = next(40);
            match next(9) {
                0 | 1 => {
                    let ended = next(4) == 0;
                    indexed.hold(client, id, ended);
                    walked.hold(client, id, ended);
                }
                2 => {
                    indexed.on_ended(id);
                    walked.on_ended(id);
                }
                3 => {
                    assert_eq!(indexed.release(client, id), walked.release(client, id));
                }
                4 => {
                    assert_eq!(indexed.on_evicted(id), walked.on_evicted(id));
                }
                5 if next(5) == 0 => {
                    assert_eq!(indexed.client_gone(client), walked.client_gone(client));
                }
                6 | 7 => {
                    let waiter = ResultsWaiter {
                        request,
                        deadline: [None, Some(now), Some(now + ms(20)), Some(now + ms(300))]
                            [next(4) as usize],
                        linger: [None, Some(ms(0)), Some(ms(15))][next(3) as usize],
                        lingering_until: None,
                    };
                    let earlier = indexed.wait(client, waiter).map(|w| w.request);
                    assert_eq!(earlier, walked.wait(client, waiter).map(|w| w.request));
                }
                _ => now += ms(next(25)),
            }
            waited += usize::from(!indexed.waiting.is_empty());
            let found: Vec<_> = indexed
                .due(now)
                .into_iter()
                .map(|(c, w, t)| (c, w.request, t))
                .collect();
            assert_eq!(found, walked.due_by_walk(now), "after request {request}");
            due += found.len();
            assert_eq!(indexed.next_deadline(), walked.next_deadline_by_walk());
        }
        assert!(due > 1000 && waited > 10_000, "{due} due, {waited} waited");
    }
}
