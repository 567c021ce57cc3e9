//! The v2 cgroups of pool tasks, which come and go far more often than
//! instances: making and removing a cgroup per task costs more than the task
//! itself when it is short (`/bin/true`), so
//!
//! * a task whose pool sets no limit runs in its pool's **shared** cgroup
//!   `pools/<pool>/shared-<generation>`, made once. Stopping such a task
//!   kills its process group; what left the group (`setsid`) is killed with
//!   the whole shared cgroup on `pool terminate` (once the stopped tasks have
//!   exited, so they get their stop signal first), or when herdd exits.
//!   After a terminate the pool's next tasks go to a new generation, so they
//!   are not caught in that kill.
//! * a task whose pool sets `memory_max`, `pids_max` or `cpu_weight` gets a
//!   leaf of its own, `pools/<pool>/slot-<n>`; when it has exited and its
//!   leftovers are gone the leaf goes back to the pool's free list and the
//!   next task reuses it (its limits are written again), instead of an
//!   `rmdir` and a `mkdir`.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::warn;

/// Name prefix of a pool's shared cgroup (`shared-<generation>`).
pub const SHARED_PREFIX: &str = "shared-";

/// Name prefix of a reusable task leaf (`slot-<n>`).
const SLOT_PREFIX: &str = "slot-";

/// A shared cgroup, kept open: each spawn into it is cloned right into
/// this directory (or opens its `cgroup.procs` itself: fork.rs).
struct Shared {
    dir: Arc<Path>,
    directory: File,
}

#[derive(Default)]
struct PoolCgroups {
    shared: Option<Shared>,
    generation: u64,
    /// Empty leaves ready for the pool's next task with limits.
    free: Vec<PathBuf>,
    next_slot: u64,
}

/// Which pool cgroups exist and which task leader is in which.
#[derive(Default)]
pub struct TaskCgroups {
    pools: HashMap<String, PoolCgroups>,
    /// Task leaders in a shared cgroup, by pid.
    sharers: HashMap<u32, Arc<Path>>,
    /// Shared cgroups by number of task leaders in them.
    counts: HashMap<Arc<Path>, usize>,
    /// Shared cgroups of terminated pools: killed once their last leader exited.
    retired: HashSet<Arc<Path>>,
    /// Reusable leaves (in use or draining), with their pool.
    slots: HashMap<PathBuf, String>,
    /// Killed leaves not yet known to be empty.
    draining: Vec<PathBuf>,
}

impl TaskCgroups {
    /// The pool's shared cgroup under `root` (made on first use): its
    /// directory, which stays open here.
    /// `delegate` is called on each parent this makes.
    pub fn shared(
        &mut self,
        root: &Path,
        pool: &str,
        delegate: impl Fn(&Path),
    ) -> io::Result<(Arc<Path>, RawFd)> {
        let entry = match self.pools.get_mut(pool) {
            Some(entry) => entry,
            None => self.pools.entry(pool.to_string()).or_default(),
        };
        // Removed behind our back (an empty cgroup can be, e.g. by another
        // herdd that took our tree for a stale one): make it again. Only an
        // empty cgroup can be removed, so while a task leader of ours is in
        // it (the usual case in a busy pool) the look is saved: a spawn
        // costs a path lookup less. Should one still find it gone (its last
        // leader had exited, not yet reaped), [`TaskCgroups::spawn_failed`]
        // makes the next spawn look.
        if let Some(shared) = &entry.shared {
            let occupied = self.counts.get(&shared.dir).is_some_and(|n| *n > 0);
            if !occupied && !shared.dir.exists() {
                entry.shared = None;
            }
        }
        if entry.shared.is_none() {
            let dir = pool_dir(root, pool, delegate)?
                .join(format!("{SHARED_PREFIX}{}", entry.generation));
            make_dir(&dir)?;
            let directory = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY)
                .open(&dir)?;
            entry.shared = Some(Shared {
                dir: dir.into(),
                directory,
            });
        }
        let shared = entry.shared.as_ref().expect("made above");
        Ok((shared.dir.clone(), shared.directory.as_raw_fd()))
    }

    /// An empty leaf for a task of `pool` with limits: a freed one (true),
    /// or a new one. `delegate` is called on each parent this makes.
    pub fn slot(
        &mut self,
        root: &Path,
        pool: &str,
        delegate: impl Fn(&Path),
    ) -> io::Result<(PathBuf, bool)> {
        // Leaves killed since the last reap may have emptied by now.
        self.recycle();
        let entry = self.pools.entry(pool.to_string()).or_default();
        if let Some(leaf) = entry.free.pop() {
            return Ok((leaf, true));
        }
        let parent = pool_dir(root, pool, delegate)?;
        let leaf = loop {
            let leaf = parent.join(format!("{SLOT_PREFIX}{}", entry.next_slot));
            entry.next_slot += 1;
            // A leaf of the same name may still hold a task of the herdd we
            // re-executed from: never share it.
            match fs::create_dir(&leaf) {
                Ok(()) => break leaf,
                Err(err) if err.kind() == ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(err),
            }
        };
        self.slots.insert(leaf.clone(), pool.to_string());
        Ok((leaf, false))
    }

    /// A spawn into a shared cgroup succeeded (`Some(pid)`) or not.
    pub fn joined(&mut self, dir: Arc<Path>, pid: u32) {
        *self.counts.entry(dir.clone()).or_default() += 1;
        self.sharers.insert(pid, dir);
    }

    /// A spawn into the pool's shared cgroup `dir` failed: if the cgroup
    /// is gone, the next spawn makes it again.
    pub fn spawn_failed(&mut self, dir: &Path) {
        if dir.exists() {
            return;
        }
        for entry in self.pools.values_mut() {
            if entry
                .shared
                .as_ref()
                .is_some_and(|shared| *shared.dir == *dir)
            {
                entry.shared = None;
            }
        }
    }

    /// A spawn into `leaf` failed: it is still empty, ready for the next task.
    pub fn unused(&mut self, leaf: PathBuf) {
        if let Some(pool) = self.slots.get(&leaf) {
            self.pools.entry(pool.clone()).or_default().free.push(leaf);
        }
    }

    /// Whether `leaf` is a reusable leaf (recycled by [`TaskCgroups::drain`]
    /// rather than removed).
    pub fn is_slot(&self, leaf: &Path) -> bool {
        self.slots.contains_key(leaf)
    }

    /// The leaf of an exited task, killed: reused once it is empty.
    pub fn drain(&mut self, leaf: PathBuf) {
        self.draining.push(leaf);
    }

    /// The leader `pid` has exited; true if it was in a shared cgroup (then
    /// nothing else of its own is to be killed). Kills a retired shared
    /// cgroup when its last leader is gone, returning it to be removed.
    pub fn leader_exited(&mut self, pid: u32) -> Option<Option<PathBuf>> {
        let dir = self.sharers.remove(&pid)?;
        let left = self.counts.get_mut(&dir).map_or(0, |count| {
            *count = count.saturating_sub(1);
            *count
        });
        if left > 0 || !self.retired.contains(&dir) {
            return Some(None);
        }
        self.counts.remove(&dir);
        self.retired.remove(&dir);
        kill(&dir);
        Some(Some(dir.to_path_buf()))
    }

    /// `pool terminate`: the pool's next tasks get a new shared cgroup; the
    /// current one is killed now if no task leader is left in it, else when
    /// the last one has exited. Returns a cgroup killed now, to be removed.
    pub fn retire(&mut self, pool: &str) -> Option<PathBuf> {
        let entry = self.pools.get_mut(pool)?;
        let shared = entry.shared.take()?;
        entry.generation += 1;
        if self.counts.get(&shared.dir).copied().unwrap_or(0) > 0 {
            self.retired.insert(shared.dir);
            return None;
        }
        self.counts.remove(&shared.dir);
        kill(&shared.dir);
        Some(shared.dir.to_path_buf())
    }

    /// Moves the killed leaves that have emptied to their pool's free list.
    pub fn recycle(&mut self) {
        let slots = &self.slots;
        let pools = &mut self.pools;
        self.draining.retain(|leaf| {
            if is_populated(leaf) {
                return true;
            }
            if let Some(pool) = slots.get(leaf) {
                pools
                    .entry(pool.clone())
                    .or_default()
                    .free
                    .push(leaf.clone());
            }
            false
        });
    }

    /// After a `daemon-reexec`: a task leader found in the shared cgroup `dir`.
    pub fn adopt_sharer(&mut self, pid: u32, dir: Arc<Path>) {
        self.joined(dir, pid);
    }
}

/// Whether `dir` is a pool's shared cgroup (by its name).
pub fn is_shared(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with(SHARED_PREFIX))
        && dir
            .parent()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .is_some_and(|name| name == "pools")
}

/// `<root>/pools/<pool>`, made if missing (with the controllers delegated).
fn pool_dir(root: &Path, pool: &str, delegate: impl Fn(&Path)) -> io::Result<PathBuf> {
    // herd's own subtree too, should it have been removed.
    if make_dir(root)? {
        delegate(root);
    }
    let pools = root.join("pools");
    if make_dir(&pools)? {
        delegate(&pools);
    }
    let dir = pools.join(pool);
    if make_dir(&dir)? {
        delegate(&dir);
    }
    Ok(dir)
}

/// `mkdir`; true if it made the directory.
fn make_dir(dir: &Path) -> io::Result<bool> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(err) => Err(err),
    }
}

fn kill(dir: &Path) {
    if let Err(err) = fs::write(dir.join("cgroup.kill"), "1") {
        if err.kind() != ErrorKind::NotFound {
            warn!(cgroup = %dir.display(), error = %err, "cannot kill the cgroup");
        }
    }
}

/// `populated 1` in the cgroup's `cgroup.events` (a missing cgroup is not).
fn is_populated(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.events"))
        .map(|events| events.lines().any(|line| line == "populated 1"))
        .unwrap_or(false)
}
