//! `[semaphore.NAME]` and `[event.NAME]`: the semaphores and events herdd
//! owns, which units and pools name in `semaphores`, `wait_events` and
//! `sets_event`. Those names, and duplicate definitions, are checked in
//! `validate.rs`.

use crate::model::{EventConfig, SemaphoreConfig};
use crate::named::{missing_key, read_keys, read_tables, Parsed};
use crate::value::{set, Cx, Value};

/// Largest `capacity`.
const MAX_CAPACITY: i64 = 1_000_000;

/// Reads every semaphore of `[semaphore]` in one file.
pub(crate) fn parse_semaphores(cx: &mut Cx, value: &Value) -> Vec<Parsed<SemaphoreConfig>> {
    read_tables(
        cx,
        "semaphore",
        "semaphore",
        value,
        |cx, name, key, table, _| {
            let mut capacity = None;
            read_keys(cx, key, table, &["capacity"], |cx, field, key, value| {
                let known = field.get_ref() == "capacity";
                if known {
                    // `Some(None)` once given, even if invalid: not also "missing".
                    capacity = Some(cx.integer_in(key, value, 1..=MAX_CAPACITY));
                }
                known
            });
            if capacity.is_none() {
                missing_key(cx, name, key, "capacity");
            }
            SemaphoreConfig {
                name: name.get_ref().to_string(),
                // Only used when valid: otherwise an error was reported.
                capacity: capacity.flatten().unwrap_or(1),
            }
        },
    )
}

/// Reads every event of `[event]` in one file.
pub(crate) fn parse_events(cx: &mut Cx, value: &Value) -> Vec<Parsed<EventConfig>> {
    read_tables(cx, "event", "event", value, |cx, name, key, table, _| {
        let mut event = EventConfig {
            name: name.get_ref().to_string(),
            set: false,
        };
        read_keys(cx, key, table, &["set"], |cx, field, key, value| {
            let known = field.get_ref() == "set";
            if known {
                set(&mut event.set, cx.boolean(key, value));
            }
            known
        });
        event
    })
}
