//! What a running instance or task costs: memory, CPU time and processes,
//! read when a client asks (`status`, `tasks`, metrics), never otherwise.
//!
//! The figures come from the process's own cgroup when herd gave it one
//! (a directory named `herd-<pid>/...`, see `cgroup.rs`): the v2 files
//! `memory.current`, `memory.peak`, `cpu.stat` (`usage_usec`) and
//! `pids.current`, or on a hybrid host the v1 files of the controllers
//! bound there (`memory.usage_in_bytes`, `memory.max_usage_in_bytes`,
//! `cpuacct.usage`, `pids.current`). What no cgroup offers is summed over
//! the processes themselves from /proc: the members of the v2 cgroup when
//! there is one, else the process group; when memory has to be summed so,
//! the same `/proc/<pid>/stat` reads give the CPU time too (each process's
//! own and its reaped children's) instead of the cgroup's `cpu.stat`. Each
//! figure is a best effort: a process that exits while it is read simply
//! counts no more. A `status` that asks for no usage reads nothing.
//!
//! The files one read opens stay open for the next one for a while
//! (`usage/kept.rs`): a `status` asked again soon reads each with one
//! `pread`.

mod kept;

use super::{cgroup, mountinfo};
use herd_common::protocol::{ErrorCode, Reply, Request, Usage};
use kept::{Files, Kept, Outcome};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Bytes per page and clock ticks per second, for /proc's figures.
struct Units {
    page: u64,
    ticks: u64,
}

impl Units {
    fn current() -> Units {
        // SAFETY: sysconf only reads a constant of the running system.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        // SAFETY: as above.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Units {
            page: u64::try_from(page).unwrap_or(4096).max(1),
            ticks: u64::try_from(ticks).unwrap_or(100).max(1),
        }
    }
}

/// Reads usage for many process groups at once. What is the same for all
/// of them is found once: the mounts, /proc and each parent cgroup are
/// opened once (files are opened relative to them, so the kernel does not
/// walk the long cgroup paths again for every file), and which v2 files
/// the cgroups below a parent have is read once from its
/// `cgroup.subtree_control`. Each file is read with one `read` into a
/// reused buffer, its relative path written into another: hundreds of
/// instances cost two or three small reads each and few allocations. A
/// reader lent the kept files (`usage/kept.rs`) reads each file it has
/// read before with one `pread`.
pub struct Reader {
    /// The mounts, parsed on first use (only processes outside herd's own
    /// tree need them).
    hierarchies: Option<mountinfo::Hierarchies>,
    units: Units,
    proc: ProcReader,
    parents: Vec<Parent>,
    parent_of_dir: HashMap<PathBuf, usize>,
    /// Per unit: the parent of its instances' cgroups in herd's own tree.
    own_parents: HashMap<String, Option<usize>>,
    /// Files kept open (lent by the shelf for this read, or none).
    files: Files,
    buffer: Vec<u8>,
    path: String,
    /// The whole path of a cgroup's file, to find it among the kept ones.
    key: String,
}

/// What `/proc/<pid>/stat` says a process costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    resident_pages: u64,
    /// utime + stime + cutime + cstime: its own CPU time and its reaped
    /// children's, in clock ticks.
    ticks: u64,
}

/// Reads files of `/proc/<pid>/`, relative to /proc opened once, into a
/// reused buffer; `stat` files are kept open.
struct ProcReader {
    proc: Option<OwnedFd>,
    /// When this read started: what kept files are marked read at.
    now: Instant,
    buffer: Vec<u8>,
    path: String,
}

impl ProcReader {
    fn new(now: Instant) -> ProcReader {
        ProcReader {
            proc: open_dir(Path::new("/proc")),
            now,
            buffer: Vec::new(),
            path: String::new(),
        }
    }

    fn file(&mut self, pid: u32, file: &str) -> Option<&str> {
        self.path.clear();
        let _ = write!(self.path, "{pid}/{file}");
        read(&mut self.buffer, open_at(self.proc.as_ref()?, &self.path))
    }

    /// The figures of `/proc/<pid>/stat`, kept open in `kept`.
    fn stat(&mut self, pid: u32, kept: &mut Kept<u32>) -> Option<Stat> {
        let (stat, outcome) = self.stat_of(pid, kept.file(&pid));
        kept.settle(&pid, outcome, self.now);
        stat
    }

    /// The figures of `/proc/<pid>/stat` from `kept`, its file kept open,
    /// else opened by path; and what to settle.
    fn stat_of(&mut self, pid: u32, kept: Option<&File>) -> (Option<Stat>, Outcome) {
        self.path.clear();
        let _ = write!(self.path, "{pid}/stat");
        let (proc, path) = (self.proc.as_ref(), &self.path);
        let open = || open_at(proc.ok_or(io::ErrorKind::NotFound)?, path);
        let (length, outcome) = kept::read(kept, &mut self.buffer, open);
        let text = length.and_then(|length| text(&self.buffer[..length]));
        (text.and_then(stat_figures), outcome)
    }
}

/// The v1 cgroups herd gave one process, if any.
#[derive(Default)]
struct V1Dirs {
    memory: Option<PathBuf>,
    cpuacct: Option<PathBuf>,
    pids: Option<PathBuf>,
}

/// A directory whose child cgroups are read.
struct Parent {
    path: String,
    dir: Option<OwnedFd>,
    /// The v2 controllers whose files the children have besides `cpu.stat`.
    memory: bool,
    pids: bool,
}

impl Default for Reader {
    fn default() -> Self {
        Reader::new()
    }
}

impl Reader {
    /// A reader that keeps no file open.
    pub fn new() -> Reader {
        Reader::lent(Files::none())
    }

    /// A reader that reads `files` and keeps what it opens among them.
    fn lent(files: Files) -> Reader {
        Reader {
            hierarchies: None,
            units: Units::current(),
            proc: ProcReader::new(Instant::now()),
            parents: Vec::new(),
            parent_of_dir: HashMap::new(),
            own_parents: HashMap::new(),
            files,
            buffer: Vec::new(),
            path: String::new(),
            key: String::new(),
        }
    }

    /// The files it was lent, with those it kept.
    fn into_files(self) -> Files {
        self.files
    }

    /// Usage of the instance or task whose leader (and process group) is
    /// `pid`; `None` when it has gone.
    pub fn of(&mut self, pid: u32) -> Option<Usage> {
        let memberships = self.proc_file(pid, "cgroup")?.to_string();
        let hierarchies = self.hierarchies.get_or_insert_with(|| {
            let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            mountinfo::Hierarchies::parse(&mountinfo)
        });
        let own = |dir: Option<PathBuf>| dir.filter(|dir| is_herds(dir));
        // Only a cgroup herd made for it is looked up in the file system:
        // herdd's own, shared ones say nothing about this process.
        let v2 = herds_membership(&memberships, None)
            .then(|| own(hierarchies.v2_dir(&memberships)))
            .flatten();
        let v1 = |controller| {
            herds_membership(&memberships, Some(controller))
                .then(|| own(hierarchies.v1_dir(&memberships, controller)))
                .flatten()
        };
        let v1 = V1Dirs {
            memory: v1("memory"),
            cpuacct: v1("cpuacct"),
            pids: v1("pids"),
        };
        let v2 = v2.as_deref().and_then(split_leaf);
        let v2 = v2.map(|(parent, leaf)| (self.parent(parent), leaf));
        let members = match &v2 {
            Some((parent, leaf)) => self.pids(*parent, leaf),
            None => group_members(pid),
        };
        let v2 = v2.as_ref().map(|(parent, leaf)| (*parent, leaf.as_str()));
        Some(self.measure(pid, v2, &v1, members, None))
    }

    /// Usage of each of `wanted`: a leader's pid and, for an instance,
    /// its unit and index (`None` when it has gone). An instance's cgroup is
    /// where this herdd puts that instance's (`cgroup::tree`): when that
    /// cgroup holds the pid and the unit has no v1 cgroups, the look-up in
    /// `/proc/<pid>/cgroup` is skipped. Anything else (a task, an instance
    /// adopted from another herdd's tree, no cgroups) is found as
    /// [`Reader::of`] finds it.
    ///
    /// Two kinds of read make up most of the cost, and they run at once on
    /// two threads: the cgroups' member lists (`cgroup.procs`) on this one,
    /// and the `/proc/<pid>/stat` of each leader, whose memory and CPU time
    /// are wanted where the cgroup has no memory figure, on another; once
    /// the lists are read, this thread reads the stats not read yet too.
    /// Stats and lists share no kernel lock. Lists are never read on two
    /// threads at once: reading one takes a lock global to the kernel
    /// (`css_set_lock`), so such threads mostly wait on each other. The
    /// stat of a cgroup's other members, if it has any, is read afterwards.
    pub fn of_many(&mut self, wanted: &[(u32, Option<(&str, &str)>)]) -> Vec<Option<Usage>> {
        let own: Vec<Option<(usize, &str)>> = wanted
            .iter()
            .map(|(_, instance)| {
                let (unit, index) = (*instance)?;
                Some((self.own_parent(unit)?, index))
            })
            .collect();
        let leaders: Vec<Option<u32>> = wanted
            .iter()
            .zip(&own)
            .map(|((pid, _), own)| {
                own.filter(|(parent, _)| !self.parents[*parent].memory)
                    .map(|_| *pid)
            })
            .collect();
        let (members, stats) = self.lists_and_stats(&own, &leaders);
        wanted
            .iter()
            .zip(own)
            .zip(members.into_iter().zip(stats))
            .map(|(((pid, _), own), (members, stat))| match (own, members) {
                (Some((parent, index)), Some(members)) if members.contains(pid) => {
                    let known = stat.map(|stat| (*pid, stat));
                    let v2 = Some((parent, index));
                    Some(self.measure(*pid, v2, &V1Dirs::default(), members, known))
                }
                _ => self.of(*pid),
            })
            .collect()
    }

    /// The members of each cgroup of `own` and the stat of each of
    /// `leaders`, read on two threads when there are enough to be worth one.
    fn lists_and_stats(
        &mut self,
        own: &[Option<(usize, &str)>],
        leaders: &[Option<u32>],
    ) -> (Vec<Option<Vec<u32>>>, Vec<Option<Stat>>) {
        let lists = |reader: &mut Reader| -> Vec<Option<Vec<u32>>> {
            own.iter()
                .map(|own| own.map(|(parent, index)| reader.pids(parent, index)))
                .collect()
        };
        let now = self.proc.now;
        if leaders.iter().flatten().count() < PARALLEL_FROM {
            let stats = leaders
                .iter()
                .map(|pid| self.proc.stat((*pid)?, &mut self.files.stats))
                .collect();
            return (lists(self), stats);
        }
        // Each thread takes the next leader no thread has taken yet. The
        // kept files are shared for reading; what became of each is noted
        // in the map once both are done.
        let mut kept = std::mem::take(&mut self.files.stats);
        let files: Vec<Option<&File>> =
            leaders.iter().map(|pid| kept.file(pid.as_ref()?)).collect();
        let next = AtomicUsize::new(0);
        let stats_of = || {
            let mut proc = ProcReader::new(now);
            let mut read = Vec::new();
            loop {
                let taken = next.fetch_add(1, Ordering::Relaxed);
                let Some(leader) = leaders.get(taken) else {
                    return read;
                };
                if let Some(pid) = leader {
                    read.push((taken, proc.stat_of(*pid, files[taken])));
                }
            }
        };
        let (members, read) = std::thread::scope(|scope| {
            let other = std::thread::Builder::new()
                .name("herdd-usage".into())
                .spawn_scoped(scope, stats_of);
            let members = lists(self);
            // Without a second thread, this one reads them all.
            let mut read = stats_of();
            read.extend(
                other
                    .ok()
                    .and_then(|other| other.join().ok())
                    .unwrap_or_default(),
            );
            (members, read)
        });
        drop(files);
        let mut stats = vec![None; leaders.len()];
        for (taken, (stat, outcome)) in read {
            if let Some(pid) = leaders[taken] {
                kept.settle(&pid, outcome, now);
            }
            stats[taken] = stat;
        }
        self.files.stats = kept;
        (members, stats)
    }

    /// `<v2 tree>/units/<unit>`, unless herd has no tree or the unit has
    /// cgroups in a v1 hierarchy too (then they are looked up per process).
    fn own_parent(&mut self, unit: &str) -> Option<usize> {
        if let Some(known) = self.own_parents.get(unit) {
            return *known;
        }
        let dir = cgroup::tree().and_then(|tree| {
            let in_v1 = tree
                .v1
                .iter()
                .any(|dir| dir.join("units").join(unit).exists());
            (!in_v1).then(|| tree.v2.join("units").join(unit))
        });
        let parent = dir.map(|dir| self.parent(dir));
        self.own_parents.insert(unit.to_string(), parent);
        parent
    }

    /// The figures of `pid`'s cgroups (`v2`: parent and leaf; `v1`) and
    /// processes (`members`; `known`: one whose stat was read already).
    fn measure(
        &mut self,
        pid: u32,
        v2: Option<(usize, &str)>,
        v1: &V1Dirs,
        mut members: Vec<u32>,
        known: Option<(u32, Stat)>,
    ) -> Usage {
        let (memory, pids) = v2.map_or((false, false), |(parent, _)| {
            (self.parents[parent].memory, self.parents[parent].pids)
        });
        if members.is_empty() {
            // Not a group leader (or a cgroup read raced an exit): itself at least.
            members.push(pid);
        }
        let v2_number = |reader: &mut Reader, present: bool, file: &str| {
            let (parent, leaf) = v2.filter(|_| present)?;
            reader.cgroup_file(parent, leaf, file)?.trim().parse().ok()
        };
        let mut usage = Usage {
            memory_bytes: v2_number(self, memory, "memory.current"),
            memory_peak_bytes: v2_number(self, memory, "memory.peak"),
            cpu_usec: None,
            processes: v2_number(self, pids, "pids.current"),
        };
        if usage.memory_bytes.is_none() {
            usage.memory_bytes = self.number(v1.memory.as_ref(), "memory.usage_in_bytes");
            usage.memory_peak_bytes = self.number(v1.memory.as_ref(), "memory.max_usage_in_bytes");
        }
        // Where memory comes from /proc anyway, the same read gives CPU
        // time (the processes' own and their reaped children's) and the
        // cgroup's `cpu.stat` is not read: one file less per instance.
        if usage.memory_bytes.is_some() {
            usage.cpu_usec = v2.and_then(|(parent, leaf)| self.cpu_stat_usec(parent, leaf));
        }
        if usage.cpu_usec.is_none() {
            usage.cpu_usec = self
                .number(v1.cpuacct.as_ref(), "cpuacct.usage")
                .map(|ns| ns / 1000);
        }
        if usage.processes.is_none() {
            usage.processes = self
                .number(v1.pids.as_ref(), "pids.current")
                .or(Some(members.len() as u64));
        }
        if usage.memory_bytes.is_none() || usage.cpu_usec.is_none() {
            let (resident, cpu) = self.summed(&members, known);
            usage.memory_bytes = usage.memory_bytes.or(Some(resident));
            usage.cpu_usec = usage.cpu_usec.or(Some(cpu));
        }
        usage
    }

    /// The parent cgroup `dir`, opened and its children's controllers read
    /// on first use.
    fn parent(&mut self, dir: PathBuf) -> usize {
        if let Some(known) = self.parent_of_dir.get(&dir) {
            return *known;
        }
        let list = read(
            &mut self.buffer,
            File::open(dir.join("cgroup.subtree_control")),
        )
        .unwrap_or_default();
        let has = |name| list.split_whitespace().any(|word| word == name);
        let parent = Parent {
            memory: has("memory"),
            pids: has("pids"),
            dir: open_dir(&dir),
            path: dir.to_string_lossy().into_owned(),
        };
        self.parents.push(parent);
        self.parent_of_dir.insert(dir, self.parents.len() - 1);
        self.parents.len() - 1
    }

    /// `<parent>/<leaf>/<file>`, opened relative to the parent, kept open
    /// by its whole path.
    fn cgroup_file(&mut self, parent: usize, leaf: &str, file: &str) -> Option<&str> {
        let parent = &self.parents[parent];
        let dir = parent.dir.as_ref()?;
        self.path.clear();
        let _ = write!(self.path, "{leaf}/{file}");
        self.key.clear();
        let _ = write!(self.key, "{}/{}", parent.path, self.path);
        let path = &self.path;
        let open = || open_at(dir, path);
        let length =
            self.files
                .cgroups
                .read(self.key.as_str(), &mut self.buffer, open, self.proc.now)?;
        text(&self.buffer[..length])
    }

    fn proc_file(&mut self, pid: u32, file: &str) -> Option<&str> {
        self.proc.file(pid, file)
    }

    /// Resident memory (bytes; shared pages count once per process) and
    /// user plus system CPU time (µs, with the children they reaped) of
    /// `pids`, summed, from one read of each `/proc/<pid>/stat`; `known`
    /// is a process among them whose stat was read already.
    fn summed(&mut self, pids: &[u32], known: Option<(u32, Stat)>) -> (u64, u64) {
        let (mut pages, mut ticks) = (0, 0);
        for pid in pids {
            let figures = match known {
                Some((known, stat)) if known == *pid => Some(stat),
                _ => self.proc.stat(*pid, &mut self.files.stats),
            };
            if let Some(stat) = figures {
                pages += stat.resident_pages;
                ticks += stat.ticks;
            }
        }
        (
            pages * self.units.page,
            ticks * 1_000_000 / self.units.ticks,
        )
    }

    /// A number file of a v1 cgroup (rare: only where a limit put the
    /// process in one of herd's v1 cgroups).
    fn number(&mut self, dir: Option<&PathBuf>, file: &str) -> Option<u64> {
        read(&mut self.buffer, File::open(dir?.join(file)))?
            .trim()
            .parse()
            .ok()
    }

    fn pids(&mut self, parent: usize, leaf: &str) -> Vec<u32> {
        self.cgroup_file(parent, leaf, "cgroup.procs")
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    }

    /// `usage_usec` of a v2 `cpu.stat` (present with or without the cpu controller).
    fn cpu_stat_usec(&mut self, parent: usize, leaf: &str) -> Option<u64> {
        self.cgroup_file(parent, leaf, "cpu.stat")?
            .lines()
            .find_map(|line| line.strip_prefix("usage_usec "))?
            .trim()
            .parse()
            .ok()
    }
}

/// A directory opened to open files relative to it.
fn open_dir(dir: &Path) -> Option<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    nix::fcntl::open(dir, flags, Mode::empty()).ok()
}

fn open_at(dir: &OwnedFd, path: &str) -> io::Result<File> {
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    Ok(File::from(nix::fcntl::openat(
        dir,
        path,
        flags,
        Mode::empty(),
    )?))
}

/// `dir` as its parent and its last component.
fn split_leaf(dir: &Path) -> Option<(PathBuf, String)> {
    Some((
        dir.parent()?.to_path_buf(),
        dir.file_name()?.to_str()?.to_string(),
    ))
}

/// The text of a small kernel file (procfs, cgroupfs), into `buffer`
/// ([`kept::fill`]), without keeping it open.
fn read(buffer: &mut Vec<u8>, file: io::Result<File>) -> Option<&str> {
    let length = kept::fill(buffer, &file.ok()?).ok()?;
    text(&buffer[..length])
}

fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

/// Whether the reply to `request` carries usage (`status` unless it asks
/// for none, `tasks`).
pub fn costs(request: &Request) -> bool {
    matches!(
        request,
        Request::Status { usage: true, .. } | Request::Tasks { .. }
    )
}

/// Usage reads running at once: `status` is open to every local user, and
/// each read of hundreds of cgroups is a blocking thread's work (and a
/// second, short-lived thread's: [`Reader::of_many`]); a flood of `status`
/// requests waits its turn instead of filling the blocking pool.
const CONCURRENT_READS: usize = 2;

/// From how many processes' stat on a second thread is worth starting one.
const PARALLEL_FROM: usize = 32;

/// Waits for a turn among the usage reads, then runs `work` on a blocking
/// thread: the files of hundreds of cgroups must not hold up the loop.
/// Nothing is read unless a client asks. Afterwards, starts what closes the
/// files kept open once nobody reads them.
async fn off_the_loop<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    static READS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let reads = READS.get_or_init(|| tokio::sync::Semaphore::new(CONCURRENT_READS));
    // Never closed, so acquiring only waits.
    let _turn = reads.acquire().await;
    let done = tokio::task::spawn_blocking(work).await;
    if kept::closer_wanted() {
        tokio::spawn(kept::close_when_unused());
    }
    done
}

/// A `status` or `tasks` reply with what each running process costs, read
/// off the event loop ([`fill_payload`]).
pub async fn with_usage(reply: Reply) -> Reply {
    let Reply::Ok(mut payload) = reply else {
        return reply;
    };
    let filled = off_the_loop(move || {
        fill_payload(&mut payload);
        payload
    })
    .await;
    match filled {
        Ok(payload) => Reply::Ok(payload),
        Err(err) => Reply::error(ErrorCode::Failed, format!("cannot read usage: {err}")),
    }
}

/// The line to send for a `status` or `tasks` reply, with what each
/// running process costs: the same fields as [`with_usage`]'s reply (each
/// entry's usage fields after its own), but the figures are written as the
/// line is, not put into the payload first, and the whole line is made off
/// the event loop. Inserting the fields into hundreds of entries' maps, then
/// writing and freeing the grown maps on the loop, cost herdd about 1 ms of
/// CPU per `status` of 510 instances.
pub async fn line_with_usage(reply: Reply) -> String {
    let Reply::Ok(payload) = reply else {
        return reply.to_line();
    };
    let line = off_the_loop(move || {
        let line = line_of(&payload, &usage_of_entries(&payload));
        // The payload's maps are freed here too, not on the loop.
        drop(payload);
        line
    })
    .await;
    line.unwrap_or_else(|err| {
        Reply::error(ErrorCode::Failed, format!("cannot read usage: {err}")).to_line()
    })
}

/// Fills usage into a `status` or `tasks` payload as herdd sends it:
/// every instance (`units[].instances[]`) and task (`tasks[]`) with a pid.
/// Reads files for each: run it off the event loop. The files it opens
/// stay open (`usage/kept.rs`) until a while after the last read:
/// [`with_usage`] starts what closes them.
pub fn fill_payload(payload: &mut serde_json::Value) {
    let usages = usage_of_entries(payload);
    insert_usages(payload, usages);
}

/// Puts `usages` ([`usage_of_entries`]) into the payload's entries.
fn insert_usages(payload: &mut serde_json::Value, usages: Vec<Option<Usage>>) {
    let mut usages = usages.into_iter();
    let Some(object) = payload.as_object_mut() else {
        return;
    };
    for (key, value) in object.iter_mut() {
        let Some(kind) = Entries::of(key) else {
            continue;
        };
        for entry in kind.entries_mut(value) {
            if let (Some(Some(usage)), Some(object)) = (usages.next(), entry.as_object_mut()) {
                insert_usage(object, usage);
            }
        }
    }
}

/// The reply line of `payload` with `usages` ([`usage_of_entries`]).
fn line_of(payload: &serde_json::Value, usages: &[Option<Usage>]) -> String {
    let filled = Filled {
        payload,
        usages,
        next: std::cell::Cell::new(0),
    };
    let mut line = serde_json::to_string(&OkLine(filled)).unwrap_or_else(|err| {
        Reply::error(ErrorCode::Failed, format!("cannot encode reply: {err}")).to_line()
    });
    if !line.ends_with('\n') {
        line.push('\n');
    }
    line
}

/// The lists of a payload whose entries carry usage.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Entries {
    /// `units[].instances[]`
    Instances,
    /// `tasks[]`
    Tasks,
}

impl Entries {
    /// Which entries the payload's field `key` holds, if any.
    fn of(key: &str) -> Option<Entries> {
        match key {
            "units" => Some(Entries::Instances),
            "tasks" => Some(Entries::Tasks),
            _ => None,
        }
    }

    /// The entries in `value` (the field's value), in order.
    fn entries(self, value: &serde_json::Value) -> Vec<&serde_json::Value> {
        let list = value.as_array().map(Vec::as_slice).unwrap_or_default();
        match self {
            Entries::Instances => list
                .iter()
                .filter_map(|unit| unit.get("instances")?.as_array())
                .flatten()
                .collect(),
            Entries::Tasks => list.iter().collect(),
        }
    }

    /// As [`Entries::entries`], to change them.
    fn entries_mut(self, value: &mut serde_json::Value) -> Vec<&mut serde_json::Value> {
        let list = value
            .as_array_mut()
            .map(Vec::as_mut_slice)
            .unwrap_or_default();
        match self {
            Entries::Instances => list
                .iter_mut()
                .filter_map(|unit| unit.get_mut("instances")?.as_array_mut())
                .flatten()
                .collect(),
            Entries::Tasks => list.iter_mut().collect(),
        }
    }
}

/// A leader's pid and, for an instance, its unit and index.
type Leader<'a> = (u32, Option<(&'a str, &'a str)>);

/// The usage of every entry of `payload` that carries usage, in payload
/// order (`None`: it has no pid, or its process has gone). Reads files:
/// run it off the event loop.
fn usage_of_entries(payload: &serde_json::Value) -> Vec<Option<Usage>> {
    let Some(object) = payload.as_object() else {
        return Vec::new();
    };
    // Each entry: its pid and, for an instance, its unit and index, all
    // borrowed from the payload.
    let mut wanted: Vec<Option<Leader>> = Vec::new();
    for (key, value) in object {
        let Some(kind) = Entries::of(key) else {
            continue;
        };
        wanted.extend(kind.entries(value).into_iter().map(|entry| {
            let pid = entry.get("pid")?.as_u64()?;
            let pid = u32::try_from(pid).ok()?;
            let instance = entry
                .get("name")
                .and_then(serde_json::Value::as_str)
                .filter(|_| kind == Entries::Instances)
                .map(instance_of);
            Some((pid, instance))
        }));
    }
    let running: Vec<Leader> = wanted.iter().flatten().copied().collect();
    let mut reader = Reader::lent(Files::lend());
    let mut usages = reader.of_many(&running).into_iter();
    reader.into_files().give_back(Instant::now());
    wanted
        .iter()
        .map(|entry| entry.and_then(|_| usages.next().flatten()))
        .collect()
}

/// `{"ok": payload}`, as [`Reply::to_line`] writes it.
struct OkLine<'a>(Filled<'a>);

impl Serialize for OkLine<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("ok", &self.0)?;
        map.end()
    }
}

/// A payload written with the usage of its entries ([`usage_of_entries`]),
/// each entry's usage fields after its own.
struct Filled<'a> {
    payload: &'a serde_json::Value,
    usages: &'a [Option<Usage>],
    /// The next entry's place in `usages`, as the entries are written in
    /// payload order.
    next: std::cell::Cell<usize>,
}

impl Filled<'_> {
    /// The usage of the next entry written.
    fn next_usage(&self) -> Option<Usage> {
        let next = self.next.get();
        self.next.set(next + 1);
        self.usages.get(next).copied().flatten()
    }
}

impl Serialize for Filled<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some(object) = self.payload.as_object() else {
            return self.payload.serialize(serializer);
        };
        let mut map = serializer.serialize_map(Some(object.len()))?;
        for (key, value) in object {
            match Entries::of(key) {
                Some(kind) => map.serialize_entry(key, &List(self, kind, value))?,
                None => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

/// A list of a payload's field, its entries written with their usage.
struct List<'a>(&'a Filled<'a>, Entries, &'a serde_json::Value);

impl Serialize for List<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let List(filled, kind, value) = *self;
        let Some(list) = value.as_array() else {
            return value.serialize(serializer);
        };
        let mut seq = serializer.serialize_seq(Some(list.len()))?;
        for item in list {
            match kind {
                Entries::Tasks => seq.serialize_element(&Entry(filled, item))?,
                Entries::Instances => seq.serialize_element(&Unit(filled, item))?,
            }
        }
        seq.end()
    }
}

/// A unit, its instances written with their usage.
struct Unit<'a>(&'a Filled<'a>, &'a serde_json::Value);

impl Serialize for Unit<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Unit(filled, unit) = *self;
        let Some(object) = unit.as_object() else {
            return unit.serialize(serializer);
        };
        let mut map = serializer.serialize_map(Some(object.len()))?;
        for (key, value) in object {
            match value.as_array().filter(|_| key == "instances") {
                Some(instances) => {
                    let entries: Vec<Entry> =
                        instances.iter().map(|item| Entry(filled, item)).collect();
                    map.serialize_entry(key, &entries)?;
                }
                None => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

/// An instance or task, with its usage fields after its own (as `Usage`
/// serialises: unknown figures left out).
struct Entry<'a>(&'a Filled<'a>, &'a serde_json::Value);

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Entry(filled, entry) = *self;
        let usage = filled.next_usage();
        let Some(object) = entry.as_object() else {
            return entry.serialize(serializer);
        };
        let fields = usage.map(usage_fields).unwrap_or_default();
        let known = fields.iter().filter(|(_, value)| value.is_some()).count();
        let mut map = serializer.serialize_map(Some(object.len() + known))?;
        for (key, value) in object {
            map.serialize_entry(key, value)?;
        }
        for (key, value) in fields {
            if let Some(value) = value {
                map.serialize_entry(key, &value)?;
            }
        }
        map.end()
    }
}

/// Each field of `usage` by the name it serialises under.
fn usage_fields(usage: Usage) -> [(&'static str, Option<u64>); 4] {
    let Usage {
        memory_bytes,
        memory_peak_bytes,
        cpu_usec,
        processes,
    } = usage;
    [
        ("memory_bytes", memory_bytes),
        ("memory_peak_bytes", memory_peak_bytes),
        ("cpu_usec", cpu_usec),
        ("processes", processes),
    ]
}

/// Writes `usage` into an entry, as `Usage` serialises (unknown figures
/// left out), without building a JSON object of it first: hundreds of
/// entries per `status`.
fn insert_usage(object: &mut serde_json::Map<String, serde_json::Value>, usage: Usage) {
    for (key, value) in usage_fields(usage) {
        if let Some(value) = value {
            object.insert(key.to_string(), value.into());
        }
    }
}

/// The unit and index of an instance's name (`web@2`; `web` is index 0).
fn instance_of(name: &str) -> (&str, &str) {
    name.rsplit_once('@').unwrap_or((name, "0"))
}

/// Whether `/proc/<pid>/cgroup` puts the process in a cgroup of herd's in
/// the v2 hierarchy (`controller` `None`) or the v1 one of `controller`.
fn herds_membership(memberships: &str, controller: Option<&str>) -> bool {
    memberships.lines().any(|line| {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return false;
        };
        let matches = match controller {
            None => controllers.is_empty(),
            Some(controller) => controllers.split(',').any(|c| c == controller),
        };
        matches && is_herds(Path::new(path))
    })
}

/// A cgroup herd made for one process (not herdd's own, shared one).
fn is_herds(dir: &Path) -> bool {
    dir.components().any(|part| {
        part.as_os_str()
            .to_str()
            .is_some_and(|name| name.starts_with("herd-"))
    })
}

/// Fields of a `/proc/<pid>/stat` text after the command name (which may
/// hold spaces and parentheses, so it is skipped up to its last `)`).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

/// Resident pages and CPU ticks of a `/proc/<pid>/stat` text.
fn stat_figures(stat: &str) -> Option<Stat> {
    // After the name: state(0) ppid pgrp session tty tpgid flags minflt
    // cminflt majflt cmajflt utime(11) stime cutime cstime(14) priority
    // nice threads itrealvalue starttime vsize rss(21); read up to rss
    // only, without collecting the fields (hundreds of these per status).
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let mut number = |skip: usize| fields.nth(skip)?.parse::<u64>().ok();
    let utime = number(11)?;
    let ticks = utime + number(0)? + number(0)? + number(0)?;
    Some(Stat {
        resident_pages: number(21 - 15)?,
        ticks,
    })
}

/// Every process whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat_fields(&stat)
                .and_then(|fields| fields.get(2)?.parse::<u32>().ok())
                .is_some_and(|group| group == pgid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_usage_is_read_from_proc() {
        // This test process is in no herd cgroup: its figures come from /proc.
        let mut reader = Reader::new();
        let me = std::process::id();
        let usage = reader.of(me).expect("this process exists");
        let group = nix::unistd::getpgrp().as_raw() as u32;
        assert!(group_members(group).contains(&me));
        assert!(usage.memory_bytes.unwrap() > 0);
        assert!(usage.processes.is_some());
        assert!(reader.of(u32::MAX).is_none());
    }

    /// A `sleep` of its own process group, once asleep: its memory does
    /// not change any more (read before its exec, it would).
    fn sleeping() -> std::process::Child {
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new("sleep")
            .arg("60")
            .process_group(0)
            .spawn()
            .unwrap();
        let asleep = || {
            let stat = fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
            let fields = stat_fields(&stat).unwrap();
            stat.contains("(sleep)") && fields[0] == "S" && fields[21] != "0"
        };
        let started = Instant::now();
        while !asleep() {
            assert!(started.elapsed().as_secs() < 15, "sleep did not start");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child
    }

    #[test]
    fn kept_files_give_the_figures_of_a_fresh_read() {
        let mut child = sleeping();
        let pid = child.id();
        let mut reader = Reader::lent(Files::new(8));
        let fresh = reader.of(pid).expect("the child runs");
        let files = reader.into_files();
        assert_eq!(files.stats.len(), 1, "its stat is kept open");
        let mut reader = Reader::lent(files);
        let again = reader.of(pid).expect("the child runs");
        assert_eq!(again.processes, fresh.processes);
        assert_eq!(again.memory_bytes, fresh.memory_bytes);
        let cold = Reader::new().of(pid).expect("the child runs");
        assert_eq!(again.memory_bytes, cold.memory_bytes);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(reader.of(pid), None, "gone, kept file or not");
        let files = reader.into_files();
        assert_eq!(files.len(), 1, "closed only when unread for a while");
    }

    #[test]
    fn many_leaders_read_on_two_threads_keep_their_files() {
        // Enough leaders that both threads read stats; none is in a cgroup
        // of herd's, so the lists are empty and each figure is its stat.
        let mut children: Vec<_> = (0..PARALLEL_FROM + 8).map(|_| sleeping()).collect();
        let leaders: Vec<Option<u32>> = children.iter().map(|c| Some(c.id())).collect();
        let own = vec![None; leaders.len()];
        let mut reader = Reader::lent(Files::new(1000));
        let (_, stats) = reader.lists_and_stats(&own, &leaders);
        assert!(stats.iter().all(Option::is_some), "every leader's stat");
        assert_eq!(reader.files.stats.len(), leaders.len(), "each one kept");
        let (_, again) = reader.lists_and_stats(&own, &leaders);
        let pages = |stats: &[Option<Stat>]| -> Vec<u64> {
            stats.iter().map(|s| s.unwrap().resident_pages).collect()
        };
        assert_eq!(
            pages(&again),
            pages(&stats),
            "read again from the kept files"
        );
        for child in &mut children {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        let (_, gone) = reader.lists_and_stats(&own, &leaders);
        assert!(gone.iter().all(Option::is_none), "reaped: no figures");
        assert_eq!(reader.files.stats.len(), 0, "and their files closed");
    }

    #[test]
    fn stat_gives_resident_pages_and_all_cpu_ticks() {
        // A command name may hold spaces and parentheses.
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 500 1000000 250 18446744073709551615 1";
        let expected = Stat {
            resident_pages: 250,
            ticks: 7 + 3 + 2 + 1,
        };
        assert_eq!(stat_figures(stat), Some(expected));
        assert_eq!(stat_figures("42 (x) S 1 42"), None);
        assert_eq!(stat_figures("no name"), None);
    }

    #[test]
    fn usage_is_inserted_as_it_serialises() {
        for usage in [
            Usage {
                memory_bytes: Some(1),
                memory_peak_bytes: Some(2),
                cpu_usec: Some(3),
                processes: Some(4),
            },
            Usage {
                memory_bytes: Some(5),
                processes: Some(1),
                ..Usage::default()
            },
        ] {
            let mut object = serde_json::Map::new();
            insert_usage(&mut object, usage);
            let serialised = serde_json::to_value(usage).unwrap();
            assert_eq!(serde_json::Value::Object(object), serialised);
        }
    }

    #[test]
    fn a_line_written_with_usage_says_what_the_filled_payload_says() {
        let payload = serde_json::json!({
            "units": [
                {"name": "web", "instances": [
                    {"name": "web@0", "pid": 10, "state": "running", "adopted": false},
                    {"name": "web@1", "pid": null, "state": "inactive", "adopted": false},
                    {"name": "web@2", "pid": 12, "state": "running", "adopted": false}
                ]},
                {"name": "db", "instances": []}
            ],
            "pools": [{"name": "io", "size": 2}],
            "tasks": [{"id": 1, "pid": 20}, {"id": 2, "pid": null}]
        });
        let usage = |n: u64| Usage {
            memory_bytes: Some(n),
            cpu_usec: Some(n + 1),
            processes: Some(1),
            ..Usage::default()
        };
        // Payload order: `tasks` before `units` (the payload's keys are sorted).
        let usages = [
            Some(usage(100)),
            None,
            Some(usage(200)),
            None,
            Some(usage(300)),
        ];
        let line = line_of(&payload, &usages);
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        let mut filled = payload.clone();
        insert_usages(&mut filled, usages.to_vec());
        let written: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(written, serde_json::json!({ "ok": filled }));
        let instances = &written["ok"]["units"][0]["instances"];
        assert_eq!(instances[0]["memory_bytes"], 200);
        assert_eq!(instances[0]["cpu_usec"], 201);
        assert!(
            instances[0].get("memory_peak_bytes").is_none(),
            "unknown: left out"
        );
        assert!(
            instances[1].get("memory_bytes").is_none(),
            "no pid: no usage"
        );
        assert_eq!(instances[2]["memory_bytes"], 300);
        assert_eq!(written["ok"]["tasks"][0]["processes"], 1);
        assert_eq!(written["ok"]["pools"], payload["pools"]);
    }

    #[test]
    fn memberships_name_herds_cgroups() {
        let text = "4:memory:/process_api/x\n3:pids:/herd-7/units/web/0\n0::/herd-7/units/web/0\n";
        assert!(herds_membership(text, None));
        assert!(herds_membership(text, Some("pids")));
        assert!(!herds_membership(text, Some("memory")));
        assert!(!herds_membership(text, Some("cpuacct")));
        assert!(!herds_membership("0::/user.slice\n", None));
    }

    #[test]
    fn instance_names_give_the_cgroup_leaf() {
        assert_eq!(instance_of("web@12"), ("web", "12"));
        assert_eq!(instance_of("db"), ("db", "0"));
    }

    #[test]
    fn only_herds_cgroups_count() {
        assert!(is_herds(Path::new(
            "/sys/fs/cgroup/unified/herd-12/units/web/0"
        )));
        assert!(!is_herds(Path::new("/sys/fs/cgroup/memory/user.slice")));
    }
}
