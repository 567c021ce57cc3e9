//! herd's configuration: TOML files in, a validated [`Config`] out.
//!
//! [`load`] reads the main file and everything it includes; [`parse`] does
//! the same for text already in memory. Either returns a complete model with
//! every default filled in, or *every* problem found, each with its file,
//! line, column and key (`herd.toml:12:11: service.web.restart: ...`), so that
//! `herdd --check-config` and a refused reload can show them all at once.
//! `user` and `group` are looked up in the system's user database while
//! parsing (see `accounts`): the result depends on the host it runs on.
//!
//! # Layout
//! - [`model`]      — the validated model the daemon runs on
//! - `loader`       — reading files and includes, top-level keys
//! - `include`      — expanding `include` globs
//! - `herd`         — the `[herd]` table
//! - `unit`         — `[service.NAME]` and `[task.NAME]`
//! - `pool`         — `[pool.NAME]`
//! - `sync`         — `[semaphore.NAME]` and `[event.NAME]`
//! - `socket`       — `[socket.NAME]`
//! - `timer`        — the timer keys of `[task.NAME]` (`schedule`, `every`, ...)
//! - `named`        — what those tables share: valid names, key checks,
//!   duplicates, references to other tables
//! - `process`      — the process keys units and pools share (env, cwd, daemon, ...)
//! - `accounts`     — `user` and `group`, looked up in the user database at load
//! - `confine`      — the least-privilege keys among them (no_new_privs, clear_env,
//!   memory_max, pids_max, cpu_weight)
//! - `logs`         — the log keys (`log`, `log_max_size`, `log_keep`)
//! - `hooks`        — the failure hook keys (`on_failure`, `on_failure_timeout`)
//! - `fields`       — keys with their own syntax (command, env, rlimits, ...)
//! - `validate`     — checks across tables: duplicates, references, cycles
//! - `value`        — typed reading of TOML values, with type errors
//! - `duration`     — `"10s"`-style durations
//! - `paths`        — resolving relative paths against the config's directory
//! - `source`, `errors` — positions and error reporting

mod accounts;
mod confine;
mod duration;
pub mod env_file;
mod errors;
mod fields;
mod health;
mod herd;
mod hooks;
mod include;
mod loader;
mod logs;
pub mod model;
mod named;
mod paths;
mod pool;
mod process;
mod socket;
mod source;
mod sync;
mod timer;
mod unit;
mod validate;
mod value;

use std::path::Path;

pub use errors::{ConfigError, ConfigErrors};
pub use health::HttpTarget;
pub use hooks::DEFAULT_TIMEOUT as DEFAULT_HOOK_TIMEOUT;
pub use model::*;
pub use socket::MAX_SOCKETS_PER_UNIT;
pub use timer::parse_cron;

use loader::Loader;

/// Reads and validates the config file at `path` and the files it includes.
///
/// A file that cannot be read is reported as an error at its line 1,
/// column 1, with an empty key.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let mut loader = Loader::new(path);
    loader.read_file(path);
    loader.finish()
}

/// Validates `text` as the content of the config file `path`. Includes are
/// still read from disk, relative to `path`'s directory, and relative paths in
/// `[herd]` and `cwd` are resolved against it.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let mut loader = Loader::new(path);
    loader.read_text(path, text);
    loader.finish()
}

#[cfg(test)]
mod tests;
