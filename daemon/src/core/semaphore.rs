//! Counting semaphores owned by herdd: holders, FIFO waiters, all-or-nothing
//! acquisition of several at once.
//!
//! A slot belongs to a [`Holder`]; every path by which a holder ends (its
//! process exits, its spawn fails, it is cancelled, its client disconnects)
//! calls [`Semaphores::release`], which drops every slot and queue place it
//! had. The property tests check that no slot outlives its holder.

use super::lifecycle::Lifecycle;
use super::snapshot::{HolderSnapshot, SemaphoreSnapshot};
use super::{Action, InstanceId};
use herd_common::protocol::{Request, SemaphoreStatus, TaskId, WaitTally};
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

/// `sem-acquire` names the holder's process by the pid the kernel reports
/// for the connection (`SO_PEERCRED`), never by what the client says: the
/// slot outlives a restart of herdd for as long as that process lives, so a
/// client must not tie it to another process.
pub fn vouch_pid(request: Request, peer_pid: Option<i32>) -> Request {
    match request {
        Request::SemAcquire {
            name, timeout_ms, ..
        } => Request::SemAcquire {
            name,
            timeout_ms,
            pid: peer_pid.and_then(|pid| u32::try_from(pid).ok()),
        },
        other => other,
    }
}

/// A client connection, as numbered by the shell.
pub type ClientId = u64;

/// Who holds (or waits for) a slot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Holder {
    Instance(InstanceId),
    Task(TaskId),
    /// `herdctl sem acquire`: held while its connection is open; `pid` is the
    /// client process's, as the kernel reports it for the connection.
    Client {
        client: ClientId,
        pid: Option<u32>,
    },
    /// A client's slot carried over a re-exec or a crash of herdd, when its
    /// connection was gone: held until that process ends (the shell watches
    /// it), or taken back by a new connection of the same process.
    Process {
        pid: u32,
    },
}

impl Holder {
    fn same(&self, other: &Holder) -> bool {
        match (self, other) {
            (Holder::Client { client: a, .. }, Holder::Client { client: b, .. }) => a == b,
            _ => self == other,
        }
    }
}

/// A place in a semaphore's line.
#[derive(Debug, Clone)]
struct Waiting {
    holder: Holder,
    /// When it joined the line: its wait is measured from here.
    since: Instant,
}

#[derive(Debug, Clone)]
struct Semaphore {
    capacity: u32,
    holders: Vec<Holder>,
    waiters: VecDeque<Waiting>,
    /// How long granted slots were waited for.
    waits: WaitTally,
}

impl Semaphore {
    fn new(capacity: u32) -> Semaphore {
        Semaphore {
            capacity,
            holders: Vec::new(),
            waiters: VecDeque::new(),
            waits: WaitTally::default(),
        }
    }

    fn holds(&self, holder: &Holder) -> bool {
        self.holders.iter().any(|h| h.same(holder))
    }

    /// Room for `holder` now: a free slot, and nobody queued ahead of it.
    fn admits(&self, holder: &Holder) -> bool {
        (self.holders.len() as u32) < self.capacity
            && self
                .waiters
                .front()
                .is_none_or(|first| first.holder.same(holder))
    }

    /// Drops `holder`'s place in line, if it has one.
    fn leave_line(&mut self, holder: &Holder) {
        self.waiters.retain(|w| !w.holder.same(holder));
    }

    /// Whether `holder` holds a slot or waits in line for one.
    fn involves(&self, holder: &Holder) -> bool {
        self.holders.iter().any(|h| h.same(holder))
            || self.waiters.iter().any(|w| w.holder.same(holder))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Semaphores {
    by_name: BTreeMap<String, Semaphore>,
    /// Counts grants, so the core can tell whether a step made progress.
    pub grants: u64,
}

impl Semaphores {
    pub fn new(declared: impl IntoIterator<Item = (String, u32)>) -> Self {
        Semaphores {
            by_name: declared
                .into_iter()
                .map(|(name, capacity)| (name, Semaphore::new(capacity)))
                .collect(),
            grants: 0,
        }
    }

    /// `reload`: new semaphores appear, capacities change (holders beyond a
    /// lowered capacity keep their slots until they exit), removed ones go.
    pub fn reconfigure(&mut self, declared: impl IntoIterator<Item = (String, u32)>) {
        let declared: BTreeMap<String, u32> = declared.into_iter().collect();
        self.by_name.retain(|name, _| declared.contains_key(name));
        for (name, capacity) in declared {
            self.by_name
                .entry(name)
                .and_modify(|s| s.capacity = capacity)
                .or_insert_with(|| Semaphore::new(capacity));
        }
    }

    pub fn exists(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    pub fn holds(&self, holder: &Holder, name: &str) -> bool {
        self.by_name.get(name).is_some_and(|s| s.holds(holder))
    }

    /// Grants `holder` one slot of every semaphore in `names`, all or none.
    /// When it cannot, `holder` keeps (or takes) its place in each queue and
    /// the reason is returned, e.g. `waiting for semaphore db (2/2 held)`.
    /// Each grant counts its wait (from `now`) in the semaphore's tally.
    pub fn try_acquire(
        &mut self,
        now: Instant,
        holder: &Holder,
        names: &[String],
        label: &str,
        out: &mut Vec<Action>,
    ) -> Result<(), String> {
        let wanted: Vec<&String> = names
            .iter()
            .filter(|name| self.by_name.get(*name).is_some_and(|s| !s.holds(holder)))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let blocked = wanted
            .iter()
            .find(|name| !self.by_name[**name].admits(holder));
        if let Some(name) = blocked {
            let semaphore = &self.by_name[*name];
            let reason = format!(
                "waiting for semaphore {name} ({}/{} held)",
                semaphore.holders.len(),
                semaphore.capacity
            );
            for name in &wanted {
                let queue = &mut self.by_name.get_mut(*name).expect("filtered above").waiters;
                if !queue.iter().any(|w| w.holder.same(holder)) {
                    queue.push_back(Waiting {
                        holder: holder.clone(),
                        since: now,
                    });
                }
            }
            return Err(reason);
        }
        for name in wanted {
            let semaphore = self.by_name.get_mut(name).expect("filtered above");
            let since = semaphore
                .waiters
                .iter()
                .find(|w| w.holder.same(holder))
                .map_or(now, |w| w.since);
            semaphore.waits.record(now.saturating_duration_since(since));
            semaphore.leave_line(holder);
            semaphore.holders.push(holder.clone());
            self.grants += 1;
            out.push(Action::Publish(Lifecycle::SemaphoreAcquired {
                semaphore: name.clone(),
                holder: label.to_string(),
            }));
        }
        Ok(())
    }

    /// Gives up every slot and queue place of `holder`.
    /// Whether `holder` holds or waits for a slot of any semaphore.
    pub fn involve(&self, holder: &Holder) -> bool {
        self.by_name.values().any(|s| s.involves(holder))
    }

    pub fn release(&mut self, holder: &Holder, label: &str, out: &mut Vec<Action>) {
        for (name, semaphore) in &mut self.by_name {
            semaphore.leave_line(holder);
            let before = semaphore.holders.len();
            semaphore.holders.retain(|h| !h.same(holder));
            if semaphore.holders.len() != before {
                out.push(Action::Publish(Lifecycle::SemaphoreReleased {
                    semaphore: name.clone(),
                    holder: label.to_string(),
                }));
            }
        }
    }

    /// Gives up one semaphore's slot (and queue place) of `holder`; whether it held one.
    pub fn release_one(
        &mut self,
        holder: &Holder,
        name: &str,
        label: &str,
        out: &mut Vec<Action>,
    ) -> bool {
        let Some(semaphore) = self.by_name.get_mut(name) else {
            return false;
        };
        semaphore.leave_line(holder);
        let held = semaphore.holds(holder);
        semaphore.holders.retain(|h| !h.same(holder));
        if held {
            out.push(Action::Publish(Lifecycle::SemaphoreReleased {
                semaphore: name.to_string(),
                holder: label.to_string(),
            }));
        }
        held
    }

    /// A connection of process `pid` asks for `name`: if `pid` holds a slot
    /// carried over a re-exec or crash, the connection takes it over.
    /// Returns whether it did.
    pub fn reclaim(&mut self, name: &str, pid: u32, holder: &Holder) -> bool {
        let Some(semaphore) = self.by_name.get_mut(name) else {
            return false;
        };
        let carried = Holder::Process { pid };
        match semaphore.holders.iter_mut().find(|h| **h == carried) {
            Some(slot) => {
                *slot = holder.clone();
                true
            }
            None => false,
        }
    }

    /// Pids holding slots carried over a re-exec or crash.
    pub fn carried_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .by_name
            .values()
            .flat_map(|s| &s.holders)
            .filter_map(|h| match h {
                Holder::Process { pid } => Some(*pid),
                Holder::Instance(_) | Holder::Task(_) | Holder::Client { .. } => None,
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Leaves every queue without touching held slots (a waiter that gave up).
    pub fn withdraw(&mut self, holder: &Holder) {
        for semaphore in self.by_name.values_mut() {
            semaphore.leave_line(holder);
        }
    }

    /// `sem list`, with holders and waiters named by `label`.
    pub fn status(&self, label: impl Fn(&Holder) -> String) -> Vec<SemaphoreStatus> {
        self.by_name
            .iter()
            .map(|(name, s)| SemaphoreStatus {
                name: name.clone(),
                capacity: s.capacity,
                holders: s.holders.iter().map(&label).collect(),
                waiters: s.waiters.iter().map(|w| label(&w.holder)).collect(),
                waits: s.waits.clone(),
            })
            .collect()
    }

    /// For invariant checks: every semaphore's number of holders.
    pub fn held(&self) -> impl Iterator<Item = (&str, usize, u32)> {
        self.by_name
            .iter()
            .map(|(name, s)| (name.as_str(), s.holders.len(), s.capacity))
    }
}

impl Semaphores {
    /// Holders and waiters. A client's slot is kept as its process's (the
    /// connection ends with herdd, the process may not); a waiting client's
    /// place is not (its request ends with the connection).
    pub fn snapshot(&self) -> Vec<SemaphoreSnapshot> {
        self.by_name
            .iter()
            .map(|(name, s)| SemaphoreSnapshot {
                name: name.clone(),
                holders: s
                    .holders
                    .iter()
                    .filter_map(HolderSnapshot::from_holder)
                    .collect(),
                waiters: s
                    .waiters
                    .iter()
                    .map(|w| &w.holder)
                    .filter(|w| !matches!(w, Holder::Client { .. } | Holder::Process { .. }))
                    .filter_map(HolderSnapshot::from_holder)
                    .collect(),
            })
            .collect()
    }

    /// Puts back holders and waiters of semaphores that still exist; the
    /// waiters' waits count from `now` (the snapshot has no times).
    pub fn restore(&mut self, snapshots: &[SemaphoreSnapshot], now: Instant) {
        for snapshot in snapshots {
            if let Some(semaphore) = self.by_name.get_mut(&snapshot.name) {
                semaphore.holders = snapshot
                    .holders
                    .iter()
                    .map(HolderSnapshot::to_holder)
                    .collect();
                semaphore.waiters = snapshot
                    .waiters
                    .iter()
                    .map(|waiter| Waiting {
                        holder: HolderSnapshot::to_holder(waiter),
                        since: now,
                    })
                    .collect();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_grant_counts_its_wait_from_joining_the_line() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut semaphores = Semaphores::new([("db".to_string(), 1)]);
        let names = ["db".to_string()];
        let (a, b) = (Holder::Task(1), Holder::Task(2));
        let out = &mut Vec::new();
        assert!(semaphores.try_acquire(at(0), &a, &names, "a", out).is_ok());
        assert!(semaphores
            .try_acquire(at(10), &b, &names, "b", out)
            .is_err());
        // Asking again keeps its place and its start in line.
        assert!(semaphores
            .try_acquire(at(200), &b, &names, "b", out)
            .is_err());
        semaphores.release(&a, "a", out);
        assert!(semaphores
            .try_acquire(at(710), &b, &names, "b", out)
            .is_ok());
        let waits = &semaphores.status(|_| String::new())[0].waits;
        assert_eq!(waits.count(), 2);
        assert_eq!(waits.sum_us, 700_000, "0 for a, 700 ms for b");
        assert_eq!(waits.counts[0], 1, "a got it at once");
        let bucket = |seconds: f64| {
            herd_common::protocol::SEMAPHORE_WAIT_BUCKETS
                .iter()
                .position(|bound| *bound == seconds)
                .unwrap()
        };
        assert_eq!(waits.counts[bucket(1.0)], 1, "b: within (0.5, 1]");
    }
}
