//! Usage files kept open from one usage read to the next.
//!
//! A `status` of hundreds of instances reads two small kernel files for
//! each (`cgroup.procs`, `/proc/<pid>/stat`). Opening and closing such a
//! file costs about twice what reading it does (a path walk, a `struct
//! file`, procfs's or cgroupfs's own set-up), so the files a usage read
//! opens stay open for the next one, which reads each with a single `pread`
//! at offset 0: procfs and cgroupfs make the text afresh for every read
//! from the start.
//!
//! A kept file never answers for anything else than what it was opened
//! for:
//! - `/proc/<pid>/stat` stays bound to its process: once that has been
//!   reaped a read fails (`ESRCH`), even if its pid is in use again;
//! - a cgroup's file fails (`ENODEV`) once the cgroup is removed, even if a
//!   cgroup of the same name was made since (an instance restarted). An
//!   open file does not keep a cgroup from being removed.
//!
//! Either way the file is closed and opened again by its path.
//!
//! What this costs is bounded and temporary. At most a quarter of herdd's
//! descriptor limit is kept (beyond it, files are opened, read and closed
//! each time); a file no read used for [`keep`] is closed by the next
//! read, and all of them [`keep`] after the last read: a herdd that nobody
//! asks for usage holds none, and wakes up once to close them.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fs::File;
use std::hash::Hash;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// How long files stay open after the last usage read that used them.
const KEEP: Duration = Duration::from_secs(30);

/// Testing knob: overrides [`KEEP`], in milliseconds (read once).
const KEEP_ENV: &str = "HERD_USAGE_KEEP_MS";

/// How long files stay open after the last usage read that used them.
pub fn keep() -> Duration {
    static KEEP_FOR: OnceLock<Duration> = OnceLock::new();
    *KEEP_FOR.get_or_init(|| {
        std::env::var(KEEP_ENV)
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map_or(KEEP, Duration::from_millis)
    })
}

/// Files of one kind, by what they are the file of.
pub struct Kept<K> {
    files: HashMap<K, Entry>,
    /// How many may be kept.
    room: usize,
}

struct Entry {
    file: File,
    /// When a usage read last read it.
    read: Instant,
}

impl<K> Default for Kept<K> {
    /// Keeps nothing.
    fn default() -> Self {
        Kept {
            files: HashMap::new(),
            room: 0,
        }
    }
}

impl<K: Hash + Eq> Kept<K> {
    pub fn new(room: usize) -> Kept<K> {
        Kept {
            files: HashMap::new(),
            room,
        }
    }

    /// Reads the file kept for `key` into `buffer`, or else the one `open`
    /// opens, which is then kept if there is room; the length of its text.
    pub fn read<Q>(
        &mut self,
        key: &Q,
        buffer: &mut Vec<u8>,
        open: impl FnOnce() -> io::Result<File>,
        now: Instant,
    ) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let (length, outcome) = read(self.file(key), buffer, open);
        self.settle(key, outcome, now);
        length
    }

    /// The file kept for `key`, to [`read`] where the map is out of reach
    /// (on another thread) and [`Kept::settle`] after.
    pub fn file<Q>(&self, key: &Q) -> Option<&File>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.files.get(key).map(|entry| &entry.file)
    }

    /// Takes note of what a [`read`] of `key`'s file came to.
    pub fn settle<Q>(&mut self, key: &Q, outcome: Outcome, now: Instant)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match outcome {
            Outcome::Read => {
                if let Some(entry) = self.files.get_mut(key) {
                    entry.read = now;
                }
            }
            Outcome::Opened(file) => {
                self.files.remove(key);
                if self.files.len() < self.room {
                    self.files.insert(key.to_owned(), Entry { file, read: now });
                }
            }
            Outcome::Gone => {
                self.files.remove(key);
            }
        }
    }

    /// Closes the files no read has used since `since`.
    pub fn close_unread_since(&mut self, since: Instant) {
        self.files.retain(|_, entry| entry.read >= since);
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }
}

/// What reading a file came to.
pub enum Outcome {
    /// The kept file was read.
    Read,
    /// A file was opened (none was kept, or the kept one failed).
    Opened(File),
    /// Neither the kept file nor its path could be read.
    Gone,
}

/// Reads `kept`, a kept file, into `buffer`, or else the one `open` opens:
/// the length of its text, and what to [`Kept::settle`].
pub fn read(
    kept: Option<&File>,
    buffer: &mut Vec<u8>,
    open: impl FnOnce() -> io::Result<File>,
) -> (Option<usize>, Outcome) {
    if let Some(file) = kept {
        if let Ok(length) = fill(buffer, file) {
            return (Some(length), Outcome::Read);
        }
        // Its process or cgroup is gone: the path may name a new one.
    }
    let Ok(file) = open() else {
        return (None, Outcome::Gone);
    };
    match fill(buffer, &file) {
        Ok(length) => (Some(length), Outcome::Opened(file)),
        Err(_) => (None, Outcome::Gone),
    }
}

/// Reads the whole text of a small kernel file from its start into
/// `buffer`, which keeps its length between reads (zeroed once, not per
/// file). procfs and cgroupfs produce the text whole for each read that is
/// large enough, so a short read is the end: no `fstat` for a size hint
/// and no further read to see the end.
pub fn fill(buffer: &mut Vec<u8>, file: &File) -> io::Result<usize> {
    let mut filled = 0;
    loop {
        if buffer.len() < filled + 4096 {
            buffer.resize(filled + 4096, 0);
        }
        let n = file.read_at(&mut buffer[filled..], filled as u64)?;
        filled += n;
        if n == 0 || filled < buffer.len() {
            return Ok(filled);
        }
    }
}

/// The files of one usage read: lent from the shelf, given back after.
pub struct Files {
    /// `/proc/<pid>/stat`, by pid.
    pub stats: Kept<u32>,
    /// Files of cgroups, by path.
    pub cgroups: Kept<String>,
    /// Whether these are the shelf's (else they are closed after the read).
    shelved: bool,
}

/// What stays open between usage reads.
struct Shelf {
    files: Option<Files>,
    /// Whether a read has the files now.
    lent: bool,
    /// When the last read gave them back.
    last_read: Option<Instant>,
    /// Whether a task waits to close them once unused.
    closing: bool,
}

static SHELF: Mutex<Shelf> = Mutex::new(Shelf {
    files: None,
    lent: false,
    last_read: None,
    closing: false,
});

fn shelf() -> MutexGuard<'static, Shelf> {
    // Nothing panics while holding it; a poisoned shelf is still whole.
    SHELF
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Files {
    /// Files that keep nothing: for a read without the shelf's.
    pub fn none() -> Files {
        Files {
            stats: Kept::default(),
            cgroups: Kept::default(),
            shelved: false,
        }
    }

    /// The shelf's files, or none while another read has them (two reads
    /// at once are rare: the second one opens and closes its files).
    pub fn lend() -> Files {
        let mut shelf = shelf();
        if shelf.lent {
            return Files::none();
        }
        shelf.lent = true;
        shelf.files.take().unwrap_or_else(|| Files::new(room()))
    }

    /// Files for the shelf that keep at most `room`.
    pub fn new(room: usize) -> Files {
        Files {
            stats: Kept::new(room / 2),
            cgroups: Kept::new(room / 2),
            shelved: true,
        }
    }

    /// Back on the shelf after a read at `now`, without the files it did
    /// not use that had not been used for [`keep`] either.
    pub fn give_back(mut self, now: Instant) {
        if !self.shelved {
            return;
        }
        if let Some(since) = now.checked_sub(keep()) {
            self.stats.close_unread_since(since);
            self.cgroups.close_unread_since(since);
        }
        let mut shelf = shelf();
        shelf.files = Some(self);
        shelf.lent = false;
        shelf.last_read = Some(now);
    }

    /// How many files are kept open.
    pub fn len(&self) -> usize {
        self.stats.len() + self.cgroups.len()
    }
}

/// A quarter of herdd's descriptor limit: the rest stays for clients,
/// children's pipes and logs.
fn room() -> usize {
    let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    usize::try_from(limit / 4).unwrap_or(usize::MAX)
}

/// Whether kept files need a task to close them once unused; if so, that
/// task is now taken to be running: start [`close_when_unused`].
pub fn closer_wanted() -> bool {
    let mut shelf = shelf();
    let wanted = !shelf.closing && shelf.files.as_ref().is_some_and(|files| files.len() > 0);
    shelf.closing |= wanted;
    wanted
}

/// Waits until no read has used the files for [`keep`], then closes them
/// all (on a blocking thread: hundreds of `close`).
pub async fn close_when_unused() {
    loop {
        let now = Instant::now();
        // When to look again, or the files to close.
        let due = {
            let mut shelf = shelf();
            match shelf.last_read {
                _ if shelf.lent => Ok(now + keep()),
                Some(last) if now < last + keep() => Ok(last + keep()),
                _ => {
                    shelf.closing = false;
                    Err(shelf.files.take())
                }
            }
        };
        match due {
            Ok(due) => tokio::time::sleep_until(due.into()).await,
            Err(files) => {
                if let Some(files) = files {
                    let _ = tokio::task::spawn_blocking(move || drop(files)).await;
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn open(path: &std::path::Path) -> impl FnOnce() -> io::Result<File> + '_ {
        move || File::open(path)
    }

    #[test]
    fn a_kept_file_is_read_again_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("figure");
        std::fs::write(&path, "12\n").unwrap();
        let mut kept: Kept<String> = Kept::new(1);
        let mut buffer = Vec::new();
        let now = Instant::now();
        assert_eq!(kept.read("a", &mut buffer, open(&path), now), Some(3));
        assert_eq!(kept.len(), 1);
        // Rewritten in place: the kept file reads the new text, and is
        // not opened again.
        let mut file = File::options().write(true).open(&path).unwrap();
        file.write_all(b"345\n").unwrap();
        let never = || -> io::Result<File> { panic!("opened again") };
        assert_eq!(kept.read("a", &mut buffer, never, now), Some(4));
        assert_eq!(&buffer[..4], b"345\n");
    }

    #[test]
    fn a_file_gone_from_its_process_is_opened_again_by_path() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let path = format!("/proc/{}/stat", child.id());
        let mut kept: Kept<u32> = Kept::new(4);
        let mut buffer = Vec::new();
        let now = Instant::now();
        let opens = std::cell::Cell::new(0);
        let open = || {
            opens.set(opens.get() + 1);
            File::open(&path)
        };
        assert!(kept.read(&child.id(), &mut buffer, open, now).is_some());
        assert!(kept.read(&child.id(), &mut buffer, open, now).is_some());
        assert_eq!(opens.get(), 1, "read again without opening");
        child.kill().unwrap();
        child.wait().unwrap();
        // Reaped: the kept file fails, so the path is tried again (and
        // names no process now).
        assert_eq!(kept.read(&child.id(), &mut buffer, open, now), None);
        assert_eq!(opens.get(), 2);
        assert_eq!(kept.len(), 0, "the dead process's file is closed");
    }

    #[test]
    fn files_beyond_the_room_are_not_kept_and_unread_ones_are_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("figure");
        std::fs::write(&path, "1\n").unwrap();
        let mut kept: Kept<u32> = Kept::new(2);
        let mut buffer = Vec::new();
        let start = Instant::now();
        for key in 0..3 {
            assert_eq!(kept.read(&key, &mut buffer, open(&path), start), Some(2));
        }
        assert_eq!(kept.len(), 2, "the third is read, not kept");
        let later = start + Duration::from_secs(1);
        assert!(kept.read(&0, &mut buffer, open(&path), later).is_some());
        kept.close_unread_since(later);
        assert_eq!(kept.len(), 1, "only the one read since is kept");
    }

    #[test]
    fn reads_done_elsewhere_are_settled_in_the_map() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("figure");
        std::fs::write(&path, "7\n").unwrap();
        let mut kept: Kept<u32> = Kept::new(4);
        let mut buffer = Vec::new();
        let now = Instant::now();
        let (length, outcome) = read(kept.file(&1), &mut buffer, open(&path));
        assert_eq!(length, Some(2));
        assert!(matches!(outcome, Outcome::Opened(_)));
        kept.settle(&1, outcome, now);
        let (length, outcome) = read(kept.file(&1), &mut buffer, || panic!("opened again"));
        assert_eq!(length, Some(2));
        assert!(matches!(outcome, Outcome::Read));
        kept.settle(&1, outcome, now);
        assert_eq!(kept.len(), 1);
        let missing = dir.path().join("missing");
        let (length, outcome) = read(None, &mut buffer, open(&missing));
        assert_eq!(length, None);
        kept.settle(&1, outcome, now);
        assert_eq!(kept.len(), 0, "a file that cannot be read is not kept");
    }

    #[test]
    fn a_long_text_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list");
        let text: String = (0..3000).map(|pid| format!("{pid}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let mut buffer = Vec::new();
        let length = fill(&mut buffer, &File::open(&path).unwrap()).unwrap();
        assert_eq!(&buffer[..length], text.as_bytes());
        // Again, into the grown buffer.
        let length = fill(&mut buffer, &File::open(&path).unwrap()).unwrap();
        assert_eq!(length, text.len());
    }
}
