//! `[pool.NAME]`: one task pool, checked key by key.
//!
//! Besides its own keys (`size`, `max_queue`, `keep_finished`, `semaphores`),
//! a pool has the process keys of units, applied to each of its tasks and read
//! by the same code (`process.rs`). Pools defined twice, and semaphores that
//! are not declared, are reported in `validate.rs`.

use std::path::Path;

use crate::model::PoolConfig;
use crate::named::{missing_key, read_keys, read_tables, references, Namespace, Parsed};
use crate::process::{process_keys, with_default_process, SETUP_KEYS, STOP_KEYS};
use crate::value::{set, Cx, Value};

/// The pool's own keys, listed before the process keys in "unknown key" errors.
const OWN_KEYS: &[&str] = &[
    "size",
    "max_queue",
    "keep_finished",
    "semaphores",
    "task_timeout",
    "retries",
    "retry_delay",
];

/// Upper bound of `retries`: a task retried more than this is broken, not flaky.
pub(crate) const MAX_RETRIES: i64 = 1000;

/// Most tasks a pool may run at once: like `instances`, a typo such as
/// `size = 40000` should not fork-bomb the host.
const MAX_SIZE: i64 = 10_000;

/// Upper bound of `max_queue` and of `keep_finished`: tasks are kept in memory.
const MAX_TASKS: i64 = 1_000_000;

/// Reads every pool of `[pool]` in one file. `base` is the file's directory,
/// against which a relative `cwd` is resolved.
pub(crate) fn parse_pools(cx: &mut Cx, value: &Value, base: &Path) -> Vec<Parsed<PoolConfig>> {
    read_tables(cx, "pool", "pool", value, |cx, name, key, table, refs| {
        let mut pool = with_default_process!(
            PoolConfig {
                name: name.get_ref().to_string(),
                // Required: reported below when absent, so never used.
                size: 0,
                max_queue: 10_000,
                keep_finished: 1000,
                semaphores: Vec::new(),
                task_defaults: Default::default(),
                on_failure: Default::default(),
            },
            false
        );
        let mut has_size = false;
        let known = [OWN_KEYS, SETUP_KEYS, STOP_KEYS, crate::hooks::KEYS].concat();
        read_keys(cx, key, table, &known, |cx, field, key, value| {
            let field: &str = field.get_ref();
            if process_keys!(pool).read(cx, key, field, value, base) {
                return true;
            }
            if crate::hooks::read(&mut pool.on_failure, cx, key, field, value) {
                return true;
            }
            match field {
                "size" => {
                    has_size = true;
                    set(&mut pool.size, cx.integer_in(key, value, 1..=MAX_SIZE));
                }
                "max_queue" => {
                    let limit = cx.integer_in(key, value, 1..=MAX_TASKS);
                    set(&mut pool.max_queue, limit);
                }
                "keep_finished" => {
                    let kept = cx.integer_in(key, value, 0..=MAX_TASKS);
                    set(&mut pool.keep_finished, kept);
                }
                "semaphores" => {
                    let names = references(cx, key, value, Namespace::Semaphore, None, refs);
                    set(&mut pool.semaphores, names);
                }
                "task_timeout" => {
                    let timeout = cx.positive_duration(key, value);
                    set(&mut pool.task_defaults.timeout, timeout.map(Some));
                }
                "retries" => {
                    let retries = cx.integer_in(key, value, 0..=MAX_RETRIES);
                    set(&mut pool.task_defaults.retries, retries);
                }
                "retry_delay" => {
                    let delay = cx.duration(key, value);
                    set(&mut pool.task_defaults.retry_delay, delay);
                }
                _ => return false,
            }
            true
        });
        if !has_size {
            missing_key(cx, name, key, "size");
        }
        pool
    })
}
