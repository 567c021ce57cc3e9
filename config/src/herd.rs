//! `[herd]`: settings of the daemon itself. Only the main config file may
//! have it (the caller enforces that), so there is exactly one place to look.

use std::path::{Path, PathBuf};

use herd_common::paths::{default_log_dir, default_socket, default_state_dir};

use crate::model::HerdSettings;
use crate::paths::resolve;
use crate::value::{key_path, set, unknown_key, Cx, Value};

const KEYS: &[&str] = &[
    "socket",
    "log_dir",
    "state_dir",
    "dbus",
    "shutdown_timeout",
    "control_group",
    "log_max_size",
    "log_keep",
    "metrics_listen",
    "journal_socket",
];

/// The settings used when `[herd]` (or one of its keys) is absent.
pub(crate) fn defaults() -> HerdSettings {
    HerdSettings {
        socket: default_socket(),
        log_dir: default_log_dir(),
        state_dir: default_state_dir(),
        dbus: "off".to_string(),
        shutdown_timeout: std::time::Duration::from_secs(30),
        control_group: None,
        log_max_size: crate::model::DEFAULT_LOG_MAX_SIZE,
        log_keep: crate::model::DEFAULT_LOG_KEEP,
        metrics_listen: None,
        journal_socket: PathBuf::from(crate::model::DEFAULT_JOURNAL_SOCKET),
    }
}

/// Reads `[herd]`; relative paths are resolved against `base`, the main
/// config file's directory.
pub(crate) fn parse(cx: &mut Cx, value: &Value, base: &Path) -> HerdSettings {
    let mut settings = defaults();
    let Some(table) = cx.table("herd", value) else {
        return settings;
    };
    for (key, value) in table.iter() {
        let name: &str = key.get_ref();
        let path = key_path("herd", name);
        match name {
            "socket" => set(&mut settings.socket, dir_or_file(cx, &path, value, base)),
            "log_dir" => set(&mut settings.log_dir, dir_or_file(cx, &path, value, base)),
            "state_dir" => set(&mut settings.state_dir, dir_or_file(cx, &path, value, base)),
            "dbus" => set(&mut settings.dbus, dbus(cx, &path, value)),
            "shutdown_timeout" => set(&mut settings.shutdown_timeout, cx.duration(&path, value)),
            "control_group" => set(
                &mut settings.control_group,
                control_group(cx, &path, value).map(Some),
            ),
            "log_max_size" => set(
                &mut settings.log_max_size,
                crate::logs::max_size(cx, &path, value),
            ),
            "log_keep" => set(&mut settings.log_keep, crate::logs::keep(cx, &path, value)),
            "metrics_listen" => set(
                &mut settings.metrics_listen,
                metrics_listen(cx, &path, value).map(Some),
            ),
            "journal_socket" => set(
                &mut settings.journal_socket,
                dir_or_file(cx, &path, value, base),
            ),
            _ => cx.error(key.span(), &path, unknown_key(name, KEYS)),
        }
    }
    settings
}

fn dir_or_file(cx: &mut Cx, key: &str, value: &Value, base: &Path) -> Option<PathBuf> {
    cx.non_empty_string(key, value)
        .map(|text| resolve(base, text))
}

/// The name of a group that exists: herdd resolves it when it starts, and
/// refusing it here lets `--check-config` and `reload` catch a typo.
fn control_group(cx: &mut Cx, key: &str, value: &Value) -> Option<String> {
    let name = cx.non_empty_string(key, value)?;
    let problem = match nix::unistd::Group::from_name(name) {
        Ok(Some(_)) => return Some(name.to_string()),
        Ok(None) => format!("no such group `{name}` (see /etc/group or `getent group`)"),
        Err(err) => format!("cannot look up group `{name}`: {err}"),
    };
    cx.error(value.span(), key, problem);
    None
}

/// `"127.0.0.1:9464"` or `"[::1]:9464"`: an IP address and port (no host
/// names: herdd binds it when it starts, without asking a resolver).
fn metrics_listen(cx: &mut Cx, key: &str, value: &Value) -> Option<std::net::SocketAddr> {
    let text = cx.non_empty_string(key, value)?;
    match text.parse() {
        Ok(address) => Some(address),
        Err(_) => {
            cx.error(
                value.span(),
                key,
                format!(
                    "invalid address `{text}` (expected an IP address and port, \
                     like \"127.0.0.1:9464\")"
                ),
            );
            None
        }
    }
}

/// `"off"`, `"system"`, `"session"`, or something that looks like a D-Bus
/// address (`unix:path=...`); the address itself is checked when connecting.
fn dbus(cx: &mut Cx, key: &str, value: &Value) -> Option<String> {
    let text = cx.string(key, value)?;
    let known = matches!(text, "off" | "system" | "session");
    if known || text.contains([':', '=']) {
        return Some(text.to_string());
    }
    cx.error(
        value.span(),
        key,
        format!(
            "invalid dbus setting `{text}` (expected \"off\", \"system\", \"session\" \
             or a bus address like \"unix:path=/run/dbus/system_bus_socket\")"
        ),
    );
    None
}
