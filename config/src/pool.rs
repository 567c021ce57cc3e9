//! `[pool.NAME]`: one task pool, checked key by key.
//!
//! Besides its own keys (`size`, `max_queue`, `keep_finished`), a pool has the
//! process keys of units, applied to each of its tasks and read by the same
//! code (`process.rs`). Pools defined twice are reported in `validate.rs`.

use std::path::Path;

use toml::de::DeTable;

use crate::model::PoolConfig;
use crate::named::{read_tables, reject_key, Definition, Key};
use crate::process::{process_keys, with_default_process, SETUP_KEYS, STOP_KEYS};
use crate::value::{key_path, set, Cx, Value};

/// The pool's own keys, listed before the process keys in "unknown key" errors.
const OWN_KEYS: &[&str] = &["size", "max_queue", "keep_finished"];

/// Pool keys from SPEC.md that a later release will implement.
const NOT_YET_SUPPORTED: &[&str] = &["semaphores"];

/// Most tasks a pool may run at once: like `instances`, a typo such as
/// `size = 40000` should not fork-bomb the host.
const MAX_SIZE: i64 = 10_000;

/// Upper bound of `max_queue` and of `keep_finished`: tasks are kept in memory.
const MAX_TASKS: i64 = 1_000_000;

/// A pool as read from one file, with where it is defined.
#[derive(Debug)]
pub(crate) struct ParsedPool {
    pub config: PoolConfig,
    /// Where its name is written; `pool.convert`, the key prefix of its errors.
    pub definition: Definition,
}

/// Reads every pool of `[pool]` in one file. `base` is the file's directory,
/// against which a relative `cwd` is resolved.
pub(crate) fn parse_pools(cx: &mut Cx, value: &Value, base: &Path) -> Vec<ParsedPool> {
    read_tables(cx, "pool", "pool", value, |cx, name, key, table| {
        parse_pool(cx, name, key, table, base)
    })
}

fn parse_pool(cx: &mut Cx, name: &Key, key: String, table: &DeTable, base: &Path) -> ParsedPool {
    let mut pool = with_default_process!(
        PoolConfig {
            name: name.get_ref().to_string(),
            // Required: reported below when absent, so never used.
            size: 0,
            max_queue: 10_000,
            keep_finished: 1000,
        },
        false
    );
    let mut has_size = false;
    for (field, value) in table.iter() {
        let field_name: &str = field.get_ref();
        let field_key = key_path(&key, field_name);
        let field_key = field_key.as_str();
        if process_keys!(pool).read(cx, field_key, field_name, value, base) {
            continue;
        }
        match field_name {
            "size" => {
                has_size = true;
                let size = cx.integer_in(field_key, value, 1..=MAX_SIZE);
                set(&mut pool.size, size);
            }
            "max_queue" => {
                let limit = cx.integer_in(field_key, value, 1..=MAX_TASKS);
                set(&mut pool.max_queue, limit);
            }
            "keep_finished" => {
                let kept = cx.integer_in(field_key, value, 0..=MAX_TASKS);
                set(&mut pool.keep_finished, kept);
            }
            _ => {
                let known = [OWN_KEYS, SETUP_KEYS, STOP_KEYS].concat();
                reject_key(cx, field, field_key, NOT_YET_SUPPORTED, &known);
            }
        }
    }
    if !has_size {
        cx.error(name.span(), &key, "missing required key `size`");
    }
    ParsedPool {
        config: pool,
        definition: Definition {
            at: cx.source.locate(name.span()),
            key,
        },
    }
}
