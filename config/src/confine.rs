//! Readers for the least-privilege keys units and pools share:
//! `no_new_privs`, `clear_env` and the cgroup limits `memory_max`,
//! `pids_max` and `cpu_weight` (see [`Confinement`]).

use toml::de::DeValue;

use crate::model::Confinement;
use crate::value::{parse_size, set, Cx, Value, SIZE_SYNTAX};

/// The kernel's `PID_MAX_LIMIT` on 64-bit: no cgroup can hold more.
const MAX_PIDS: i64 = 4_194_304;

/// `cpu.weight`'s range.
const CPU_WEIGHT: std::ops::RangeInclusive<i64> = 1..=10_000;

/// Reads `value` into `confinement` if `name` is one of these keys (they are
/// listed among `process::SETUP_KEYS`)
/// (`key` is its full path, for errors); false if it is not one of them.
pub(crate) fn read(
    confinement: &mut Confinement,
    cx: &mut Cx,
    key: &str,
    name: &str,
    value: &Value,
) -> bool {
    match name {
        "no_new_privs" => set(&mut confinement.no_new_privs, cx.boolean(key, value)),
        "clear_env" => set(&mut confinement.clear_env, cx.boolean(key, value)),
        "memory_max" => set(&mut confinement.memory_max, memory(cx, key, value)),
        "pids_max" => set(&mut confinement.pids_max, pids(cx, key, value)),
        "cpu_weight" => {
            let weight = cx.integer_in(key, value, CPU_WEIGHT);
            set(&mut confinement.cpu_weight, weight.map(Some));
        }
        _ => return false,
    }
    true
}

/// `"max"` (no limit), a number of bytes, or a size string (see
/// [`parse_size`]): `"512M"`, `"512MiB"`, `"2G"` (as systemd's `MemoryMax=`).
fn memory(cx: &mut Cx, key: &str, value: &Value) -> Option<Option<u64>> {
    let expected = format!("{SIZE_SYNTAX}, a number of bytes, or \"max\"");
    let text = match value.get_ref() {
        DeValue::Integer(_) => {
            let bytes = cx.integer_in::<u64>(key, value, 1..=i64::MAX)?;
            return Some(Some(bytes));
        }
        DeValue::String(text) => text.as_ref(),
        _ => {
            cx.type_error(key, value, &expected);
            return None;
        }
    };
    if text == "max" {
        return Some(None);
    }
    match parse_size(text) {
        Some(0) => cx.error(value.span(), key, "must be more than 0 bytes"),
        Some(bytes) => return Some(Some(bytes)),
        None => {
            let message = format!("invalid size `{text}` (expected {expected})");
            cx.error(value.span(), key, message);
        }
    }
    None
}

/// A positive integer up to the kernel's pid limit, or `"max"`.
fn pids(cx: &mut Cx, key: &str, value: &Value) -> Option<Option<u64>> {
    match value.get_ref() {
        DeValue::String(text) if text == "max" => Some(None),
        DeValue::Integer(_) => cx.integer_in(key, value, 1..=MAX_PIDS).map(Some),
        _ => {
            cx.type_error(key, value, "a positive integer or \"max\"");
            None
        }
    }
}
