//! `[service.NAME]` and `[task.NAME]`: one unit, checked key by key.
//!
//! Keys with their own syntax are read in `fields.rs`. Checks that need
//! other units (duplicate names, `after` targets, cycles) are in
//! `validate.rs`; this module only needs the unit's own table.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use herd_common::names::is_valid_unit_name;
use herd_common::signals::parse_signal;
use toml::Spanned;

use crate::errors::Location;
use crate::fields::{command, env, owned, ready, restart, rlimits, signal, umask};
use crate::model::{Ready, RestartPolicy, UnitConfig, UnitKind};
use crate::paths::resolve;
use crate::value::{key_path, not_supported_yet, set, unknown_key, Cx, Value};

/// Keys of `[service.NAME]`, in the order error messages list them.
const SERVICE_KEYS: &[&str] = &[
    "command",
    "instances",
    "env",
    "cwd",
    "user",
    "group",
    "umask",
    "rlimits",
    "after",
    "ready",
    "restart",
    "restart_delay",
    "restart_delay_max",
    "start_limit",
    "start_interval",
    "stop_signal",
    "stop_timeout",
    "daemon",
    "autostart",
];

/// Unit keys from SPEC.md that a later release will implement.
const NOT_YET_SUPPORTED: &[&str] = &["semaphores", "wait_events", "sets_event"];

/// Most replicas a worker pool may have: a typo like `instances = 40000`
/// should not fork-bomb the host.
const MAX_INSTANCES: i64 = 10_000;

/// A unit as read from one file, with what the cross-unit checks need.
#[derive(Debug)]
pub(crate) struct ParsedUnit {
    pub config: UnitConfig,
    /// Where the unit's name is written (`web` in `[service.web]`).
    pub at: Location,
    /// `service.web`: the key prefix of errors about this unit.
    pub key: String,
    /// `after` entries, each with its position.
    pub after: Vec<AfterRef>,
}

/// One entry of `after = [...]`.
#[derive(Debug)]
pub(crate) struct AfterRef {
    pub name: String,
    pub at: Location,
}

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
    let Some(table) = cx.table(table_name(kind), value) else {
        return Vec::new();
    };
    table
        .iter()
        .filter_map(|(name, value)| parse_unit(cx, kind, name, value, base))
        .collect()
}

fn parse_unit(
    cx: &mut Cx,
    kind: UnitKind,
    name: &Spanned<Cow<str>>,
    value: &Value,
    base: &Path,
) -> Option<ParsedUnit> {
    let key = key_path(table_name(kind), name.get_ref());
    let table = cx.table(&key, value)?;
    if !is_valid_unit_name(name.get_ref()) {
        let message = format!(
            "invalid unit name `{}` (use at most 128 ASCII letters, digits, '-', '_' \
             and '.', not starting with '-' or '.')",
            name.get_ref()
        );
        cx.error(name.span(), &key, message);
    }
    let mut draft = Draft::new(name.get_ref(), kind);
    for (field, value) in table.iter() {
        draft.apply(cx, &key, field, value, base);
    }
    draft.finish(cx, &key, name.span());
    draft.config.after = draft
        .after
        .iter()
        .map(|target| target.name.clone())
        .collect();
    Some(ParsedUnit {
        config: draft.config,
        at: cx.source.locate(name.span()),
        key,
        after: draft.after,
    })
}

/// A unit being read: the model with defaults, plus what `finish` checks.
struct Draft {
    config: UnitConfig,
    has_command: bool,
    after: Vec<AfterRef>,
    restart_delay_span: Option<Range<usize>>,
    restart_delay_max_span: Option<Range<usize>>,
}

impl Draft {
    fn new(name: &str, kind: UnitKind) -> Draft {
        let service = kind == UnitKind::Service;
        Draft {
            config: UnitConfig {
                name: name.to_string(),
                kind,
                command: Vec::new(),
                instances: None,
                env: BTreeMap::new(),
                cwd: None,
                user: None,
                group: None,
                umask: None,
                rlimits: BTreeMap::new(),
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
                stop_signal: sigterm(),
                stop_timeout: Duration::from_secs(10),
                daemon: service,
                autostart: true,
            },
            has_command: false,
            after: Vec::new(),
            restart_delay_span: None,
            restart_delay_max_span: None,
        }
    }

    /// Reads one key of the unit's table into the draft.
    fn apply(
        &mut self,
        cx: &mut Cx,
        unit_key: &str,
        field: &Spanned<Cow<str>>,
        value: &Value,
        base: &Path,
    ) {
        let name: &str = field.get_ref();
        let key = key_path(unit_key, name);
        let key = key.as_str();
        let unit = &mut self.config;
        match name {
            "command" => {
                self.has_command = true;
                set(&mut unit.command, command(cx, key, value));
            }
            "instances" if unit.kind == UnitKind::Task => {
                cx.error(field.span(), key, "only services have instances");
            }
            "instances" => {
                let count = cx.integer_in(key, value, 0..=MAX_INSTANCES);
                set(&mut unit.instances, count.map(Some));
            }
            "env" => set(&mut unit.env, env(cx, key, value)),
            "cwd" => {
                let cwd = cx.non_empty_string(key, value);
                set(&mut unit.cwd, cwd.map(|dir| Some(resolve(base, dir))));
            }
            "user" => set(&mut unit.user, owned(cx.non_empty_string(key, value))),
            "group" => set(&mut unit.group, owned(cx.non_empty_string(key, value))),
            "umask" => set(&mut unit.umask, umask(cx, key, value).map(Some)),
            "rlimits" => set(&mut unit.rlimits, rlimits(cx, key, value)),
            "after" => self.after = after(cx, key, value, &unit.name),
            "ready" => set(&mut unit.ready, ready(cx, key, value)),
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
            "stop_signal" => set(&mut unit.stop_signal, signal(cx, key, value)),
            "stop_timeout" => set(&mut unit.stop_timeout, cx.duration(key, value)),
            "daemon" => set(&mut unit.daemon, cx.boolean(key, value)),
            "autostart" => set(&mut unit.autostart, cx.boolean(key, value)),
            _ if NOT_YET_SUPPORTED.contains(&name) => {
                cx.error(field.span(), key, not_supported_yet(&format!("`{name}`")));
            }
            _ => cx.error(field.span(), key, unknown_key(name, &keys_of(unit.kind))),
        }
    }

    /// Checks between keys, once the whole table has been read.
    fn finish(&mut self, cx: &mut Cx, unit_key: &str, name_span: Range<usize>) {
        if !self.has_command {
            cx.error(name_span, unit_key, "missing required key `command`");
        }
        let unit = &self.config;
        if unit.restart_delay_max < unit.restart_delay {
            let (key, span) = match (&self.restart_delay_max_span, &self.restart_delay_span) {
                (Some(span), _) => ("restart_delay_max", span.clone()),
                (None, Some(span)) => ("restart_delay", span.clone()),
                (None, None) => return,
            };
            let message = format!(
                "restart_delay_max ({}) must not be less than restart_delay ({})",
                humantime::format_duration(unit.restart_delay_max),
                humantime::format_duration(unit.restart_delay),
            );
            cx.error(span, &key_path(unit_key, key), message);
        }
    }
}

/// SIGTERM's number, from the same table `stop_signal` names are looked up in.
fn sigterm() -> i32 {
    parse_signal("SIGTERM").unwrap_or(15)
}

/// The keys an "unknown key" error lists: tasks have all but `instances`.
fn keys_of(kind: UnitKind) -> Vec<&'static str> {
    SERVICE_KEYS
        .iter()
        .copied()
        .filter(|key| kind == UnitKind::Service || *key != "instances")
        .collect()
}

/// Names in `after`, with positions; whether they exist is checked once every
/// file has been read.
fn after(cx: &mut Cx, key: &str, value: &Value, own_name: &str) -> Vec<AfterRef> {
    let mut refs: Vec<AfterRef> = Vec::new();
    for (name, span) in cx.string_array(key, value).unwrap_or_default() {
        if name == own_name {
            cx.error(span, key, format!("`{name}` cannot be after itself"));
        } else if !refs.iter().any(|known| known.name == name) {
            refs.push(AfterRef {
                name: name.to_string(),
                at: cx.source.locate(span),
            });
        }
    }
    refs
}
