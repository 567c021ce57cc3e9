//! Typed reading of TOML values, reporting type errors where they occur.
//!
//! Every reader returns `None` after recording an error, so callers simply
//! skip the field and go on: one bad value never hides the next one.

use std::ops::Range;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::duration::{self, NEEDS_UNIT};
use crate::errors::Errors;
use crate::source::Source;

/// A TOML value with its byte span.
pub(crate) type Value<'i> = Spanned<DeValue<'i>>;

/// Validation context for one file: where errors go and how to locate them.
pub(crate) struct Cx<'a> {
    pub source: Source<'a>,
    pub errors: &'a mut Errors,
}

impl Cx<'_> {
    /// Records an error at the start of `span`.
    pub fn error(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        let at = self.source.locate(span);
        self.errors.push(&at, key, message);
    }

    /// Records "expected X, found Y" for `value`.
    pub fn type_error(&mut self, key: &str, value: &Value, expected: &str) {
        let found = describe(value.get_ref());
        self.error(
            value.span(),
            key,
            format!("expected {expected}, found {found}"),
        );
    }

    pub fn string<'v>(&mut self, key: &str, value: &'v Value) -> Option<&'v str> {
        match value.get_ref() {
            DeValue::String(text) => Some(text.as_ref()),
            _ => {
                self.type_error(key, value, "a string");
                None
            }
        }
    }

    /// A string that must not be empty (names, paths).
    pub fn non_empty_string<'v>(&mut self, key: &str, value: &'v Value) -> Option<&'v str> {
        let text = self.string(key, value)?;
        if text.is_empty() {
            self.error(value.span(), key, "must not be empty");
            return None;
        }
        Some(text)
    }

    pub fn boolean(&mut self, key: &str, value: &Value) -> Option<bool> {
        match value.get_ref() {
            DeValue::Boolean(flag) => Some(*flag),
            _ => {
                self.type_error(key, value, "a boolean (true or false)");
                None
            }
        }
    }

    /// An integer of any TOML radix that fits an `i64`.
    pub fn integer(&mut self, key: &str, value: &Value) -> Option<i64> {
        match value.get_ref() {
            DeValue::Integer(integer) => {
                let parsed = i64::from_str_radix(integer.as_str(), integer.radix()).ok();
                if parsed.is_none() {
                    self.error(value.span(), key, "integer is out of range");
                }
                parsed
            }
            _ => {
                self.type_error(key, value, "an integer");
                None
            }
        }
    }

    /// An integer within `range`, converted to the model's type.
    pub fn integer_in<T: TryFrom<i64>>(
        &mut self,
        key: &str,
        value: &Value,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<T> {
        let number = self.integer(key, value)?;
        let (low, high) = (*range.start(), *range.end());
        let problem = if number < low {
            format!("must be at least {low} (got {number})")
        } else if number > high {
            format!("must be at most {high} (got {number})")
        } else if let Ok(converted) = T::try_from(number) {
            return Some(converted);
        } else {
            format!("integer is out of range (got {number})")
        };
        self.error(value.span(), key, problem);
        None
    }

    pub fn table<'v, 'i>(&mut self, key: &str, value: &'v Value<'i>) -> Option<&'v DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(table) => Some(table),
            _ => {
                self.type_error(key, value, "a table");
                None
            }
        }
    }

    /// An array whose elements are all strings, each with its span (so that
    /// later checks on one element can point at it).
    pub fn string_array<'v>(
        &mut self,
        key: &str,
        value: &'v Value,
    ) -> Option<Vec<(&'v str, Range<usize>)>> {
        const EXPECTED: &str = "an array of strings";
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(key, value, EXPECTED);
            return None;
        };
        let mut strings = Vec::with_capacity(items.len());
        let mut all_strings = true;
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(text) => strings.push((text.as_ref(), item.span())),
                other => {
                    let found = describe(other);
                    let message = format!("expected {EXPECTED}, but this element is {found}");
                    self.error(item.span(), key, message);
                    all_strings = false;
                }
            }
        }
        all_strings.then_some(strings)
    }

    /// A duration string such as `"10s"`; a bare number is refused with a
    /// hint, since it is the most likely mistake.
    pub fn duration(&mut self, key: &str, value: &Value) -> Option<Duration> {
        let parsed = match value.get_ref() {
            DeValue::String(text) => duration::parse_duration(text),
            DeValue::Integer(_) | DeValue::Float(_) => Err(NEEDS_UNIT.to_string()),
            _ => {
                self.type_error(key, value, "a duration string like \"10s\"");
                return None;
            }
        };
        parsed
            .map_err(|message| self.error(value.span(), key, message))
            .ok()
    }

    /// A duration, as [`Cx::duration`], that must not be zero.
    pub fn positive_duration(&mut self, key: &str, value: &Value) -> Option<Duration> {
        let duration = self.duration(key, value)?;
        if duration.is_zero() {
            self.error(value.span(), key, "must be longer than 0s");
            return None;
        }
        Some(duration)
    }
}

/// What size errors say a size looks like.
pub(crate) const SIZE_SYNTAX: &str = "a size like \"512K\", \"10MiB\" or \"1G\"";

/// `"1024"`, `"512K"`, `"10MB"`, `"1GiB"`, ...: digits and an optional unit
/// `K`, `M`, `G` or `T`, alone or followed by `B` or `iB`, in either case.
/// Every spelling means a power of 1024 (`"1MB"` = `"1MiB"` = `"1M"` =
/// 1048576 bytes), as `memory_max` and the kernel's cgroup files count, and
/// as herd always has; a bare `"B"` is bytes. `None` when malformed or too
/// large for a `u64`.
pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return None;
    }
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    let number: u64 = digits.parse().ok()?;
    number.checked_mul(1u64 << shift)
}

/// Overwrites a default only when the value was valid (readers return `None`
/// after reporting an error).
pub(crate) fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}

/// "a string", "an integer", ...: the found type in type errors.
pub(crate) fn describe(value: &DeValue) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// `parent.key`, quoting `key` as TOML would when it is not a bare key, so the
/// path in an error can be pasted back into a config.
pub(crate) fn key_path(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// "unknown key `x` (expected one of: a, b, c)".
pub(crate) fn unknown_key(key: &str, known: &[&str]) -> String {
    format!(
        "unknown key `{key}` (expected one of: {})",
        known.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::parse_size;
    use std::path::Path;

    #[test]
    fn sizes_take_every_common_spelling_of_binary_units() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("1"), Some(1));
        assert_eq!(parse_size("1B"), Some(1));
        for unit in ["K", "k", "KB", "kb", "KiB", "kib", "KIB"] {
            assert_eq!(parse_size(&format!("3{unit}")), Some(3 << 10), "{unit}");
        }
        for unit in ["M", "MB", "MiB", "mib"] {
            assert_eq!(parse_size(&format!("16{unit}")), Some(16 << 20), "{unit}");
        }
        for unit in ["G", "GB", "GiB"] {
            assert_eq!(parse_size(&format!("2{unit}")), Some(2 << 30), "{unit}");
        }
        assert_eq!(parse_size("1TiB"), Some(1 << 40));
    }

    #[test]
    fn malformed_sizes_are_refused() {
        for text in [
            "", "K", "KiB", "-1", " 1", "1 M", "1M ", "16E", "1.5G", "1Mi", "1iB", "1MBB", "1KIBB",
        ] {
            assert_eq!(parse_size(text), None, "{text:?}");
        }
        assert_eq!(parse_size("16777215T"), Some(16_777_215 << 40));
        assert_eq!(parse_size("16777216TiB"), None, "overflows u64");
    }

    #[test]
    fn every_size_key_takes_the_long_spellings() {
        let text = "[herd]\nlog_max_size = \"1MiB\"\n\
                    [service.a]\ncommand = [\"a\"]\nmemory_max = \"512MB\"\nlog_max_size = \"2GiB\"\n\
                    [pool.p]\nsize = 1\nmemory_max = \"1GB\"\n";
        let config = crate::parse(Path::new("/etc/herd/herd.toml"), text)
            .unwrap_or_else(|errors| panic!("{errors}"));
        assert_eq!(config.herd.log_max_size, 1 << 20);
        assert_eq!(config.units[0].confinement.memory_max, Some(512 << 20));
        assert_eq!(config.units[0].log.max_size, Some(2 << 30));
        assert_eq!(config.pools[0].confinement.memory_max, Some(1 << 30));
    }
}
