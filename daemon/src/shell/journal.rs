//! The crash journal (docs/journal.md): the supervisor's [`Snapshot`] in
//! `<state_dir>/journal.json` and its queued tasks in a task log,
//! `<state_dir>/journal.tasks.<generation>` (see `core/task_log.rs`), both
//! written by a thread of its own so that no write or `fsync` of them
//! blocks the event loop, and the append-only record of task starts in
//! `<state_dir>/journal.starts`.
//!
//! The snapshot says how much of which log it covers, and the log is synced
//! before the snapshot is replaced: the snapshot on disk and the log's
//! first `length` bytes are always the same moment's state. The log is
//! compacted (its queued tasks written to a log of the next generation) once
//! most of its records are dead, and a log of an earlier generation is
//! removed once a snapshot of the new one is on disk.
//!
//! The ordering that makes "a task is never started twice" true: before a
//! step's spawns, the ids of the tasks it starts are appended to
//! `journal.starts` in one `write` (a page-cache write, no `fsync`: it
//! survives any death of herdd). A journal snapshot taken after that has the
//! tasks as started, so the records are dropped once such a snapshot is on
//! disk and nothing was recorded since. After a crash, a task the journal
//! still has queued but whose start was recorded may have run: it is not
//! started again.

use super::start_records::StartRecords;
use crate::core::snapshot::{
    JournalChanges, Snapshot, TaskLogRef, JOURNAL_VERSION, SNAPSHOT_VERSION,
};
use crate::core::task_log;
use crate::core::timer::TimerSnapshot;
use crate::core::{Action, Owner};
use herd_common::protocol::TaskId;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc as sync_mpsc;
use std::thread::JoinHandle;
use tracing::warn;

/// How long a clean exit waits for the journal's last writes.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Free heap is given back once the writer has had no snapshot to write
/// for this long: after a burst of changes, not after each of the ten
/// snapshots a second a busy herdd writes (each `malloc_trim` walks the
/// heap under the allocator's lock, which the event loop then waits for).
const TRIM_WHEN_IDLE: std::time::Duration = std::time::Duration::from_millis(250);

/// A task log is compacted once its dead records (of tasks that left it,
/// or were written again, and the records saying so) take this many bytes
/// and [`COMPACT_DEAD_SHARE`] times as many as its queued tasks': each
/// compaction then writes at most a quarter of what was added since the
/// last, and a log takes at most five times its queued tasks' bytes (or
/// this much more).
const COMPACT_AFTER_BYTES: u64 = 1 << 20;
const COMPACT_DEAD_SHARE: u64 = 4;

/// The journal's files and the thread that writes the snapshots.
pub struct Journal {
    files: Files,
    jobs: sync_mpsc::Sender<Job>,
    thread: Option<JoinHandle<()>>,
    /// `journal.starts` (opened once a task starts).
    starts: StartRecords,
    /// How many start records were appended, ever.
    records: u64,
    /// From the writer: a snapshot taken after this many records is on
    /// disk, or its task log must start over.
    durable: sync_mpsc::Receiver<Ack>,
    /// The newest of those seen so far.
    covered: Option<u64>,
    /// The next snapshot starts a new task log with every queued task: the
    /// first one, and after the writer could not add to its log.
    new_log: bool,
    /// Warn once, not at every start, while the state dir is unwritable.
    starts_failing: bool,
    /// What `timers.json` was last asked to hold.
    timers_sent: Vec<u8>,
}

/// What the writer tells herdd.
enum Ack {
    /// A snapshot taken after this many start records is on disk.
    Durable(u64),
    /// The task log could not be written: the next snapshot must bring
    /// every queued task, for a new one.
    NewLog,
}

/// What the writer thread is asked to do, in order.
enum Job {
    /// Add these changes to the task log and replace `journal.json` with
    /// their snapshot.
    Snapshot(Box<SnapshotJob>),
    /// Replace `timers.json` (the timers' last runs, kept across clean
    /// restarts for `persistent`).
    Timers { bytes: Vec<u8> },
    /// The last job: with `remove`, a clean exit, nothing left to recover.
    /// Replies when done.
    Close {
        remove: bool,
        done: sync_mpsc::Sender<()>,
    },
}

struct SnapshotJob {
    changes: JournalChanges,
    /// Taken after this many start records.
    records: u64,
    /// `changes` has every queued task: they go to a new log.
    new_log: bool,
}

#[derive(Clone)]
struct Files {
    dir: PathBuf,
    journal: PathBuf,
    starts: PathBuf,
    timers: PathBuf,
}

impl Files {
    /// The task log of `generation`.
    fn task_log(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("journal.tasks.{generation}"))
    }

    /// The task logs in the state dir, by generation.
    fn task_logs(&self) -> Vec<(u64, PathBuf)> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let name = entry.file_name();
                let generation = name.to_str()?.strip_prefix("journal.tasks.")?;
                Some((generation.parse().ok()?, entry.path()))
            })
            .collect()
    }
}

impl Journal {
    /// Starts the writer thread for the journal in `state_dir`.
    pub fn open(state_dir: &Path) -> std::io::Result<Journal> {
        let files = Files {
            dir: state_dir.to_path_buf(),
            journal: state_dir.join("journal.json"),
            starts: state_dir.join("journal.starts"),
            timers: state_dir.join("timers.json"),
        };
        let (jobs, queue) = sync_mpsc::channel();
        let (acks, durable) = sync_mpsc::channel();
        // Logs of earlier herdds stay until this one's first snapshot is on
        // disk (the journal there may need one); its own come after them.
        let earlier = files.task_logs();
        let writer = Writer {
            next_generation: earlier.iter().map(|(g, _)| g + 1).max().unwrap_or(1),
            obsolete: earlier.into_iter().map(|(_, path)| path).collect(),
            files: files.clone(),
            acks,
            failing: false,
            log: None,
            lost_log: false,
        };
        let thread = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || {
                block_signals();
                writer.run(queue)
            })?;
        Ok(Journal {
            starts: StartRecords::new(files.starts.clone()),
            files,
            jobs,
            thread: Some(thread),
            records: 0,
            durable,
            covered: None,
            new_log: true,
            starts_failing: false,
            timers_sent: Vec::new(),
        })
    }

    /// The journal a previous herdd left, if any, with the tasks it may have
    /// started after its last snapshot settled (see
    /// [`Snapshot::settle_unconfirmed_starts`]). A missing file is normal; an
    /// unreadable, truncated, corrupt or foreign one is reported and ignored:
    /// herdd never refuses to start because of its journal.
    pub fn load(&self) -> Option<Snapshot> {
        let path = &self.files.journal;
        let text = match fs::read(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
            Err(err) => {
                warn!(path = %path.display(), error = %err, "cannot read the journal; starting fresh");
                return None;
            }
        };
        let snapshot = match serde_json::from_slice::<Snapshot>(&text) {
            Ok(snapshot) => snapshot,
            Err(err) => {
                warn!(path = %path.display(), error = %err, "corrupt journal; starting fresh");
                return None;
            }
        };
        let mut snapshot = match (snapshot.version, snapshot.task_log) {
            (SNAPSHOT_VERSION, None) => snapshot,
            (JOURNAL_VERSION, Some(log)) => match self.read_task_log(log) {
                Ok(queued) => snapshot.with_queued(queued),
                Err(err) => {
                    let log = self.files.task_log(log.generation);
                    warn!(path = %log.display(), error = %err, "corrupt journal; starting fresh");
                    return None;
                }
            },
            (version, _) => {
                warn!(path = %path.display(), version, "journal of another version; starting fresh");
                return None;
            }
        };
        let settled = snapshot.settle_unconfirmed_starts(&self.recorded_starts());
        if settled > 0 {
            warn!(
                tasks = settled,
                "tasks whose start was recorded may have run before herdd died; they are not started again"
            );
        }
        Some(snapshot)
    }

    /// The queued tasks of the part of a task log that a snapshot covers.
    fn read_task_log(
        &self,
        log: TaskLogRef,
    ) -> Result<Vec<crate::core::snapshot::TaskSnapshot>, String> {
        let path = self.files.task_log(log.generation);
        let file = File::open(&path).map_err(|err| err.to_string())?;
        let length = usize::try_from(log.length).map_err(|err| err.to_string())?;
        let mut bytes = vec![0; length];
        file.read_exact_at(&mut bytes, 0)
            .map_err(|err| format!("{length} bytes expected: {err}"))?;
        task_log::replay(&bytes)
    }

    /// The task ids in `journal.starts`.
    fn recorded_starts(&self) -> HashSet<TaskId> {
        StartRecords::read(&self.files.starts)
    }

    /// No usable journal: start records of another run mean nothing.
    pub fn forget_starts(&self) {
        let _ = fs::remove_file(&self.files.starts);
    }

    /// Records the start of every task among `actions` (one step's), in one
    /// `write`, before the caller spawns them. Once it returns, the record
    /// is in the kernel: it survives any death of herdd.
    pub fn record_starts(&mut self, actions: &[Action]) {
        let text: String = actions
            .iter()
            .filter_map(|action| {
                let Action::Spawn {
                    owner: Owner::Task(id),
                    ..
                } = action
                else {
                    return None;
                };
                Some(format!("{id}\n"))
            })
            .collect();
        if text.is_empty() {
            return;
        }
        self.records += 1;
        match self.starts.append(text.as_bytes()) {
            Ok(()) => self.starts_failing = false,
            Err(err) if !self.starts_failing => {
                self.starts_failing = true;
                warn!(path = %self.files.starts.display(), error = %err,
                      "cannot record task starts; a crash of herdd could run them again");
            }
            Err(_) => {}
        }
    }

    /// The timers' history in `timers.json`, as a clean exit left it
    /// (nothing if there is none or it cannot be read).
    pub fn load_timers(&self) -> Vec<TimerSnapshot> {
        let Ok(bytes) = fs::read(&self.files.timers) else {
            return Vec::new();
        };
        serde_json::from_slice(&bytes).unwrap_or_else(|err| {
            warn!(path = %self.files.timers.display(), error = %err, "ignoring unreadable timers file");
            Vec::new()
        })
    }

    /// Queues `timers` to replace `timers.json` if they changed since the
    /// last call; the caller never waits.
    pub fn save_timers(&mut self, timers: &[TimerSnapshot]) {
        if timers.is_empty() && self.timers_sent.is_empty() {
            return;
        }
        let Ok(bytes) = serde_json::to_vec(timers) else {
            return;
        };
        if bytes != self.timers_sent {
            self.timers_sent.clone_from(&bytes);
            self.send(Job::Timers { bytes });
        }
    }

    /// Whether the next [`Journal::write`] must bring every queued task (see
    /// [`crate::core::Supervisor::journal_log_anew`]): the first one, and
    /// after the writer could not add to its task log.
    pub fn wants_new_log(&mut self) -> bool {
        self.take_acks();
        self.new_log
    }

    /// Queues `changes` for the task log and their snapshot to replace the
    /// journal; the caller never waits. The start records the last snapshot
    /// on disk covers are dropped first.
    pub fn write(&mut self, changes: JournalChanges) {
        self.drop_covered_starts();
        let new_log = std::mem::take(&mut self.new_log);
        self.send(Job::Snapshot(Box::new(SnapshotJob {
            changes,
            records: self.records,
            new_log,
        })));
    }

    fn take_acks(&mut self) {
        for ack in self.durable.try_iter() {
            match ack {
                Ack::Durable(records) => self.covered = Some(records),
                Ack::NewLog => self.new_log = true,
            }
        }
    }

    /// If a snapshot taken after every record so far is on disk, the records
    /// are no longer needed: that snapshot has those tasks as started.
    fn drop_covered_starts(&mut self) {
        self.take_acks();
        if self.covered == Some(self.records) {
            self.starts.clear();
        }
    }

    /// Finishes every queued write; with `remove` (a clean exit) then removes
    /// the journal: nothing is left to recover. Waits at most
    /// `CLOSE_TIMEOUT`: a hung state dir must not keep herdd from exiting.
    pub fn close(mut self, remove: bool) {
        let (done, closed) = sync_mpsc::channel();
        self.send(Job::Close { remove, done });
        match closed.recv_timeout(CLOSE_TIMEOUT) {
            Ok(()) => {
                if let Some(thread) = self.thread.take() {
                    let _ = thread.join();
                }
            }
            Err(_) => warn!(
                path = %self.files.journal.display(),
                "the journal's last write did not finish in time; exiting without it"
            ),
        }
    }

    fn send(&self, job: Job) {
        // Fails only if the writer panicked; that was reported already.
        let _ = self.jobs.send(job);
    }
}

/// The writer thread's side.
struct Writer {
    files: Files,
    acks: sync_mpsc::Sender<Ack>,
    /// Warn once, not at every write, while the state dir is unwritable.
    failing: bool,
    /// The task log being added to.
    log: Option<TaskLog>,
    /// The generation of the next new task log.
    next_generation: u64,
    /// Task logs no snapshot will need once the next is on disk.
    obsolete: Vec<PathBuf>,
    /// Adding to the log failed: changes are dropped until a new log comes.
    lost_log: bool,
}

/// One generation of the task log.
struct TaskLog {
    generation: u64,
    file: File,
    /// Bytes written and synced.
    length: u64,
    /// Tasks queued in it (the rest of its records are dead).
    live: u64,
    /// `+` records written to it, and their bytes: what a queued task takes.
    queued_records: u64,
    queued_bytes: u64,
}

/// Records to add to the task log, with what they change.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    /// Tasks new to the log, and tasks that left it.
    added: u64,
    left: u64,
    /// `+` records, and their bytes.
    queued_records: u64,
    queued_bytes: u64,
}

impl Writer {
    /// Of several snapshots queued while one was being written, only the
    /// newest is written (after every one's changes to the task log). Free
    /// heap is given back once no job has come for [`TRIM_WHEN_IDLE`] after
    /// a write.
    fn run(mut self, queue: sync_mpsc::Receiver<Job>) {
        let mut trim_pending = false;
        while let Some(first) = next_job(&queue, &mut trim_pending) {
            let mut snapshots = Vec::new();
            let mut timers = None;
            let mut close = None;
            for job in std::iter::once(first).chain(std::iter::from_fn(|| queue.try_recv().ok())) {
                match job {
                    Job::Snapshot(job) => snapshots.push(*job),
                    Job::Timers { bytes } => timers = Some(bytes),
                    Job::Close { remove, done } => {
                        close = Some((remove, done));
                        break;
                    }
                }
            }
            if !snapshots.is_empty() {
                match self.write_snapshots(snapshots) {
                    Ok(()) => self.failing = false,
                    Err(err) if !self.failing => {
                        self.failing = true;
                        warn!(path = %self.files.journal.display(), error = %err,
                              "cannot write the journal; a crash of herdd would lose state");
                    }
                    Err(_) => {}
                }
            }
            if let Some(bytes) = timers {
                if let Err(err) = replace(&self.files.timers, &bytes) {
                    warn!(path = %self.files.timers.display(), error = %err,
                          "cannot write the timers' last runs");
                }
            }
            trim_pending = true;
            if let Some((remove, done)) = close {
                if remove {
                    let _ = fs::remove_file(&self.files.journal);
                    let _ = fs::remove_file(&self.files.starts);
                    for (_, log) in self.files.task_logs() {
                        let _ = fs::remove_file(log);
                    }
                }
                let _ = done.send(());
                return;
            }
        }
    }

    /// Adds the changes of `jobs` to the task log (a new one from the last
    /// job that brings every queued task), then replaces the journal with
    /// the last one's snapshot, which says how much of the log it covers.
    fn write_snapshots(&mut self, mut jobs: Vec<SnapshotJob>) -> std::io::Result<()> {
        if let Some(last_new) = jobs.iter().rposition(|job| job.new_log) {
            // The earlier ones' changes are in it.
            jobs.drain(..last_new);
            self.lost_log = false;
            self.retire_log();
        }
        if self.lost_log {
            return Ok(());
        }
        let mut batch = Batch::default();
        for job in &jobs {
            let before = batch.bytes.len();
            for task in &job.changes.queued {
                task_log::push_queued(&mut batch.bytes, task)?;
            }
            batch.queued_bytes += (batch.bytes.len() - before) as u64;
            batch.queued_records += job.changes.queued.len() as u64;
            for id in &job.changes.left {
                task_log::push_left(&mut batch.bytes, *id);
            }
            batch.added += job.changes.added as u64;
            batch.left += job.changes.left.len() as u64;
        }
        if let Err(err) = self.add_to_log(&batch) {
            // Whatever part of them made it is past the length any snapshot
            // covers; a new log will have the queue.
            self.lost_log = true;
            self.retire_log();
            let _ = self.acks.send(Ack::NewLog);
            return Err(err);
        }
        self.compact_if_due();
        let last = jobs.pop().expect("at least one job");
        let log = self.log.as_ref().expect("added to above");
        let mut snapshot = last.changes.snapshot;
        snapshot.task_log = Some(TaskLogRef {
            generation: log.generation,
            length: log.length,
        });
        let bytes = serde_json::to_vec(&snapshot)?;
        self.replace_journal(&bytes)?;
        let current = self.files.task_log(log.generation);
        for path in std::mem::take(&mut self.obsolete) {
            if path != current {
                let _ = fs::remove_file(path);
            }
        }
        let _ = self.acks.send(Ack::Durable(last.records));
        Ok(())
    }

    /// The current task log goes once the next snapshot is on disk.
    fn retire_log(&mut self) {
        if let Some(log) = self.log.take() {
            self.obsolete.push(self.files.task_log(log.generation));
        }
    }

    /// Appends `batch` to the task log (a new one if there is none) and
    /// syncs it.
    fn add_to_log(&mut self, batch: &Batch) -> std::io::Result<()> {
        if self.log.is_none() {
            let generation = self.next_generation;
            let path = self.files.task_log(generation);
            ensure_dir(&path)?;
            self.next_generation += 1;
            let file = new_log_file(&path)?;
            self.log = Some(TaskLog {
                generation,
                file,
                length: 0,
                live: 0,
                queued_records: 0,
                queued_bytes: 0,
            });
        }
        let log = self.log.as_mut().expect("opened above");
        if !batch.bytes.is_empty() {
            log.file.write_all_at(&batch.bytes, log.length)?;
            log.file.sync_data()?;
        }
        log.length += batch.bytes.len() as u64;
        log.live = (log.live + batch.added).saturating_sub(batch.left);
        log.queued_records += batch.queued_records;
        log.queued_bytes += batch.queued_bytes;
        Ok(())
    }

    /// Once most of the log is dead, writes its queued tasks to a log of
    /// the next generation and adds to that one from now on. On failure the
    /// log stays as it is.
    fn compact_if_due(&mut self) {
        let Some(log) = &self.log else { return };
        let live = log.live * log.queued_bytes / log.queued_records.max(1);
        let dead = log.length.saturating_sub(live);
        if dead < COMPACT_AFTER_BYTES || dead < COMPACT_DEAD_SHARE * live {
            return;
        }
        let generation = self.next_generation;
        let path = self.files.task_log(generation);
        let compacted = (|| {
            let length = usize::try_from(log.length).map_err(std::io::Error::other)?;
            let mut bytes = vec![0; length];
            log.file.read_exact_at(&mut bytes, 0)?;
            let compacted = task_log::compact(&bytes).map_err(std::io::Error::other)?;
            let file = new_log_file(&path)?;
            file.write_all_at(&compacted, 0)?;
            file.sync_data()?;
            let live = compacted.iter().filter(|b| **b == b'\n').count() as u64;
            Ok::<_, std::io::Error>(TaskLog {
                generation,
                file,
                length: compacted.len() as u64,
                live,
                queued_records: live,
                queued_bytes: compacted.len() as u64,
            })
        })();
        self.next_generation += 1;
        match compacted {
            Ok(new) => {
                self.retire_log();
                self.log = Some(new);
            }
            Err(err) => {
                let _ = fs::remove_file(&path);
                warn!(path = %path.display(), error = %err, "cannot compact the journal's task log");
            }
        }
    }

    /// Temp file, `fsync`, rename, `fsync` of the directory: a reader sees
    /// the old or the new journal, never a torn one. The start records reach
    /// the disk first (for a power loss; a death of herdd alone does not
    /// need it).
    fn replace_journal(&self, bytes: &[u8]) -> std::io::Result<()> {
        let dir = ensure_dir(&self.files.journal)?;
        if let Ok(starts) = File::open(&self.files.starts) {
            starts.sync_all()?;
        }
        let temp = self.files.journal.with_extension("json.tmp");
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, &self.files.journal)?;
        File::open(dir)?.sync_all()
    }
}

/// The writer's next job; meanwhile, once idle for [`TRIM_WHEN_IDLE`]
/// with a trim pending (something was written), gives free heap back.
/// `None` once herdd has dropped the journal.
fn next_job(queue: &sync_mpsc::Receiver<Job>, trim_pending: &mut bool) -> Option<Job> {
    while *trim_pending {
        match queue.recv_timeout(TRIM_WHEN_IDLE) {
            Ok(job) => return Some(job),
            Err(sync_mpsc::RecvTimeoutError::Timeout) => {
                give_back_free_memory();
                *trim_pending = false;
            }
            Err(sync_mpsc::RecvTimeoutError::Disconnected) => return None,
        }
    }
    queue.recv().ok()
}

/// The writer never takes a process-directed signal (SIGCHLD above all):
/// the kernel hands such a signal to any thread that does not block it,
/// and one that lands here wakes this thread for nothing (its handler only
/// tells the event loop, which the main thread runs anyway).
fn block_signals() {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
    if let Err(err) = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), None) {
        warn!(error = %err, "cannot block signals in the journal's thread");
    }
}

/// Returns the free pages inside the heap to the system. Once a burst of
/// changes has settled (a few hundred spawns, a reply listing every
/// instance), the memory their short-lived buffers took stays resident
/// otherwise, as the allocator only gives back the heap's top. Here, off
/// the event loop, once the snapshots of a burst are written. (Measured:
/// about 0.3 MB of herdd's resident memory with 500 instances,
/// bench/README.md (d).)
fn give_back_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks glibc's own free lists under its lock;
    // any thread may call it at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Temp file, `fsync`, rename: a reader sees the old or the new file.
fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    ensure_dir(path)?;
    let temp = path.with_extension("json.tmp");
    let mut file = File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&temp, path)
}

/// Creates the state dir if needed; returns it.
fn ensure_dir(file: &Path) -> std::io::Result<&Path> {
    let dir = file.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    Ok(dir)
}

/// A task log file, empty; readable too, since compaction reads it back.
fn new_log_file(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::action::Output;
    use crate::core::snapshot::{PoolSnapshot, TaskSnapshot};
    use crate::core::SpawnSpec;

    fn task_spawn(id: TaskId) -> Action {
        Action::Spawn {
            owner: Owner::Task(id),
            spec: Box::new(SpawnSpec {
                argv: vec!["/bin/true".into()],
                env: Default::default(),
                cwd: None,
                user: None,
                group: None,
                umask: None,
                rlimits: vec![],
                confinement: Box::default(),
                daemon: false,
                output: Output::Capture,
                notify: false,
                env_files: vec![],
                sockets: vec![],
                listen_fds: vec![],
            }),
        }
    }

    fn empty_snapshot(next_task: TaskId) -> JournalChanges {
        changes(next_task, vec![], vec![])
    }

    fn changes(next_task: TaskId, queued: Vec<TaskSnapshot>, left: Vec<TaskId>) -> JournalChanges {
        let snapshot = Snapshot {
            version: JOURNAL_VERSION,
            next_task,
            units: vec![],
            pools: vec![PoolSnapshot {
                name: "p".into(),
                queue: vec![],
                running: 0,
                finished: vec![],
                closed: false,
                submitted: next_task - 1,
            }],
            tasks: vec![],
            semaphores: vec![],
            events: vec![],
            rollouts: Default::default(),
            timers: vec![],
            held: vec![],
            task_log: None,
        };
        JournalChanges {
            snapshot,
            added: queued.len(),
            queued,
            left,
        }
    }

    #[test]
    fn starts_are_recorded_at_once_and_dropped_once_a_later_snapshot_is_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        journal.record_starts(&[task_spawn(1), task_spawn(2)]);
        journal.record_starts(&[Action::Reexec]);
        assert_eq!(journal.recorded_starts(), HashSet::from([1, 2]));
        journal.write(empty_snapshot(3));
        // A record after that snapshot: the snapshot does not cover it.
        journal.record_starts(&[task_spawn(3)]);
        let on_disk = |journal: &mut Journal| {
            let Ack::Durable(records) = journal.durable.recv_timeout(CLOSE_TIMEOUT).unwrap() else {
                panic!("the log was lost");
            };
            journal.covered = Some(records);
        };
        on_disk(&mut journal);
        journal.write(empty_snapshot(4));
        assert_eq!(
            journal.recorded_starts(),
            HashSet::from([1, 2, 3]),
            "3 is not covered"
        );
        // The second snapshot covers everything: the next write drops it all.
        on_disk(&mut journal);
        journal.write(empty_snapshot(4));
        assert!(journal.recorded_starts().is_empty());
        journal.record_starts(&[task_spawn(5)]);
        assert_eq!(journal.recorded_starts(), HashSet::from([5]));
        journal.close(true);
        let journal_file = dir.path().join("journal.json");
        assert!(!journal_file.exists() && !dir.path().join("journal.starts").exists());
    }

    fn queued(id: TaskId) -> TaskSnapshot {
        let text = format!(
            r#"{{"id":{id},"pool":"p","command":["/bin/echo","{id}"],"state":"queued","cancelling":false,"killed":false,"adopted":false}}"#
        );
        serde_json::from_str(&text).unwrap()
    }

    /// Waits for the writer to have the next snapshot on disk.
    fn on_disk(journal: &mut Journal) {
        match journal.durable.recv_timeout(CLOSE_TIMEOUT).unwrap() {
            Ack::Durable(records) => journal.covered = Some(records),
            Ack::NewLog => panic!("the task log was lost"),
        }
    }

    /// The ids of the queued tasks the journal on disk has, in queue order.
    fn queue_on_disk(dir: &Path) -> Option<Vec<TaskId>> {
        let snapshot = Journal::open(dir).unwrap().load()?;
        let tasks: Vec<TaskId> = snapshot.tasks.iter().map(|t| t.id).collect();
        assert_eq!(snapshot.pools[0].queue, tasks, "every task is queued");
        Some(tasks)
    }

    fn task_log_of(dir: &Path) -> TaskLogRef {
        let bytes = fs::read(dir.join("journal.json")).unwrap();
        serde_json::from_slice::<Snapshot>(&bytes)
            .unwrap()
            .task_log
            .unwrap()
    }

    #[test]
    fn queued_tasks_are_kept_in_the_task_log_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        assert!(journal.wants_new_log(), "a new journal starts a new log");
        journal.write(changes(4, vec![queued(1), queued(2), queued(3)], vec![]));
        on_disk(&mut journal);
        assert!(!journal.wants_new_log());
        // Queued after the first snapshot: only the log has them.
        journal.write(changes(6, vec![queued(4), queued(5)], vec![2]));
        on_disk(&mut journal);
        let text = fs::read_to_string(dir.path().join("journal.json")).unwrap();
        assert!(
            !text.contains("/bin/echo"),
            "the snapshot leaves them out: {text}"
        );
        assert_eq!(queue_on_disk(dir.path()), Some(vec![1, 3, 4, 5]));
        // A snapshot that did not make it: its records are past the length
        // the snapshot on disk covers, a torn one too.
        let log = task_log_of(dir.path());
        let path = dir.path().join(format!("journal.tasks.{}", log.generation));
        let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"-1\n+9 {\"id\":9,\"po").unwrap();
        assert_eq!(queue_on_disk(dir.path()), Some(vec![1, 3, 4, 5]));
        // A log shorter than its snapshot says is a corrupt journal.
        file.set_len(log.length - 1).unwrap();
        assert_eq!(queue_on_disk(dir.path()), None);
        journal.close(true);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "all removed");
    }

    #[test]
    fn a_new_herdd_starts_a_new_log_and_removes_the_old_once_its_snapshot_is_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        journal.wants_new_log();
        journal.write(changes(3, vec![queued(1), queued(2)], vec![]));
        on_disk(&mut journal);
        journal.close(false);
        let first = task_log_of(dir.path()).generation;
        let mut next = Journal::open(dir.path()).unwrap();
        assert_eq!(next.load().unwrap().tasks.len(), 2);
        assert!(next.wants_new_log());
        next.write(changes(4, vec![queued(1), queued(2), queued(3)], vec![]));
        on_disk(&mut next);
        let second = task_log_of(dir.path()).generation;
        assert!(second > first);
        let logs: Vec<u64> = next.files.task_logs().into_iter().map(|(g, _)| g).collect();
        assert_eq!(logs, [second], "the first log is gone");
        assert_eq!(queue_on_disk(dir.path()), Some(vec![1, 2, 3]));
        next.close(true);
    }

    #[test]
    fn a_log_mostly_dead_is_compacted_into_the_next_generation() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        journal.wants_new_log();
        // Each record takes about a hundred bytes.
        let total = COMPACT_AFTER_BYTES / 100;
        journal.write(changes(
            total + 1,
            (1..=total).map(queued).collect(),
            vec![],
        ));
        on_disk(&mut journal);
        let first = task_log_of(dir.path());
        // All but the last 50 start: dead records outnumber live ones.
        journal.write(changes(total + 1, vec![], (1..=total - 50).collect()));
        on_disk(&mut journal);
        let second = task_log_of(dir.path());
        assert!(second.generation > first.generation, "compacted");
        assert!(
            second.length < first.length / 100,
            "{second:?} after {first:?}"
        );
        let logs: Vec<u64> = journal
            .files
            .task_logs()
            .into_iter()
            .map(|(g, _)| g)
            .collect();
        assert_eq!(logs, [second.generation], "the old log is gone");
        let expected: Vec<TaskId> = (total - 49..=total).collect();
        assert_eq!(queue_on_disk(dir.path()), Some(expected.clone()));
        // The compacted log is added to like any other.
        journal.write(changes(total + 2, vec![queued(total + 1)], vec![total]));
        on_disk(&mut journal);
        let mut expected = expected;
        expected.pop();
        expected.push(total + 1);
        assert_eq!(queue_on_disk(dir.path()), Some(expected));
        journal.close(true);
    }

    #[test]
    fn a_journal_of_version_one_still_loads_and_one_of_version_two_needs_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut whole = changes(3, vec![], vec![]).snapshot;
        whole.version = SNAPSHOT_VERSION;
        whole.tasks = vec![queued(1), queued(2)];
        whole.pools[0].queue = vec![1, 2];
        fs::write(
            dir.path().join("journal.json"),
            serde_json::to_vec(&whole).unwrap(),
        )
        .unwrap();
        assert_eq!(queue_on_disk(dir.path()), Some(vec![1, 2]));
        whole.version = JOURNAL_VERSION;
        fs::write(
            dir.path().join("journal.json"),
            serde_json::to_vec(&whole).unwrap(),
        )
        .unwrap();
        assert_eq!(queue_on_disk(dir.path()), None, "version 2 without a log");
        whole.version = 3;
        fs::write(
            dir.path().join("journal.json"),
            serde_json::to_vec(&whole).unwrap(),
        )
        .unwrap();
        assert_eq!(queue_on_disk(dir.path()), None, "a later version");
    }
}
