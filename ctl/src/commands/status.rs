//! `herdctl status [NAME...]`: a table of every instance, or a
//! `systemctl status`-like block per named unit.

use super::{Context, Outcome};
use crate::cli::StatusArgs;
use crate::error::Error;
use crate::output::{
    self, format_bytes, format_command, format_cpu, format_duration, format_exit, format_moment,
    now_ms, Cell, Paint, Table,
};
use herd_common::protocol::{
    Health, HealthState, InstanceStatus, PoolStatus, Request, SocketStatus, StatusReport,
    TimerStatus, UnitKind, UnitStatus, Usage,
};
use herd_common::state::State;
use std::fmt::Write as _;

pub fn exec(ctx: &Context, args: StatusArgs) -> Result<Outcome, Error> {
    let named = !args.names.is_empty();
    let report: StatusReport = ctx.call(&Request::Status {
        names: args.names,
        usage: !args.no_usage,
    })?;
    if ctx.json {
        output::print_json(&report)?;
    } else if named {
        output::print_text(&render_blocks(&report, ctx.colour))?;
    } else {
        output::print_text(&render_overview(&report, ctx.colour))?;
    }
    Ok(outcome(named, &report))
}

/// Exit 3 when a named unit is not running, as `systemctl status` does for
/// anything not active. Judged on the instances herdd returned, so that
/// `status web@2` is about `web@2` only; a unit scaled to zero is not running.
fn outcome(named: bool, report: &StatusReport) -> Outcome {
    let all_running = !report.units.is_empty()
        && report.units.iter().all(|unit| {
            !unit.instances.is_empty() && unit.instances.iter().all(|i| i.state == State::Running)
        });
    if named && !all_running {
        Outcome::NotRunning
    } else {
        Outcome::Success
    }
}

/// `status` without names: the units table, then, when herd has task
/// pools, a blank line and the pools table.
pub fn render_overview(report: &StatusReport, colour: bool) -> String {
    let mut out = render_table(report, colour);
    if !report.pools.is_empty() {
        out.push('\n');
        out.push_str(&render_pools(&report.pools, colour));
    }
    if !report.sockets.is_empty() {
        out.push('\n');
        out.push_str(&render_sockets(&report.sockets, colour));
    }
    if report.units.iter().any(|unit| unit.timer.is_some()) {
        out.push('\n');
        out.push_str(&render_timers(&report.units, now_ms(), colour));
    }
    out.push_str(&render_hook_errors(report));
    out
}

/// After the tables, a line per unit or pool whose `on_failure` hook
/// cannot be executed (it is not run again until the next reload).
fn render_hook_errors(report: &StatusReport) -> String {
    let units = report.units.iter().map(|u| ("", &u.name, &u.hook_error));
    let pools = report
        .pools
        .iter()
        .map(|p| ("pool ", &p.name, &p.hook_error));
    let mut out = String::new();
    for (kind, name, error) in units.chain(pools) {
        if let Some(error) = error {
            let _ = writeln!(out, "{kind}{name}: {}", hook_error_text(error));
        }
    }
    if !out.is_empty() {
        out.insert(0, '\n');
    }
    out
}

/// How a hook that cannot be executed is described.
fn hook_error_text(error: &str) -> String {
    format!("on_failure hook cannot run: {error} (not run again until reload)")
}

/// One row per task with a timer: its schedule, its last run and result,
/// and its next run.
pub fn render_timers(units: &[UnitStatus], now_ms: i64, colour: bool) -> String {
    let mut table = Table::new(&["TIMER", "SCHEDULE", "LAST RUN", "RESULT", "NEXT RUN"]);
    for unit in units {
        let Some(timer) = &unit.timer else { continue };
        let (last, result) = last_run_cells(timer, now_ms);
        table.push(vec![
            Cell::new(&unit.name),
            Cell::new(schedule_text(timer)),
            Cell::new(last),
            Cell::new(result),
            Cell::new(next_run_text(timer, now_ms)),
        ]);
    }
    table.render(colour)
}

/// `*/15 * * * *`, or `every 10m in pool io`.
fn schedule_text(timer: &TimerStatus) -> String {
    match &timer.pool {
        Some(pool) => format!("{} in pool {pool}", timer.schedule),
        None => timer.schedule.clone(),
    }
}

fn last_run_cells(timer: &TimerStatus, now_ms: i64) -> (String, String) {
    match &timer.last_run {
        None => ("-".into(), "-".into()),
        Some(run) => (
            format_moment(run.started_ms, now_ms),
            run.result.clone().unwrap_or_else(|| "running".into()),
        ),
    }
}

/// When it runs next; `-` when it is not scheduled, or says it waits for
/// the run under way (an interval from the end of the last run).
fn next_run_text(timer: &TimerStatus, now_ms: i64) -> String {
    let running = timer
        .last_run
        .as_ref()
        .is_some_and(|run| run.result.is_none());
    let next = match timer.next_run_ms {
        Some(ms) => format_moment(ms, now_ms),
        None if running => "after the run under way".into(),
        None => "-".into(),
    };
    if timer.queued {
        format!("{next}; one run queued")
    } else {
        next
    }
}

/// `Timer`, `Last run` and `Next run` lines of a task with a timer.
fn timer_lines(timer: &TimerStatus, now_ms: i64) -> Vec<(String, String)> {
    let (last, result) = last_run_cells(timer, now_ms);
    let last = match timer.last_run {
        Some(_) => format!("{last}: {result}"),
        None => last,
    };
    vec![
        (
            "Timer".to_string(),
            format!("{} ({} runs)", schedule_text(timer), timer.runs),
        ),
        ("Last run".to_string(), last),
        ("Next run".to_string(), next_run_text(timer, now_ms)),
    ]
}

/// One row per listening socket herd holds, with the services using it.
pub fn render_sockets(sockets: &[SocketStatus], colour: bool) -> String {
    let mut table = Table::new(&["SOCKET", "LISTEN", "USED BY"]);
    for socket in sockets {
        let users = if socket.units.is_empty() {
            "-".to_string()
        } else {
            socket.units.join(", ")
        };
        table.push(vec![
            Cell::new(&socket.name),
            Cell::new(&socket.listen),
            Cell::new(users),
        ]);
    }
    table.render(colour)
}

/// One row per task pool: its size, what it is doing, what it has done,
/// and whether `pool close` was called.
pub fn render_pools(pools: &[PoolStatus], colour: bool) -> String {
    let mut table = Table::new(&[
        "POOL",
        "SIZE",
        "RUNNING",
        "QUEUED",
        "FINISHED",
        "SUBMITTED",
        "STATE",
    ]);
    for pool in pools {
        let state = if pool.closed {
            Cell::painted("closed", Paint::Yellow)
        } else {
            Cell::new("open")
        };
        table.push(vec![
            Cell::new(&pool.name),
            Cell::new(pool.size.to_string()),
            Cell::new(pool.running.to_string()),
            Cell::new(pool.queued.to_string()),
            Cell::new(pool.finished.to_string()),
            Cell::new(pool.submitted.to_string()),
            state,
        ]);
    }
    table.render(colour)
}

/// One row per instance; a unit without instances (scaled to zero) still
/// gets a row so it never silently disappears. The REASON column only
/// appears when some instance has something to say: herd's own reason
/// (why it waits, backs off or failed) or, when there is none, the last
/// `STATUS=` the process sent on the notify socket, in double quotes so it
/// reads as the process's words, not herd's (as `systemctl status` quotes
/// it). The header stays `REASON`, so scripts that cut columns by header
/// keep working.
pub fn render_table(report: &StatusReport, colour: bool) -> String {
    let with_reason = report
        .units
        .iter()
        .flat_map(|unit| &unit.instances)
        .any(|instance| reason_cell(instance).is_some());
    let with_usage = report
        .units
        .iter()
        .flat_map(|unit| &unit.instances)
        .any(|instance| instance.usage != Usage::default());
    let with_health = report
        .units
        .iter()
        .flat_map(|unit| &unit.instances)
        .any(|instance| instance.health.is_some());
    let mut header = vec!["UNIT", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT"];
    if with_usage {
        header.extend(["MEMORY", "CPU", "TASKS"]);
    }
    if with_health {
        header.push("HEALTH");
    }
    if with_reason {
        header.push("REASON");
    }
    let mut table = Table::new(&header);
    for unit in &report.units {
        if unit.instances.is_empty() {
            table.push(vec![
                Cell::new(&unit.name),
                Cell::painted(unit.state.as_str(), Paint::for_state(unit.state)),
            ]);
        }
        for instance in &unit.instances {
            let mut row = vec![
                Cell::new(&instance.name),
                Cell::painted(state_label(instance), Paint::for_state(instance.state)),
                Cell::new(
                    instance
                        .pid
                        .map_or_else(|| "-".into(), |pid| pid.to_string()),
                ),
                Cell::new(
                    instance
                        .uptime_ms
                        .map_or_else(|| "-".into(), format_duration),
                ),
                Cell::new(instance.restarts.to_string()),
                Cell::new(format_exit(instance.last_exit.as_ref())),
            ];
            if with_usage {
                row.extend(usage_cells(&instance.usage));
            }
            if with_health {
                row.push(health_cell(instance.health.as_ref()));
            }
            if with_reason {
                row.push(Cell::new(reason_cell(instance).unwrap_or_default()));
            }
            table.push(row);
        }
    }
    table.render(colour)
}

/// The MEMORY, CPU and TASKS cells: `-` for what is not known (an
/// instance that is not running).
fn usage_cells(usage: &Usage) -> [Cell; 3] {
    let or_dash = |value: Option<String>| Cell::new(value.unwrap_or_else(|| "-".into()));
    [
        or_dash(usage.memory_bytes.map(format_bytes)),
        or_dash(usage.cpu_usec.map(format_cpu)),
        or_dash(usage.processes.map(|n| n.to_string())),
    ]
}

/// The HEALTH cell: `healthy`, `healthy, 1 failed`, `starting`,
/// `unhealthy`, or `-` when it is not probed (not running, no `health`).
fn health_cell(health: Option<&Health>) -> Cell {
    let Some(health) = health else {
        return Cell::new("-");
    };
    let paint = match health.state {
        HealthState::Healthy if health.failures == 0 => Paint::Green,
        HealthState::Healthy | HealthState::Starting => Paint::Yellow,
        HealthState::Unhealthy => Paint::Red,
    };
    let text = match (health.state, health.failures) {
        (HealthState::Healthy, failed @ 1..) => format!("healthy, {failed} failed"),
        (state, _) => state.to_string(),
    };
    Cell::painted(text, paint)
}

/// `health: healthy`, `health: unhealthy (probe exited 1: db down)`, and
/// why herd last restarted it for its health, if it did.
fn health_part(health: &Health) -> String {
    let mut text = format!("health: {}", health.state);
    if health.failures > 0 {
        let _ = write!(text, ", {} failed", health.failures);
    }
    if let Some(error) = &health.error {
        let _ = write!(text, " ({error})");
    }
    if let Some(restarted) = &health.restarted {
        let _ = write!(text, ", last restarted: {restarted}");
    }
    text
}

/// What the REASON column shows for an instance: herd's reason, else the
/// process's own `STATUS=` text, quoted; then why its log cannot be
/// written, if it cannot.
fn reason_cell(instance: &InstanceStatus) -> Option<String> {
    let reason = match (&instance.reason, &instance.notify_status) {
        (Some(reason), _) => Some(reason.clone()),
        (None, Some(status)) => Some(quote_status(status)),
        (None, None) => None,
    };
    match (reason, &instance.log_error) {
        (Some(reason), Some(error)) => Some(format!("{reason}; log: {error}")),
        (None, Some(error)) => Some(format!("log: {error}")),
        (reason, None) => reason,
    }
}

/// `"Serving 4 clients"`: a notify status as herd quotes it, its control
/// characters escaped so a process cannot garble the table or the terminal.
fn quote_status(status: &str) -> String {
    let mut quoted = String::with_capacity(status.len() + 2);
    quoted.push('"');
    for c in status.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.extend(c.escape_default()),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// How far the shortest label of a status block is indented.
const INDENT: usize = 4;

/// A block per unit, separated by blank lines, like `systemctl status`.
pub fn render_blocks(report: &StatusReport, colour: bool) -> String {
    report
        .units
        .iter()
        .map(|unit| render_block(unit, colour))
        .collect::<Vec<_>>()
        .join("\n")
}

/// ```text
/// ● web - service, 2 instances
///       State: running
///     Command: /usr/bin/app --port 80{instance}
///       web@0: running, pid 1240, up 5m10s, 2 restarts, last exit code 1
/// ```
/// Labels are right-aligned so the colons line up, whatever the instance names.
fn render_block(unit: &UnitStatus, colour: bool) -> String {
    let paint = Paint::for_state(unit.state);
    let count = unit.instances.len();
    let mut lines = vec![(
        "State".to_string(),
        paint.apply(unit.state.as_str(), colour),
    )];
    lines.push(("Command".to_string(), format_command(&unit.command)));
    if let Some(error) = &unit.hook_error {
        lines.push(("Hook".to_string(), hook_error_text(error)));
    }
    if let Some(timer) = &unit.timer {
        lines.extend(timer_lines(timer, now_ms()));
    }
    lines.extend(usage_lines(unit));
    for instance in &unit.instances {
        lines.push((instance.name.clone(), describe_instance(instance, colour)));
    }
    let longest_label = lines.iter().map(|(label, _)| label.chars().count()).max();
    let label_width = INDENT + longest_label.unwrap_or(0);

    let mut out = format!(
        "{} {} - {}, {count} {}\n",
        paint.apply("●", colour),
        unit.name,
        kind_name(unit.kind),
        if count == 1 { "instance" } else { "instances" },
    );
    for (label, value) in lines {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{label:>label_width$}: {value}");
    }
    out
}

/// `Tasks`, `Memory` and `CPU` lines, as `systemctl status` has them:
/// summed over the unit's running instances; none when nothing is known.
fn usage_lines(unit: &UnitStatus) -> Vec<(String, String)> {
    let sum = |field: fn(&Usage) -> Option<u64>| -> Option<u64> {
        let known: Vec<u64> = unit
            .instances
            .iter()
            .filter_map(|i| field(&i.usage))
            .collect();
        (!known.is_empty()).then(|| known.iter().sum())
    };
    let mut lines = Vec::new();
    if let Some(processes) = sum(|u| u.processes) {
        lines.push(("Tasks".to_string(), processes.to_string()));
    }
    if let Some(memory) = sum(|u| u.memory_bytes) {
        let mut text = format_bytes(memory);
        if let Some(peak) = sum(|u| u.memory_peak_bytes) {
            let _ = write!(text, " (peak: {})", format_bytes(peak));
        }
        lines.push(("Memory".to_string(), text));
    }
    if let Some(cpu) = sum(|u| u.cpu_usec) {
        lines.push(("CPU".to_string(), format_cpu(cpu)));
    }
    lines
}

/// `running`, or `running (adopted)` for a process herdd re-adopted after
/// a crash (it is no longer herdd's child; its exit status will be unknown).
fn state_label(instance: &InstanceStatus) -> String {
    if instance.adopted {
        format!("{} (adopted)", instance.state)
    } else {
        instance.state.to_string()
    }
}

/// `running, pid 1240, up 5m10s, 2 restarts, last exit code 1`, or
/// `failed (start limit hit), 5 restarts, last exit SIGKILL`: the reason
/// follows the state it explains, as in systemctl's `failed (Result: ...)`.
/// The last notify `STATUS=` text, if any, ends the line:
/// `status: "Serving 4 clients"`.
fn describe_instance(instance: &InstanceStatus, colour: bool) -> String {
    let state = Paint::for_state(instance.state).apply(&state_label(instance), colour);
    let mut parts = vec![match &instance.reason {
        Some(reason) => format!("{state} ({reason})"),
        None => state,
    }];
    if let Some(pid) = instance.pid {
        parts.push(format!("pid {pid}"));
    }
    if let Some(uptime) = instance.uptime_ms {
        parts.push(format!("up {}", format_duration(uptime)));
    }
    parts.push(match instance.restarts {
        1 => "1 restart".to_string(),
        n => format!("{n} restarts"),
    });
    if let Some(exit) = &instance.last_exit {
        parts.push(format!("last exit {}", format_exit(Some(exit))));
    }
    if let Some(memory) = instance.usage.memory_bytes {
        parts.push(format!("memory {}", format_bytes(memory)));
    }
    if let Some(cpu) = instance.usage.cpu_usec {
        parts.push(format!("cpu {}", format_cpu(cpu)));
    }
    if let Some(processes) = instance.usage.processes {
        parts.push(match processes {
            1 => "1 process".to_string(),
            n => format!("{n} processes"),
        });
    }
    if let Some(health) = &instance.health {
        parts.push(health_part(health));
    }
    if let Some(status) = &instance.notify_status {
        parts.push(format!("status: {}", quote_status(status)));
    }
    if let Some(error) = &instance.log_error {
        parts.push(format!("log: {error}"));
    }
    parts.join(", ")
}

fn kind_name(kind: UnitKind) -> &'static str {
    match kind {
        UnitKind::Service => "service",
        UnitKind::Task => "task",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_common::protocol::TimerRun;
    use herd_common::state::Exit;

    fn instance(name: &str, state: State) -> InstanceStatus {
        InstanceStatus {
            name: name.into(),
            state,
            pid: None,
            uptime_ms: None,
            restarts: 0,
            last_exit: None,
            reason: None,
            notify_status: None,
            adopted: false,
            log_error: None,
            health: None,
            usage: Default::default(),
        }
    }

    fn running(name: &str, pid: u32, uptime_ms: u64) -> InstanceStatus {
        InstanceStatus {
            pid: Some(pid),
            uptime_ms: Some(uptime_ms),
            ..instance(name, State::Running)
        }
    }

    fn unit(
        name: &str,
        kind: UnitKind,
        state: State,
        instances: Vec<InstanceStatus>,
    ) -> UnitStatus {
        UnitStatus {
            name: name.into(),
            kind,
            state,
            command: vec![
                "/usr/bin/app".into(),
                "--port".into(),
                "80{instance}".into(),
            ],
            instances,
            hook_error: None,
            timer: None,
        }
    }

    fn timed(last: Option<TimerRun>, next_run_ms: Option<i64>) -> UnitStatus {
        UnitStatus {
            timer: Some(TimerStatus {
                schedule: "every 1m".into(),
                next_run_ms,
                last_run: last,
                runs: 3,
                pool: Some("io".into()),
                queued: false,
            }),
            ..unit("job", UnitKind::Task, State::Exited, vec![])
        }
    }

    #[test]
    fn timers_show_schedule_last_and_next_run() {
        let now = 1_800_000_000_000;
        let done = TimerRun {
            started_ms: now - 90_000,
            result: Some("exit code 0".into()),
        };
        let table = render_timers(&[timed(Some(done), Some(now + 30_000))], now, false);
        assert!(table.contains("every 1m in pool io"), "{table}");
        assert!(
            table.contains("(1m30s ago)") && table.contains("exit code 0"),
            "{table}"
        );
        assert!(table.contains("(in 30s)"), "{table}");
        let going = TimerRun {
            started_ms: now - 1000,
            result: None,
        };
        let table = render_timers(&[timed(Some(going), None)], now, false);
        assert!(
            table.contains("running") && table.contains("after the run under way"),
            "{table}"
        );
        let lines = timer_lines(&timed(None, None).timer.unwrap(), now);
        assert_eq!(lines[0].1, "every 1m in pool io (3 runs)");
        assert_eq!(lines[1].1, "-");
        assert_eq!(lines[2].1, "-");
    }

    /// A pool with one healthy, one backing-off and one broken instance, a
    /// single service, a finished task and a pool scaled to zero.
    fn sample() -> StatusReport {
        StatusReport {
            units: vec![
                unit(
                    "web",
                    UnitKind::Service,
                    State::Failed,
                    vec![
                        InstanceStatus {
                            restarts: 2,
                            last_exit: Some(Exit::Code(1)),
                            ..running("web@0", 1240, 310_000)
                        },
                        InstanceStatus {
                            restarts: 3,
                            last_exit: Some(Exit::Signal("SIGKILL".into())),
                            reason: Some("restarting in 400ms".into()),
                            ..instance("web@1", State::Backoff)
                        },
                        InstanceStatus {
                            reason: Some("exec /no/such: No such file or directory".into()),
                            ..instance("web@2", State::Failed)
                        },
                    ],
                ),
                unit(
                    "db",
                    UnitKind::Service,
                    State::Running,
                    vec![running("db", 1234, 2 * 3_600_000 + 3 * 60_000)],
                ),
                unit(
                    "migrate",
                    UnitKind::Task,
                    State::Exited,
                    vec![InstanceStatus {
                        last_exit: Some(Exit::Code(0)),
                        ..instance("migrate", State::Exited)
                    }],
                ),
                unit("idle", UnitKind::Service, State::Inactive, vec![]),
            ],
            pools: vec![],
            sockets: vec![],
        }
    }

    #[test]
    fn table() {
        let expected = "\
UNIT     STATE     PID   UPTIME  RESTARTS  LAST EXIT  REASON
web@0    running   1240  5m10s   2         code 1
web@1    backoff   -     -       3         SIGKILL    restarting in 400ms
web@2    failed    -     -       0         -          exec /no/such: No such file or directory
db       running   1234  2h3m    0         -
migrate  exited    -     -       0         code 0
idle     inactive
";
        assert_eq!(render_table(&sample(), false), expected);
    }

    #[test]
    fn a_hook_that_cannot_run_is_shown_after_the_tables_and_in_its_block() {
        let mut report = sample();
        report.units[0].hook_error = Some("exec /no/alert: No such file or directory".into());
        let overview = render_overview(&report, false);
        assert!(
            overview.ends_with(
                "\nweb: on_failure hook cannot run: exec /no/alert: No such file or directory \
                 (not run again until reload)\n"
            ),
            "{overview}"
        );
        let block = render_blocks(&report, false);
        assert!(
            block.contains("   Hook: on_failure hook cannot run: exec /no/alert"),
            "{block}"
        );
        assert!(!render_overview(&sample(), false).contains("hook"));
    }

    #[test]
    fn table_without_reasons_has_no_reason_column() {
        let report = StatusReport {
            units: vec![unit(
                "db",
                UnitKind::Service,
                State::Running,
                vec![running("db", 7, 3_000)],
            )],
            pools: vec![],
            sockets: vec![],
        };
        let expected = "\
UNIT  STATE    PID  UPTIME  RESTARTS  LAST EXIT
db    running  7    3s      0         -
";
        assert_eq!(render_table(&report, false), expected);
        let empty = StatusReport {
            units: vec![],
            pools: vec![],
            sockets: vec![],
        };
        assert_eq!(
            render_table(&empty, false),
            "UNIT  STATE  PID  UPTIME  RESTARTS  LAST EXIT\n"
        );
    }

    fn costly() -> StatusReport {
        let mut web0 = running("web@0", 7, 3_000);
        web0.usage = Usage {
            memory_bytes: Some(63_188_992),
            memory_peak_bytes: None,
            cpu_usec: Some(2_843_099),
            processes: Some(3),
        };
        let mut web1 = running("web@1", 8, 3_000);
        web1.usage = Usage {
            memory_bytes: Some(1_048_576),
            memory_peak_bytes: None,
            cpu_usec: Some(100_000),
            processes: Some(1),
        };
        StatusReport {
            units: vec![unit(
                "web",
                UnitKind::Service,
                State::Running,
                vec![web0, web1, instance("web@2", State::Inactive)],
            )],
            pools: vec![],
            sockets: vec![],
        }
    }

    #[test]
    fn table_shows_usage_columns_when_herdd_sent_usage() {
        let expected = "\
UNIT   STATE     PID  UPTIME  RESTARTS  LAST EXIT  MEMORY  CPU     TASKS
web@0  running   7    3s      0         -          60.3M   2.843s  3
web@1  running   8    3s      0         -          1.0M    0.100s  1
web@2  inactive  -    -       0         -          -       -       -
";
        assert_eq!(render_table(&costly(), false), expected);
    }

    #[test]
    fn block_sums_usage_like_systemctl() {
        let block = render_blocks(&costly(), false);
        assert!(block.contains("   Tasks: 4\n"), "{block}");
        assert!(block.contains("  Memory: 61.3M\n"), "{block}");
        assert!(block.contains("     CPU: 2.943s\n"), "{block}");
        assert!(
            block.contains("memory 60.3M, cpu 2.843s, 3 processes"),
            "{block}"
        );
    }

    #[test]
    fn sizes_and_cpu_times_read_like_systemctl() {
        assert_eq!(format_bytes(512), "512B");
        assert_eq!(format_bytes(830 * 1024), "830K");
        assert_eq!(format_bytes(3 << 30), "3.0G");
        assert_eq!(format_cpu(12_500_000), "12.5s");
        assert_eq!(format_cpu(125_000_000), "2m5s");
    }

    #[test]
    fn blocks() {
        let expected = "\
● web - service, 3 instances
      State: failed
    Command: /usr/bin/app --port 80{instance}
      web@0: running, pid 1240, up 5m10s, 2 restarts, last exit code 1
      web@1: backoff (restarting in 400ms), 3 restarts, last exit SIGKILL
      web@2: failed (exec /no/such: No such file or directory), 0 restarts

● db - service, 1 instance
      State: running
    Command: /usr/bin/app --port 80{instance}
         db: running, pid 1234, up 2h3m, 0 restarts

● migrate - task, 1 instance
      State: exited
    Command: /usr/bin/app --port 80{instance}
    migrate: exited, 0 restarts, last exit code 0

● idle - service, 0 instances
      State: inactive
    Command: /usr/bin/app --port 80{instance}
";
        assert_eq!(render_blocks(&sample(), false), expected);
    }

    #[test]
    fn long_instance_names_push_the_labels() {
        let report = StatusReport {
            units: vec![unit(
                "frontend",
                UnitKind::Service,
                State::Running,
                vec![running("frontend@10", 9, 1)],
            )],
            pools: vec![],
            sockets: vec![],
        };
        let expected = "\
● frontend - service, 1 instance
          State: running
        Command: /usr/bin/app --port 80{instance}
    frontend@10: running, pid 9, up 1ms, 0 restarts
";
        assert_eq!(render_blocks(&report, false), expected);
    }

    #[test]
    fn coloured_block_paints_dot_and_states() {
        let report = StatusReport {
            units: vec![unit(
                "db",
                UnitKind::Service,
                State::Failed,
                vec![instance("db", State::Failed)],
            )],
            pools: vec![],
            sockets: vec![],
        };
        let block = render_blocks(&report, true);
        assert!(
            block.starts_with("\x1b[1;31m●\x1b[0m db - service"),
            "{block:?}"
        );
        assert!(
            block.contains("State: \x1b[1;31mfailed\x1b[0m\n"),
            "{block:?}"
        );
    }

    /// A notify service: one instance reports a status, one backs off
    /// (herd's reason wins over its stale status), one says nothing.
    fn notifying() -> StatusReport {
        StatusReport {
            units: vec![unit(
                "db",
                UnitKind::Service,
                State::Running,
                vec![
                    InstanceStatus {
                        notify_status: Some("Serving 4 clients".into()),
                        ..running("db@0", 7, 3_000)
                    },
                    InstanceStatus {
                        reason: Some("restarting in 400ms".into()),
                        notify_status: Some("Shutting down".into()),
                        ..instance("db@1", State::Backoff)
                    },
                    running("db@2", 9, 1_000),
                ],
            )],
            pools: vec![],
            sockets: vec![],
        }
    }

    #[test]
    fn table_shows_notify_status_quoted_when_there_is_no_reason() {
        let expected = "\
UNIT  STATE    PID  UPTIME  RESTARTS  LAST EXIT  REASON
db@0  running  7    3s      0         -          \"Serving 4 clients\"
db@1  backoff  -    -       0         -          restarting in 400ms
db@2  running  9    1s      0         -
";
        assert_eq!(render_table(&notifying(), false), expected);
    }

    #[test]
    fn block_ends_instance_lines_with_the_notify_status() {
        let expected = "\
● db - service, 3 instances
      State: running
    Command: /usr/bin/app --port 80{instance}
       db@0: running, pid 7, up 3s, 0 restarts, status: \"Serving 4 clients\"
       db@1: backoff (restarting in 400ms), 0 restarts, status: \"Shutting down\"
       db@2: running, pid 9, up 1s, 0 restarts
";
        assert_eq!(render_blocks(&notifying(), false), expected);
    }

    #[test]
    fn a_log_error_is_shown_with_the_reason() {
        let report = StatusReport {
            units: vec![unit(
                "web",
                UnitKind::Service,
                State::Running,
                vec![
                    InstanceStatus {
                        log_error: Some("cannot open /log/web/web@0.log: Permission denied".into()),
                        ..running("web@0", 7, 3_000)
                    },
                    InstanceStatus {
                        reason: Some("restarting in 400ms".into()),
                        log_error: Some("cannot write /log/web/web@1.log: No space left".into()),
                        ..instance("web@1", State::Backoff)
                    },
                ],
            )],
            pools: vec![],
            sockets: vec![],
        };
        let table = render_table(&report, false);
        assert!(
            table.contains("web@0  running  7    3s      0         -          log: cannot open /log/web/web@0.log: Permission denied\n"),
            "{table}"
        );
        assert!(
            table.contains("restarting in 400ms; log: cannot write /log/web/web@1.log"),
            "{table}"
        );
        let block = render_blocks(&report, false);
        assert!(
            block.contains("web@0: running, pid 7, up 3s, 0 restarts, log: cannot open"),
            "{block}"
        );
    }

    #[test]
    fn health_gets_a_column_and_its_failure_in_the_block() {
        let health = |state, failures, error: Option<&str>| {
            Some(Health {
                state,
                failures,
                error: error.map(str::to_string),
                restarted: None,
            })
        };
        let report = StatusReport {
            units: vec![unit(
                "web",
                UnitKind::Service,
                State::Running,
                vec![
                    InstanceStatus {
                        health: health(HealthState::Healthy, 0, None),
                        ..running("web@0", 7, 3_000)
                    },
                    InstanceStatus {
                        health: health(HealthState::Unhealthy, 3, Some("probe exited 1: db down")),
                        ..running("web@1", 8, 3_000)
                    },
                    instance("web@2", State::Inactive),
                ],
            )],
            pools: vec![],
            sockets: vec![],
        };
        let table = render_table(&report, false);
        assert!(table.contains("LAST EXIT  HEALTH\n"), "{table}");
        assert!(
            table.contains("web@0  running   7    3s      0         -          healthy\n"),
            "{table}"
        );
        assert!(table.contains("-          unhealthy\n"), "{table}");
        assert!(
            table.contains("web@2  inactive  -    -       0         -          -\n"),
            "{table}"
        );
        let block = render_blocks(&report, false);
        assert!(
            block.contains("web@1: running, pid 8, up 3s, 0 restarts, health: unhealthy, 3 failed (probe exited 1: db down)"),
            "{block}"
        );
    }

    #[test]
    fn notify_status_cannot_garble_the_terminal() {
        assert_eq!(
            quote_status("a \"b\" c\\d\n\x1b[2J"),
            r#""a \"b\" c\\d\n\u{1b}[2J""#
        );
    }

    #[test]
    fn exit_3_only_for_named_units_that_are_not_running() {
        let up = StatusReport {
            units: vec![unit(
                "db",
                UnitKind::Service,
                State::Running,
                vec![running("db", 7, 3_000)],
            )],
            pools: vec![],
            sockets: vec![],
        };
        assert_eq!(outcome(true, &up), Outcome::Success);
        assert_eq!(outcome(false, &sample()), Outcome::Success);
        assert_eq!(outcome(true, &sample()), Outcome::NotRunning);

        for state in [
            State::Exited,
            State::Starting,
            State::Backoff,
            State::Inactive,
        ] {
            let report = StatusReport {
                units: vec![unit("t", UnitKind::Task, state, vec![instance("t", state)])],
                pools: vec![],
                sockets: vec![],
            };
            assert_eq!(outcome(true, &report), Outcome::NotRunning, "{state}");
        }
        let scaled_to_zero = StatusReport {
            units: vec![unit("web", UnitKind::Service, State::Inactive, vec![])],
            pools: vec![],
            sockets: vec![],
        };
        assert_eq!(outcome(true, &scaled_to_zero), Outcome::NotRunning);
    }
}
