//! Pool verbs (`submit`, `join`, `tasks`, `output`, `cancel`, `pool *`) and
//! the task events that feed the pools.

use super::held::ResultsWaiter;
use super::pool::Pool;
use super::semaphore::{ClientId, Holder};
use super::{error, Action, Goal, RequestId, Supervisor, Waiter};
use crate::core::retry::TaskLimits;
use crate::core::task::{AttemptEnd, Task};
use herd_common::protocol::{
    BatchReport, CancelReport, ErrorBody, ErrorCode, OutputReport, OutputStream, PoolReport, Reply,
    ResultsReport, SubmitOptions, SubmitReport, TaskId, TaskReport, TaskResult,
    RESULTS_REPLY_BYTES,
};
use herd_common::state::{Exit, TaskState};
use std::time::{Duration, Instant};

impl Supervisor {
    pub(super) fn submit(
        &mut self,
        now: Instant,
        pool_name: &str,
        command: Vec<String>,
        name: Option<String>,
        options: SubmitOptions,
        out: &mut Vec<Action>,
    ) -> Reply {
        if self.shutdown.is_some() {
            return super::requests::shutting_down();
        }
        if let Err(message) = check_command(&command) {
            return Reply::error(ErrorCode::BadRequest, message);
        }
        let Some(pool) = self.pools.get_mut(pool_name) else {
            return Reply::Error(no_such_pool(pool_name));
        };
        let limits = match TaskLimits::new(&options, &pool.config.task_defaults) {
            Ok(limits) => limits,
            Err(message) => return Reply::error(ErrorCode::BadRequest, message),
        };
        if options.unique {
            let Some(name) = &name else {
                return Reply::error(ErrorCode::BadRequest, "unique needs a task name");
            };
            // Tasks changed earlier in this step are not indexed yet.
            self.task_names.follow(&self.tasks);
            let live = self.task_names.find(pool_name, name);
            if let Some(task) = live.and_then(|id| self.tasks.get(&id)) {
                return Reply::ok(SubmitReport {
                    id: task.id,
                    state: task.state,
                    existing: true,
                });
            }
        }
        if let Err(body) = pool.admit() {
            return Reply::Error(body);
        }
        let not_before = not_before(now, &options);
        let id = self.queue_task(now, pool_name, (command, name), (limits, not_before), out);
        Reply::ok(SubmitReport {
            id,
            state: self.tasks[&id].state,
            existing: false,
        })
    }

    /// Queues one task in `pool_name` (which exists and admits it) and
    /// starts it if a slot is free.
    fn queue_task(
        &mut self,
        now: Instant,
        pool_name: &str,
        (command, name): (Vec<String>, Option<String>),
        (limits, not_before): (TaskLimits, Option<Instant>),
        out: &mut Vec<Action>,
    ) -> TaskId {
        let id = self.next_task;
        self.next_task += 1;
        let task = Task::new(id, pool_name, command, name).with_limits(limits, not_before);
        self.tasks.insert(id, task);
        let Some(pool) = self.pools.get_mut(pool_name) else {
            return id;
        };
        pool.enqueue(id, &self.tasks);
        out.push(Action::Publish(super::lifecycle::Lifecycle::TaskQueued {
            task: id,
            pool: pool_name.to_string(),
        }));
        // Fill now rather than at the end of the step, so the reply can say "running".
        pool.fill(&mut self.tasks, &mut self.semaphores, now, out);
        id
    }

    /// `submit-batch`: every command is checked before any is queued; then
    /// they are queued in order while the pool's queue and the client's
    /// room for unread results last.
    pub(super) fn submit_batch(
        &mut self,
        now: Instant,
        client: ClientId,
        (pool_name, commands): (&str, Vec<Vec<String>>),
        options: SubmitOptions,
        out: &mut Vec<Action>,
    ) -> Reply {
        if self.shutdown.is_some() {
            return super::requests::shutting_down();
        }
        if commands.is_empty() {
            return Reply::error(ErrorCode::BadRequest, "a batch needs at least one command");
        }
        for (n, command) in commands.iter().enumerate() {
            if let Err(message) = check_command(command) {
                return Reply::error(
                    ErrorCode::BadRequest,
                    format!("command {}: {message}", n + 1),
                );
            }
        }
        if options.unique {
            return Reply::error(
                ErrorCode::BadRequest,
                "unique needs a task name; batch tasks have none",
            );
        }
        let Some(pool) = self.pools.get(pool_name) else {
            return Reply::Error(no_such_pool(pool_name));
        };
        let limits = match TaskLimits::new(&options, &pool.config.task_defaults) {
            Ok(limits) => limits,
            Err(message) => return Reply::error(ErrorCode::BadRequest, message),
        };
        let not_before = not_before(now, &options);
        let mut ids = Vec::with_capacity(commands.len());
        let mut refused = None;
        for command in commands {
            let admitted = match self.pools.get(pool_name).map(Pool::admit) {
                Some(Ok(())) if self.held.room(client) > ids.len() => Ok(()),
                Some(Ok(())) => Err(super::held::over_cap()),
                Some(Err(body)) => Err(body.message),
                None => Err(no_such_pool(pool_name).message),
            };
            if let Err(why) = admitted {
                refused = Some(why);
                break;
            }
            let task = (command, None);
            ids.push(self.queue_task(now, pool_name, task, (limits.clone(), not_before), out));
        }
        match refused {
            Some(why) if ids.is_empty() => Reply::error(ErrorCode::Refused, why),
            refused => Reply::ok(BatchReport { ids, refused }),
        }
    }

    /// `results`: collects `ids` for `client` too, then answers with its
    /// ended unread tasks, or waits for one to end (or `timeout_ms`).
    pub(super) fn results(
        &mut self,
        now: Instant,
        (request, client): (RequestId, ClientId),
        ids: &[TaskId],
        (timeout_ms, linger_ms): (Option<u64>, Option<u64>),
        out: &mut Vec<Action>,
    ) -> Option<Reply> {
        if let Err(body) = self.known_tasks(ids) {
            return Some(Reply::Error(body));
        }
        for id in ids {
            let ended = self.tasks.get(id).is_some_and(|t| t.state.is_final());
            self.held.hold(client, *id, ended);
        }
        let ended = self.held.ended(client).count();
        let outstanding = self.held.outstanding(client);
        let lingers = linger_ms.is_some_and(|ms| ms > 0) && ended < outstanding;
        if (ended > 0 && !lingers) || outstanding == 0 || timeout_ms == Some(0) {
            return Some(self.collect_results(now, client, ended == 0 && outstanding > 0));
        }
        let waiter = ResultsWaiter {
            request,
            deadline: timeout_ms.map(|ms| now + Duration::from_millis(ms)),
            linger: linger_ms.map(Duration::from_millis),
            lingering_until: None,
        };
        if let Some(earlier) = self.held.wait(client, waiter) {
            // One waits per client: an earlier one (D-Bus callers may send
            // several at once) is answered with nothing.
            let reply = self.collect_results(now, client, true);
            out.push(Action::Reply {
                id: earlier.request,
                reply,
            });
        }
        None
    }

    /// The `results` reply for `client`: its ended unread tasks, lowest id
    /// first, up to [`RESULTS_REPLY_BYTES`] of stdout; they are read now.
    pub(super) fn collect_results(
        &mut self,
        now: Instant,
        client: ClientId,
        timed_out: bool,
    ) -> Reply {
        let ended: Vec<TaskId> = self.held.ended(client).collect();
        let mut results = Vec::new();
        let mut bytes = 0;
        for id in ended {
            if bytes >= RESULTS_REPLY_BYTES {
                break;
            }
            let Some(task) = self.tasks.get(&id) else {
                self.held.release(client, id);
                continue;
            };
            let stdout = self.output_report(task, OutputStream::Stdout);
            bytes += stdout.data.len();
            results.push(TaskResult {
                task: task.status(now),
                stdout,
            });
            if self.held.release(client, id) {
                self.tasks.remove(&id);
            }
        }
        Reply::ok(ResultsReport {
            results,
            outstanding: self.held.outstanding(client) as u64,
            timed_out,
        })
    }

    /// Lets go of the results carried over a re-exec that no client
    /// collected in time (checked at every input; their moment is one of
    /// the core's deadlines, so herdd wakes for it).
    pub(super) fn expire_carried_results(&mut self, now: Instant) {
        for id in self.held.expire_carried(now) {
            self.tasks.remove(&id);
        }
    }

    /// Answers the `results` requests that are due (a task of their client
    /// ended, or their timeout passed).
    pub(super) fn settle_results(&mut self, now: Instant, out: &mut Vec<Action>) {
        for (client, waiter, timed_out) in self.held.due(now) {
            let reply = self.collect_results(now, client, timed_out);
            out.push(Action::Reply {
                id: waiter.request,
                reply,
            });
        }
    }

    pub(super) fn join(
        &mut self,
        now: Instant,
        (request, client): (RequestId, ClientId),
        ids: Vec<TaskId>,
        timeout_ms: Option<u64>,
    ) -> Option<Reply> {
        if ids.is_empty() {
            return Some(Reply::error(
                ErrorCode::BadRequest,
                "name at least one task",
            ));
        }
        if let Err(body) = self.known_tasks(&ids) {
            return Some(Reply::Error(body));
        }
        self.waiters.push(Waiter {
            id: request,
            client,
            goal: Goal::TasksEnded(ids),
            deadline: timeout_ms.map(|ms| now + Duration::from_millis(ms)),
        });
        None // settled (perhaps at once) by settle_waiters
    }

    pub(super) fn list_tasks(&self, now: Instant, pool: Option<&str>) -> Reply {
        if let Some(pool) = pool {
            if !self.pools.contains_key(pool) {
                return Reply::Error(no_such_pool(pool));
            }
        }
        let tasks = self
            .tasks
            .values()
            .filter(|task| pool.is_none_or(|pool| task.pool == pool))
            .map(|task| task.status(now))
            .collect();
        Reply::ok(TaskReport {
            tasks,
            timed_out: false,
        })
    }

    pub(super) fn output(&self, id: TaskId, stream: OutputStream) -> Reply {
        if let Err(body) = self.known_tasks(&[id]) {
            return Reply::Error(body);
        }
        Reply::ok(self.output_report(&self.tasks[&id], stream))
    }

    fn output_report(&self, task: &Task, stream: OutputStream) -> OutputReport {
        let captured = match stream {
            OutputStream::Stdout => task.stdout(),
            OutputStream::Stderr => task.stderr(),
        };
        OutputReport {
            id: task.id,
            stream,
            data: String::from_utf8_lossy(&captured.data).into_owned(),
            truncated: captured.truncated(),
            kept_bytes: captured.data.len() as u64,
            total_bytes: captured.total,
        }
    }

    pub(super) fn cancel(&mut self, now: Instant, ids: &[TaskId], out: &mut Vec<Action>) -> Reply {
        if let Err(body) = self.known_tasks(ids) {
            return Reply::Error(body);
        }
        let cancelled = ids
            .iter()
            .copied()
            .filter(|id| self.cancel_task(now, *id, "cancelled", out))
            .collect();
        Reply::ok(CancelReport { cancelled })
    }

    pub(super) fn close_pool(&mut self, name: &str) -> Reply {
        match self.pools.get_mut(name) {
            Some(pool) => {
                pool.closed = true;
                self.pool_reply(name, false)
            }
            None => Reply::Error(no_such_pool(name)),
        }
    }

    /// Cancels every queued task and stops every running one.
    pub(super) fn terminate_pool(
        &mut self,
        now: Instant,
        name: &str,
        out: &mut Vec<Action>,
    ) -> Reply {
        if !self.pools.contains_key(name) {
            return Reply::Error(no_such_pool(name));
        }
        for id in self.live_tasks(|task| task.pool == name) {
            self.cancel_task(now, id, "pool terminated", out);
        }
        out.push(Action::KillPoolLeftovers {
            pool: name.to_string(),
        });
        self.pool_reply(name, false)
    }

    pub(super) fn join_pool(
        &mut self,
        now: Instant,
        (request, client): (RequestId, ClientId),
        name: String,
        timeout_ms: Option<u64>,
    ) -> Option<Reply> {
        if !self.pools.contains_key(&name) {
            return Some(Reply::Error(no_such_pool(&name)));
        }
        self.waiters.push(Waiter {
            id: request,
            client,
            goal: Goal::PoolDrained(name),
            deadline: timeout_ms.map(|ms| now + Duration::from_millis(ms)),
        });
        None
    }

    pub(super) fn pool_reply(&self, name: &str, timed_out: bool) -> Reply {
        match self.pools.get(name) {
            Some(pool) => Reply::ok(PoolReport {
                pool: pool.status(),
                timed_out,
            }),
            None => Reply::Error(no_such_pool(name)),
        }
    }

    pub(super) fn task_report(&self, now: Instant, ids: &[TaskId], timed_out: bool) -> TaskReport {
        TaskReport {
            tasks: ids
                .iter()
                .filter_map(|id| self.tasks.get(id))
                .map(|task| task.status(now))
                .collect(),
            timed_out,
        }
    }

    pub(super) fn task_spawn_failed(
        &mut self,
        now: Instant,
        id: TaskId,
        error: String,
        out: &mut Vec<Action>,
    ) {
        if let Some(task) = self.tasks.get_mut(&id) {
            task.on_spawn_failed(error, now, out);
            self.task_ended(id, true, out);
            self.task_failed(now, id, out);
        }
    }

    pub(super) fn task_exited(
        &mut self,
        now: Instant,
        id: TaskId,
        pid: u32,
        exit: Exit,
        out: &mut Vec<Action>,
    ) {
        if let Some(task) = self.tasks.get_mut(&id) {
            let end = task.on_exit(exit, now, out);
            out.push(Action::KillLeftovers { pgid: pid });
            match end {
                AttemptEnd::Final => {
                    self.task_ended(id, true, out);
                    self.task_failed(now, id, out);
                }
                AttemptEnd::Retry => self.task_retried(now, id, out),
            }
        }
    }

    /// A failed attempt will be retried: its slots go, it queues again
    /// (and is cancelled at once if herdd is shutting down).
    fn task_retried(&mut self, now: Instant, id: TaskId, out: &mut Vec<Action>) {
        let holder = Holder::Task(id);
        let label = self.holder_label(&holder);
        self.semaphores.release(&holder, &label, out);
        let Some(pool) = self
            .tasks
            .get(&id)
            .and_then(|t| self.pools.get_mut(&*t.pool))
        else {
            return;
        };
        pool.requeue(id, &self.tasks);
        if self.shutdown.is_some() {
            self.cancel_task(now, id, "herdd shut down", out);
        }
    }

    /// Frees the task's slot (or queue place) and schedules evictions.
    fn task_ended(&mut self, id: TaskId, was_running: bool, out: &mut Vec<Action>) {
        // Whatever way a task ends, its semaphore slots go with it.
        let holder = Holder::Task(id);
        let label = self.holder_label(&holder);
        self.semaphores.release(&holder, &label, out);
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        let Some(pool) = self.pools.get_mut(&*task.pool) else {
            return;
        };
        let ran_ms = task
            .started_at
            .zip(task.ended_at())
            .map(|(start, end)| end.saturating_duration_since(start).as_millis() as u64);
        pool.tally.record(task.state, ran_ms);
        let evicted = pool.finished(id, was_running);
        self.evicted.extend(evicted);
        self.held.on_ended(id);
    }

    /// Starts queued tasks wherever a slot is free (not during shutdown).
    pub(super) fn fill_pools(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.shutdown.is_some() {
            return;
        }
        for pool in self.pools.values_mut() {
            pool.fill(&mut self.tasks, &mut self.semaphores, now, out);
        }
    }

    /// Shutdown: queued tasks are cancelled; running `daemon = true` ones are
    /// stopped at once, the others (`all`) once the join deadline has passed.
    pub(super) fn cancel_tasks_for_shutdown(
        &mut self,
        now: Instant,
        all: bool,
        out: &mut Vec<Action>,
    ) {
        let daemon = |task: &Task| self.pools.get(&*task.pool).is_some_and(|p| p.config.daemon);
        let ids = self.live_tasks(|task| task.state == TaskState::Queued || all || daemon(task));
        for id in ids {
            self.cancel_task(now, id, "herdd shut down", out);
        }
    }

    /// Cancels one task; returns whether it was queued or running.
    fn cancel_task(&mut self, now: Instant, id: TaskId, why: &str, out: &mut Vec<Action>) -> bool {
        let Some(task) = self.tasks.get_mut(&id) else {
            return false;
        };
        let Some(pool) = self.pools.get(&*task.pool) else {
            return false;
        };
        let was_queued = task.state == TaskState::Queued;
        let cancelled = task.cancel(why, now, &pool.config, out);
        if was_queued && cancelled {
            self.task_ended(id, false, out);
        }
        cancelled
    }

    fn live_tasks(&self, select: impl Fn(&Task) -> bool) -> Vec<TaskId> {
        self.tasks
            .values()
            .filter(|task| !task.state.is_final() && select(task))
            .map(|task| task.id)
            .collect()
    }

    /// Every id must name a task herd still keeps; says which do not, and why.
    fn known_tasks(&self, ids: &[TaskId]) -> Result<(), ErrorBody> {
        match ids.iter().find(|id| !self.tasks.contains_key(id)) {
            None => Ok(()),
            Some(id) if *id < self.next_task && *id > 0 => Err(error(
                ErrorCode::NoSuchTask,
                format!("task {id} has ended and was evicted (pools keep their last keep_finished tasks)"),
            )),
            Some(id) => Err(error(ErrorCode::NoSuchTask, format!("no task {id}"))),
        }
    }
}

/// Whether `command` can be run: a program, and no NUL bytes.
fn check_command(command: &[String]) -> Result<(), &'static str> {
    if command.first().is_none_or(|program| program.is_empty()) {
        return Err("a task needs a command");
    }
    if command.iter().any(|arg| arg.contains('\0')) {
        return Err("a command may not contain NUL bytes");
    }
    Ok(())
}

/// When a task submitted `now` with `options` may start.
fn not_before(now: Instant, options: &SubmitOptions) -> Option<Instant> {
    options
        .after_ms
        .filter(|ms| *ms > 0)
        .map(|ms| now + Duration::from_millis(ms))
}

fn no_such_pool(name: &str) -> ErrorBody {
    error(ErrorCode::NoSuchPool, format!("no such pool: {name}"))
}
