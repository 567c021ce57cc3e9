//! The crash journal (docs/journal.md): the supervisor's [`Snapshot`] in
//! `<state_dir>/journal.json`, written by a thread of its own so that no
//! write or `fsync` of it blocks the event loop, and the append-only record
//! of task starts in `<state_dir>/journal.starts`.
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
use crate::core::snapshot::{Snapshot, SNAPSHOT_VERSION};
use crate::core::timer::TimerSnapshot;
use crate::core::{Action, Owner};
use herd_common::protocol::TaskId;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Write;
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

/// The journal's files and the thread that writes the snapshots.
pub struct Journal {
    files: Files,
    jobs: sync_mpsc::Sender<Job>,
    thread: Option<JoinHandle<()>>,
    /// `journal.starts` (opened once a task starts).
    starts: StartRecords,
    /// How many start records were appended, ever.
    records: u64,
    /// From the writer: a snapshot taken after this many records is on disk.
    durable: sync_mpsc::Receiver<u64>,
    /// The newest of those seen so far.
    covered: Option<u64>,
    /// Warn once, not at every start, while the state dir is unwritable.
    starts_failing: bool,
    /// What `timers.json` was last asked to hold.
    timers_sent: Vec<u8>,
}

/// What the writer thread is asked to do, in order.
enum Job {
    /// Replace `journal.json` with this (already serialised) snapshot, taken
    /// after `records` start records.
    Snapshot { bytes: Vec<u8>, records: u64 },
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

#[derive(Clone)]
struct Files {
    journal: PathBuf,
    starts: PathBuf,
    timers: PathBuf,
}

impl Journal {
    /// Starts the writer thread for the journal in `state_dir`.
    pub fn open(state_dir: &Path) -> std::io::Result<Journal> {
        let files = Files {
            journal: state_dir.join("journal.json"),
            starts: state_dir.join("journal.starts"),
            timers: state_dir.join("timers.json"),
        };
        let (jobs, queue) = sync_mpsc::channel();
        let (acks, durable) = sync_mpsc::channel();
        let writer = Writer {
            files: files.clone(),
            acks,
            failing: false,
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
        let mut snapshot = match serde_json::from_slice::<Snapshot>(&text) {
            Ok(snapshot) if snapshot.version == SNAPSHOT_VERSION => snapshot,
            Ok(snapshot) => {
                warn!(path = %path.display(), version = snapshot.version, "journal of another version; starting fresh");
                return None;
            }
            Err(err) => {
                warn!(path = %path.display(), error = %err, "corrupt journal; starting fresh");
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

    /// Queues `snapshot` to replace the journal; the caller never waits. The
    /// start records the last snapshot on disk covers are dropped first.
    pub fn write(&mut self, snapshot: &Snapshot) {
        self.drop_covered_starts();
        match serde_json::to_vec(snapshot) {
            Ok(bytes) => self.send(Job::Snapshot {
                bytes,
                records: self.records,
            }),
            Err(err) => warn!(error = %err, "cannot serialise the journal"),
        }
    }

    /// If a snapshot taken after every record so far is on disk, the records
    /// are no longer needed: that snapshot has those tasks as started.
    fn drop_covered_starts(&mut self) {
        if let Some(newest) = self.durable.try_iter().last() {
            self.covered = Some(newest);
        }
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
    acks: sync_mpsc::Sender<u64>,
    /// Warn once, not at every write, while the state dir is unwritable.
    failing: bool,
}

impl Writer {
    /// Of several snapshots queued while one was being written, only the
    /// newest is written. Free heap is given back once no job has come for
    /// [`TRIM_WHEN_IDLE`] after a write.
    fn run(mut self, queue: sync_mpsc::Receiver<Job>) {
        let mut trim_pending = false;
        while let Some(first) = next_job(&queue, &mut trim_pending) {
            let mut snapshot = None;
            let mut timers = None;
            let mut close = None;
            for job in std::iter::once(first).chain(std::iter::from_fn(|| queue.try_recv().ok())) {
                match job {
                    Job::Snapshot { bytes, records } => snapshot = Some((bytes, records)),
                    Job::Timers { bytes } => timers = Some(bytes),
                    Job::Close { remove, done } => {
                        close = Some((remove, done));
                        break;
                    }
                }
            }
            if let Some((bytes, records)) = snapshot {
                match self.replace_journal(&bytes) {
                    Ok(()) => {
                        self.failing = false;
                        let _ = self.acks.send(records);
                    }
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
                }
                let _ = done.send(());
                return;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::action::Output;
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

    fn empty_snapshot(next_task: TaskId) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            next_task,
            units: vec![],
            pools: vec![],
            tasks: vec![],
            semaphores: vec![],
            events: vec![],
            rollouts: Default::default(),
            timers: vec![],
            held: vec![],
        }
    }

    #[test]
    fn starts_are_recorded_at_once_and_dropped_once_a_later_snapshot_is_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path()).unwrap();
        journal.record_starts(&[task_spawn(1), task_spawn(2)]);
        journal.record_starts(&[Action::Reexec]);
        assert_eq!(journal.recorded_starts(), HashSet::from([1, 2]));
        journal.write(&empty_snapshot(3));
        // A record after that snapshot: the snapshot does not cover it.
        journal.record_starts(&[task_spawn(3)]);
        let on_disk = |journal: &mut Journal| {
            journal.covered = Some(journal.durable.recv_timeout(CLOSE_TIMEOUT).unwrap());
        };
        on_disk(&mut journal);
        journal.write(&empty_snapshot(4));
        assert_eq!(
            journal.recorded_starts(),
            HashSet::from([1, 2, 3]),
            "3 is not covered"
        );
        // The second snapshot covers everything: the next write drops it all.
        on_disk(&mut journal);
        journal.write(&empty_snapshot(4));
        assert!(journal.recorded_starts().is_empty());
        journal.record_starts(&[task_spawn(5)]);
        assert_eq!(journal.recorded_starts(), HashSet::from([5]));
        journal.close(true);
        let journal_file = dir.path().join("journal.json");
        assert!(!journal_file.exists() && !dir.path().join("journal.starts").exists());
    }
}
