//! The crash journal (docs/journal.md): the supervisor's [`Snapshot`] in
//! `<state_dir>/journal.json`, and the append-only record of task starts in
//! `<state_dir>/journal.starts`, both written by a thread of their own so that
//! no write or `fsync` ever blocks the event loop.
//!
//! The ordering that makes "a task is never started twice" true: a task's
//! spawn is held back until its id has been written to `journal.starts`
//! (one write for every task a step starts, so a busy pool pays one write per
//! batch, not per task). A journal snapshot taken after that covers the task
//! (it is no longer queued in it), so the record is dropped once such a
//! snapshot is on disk. After a crash, a task the journal still has queued but
//! whose start was recorded may have run: it is not started again.

use crate::core::snapshot::{Snapshot, SNAPSHOT_VERSION};
use crate::core::{Owner, SpawnSpec};
use herd_common::protocol::TaskId;
use std::collections::{HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc as sync_mpsc;
use std::thread::JoinHandle;
use tokio::sync::mpsc;
use tracing::warn;

/// A spawn waiting for its start record.
pub type HeldSpawn = (Owner, SpawnSpec);

/// The journal's files and the thread that writes them.
pub struct Journal {
    files: Files,
    jobs: sync_mpsc::Sender<Job>,
    thread: Option<JoinHandle<()>>,
    /// The writer's acknowledgements: every start record up to this sequence
    /// number has been written.
    recorded: mpsc::UnboundedReceiver<u64>,
    next_seq: u64,
    /// Task spawns of the current step, not yet sent to the writer.
    batch: Vec<HeldSpawn>,
    /// Batches sent to the writer, oldest first, with their sequence number.
    waiting: VecDeque<(u64, Vec<HeldSpawn>)>,
}

/// What the writer thread is asked to do, in order.
enum Job {
    /// Append these task ids to `journal.starts`; acknowledge `seq`.
    Starts { seq: u64, tasks: Vec<TaskId> },
    /// Replace `journal.json` with this (already serialised) snapshot.
    Snapshot(Vec<u8>),
    /// Reply once every earlier job is done.
    Flush(sync_mpsc::Sender<()>),
    /// The last job: with `remove`, a clean exit, nothing left to recover.
    Close { remove: bool },
}

#[derive(Clone)]
struct Files {
    journal: PathBuf,
    starts: PathBuf,
}

impl Journal {
    /// Starts the writer thread for the journal in `state_dir`.
    pub fn open(state_dir: &Path) -> std::io::Result<Journal> {
        let files = Files {
            journal: state_dir.join("journal.json"),
            starts: state_dir.join("journal.starts"),
        };
        let (jobs, queue) = sync_mpsc::channel();
        let (acks, recorded) = mpsc::unbounded_channel();
        let writer = Writer {
            files: files.clone(),
            acks,
            failing: false,
        };
        let thread = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || writer.run(queue))?;
        Ok(Journal {
            files,
            jobs,
            thread: Some(thread),
            recorded,
            next_seq: 0,
            batch: Vec::new(),
            waiting: VecDeque::new(),
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

    /// The task ids in `journal.starts`. A torn last line (herdd died while
    /// writing it) is a task whose spawn had not happened yet: ignored.
    fn recorded_starts(&self) -> HashSet<TaskId> {
        let text = fs::read_to_string(&self.files.starts).unwrap_or_default();
        text.split_inclusive('\n')
            .filter(|line| line.ends_with('\n'))
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    }

    /// No usable journal: start records of another run mean nothing.
    pub fn forget_starts(&self) {
        let _ = fs::remove_file(&self.files.starts);
    }

    /// Holds back a task's spawn until its start is recorded.
    pub fn hold(&mut self, spawn: HeldSpawn) {
        self.batch.push(spawn);
    }

    /// The end of a step: one record for every spawn it held back.
    pub fn record_held(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let tasks = batch
            .iter()
            .filter_map(|(owner, _)| match owner {
                Owner::Task(id) => Some(*id),
                Owner::Instance(_) => None,
            })
            .collect();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.waiting.push_back((seq, batch));
        self.send(Job::Starts { seq, tasks });
    }

    /// The next spawns whose start is recorded: they may go ahead.
    pub async fn recorded(&mut self) -> Vec<HeldSpawn> {
        let Some(seq) = self.recorded.recv().await else {
            // The writer is gone (it cannot be, short of a panic): nothing
            // will be recorded any more, so do not hold anything back.
            return self.waiting.drain(..).flat_map(|(_, b)| b).collect();
        };
        self.take_recorded(seq)
    }

    fn take_recorded(&mut self, seq: u64) -> Vec<HeldSpawn> {
        let mut ready = Vec::new();
        while self.waiting.front().is_some_and(|(s, _)| *s <= seq) {
            ready.extend(self.waiting.pop_front().into_iter().flat_map(|(_, b)| b));
        }
        ready
    }

    /// Waits (blocking) until every held spawn is recorded and returns them:
    /// before a re-exec, which must hand over no half-started task.
    pub fn settle(&mut self) -> Vec<HeldSpawn> {
        self.record_held();
        let (done, wait) = sync_mpsc::channel();
        self.send(Job::Flush(done));
        let _ = wait.recv();
        let mut ready = Vec::new();
        while let Ok(seq) = self.recorded.try_recv() {
            ready.extend(self.take_recorded(seq));
        }
        ready
    }

    /// Whether spawns are waiting for their start record.
    pub fn holds_spawns(&self) -> bool {
        !self.batch.is_empty() || !self.waiting.is_empty()
    }

    /// Queues `snapshot` to replace the journal; the caller never waits.
    pub fn write(&mut self, snapshot: &Snapshot) {
        match serde_json::to_vec(snapshot) {
            Ok(bytes) => self.send(Job::Snapshot(bytes)),
            Err(err) => warn!(error = %err, "cannot serialise the journal"),
        }
    }

    /// Finishes every queued write; with `remove` (a clean exit) then removes
    /// the journal: nothing is left to recover.
    pub fn close(mut self, remove: bool) {
        self.send(Job::Close { remove });
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
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
    acks: mpsc::UnboundedSender<u64>,
    /// Warn once, not at every write, while the state dir is unwritable.
    failing: bool,
}

impl Writer {
    /// Takes jobs in batches: every start record queued meanwhile goes out in
    /// one write, and of several snapshots only the newest is written.
    fn run(mut self, queue: sync_mpsc::Receiver<Job>) {
        while let Ok(first) = queue.recv() {
            let mut tasks = Vec::new();
            let mut acked = None;
            let mut snapshot = None;
            // Start records queued after the newest snapshot: that snapshot
            // does not cover them, so they must outlive it.
            let mut after_snapshot = false;
            let mut flushes = Vec::new();
            let mut close = None;
            for job in std::iter::once(first).chain(std::iter::from_fn(|| queue.try_recv().ok())) {
                match job {
                    Job::Starts { seq, tasks: ids } => {
                        tasks.extend(ids);
                        acked = Some(seq);
                        after_snapshot = true;
                    }
                    Job::Snapshot(bytes) => {
                        snapshot = Some(bytes);
                        after_snapshot = false;
                    }
                    Job::Flush(done) => flushes.push(done),
                    Job::Close { remove } => {
                        close = Some(remove);
                        break;
                    }
                }
            }
            if !tasks.is_empty() {
                let result = self.append_starts(&tasks);
                self.report(result, "cannot record task starts; a crash of herdd could run them again");
            }
            if let Some(seq) = acked {
                // The record is in the kernel's hands: it survives any death
                // of herdd. The spawns may go ahead.
                let _ = self.acks.send(seq);
            }
            if let Some(bytes) = snapshot {
                let result = self.replace_journal(&bytes, !after_snapshot);
                self.report(result, "cannot write the journal; a crash of herdd would lose state");
            }
            for done in flushes {
                let _ = done.send(());
            }
            if let Some(remove) = close {
                if remove {
                    let _ = fs::remove_file(&self.files.journal);
                    let _ = fs::remove_file(&self.files.starts);
                }
                return;
            }
        }
    }

    fn report(&mut self, result: std::io::Result<()>, what: &str) {
        match result {
            Ok(()) => self.failing = false,
            Err(err) if !self.failing => {
                self.failing = true;
                warn!(path = %self.files.journal.display(), error = %err, "{what}");
            }
            Err(_) => {}
        }
    }

    /// One line per task id, in one `write`: a torn line is never a
    /// complete id.
    fn append_starts(&self, tasks: &[TaskId]) -> std::io::Result<()> {
        let text: String = tasks.iter().map(|id| format!("{id}\n")).collect();
        ensure_dir(&self.files.starts)?;
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.files.starts)?
            .write_all(text.as_bytes())
    }

    /// Temp file, `fsync`, rename, `fsync` of the directory: a reader sees
    /// the old or the new journal, never a torn one. The start records reach
    /// the disk first; with `covered` (every one was queued before this
    /// snapshot was taken, so it has those tasks as started) they are dropped
    /// after. Records left over are harmless: they name tasks that no journal
    /// written later has queued.
    fn replace_journal(&self, bytes: &[u8], covered: bool) -> std::io::Result<()> {
        let dir = ensure_dir(&self.files.journal)?;
        if let Ok(starts) = File::open(&self.files.starts) {
            starts.sync_all()?;
        }
        let temp = self.files.journal.with_extension("json.tmp");
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, &self.files.journal)?;
        File::open(dir)?.sync_all()?;
        if !covered {
            return Ok(());
        }
        match OpenOptions::new().write(true).open(&self.files.starts) {
            Ok(starts) => starts.set_len(0),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err),
        }
    }
}

/// Creates the state dir if needed; returns it.
fn ensure_dir(file: &Path) -> std::io::Result<&Path> {
    let dir = file.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    Ok(dir)
}
