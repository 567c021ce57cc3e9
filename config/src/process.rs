//! The keys units and pools share: how a process is set up (`env`, `cwd`,
//! `user`, `group`, `umask`, `rlimits`, and the least-privilege keys of
//! `confine.rs`) and how it is stopped (`stop_signal`, `stop_timeout`, `daemon`).
//!
//! `UnitConfig` and `PoolConfig` name these fields alike, so each key has one
//! reader and one default for both: [`with_default_process!`] builds a model
//! with the shared fields at their defaults, and [`process_keys!`] borrows
//! them from a model for [`ProcessKeys::read`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herd_common::signals::parse_signal;

use crate::accounts;
use crate::confine;
use crate::fields::{env, rlimits, signal, umask};
use crate::model::{Confinement, Group, Rlimit, User};
use crate::paths::resolve;
use crate::value::{set, Cx, Value};

/// The keys that set a process up, in the order "unknown key" errors list them.
pub(crate) const SETUP_KEYS: &[&str] = &[
    "env",
    "env_file",
    "cwd",
    "user",
    "group",
    "umask",
    "rlimits",
    "no_new_privs",
    "clear_env",
    "memory_max",
    "pids_max",
    "cpu_weight",
];

/// The keys that say how a process is stopped, in the same order.
pub(crate) const STOP_KEYS: &[&str] = &["stop_signal", "stop_timeout", "daemon"];

/// `stop_timeout` when the key is absent.
pub(crate) const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// SIGTERM's number (the default `stop_signal`), from the same table
/// `stop_signal` names are looked up in.
pub(crate) fn sigterm() -> i32 {
    parse_signal("SIGTERM").unwrap_or(15)
}

/// `with_default_process!(Model { own fields, }, daemon)`: the model with its
/// own fields as given and the shared ones at their defaults; `daemon` is the
/// model's own default (`true` for services, `false` for tasks and pools).
macro_rules! with_default_process {
    ($model:ident { $($own:tt)* }, $daemon:expr) => {
        $model {
            $($own)*
            env: ::std::collections::BTreeMap::new(),
            cwd: None,
            user: None,
            group: None,
            umask: None,
            rlimits: ::std::collections::BTreeMap::new(),
            confinement: $crate::model::Confinement {
                no_new_privs: false,
                clear_env: false,
                memory_max: None,
                pids_max: None,
                cpu_weight: None,
            },
            stop_signal: $crate::process::sigterm(),
            stop_timeout: $crate::process::DEFAULT_STOP_TIMEOUT,
            daemon: $daemon,
            env_files: Vec::new(),
        }
    };
}
pub(crate) use with_default_process;

/// `process_keys!(model)`: the shared fields of a `UnitConfig` or a
/// `PoolConfig`, borrowed for reading.
macro_rules! process_keys {
    ($model:expr) => {
        $crate::process::ProcessKeys {
            env: &mut $model.env,
            cwd: &mut $model.cwd,
            user: &mut $model.user,
            group: &mut $model.group,
            umask: &mut $model.umask,
            rlimits: &mut $model.rlimits,
            confinement: &mut $model.confinement,
            stop_signal: &mut $model.stop_signal,
            stop_timeout: &mut $model.stop_timeout,
            daemon: &mut $model.daemon,
            env_files: &mut $model.env_files,
        }
    };
}
pub(crate) use process_keys;

/// The shared fields of one model, borrowed (see [`process_keys!`]).
pub(crate) struct ProcessKeys<'m> {
    pub env: &'m mut BTreeMap<String, String>,
    pub cwd: &'m mut Option<PathBuf>,
    pub user: &'m mut Option<User>,
    pub group: &'m mut Option<Group>,
    pub umask: &'m mut Option<u32>,
    pub rlimits: &'m mut BTreeMap<Rlimit, u64>,
    pub confinement: &'m mut Confinement,
    pub stop_signal: &'m mut i32,
    pub stop_timeout: &'m mut Duration,
    pub daemon: &'m mut bool,
    pub env_files: &'m mut Vec<crate::env_file::EnvFile>,
}

impl ProcessKeys<'_> {
    /// Reads `value` into the field for `name` if `name` is a shared key
    /// (`key` is its full path, for errors); false if it is not one of them.
    /// A relative `cwd` is resolved against `base`, the file's directory.
    pub fn read(self, cx: &mut Cx, key: &str, name: &str, value: &Value, base: &Path) -> bool {
        match name {
            "env" => set(self.env, env(cx, key, value)),
            "env_file" => crate::env_file::read_key(cx, key, value, base, self.env_files),
            "cwd" => {
                let cwd = cx.non_empty_string(key, value);
                set(self.cwd, cwd.map(|dir| Some(resolve(base, dir))));
            }
            "user" => set(self.user, accounts::user(cx, key, value).map(Some)),
            "group" => set(self.group, accounts::group(cx, key, value).map(Some)),
            "umask" => set(self.umask, umask(cx, key, value).map(Some)),
            "rlimits" => set(self.rlimits, rlimits(cx, key, value)),
            "stop_signal" => set(self.stop_signal, signal(cx, key, value)),
            "stop_timeout" => set(self.stop_timeout, cx.duration(key, value)),
            "daemon" => set(self.daemon, cx.boolean(key, value)),
            _ => return confine::read(self.confinement, cx, key, name, value),
        }
        true
    }
}
