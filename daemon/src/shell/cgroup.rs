//! One cgroup per instance (and per pool task with limits), so that stopping kills the
//! whole tree — including processes that left the process group with
//! `setsid` — and so that `memory_max`, `pids_max` and `cpu_weight` apply.
//!
//! At start herdd tries to create its own subtree, `herd-<pid>`, next to
//! itself in the cgroup v2 hierarchy (found in /proc/self/mountinfo and
//! /proc/self/cgroup: `/sys/fs/cgroup` on a unified system,
//! `/sys/fs/cgroup/unified` on a hybrid one). Each process then gets
//! `herd-<pid>/units/<unit>/<index>` (pool tasks: see `task_cgroups.rs`),
//! and is created right in it (`clone3` with `CLONE_INTO_CGROUP`; on kernels without
//! it the child writes `0` to the cgroup's `cgroup.procs` before its exec).
//!
//! The v1 cgroups of a hybrid system (below) have no such clone flag: the
//! child joins them by writing `0` to their `cgroup.procs`, opened by the
//! shell before the fork, between fork and exec (one async-signal-safe
//! `write` each). So the program and all its descendants are under their
//! limits from their first instruction. Where herdd forks rather than clones
//! vfork-style (fork.rs), the moment between the fork and the exec — when
//! herdd already reports the pid but the child is still a copy of herdd
//! that may not have been scheduled yet — shows herdd's own v1 cgroups in
//! `/proc/<pid>/cgroup`; the vfork-style clone returns only after the exec.
//!
//! When the process exits the core asks to kill its leftovers
//! ([`Cgroups::kill_leftovers`]): a cgroup that is empty already (the
//! leader was all of it, the usual case) is removed at once, with nothing
//! to kill; otherwise `1` goes to its `cgroup.kill`, and it is removed once
//! emptied, on a later reap (never by waiting or polling). herdd removes its subtree
//! when it exits ([`Cgroups::close`], waiting on the runtime's timer for
//! killed processes to leave), and at start the empty remains of herdds that
//! were killed. A killed herdd's cgroups that still hold processes are left
//! alone, except those of the processes this herdd adopts from its journal
//! ([`Cgroups::adopt`]). After a `daemon-reexec` (same pid, same tree) herdd
//! takes its tree over again.
//!
//! Cost, measured on the 2-core development machine: creating and removing
//! a cgroup adds about 70 µs to a spawn and reap, joining it about 70 µs more
//! (a bare fork + exec + reap of `/bin/true` takes about 600 µs).
//!
//! Limits go to `memory.max`, `pids.max` and `cpu.weight` when the v2
//! hierarchy offers those controllers. On a hybrid system they are usually
//! bound to v1 hierarchies instead: then the limit is applied in a cgroup of
//! that v1 hierarchy (`memory.limit_in_bytes`, `pids.max`, `cpu.shares`),
//! which the child joins the same way. A limit no hierarchy can apply is
//! reported once and ignored.
//!
//! Without a writable cgroup v2 hierarchy (or without `cgroup.kill`, Linux <
//! 5.14) herd falls back to process groups, and says so once at start-up.

use crate::core::hooks::HookSubject;
use crate::core::Owner;
use herd_config::Confinement;
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

use super::mountinfo;
use super::task_cgroups::{self, TaskCgroups};

/// Prefix of the subtree each herdd creates (`herd-<pid>`).
const SUBTREE_PREFIX: &str = "herd-";

/// Where this herdd puts its own cgroups, for readers that look at many
/// of them at once (`usage.rs`): instance N of unit U is in
/// `<v2>/units/U/N` (and, when U sets a limit v2 cannot apply, in
/// `<v1 tree>/units/U/N`).
pub struct Tree {
    pub v2: PathBuf,
    pub v1: Vec<PathBuf>,
}

static TREE: std::sync::OnceLock<Tree> = std::sync::OnceLock::new();

/// This herdd's cgroup tree, once [`Cgroups::detect`] made it.
pub fn tree() -> Option<&'static Tree> {
    TREE.get()
}

/// How long [`Cgroups::close`] waits for killed processes to leave.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The leaf herdd moves itself into when it is alone in a non-root cgroup
/// (see [`leave_for_leaf`]).
const SELF_LEAF: &str = "herdd.self";

/// A resource controller a limit needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Controller {
    Memory,
    Pids,
    Cpu,
}

impl Controller {
    const ALL: [Controller; 3] = [Controller::Memory, Controller::Pids, Controller::Cpu];

    /// Its name, in `cgroup.controllers` and in v1 mount options alike.
    fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }

    /// The config key whose limit it applies.
    fn key(self) -> &'static str {
        match self {
            Controller::Memory => "memory_max",
            Controller::Pids => "pids_max",
            Controller::Cpu => "cpu_weight",
        }
    }

    /// The limit `confinement` asks of it, if any.
    fn limit(self, confinement: &Confinement) -> Option<u64> {
        match self {
            Controller::Memory => confinement.memory_max,
            Controller::Pids => confinement.pids_max,
            Controller::Cpu => confinement.cpu_weight.map(u64::from),
        }
    }

    /// `(file, value)` to write in a v2 cgroup; `limit == None` writes the
    /// default, so a cgroup reused after a reload carries no stale limit.
    fn v2_setting(self, limit: Option<u64>) -> (&'static str, String) {
        let max = |limit: Option<u64>| limit.map_or_else(|| "max".to_string(), |n| n.to_string());
        match self {
            Controller::Memory => ("memory.max", max(limit)),
            Controller::Pids => ("pids.max", max(limit)),
            Controller::Cpu => ("cpu.weight", limit.unwrap_or(100).to_string()),
        }
    }

    /// `(file, value)` to write in a v1 cgroup for `limit`.
    fn v1_setting(self, limit: u64) -> (&'static str, String) {
        match self {
            Controller::Memory => ("memory.limit_in_bytes", limit.to_string()),
            Controller::Pids => ("pids.max", limit.to_string()),
            // cpu.weight 100 is cpu.shares 1024 (both the default); 2 is the least share.
            Controller::Cpu => ("cpu.shares", (limit * 1024 / 100).max(2).to_string()),
        }
    }
}

/// herd's cgroups, and which process is in which.
pub struct Cgroups {
    /// `<v2 mount>/<herdd's cgroup>/herd-<pid>`, when v2 is writable.
    root: Option<PathBuf>,
    /// Controllers enabled for the cgroups under `root`.
    enabled: Vec<Controller>,
    /// For controllers v2 lacks: `<v1 mount>/<herdd's v1 cgroup>/herd-<pid>`
    /// (created when a limit first needs it).
    v1: Vec<(Controller, PathBuf)>,
    /// Trees of killed herdds that hold processes this herdd adopted
    /// ([`Cgroups::adopt`]): their cgroups are removed once empty, like ours.
    foreign: Vec<PathBuf>,
    /// The cgroups of each live process, by pid (the pgid of its group).
    live: HashMap<u32, Vec<PathBuf>>,
    /// Cgroups to remove once empty.
    doomed: Vec<PathBuf>,
    /// Limits already reported as unenforceable.
    warned: HashSet<Controller>,
    /// Pool tasks' shared and reusable v2 cgroups.
    tasks: TaskCgroups,
}

/// The cgroups prepared for a process about to be spawned.
pub struct Placement {
    dirs: Vec<PathBuf>,
    /// The v2 leaf, opened as a directory: the child is created right in it
    /// (`clone3` with `CLONE_INTO_CGROUP`), or, where the kernel cannot do
    /// that, opens its `cgroup.procs` itself (fork.rs): herdd opens only
    /// the directory.
    v2: Option<File>,
    /// `cgroup.procs` of each v1 cgroup, open for writing: the child writes `0` to them.
    procs: Vec<File>,
    /// A pool's shared cgroup (kept open by [`TaskCgroups`]) instead of `v2`.
    shared: Option<(Arc<Path>, RawFd)>,
}

impl Placement {
    /// `cgroup.procs` of each v1 cgroup, open for writing: the child joins
    /// them by writing `0` before its exec.
    pub fn join_by_write(&self) -> Vec<RawFd> {
        self.procs.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// The v2 cgroup to create the child in: its directory, open.
    pub fn v2(&self) -> Option<RawFd> {
        if let Some((_, dir)) = &self.shared {
            return Some(*dir);
        }
        self.v2.as_ref().map(AsRawFd::as_raw_fd)
    }
}

impl Cgroups {
    /// Process groups only: no cgroup is made.
    pub fn disabled() -> Cgroups {
        Cgroups {
            root: None,
            enabled: Vec::new(),
            v1: Vec::new(),
            foreign: Vec::new(),
            live: HashMap::new(),
            doomed: Vec::new(),
            warned: HashSet::new(),
            tasks: TaskCgroups::default(),
        }
    }

    /// Finds out what this system allows, creates herd's subtree and says
    /// once, in the log, what stopping will rely on.
    pub fn detect() -> Cgroups {
        let mut cgroups = Cgroups::disabled();
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let memberships = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let subtree = format!("{SUBTREE_PREFIX}{}", std::process::id());
        match mountinfo::v2_dir(&mounts, &memberships) {
            Some(own) => match create_subtree(&own, &subtree) {
                Ok((root, enabled)) => {
                    cgroups.adopt_tree(&root);
                    cgroups.root = Some(root);
                    cgroups.enabled = enabled;
                }
                Err(why) => info!(
                    cgroup = %own.display(),
                    "cgroups not usable ({why}); falling back to process groups: \
                     processes that leave their group (setsid) survive a stop, \
                     and memory_max/pids_max/cpu_weight need a v1 hierarchy"
                ),
            },
            None => info!(
                "no cgroup v2 hierarchy; falling back to process groups: processes that \
                 leave their group (setsid) survive a stop"
            ),
        }
        for controller in Controller::ALL {
            if cgroups.enabled.contains(&controller) {
                continue;
            }
            if let Some(own) = mountinfo::v1_dir(&mounts, &memberships, controller.name()) {
                sweep_stale(&own);
                cgroups.adopt_tree(&own.join(&subtree));
                cgroups.v1.push((controller, own.join(&subtree)));
            }
        }
        if let Some(root) = &cgroups.root {
            let names = |list: Vec<Controller>| {
                let names: Vec<&str> = list.iter().map(|c| c.name()).collect();
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(",")
                }
            };
            let v1 = cgroups.v1.iter().map(|(c, _)| *c).collect();
            info!(
                root = %root.display(),
                controllers = %names(cgroups.enabled.clone()),
                v1_controllers = %names(v1),
                "each instance, and each task whose pool sets a limit, gets its own cgroup"
            );
            let v1 = cgroups.v1.iter().map(|(_, dir)| dir.clone()).collect();
            // Set once: a herdd finds its tree once (a re-exec is a new process).
            let _ = TREE.set(Tree {
                v2: root.clone(),
                v1,
            });
        }
        cgroups
    }

    /// The spawn of a process placed with [`Cgroups::place`] is over: its
    /// cgroups are now its own (`Some(pid)`), or removed if it did not start.
    pub fn settle(&mut self, placement: Option<Placement>, pid: Option<u32>) {
        let Some(Placement { dirs, shared, .. }) = placement else {
            return;
        };
        match (shared, pid) {
            (Some((dir, ..)), Some(pid)) => self.tasks.joined(dir, pid),
            (Some((dir, ..)), None) => self.tasks.spawn_failed(&dir),
            (None, _) => {}
        }
        match pid {
            Some(pid) if !dirs.is_empty() => {
                self.live.insert(pid, dirs);
            }
            Some(_) => {}
            None => {
                let (slots, others): (Vec<PathBuf>, Vec<PathBuf>) =
                    dirs.into_iter().partition(|dir| self.tasks.is_slot(dir));
                for slot in slots {
                    self.tasks.unused(slot);
                }
                self.doomed.extend(others);
                self.sweep();
            }
        }
    }

    /// The leader `pid` has exited: kill whatever is left in its cgroup
    /// (`cgroup.kill` reaches processes that left its process group) and
    /// remove the cgroup once empty.
    pub fn kill_leftovers(&mut self, pid: u32) {
        if let Some(killed) = self.tasks.leader_exited(pid) {
            // A shared pool cgroup: the process group was all of this task to kill.
            self.doomed.extend(killed);
            self.sweep();
            return;
        }
        let Some(mut dirs) = self.live.remove(&pid) else {
            return;
        };
        // Usually the leader was all of it: its cgroups are empty once it
        // is reaped and go at once, with nothing to kill (one `rmdir`
        // instead of a look, a kill and the `rmdir`). Reusable task leaves
        // are killed and recycled below instead.
        let tops = self.tops();
        dirs.retain(|dir| self.tasks.is_slot(dir) || !remove_if_empty(dir, &tops));
        if dirs.is_empty() {
            return;
        }
        let (v2, v1): (Vec<&PathBuf>, Vec<&PathBuf>) = dirs
            .iter()
            .partition(|dir| dir.join("cgroup.kill").exists());
        for leaf in &v2 {
            if let Err(err) = fs::write(leaf.join("cgroup.kill"), "1") {
                if err.kind() != ErrorKind::NotFound {
                    warn!(cgroup = %leaf.display(), error = %err, "cannot kill the cgroup");
                }
            }
        }
        if v2.is_empty() {
            // v1 has no cgroup.kill: kill its members one by one.
            for leaf in v1 {
                for member in read_list(&leaf.join("cgroup.procs")) {
                    if let Ok(member) = member.parse::<i32>() {
                        let _ = kill(Pid::from_raw(member), Signal::SIGKILL);
                    }
                }
            }
        }
        let (slots, others): (Vec<PathBuf>, Vec<PathBuf>) =
            dirs.into_iter().partition(|dir| self.tasks.is_slot(dir));
        for slot in slots {
            self.tasks.drain(slot);
        }
        self.doomed.extend(others);
        self.sweep();
    }

    /// `pool terminate`: the pool's shared cgroup is killed — now if its
    /// tasks have all exited, else when the last one has — and removed; the
    /// pool's next tasks get a fresh one.
    pub fn kill_pool_leftovers(&mut self, pool: &str) {
        if let Some(killed) = self.tasks.retire(pool) {
            self.doomed.push(killed);
            self.sweep();
        }
    }

    /// Removes the cgroups that have emptied since they were doomed; keeps
    /// the busy ones for the next call (after the next reap).
    pub fn sweep(&mut self) {
        self.tasks.recycle();
        if self.doomed.is_empty() {
            return;
        }
        let tops: Vec<PathBuf> = self.tops();
        self.doomed.retain(|dir| match fs::remove_dir(dir) {
            Ok(()) => {
                remove_empty_parents(dir, &tops);
                false
            }
            Err(err) if err.kind() == ErrorKind::NotFound => false,
            Err(err) if err.kind() == ErrorKind::ResourceBusy => true,
            Err(err) => {
                warn!(cgroup = %dir.display(), error = %err, "cannot remove cgroup");
                false
            }
        });
    }

    /// The roots of herd's subtrees (v2, v1 and adopted ones), which
    /// parents are removed up to.
    fn tops(&self) -> Vec<PathBuf> {
        self.root
            .iter()
            .cloned()
            .chain(self.v1.iter().map(|(_, root)| root.clone()))
            .chain(self.foreign.iter().cloned())
            .collect()
    }

    /// A process adopted after a crash of the herdd that spawned it (found in
    /// the journal): if it is in a cgroup of that herdd's `herd-<pid>` tree
    /// (next to ours), what it leaves behind is killed with `cgroup.kill`
    /// when it exits, and that tree is removed once empty. (The old tree is
    /// never killed as a whole: only what the journal names is ours.)
    pub fn adopt(&mut self, pid: u32) {
        let Some(parent) = self.root.as_deref().and_then(Path::parent) else {
            return;
        };
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let memberships = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let Some(dir) = mountinfo::v2_dir(&mounts, &memberships) else {
            return;
        };
        let Some(top) = dir
            .strip_prefix(parent)
            .ok()
            .and_then(|relative| relative.components().next())
            .map(|first| parent.join(first))
        else {
            return;
        };
        let is_tree = subtree_owner(top.file_name().unwrap_or_default()).is_some();
        if !is_tree || top == dir || self.live.contains_key(&pid) {
            return;
        }
        debug!(pid, cgroup = %dir.display(), "adopted a process's cgroup");
        self.live.insert(pid, vec![dir]);
        if Some(&top) != self.root.as_ref() && !self.foreign.contains(&top) {
            self.foreign.push(top);
        }
    }

    /// After a `daemon-reexec` herdd's pid and so its tree are the same,
    /// with processes in it: maps each group leader found in the tree at
    /// `top` to its cgroup, so its leftovers are killed when it exits.
    fn adopt_tree(&mut self, top: &Path) {
        let mut leaders = Vec::new();
        collect_leaders(top, &mut leaders);
        if !leaders.is_empty() {
            debug!(cgroup = %top.display(), processes = leaders.len(), "took over a cgroup tree");
        }
        for (pid, dir) in leaders {
            if task_cgroups::is_shared(&dir) {
                self.tasks.adopt_sharer(pid, dir.into());
            } else {
                self.live.entry(pid).or_default().push(dir);
            }
        }
    }

    /// Creates and configures the cgroups for `owner`'s next process and
    /// opens their `cgroup.procs`; `None` when it gets none (process groups
    /// only). Hand the placement back to [`Cgroups::settle`] after the spawn.
    /// `pool` is the pool of a task: see `task_cgroups.rs`.
    pub fn place(
        &mut self,
        owner: &Owner,
        confinement: &Confinement,
        pool: Option<&str>,
    ) -> Option<Placement> {
        let relative = match owner {
            Owner::Instance(id) => Path::new("units").join(&id.unit).join(id.index.to_string()),
            // Not `tasks/<id>`: every v1 cgroup has a file named `tasks`.
            Owner::Task(id) => match pool {
                Some(pool) => Path::new("pools").join(pool).join(format!("task-{id}")),
                None => Path::new("tasks").join(id.to_string()),
            },
            Owner::Hook(HookSubject::Instance(id)) => Path::new("hooks")
                .join("units")
                .join(&id.unit)
                .join(id.index.to_string()),
            Owner::Hook(HookSubject::Pool(pool)) => Path::new("hooks").join("pools").join(pool),
        };
        let mut placement = Placement {
            dirs: Vec::new(),
            v2: None,
            procs: Vec::new(),
            shared: None,
        };
        let has_limits = Controller::ALL
            .iter()
            .any(|controller| controller.limit(confinement).is_some());
        let task_pool = pool.filter(|_| matches!(owner, Owner::Task(_)));
        if let (Some(root), Some(pool)) = (self.root.clone(), task_pool) {
            let enabled = self.enabled.clone();
            let delegate = |dir: &Path| enable(dir, &enabled);
            let placed = if has_limits {
                self.tasks
                    .slot(&root, pool, delegate)
                    .and_then(|(leaf, reused)| {
                        let opened = self.configure_v2(&leaf, confinement, reused);
                        if opened.is_err() {
                            self.tasks.unused(leaf.clone());
                        }
                        opened?.place(&mut placement);
                        placement.dirs.push(leaf);
                        Ok(())
                    })
            } else {
                self.tasks
                    .shared(&root, pool, delegate)
                    .map(|shared| placement.shared = Some(shared))
            };
            if let Err(err) = placed {
                warn!(
                    pool,
                    error = %err,
                    "cannot create the task's cgroup; it gets a process group only"
                );
            }
        } else if let Some(root) = self.root.clone() {
            match self.make_v2(&root, &relative, confinement) {
                Ok(opened) => {
                    placement.dirs.push(root.join(&relative));
                    opened.place(&mut placement);
                }
                Err(err) => warn!(
                    cgroup = %root.join(&relative).display(),
                    error = %err,
                    "cannot create the cgroup; this process gets a process group only"
                ),
            }
        }
        for controller in Controller::ALL {
            let Some(limit) = controller.limit(confinement) else {
                continue;
            };
            if self.root.is_some() && self.enabled.contains(&controller) {
                continue;
            }
            let Some(v1_root) = self.v1_root(controller) else {
                if self.warned.insert(controller) {
                    warn!(
                        key = controller.key(),
                        controller = controller.name(),
                        "no writable cgroup offers this controller: the limit is not enforced"
                    );
                }
                continue;
            };
            let dir = v1_root.join(&relative);
            match make_v1(&dir, controller, limit) {
                Ok(procs) => {
                    placement.dirs.push(dir);
                    placement.procs.push(procs);
                }
                Err(err) => warn!(
                    cgroup = %dir.display(),
                    key = controller.key(),
                    error = %err,
                    "cannot apply the limit"
                ),
            }
        }
        (!placement.dirs.is_empty() || placement.shared.is_some()).then_some(placement)
    }

    /// The v2 leaf: parents with every enabled controller delegated, limits
    /// written (see [`Cgroups::configure_v2`]), opened as the child needs it.
    fn make_v2(
        &mut self,
        root: &Path,
        relative: &Path,
        confinement: &Confinement,
    ) -> io::Result<OpenedLeaf> {
        let leaf = root.join(relative);
        // The leaf first: its parents are there but for the first of a unit
        // (or after they were removed once empty), and a spawn saves the
        // syscalls of looking at each of them.
        let created = match create_dir(&leaf) {
            Err(err) if err.kind() == ErrorKind::NotFound => {
                let mut dir = root.to_path_buf();
                let parents: Vec<_> = relative.parent().into_iter().flat_map(Path::iter).collect();
                for part in parents {
                    dir.push(part);
                    if create_dir(&dir)? {
                        enable(&dir, &self.enabled);
                    }
                }
                create_dir(&leaf)?
            }
            created => created?,
        };
        // A leftover cgroup of this instance's last run is used again.
        let reused = !created;
        if reused {
            self.doomed.retain(|doomed| doomed != &leaf);
        }
        self.configure_v2(&leaf, confinement, reused)
    }

    /// Writes the limits into the v2 `leaf`, and opens it as the child
    /// needs it. A `reused` leaf gets the default of every limit the
    /// config does not set (a reload may have dropped one); a new one has
    /// the defaults already, so only the limits set are written (on a host
    /// with v2 controllers that saves three `openat`, `write` and `close`
    /// per spawn without limits).
    fn configure_v2(
        &self,
        leaf: &Path,
        confinement: &Confinement,
        reused: bool,
    ) -> io::Result<OpenedLeaf> {
        for (file, value) in v2_settings(&self.enabled, confinement, reused) {
            if let Err(err) = fs::write(leaf.join(file), &value) {
                warn!(cgroup = %leaf.display(), file, value, error = %err, "cannot set the limit");
            }
        }
        if reused {
            // It may have been killed (`cgroup.kill`): a child cloned right
            // into such a cgroup is killed at birth (seen on Linux 6.18), so
            // it joins by write.
            let procs = OpenOptions::new()
                .write(true)
                .open(leaf.join("cgroup.procs"))?;
            return Ok(OpenedLeaf::JoinByWrite(procs));
        }
        let directory = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(leaf)?;
        Ok(OpenedLeaf::CloneInto(directory))
    }

    /// At herdd's exit, once every process it started has been reaped:
    /// kills whatever is left in herd's subtrees and removes them, giving
    /// killed processes up to `CLOSE_WAIT` to leave — on the runtime's
    /// timer, not by blocking its thread. Trees still busy after that stay
    /// (the next herdd removes them once empty).
    pub async fn close(&mut self) {
        let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
        let mut busy = self.kill_and_remove();
        while !busy.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            busy.retain(|root| !remove_tree(root));
        }
        for root in &busy {
            debug!(cgroup = %root.display(), "cgroup tree left in place: still busy");
        }
        // Nothing is left for `drop` to do.
        self.root = None;
        self.v1.clear();
        self.foreign.clear();
    }

    /// Kills what is left in herd's own subtrees (never in adopted ones:
    /// what is left there is not ours) and removes every empty cgroup of
    /// them all; returns the subtrees that are not gone yet.
    fn kill_and_remove(&self) -> Vec<PathBuf> {
        let mut busy = Vec::new();
        for root in self.tops() {
            if !root.exists() {
                continue;
            }
            let kill = root.join("cgroup.kill");
            if !self.foreign.contains(&root) && kill.exists() {
                let _ = fs::write(kill, "1");
            }
            if !remove_tree(&root) {
                busy.push(root);
            }
        }
        busy
    }

    /// herd's subtree in the v1 hierarchy of `controller`, created on first use.
    fn v1_root(&mut self, controller: Controller) -> Option<PathBuf> {
        let index = self.v1.iter().position(|(c, _)| *c == controller)?;
        let root = self.v1[index].1.clone();
        match create_dir(&root) {
            Ok(_) => Some(root),
            Err(err) => {
                warn!(cgroup = %root.display(), error = %err, "cannot create cgroup; not using it");
                self.v1.remove(index);
                None
            }
        }
    }
}

/// A v2 leaf opened for a spawn.
enum OpenedLeaf {
    /// A new leaf's directory: the child is created in it (fork.rs).
    CloneInto(File),
    /// A reused leaf's `cgroup.procs`: the child writes `0` to it.
    JoinByWrite(File),
}

impl OpenedLeaf {
    fn place(self, placement: &mut Placement) {
        match self {
            OpenedLeaf::CloneInto(directory) => placement.v2 = Some(directory),
            OpenedLeaf::JoinByWrite(procs) => placement.procs.push(procs),
        }
    }
}

/// The `(file, value)` writes that configure a v2 leaf for `confinement`,
/// for the `enabled` controllers: each limit set, and, in a `reused` leaf,
/// the default of each limit not set (a new leaf starts with the defaults).
fn v2_settings(
    enabled: &[Controller],
    confinement: &Confinement,
    reused: bool,
) -> Vec<(&'static str, String)> {
    enabled
        .iter()
        .map(|controller| (controller, controller.limit(confinement)))
        .filter(|(_, limit)| reused || limit.is_some())
        .map(|(controller, limit)| controller.v2_setting(limit))
        .collect()
}

impl Drop for Cgroups {
    /// Kills whatever is left in herd's subtrees and removes what is empty
    /// already, without waiting: [`Cgroups::close`] is the orderly way out.
    fn drop(&mut self) {
        self.kill_and_remove();
    }
}

/// Every process in the tree at `dir` that herdd spawned (its child, and
/// the leader of its own process group), with the cgroup it is in.
fn collect_leaders(dir: &Path, found: &mut Vec<(u32, PathBuf)>) {
    let me = std::process::id().to_string();
    for member in read_list(&dir.join("cgroup.procs")) {
        let Ok(pid) = member.parse::<u32>() else {
            continue;
        };
        // Fields 4 and 5 of /proc/PID/stat, after the command in parentheses.
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let mut fields = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .skip(1);
        let (parent, group) = (fields.next(), fields.next());
        if parent == Some(me.as_str()) && group == Some(member.as_str()) {
            found.push((pid, dir.to_path_buf()));
        }
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                collect_leaders(&entry.path(), found);
            }
        }
    }
}

/// Makes a v1 leaf with `limit` in it; returns its `cgroup.procs`.
fn make_v1(dir: &Path, controller: Controller, limit: u64) -> io::Result<File> {
    fs::create_dir_all(dir)?;
    let (file, value) = controller.v1_setting(limit);
    fs::write(dir.join(file), value)?;
    OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.procs"))
}

/// `mkdir`; true if it made the directory, false if it was there already.
fn create_dir(dir: &Path) -> io::Result<bool> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == ErrorKind::AlreadyExists && dir.join("cgroup.procs").exists() => {
            Ok(false)
        }
        Err(err) => Err(err),
    }
}

/// Delegates `controllers` to the children of `dir`.
fn enable(dir: &Path, controllers: &[Controller]) {
    for controller in controllers {
        let file = dir.join("cgroup.subtree_control");
        if let Err(err) = fs::write(&file, format!("+{}", controller.name())) {
            debug!(cgroup = %dir.display(), controller = controller.name(), error = %err, "cannot enable controller");
        }
    }
}

/// Creates `<own>/<name>` with the controllers `own` can delegate; returns it
/// with the controllers its children get.
fn create_subtree(own: &Path, name: &str) -> Result<(PathBuf, Vec<Controller>), String> {
    // herdd moved itself into its leaf before a `daemon-reexec`: its tree is next to it.
    let own = match own.parent() {
        Some(parent) if own.file_name().is_some_and(|leaf| leaf == SELF_LEAF) => parent,
        _ => own,
    };
    sweep_stale(own);
    // Delegate what herdd's own cgroup may give (an inner cgroup that holds
    // processes itself refuses, with EBUSY: then the limits fall back to v1).
    let offered = read_list(&own.join("cgroup.controllers"));
    let active = read_list(&own.join("cgroup.subtree_control"));
    let wanted: Vec<Controller> = Controller::ALL
        .into_iter()
        .filter(|c| offered.contains(c.name()))
        .collect();
    if wanted.iter().any(|c| !active.contains(c.name())) {
        leave_for_leaf(own);
    }
    for controller in &wanted {
        if !active.contains(controller.name()) {
            enable(own, &[*controller]);
        }
    }
    let root = own.join(name);
    // It exists already after a `daemon-reexec`: herdd's pid did not change.
    create_dir(&root).map_err(|err| format!("mkdir {}: {err}", root.display()))?;
    if !root.join("cgroup.kill").exists() {
        let _ = fs::remove_dir(&root);
        return Err("no cgroup.kill (Linux 5.14 or later is needed)".into());
    }
    let available = read_list(&root.join("cgroup.controllers"));
    let enabled: Vec<Controller> = wanted
        .into_iter()
        .filter(|c| available.contains(c.name()))
        .collect();
    enable(&root, &enabled);
    Ok((root, enabled))
}

/// Under systemd (`Delegate=yes`) herdd is alone in its service's cgroup,
/// and a cgroup that holds processes cannot pass controllers on to its
/// children: so herdd moves into a leaf of its own, `<own>/herdd.self`,
/// the way systemd's own delegation guidelines ask. Nothing happens in the
/// root cgroup (exempt from that rule) or when others share herdd's cgroup.
fn leave_for_leaf(own: &Path) {
    let is_root = !own.join("cgroup.type").exists();
    let me = std::process::id().to_string();
    let members = read_list(&own.join("cgroup.procs"));
    if is_root || members.len() != 1 || !members.contains(&me) {
        return;
    }
    let leaf = own.join(SELF_LEAF);
    let moved = create_dir(&leaf).and_then(|_| fs::write(leaf.join("cgroup.procs"), &me));
    match moved {
        Ok(()) => debug!(cgroup = %leaf.display(), "herdd moved into a leaf cgroup"),
        Err(err) => {
            debug!(cgroup = %leaf.display(), error = %err, "herdd cannot move into a leaf cgroup")
        }
    }
}

/// The words of a cgroup list file (`cgroup.controllers`, ...).
fn read_list(path: &Path) -> HashSet<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Removes `dir`'s empty parents up to (not beyond) the one of `tops` it is in.
/// Removes `dir` (and its parents up to its top in `tops`, as they empty)
/// if it holds no process; false if it is busy (or cannot be removed).
fn remove_if_empty(dir: &Path, tops: &[PathBuf]) -> bool {
    match fs::remove_dir(dir) {
        Ok(()) => {
            remove_empty_parents(dir, tops);
            true
        }
        Err(err) => err.kind() == ErrorKind::NotFound,
    }
}

fn remove_empty_parents(dir: &Path, tops: &[PathBuf]) {
    let Some(top) = tops.iter().find(|top| dir.starts_with(top)) else {
        return;
    };
    let mut parent = dir.parent();
    while let Some(current) = parent {
        if current == top.as_path() || !current.starts_with(top) || fs::remove_dir(current).is_err()
        {
            return;
        }
        parent = current.parent();
    }
}

/// Removes every empty cgroup of the tree at `root`, deepest first, `root`
/// last; a cgroup still holding processes stays (with its parents). True if
/// the whole tree is gone.
fn remove_tree(root: &Path) -> bool {
    let mut empty = true;
    if let Ok(entries) = fs::read_dir(root) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                empty &= remove_tree(&entry.path());
            }
        }
    }
    match fs::remove_dir(root) {
        Ok(()) => empty,
        Err(err) if err.kind() == ErrorKind::NotFound => empty,
        Err(err) => {
            debug!(cgroup = %root.display(), error = %err, "cgroup left in place");
            false
        }
    }
}

/// Removes what herdds that were killed left in `own`: `herd-<pid>` trees
/// whose herdd is gone (only their empty cgroups: rmdir refuses the others).
fn sweep_stale(own: &Path) {
    let Ok(entries) = fs::read_dir(own) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = subtree_owner(&entry.file_name()) else {
            continue;
        };
        if pid != std::process::id() && !is_alive(pid) && remove_tree(&entry.path()) {
            debug!(cgroup = %entry.path().display(), "removed a stale cgroup tree");
        }
    }
}

/// The herdd a `herd-<pid>` tree was made by.
fn subtree_owner(name: &std::ffi::OsStr) -> Option<u32> {
    name.to_str()?.strip_prefix(SUBTREE_PREFIX)?.parse().ok()
}

/// Whether a process `pid` exists (if it cannot be told, it is assumed to).
fn is_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // No signal: only checks that the process exists.
    kill(Pid::from_raw(pid), None) != Err(Errno::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_map_to_shares() {
        assert_eq!(Controller::Cpu.v1_setting(100).1, "1024");
        assert_eq!(Controller::Cpu.v1_setting(1).1, "10");
        assert_eq!(Controller::Cpu.v1_setting(10_000).1, "102400");
        assert_eq!(Controller::Cpu.v2_setting(None).1, "100");
        assert_eq!(Controller::Memory.v2_setting(None).1, "max");
        assert_eq!(Controller::Pids.v2_setting(Some(10)).1, "10");
    }

    /// A new leaf starts with the kernel's defaults: only the limits set
    /// are written. A reused one may carry a limit a reload dropped: it
    /// gets every enabled controller's value, the default where none is set.
    #[test]
    fn a_new_leaf_gets_only_the_limits_set_and_a_reused_one_every_default() {
        let enabled = Controller::ALL;
        let none = Confinement::default();
        let memory = Confinement {
            memory_max: Some(1 << 20),
            ..Confinement::default()
        };
        assert_eq!(v2_settings(&enabled, &none, false), vec![]);
        assert_eq!(
            v2_settings(&enabled, &memory, false),
            vec![("memory.max", "1048576".to_string())]
        );
        assert_eq!(
            v2_settings(&enabled, &memory, true),
            vec![
                ("memory.max", "1048576".to_string()),
                ("pids.max", "max".to_string()),
                ("cpu.weight", "100".to_string()),
            ]
        );
        assert_eq!(v2_settings(&[], &memory, true), vec![]);
    }
}
