//! The failure hook keys of units and pools: `on_failure` (a command run
//! when an instance or task fails) and `on_failure_timeout` (how long it may
//! run before it is killed).

use std::time::Duration;

use crate::fields::command;
use crate::model::FailureHook;
use crate::value::{set, Cx, Value};

/// The hook keys, in the order "unknown key" errors list them.
pub(crate) const KEYS: &[&str] = &["on_failure", "on_failure_timeout"];

/// `on_failure_timeout` when the key is absent.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads `value` into `hook` if `name` is one of [`KEYS`] (`key` is its full
/// path, for errors); false if it is not one of them.
pub(crate) fn read(
    hook: &mut FailureHook,
    cx: &mut Cx,
    key: &str,
    name: &str,
    value: &Value,
) -> bool {
    match name {
        // An argv like `command`: a non-empty array of strings.
        "on_failure" => set(&mut hook.command, command(cx, key, value)),
        "on_failure_timeout" => set(&mut hook.timeout, cx.positive_duration(key, value)),
        _ => return false,
    }
    true
}
