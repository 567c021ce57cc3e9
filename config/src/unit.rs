//! `[service.NAME]` and `[task.NAME]`: one unit, checked key by key.
//!
//! Keys with their own syntax are read in `fields.rs`, and the process keys
//! units share with pools (`env`, `cwd`, `daemon`, ...) in `process.rs`.
//! Checks that need other units (duplicate names, `after` targets, cycles) are
//! in `validate.rs`; this module only needs the unit's own table.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::de::DeTable;

use crate::errors::Location;
use crate::fields::{command, ready, restart};
use crate::model::{Ready, RestartPolicy, UnitConfig, UnitKind};
use crate::named::{read_tables, reject_key, Definition, Key};
use crate::process::{process_keys, with_default_process, SETUP_KEYS, STOP_KEYS};
use crate::value::{key_path, set, Cx, Value};

/// Keys of `[service.NAME]` that come before the setup keys (`env`, ...) in
/// the order error messages list them.
const FIRST_KEYS: &[&str] = &["command", "instances"];

/// Keys of `[service.NAME]` between the setup and the stop keys.
const LIFECYCLE_KEYS: &[&str] = &[
    "after",
    "ready",
    "restart",
    "restart_delay",
    "restart_delay_max",
    "start_limit",
    "start_interval",
];

/// Keys of `[service.NAME]` after the stop keys.
const LAST_KEYS: &[&str] = &["autostart"];

/// Unit keys from SPEC.md that a later release will implement.
const NOT_YET_SUPPORTED: &[&str] = &["semaphores", "wait_events", "sets_event"];

/// Most replicas a worker pool may have: a typo like `instances = 40000`
/// should not fork-bomb the host.
const MAX_INSTANCES: i64 = 10_000;

/// A unit as read from one file, with what the cross-unit checks need.
#[derive(Debug)]
pub(crate) struct ParsedUnit {
    pub config: UnitConfig,
    /// Where its name is written; `service.web`, the key prefix of its errors.
    pub definition: Definition,
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
    read_tables(
        cx,
        table_name(kind),
        "unit",
        value,
        |cx, name, key, table| parse_unit(cx, kind, name, key, table, base),
    )
}

fn parse_unit(
    cx: &mut Cx,
    kind: UnitKind,
    name: &Key,
    key: String,
    table: &DeTable,
    base: &Path,
) -> ParsedUnit {
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
    ParsedUnit {
        config: draft.config,
        definition: Definition {
            at: cx.source.locate(name.span()),
            key,
        },
        after: draft.after,
    }
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
                },
                service
            ),
            has_command: false,
            after: Vec::new(),
            restart_delay_span: None,
            restart_delay_max_span: None,
        }
    }

    /// Reads one key of the unit's table into the draft.
    fn apply(&mut self, cx: &mut Cx, unit_key: &str, field: &Key, value: &Value, base: &Path) {
        let name: &str = field.get_ref();
        let key = key_path(unit_key, name);
        let key = key.as_str();
        let unit = &mut self.config;
        if process_keys!(unit).read(cx, key, name, value, base) {
            return;
        }
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
            "autostart" => set(&mut unit.autostart, cx.boolean(key, value)),
            _ => reject_key(cx, field, key, NOT_YET_SUPPORTED, &keys_of(unit.kind)),
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

/// The keys an "unknown key" error lists: tasks have all but `instances`.
fn keys_of(kind: UnitKind) -> Vec<&'static str> {
    [FIRST_KEYS, SETUP_KEYS, LIFECYCLE_KEYS, STOP_KEYS, LAST_KEYS]
        .concat()
        .into_iter()
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
