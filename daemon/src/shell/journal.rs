//! The crash journal: the supervisor's [`Snapshot`] in `<state_dir>/journal.json`,
//! rewritten atomically (temp file, fsync, rename) after every step that
//! changed state, removed on a clean exit. See docs/journal.md.

use crate::core::snapshot::{Snapshot, SNAPSHOT_VERSION};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use tracing::warn;

pub struct Journal {
    path: PathBuf,
    /// Warn once, not at every step, when the state dir is unwritable.
    failing: bool,
}

impl Journal {
    pub fn new(state_dir: &Path) -> Journal {
        Journal {
            path: state_dir.join("journal.json"),
            failing: false,
        }
    }

    /// The journal a previous herdd left, if any. A missing file is normal;
    /// an unreadable, truncated, corrupt or foreign one is reported and ignored:
    /// herdd never refuses to start because of its journal.
    pub fn load(&self) -> Option<Snapshot> {
        let text = match fs::read(&self.path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
            Err(err) => {
                warn!(path = %self.path.display(), error = %err, "cannot read the journal; starting fresh");
                return None;
            }
        };
        match serde_json::from_slice::<Snapshot>(&text) {
            Ok(snapshot) if snapshot.version == SNAPSHOT_VERSION => Some(snapshot),
            Ok(snapshot) => {
                warn!(path = %self.path.display(), version = snapshot.version, "journal of another version; starting fresh");
                None
            }
            Err(err) => {
                warn!(path = %self.path.display(), error = %err, "corrupt journal; starting fresh");
                None
            }
        }
    }

    pub fn write(&mut self, snapshot: &Snapshot) {
        match self.try_write(snapshot) {
            Ok(()) => self.failing = false,
            Err(err) if !self.failing => {
                self.failing = true;
                warn!(path = %self.path.display(), error = %err, "cannot write the journal; a crash of herdd would lose state");
            }
            Err(_) => {}
        }
    }

    fn try_write(&self, snapshot: &Snapshot) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let temp = self.path.with_extension("json.tmp");
        let mut file = File::create(&temp)?;
        file.write_all(&serde_json::to_vec(snapshot)?)?;
        file.sync_all()?;
        fs::rename(&temp, &self.path)?;
        // The rename itself must reach the disk too.
        File::open(dir)?.sync_all()
    }

    /// A clean exit leaves nothing to recover.
    pub fn remove(&self) {
        let _ = fs::remove_file(&self.path);
    }
}
