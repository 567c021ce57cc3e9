//! `metrics`: what herdd knows, as Prometheus text exposition (format
//! 0.0.4), for `herdctl metrics` and for `GET /metrics` on `[herd]
//! metrics_listen` (see `http.rs`). Gathered only when asked: the core
//! answers `status`, `sem-list` and `event-list` as for any client, usage is
//! read off the event loop, and the text is built here.

use crate::shell::clients::{ClientId, Incoming, RequestSender};
use crate::shell::usage;
use herd_common::protocol::{
    ErrorCode, EventReport, Reply, Request, SemaphoreReport, StatusReport, SEMAPHORE_WAIT_BUCKETS,
    TASK_DURATION_BUCKETS,
};
use herd_common::state::State;
use serde::de::DeserializeOwned;
use std::fmt::{Display, Write as _};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::oneshot;

/// Control connections open now (socket clients), for `herd_daemon_connections`.
static CONNECTIONS: AtomicUsize = AtomicUsize::new(0);

/// Counts one open control connection for as long as it lives.
pub struct Counted(());

impl Default for Counted {
    fn default() -> Counted {
        CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        Counted(())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        CONNECTIONS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every state an instance can be in, for the `herd_instance_state` set.
const STATES: [State; 8] = [
    State::Inactive,
    State::Waiting,
    State::Starting,
    State::Running,
    State::Stopping,
    State::Exited,
    State::Failed,
    State::Backoff,
];

/// The exposition, or the error reply to give instead.
pub async fn gather(core: &RequestSender, client: ClientId) -> Result<String, Reply> {
    let status = ask(
        core,
        client,
        Request::Status {
            names: vec![],
            usage: true,
        },
    )
    .await?;
    let status = usage::with_usage(status).await;
    let status: StatusReport = decode(status)?;
    let semaphores: SemaphoreReport = decode(ask(core, client, Request::SemList).await?)?;
    let events: EventReport = decode(ask(core, client, Request::EventList).await?)?;
    let herdd = tokio::task::spawn_blocking(Herdd::read)
        .await
        .unwrap_or_default();
    Ok(render(&status, &semaphores, &events, &herdd))
}

async fn ask(core: &RequestSender, client: ClientId, request: Request) -> Result<Reply, Reply> {
    let (reply, answer) = oneshot::channel();
    let incoming = Incoming::Request {
        client,
        request,
        reply,
    };
    if core.send(incoming).is_err() {
        return Err(super::framing::shutting_down());
    }
    answer.await.map_err(|_| super::framing::shutting_down())
}

fn decode<T: DeserializeOwned>(reply: Reply) -> Result<T, Reply> {
    match reply {
        Reply::Ok(payload) => serde_json::from_value(payload).map_err(|err| {
            Reply::error(
                ErrorCode::Failed,
                format!("cannot read the core's reply: {err}"),
            )
        }),
        error @ Reply::Error(_) => Err(error),
    }
}

/// herdd's own figures, from /proc/self.
#[derive(Debug, Default)]
pub struct Herdd {
    resident_bytes: u64,
    open_fds: u64,
    uptime_seconds: f64,
}

impl Herdd {
    fn read() -> Herdd {
        // SAFETY: sysconf only reads a constant of the running system.
        let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        // SAFETY: as above.
        let ticks = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100);
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let resident_pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|pages| pages.parse().ok())
            .unwrap_or(0);
        let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64);
        // Started at `starttime` ticks after boot (field 22 of stat; a fork,
        // so a `daemon-reexec` keeps it); up since boot per /proc/uptime.
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let started_ticks: Option<f64> = stat
            .rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().nth(19)?.parse().ok());
        let since_boot: Option<f64> = std::fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|text| text.split_whitespace().next()?.parse().ok());
        let uptime_seconds = match (started_ticks, since_boot) {
            (Some(started), Some(now)) => {
                let seconds = (now - started / ticks.max(1) as f64).max(0.0);
                (seconds * 100.0).round() / 100.0
            }
            _ => 0.0,
        };
        Herdd {
            resident_bytes: resident_pages * page.max(1),
            open_fds,
            uptime_seconds,
        }
    }
}

/// The text exposition: `# HELP` and `# TYPE` once per family, then its samples.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, text)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape(text));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// A label value as the format wants it: `\`, `"` and newlines escaped.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders everything herdd reports.
pub fn render(
    status: &StatusReport,
    semaphores: &SemaphoreReport,
    events: &EventReport,
    herdd: &Herdd,
) -> String {
    let mut out = Exposition::default();
    render_instances(&mut out, status);
    render_health(&mut out, status);
    render_pools(&mut out, status);
    render_semaphores(&mut out, semaphores);
    out.family(
        "herd_event_set",
        "gauge",
        "1 when the event is set, else 0.",
    );
    for event in &events.events {
        out.sample(
            "herd_event_set",
            &[("event", &event.name)],
            u8::from(event.set),
        );
    }
    render_herdd(&mut out, herdd);
    out.text
}

fn render_instances(out: &mut Exposition, status: &StatusReport) {
    let instances = || {
        status
            .units
            .iter()
            .flat_map(|unit| unit.instances.iter().map(move |i| (unit.name.as_str(), i)))
    };
    out.family(
        "herd_instance_state",
        "gauge",
        "1 for the state the instance is in, 0 for the others.",
    );
    for (unit, instance) in instances() {
        for state in STATES {
            let labels = [
                ("unit", unit),
                ("instance", instance.name.as_str()),
                ("state", state.as_str()),
            ];
            out.sample(
                "herd_instance_state",
                &labels,
                u8::from(instance.state == state),
            );
        }
    }
    out.family(
        "herd_instance_restarts_total",
        "counter",
        "Times herd restarted the instance after it exited.",
    );
    for (unit, instance) in instances() {
        let labels = [("unit", unit), ("instance", instance.name.as_str())];
        out.sample("herd_instance_restarts_total", &labels, instance.restarts);
    }
    type Field = fn(&herd_common::protocol::InstanceStatus) -> Option<f64>;
    let running: [(&str, &str, &str, Field); 5] = [
        (
            "herd_instance_uptime_seconds",
            "gauge",
            "Seconds since its process was spawned.",
            |i| i.uptime_ms.map(|ms| ms as f64 / 1000.0),
        ),
        (
            "herd_instance_memory_bytes",
            "gauge",
            "Memory in use by its processes.",
            |i| i.usage.memory_bytes.map(|b| b as f64),
        ),
        (
            "herd_instance_memory_peak_bytes",
            "gauge",
            "The most memory it used, where the kernel records it.",
            |i| i.usage.memory_peak_bytes.map(|b| b as f64),
        ),
        (
            "herd_instance_cpu_seconds_total",
            "counter",
            "User plus system CPU time of its processes.",
            |i| i.usage.cpu_usec.map(|usec| usec as f64 / 1e6),
        ),
        (
            "herd_instance_processes",
            "gauge",
            "How many processes it has.",
            |i| i.usage.processes.map(|n| n as f64),
        ),
    ];
    for (name, kind, help, field) in running {
        out.family(name, kind, help);
        for (unit, instance) in instances() {
            if let Some(value) = field(instance) {
                let labels = [("unit", unit), ("instance", instance.name.as_str())];
                out.sample(name, &labels, value);
            }
        }
    }
}

/// Instances whose service has a `health` probe, while their process runs.
fn render_health(out: &mut Exposition, status: &StatusReport) {
    let probed = || {
        status.units.iter().flat_map(|unit| {
            unit.instances.iter().filter_map(move |i| {
                Some((unit.name.as_str(), i.name.as_str(), i.health.as_ref()?))
            })
        })
    };
    out.family(
        "herd_instance_healthy",
        "gauge",
        "1 when its health probe passes (fewer than retries failed since the last pass), \
         0 while starting or unhealthy.",
    );
    for (unit, instance, health) in probed() {
        let healthy = health.state == herd_common::protocol::HealthState::Healthy;
        let labels = [("unit", unit), ("instance", instance)];
        out.sample("herd_instance_healthy", &labels, u8::from(healthy));
    }
    out.family(
        "herd_instance_health_failures",
        "gauge",
        "Failed health probes in a row that count.",
    );
    for (unit, instance, health) in probed() {
        let labels = [("unit", unit), ("instance", instance)];
        out.sample("herd_instance_health_failures", &labels, health.failures);
    }
}

fn render_pools(out: &mut Exposition, status: &StatusReport) {
    out.family(
        "herd_pool_size",
        "gauge",
        "At most this many tasks run at once.",
    );
    for pool in &status.pools {
        out.sample("herd_pool_size", &[("pool", &pool.name)], pool.size);
    }
    out.family(
        "herd_pool_tasks",
        "gauge",
        "Tasks of the pool by state (finished: still kept).",
    );
    for pool in &status.pools {
        for (state, count) in [
            ("running", pool.running),
            ("queued", pool.queued),
            ("finished", pool.finished),
        ] {
            out.sample(
                "herd_pool_tasks",
                &[("pool", &pool.name), ("state", state)],
                count,
            );
        }
    }
    out.family(
        "herd_pool_queue_depth",
        "gauge",
        "Tasks waiting for a free slot.",
    );
    for pool in &status.pools {
        out.sample(
            "herd_pool_queue_depth",
            &[("pool", &pool.name)],
            pool.queued,
        );
    }
    type Count = fn(&herd_common::protocol::PoolStatus) -> u64;
    let totals: [(&str, &str, Count); 4] = [
        (
            "herd_pool_submitted_total",
            "Tasks ever submitted to the pool.",
            |p| p.submitted,
        ),
        (
            "herd_pool_completed_total",
            "Tasks that exited with code 0, since herdd started.",
            |p| p.tally.completed,
        ),
        (
            "herd_pool_failed_total",
            "Tasks that failed, since herdd started.",
            |p| p.tally.failed,
        ),
        (
            "herd_pool_cancelled_total",
            "Tasks cancelled, since herdd started.",
            |p| p.tally.cancelled,
        ),
    ];
    for (name, help, count) in totals {
        out.family(name, "counter", help);
        for pool in &status.pools {
            out.sample(name, &[("pool", &pool.name)], count(pool));
        }
    }
    let name = "herd_pool_task_duration_seconds";
    out.family(
        name,
        "histogram",
        "How long the pool's tasks ran, since herdd started.",
    );
    for pool in &status.pools {
        let counts = &pool.tally.duration_counts;
        let mut cumulative = 0u64;
        for (i, bound) in TASK_DURATION_BUCKETS.iter().enumerate() {
            cumulative += counts.get(i).copied().unwrap_or(0);
            let le = bound.to_string();
            out.sample(
                &format!("{name}_bucket"),
                &[("pool", &pool.name), ("le", &le)],
                cumulative,
            );
        }
        let total: u64 = counts.iter().sum();
        out.sample(
            &format!("{name}_bucket"),
            &[("pool", &pool.name), ("le", "+Inf")],
            total,
        );
        let sum = pool.tally.duration_sum_ms as f64 / 1000.0;
        out.sample(&format!("{name}_sum"), &[("pool", &pool.name)], sum);
        out.sample(&format!("{name}_count"), &[("pool", &pool.name)], total);
    }
}

fn render_semaphores(out: &mut Exposition, report: &SemaphoreReport) {
    type Count = fn(&herd_common::protocol::SemaphoreStatus) -> usize;
    let families: [(&str, &str, Count); 3] = [
        ("herd_semaphore_capacity", "Slots of the semaphore.", |s| {
            s.capacity as usize
        }),
        ("herd_semaphore_held", "Slots held now.", |s| {
            s.holders.len()
        }),
        (
            "herd_semaphore_waiting",
            "Holders waiting in line for a slot.",
            |s| s.waiters.len(),
        ),
    ];
    for (name, help, count) in families {
        out.family(name, "gauge", help);
        for semaphore in &report.semaphores {
            out.sample(name, &[("semaphore", &semaphore.name)], count(semaphore));
        }
    }
    render_semaphore_waits(out, report);
}

/// `herd_semaphore_wait_seconds`: one observation per slot granted, 0 for
/// one granted at once.
fn render_semaphore_waits(out: &mut Exposition, report: &SemaphoreReport) {
    let name = "herd_semaphore_wait_seconds";
    out.family(
        name,
        "histogram",
        "How long holders waited for a slot, since herdd started.",
    );
    for semaphore in &report.semaphores {
        let label = ("semaphore", semaphore.name.as_str());
        let counts = &semaphore.waits.counts;
        let mut cumulative = 0u64;
        for (i, bound) in SEMAPHORE_WAIT_BUCKETS.iter().enumerate() {
            cumulative += counts.get(i).copied().unwrap_or(0);
            let le = bound.to_string();
            out.sample(&format!("{name}_bucket"), &[label, ("le", &le)], cumulative);
        }
        let total = semaphore.waits.count();
        out.sample(&format!("{name}_bucket"), &[label, ("le", "+Inf")], total);
        let sum = semaphore.waits.sum_us as f64 / 1e6;
        out.sample(&format!("{name}_sum"), &[label], sum);
        out.sample(&format!("{name}_count"), &[label], total);
    }
}

fn render_herdd(out: &mut Exposition, herdd: &Herdd) {
    let figures: [(&str, &str, f64); 4] = [
        (
            "herd_daemon_resident_memory_bytes",
            "herdd's own resident memory.",
            herdd.resident_bytes as f64,
        ),
        (
            "herd_daemon_open_fds",
            "Descriptors herdd has open.",
            herdd.open_fds as f64,
        ),
        (
            "herd_daemon_connections",
            "Control socket connections open now.",
            CONNECTIONS.load(Ordering::Relaxed) as f64,
        ),
        (
            "herd_daemon_uptime_seconds",
            "Seconds since herdd started.",
            herdd.uptime_seconds,
        ),
    ];
    for (name, help, value) in figures {
        out.family(name, "gauge", help);
        out.sample(name, &[], value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_common::protocol::{EventStatus, PoolStatus, PoolTally, SemaphoreStatus};

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let mut tally = PoolTally::default();
        tally.record(herd_common::state::TaskState::Exited, Some(50));
        tally.record(herd_common::state::TaskState::Failed, Some(2_000));
        tally.record(herd_common::state::TaskState::Exited, Some(7_200_000));
        let status = StatusReport {
            sockets: vec![],
            units: vec![],
            pools: vec![PoolStatus {
                name: "p".into(),
                size: 2,
                running: 0,
                queued: 0,
                finished: 3,
                submitted: 3,
                max_queue: 10,
                keep_finished: 10,
                closed: false,
                tally,
                hook_error: None,
            }],
        };
        let mut waits = herd_common::protocol::WaitTally::default();
        waits.record(std::time::Duration::ZERO);
        waits.record(std::time::Duration::from_millis(300));
        waits.record(std::time::Duration::from_secs(7200));
        let semaphores = SemaphoreReport {
            semaphores: vec![SemaphoreStatus {
                name: "disk \"a\"".into(),
                capacity: 2,
                holders: vec!["x".into()],
                waiters: vec![],
                waits,
            }],
        };
        let events = EventReport {
            events: vec![EventStatus {
                name: "go".into(),
                set: true,
            }],
        };
        let text = render(&status, &semaphores, &events, &Herdd::default());
        for line in [
            "herd_pool_task_duration_seconds_bucket{pool=\"p\",le=\"0.1\"} 1\n",
            "herd_pool_task_duration_seconds_bucket{pool=\"p\",le=\"5\"} 2\n",
            "herd_pool_task_duration_seconds_bucket{pool=\"p\",le=\"3600\"} 2\n",
            "herd_pool_task_duration_seconds_bucket{pool=\"p\",le=\"+Inf\"} 3\n",
            "herd_pool_task_duration_seconds_count{pool=\"p\"} 3\n",
            "herd_pool_completed_total{pool=\"p\"} 2\n",
            "herd_pool_failed_total{pool=\"p\"} 1\n",
            "herd_semaphore_held{semaphore=\"disk \\\"a\\\"\"} 1\n",
            "herd_semaphore_wait_seconds_bucket{semaphore=\"disk \\\"a\\\"\",le=\"0.005\"} 1\n",
            "herd_semaphore_wait_seconds_bucket{semaphore=\"disk \\\"a\\\"\",le=\"0.5\"} 2\n",
            "herd_semaphore_wait_seconds_bucket{semaphore=\"disk \\\"a\\\"\",le=\"3600\"} 2\n",
            "herd_semaphore_wait_seconds_bucket{semaphore=\"disk \\\"a\\\"\",le=\"+Inf\"} 3\n",
            "herd_semaphore_wait_seconds_sum{semaphore=\"disk \\\"a\\\"\"} 7200.3\n",
            "herd_semaphore_wait_seconds_count{semaphore=\"disk \\\"a\\\"\"} 3\n",
            "herd_event_set{event=\"go\"} 1\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
