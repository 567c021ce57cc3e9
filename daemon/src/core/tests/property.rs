//! Property test of the whole core under random input.
//!
//! A driver plays the shell with a fake clock and fake pids: it feeds random
//! requests (well-formed ones and byte-mutated lines that still decode),
//! random exits of live and unknown pids, readiness notifications, task
//! output, client disconnects, reloads and ticks at random times, answers
//! every spawn (one in ten fails), and checks after every step that
//!
//! - nothing panics, and no input sets off an endless cascade of actions;
//! - every request gets exactly one reply: at once, unless it is a verb that
//!   waits (then later, or never if its client goes away), and never twice;
//! - signals only go to processes that are alive (a dead pid may be reused);
//! - after a tick, the next deadline is in the future (else herdd would spin).
//!
//! A final phase ends everything — sets the events waited for, releases
//! client slots, shuts down, ends every process, lets time pass — and then
//! every request must have been answered and the core must be finished.
//!
//! Deterministic (seeded), bounded and fast: it runs with the unit tests.

use super::*;
use herd_common::protocol::{decode_request, encode_request};
use std::collections::{BTreeMap, BTreeSet};

/// Seeds run; each is one random history.
const SEEDS: u64 = 200;

/// Random inputs per history, before the final phase.
const STEPS: usize = 500;

/// Inputs one `feed` may cascade into before it counts as a hang.
const MAX_CASCADE: usize = 10_000;

/// Rounds the final phase may take to settle everything.
const MAX_SETTLE_ROUNDS: usize = 200;

const CONFIG: &str = r#"
[herd]
shutdown_timeout = "3s"

[semaphore.db]
capacity = 1

[event.go]

[event.up]

[task.migrate]
command = ["/bin/migrate"]

[service.db]
command = ["/bin/db"]
after = ["migrate"]
ready = "notify"
start_timeout = "5s"
sets_event = "up"
semaphores = ["db"]
restart = "always"
restart_delay = "10ms"
restart_delay_max = "1s"

[service.web]
command = ["/bin/web", "{instance}"]
instances = 3
after = ["db"]
wait_events = ["go"]
ready = "1s"
stop_timeout = "2s"

[service.worker]
command = ["/bin/worker"]
instances = 2
daemon = false
start_limit = 3
start_interval = "10s"
restart_delay = "50ms"
on_failure = ["/bin/alert", "{unit}", "{instance}"]
on_failure_timeout = "2s"

[service.broken]
command = ["/no/such"]
on_failure = ["/no/such"]

[service.manual]
command = ["/bin/manual"]
autostart = false
semaphores = ["db"]

[pool.jobs]
size = 2
max_queue = 20
keep_finished = 5
semaphores = ["db"]
on_failure = ["/bin/alert"]
on_failure_timeout = "1s"

[pool.solo]
size = 1
stop_timeout = "1s"

[task.tick]
command = ["/bin/tick"]
every = "700ms"
every_from = "start"
overlap = "queue"

[task.cron]
command = ["/bin/cron"]
schedule = "*/2 * * * * *"
pool = "solo"
overlap = "allow"
persistent = true
"#;

/// The config after an edit, for `reload`: scaled, a unit gone, a unit new,
/// a pool resized.
fn edited_config() -> String {
    CONFIG
        .replace("instances = 3", "instances = 1")
        .replace("[service.manual]", "[service.extra]")
        .replace("size = 2", "size = 1")
}

fn parse(text: &str) -> Config {
    herd_config::parse(std::path::Path::new("/test/herd.toml"), text)
        .unwrap_or_else(|errors| panic!("test config: {errors}"))
}

/// A small deterministic generator (as in pools.rs), so no extra crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

const UNIT_NAMES: &[&str] = &[
    "web",
    "web@0",
    "web@2",
    "web@7",
    "db",
    "migrate",
    "worker",
    "worker@1",
    "broken",
    "manual",
    "extra",
    "nope",
    "w*",
    "*",
    "web@*",
    "",
    "@",
    "web@-1",
    "web@99999999999",
    "db@0",
];
const POOLS: &[&str] = &["jobs", "solo", "nope", ""];
const SEMAPHORES: &[&str] = &["db", "nope"];
const EVENTS: &[&str] = &["go", "up", "fresh", ""];
const SIGNALS: &[&str] = &["SIGTERM", "HUP", "9", "0", "SIGFOO", "-1", "99", "SIGCONT"];

fn names(rng: &mut Rng) -> Vec<String> {
    (0..rng.below(3) + usize::from(rng.chance(3)))
        .map(|_| rng.pick(UNIT_NAMES).to_string())
        .collect()
}

fn timeout(rng: &mut Rng) -> Option<u64> {
    [None, Some(0), Some(5), Some(200), Some(3000)][rng.below(5)]
}

fn task_ids(rng: &mut Rng) -> Vec<TaskId> {
    (0..rng.below(3) + 1)
        .map(|_| rng.below(30) as TaskId)
        .collect()
}

/// A random well-formed request of any verb.
fn request(rng: &mut Rng) -> Request {
    let wait = !rng.chance(3);
    match rng.below(27) {
        0 => Request::Status {
            names: names(rng),
            usage: true,
        },
        1 | 2 => Request::Start {
            names: names(rng),
            wait,
        },
        3 | 4 => Request::Stop {
            names: names(rng),
            wait,
        },
        5 => Request::Restart {
            names: names(rng),
            wait,
        },
        6 => Request::Kill {
            names: names(rng),
            signal: rng.pick(SIGNALS).to_string(),
        },
        7 => Request::Scale {
            name: rng.pick(UNIT_NAMES).to_string(),
            instances: [0, 1, 2, 5, 10_001][rng.below(5)],
        },
        8 | 9 => Request::Submit {
            pool: rng.pick(POOLS).to_string(),
            command: match rng.below(4) {
                0 => vec![],
                1 => vec!["/no/such".into()],
                _ => vec!["/bin/job".into(), rng.below(100).to_string()],
            },
            name: rng.chance(2).then(|| "label".to_string()),
            options: herd_common::protocol::SubmitOptions {
                timeout_ms: timeout(rng),
                retries: [None, Some(0), Some(2), Some(5000)][rng.below(4)],
                retry_delay_ms: timeout(rng),
                priority: rng.below(3) as u32,
                after_ms: [None, Some(0), Some(100), Some(u64::MAX)][rng.below(4)],
                unique: rng.chance(3),
            },
        },
        10 => Request::Join {
            ids: task_ids(rng),
            timeout_ms: timeout(rng),
        },
        11 => Request::Tasks {
            pool: rng.chance(2).then(|| rng.pick(POOLS).to_string()),
        },
        12 => Request::Output {
            id: rng.below(30) as TaskId,
            stream: if rng.chance(2) {
                OutputStream::Stdout
            } else {
                OutputStream::Stderr
            },
        },
        13 => Request::Cancel { ids: task_ids(rng) },
        14 => Request::PoolClose {
            pool: rng.pick(POOLS).to_string(),
        },
        15 => Request::PoolTerminate {
            pool: rng.pick(POOLS).to_string(),
        },
        16 => Request::PoolJoin {
            pool: rng.pick(POOLS).to_string(),
            timeout_ms: timeout(rng),
        },
        17 => Request::SemList,
        18 => Request::SemAcquire {
            name: rng.pick(SEMAPHORES).to_string(),
            timeout_ms: timeout(rng),
            pid: rng.chance(2).then_some(4242),
        },
        19 => Request::SemRelease {
            name: rng.pick(SEMAPHORES).to_string(),
        },
        20 => Request::EventList,
        21 => Request::EventSet {
            name: rng.pick(EVENTS).to_string(),
        },
        22 => Request::EventClear {
            name: rng.pick(EVENTS).to_string(),
        },
        23 => Request::EventWait {
            name: rng.pick(EVENTS).to_string(),
            timeout_ms: timeout(rng),
        },
        25 => Request::Results {
            ids: if rng.chance(2) { vec![] } else { task_ids(rng) },
            timeout_ms: timeout(rng),
            linger_ms: [None, Some(0), Some(20)][rng.below(3)],
        },
        26 => Request::RollingRestart {
            name: rng.pick(UNIT_NAMES).to_string(),
            resume: rng.chance(4),
        },
        _ => [Request::Reload, Request::DaemonReexec][rng.below(2)].clone(),
    }
}

/// A request line with a few random byte edits, decoded as the socket
/// would; `None` when the edits broke it (then the socket answers with the
/// decoder's error and the core never sees it).
fn mutated(rng: &mut Rng) -> Option<Request> {
    let mut line = encode_request(&request(rng)).into_bytes();
    for _ in 0..rng.below(3) + 1 {
        const REPLACEMENTS: &[u8] = b"{}[]\":,0a\\ \x00\xff";
        const INSERTIONS: &[u8] = b"0123456789\"}";
        let at = rng.below(line.len().max(1));
        match rng.below(4) {
            0 => line.truncate(at),
            1 if at < line.len() => line[at] = *rng.pick(REPLACEMENTS),
            2 => line.insert(at.min(line.len()), *rng.pick(INSERTIONS)),
            _ if at < line.len() => {
                line.remove(at);
            }
            _ => {}
        }
    }
    decode_request(&line).ok()
}

/// Whether the reply to `request` may come after the step that sent it.
fn may_wait(request: &Request) -> bool {
    match request {
        Request::Start { wait, .. }
        | Request::Stop { wait, .. }
        | Request::Restart { wait, .. } => *wait,
        Request::Join { .. }
        | Request::Results { .. }
        | Request::RollingRestart { .. }
        | Request::PoolJoin { .. }
        | Request::SemAcquire { .. }
        | Request::EventWait { .. } => true,
        _ => false,
    }
}

/// The shell, played by a test: fake clock, fake pids, bookkeeping.
struct Driver {
    core: Supervisor,
    now: Instant,
    rng: Rng,
    next_pid: u32,
    next_request: RequestId,
    /// Spawned and not yet exited.
    live: BTreeSet<u32>,
    /// Requests without a reply yet, with the client that sent them.
    pending: BTreeMap<RequestId, (ClientId, Request)>,
    /// Requests of clients that went away: a reply is allowed, not required.
    dropped: BTreeSet<RequestId>,
    /// Configs `reload` may find.
    configs: Vec<Config>,
    seed: u64,
    /// The request being sent, whose reply is not a later one.
    sending: Option<RequestId>,
    stats: Stats,
}

/// What the histories exercised, so the test cannot silently go vacuous
/// (say, after a change that keeps every unit from starting).
#[derive(Debug, Default)]
struct Stats {
    requests: usize,
    /// Replies that came after the step that sent the request.
    later_replies: usize,
    spawns: usize,
    /// Failure hooks spawned (counted in `spawns` too).
    hooks: usize,
    signals: usize,
    reloads: usize,
    finished: usize,
}

impl Driver {
    fn new(seed: u64) -> Driver {
        let config = parse(CONFIG);
        let now = Instant::now();
        let mut core = Supervisor::new(&config);
        core.set_wall_clock(now, jiff::Timestamp::from_second(1_800_000_000).unwrap());
        Driver {
            core,
            now,
            rng: Rng(seed),
            next_pid: 1000,
            next_request: 0,
            live: BTreeSet::new(),
            pending: BTreeMap::new(),
            dropped: BTreeSet::new(),
            configs: vec![config, parse(&edited_config())],
            seed,
            sending: None,
            stats: Stats::default(),
        }
    }

    /// Feeds `input` and everything the shell would feed back (spawn
    /// results, reloaded configs); checks each action.
    fn feed(&mut self, input: Input) {
        let seed = self.seed;
        let mut fed_back = 0;
        let Driver {
            core,
            now,
            rng,
            next_pid,
            live,
            pending,
            dropped,
            configs,
            sending,
            stats,
            ..
        } = self;
        core.drive(*now, input, |action| {
            let next = match action {
                Action::RunHook { subject, spec, .. } => {
                    let owner = crate::core::Owner::Hook(subject);
                    if spec.argv.first().is_some_and(|p| p == "/no/such") || rng.chance(10) {
                        let error = "exec: No such file or directory".to_string();
                        Some(Input::SpawnFailed { owner, error })
                    } else {
                        stats.spawns += 1;
                        stats.hooks += 1;
                        *next_pid += 1;
                        live.insert(*next_pid);
                        Some(Input::Spawned {
                            owner,
                            pid: *next_pid,
                        })
                    }
                }
                Action::Spawn { owner, spec } => {
                    if spec.argv.first().is_some_and(|p| p == "/no/such") || rng.chance(10) {
                        let error = "exec: No such file or directory".to_string();
                        Some(Input::SpawnFailed { owner, error })
                    } else {
                        stats.spawns += 1;
                        *next_pid += 1;
                        live.insert(*next_pid);
                        Some(Input::Spawned {
                            owner,
                            pid: *next_pid,
                        })
                    }
                }
                Action::Signal { pid, signal } => {
                    stats.signals += 1;
                    assert!(
                        live.contains(&pid),
                        "seed {seed}: signal {signal} to pid {pid}, which is not alive"
                    );
                    None
                }
                Action::KillLeftovers { .. }
                | Action::KillPoolLeftovers { .. }
                | Action::Probe { .. }
                | Action::CancelProbe { .. }
                | Action::Publish(_)
                | Action::Reexec => None,
                Action::Reply { id, .. } => {
                    if *sending != Some(id) {
                        stats.later_replies += 1;
                    }
                    let known = pending.remove(&id).is_some() || dropped.remove(&id);
                    assert!(
                        known,
                        "seed {seed}: reply to request {id}, unknown or answered already"
                    );
                    None
                }
                Action::ReadConfig { id } => {
                    stats.reloads += 1;
                    let config = match rng.below(3) {
                        0 => Err("herd.toml:1:1: broken".to_string()),
                        _ => Ok(Box::new(rng.pick(configs).clone())),
                    };
                    Some(Input::ConfigLoaded { id, config })
                }
            };
            fed_back += usize::from(next.is_some());
            assert!(
                fed_back < MAX_CASCADE,
                "seed {seed}: endless cascade of inputs"
            );
            next
        });
    }

    /// Sends `request` from `client`; a verb that does not wait must be answered at once.
    fn request(&mut self, client: ClientId, request: Request) {
        self.next_request += 1;
        let id = self.next_request;
        let waits = may_wait(&request);
        let shown = format!("{request:?}");
        self.pending.insert(id, (client, request.clone()));
        self.stats.requests += 1;
        self.sending = Some(id);
        self.feed(Input::Request {
            id,
            client,
            request,
        });
        self.sending = None;
        assert!(
            waits || !self.pending.contains_key(&id),
            "seed {}: no reply at once to {shown}",
            self.seed
        );
    }

    fn exit(&mut self, pid: u32, exit: Exit) {
        self.live.remove(&pid);
        self.feed(Input::Exited { pid, exit });
    }

    fn tick(&mut self, by: Duration) {
        self.now += by;
        self.feed(Input::Tick);
        if let Some(deadline) = self.core.next_deadline() {
            assert!(
                deadline > self.now,
                "seed {}: a deadline {:?} in the past after a tick: herdd would spin",
                self.seed,
                self.now - deadline
            );
        }
    }

    fn random_live_pid(&mut self) -> Option<u32> {
        let pids: Vec<u32> = self.live.iter().copied().collect();
        (!pids.is_empty()).then(|| *self.rng.pick(&pids))
    }

    /// One random input.
    fn step(&mut self) {
        let client = 1 + self.rng.below(3) as ClientId;
        match self.rng.below(20) {
            0..=5 => {
                let request = request(&mut self.rng);
                self.request(client, request);
            }
            6 | 7 => {
                if let Some(request) = mutated(&mut self.rng) {
                    self.request(client, request);
                }
            }
            8..=10 => {
                if let Some(pid) = self.random_live_pid() {
                    let exit = match self.rng.below(4) {
                        0 => Exit::Code(0),
                        1 => Exit::Code(1),
                        2 => Exit::Signal("SIGKILL".into()),
                        _ => Exit::Unknown,
                    };
                    self.exit(pid, exit);
                }
            }
            // An orphan nobody knows.
            11 => self.feed(Input::Exited {
                pid: 1,
                exit: Exit::Code(0),
            }),
            12 => {
                let pid = self.random_live_pid().unwrap_or(7);
                let field = match self.rng.below(3) {
                    0 => ("READY".to_string(), "1".to_string()),
                    1 => ("STATUS".to_string(), "busy".to_string()),
                    _ => ("READY".to_string(), "0".to_string()),
                };
                let pgid = self.rng.chance(2).then_some(pid);
                self.feed(Input::Notify {
                    pid,
                    pgid,
                    fields: vec![field],
                });
            }
            13 => {
                let output = Input::Output {
                    task: self.rng.below(30) as TaskId,
                    stream: OutputStream::Stdout,
                    data: vec![b'x'; self.rng.below(100)],
                };
                self.feed(output);
            }
            14 => {
                // The client's waits are dropped with it: no reply owed.
                self.feed(Input::ClientGone { client });
                let gone: Vec<RequestId> = self
                    .pending
                    .iter()
                    .filter(|(_, (owner, _))| *owner == client)
                    .map(|(id, _)| *id)
                    .collect();
                for id in gone {
                    self.pending.remove(&id);
                    self.dropped.insert(id);
                }
            }
            15 if self.rng.chance(40) => self.feed(Input::Shutdown),
            15 => {
                let log_error = Input::LogError {
                    instance: InstanceId {
                        unit: "web".into(),
                        index: self.rng.below(4) as u32,
                    },
                    error: self.rng.chance(2).then(|| "disk full".to_string()),
                };
                self.feed(log_error);
            }
            _ => {
                let by = [0, 1, 10, 100, 1000, 10_000][self.rng.below(6)];
                self.tick(Duration::from_millis(by));
            }
        }
    }

    /// Ends everything; afterwards every request must have been answered.
    fn settle(&mut self) {
        let janitor: ClientId = 99;
        for _ in 0..MAX_SETTLE_ROUNDS {
            // What waits for an event gets it; slots held by clients are given back.
            let waited: BTreeSet<String> = self
                .pending
                .values()
                .filter_map(|(_, request)| match request {
                    Request::EventWait { name, .. } => Some(name.clone()),
                    _ => None,
                })
                .collect();
            for name in waited {
                self.request(janitor, Request::EventSet { name });
            }
            for client in 1..=3 {
                self.request(client, Request::SemRelease { name: "db".into() });
            }
            self.feed(Input::Shutdown);
            for pid in self.live.clone() {
                self.exit(pid, Exit::Code(0));
            }
            self.tick(Duration::from_secs(10));
            if self.core.is_finished() && self.pending.is_empty() {
                self.stats.finished += 1;
                return;
            }
        }
        panic!(
            "seed {}: not settled after {MAX_SETTLE_ROUNDS} rounds: finished = {}, live = {:?}, \
             unanswered = {:#?}",
            self.seed,
            self.core.is_finished(),
            self.live,
            self.pending
        );
    }
}

#[test]
fn random_inputs_never_panic_hang_or_lose_a_reply() {
    let mut total = Stats::default();
    for seed in 0..SEEDS {
        let mut driver = Driver::new(seed);
        driver.feed(Input::Boot);
        for _ in 0..STEPS {
            driver.step();
        }
        driver.settle();
        let stats = driver.stats;
        total.requests += stats.requests;
        total.later_replies += stats.later_replies;
        total.spawns += stats.spawns;
        total.hooks += stats.hooks;
        total.signals += stats.signals;
        total.reloads += stats.reloads;
        total.finished += stats.finished;
    }
    let exercised = total.requests > SEEDS as usize * STEPS / 4
        && total.later_replies > SEEDS as usize
        && total.spawns > SEEDS as usize * 5
        && total.hooks > SEEDS as usize / 2
        && total.signals > SEEDS as usize / 2
        && total.reloads > SEEDS as usize / 2
        && total.finished == SEEDS as usize;
    assert!(exercised, "the histories exercised too little: {total:?}");
    eprintln!("{total:?}");
}

/// Found by the test above: a wait on an event no one can ever set (an
/// invalid name) was queued and never answered.
#[test]
fn waiting_for_an_event_with_an_invalid_name_is_refused() {
    let mut driver = Driver::new(0);
    for name in ["", "a b", "-x"] {
        let request = Request::EventWait {
            name: name.into(),
            timeout_ms: None,
        };
        driver.request(1, request);
        assert!(driver.pending.is_empty(), "{name:?}: no reply");
    }
}

/// The earliest deadline found by walking every instance, task and waiter:
/// what `next_deadline` must equal, whatever its indexes.
fn brute_force_deadline(core: &Supervisor) -> Option<std::time::Instant> {
    let instances = core
        .units
        .values()
        .flat_map(|u| &u.instances)
        .filter_map(|i| i.next_timer());
    let tasks = core.tasks.values().filter_map(|t| t.deadline());
    let waiters = core.waiters.iter().filter_map(|w| w.deadline);
    let join = core
        .shutdown
        .as_ref()
        .filter(|s| !s.joined_terminated)
        .map(|s| s.join_deadline);
    let hooks = core.hooks.next_deadline();
    let results = core.held.next_deadline_by_walk();
    // A walk already (their number is the number of units rolling).
    let rollouts = core.next_rollout_deadline();
    let timers = core
        .timers
        .iter()
        .filter(|_| core.shutdown.is_none())
        .filter_map(|(_, t)| t.deadline);
    instances
        .chain(tasks)
        .chain(waiters)
        .chain(join)
        .chain(hooks)
        .chain(results)
        .chain(rollouts)
        .chain(timers)
        .min()
}

#[test]
fn next_deadline_is_the_earliest_of_all_under_random_inputs() {
    let mut compared = 0;
    let mut with_deadline = 0;
    let (mut results_due, mut results_waiting) = (0, 0);
    for seed in 0..SEEDS {
        let mut driver = Driver::new(seed);
        driver.feed(Input::Boot);
        for _ in 0..STEPS {
            driver.step();
            let expected = brute_force_deadline(&driver.core);
            assert_eq!(driver.core.next_deadline(), expected, "seed {seed}");
            assert!(driver.core.tasks.index_is_true(), "seed {seed}: task index");
            assert!(driver.core.waiters.index_is_true(), "seed {seed}: waiters");
            assert!(driver.core.units.index_is_true(), "seed {seed}: instances");
            assert!(driver.core.hooks.index_is_true(), "seed {seed}: hooks");
            assert!(driver.core.timers.index_is_true(), "seed {seed}: timers");
            let names = driver.core.task_names.index_is_true(&driver.core.tasks);
            assert!(names, "seed {seed}: task names");
            // Waiting `results`: what the index finds due, now or a little
            // later, is what a walk of every request finds.
            let later = driver.now + Duration::from_millis([0, 10, 300][driver.rng.below(3)]);
            let mut walked = driver.core.held.clone();
            let mut indexed = driver.core.held.clone();
            let due: Vec<_> = indexed
                .due(later)
                .into_iter()
                .map(|(c, w, t)| (c, w.request, t))
                .collect();
            assert_eq!(due, walked.due_by_walk(later), "seed {seed}: results");
            results_due += usize::from(!due.is_empty());
            results_waiting += usize::from(indexed.waiting_len() + due.len() > 0);
            compared += 1;
            with_deadline += usize::from(expected.is_some());
            if driver.rng.chance(20) {
                // A re-exec's restore rebuilds the indexes from the snapshot.
                let config = driver.configs[0].clone();
                let snapshot = driver.core.snapshot(driver.now, true);
                let restored = Supervisor::restore(&config, &snapshot, driver.now, false);
                assert!(restored.tasks.index_is_true(), "seed {seed}: restored");
                assert!(restored.units.index_is_true(), "seed {seed}: restored");
                let names = restored.task_names.index_is_true(&restored.tasks);
                assert!(names, "seed {seed}: restored task names");
                let walked = brute_force_deadline(&restored);
                assert_eq!(restored.next_deadline(), walked, "seed {seed}: restored");
            }
        }
    }
    assert!(
        with_deadline > compared / 10,
        "too few steps had a deadline: {with_deadline} of {compared}"
    );
    // Few histories leave a `results` waiting past its step; held.rs tests
    // the index under many more.
    assert!(
        results_waiting > 0 && results_due > 0,
        "no results request waited ({results_waiting}) or came due ({results_due})"
    );
}

/// The journal writes queued tasks once to its task log and the rest of the
/// state in each snapshot. Whatever happened in between (several steps or
/// one, a log started anew now and then), the snapshot with the log's tasks
/// put back must be the whole journal that a walk of every task gives, and
/// a pool's queue the same tasks as the core's queue.
#[test]
fn the_journal_snapshot_and_its_task_log_add_up_to_the_whole_state() {
    use crate::core::task_log;
    let (mut compared, mut logged) = (0, 0);
    for seed in 0..SEEDS {
        let mut driver = Driver::new(seed);
        driver.feed(Input::Boot);
        let mut log = Vec::new();
        for _ in 0..STEPS {
            driver.step();
            if driver.rng.chance(3) {
                continue;
            }
            if driver.rng.chance(40) {
                driver.core.journal_log_anew();
                log.clear();
            }
            let changes = driver.core.journal_changes(driver.now);
            for task in &changes.queued {
                task_log::push_queued(&mut log, task).unwrap();
            }
            for id in &changes.left {
                task_log::push_left(&mut log, *id);
            }
            let queued = task_log::replay(&log).unwrap();
            logged += queued.len();
            let merged = changes.snapshot.with_queued(queued);
            let whole = driver.core.journal_snapshot(driver.now);
            for (pool, rebuilt) in whole.pools.iter().zip(&merged.pools) {
                let mut queue = pool.queue.clone();
                queue.sort_unstable();
                let mut same = rebuilt.queue.clone();
                same.sort_unstable();
                assert_eq!(queue, same, "seed {seed}: the queue of {}", pool.name);
            }
            // Queues in the order a load rebuilds them in.
            assert_eq!(merged, whole.with_queued(vec![]), "seed {seed}");
            compared += 1;
        }
    }
    assert!(
        logged > compared / 10,
        "too few queued tasks: {logged} in {compared} snapshots"
    );
}
