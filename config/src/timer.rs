//! The timer keys of `[task.NAME]`: `schedule`, `every`, `every_from`,
//! `overlap`, `pool` and `persistent`. Read one by one into [`TimerDraft`],
//! then checked together once the task's table is read.

use std::ops::Range;
use std::time::Duration;

use croner::parser::{CronParser, Seconds, Year};

use crate::model::{EveryFrom, Overlap, TimerConfig, TimerSchedule};
use crate::named::{reference, Namespace, Reference};
use crate::value::{key_path, set, Cx, Value};

/// The timer keys, in the order error messages list them.
pub(crate) const TIMER_KEYS: &[&str] = &[
    "schedule",
    "every",
    "every_from",
    "overlap",
    "pool",
    "persistent",
];

/// The timer keys of one task as read so far, with where each was written.
#[derive(Default)]
pub(crate) struct TimerDraft {
    schedule: Option<(TimerSchedule, Range<usize>)>,
    every: Option<(Duration, Range<usize>)>,
    every_from: Option<(EveryFrom, Range<usize>)>,
    overlap: Option<(Overlap, Range<usize>)>,
    pool: Option<(String, Range<usize>)>,
    persistent: Option<(bool, Range<usize>)>,
}

impl TimerDraft {
    /// Reads timer key `name` (full path `key`); false if it is not one.
    pub fn read(
        &mut self,
        cx: &mut Cx,
        key: &str,
        name: &str,
        value: &Value,
        refs: &mut Vec<Reference>,
    ) -> bool {
        let span = value.span();
        match name {
            "schedule" => set(
                &mut self.schedule,
                cron(cx, key, value).map(|s| Some((s, span))),
            ),
            "every" => {
                let interval = cx.positive_duration(key, value);
                set(&mut self.every, interval.map(|d| Some((d, span))));
            }
            "every_from" => {
                let from = every_from(cx, key, value);
                set(&mut self.every_from, from.map(|f| Some((f, span))));
            }
            "overlap" => set(
                &mut self.overlap,
                overlap(cx, key, value).map(|o| Some((o, span))),
            ),
            "pool" => {
                let pool = reference(cx, key, value, Namespace::Pool, refs);
                set(&mut self.pool, pool.map(|p| Some((p, span))));
            }
            "persistent" => {
                let persistent = cx.boolean(key, value);
                set(&mut self.persistent, persistent.map(|p| Some((p, span))));
            }
            _ => return false,
        }
        true
    }

    /// The task's timer, once its whole table (`[unit_key]`) is read; errors
    /// for keys that contradict each other or need a key that is missing.
    pub fn finish(self, cx: &mut Cx, unit_key: &str) -> Option<TimerConfig> {
        let at = |name: &str| key_path(unit_key, name);
        let when = match (self.schedule, self.every) {
            (Some(_), Some((_, span))) => {
                let message = "a task has either `schedule` or `every`, not both";
                cx.error(span, &at("every"), message);
                return None;
            }
            (Some((schedule, _)), None) => {
                if let Some((_, span)) = &self.every_from {
                    let message = "`every_from` goes with `every`, not `schedule`";
                    cx.error(span.clone(), &at("every_from"), message);
                }
                schedule
            }
            (None, Some((interval, _))) => TimerSchedule::Every {
                interval,
                from: self.every_from.map_or(EveryFrom::End, |(from, _)| from),
            },
            (None, None) => {
                let orphans = [
                    ("every_from", self.every_from.map(|(_, s)| s)),
                    ("overlap", self.overlap.map(|(_, s)| s)),
                    ("pool", self.pool.map(|(_, s)| s)),
                    ("persistent", self.persistent.map(|(_, s)| s)),
                ];
                for (name, span) in orphans {
                    if let Some(span) = span {
                        let message = "needs `schedule` or `every` in the same task";
                        cx.error(span, &at(name), message);
                    }
                }
                return None;
            }
        };
        let overlap = self.overlap.as_ref().map_or(Overlap::Skip, |(o, _)| *o);
        if let (Overlap::Allow, None, Some((_, span))) = (overlap, &self.pool, &self.overlap) {
            let message = "overlap = \"allow\" needs `pool`: a task runs one process at a \
                           time, a pool runs several";
            cx.error(span.clone(), &at("overlap"), message);
        }
        Some(TimerConfig {
            when,
            overlap,
            pool: self.pool.map(|(pool, _)| pool),
            persistent: self.persistent.is_some_and(|(p, _)| p),
        })
    }
}

/// `schedule`: 5 fields, or 6 with seconds first; `@hourly`, `@daily`,
/// `@weekly`, `@monthly`, `@yearly`.
fn cron(cx: &mut Cx, key: &str, value: &Value) -> Option<TimerSchedule> {
    let text = cx.non_empty_string(key, value)?;
    match parse_cron(text) {
        Ok(cron) => Some(TimerSchedule::Cron {
            expression: text.to_string(),
            cron: Box::new(cron),
        }),
        Err(message) => {
            cx.error(value.span(), key, message);
            None
        }
    }
}

/// Parses a cron expression as `schedule` takes it.
pub fn parse_cron(text: &str) -> Result<croner::Cron, String> {
    let fields = text.split_whitespace().count();
    let shorthand = text.trim_start().starts_with('@');
    if !shorthand && !(5..=6).contains(&fields) {
        return Err(format!(
            "invalid cron expression {text:?}: expected 5 fields (minute hour day month \
             weekday) or 6 with seconds first, got {fields}"
        ));
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|error| format!("invalid cron expression {text:?}: {error}"))?;
    // `0 0 31 2 *` parses but never comes; any date that does comes within
    // a leap cycle of any start.
    let start = jiff::civil::date(2000, 1, 1).at(0, 0, 0, 0);
    if cron.find_next_occurrence(&start, false).is_err() {
        return Err(format!(
            "invalid cron expression {text:?}: it never comes (no such date)"
        ));
    }
    Ok(cron)
}

fn every_from(cx: &mut Cx, key: &str, value: &Value) -> Option<EveryFrom> {
    match cx.string(key, value)? {
        "end" => Some(EveryFrom::End),
        "start" => Some(EveryFrom::Start),
        other => {
            let message = format!("invalid every_from `{other}` (expected \"end\" or \"start\")");
            cx.error(value.span(), key, message);
            None
        }
    }
}

fn overlap(cx: &mut Cx, key: &str, value: &Value) -> Option<Overlap> {
    match cx.string(key, value)? {
        "skip" => Some(Overlap::Skip),
        "queue" => Some(Overlap::Queue),
        "allow" => Some(Overlap::Allow),
        other => {
            let message =
                format!("invalid overlap `{other}` (expected \"skip\", \"queue\" or \"allow\")");
            cx.error(value.span(), key, message);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_cron;

    #[test]
    fn cron_expressions_take_five_or_six_fields_and_the_shorthands() {
        for good in [
            "*/15 * * * *",
            "*/2 * * * * *",
            "0 30 9 * * MON-FRI",
            "@hourly",
            "@daily",
            "@weekly",
            "@monthly",
            "@yearly",
        ] {
            assert!(parse_cron(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "* * * *",
            "0 0 0 * * * 2030",
            "61 * * * *",
            "* * 32 * *",
            "@sometimes",
            "bogus",
        ] {
            let error = parse_cron(bad).unwrap_err();
            assert!(error.contains("invalid cron expression"), "{bad}: {error}");
        }
    }
}
