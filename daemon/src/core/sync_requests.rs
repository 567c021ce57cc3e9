//! Semaphore and event verbs, client disconnects, and `sets_event`.

use super::semaphore::{ClientId, Holder};
use super::{error, Action, Goal, RequestId, Supervisor, Waiter};
use herd_common::names::instance_name;
use herd_common::protocol::{
    AcquireReport, ErrorCode, EventChange, EventReport, Reply, SemaphoreReport,
};
use herd_config::UnitKind;
use std::time::{Duration, Instant};

impl Supervisor {
    pub(super) fn sem_list(&self) -> Reply {
        Reply::ok(SemaphoreReport {
            semaphores: self.semaphores.status(|holder| self.holder_label(holder)),
        })
    }

    pub(super) fn sem_acquire(
        &mut self,
        now: Instant,
        (request, client): (RequestId, ClientId),
        name: String,
        timeout_ms: Option<u64>,
        pid: Option<u32>,
    ) -> Option<Reply> {
        if !self.semaphores.exists(&name) {
            return Some(Reply::Error(error(
                ErrorCode::NoSuchSemaphore,
                format!("no such semaphore: {name}"),
            )));
        }
        let holder = Holder::Client { client, pid };
        if self.semaphores.holds(&holder, &name) {
            return Some(Reply::error(
                ErrorCode::BadRequest,
                format!("this connection already holds a slot of {name}"),
            ));
        }
        // The same process again after a re-exec or crash of herdd (its old
        // connection is gone): its slot was kept for it.
        if pid.is_some_and(|pid| self.semaphores.reclaim(&name, pid, &holder)) {
            return Some(Reply::ok(AcquireReport {
                name,
                acquired: true,
            }));
        }
        // Granted (perhaps at once) when settling, in FIFO order with everyone else.
        self.waiters.push(Waiter {
            id: request,
            client,
            goal: Goal::SemAcquired { holder, name },
            deadline: timeout_ms.map(|ms| now + Duration::from_millis(ms)),
        });
        None
    }

    pub(super) fn sem_release(
        &mut self,
        client: ClientId,
        name: &str,
        out: &mut Vec<Action>,
    ) -> Reply {
        let holder = Holder::Client { client, pid: None };
        let label = self.holder_label(&holder);
        if self.semaphores.release_one(&holder, name, &label, out) {
            Reply::ok(AcquireReport {
                name: name.to_string(),
                acquired: false,
            })
        } else {
            Reply::error(
                ErrorCode::BadRequest,
                format!("this connection holds no slot of {name}"),
            )
        }
    }

    pub(super) fn event_list(&self) -> Reply {
        Reply::ok(EventReport {
            events: self.events.list(),
        })
    }

    pub(super) fn event_change(&mut self, name: &str, set: bool, out: &mut Vec<Action>) -> Reply {
        if !herd_common::names::is_valid_unit_name(name) {
            return Reply::error(
                ErrorCode::BadRequest,
                format!("invalid event name {name:?}"),
            );
        }
        self.events.change(name, set, out);
        Reply::ok(EventChange {
            event: self.events.status(name),
            timed_out: false,
        })
    }

    pub(super) fn event_wait(
        &mut self,
        now: Instant,
        (request, client): (RequestId, ClientId),
        name: String,
        timeout_ms: Option<u64>,
    ) -> Option<Reply> {
        // No one could ever set it: the wait would never end.
        if !herd_common::names::is_valid_unit_name(&name) {
            return Some(Reply::error(
                ErrorCode::BadRequest,
                format!("invalid event name {name:?}"),
            ));
        }
        self.waiters.push(Waiter {
            id: request,
            client,
            goal: Goal::EventSet(name),
            deadline: timeout_ms.map(|ms| now + Duration::from_millis(ms)),
        });
        None
    }

    /// A connection closed: whatever it held or waited for goes.
    pub(super) fn client_gone(&mut self, client: ClientId, out: &mut Vec<Action>) {
        let holder = Holder::Client { client, pid: None };
        let label = self.holder_label(&holder);
        self.semaphores.release(&holder, &label, out);
        self.waiters.client_gone(client);
    }

    /// A process that is not ours ended: any slot carried over for it goes.
    pub(super) fn process_gone(&mut self, pid: u32, out: &mut Vec<Action>) {
        let holder = Holder::Process { pid };
        let label = self.holder_label(&holder);
        self.semaphores.release(&holder, &label, out);
    }

    /// A service with `sets_event` sets it when all its instances are ready
    /// and clears it when that stops being so (stop, crash, failure). Only
    /// changes are applied, so a user's own `event set/clear` is not undone.
    pub(super) fn follow_sets_event(&mut self, out: &mut Vec<Action>) {
        for name in self.units.setting_events() {
            let Some(unit) = self.units.get(&name) else {
                continue;
            };
            let Some(event) = unit.config.sets_event.clone() else {
                continue;
            };
            let ready = unit.config.kind == UnitKind::Service
                && self.units.as_dependency(&name) == Some(super::unit::AsDependency::Satisfied);
            if ready != unit.sets_event_ready {
                self.units.set_sets_event_ready(&name, ready);
                self.events.change(&event, ready, out);
            }
        }
    }

    /// How a holder appears in `sem list` and in the event stream.
    pub(super) fn holder_label(&self, holder: &Holder) -> String {
        match holder {
            Holder::Instance(id) => {
                let is_pool = self.units.get(&id.unit).is_some_and(|u| u.is_pool);
                instance_name(&id.unit, id.index, is_pool)
            }
            Holder::Task(id) => match self.tasks.get(id) {
                Some(task) => task.label(),
                None => format!("task {id}"),
            },
            Holder::Client { client, pid } => match pid {
                Some(pid) => format!("client {client} (pid {pid})"),
                None => format!("client {client}"),
            },
            Holder::Process { pid } => format!("pid {pid} (kept over a restart of herdd)"),
        }
    }
}
