//! The supervisor core: a pure, synchronous state machine.
//!
//! [`Supervisor::handle`] takes the current time and one [`Input`] and returns
//! the [`Action`]s the shell must carry out. No syscalls, no sockets, no clock
//! reads happen here, so every behaviour is testable without processes or sleeps.
//! Timers are not armed: the shell asks [`Supervisor::next_deadline`] and feeds
//! [`Input::Tick`] when it passes. Inputs and the results of actions go in
//! through one driver, [`Cascade`] (or [`Supervisor::drive`]), in herdd and in
//! the tests alike.

pub mod action;
pub mod backoff;
mod drive;
pub mod event;
pub mod health;
mod held;
pub mod hooks;
pub mod input;
pub mod instance;
pub mod lifecycle;
pub mod pool;
mod pool_requests;
mod reload;
mod requests;
pub mod retry;
mod rolling;
pub mod semaphore;
pub mod snapshot;
pub mod survivors;
mod sync_requests;
pub mod task;
pub mod task_log;
mod task_names;
mod tasks;
pub mod timer;
mod timer_index;
mod timer_runs;
pub mod unit;
mod units;
mod waiters;
pub mod watchdog;

#[cfg(test)]
mod tests;

pub use action::{Action, LogTarget, Output, SpawnSpec};
pub use drive::Cascade;
pub use input::{Input, RequestId};
pub use lifecycle::Lifecycle;

use event::Events;
use herd_common::protocol::{
    ErrorBody, ErrorCode, InstanceStatus, PoolStatus, Reply, StatusReport, TaskId,
    UnitKind as KindView, UnitStatus,
};
use herd_common::state::State;
use herd_config::{Config, UnitKind};
use instance::{Ctx, Deps, Fate, Instance};
use pool::Pool;
use semaphore::{ClientId, Holder, Semaphores};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use task::Task;
use unit::{AsDependency, Unit};
use waiters::Waiters;

/// Names one instance: its unit and its index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId {
    pub unit: String,
    pub index: u32,
}

/// Who a spawned process belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    Instance(InstanceId),
    Task(TaskId),
    /// The `on_failure` hook of an instance or pool.
    Hook(hooks::HookSubject),
}

/// What a waiting request waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Goal {
    /// `start`/`restart`: the instances are running, exited, failed or blocked.
    Started(Vec<InstanceId>),
    /// `stop`: the instances have no process left.
    Stopped(Vec<InstanceId>),
    /// `join`: the tasks have ended.
    TasksEnded(Vec<TaskId>),
    /// `pool join`: nothing queued or running in the pool.
    PoolDrained(String),
    /// `sem acquire`: the client got its slot (acquired while settling).
    SemAcquired { holder: Holder, name: String },
    /// `event wait`: the event is set.
    EventSet(String),
}

/// A request whose reply waits until its goal is reached (or its deadline passes).
#[derive(Debug)]
struct Waiter {
    id: RequestId,
    /// The connection that asked; its waits end when it closes.
    client: ClientId,
    goal: Goal,
    /// `join --timeout`: reply anyway, saying it timed out.
    deadline: Option<Instant>,
}

/// Shutdown in progress.
#[derive(Debug)]
struct Shutdown {
    /// When joined (`daemon = false`) processes stop being waited for and are terminated.
    join_deadline: Instant,
    joined_terminated: bool,
}

pub struct Supervisor {
    /// Every unit and its instances, with their deadlines indexed.
    units: units::Units,
    pools: BTreeMap<String, Pool>,
    /// Every task herd still knows: queued, running, and the kept finished
    /// ones, with the live ones' deadlines indexed.
    tasks: tasks::Tasks,
    /// The id the next submitted task gets; ids below it existed once.
    next_task: TaskId,
    /// Finished tasks past their pool's `keep_finished`, dropped at the end of
    /// the step (after waiters have seen them).
    evicted: Vec<TaskId>,
    /// Ended tasks kept for the client that submitted them (see `held.rs`).
    held: held::Held,
    /// Every live process herd spawned, to map `waitpid` results to owners.
    pids: HashMap<u32, Owner>,
    semaphores: Semaphores,
    events: Events,
    /// Units carried over from a snapshot: boot leaves them as they were.
    restored: std::collections::HashSet<String>,
    /// Counts the inputs that changed state, so the shell knows when to
    /// write the journal.
    generation: u64,
    waiters: Waiters,
    shutdown: Option<Shutdown>,
    shutdown_timeout: Duration,
    /// The `[herd]` settings in effect, for `reload` to tell what changed.
    herd: herd_config::HerdSettings,
    /// Instances whose output cannot be written to their log file, and why
    /// (reported by the shell; shown in `status`).
    log_errors: HashMap<InstanceId, String>,
    /// `[socket.NAME]` in effect (the shell holds the sockets themselves).
    sockets: Vec<herd_config::SocketConfig>,
    /// Rolling restarts under way.
    rollouts: Vec<rolling::Rollout>,
    /// How rollouts ended whose requester a `daemon-reexec` sent away and
    /// that has not asked again yet: unit -> error (`None`: done).
    rollout_results: BTreeMap<String, Option<String>>,
    /// `on_failure` hooks running or waiting to run.
    hooks: hooks::Hooks,
    /// The timers of tasks with `schedule` or `every`, by unit name.
    timers: timer_index::Timers,
    /// What the wall clock says and the local time zone (inputs from the shell).
    clock: timer::WallClock,
    /// The live tasks by pool and name (`submit --unique`).
    task_names: task_names::TaskNames,
}

impl Supervisor {
    pub fn new(config: &Config) -> Self {
        Supervisor {
            units: units::Units::new(config.units.iter().map(|unit| Unit::new(unit.clone()))),
            pools: config
                .pools
                .iter()
                .map(|pool| (pool.name.clone(), Pool::new(pool.clone())))
                .collect(),
            tasks: tasks::Tasks::default(),
            next_task: 1,
            evicted: Vec::new(),
            held: held::Held::default(),
            pids: HashMap::new(),
            semaphores: Semaphores::new(
                config
                    .semaphores
                    .iter()
                    .map(|s| (s.name.clone(), s.capacity)),
            ),
            events: Events::new(config.events.iter().map(|e| (e.name.clone(), e.set))),
            restored: std::collections::HashSet::new(),
            generation: 0,
            waiters: Waiters::default(),
            shutdown: None,
            shutdown_timeout: config.herd.shutdown_timeout,
            herd: config.herd.clone(),
            log_errors: HashMap::new(),
            sockets: config.sockets.clone(),
            rollouts: Vec::new(),
            rollout_results: BTreeMap::new(),
            hooks: hooks::Hooks::default(),
            timers: config
                .units
                .iter()
                .filter_map(|unit| {
                    let timer = timer::Timer::new(unit.timer.clone()?, unit.autostart);
                    Some((unit.name.clone(), timer))
                })
                .collect(),
            clock: timer::WallClock::default(),
            task_names: task_names::TaskNames::default(),
        }
    }

    /// Feeds one input; returns what the shell must do, in order.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        if input.changes_state() {
            self.generation += 1;
        }
        let tick = input == Input::Tick;
        // Before a request, so that one naming an expired hold finds it gone.
        self.expire_carried_results(now);
        match input {
            Input::Boot => self.boot(now, &mut out),
            Input::Request {
                id,
                client,
                request,
            } => {
                let submitted_from = self.next_task;
                let read = match &request {
                    herd_common::protocol::Request::Output { id, .. } => Some(*id),
                    _ => None,
                };
                self.request(now, id, client, request, &mut out);
                self.hold_results(client, submitted_from, read);
            }
            Input::ClientGone { client } => {
                // Of what a client may leave behind, the journal keeps its
                // held results and its semaphore slots and places in line.
                // Most clients had neither (one `herdctl status`): their
                // leaving is no reason for a journal write.
                let holder = Holder::Client { client, pid: None };
                let journaled =
                    self.held.outstanding(client) > 0 || self.semaphores.involve(&holder);
                self.client_gone(client, &mut out);
                for id in self.held.client_gone(client) {
                    self.tasks.remove(&id);
                }
                if !journaled {
                    self.generation -= 1;
                }
            }
            Input::Spawned { owner, pid } => {
                self.pids.insert(pid, owner.clone());
                match owner {
                    Owner::Instance(id) => {
                        self.with_instance(now, &id, &mut out, |i, ctx| i.on_spawned(pid, ctx));
                    }
                    Owner::Task(id) => {
                        if let Some(task) = self.tasks.get_mut(&id) {
                            task.on_spawned(pid, now, &mut out);
                        }
                    }
                    Owner::Hook(subject) => self.hooks.on_spawned(&subject, pid, &mut out),
                }
            }
            Input::ExecFailed { pid, error } => {
                if let Some(owner) = self.pids.remove(&pid) {
                    self.spawn_failed(now, owner, error, &mut out);
                }
            }
            Input::SpawnFailed { owner, error } => self.spawn_failed(now, owner, error, &mut out),
            Input::Exited { pid, exit } => match self.pids.remove(&pid) {
                Some(Owner::Instance(id)) => {
                    let fate =
                        self.with_instance(now, &id, &mut out, |i, ctx| i.on_exit(exit, ctx));
                    if fate == Some(Fate::Remove) {
                        self.drop_instance(&id);
                    }
                }
                Some(Owner::Task(id)) => self.task_exited(now, id, pid, exit, &mut out),
                Some(Owner::Hook(subject)) => {
                    self.hooks.on_exit(now, &subject, (pid, exit), &mut out);
                }
                // A re-parented orphan, or a process holding a carried-over
                // semaphore slot (watched by pidfd): its slot goes.
                None => self.process_gone(pid, &mut out),
            },
            Input::Output { task, stream, data } => {
                if let Some(task) = self.tasks.get_mut(&task) {
                    task.capture(stream).append(&data);
                }
            }
            Input::Notify { pid, pgid, fields } => {
                // The main process, or one in its process group (systemd-notify
                // run from a script reports its own pid).
                let owner = self
                    .pids
                    .get(&pid)
                    .or_else(|| pgid.and_then(|pgid| self.pids.get(&pgid)));
                if let Some(Owner::Instance(id)) = owner.cloned() {
                    self.with_instance(now, &id, &mut out, |i, ctx| i.on_notify(&fields, ctx));
                }
            }
            Input::ConfigLoaded { id, config } => {
                let reply = match config {
                    Ok(config) => {
                        self.hooks.reloaded();
                        let report = self.reload(now, &config, &mut out);
                        self.reload_timers(now, &config);
                        Reply::ok(report)
                    }
                    Err(message) => Reply::error(ErrorCode::Failed, message),
                };
                if let Some(id) = id {
                    out.push(Action::Reply { id, reply });
                }
            }
            Input::Tick => self.tick(now, &mut out),
            Input::Shutdown => self.begin_shutdown(now, &mut out),
            Input::ProbeResult {
                instance,
                pid,
                result,
            } => self.probe_result(now, &instance, pid, result, &mut out),
            Input::LogError { instance, error } => match error {
                Some(error) => {
                    self.log_errors.insert(instance, error);
                }
                None => {
                    self.log_errors.remove(&instance);
                }
            },
        }
        self.observe_timers(now, &mut out);
        self.advance_rollouts(now, &mut out);
        // Freed slots and set events may let others start, whose starts may
        // free or take more: repeat until a round grants nothing new.
        loop {
            let grants = self.semaphores.grants;
            self.advance_waiting(now, &mut out);
            self.fill_pools(now, &mut out);
            self.settle_waiters(now, &mut out);
            self.follow_sets_event(&mut out);
            if self.semaphores.grants == grants {
                break;
            }
        }
        // Only now, so that a join waiting on an evicted task has seen its end.
        for id in self.evicted.drain(..) {
            if !self.held.on_evicted(id) {
                self.tasks.remove(&id);
            }
        }
        self.settle_results(now, &mut out);
        self.drop_removed();
        self.reindex_tasks();
        if tick && health::only_probes(&out) {
            // Nothing the journal keeps has changed: no journal write per probe.
            self.generation -= 1;
        }
        out
    }

    /// Brings the indexes over tasks up to date with what changed.
    fn reindex_tasks(&mut self) {
        self.task_names.follow(&self.tasks);
        self.tasks.reindex();
    }

    /// Holds the tasks `client` submitted (ids from `submitted_from` on)
    /// until it reads their output (`read`) or disconnects.
    fn hold_results(&mut self, client: ClientId, submitted_from: TaskId, read: Option<TaskId>) {
        for id in submitted_from..self.next_task {
            if let Some(task) = self.tasks.get(&id) {
                self.held.hold(client, id, task.state.is_final());
            }
        }
        let Some(id) = read else {
            return;
        };
        let ended = self.tasks.get(&id).is_some_and(|t| t.state.is_final());
        if ended && self.held.release(client, id) {
            self.tasks.remove(&id);
        }
    }

    /// A process could not be started: exec errors do not heal by retrying.
    fn spawn_failed(&mut self, now: Instant, owner: Owner, error: String, out: &mut Vec<Action>) {
        match owner {
            Owner::Instance(id) => {
                self.with_instance(now, &id, out, |i, ctx| i.on_spawn_failed(error, ctx));
            }
            Owner::Task(id) => self.task_spawn_failed(now, id, error, out),
            Owner::Hook(subject) => self.hooks.on_spawn_failed(&subject, error, out),
        }
    }

    /// The earliest time at which [`Input::Tick`] must be fed; `None` = sleep until something happens.
    pub fn next_deadline(&self) -> Option<Instant> {
        let instances = self.units.first_deadline().into_iter();
        let tasks = self.tasks.first_deadline();
        let waiters = self.waiters.first_deadline();
        let join = self
            .shutdown
            .as_ref()
            .filter(|s| !s.joined_terminated)
            .map(|s| s.join_deadline);
        let rollouts = self.next_rollout_deadline();
        instances
            .chain(tasks)
            .chain(waiters)
            .chain(join)
            .chain(rollouts)
            .chain(self.hooks.next_deadline())
            .chain(self.held.next_deadline())
            .chain(self.next_timer_deadline())
            .min()
    }

    /// Shutdown was requested and every process is gone: herdd may exit.
    pub fn is_finished(&self) -> bool {
        self.shutdown.is_some() && self.pids.is_empty()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_some()
    }

    /// Changes with every input that may change state (see [`Input::changes_state`]).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn boot(&mut self, now: Instant, out: &mut Vec<Action>) {
        let restored = &self.restored;
        // A task with a timer runs when its timer says.
        let timers = &self.timers;
        let started: Vec<String> = self
            .units
            .values()
            // `wanted` before boot: it has adopted survivors (survivors.rs).
            .filter(|u| (u.config.autostart || u.wanted) && !restored.contains(u.name()))
            .filter(|u| !timers.contains_key(u.name()))
            .map(|u| u.name().to_string())
            .collect();
        let mut autostart = Vec::new();
        for name in started {
            self.units.set_wanted(&name, true);
            // Not survivors past the instance count, which are stopping.
            autostart.extend(self.units[&name].staying().map(|i| InstanceId {
                unit: name.clone(),
                index: i.index,
            }));
        }
        for id in autostart {
            self.with_instance(now, &id, out, Instance::start);
        }
        self.boot_timers(now, out);
    }

    /// Runs `f` on one instance with a context built from its unit. `None` if
    /// the instance no longer exists. An instance that `f` leaves failed
    /// has its `on_failure` hook run.
    fn with_instance<R>(
        &mut self,
        now: Instant,
        id: &InstanceId,
        out: &mut Vec<Action>,
        f: impl FnOnce(&mut Instance, &mut Ctx) -> R,
    ) -> Option<R> {
        let deps = self.deps_of(&id.unit);
        let shutting_down = self.shutdown.is_some();
        let slot = self.units.instance_mut(id)?;
        let name = herd_common::names::instance_name(&id.unit, id.index, slot.is_pool);
        let config = slot.config;
        let instance = &mut *slot.instance;
        let (was_failed, had_process) = (instance.state == State::Failed, instance.pid.is_some());
        let mut ctx = Ctx {
            now,
            id: id.clone(),
            name,
            config,
            deps,
            shutting_down,
            semaphores: &mut self.semaphores,
            out,
        };
        let result = f(instance, &mut ctx);
        // Its process ended in `f`, or it never had one (exec error).
        let failed = (!was_failed && instance.state == State::Failed).then(|| {
            (had_process && instance.pid.is_none())
                .then(|| instance.last_exit.clone())
                .flatten()
        });
        drop(slot);
        if let Some(exit) = failed {
            self.instance_failed(now, id, exit, out);
        }
        Some(result)
    }

    fn drop_instance(&mut self, id: &InstanceId) {
        self.units.remove_instance(id);
    }

    /// Whether the units `unit` is `after` let it start.
    fn deps_of(&self, unit: &str) -> Deps {
        let Some(unit) = self.units.get(unit) else {
            return Deps::Satisfied;
        };
        let mut pending = Vec::new();
        for dependency in &unit.config.after {
            match self.units.as_dependency(dependency) {
                Some(AsDependency::Satisfied) => {}
                Some(AsDependency::Failed) => {
                    return Deps::Blocked(format!("dependency {dependency} failed"))
                }
                Some(AsDependency::Pending) | None => pending.push(dependency.as_str()),
            }
        }
        let unset: Vec<&str> = unit
            .config
            .wait_events
            .iter()
            .filter(|event| !self.events.is_set(event))
            .map(String::as_str)
            .collect();
        match (pending.is_empty(), unset.is_empty()) {
            (true, true) => Deps::Satisfied,
            (false, _) => Deps::Pending(format!("waiting for {}", pending.join(", "))),
            (true, false) => Deps::Pending(format!("waiting for event {}", unset.join(", "))),
        }
    }

    /// Starts waiting instances whose dependencies are now satisfied, and
    /// refreshes the reason of those still waiting. The dependencies are
    /// worked out once per unit; an instance already waiting for just what
    /// its unit waits for (and so out of line for semaphore slots) is left
    /// as it is.
    fn advance_waiting(&mut self, now: Instant, out: &mut Vec<Action>) {
        let mut unit_deps: Option<(String, Deps)> = None;
        for id in self.units.waiting() {
            if unit_deps.as_ref().is_none_or(|(unit, _)| *unit != id.unit) {
                unit_deps = Some((id.unit.clone(), self.deps_of(&id.unit)));
            }
            if let Some((_, Deps::Pending(reason) | Deps::Blocked(reason))) = &unit_deps {
                let unchanged = self.units.get(&id.unit).is_some_and(|unit| {
                    unit.position(id.index)
                        .is_some_and(|at| unit.instances[at].reason.as_ref() == Some(reason))
                });
                if unchanged && self.shutdown.is_none() {
                    continue;
                }
            }
            self.with_instance(now, &id, out, Instance::launch);
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        for id in self.units.due(now) {
            self.with_instance(now, &id, out, Instance::on_deadline);
        }
        for id in self.tasks.due(now) {
            let Some(task) = self.tasks.get_mut(&id) else {
                continue;
            };
            match self.pools.get(&*task.pool) {
                Some(pool) => task.on_deadline(now, &pool.config, out),
                None => task.clear_deadline(),
            }
        }
        self.hooks.tick(now, out);
        self.tick_timers(now, out);
        let join_over = self
            .shutdown
            .as_ref()
            .is_some_and(|s| !s.joined_terminated && s.join_deadline <= now);
        if join_over {
            self.terminate_joined(now, out);
        }
    }

    /// SIGTERM, SIGINT or `herdctl shutdown`. Daemon processes are stopped at
    /// once; joined ones (`daemon = false`) get `shutdown_timeout` to finish.
    /// A second request stops the joined ones at once too.
    fn begin_shutdown(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.shutdown.is_some() {
            self.terminate_joined(now, out);
            return;
        }
        self.shutdown = Some(Shutdown {
            join_deadline: now + self.shutdown_timeout,
            joined_terminated: false,
        });
        self.hooks.shutdown();
        for id in self.all_instances() {
            let daemon = self.units[&id.unit].config.daemon;
            self.with_instance(now, &id, out, |instance, ctx| {
                if daemon || instance.pid.is_none() {
                    instance.stop(ctx);
                }
            });
        }
        self.cancel_tasks_for_shutdown(now, false, out);
    }

    fn terminate_joined(&mut self, now: Instant, out: &mut Vec<Action>) {
        if let Some(shutdown) = &mut self.shutdown {
            shutdown.joined_terminated = true;
        }
        self.hooks.terminate(out);
        for id in self.all_instances() {
            self.with_instance(now, &id, out, |instance, ctx| {
                if instance.state != herd_common::state::State::Stopping {
                    instance.stop(ctx);
                }
            });
        }
        self.cancel_tasks_for_shutdown(now, true, out);
    }

    fn all_instances(&self) -> Vec<InstanceId> {
        self.units
            .values()
            .flat_map(|u| {
                u.instances.iter().map(|i| InstanceId {
                    unit: u.name().to_string(),
                    index: i.index,
                })
            })
            .collect()
    }

    /// Replies to every waiter whose goal is reached or whose deadline passed.
    /// Waiters are kept in arrival order, so replies go out in that order.
    /// Only the waiters that may be done are looked at (see `waiters.rs`).
    fn settle_waiters(&mut self, now: Instant, out: &mut Vec<Action>) {
        let candidates =
            self.waiters
                .candidates(now, |name| self.events.is_set(name), self.tasks.touched());
        for seq in candidates {
            let Some((waiter, done)) = self.waiters.take(seq) else {
                continue;
            };
            let mut watch = None;
            let reached = match &waiter.goal {
                Goal::SemAcquired { holder, name } => {
                    let label = self.holder_label(holder);
                    self.semaphores
                        .try_acquire(now, holder, std::slice::from_ref(name), &label, out)
                        .is_ok()
                }
                Goal::TasksEnded(ids) => {
                    // Tasks do not come back once ended: start where it got.
                    let ended = ids[done..].iter().take_while(|id| self.task_is_over(id));
                    let done = done + ended.count();
                    watch = ids.get(done).map(|id| (*id, done));
                    watch.is_none()
                }
                goal => self.is_reached(goal),
            };
            let timed_out = !reached && waiter.deadline.is_some_and(|d| d <= now);
            if reached || timed_out {
                if let (true, Goal::SemAcquired { holder, .. }) = (timed_out, &waiter.goal) {
                    self.semaphores.withdraw(holder);
                }
                let reply = self.goal_reply(now, &waiter.goal, timed_out);
                out.push(Action::Reply {
                    id: waiter.id,
                    reply,
                });
            } else {
                self.waiters.restore(seq, waiter, watch);
            }
        }
    }

    /// Whether task `id` has ended (or is gone: evicted, or its pool removed).
    fn task_is_over(&self, id: &TaskId) -> bool {
        self.tasks.get(id).is_none_or(|t| t.state.is_final())
    }

    /// `daemon-reexec`: every waiting request is answered `reconnect` now,
    /// so its connection closes at once instead of holding up the re-exec,
    /// and its client waits again on the new image (it has the same state).
    /// A semaphore waiter leaves the line; it queues again when it asks again.
    fn send_waiters_away(&mut self, out: &mut Vec<Action>) {
        for id in self.held.drain_waiting() {
            out.push(Action::Reply {
                id,
                reply: Reply::error(
                    ErrorCode::Reconnect,
                    "herdd is re-executing; connect again and wait again",
                ),
            });
        }
        for waiter in self.waiters.drain() {
            if let Goal::SemAcquired { holder, .. } = &waiter.goal {
                self.semaphores.withdraw(holder);
            }
            out.push(Action::Reply {
                id: waiter.id,
                reply: Reply::error(
                    ErrorCode::Reconnect,
                    "herdd is re-executing; connect again and wait again",
                ),
            });
        }
    }

    fn is_reached(&self, goal: &Goal) -> bool {
        match goal {
            Goal::Started(targets) => self.instances_settled(targets, |instance, unit| {
                instance.start_settled(&self.deps_of(unit))
            }),
            Goal::Stopped(targets) => {
                self.instances_settled(targets, |instance, _| instance.stop_settled())
            }
            Goal::TasksEnded(ids) => ids.iter().all(|id| self.task_is_over(id)),
            Goal::PoolDrained(pool) => self.pools.get(pool).is_none_or(Pool::is_drained),
            Goal::SemAcquired { holder, name } => self.semaphores.holds(holder, name),
            Goal::EventSet(name) => self.events.is_set(name),
        }
    }

    fn instances_settled(
        &self,
        targets: &[InstanceId],
        settled: impl Fn(&Instance, &str) -> bool,
    ) -> bool {
        targets.iter().all(|id| {
            let Some(unit) = self.units.get(&id.unit) else {
                return true;
            };
            match unit.position(id.index) {
                Some(position) => settled(&unit.instances[position], &id.unit),
                None => true, // scaled away
            }
        })
    }

    fn goal_reply(&self, now: Instant, goal: &Goal, timed_out: bool) -> Reply {
        match goal {
            Goal::Started(targets) | Goal::Stopped(targets) => Reply::ok(self.report(now, targets)),
            Goal::TasksEnded(ids) => Reply::ok(self.task_report(now, ids, timed_out)),
            Goal::PoolDrained(pool) => self.pool_reply(pool, timed_out),
            Goal::SemAcquired { name, .. } => Reply::ok(herd_common::protocol::AcquireReport {
                name: name.clone(),
                acquired: !timed_out,
            }),
            Goal::EventSet(name) => Reply::ok(herd_common::protocol::EventChange {
                event: self.events.status(name),
                timed_out,
            }),
        }
    }

    /// A status report of the given instances, grouped by unit.
    fn report(&self, now: Instant, targets: &[InstanceId]) -> StatusReport {
        let mut by_unit: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for id in targets {
            by_unit.entry(&id.unit).or_default().push(id.index);
        }
        let units = by_unit
            .into_iter()
            .filter_map(|(name, indexes)| {
                let unit = self.units.get(name)?;
                Some(self.unit_status(now, unit, Some(&indexes)))
            })
            .collect();
        StatusReport {
            units,
            pools: Vec::new(),
            sockets: Vec::new(),
        }
    }

    fn full_report(&self, now: Instant) -> StatusReport {
        StatusReport {
            units: self
                .units
                .values()
                .map(|unit| self.unit_status(now, unit, None))
                .collect(),
            pools: self
                .pools
                .values()
                .map(|pool| {
                    let owner = hooks::HookOwner::Pool(pool.name().to_string());
                    PoolStatus {
                        hook_error: self.hooks.error_of(&owner),
                        ..pool.status()
                    }
                })
                .collect(),
            sockets: self.socket_status(),
        }
    }

    /// Each socket with the services that use it.
    fn socket_status(&self) -> Vec<herd_common::protocol::SocketStatus> {
        self.sockets
            .iter()
            .map(|socket| herd_common::protocol::SocketStatus {
                name: socket.name.clone(),
                listen: socket.listen.to_string(),
                units: self
                    .units
                    .values()
                    .filter(|unit| unit.config.sockets.contains(&socket.name))
                    .map(|unit| unit.config.name.clone())
                    .collect(),
            })
            .collect()
    }

    fn unit_status(&self, now: Instant, unit: &Unit, only: Option<&[u32]>) -> UnitStatus {
        let instances = unit
            .instances
            .iter()
            .filter(|i| only.is_none_or(|only| only.contains(&i.index)))
            .map(|i| InstanceStatus {
                name: unit.instance_name(i.index),
                state: i.state,
                pid: i.pid,
                uptime_ms: i
                    .pid
                    .and(i.spawned_at)
                    .map(|at| now.saturating_duration_since(at).as_millis() as u64),
                restarts: i.restarts,
                last_exit: i.last_exit.clone(),
                reason: i.reason.clone(),
                notify_status: i.notify_status.clone(),
                adopted: i.adopted,
                log_error: self.log_error_of(unit, i.index),
                health: i.health.view(unit.config.health.as_ref()),
                // The core does no I/O: the front end fills this in when asked.
                usage: Default::default(),
            })
            .collect();
        UnitStatus {
            name: unit.name().to_string(),
            kind: match unit.config.kind {
                UnitKind::Service => KindView::Service,
                UnitKind::Task => KindView::Task,
            },
            state: unit.state(),
            command: unit.config.command.clone(),
            instances,
            hook_error: self
                .hooks
                .error_of(&hooks::HookOwner::Unit(unit.name().to_string())),
            timer: self.timer_status(now, unit.name()),
        }
    }
}

impl Supervisor {
    /// Why instance `index` of `unit` cannot write its log, if it cannot.
    fn log_error_of(&self, unit: &Unit, index: u32) -> Option<String> {
        if self.log_errors.is_empty() {
            return None; // the usual case: no key to build
        }
        let id = InstanceId {
            unit: unit.name().to_string(),
            index,
        };
        self.log_errors.get(&id).cloned()
    }
}

fn error(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(code, message)
}
