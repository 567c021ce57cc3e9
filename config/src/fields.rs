//! Readers for the unit and pool keys that have their own syntax: argv, environment,
//! umask, resource limits, readiness, restart policy and signals. Each reports
//! its errors and returns `None` (or skips the bad entry) so reading goes on.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use herd_common::signals::parse_signal;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::duration;
use crate::model::{Ready, RestartPolicy, Rlimit};
use crate::value::{key_path, unknown_key, Cx, Value};

/// `rlimits` keys, named after `ulimit`/`setrlimit` resources, in the order
/// "unknown key" errors list them.
const RLIMITS: &[(&str, Rlimit)] = &[
    ("nofile", Rlimit::Nofile),
    ("nproc", Rlimit::Nproc),
    ("core", Rlimit::Core),
    ("memlock", Rlimit::Memlock),
    ("stack", Rlimit::Stack),
    ("as", Rlimit::As),
    ("fsize", Rlimit::Fsize),
    ("cpu", Rlimit::Cpu),
];

/// Strings handed to the kernel (argv, environment) cannot contain NUL.
fn check_no_nul(cx: &mut Cx, key: &str, text: &str, span: Range<usize>) -> bool {
    let clean = !text.contains('\0');
    if !clean {
        cx.error(span, key, "must not contain a NUL character");
    }
    clean
}

pub(crate) fn command(cx: &mut Cx, key: &str, value: &Value) -> Option<Vec<String>> {
    let words = cx.string_array(key, value)?;
    let Some((program, program_span)) = words.first() else {
        cx.error(
            value.span(),
            key,
            "must not be empty (give at least the program, e.g. [\"/usr/bin/app\"])",
        );
        return None;
    };
    if program.is_empty() {
        cx.error(
            program_span.clone(),
            key,
            "the program (first element) must not be empty",
        );
        return None;
    }
    let mut valid = true;
    for (word, span) in &words {
        valid &= check_no_nul(cx, key, word, span.clone());
    }
    valid.then(|| words.iter().map(|(word, _)| word.to_string()).collect())
}

pub(crate) fn env(cx: &mut Cx, key: &str, value: &Value) -> Option<BTreeMap<String, String>> {
    let table = cx.table(key, value)?;
    let mut env = BTreeMap::new();
    for (name, value) in table.iter() {
        let var_key = key_path(key, name.get_ref());
        let valid_name = env_name(cx, &var_key, name);
        let text = cx.string(&var_key, value);
        let clean = text.is_some_and(|text| check_no_nul(cx, &var_key, text, value.span()));
        if let (true, true, Some(text)) = (valid_name, clean, text) {
            env.insert(name.get_ref().to_string(), text.to_string());
        }
    }
    Some(env)
}

/// `execve` splits `NAME=VALUE` at the first `=`, so a name cannot hold one.
fn env_name(cx: &mut Cx, key: &str, name: &Spanned<Cow<str>>) -> bool {
    let text: &str = name.get_ref();
    let problem = if text.is_empty() {
        "environment variable name must not be empty".to_string()
    } else if text.contains(['=', '\0']) {
        format!("invalid environment variable name `{text}` (must not contain '=' or NUL)")
    } else {
        return true;
    };
    cx.error(name.span(), key, problem);
    false
}

/// `"027"` or `"0027"`: a string, because TOML integers are decimal and
/// `umask = 027` would silently mean 27.
pub(crate) fn umask(cx: &mut Cx, key: &str, value: &Value) -> Option<u32> {
    let DeValue::String(text) = value.get_ref() else {
        cx.type_error(key, value, "an octal string like \"027\"");
        return None;
    };
    let octal = !text.is_empty() && text.bytes().all(|digit| (b'0'..=b'7').contains(&digit));
    let mask = octal
        .then(|| u32::from_str_radix(text, 8).ok())
        .flatten()
        .filter(|mask| *mask <= 0o777);
    if mask.is_none() {
        let message = format!("invalid umask `{text}` (expected an octal string from \"000\" to \"777\", like \"027\")");
        cx.error(value.span(), key, message);
    }
    mask
}

pub(crate) fn rlimits(cx: &mut Cx, key: &str, value: &Value) -> Option<BTreeMap<Rlimit, u64>> {
    let table: &DeTable = cx.table(key, value)?;
    let mut limits = BTreeMap::new();
    for (name, value) in table.iter() {
        let limit_key = key_path(key, name.get_ref());
        let Some((_, resource)) = RLIMITS.iter().find(|(known, _)| *known == name.get_ref()) else {
            let known: Vec<&str> = RLIMITS.iter().map(|(known, _)| *known).collect();
            cx.error(name.span(), &limit_key, unknown_key(name.get_ref(), &known));
            continue;
        };
        if let Some(amount) = rlimit_value(cx, &limit_key, value) {
            limits.insert(*resource, amount);
        }
    }
    Some(limits)
}

/// A non-negative integer, or `"infinity"` (`RLIM_INFINITY`, i.e. `u64::MAX`).
fn rlimit_value(cx: &mut Cx, key: &str, value: &Value) -> Option<u64> {
    const EXPECTED: &str = "a non-negative integer or \"infinity\"";
    match value.get_ref() {
        DeValue::String(text) if text == "infinity" => Some(u64::MAX),
        DeValue::Integer(_) => {
            let amount = cx.integer(key, value)?;
            let converted = u64::try_from(amount).ok();
            if converted.is_none() {
                cx.error(
                    value.span(),
                    key,
                    format!("expected {EXPECTED} (got {amount})"),
                );
            }
            converted
        }
        DeValue::String(text) => {
            cx.error(
                value.span(),
                key,
                format!("expected {EXPECTED} (got \"{text}\")"),
            );
            None
        }
        _ => {
            cx.type_error(key, value, EXPECTED);
            None
        }
    }
}

pub(crate) fn ready(cx: &mut Cx, key: &str, value: &Value) -> Option<Ready> {
    const EXPECTED: &str = "\"started\", \"notify\", \"health\" or a duration like \"2s\"";
    let text = match value.get_ref() {
        DeValue::String(text) => text.as_ref(),
        DeValue::Integer(_) | DeValue::Float(_) => {
            return cx.duration(key, value).map(Ready::After)
        }
        _ => {
            cx.type_error(key, value, EXPECTED);
            return None;
        }
    };
    let problem = match text {
        "started" => return Some(Ready::Started),
        "notify" => return Some(Ready::Notify),
        "health" => return Some(Ready::Health),
        _ if text.trim_start().starts_with(|c: char| c.is_ascii_digit()) => {
            match duration::parse_duration(text) {
                Ok(delay) => return Some(Ready::After(delay)),
                Err(problem) => problem,
            }
        }
        _ => format!("invalid ready `{text}` (expected {EXPECTED})"),
    };
    cx.error(value.span(), key, problem);
    None
}

pub(crate) fn restart(cx: &mut Cx, key: &str, value: &Value) -> Option<RestartPolicy> {
    let policy = match cx.string(key, value)? {
        "always" => RestartPolicy::Always,
        "on-failure" => RestartPolicy::OnFailure,
        "never" => RestartPolicy::Never,
        other => {
            let message = format!(
                "invalid restart policy `{other}` (expected \"always\", \"on-failure\" or \"never\")"
            );
            cx.error(value.span(), key, message);
            return None;
        }
    };
    Some(policy)
}

/// `"SIGINT"`, `"INT"` or a number.
pub(crate) fn signal(cx: &mut Cx, key: &str, value: &Value) -> Option<i32> {
    let text = match value.get_ref() {
        DeValue::String(text) => text.to_string(),
        DeValue::Integer(_) => cx.integer(key, value)?.to_string(),
        _ => {
            cx.type_error(key, value, "a signal name like \"SIGTERM\" or a number");
            return None;
        }
    };
    let number = parse_signal(&text);
    if number.is_none() {
        let message = format!(
            "unknown signal `{text}` (expected a name like \"SIGTERM\" or \"TERM\", or a number from 1 to 64)"
        );
        cx.error(value.span(), key, message);
    }
    number
}
