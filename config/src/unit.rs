//! `[service.NAME]` and `[task.NAME]`: one unit, checked key by key.
//!
//! Keys with their own syntax are read in `fields.rs`, and the process keys
//! units share with pools (`env`, `cwd`, `daemon`, ...) in `process.rs`.
//! Checks that need other tables (duplicate names, whether the units,
//! semaphores and events it names exist, cycles) are in `validate.rs`; this
//! module only needs the unit's own table.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use crate::fields::{command, ready, restart};
use crate::model::{Ready, RestartPolicy, UnitConfig, UnitKind, UnitLog, UpdateMode};
use crate::named::{
    missing_key, read_keys, read_tables, reference, references, Key, Namespace, Parsed, Reference,
};
use crate::process::{process_keys, with_default_process, SETUP_KEYS, STOP_KEYS};
use crate::socket::MAX_SOCKETS_PER_UNIT;
use crate::timer::{TimerDraft, TIMER_KEYS};
use crate::value::{key_path, set, Cx, Value};

/// Keys of `[service.NAME]` that come before the setup keys (`env`, ...) in
/// the order error messages list them.
const FIRST_KEYS: &[&str] = &["command", "instances"];

/// Keys of `[service.NAME]` between the setup and the stop keys.
const LIFECYCLE_KEYS: &[&str] = &[
    "after",
    "wait_events",
    "semaphores",
    "ready",
    "start_timeout",
    "sets_event",
    "restart",
    "restart_delay",
    "restart_delay_max",
    "start_limit",
    "start_interval",
];

/// Keys of `[service.NAME]` after the stop keys (then the log keys).
const LAST_KEYS: &[&str] = &[
    "autostart",
    "sockets",
    "watchdog",
    "max_unavailable",
    "update",
    "health",
];

/// Keys of `[service.NAME]` that tasks do not have.
const SERVICE_ONLY_KEYS: &[&str] = &[
    "instances",
    "sets_event",
    "sockets",
    "watchdog",
    "max_unavailable",
    "update",
    "health",
];

/// Most replicas a worker pool may have: a typo like `instances = 40000`
/// should not fork-bomb the host.
const MAX_INSTANCES: i64 = 10_000;

/// A unit as read from one file; its references are its `after`, `semaphores`,
/// `wait_events` and `sets_event` entries.
pub(crate) type ParsedUnit = Parsed<UnitConfig>;

/// The top-level table a kind of unit lives in.
pub(crate) fn table_name(kind: UnitKind) -> &'static str {
    match kind {
        UnitKind::Service => "service",
        UnitKind::Task => "task",
    }
}

/// Reads every unit of `[service]` or `[task]` in one file. `base` is the
/// file's directory, against which a relative `cwd` is resolved.
pub(crate) fn parse_units(
    cx: &mut Cx,
    kind: UnitKind,
    value: &Value,
    base: &Path,
) -> Vec<ParsedUnit> {
    read_tables(
        cx,
        table_name(kind),
        "unit",
        value,
        |cx, name, key, table, refs| {
            let mut draft = Draft::new(name.get_ref(), kind);
            read_keys(cx, key, table, &keys_of(kind), |cx, field, key, value| {
                draft.apply(cx, field, key, value, base, refs)
            });
            draft.finish(cx, name, key)
        },
    )
}

/// A unit being read: the model with defaults, plus what `finish` checks.
struct Draft {
    config: UnitConfig,
    has_command: bool,
    restart_delay_span: Option<Range<usize>>,
    restart_delay_max_span: Option<Range<usize>>,
    /// Where `ready` was set, to point at a `ready = "health"` without `health`.
    ready_span: Option<Range<usize>>,
    /// `health` is there (valid or not).
    has_health: bool,
    /// `schedule`, `every` and the keys that go with them (tasks only).
    timer: TimerDraft,
}

impl Draft {
    fn new(name: &str, kind: UnitKind) -> Draft {
        let service = kind == UnitKind::Service;
        Draft {
            config: with_default_process!(
                UnitConfig {
                    name: name.to_string(),
                    kind,
                    command: Vec::new(),
                    instances: None,
                    after: Vec::new(),
                    ready: Ready::Started,
                    restart: if service {
                        RestartPolicy::OnFailure
                    } else {
                        RestartPolicy::Never
                    },
                    restart_delay: Duration::from_millis(100),
                    restart_delay_max: Duration::from_secs(30),
                    start_limit: 5,
                    start_interval: Duration::from_secs(10),
                    autostart: true,
                    semaphores: Vec::new(),
                    wait_events: Vec::new(),
                    sets_event: None,
                    start_timeout: Duration::from_secs(90),
                    log: UnitLog::default(),
                    sockets: Vec::new(),
                    watchdog: None,
                    max_unavailable: 1,
                    update: None,
                    health: None,
                    on_failure: Default::default(),
                    timer: None,
                },
                service
            ),
            has_command: false,
            restart_delay_span: None,
            restart_delay_max_span: None,
            ready_span: None,
            has_health: false,
            timer: TimerDraft::default(),
        }
    }

    /// Reads one key of the unit's table (`key` is its full path) into the
    /// draft, and the names it refers to into `refs`; false if the key is
    /// unknown.
    fn apply(
        &mut self,
        cx: &mut Cx,
        field: &Key,
        key: &str,
        value: &Value,
        base: &Path,
        refs: &mut Vec<Reference>,
    ) -> bool {
        let name: &str = field.get_ref();
        let unit = &mut self.config;
        if process_keys!(unit).read(cx, key, name, value, base) {
            return true;
        }
        if crate::logs::read(&mut unit.log, cx, key, name, value) {
            return true;
        }
        if crate::hooks::read(&mut unit.on_failure, cx, key, name, value) {
            return true;
        }
        let service = unit.kind == UnitKind::Service;
        if TIMER_KEYS.contains(&name) {
            if service {
                cx.error(field.span(), key, "only tasks run on a timer");
            } else {
                self.timer.read(cx, key, name, value, refs);
            }
            return true;
        }
        match name {
            "command" => {
                self.has_command = true;
                set(&mut unit.command, command(cx, key, value));
            }
            "instances" if !service => {
                cx.error(field.span(), key, "only services have instances");
            }
            "instances" => {
                let count = instance_count(cx, key, value);
                set(&mut unit.instances, count.map(Some));
            }
            "after" => {
                let own = Some(unit.name.as_str());
                let after = references(cx, key, value, Namespace::Unit, own, refs);
                set(&mut unit.after, after);
            }
            "wait_events" => {
                let events = references(cx, key, value, Namespace::Event, None, refs);
                set(&mut unit.wait_events, events);
            }
            "semaphores" => {
                let names = references(cx, key, value, Namespace::Semaphore, None, refs);
                set(&mut unit.semaphores, names);
            }
            "ready" => {
                self.ready_span = Some(value.span());
                set(&mut unit.ready, ready(cx, key, value));
            }
            "start_timeout" => set(&mut unit.start_timeout, cx.positive_duration(key, value)),
            "sets_event" if !service => {
                cx.error(field.span(), key, "only services can set events");
            }
            "sets_event" => {
                let event = reference(cx, key, value, Namespace::Event, refs);
                set(&mut unit.sets_event, event.map(Some));
            }
            "restart" => set(&mut unit.restart, restart(cx, key, value)),
            "restart_delay" => {
                self.restart_delay_span = Some(value.span());
                set(&mut unit.restart_delay, cx.duration(key, value));
            }
            "restart_delay_max" => {
                self.restart_delay_max_span = Some(value.span());
                set(&mut unit.restart_delay_max, cx.duration(key, value));
            }
            "start_limit" => {
                let limit = cx.integer_in(key, value, 1..=i64::from(u32::MAX));
                set(&mut unit.start_limit, limit);
            }
            "start_interval" => set(&mut unit.start_interval, cx.duration(key, value)),
            "autostart" => set(&mut unit.autostart, cx.boolean(key, value)),
            "max_unavailable" | "update" if !service => {
                cx.error(field.span(), key, "only services have rolling updates");
            }
            "max_unavailable" => {
                let most = cx.integer_in(key, value, 1..=MAX_INSTANCES);
                set(&mut unit.max_unavailable, most);
            }
            "update" => set(&mut unit.update, update(cx, key, value).map(Some)),
            "watchdog" if !service => {
                cx.error(field.span(), key, "only services have a watchdog");
            }
            "watchdog" => {
                let timeout = cx.positive_duration(key, value);
                set(&mut unit.watchdog, timeout.map(Some));
            }
            "health" if !service => {
                cx.error(field.span(), key, "only services have health probes");
            }
            "health" => {
                self.has_health = true;
                let check = crate::health::health(cx, key, value);
                set(&mut unit.health, check.map(Some));
            }
            "sockets" if !service => {
                cx.error(field.span(), key, "only services have sockets");
            }
            "sockets" => {
                let names = references(cx, key, value, Namespace::Socket, None, refs);
                if names
                    .as_ref()
                    .is_some_and(|names| names.len() > MAX_SOCKETS_PER_UNIT)
                {
                    let message = format!("at most {MAX_SOCKETS_PER_UNIT} sockets per service");
                    cx.error(value.span(), key, message);
                } else {
                    set(&mut unit.sockets, names);
                }
            }
            _ => return false,
        }
        true
    }

    /// Checks between keys, once the whole table (`[unit_key]`, under `name`)
    /// has been read; the unit's model.
    fn finish(self, cx: &mut Cx, name: &Key, unit_key: &str) -> UnitConfig {
        if !self.has_command {
            missing_key(cx, name, unit_key, "command");
        }
        let mut unit = self.config;
        if let (Ready::Health, false, Some(span)) = (unit.ready, self.has_health, &self.ready_span)
        {
            let message = "ready = \"health\" needs a `health` probe";
            cx.error(span.clone(), &key_path(unit_key, "ready"), message);
        }
        if unit.kind == UnitKind::Task {
            unit.timer = self.timer.finish(cx, unit_key);
        }
        if unit.restart_delay_max < unit.restart_delay {
            let (key, span) = match (self.restart_delay_max_span, self.restart_delay_span) {
                (Some(span), _) => ("restart_delay_max", span),
                (None, Some(span)) => ("restart_delay", span),
                (None, None) => return unit,
            };
            let message = format!(
                "restart_delay_max ({}) must not be less than restart_delay ({})",
                humantime::format_duration(unit.restart_delay_max),
                humantime::format_duration(unit.restart_delay),
            );
            cx.error(span, &key_path(unit_key, key), message);
        }
        unit
    }
}

/// The keys an "unknown key" error lists: tasks have all but the service-only
/// ones.
fn keys_of(kind: UnitKind) -> Vec<&'static str> {
    [
        FIRST_KEYS,
        SETUP_KEYS,
        LIFECYCLE_KEYS,
        STOP_KEYS,
        LAST_KEYS,
        crate::logs::UNIT_KEYS,
        crate::hooks::KEYS,
        TIMER_KEYS,
    ]
    .concat()
    .into_iter()
    .filter(|key| kind == UnitKind::Service || !SERVICE_ONLY_KEYS.contains(key))
    .filter(|key| kind == UnitKind::Task || !TIMER_KEYS.contains(key))
    .collect()
}

/// `instances`: a number, or `"cpus"`, `"cpus*N"`, `"cpus/N"` (the number of
/// online CPUs when the config is loaded, times or divided by N, at least 1).
fn instance_count(cx: &mut Cx, key: &str, value: &Value) -> Option<u32> {
    let toml::de::DeValue::String(text) = value.get_ref() else {
        return cx.integer_in(key, value, 0..=MAX_INSTANCES);
    };
    let count = match cpus_expression(text, online_cpus()) {
        Ok(count) => count,
        Err(message) => {
            cx.error(value.span(), key, message);
            return None;
        }
    };
    if count > MAX_INSTANCES as u64 {
        let message = format!("must be at most {MAX_INSTANCES} (got {text} = {count})");
        cx.error(value.span(), key, message);
        return None;
    }
    u32::try_from(count).ok()
}

/// `"cpus"`, `"cpus*N"` or `"cpus/N"` with `cpus` CPUs; N from 1 to 1000.
fn cpus_expression(text: &str, cpus: u64) -> Result<u64, String> {
    const SYNTAX: &str = "expected a number, \"cpus\", \"cpus*N\" or \"cpus/N\"";
    let spaced: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(rest) = spaced.strip_prefix("cpus") else {
        return Err(format!("{SYNTAX} (got {text:?})"));
    };
    if rest.is_empty() {
        return Ok(cpus);
    }
    let (op, factor) = rest.split_at(1);
    let factor: u64 = match factor.parse() {
        Ok(n) if (1..=1000).contains(&n) => n,
        _ => return Err(format!("{SYNTAX}, N from 1 to 1000 (got {text:?})")),
    };
    match op {
        "*" => Ok(cpus * factor),
        "/" => Ok((cpus / factor).max(1)),
        _ => Err(format!("{SYNTAX} (got {text:?})")),
    }
}

/// The number of online CPUs (at least 1).
fn online_cpus() -> u64 {
    // SAFETY: sysconf reads a system value; it has no memory-safety preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u64::try_from(online).unwrap_or(1).max(1)
}

/// `update = "rolling" | "parallel"`.
fn update(cx: &mut Cx, key: &str, value: &Value) -> Option<UpdateMode> {
    match cx.string(key, value)? {
        "rolling" => Some(UpdateMode::Rolling),
        "parallel" => Some(UpdateMode::Parallel),
        other => {
            let message =
                format!("invalid update `{other}` (expected \"rolling\" or \"parallel\")");
            cx.error(value.span(), key, message);
            None
        }
    }
}

#[cfg(test)]
mod cpus_tests {
    use super::*;

    #[test]
    fn cpus_expressions() {
        assert_eq!(cpus_expression("cpus", 8), Ok(8));
        assert_eq!(cpus_expression("cpus*2", 8), Ok(16));
        assert_eq!(cpus_expression(" cpus * 3 ", 2), Ok(6));
        assert_eq!(cpus_expression("cpus/4", 2), Ok(1), "at least one");
        assert_eq!(cpus_expression("cpus/2", 8), Ok(4));
        for bad in [
            "max",
            "cpus*0",
            "cpus*",
            "cpus+1",
            "cpus*-2",
            "2*cpus",
            "cpus*1001",
        ] {
            let err = cpus_expression(bad, 8).unwrap_err();
            assert!(err.contains("expected a number, \"cpus\""), "{bad}: {err}");
        }
        assert!(online_cpus() >= 1);
    }
}
