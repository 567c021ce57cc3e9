//! Durations such as `"100ms"`, `"10s"` or `"1m30s"`.
//!
//! A unit is always required: a bare `10` could mean seconds to one reader and
//! milliseconds to another, and guessing wrong turns a restart delay into an
//! outage. `humantime` does the parsing; this module only refuses unit-less
//! values (which `humantime` accepts for `"0"`) and words its errors for herd.

use std::time::Duration;

/// The hint every "missing unit" error ends with.
pub(crate) const NEEDS_UNIT: &str = "durations need a unit (ms, s, m or h), e.g. \"10s\"";

/// Parses a duration string, or says what is wrong with it.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("empty duration; {NEEDS_UNIT}"));
    }
    if trimmed.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(NEEDS_UNIT.to_string());
    }
    humantime::parse_duration(trimmed).map_err(|error| describe(text, error))
}

fn describe(text: &str, error: humantime::DurationError) -> String {
    use humantime::DurationError as E;
    match error {
        E::UnknownUnit { unit, .. } if unit.is_empty() => {
            format!("`{text}` has a number without a unit; {NEEDS_UNIT}")
        }
        E::UnknownUnit { unit, .. } => {
            format!("unknown unit `{unit}` in `{text}`; use ms, s, m or h, e.g. \"10s\"")
        }
        E::NumberOverflow => format!("duration `{text}` is too large"),
        _ => format!("invalid duration `{text}`; expected e.g. \"100ms\", \"10s\" or \"1m30s\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        let cases = [
            ("100ms", Duration::from_millis(100)),
            ("10s", Duration::from_secs(10)),
            ("1m30s", Duration::from_secs(90)),
            ("2h", Duration::from_secs(7200)),
            ("0s", Duration::ZERO),
            (" 5s ", Duration::from_secs(5)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn refused() {
        let cases = [
            ("10", NEEDS_UNIT.to_string()),
            ("0", NEEDS_UNIT.to_string()),
            ("", format!("empty duration; {NEEDS_UNIT}")),
            (
                "1m30",
                format!("`1m30` has a number without a unit; {NEEDS_UNIT}"),
            ),
            (
                "5x",
                "unknown unit `x` in `5x`; use ms, s, m or h, e.g. \"10s\"".to_string(),
            ),
            (
                "fast",
                "invalid duration `fast`; expected e.g. \"100ms\", \"10s\" or \"1m30s\""
                    .to_string(),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Err(expected), "{text}");
        }
    }
}
