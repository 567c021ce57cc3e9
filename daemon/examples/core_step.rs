//! What one input costs the core, by how much it remembers: a timing
//! program run by hand (not a test), for bench/README.md.
//!
//! ```sh
//! cargo run --release -p herdd --example core_step            # 50 and 5000
//! cargo run --release -p herdd --example core_step -- 50 500 5000
//! ```
//!
//! For each size N it builds a core (no shell, no processes: pids are made
//! up) with a service of N instances (each with a watchdog deadline), N
//! task units with timers, and N named tasks queued in a pool of one (plus
//! N kept finished ones). Then it repeats one round of inputs: an instance
//! crashes, its restart comes due (a tick) and is spawned, and a
//! `submit --unique` finds the live task of its name; after each input it
//! asks for the next deadline, as herdd's event loop does. It prints the
//! CPU time (of this thread, so not the machine's load) per round.

use herd_common::protocol::{Request, SubmitOptions};
use herd_common::state::Exit;
use herdd::core::{Action, Input, InstanceId, Owner, Supervisor};
use nix::time::{clock_gettime, ClockId};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Rounds timed per size (after as many untimed ones), unless
/// `CORE_STEP_ROUNDS` says otherwise.
const ROUNDS: u32 = 2000;

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|arg| arg.parse().expect("sizes are numbers"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![50, 5000]
    } else {
        sizes
    };
    println!("{:>8} {:>16} {:>12}", "N", "us per round", "inputs");
    let mut first = None;
    for n in sizes {
        let (per_round, inputs) = measure(n);
        let base = *first.get_or_insert(per_round);
        println!(
            "{n:>8} {:>16.1} {inputs:>12}   {:.2}x the first size",
            per_round.as_secs_f64() * 1e6,
            per_round.as_secs_f64() / base.as_secs_f64()
        );
    }
}

fn config(n: usize) -> herd_config::Config {
    let mut text = format!(
        r#"
[service.web]
command = ["/bin/web", "{{instance}}"]
instances = {n}
watchdog = "1h"
restart = "always"
restart_delay = "100ms"
restart_delay_max = "100ms"
start_limit = 1000000
start_interval = "1s"

[pool.p]
size = 1
keep_finished = {n}
"#
    );
    for i in 0..n {
        text.push_str(&format!(
            "\n[task.t{i}]\ncommand = [\"/bin/t\"]\nevery = \"{}h\"\n",
            i + 2
        ));
    }
    herd_config::parse(std::path::Path::new("/bench/herd.toml"), &text).expect("valid config")
}

/// The core's side of the shell: answers spawns with made-up pids.
struct Bench {
    core: Supervisor,
    now: Instant,
    next_pid: u32,
    pids: HashMap<InstanceId, u32>,
    next_request: u64,
    inputs: u64,
}

impl Bench {
    fn feed(&mut self, input: Input) {
        let (mut next_pid, pids) = (self.next_pid, &mut self.pids);
        let mut inputs = 0;
        self.core.drive(self.now, input, |action| {
            inputs += 1;
            let Action::Spawn { owner, .. } = action else {
                return None;
            };
            next_pid += 1;
            if let Owner::Instance(id) = &owner {
                pids.insert(id.clone(), next_pid);
            }
            Some(Input::Spawned {
                owner,
                pid: next_pid,
            })
        });
        self.next_pid = next_pid;
        self.inputs += inputs;
        // herdd asks after every input when to wake next.
        std::hint::black_box(self.core.next_deadline());
    }

    fn submit(&mut self, name: String, unique: bool) {
        self.next_request += 1;
        let request = Request::Submit {
            pool: "p".into(),
            command: vec!["/bin/job".into()],
            name: Some(name),
            options: SubmitOptions {
                unique,
                ..Default::default()
            },
        };
        self.feed(Input::Request {
            id: self.next_request,
            client: 1,
            request,
        });
    }

    /// Instance `index` of `web` crashes; its restart comes due.
    fn crash_and_restart(&mut self, index: u32) {
        let id = InstanceId {
            unit: "web".into(),
            index,
        };
        let pid = self.pids[&id];
        self.feed(Input::Exited {
            pid,
            exit: Exit::Code(1),
        });
        self.now += Duration::from_millis(100);
        self.feed(Input::Tick);
    }
}

/// CPU time per round and inputs per round, for size `n`.
fn measure(n: usize) -> (Duration, u64) {
    let rounds: u32 = std::env::var("CORE_STEP_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(ROUNDS);
    let config = config(n);
    let mut bench = Bench {
        core: Supervisor::new(&config),
        now: Instant::now(),
        next_pid: 1000,
        pids: HashMap::new(),
        next_request: 0,
        inputs: 0,
    };
    bench.feed(Input::Boot);
    assert_eq!(bench.pids.len(), n, "every instance runs");
    // N kept finished tasks, then N live ones (one runs, the rest queue).
    for i in 0..n {
        bench.submit(format!("done{i}"), false);
    }
    let pids: Vec<u32> = (1001 + n as u32..=bench.next_pid).collect();
    for pid in pids {
        bench.feed(Input::Exited {
            pid,
            exit: Exit::Code(0),
        });
    }
    for i in 0..n {
        bench.submit(format!("live{i}"), false);
    }
    let round = |bench: &mut Bench, r: u32| {
        bench.crash_and_restart(r % n as u32);
        bench.submit(format!("live{}", r as usize % n), true);
    };
    for r in 0..rounds {
        round(&mut bench, r);
    }
    let inputs_before = bench.inputs;
    let started = cpu_time();
    for r in 0..rounds {
        round(&mut bench, r);
    }
    let spent = cpu_time() - started;
    (
        spent / rounds,
        (bench.inputs - inputs_before) / u64::from(rounds),
    )
}

fn cpu_time() -> Duration {
    let spec = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).expect("thread CPU clock");
    Duration::new(spec.tv_sec() as u64, spec.tv_nsec() as u32)
}
