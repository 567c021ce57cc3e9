//! The log keys: `log_max_size` and `log_keep` in `[herd]` (defaults for
//! every unit) and `log`, `log_max_size`, `log_keep` in a unit's table.

use toml::de::DeValue;

use crate::model::{LogMode, UnitLog};
use crate::value::{parse_size, set, Cx, Value, SIZE_SYNTAX};

/// The log keys of `[service.NAME]` and `[task.NAME]`, in the order
/// "unknown key" errors list them.
pub(crate) const UNIT_KEYS: &[&str] = &["log", "log_max_size", "log_keep"];

/// Most rotated files a unit may keep: a typo should not leave thousands.
const MAX_KEEP: i64 = 1000;

/// Reads `value` into `log` if `name` is one of [`UNIT_KEYS`] (`key` is its
/// full path, for errors); false if it is not one of them.
pub(crate) fn read(log: &mut UnitLog, cx: &mut Cx, key: &str, name: &str, value: &Value) -> bool {
    match name {
        "log" => set(&mut log.mode, mode(cx, key, value)),
        "log_max_size" => set(&mut log.max_size, max_size(cx, key, value).map(Some)),
        "log_keep" => set(&mut log.keep, keep(cx, key, value).map(Some)),
        _ => return false,
    }
    true
}

/// `"file"`, `"inherit"`, `"off"`, `"journal"` or `"console"`.
fn mode(cx: &mut Cx, key: &str, value: &Value) -> Option<LogMode> {
    let text = cx.string(key, value)?;
    match text {
        "file" => Some(LogMode::File),
        "inherit" => Some(LogMode::Inherit),
        "off" => Some(LogMode::Off),
        "journal" => Some(LogMode::Journal),
        "console" => Some(LogMode::Console),
        _ => {
            let message = format!(
                "invalid log `{text}` (expected \"file\", \"inherit\", \"off\", \"journal\" \
                 or \"console\")"
            );
            cx.error(value.span(), key, message);
            None
        }
    }
}

/// A number of bytes, or a size string (see [`parse_size`]): `"512K"`,
/// `"10MiB"`, `"1G"` (as `memory_max`). At least 1 byte.
pub(crate) fn max_size(cx: &mut Cx, key: &str, value: &Value) -> Option<u64> {
    let expected = format!("{SIZE_SYNTAX}, or a number of bytes");
    let text = match value.get_ref() {
        DeValue::Integer(_) => return cx.integer_in::<u64>(key, value, 1..=i64::MAX),
        DeValue::String(text) => text.as_ref(),
        _ => {
            cx.type_error(key, value, &expected);
            return None;
        }
    };
    match parse_size(text) {
        Some(0) => cx.error(value.span(), key, "must be more than 0 bytes"),
        Some(bytes) => return Some(bytes),
        None => {
            let message = format!("invalid size `{text}` (expected {expected})");
            cx.error(value.span(), key, message);
        }
    }
    None
}

/// How many rotated files to keep: 0 ..= 1000.
pub(crate) fn keep(cx: &mut Cx, key: &str, value: &Value) -> Option<u32> {
    cx.integer_in(key, value, 0..=MAX_KEEP)
}
