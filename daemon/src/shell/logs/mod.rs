//! Log files of unit instances (`log = "file"`, the default), and lines
//! forwarded to journald or herdd's stdout (`log = "journal"`, `"console"`:
//! `forward.rs`).
//!
//! Each instance's stdout and stderr are pipes (see `output.rs`), read on
//! the event loop and written, line by line with a timestamp, to one file
//! per instance: `<log_dir>/<unit>/<instance>.log` (`file.rs`). Writing is
//! a plain `write(2)` to the page cache: measured here, that keeps timers
//! within ~2 ms at ~440 MiB/s, and keeps herdd single-threaded.
//!
//! The [`LogHub`] knows every log file herdd writes, for the `logs` request:
//! reading goes back to the files (`read.rs`), so a slow `logs -f` reader
//! costs herdd nothing and misses nothing that is still on disk; the hub
//! only wakes followers when something was written.

pub mod file;
pub mod forward;
pub mod journald;
pub mod read;

pub use file::{LineSink, LineSplitter, LogFile, Rotation, Stamp};
pub use forward::{ForwardSink, Forwarder, Origin};

use crate::core::{Input, InstanceId};
use herd_config::{Config, LogMode, UnitLog};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, watch};

/// What log files tell the rest of herdd: followers that something was
/// written, the core that writing fails (or works again).
#[derive(Debug, Clone)]
pub struct Notifier {
    written: Arc<watch::Sender<u64>>,
    core: mpsc::UnboundedSender<Input>,
}

impl Notifier {
    pub fn new(core: mpsc::UnboundedSender<Input>) -> Notifier {
        Notifier {
            written: Arc::new(watch::channel(0).0),
            core,
        }
    }

    /// Lines were written (or a file rotated): wake `logs -f` readers.
    pub fn written(&self) {
        if self.written.receiver_count() > 0 {
            self.written.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Tells the core (and so `status`) why this instance's log cannot be
    /// written, or that it can be again.
    pub fn log_error(&self, id: &InstanceId, error: Option<String>) {
        let _ = self.core.send(Input::LogError {
            instance: id.clone(),
            error,
        });
    }
}

/// `<log_dir>/<unit>/<instance>.log`.
pub fn log_path(dir: &Path, unit: &str, instance: &str) -> PathBuf {
    dir.join(unit).join(format!("{instance}.log"))
}

/// Every log file herdd writes, and the settings they are written with.
pub struct LogHub {
    registry: Mutex<Registry>,
    notifier: Notifier,
    /// Lines of `log = "journal"` and `"console"` units.
    forwarder: Forwarder,
}

struct Registry {
    dir: PathBuf,
    /// `[herd] log_max_size` and `log_keep`.
    defaults: Rotation,
    /// Each configured unit's `log` keys.
    units: HashMap<String, UnitLog>,
    /// By instance name (unique: unit names cannot contain `@`). Kept for
    /// herdd's life, so a follower's idea of how often a file rotated
    /// survives the instance's restarts.
    files: HashMap<String, Arc<Mutex<LogFile>>>,
}

impl Registry {
    fn rotation(&self, unit: &str) -> Rotation {
        let log = self.units.get(unit).copied().unwrap_or_default();
        Rotation {
            max_size: log.max_size.unwrap_or(self.defaults.max_size),
            keep: log.keep.unwrap_or(self.defaults.keep),
        }
    }
}

/// Locks a mutex; a panic elsewhere while holding it leaves data that is
/// still usable (counters, an open file).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LogHub {
    pub fn new(config: &Config, core: mpsc::UnboundedSender<Input>) -> Arc<LogHub> {
        let hub = LogHub {
            registry: Mutex::new(Registry {
                dir: PathBuf::new(),
                defaults: Rotation {
                    max_size: config.herd.log_max_size,
                    keep: config.herd.log_keep,
                },
                units: HashMap::new(),
                files: HashMap::new(),
            }),
            notifier: Notifier::new(core),
            forwarder: Forwarder::new(&config.herd.journal_socket),
        };
        hub.configure(config);
        Arc::new(hub)
    }

    /// Takes the settings of a (re)loaded config; files being written
    /// follow them from their next line, forwarded lines from their next
    /// batch.
    pub fn configure(&self, config: &Config) {
        let journaled: Vec<String> = config
            .units
            .iter()
            .filter(|unit| unit.log.mode == LogMode::Journal)
            .map(|unit| unit.name.clone())
            .collect();
        self.forwarder
            .configure(&config.herd.journal_socket, &journaled);
        let mut registry = lock(&self.registry);
        registry.dir = config.herd.log_dir.clone();
        registry.defaults = Rotation {
            max_size: config.herd.log_max_size,
            keep: config.herd.log_keep,
        };
        registry.units = config
            .units
            .iter()
            .map(|unit| (unit.name.clone(), unit.log))
            .collect();
        for (instance, file) in &registry.files {
            let mut file = lock(file);
            let id = file.id().clone();
            let path = log_path(&registry.dir, &id.unit, instance);
            let rotation = registry.rotation(&id.unit);
            file.reconfigure(id, path, rotation);
        }
    }

    /// The log file of instance `id` (named `instance`, e.g. `web@2`), for
    /// a new process's pipes.
    pub fn file(&self, id: &InstanceId, instance: &str) -> Arc<Mutex<LogFile>> {
        let mut registry = lock(&self.registry);
        let path = log_path(&registry.dir, &id.unit, instance);
        let rotation = registry.rotation(&id.unit);
        if let Some(file) = registry.files.get(instance) {
            lock(file).reconfigure(id.clone(), path, rotation);
            return file.clone();
        }
        let file = Arc::new(Mutex::new(LogFile::new(
            id.clone(),
            instance.to_string(),
            path,
            rotation,
            self.notifier.clone(),
        )));
        registry.files.insert(instance.to_string(), file.clone());
        file
    }

    /// Where `log = "journal"` and `"console"` lines go.
    pub fn forwarder(&self) -> &Forwarder {
        &self.forwarder
    }

    /// `[herd] log_dir`.
    pub fn dir(&self) -> PathBuf {
        lock(&self.registry).dir.clone()
    }

    /// A configured unit's `log` setting; `None` for a name the config does
    /// not have (its old files may still be read).
    pub fn mode_of(&self, unit: &str) -> Option<LogMode> {
        lock(&self.registry).units.get(unit).map(|log| log.mode)
    }

    /// The units of the current config.
    pub fn units(&self) -> Vec<String> {
        lock(&self.registry).units.keys().cloned().collect()
    }

    /// Where instance `instance` is being written and how often that file
    /// has rotated, if herdd has written it since it started.
    pub fn position(&self, instance: &str) -> Option<(PathBuf, u64)> {
        let registry = lock(&self.registry);
        let file = lock(registry.files.get(instance)?);
        Some((file.path().to_path_buf(), file.rotations()))
    }

    /// Instances of `unit` herdd has written logs for since it started.
    pub fn instances_of(&self, unit: &str) -> Vec<String> {
        let registry = lock(&self.registry);
        registry
            .files
            .iter()
            .filter(|(_, file)| lock(file).id().unit == unit)
            .map(|(instance, _)| instance.clone())
            .collect()
    }

    /// A receiver that changes whenever some log was written or rotated.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.notifier.written.subscribe()
    }
}
