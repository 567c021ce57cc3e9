//! Writing one instance's log file: lines, timestamps, rotation, failures.
//!
//! Format: one line per line of output,
//! `2026-11-29T17:00:00.123Z stdout text` — the time herdd read it (UTC,
//! milliseconds), the stream, the bytes exactly as written (binary included).
//! A line that did not end with a newline — the process exited mid-line, or
//! the line reached [`MAX_LINE`] bytes and goes on in the next line of its
//! stream — has the stream tag `stdout+` / `stderr+`.
//!
//! Rotation is by size: before a line would take `<instance>.log` past
//! `max_size`, it becomes `.log.1`, `.log.1` becomes `.log.2`, ..., and
//! `.log.<keep>` is dropped. A line is never split across files, so a file
//! exceeds `max_size` only when a single line is longer.
//!
//! Every write is a plain `write(2)` of whole lines (one per chunk read from
//! a pipe, usually), so a reader on the same thread never sees half a line.
//! When the file cannot be opened or written (unwritable or full log dir),
//! the output is counted and discarded, herdd's log and `status` say why
//! once, and writing is retried every [`RETRY`].

use super::Notifier;
use crate::core::InstanceId;
use herd_common::protocol::OutputStream;
use nix::errno::Errno;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use tracing::{info, warn};

/// Longest line kept whole; a longer one is cut into pieces this long,
/// each but the last marked partial.
pub const MAX_LINE: usize = 64 * 1024;

/// Length of a timestamp: `2026-11-29T17:00:00.123Z`.
pub const STAMP_LEN: usize = 24;

/// How long after a failed open or write herdd tries again.
pub const RETRY: Duration = Duration::from_secs(5);

/// A line's timestamp, formatted once per chunk read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(pub [u8; STAMP_LEN]);

impl Stamp {
    pub fn now() -> Stamp {
        Stamp::at(SystemTime::now())
    }

    pub fn at(time: SystemTime) -> Stamp {
        let mut bytes = [b'0'; STAMP_LEN];
        let text = humantime::format_rfc3339_millis(time).to_string();
        let n = text.len().min(STAMP_LEN);
        bytes[..n].copy_from_slice(&text.as_bytes()[..n]);
        Stamp(bytes)
    }
}

/// Size-based rotation settings of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate before the file would grow past this many bytes.
    pub max_size: u64,
    /// Rotated files kept: `.log.1` … `.log.<keep>`.
    pub keep: u32,
}

/// The stream tag of a line: `stdout`, or `stdout+` when no newline followed.
pub fn tag(stream: OutputStream, partial: bool) -> &'static [u8] {
    match (stream, partial) {
        (OutputStream::Stdout, false) => b"stdout",
        (OutputStream::Stdout, true) => b"stdout+",
        (OutputStream::Stderr, false) => b"stderr",
        (OutputStream::Stderr, true) => b"stderr+",
    }
}

/// `<path>.<n>`: the n-th most recent rotated file.
pub fn rotated(path: &Path, n: u64) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    name.into()
}

/// Why writing fails, since when, and what was lost meanwhile.
#[derive(Debug)]
struct Failure {
    message: String,
    retry_at: Instant,
    discarded: u64,
}

/// One instance's log file, shared by the pipes of all its processes
/// (stdout and stderr, and those of a previous run a grandchild still holds).
#[derive(Debug)]
pub struct LogFile {
    /// For `Input::LogError`.
    id: InstanceId,
    instance: String,
    /// `<log_dir>/<unit>/<instance>.log`.
    path: PathBuf,
    /// Open while some pipe writes here.
    file: Option<File>,
    /// Bytes in the current file.
    size: u64,
    /// How often this file was rotated since herdd started: `logs -f`
    /// readers use it to find the file they were reading.
    rotations: u64,
    rotation: Rotation,
    /// Pipes writing here; the file is closed when the last one ends.
    attached: usize,
    failure: Option<Failure>,
    notifier: Notifier,
}

impl LogFile {
    pub fn new(
        id: InstanceId,
        instance: String,
        path: PathBuf,
        rotation: Rotation,
        notifier: Notifier,
    ) -> LogFile {
        LogFile {
            id,
            instance,
            path,
            file: None,
            size: 0,
            rotations: 0,
            rotation,
            attached: 0,
            failure: None,
            notifier,
        }
    }

    pub fn id(&self) -> &InstanceId {
        &self.id
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn rotations(&self) -> u64 {
        self.rotations
    }

    /// New settings from a reload. A new path takes effect at once (the old
    /// file is closed; the next line opens the new one).
    pub fn reconfigure(&mut self, id: InstanceId, path: PathBuf, rotation: Rotation) {
        self.id = id;
        self.rotation = rotation;
        if path != self.path {
            self.path = path;
            self.file = None;
        }
    }

    /// A pipe starts writing here.
    pub fn attach(&mut self) {
        self.attached += 1;
    }

    /// A pipe has ended; the last one closes the file (it is reopened, in
    /// append mode, when the instance runs again).
    pub fn detach(&mut self) {
        self.attached = self.attached.saturating_sub(1);
        if self.attached == 0 {
            self.file = None;
        }
    }

    /// Opens the file if it is not open and writing is not suspended after
    /// a failure; so `size` is right before the first line is placed.
    fn open_if_closed(&mut self) {
        if self.file.is_some() {
            return;
        }
        if let Some(failure) = &self.failure {
            if Instant::now() < failure.retry_at {
                return;
            }
        }
        match open(&self.path) {
            Ok((file, size)) => {
                self.file = Some(file);
                self.size = size;
            }
            Err(err) => self.fail("cannot open", &err),
        }
    }

    /// Places one line in `out` (the batch being built), first writing out
    /// the batch and rotating if the line would take the file past
    /// `max_size`.
    fn place(&mut self, out: &mut Vec<u8>, prefix: &Prefix, body: &[u8]) {
        let prefix = prefix.as_bytes();
        let length = (prefix.len() + body.len() + 1) as u64;
        let pending = self.size + out.len() as u64;
        if pending + length > self.rotation.max_size && pending > 0 && self.file.is_some() {
            self.write_out(out);
            if self.file.is_some() {
                self.rotate();
            }
        }
        out.extend_from_slice(prefix);
        out.extend_from_slice(body);
        out.push(b'\n');
    }

    /// Writes the batch (or counts it as discarded) and empties it.
    fn write_out(&mut self, out: &mut Vec<u8>) {
        if out.is_empty() {
            return;
        }
        let length = out.len() as u64;
        let Some(file) = &mut self.file else {
            if let Some(failure) = &mut self.failure {
                failure.discarded += length;
            }
            out.clear();
            return;
        };
        match file.write_all(out) {
            Ok(()) => {
                self.size += length;
                if let Some(failure) = self.failure.take() {
                    info!(
                        instance = %self.instance,
                        path = %self.path.display(),
                        discarded_bytes = failure.discarded,
                        "log file writable again"
                    );
                    self.notifier.log_error(&self.id, None);
                }
                self.notifier.written();
            }
            Err(err) => {
                // What was written of it is unknown: reopen (and re-read the size) later.
                self.file = None;
                self.fail("cannot write", &err);
                if let Some(failure) = &mut self.failure {
                    failure.discarded += length;
                }
            }
        }
        out.clear();
    }

    /// `.log` → `.log.1` → … → `.log.<keep>` (dropped); the next line opens a new `.log`.
    fn rotate(&mut self) {
        self.file = None;
        let result = (|| {
            let keep = u64::from(self.rotation.keep);
            if keep == 0 {
                ignore_missing(std::fs::remove_file(&self.path))?;
            } else {
                // Every rename goes to a free name: renaming over an existing
                // file makes ext4 (auto_da_alloc) write the renamed file out
                // at once, which made each rotation cost milliseconds.
                ignore_missing(std::fs::remove_file(rotated(&self.path, keep)))?;
                for n in (1..keep).rev() {
                    let from = rotated(&self.path, n);
                    ignore_missing(std::fs::rename(&from, rotated(&self.path, n + 1)))?;
                }
                std::fs::rename(&self.path, rotated(&self.path, 1))?;
            }
            // Left over from a larger `log_keep` before a reload.
            let mut n = keep + 1;
            while std::fs::remove_file(rotated(&self.path, n)).is_ok() {
                n += 1;
            }
            Ok(())
        })();
        self.rotations += 1;
        self.size = 0;
        match result {
            Ok(()) => self.open_if_closed(),
            // Appending on would let the file grow without bound.
            Err(err) => self.fail("cannot rotate", &err),
        }
        self.notifier.written();
    }

    fn fail(&mut self, what: &str, err: &io::Error) {
        let message = format!("{what} {}: {}", self.path.display(), describe(err));
        let retry_at = Instant::now() + RETRY;
        match &mut self.failure {
            Some(failure) => {
                failure.retry_at = retry_at;
                if failure.message != message {
                    failure.message = message.clone();
                    self.notifier.log_error(&self.id, Some(message));
                }
            }
            None => {
                warn!(
                    instance = %self.instance,
                    error = %message,
                    "cannot write the log; its output is discarded until writing works again"
                );
                self.notifier.log_error(&self.id, Some(message.clone()));
                self.failure = Some(Failure {
                    message,
                    retry_at,
                    discarded: 0,
                });
            }
        }
    }
}

impl LineSink for LogFile {
    fn prepare(&mut self) {
        self.open_if_closed();
    }

    fn line(&mut self, out: &mut Vec<u8>, prefix: &Prefix, body: &[u8]) {
        self.place(out, prefix, body);
    }

    fn flush(&mut self, out: &mut Vec<u8>) {
        self.write_out(out);
    }
}

/// Where a [`LineSplitter`] puts the lines it cuts: a log file, or lines
/// forwarded to journald or herdd's stdout (`forward.rs`).
pub trait LineSink {
    /// Called before the lines of a chunk are placed.
    fn prepare(&mut self);
    /// Places one line (`body`, without its newline) in `out`, the batch
    /// being built from one chunk.
    fn line(&mut self, out: &mut Vec<u8>, prefix: &Prefix, body: &[u8]);
    /// Sends the batch on and empties it.
    fn flush(&mut self, out: &mut Vec<u8>);
}

/// Creates the directory and opens (appends to) the file; returns its size.
fn open(path: &Path) -> io::Result<(File, u64)> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        // A symlink planted in the log dir must not redirect herdd's writes.
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// "Permission denied" rather than "Permission denied (os error 13)".
fn describe(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => Errno::from_raw(code).desc().to_string(),
        None => err.to_string(),
    }
}

/// `TIME TAG `: what comes before the text of a line, built once per chunk.
pub struct Prefix {
    bytes: [u8; STAMP_LEN + 9],
    len: usize,
}

impl Prefix {
    pub fn new(time: &Stamp, tag: &[u8]) -> Prefix {
        let mut bytes = [b' '; STAMP_LEN + 9];
        bytes[..STAMP_LEN].copy_from_slice(&time.0);
        let end = STAMP_LEN + 1 + tag.len();
        bytes[STAMP_LEN + 1..end].copy_from_slice(tag);
        Prefix {
            bytes,
            len: end + 1,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Cuts one pipe's bytes into lines for a [`LineSink`], keeping an
/// unfinished line until its newline comes (or it grows to [`MAX_LINE`],
/// or the process exits).
#[derive(Debug)]
pub struct LineSplitter {
    stream: OutputStream,
    partial: Vec<u8>,
    /// When the unfinished line began.
    partial_since: Stamp,
}

impl LineSplitter {
    pub fn new(stream: OutputStream) -> LineSplitter {
        LineSplitter {
            stream,
            partial: Vec::new(),
            partial_since: Stamp([b'0'; STAMP_LEN]),
        }
    }

    /// Writes the complete lines of `data` (read at `now`) to `file`;
    /// `out` is scratch space, empty before and after.
    pub fn feed<S: LineSink>(&mut self, file: &mut S, now: &Stamp, data: &[u8], out: &mut Vec<u8>) {
        file.prepare();
        let complete = Prefix::new(now, tag(self.stream, false));
        let mut rest = data;
        if !self.partial.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(end) => {
                    self.partial.extend_from_slice(&rest[..end]);
                    rest = &rest[end + 1..];
                    self.emit_partial(file, out, false);
                }
                None => {
                    self.partial.extend_from_slice(rest);
                    rest = &[];
                }
            }
        }
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', rest) {
            file.line(out, &complete, &rest[start..end]);
            start = end + 1;
        }
        rest = &rest[start..];
        if !rest.is_empty() {
            if self.partial.is_empty() {
                self.partial_since = *now;
            }
            self.partial.extend_from_slice(rest);
        }
        self.cut_long(file, out, now);
        file.flush(out);
    }

    /// The process exited (or the pipe ended): an unfinished line is
    /// written, marked partial.
    pub fn finish<S: LineSink>(&mut self, file: &mut S, out: &mut Vec<u8>) {
        if self.partial.is_empty() {
            return;
        }
        file.prepare();
        self.emit_partial(file, out, true);
        file.flush(out);
    }

    /// Writes the kept line: complete (its newline came) or partial.
    fn emit_partial<S: LineSink>(&mut self, file: &mut S, out: &mut Vec<u8>, partial: bool) {
        if partial || self.partial.len() <= MAX_LINE {
            let prefix = Prefix::new(&self.partial_since, tag(self.stream, partial));
            file.line(out, &prefix, &self.partial);
        } else {
            // Completed past the limit: pieces, all but the last marked.
            let pieces = self.partial.chunks(MAX_LINE);
            let last = pieces.len() - 1;
            for (i, piece) in pieces.enumerate() {
                let prefix = Prefix::new(&self.partial_since, tag(self.stream, i < last));
                file.line(out, &prefix, piece);
            }
        }
        self.partial.clear();
        if self.partial.capacity() > 4096 {
            // Do not keep 64 KiB per quiet pipe.
            self.partial.shrink_to(1024);
        }
    }

    /// An unfinished line that reached [`MAX_LINE`] is written in pieces
    /// marked partial; the rest waits for its newline.
    fn cut_long<S: LineSink>(&mut self, file: &mut S, out: &mut Vec<u8>, now: &Stamp) {
        if self.partial.len() < MAX_LINE {
            return;
        }
        let whole = self.partial.len() / MAX_LINE * MAX_LINE;
        let prefix = Prefix::new(&self.partial_since, tag(self.stream, true));
        for piece in self.partial[..whole].chunks(MAX_LINE) {
            file.line(out, &prefix, piece);
        }
        self.partial.drain(..whole);
        self.partial_since = *now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Input;
    use tokio::sync::mpsc;

    fn stamp(text: &str) -> Stamp {
        let mut bytes = [0u8; STAMP_LEN];
        bytes.copy_from_slice(text.as_bytes());
        Stamp(bytes)
    }

    const T1: &str = "2026-11-29T17:00:00.123Z";
    const T2: &str = "2026-11-29T17:00:01.000Z";

    struct Fixture {
        dir: tempfile::TempDir,
        file: LogFile,
        inputs: mpsc::UnboundedReceiver<Input>,
        out: Vec<u8>,
    }

    fn fixture(max_size: u64, keep: u32) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let (tx, inputs) = mpsc::unbounded_channel();
        let notifier = Notifier::new(tx);
        let id = InstanceId {
            unit: "web".into(),
            index: 2,
        };
        let path = dir.path().join("web").join("web@2.log");
        let file = LogFile::new(
            id,
            "web@2".into(),
            path,
            Rotation { max_size, keep },
            notifier,
        );
        Fixture {
            dir,
            file,
            inputs,
            out: Vec::new(),
        }
    }

    impl Fixture {
        fn read(&self, name: &str) -> String {
            let path = self.dir.path().join("web").join(name);
            String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
        }

        fn feed(&mut self, splitter: &mut LineSplitter, at: &str, data: &[u8]) {
            splitter.feed(&mut self.file, &stamp(at), data, &mut self.out);
            assert!(self.out.is_empty());
        }

        fn files(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(self.dir.path().join("web"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    #[test]
    fn stamps_are_rfc3339_utc_milliseconds() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_971_600_123);
        assert_eq!(&Stamp::at(time).0, b"2026-11-29T17:00:00.123Z");
        assert_eq!(Stamp::now().0.len(), STAMP_LEN);
    }

    #[test]
    fn lines_get_a_timestamp_and_their_stream() {
        let mut f = fixture(1 << 20, 5);
        let mut out = LineSplitter::new(OutputStream::Stdout);
        let mut err = LineSplitter::new(OutputStream::Stderr);
        f.feed(&mut out, T1, b"one\ntwo\n");
        f.feed(&mut err, T1, b"oops\n");
        f.feed(&mut out, T2, b"\nthree\n");
        assert_eq!(
            f.read("web@2.log"),
            format!(
                "{T1} stdout one\n{T1} stdout two\n{T1} stderr oops\n{T2} stdout \n{T2} stdout three\n"
            )
        );
    }

    #[test]
    fn partial_lines_wait_for_their_newline_and_keep_their_start_time() {
        let mut f = fixture(1 << 20, 5);
        let mut out = LineSplitter::new(OutputStream::Stdout);
        let mut err = LineSplitter::new(OutputStream::Stderr);
        f.feed(&mut out, T1, b"hel");
        f.feed(&mut err, T1, b"error in between\n");
        f.feed(&mut out, T2, b"lo\nwor");
        f.feed(&mut out, T2, b"ld");
        assert_eq!(
            f.read("web@2.log"),
            format!("{T1} stderr error in between\n{T1} stdout hello\n")
        );
        // The process exits mid-line: the rest is written, marked.
        out.finish(&mut f.file, &mut f.out);
        out.finish(&mut f.file, &mut f.out); // nothing left: nothing written
        assert!(f
            .read("web@2.log")
            .ends_with(&format!("{T2} stdout+ world\n")));
    }

    #[test]
    fn long_lines_are_cut_at_64_kib_and_marked() {
        let mut f = fixture(1 << 30, 5);
        let mut out = LineSplitter::new(OutputStream::Stdout);
        let mut data = vec![b'x'; MAX_LINE * 2 + 10];
        f.feed(&mut out, T1, &data);
        let text = f.read("web@2.log");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "two full pieces written, 10 bytes wait");
        for line in &lines {
            assert!(line.starts_with(&format!("{T1} stdout+ xxx")));
            assert_eq!(line.len(), STAMP_LEN + 9 + MAX_LINE);
        }
        data = b"yy\n".to_vec();
        f.feed(&mut out, T2, &data);
        let text = f.read("web@2.log");
        assert!(
            text.ends_with(&format!("{T1} stdout xxxxxxxxxxyy\n")),
            "the rest completes, with the time its piece began"
        );
        // A line completed past the limit in one go is cut too.
        let mut big = vec![b'z'; MAX_LINE - 1];
        f.feed(&mut out, T1, &big);
        big = vec![b'z'; 5];
        big.push(b'\n');
        f.feed(&mut out, T1, &big);
        let text = f.read("web@2.log");
        let last: Vec<&str> = text.lines().rev().take(2).collect();
        assert_eq!(last[0], format!("{T1} stdout zzzz"));
        assert!(last[1].starts_with(&format!("{T1} stdout+ zzz")));
    }

    #[test]
    fn binary_bytes_are_written_as_they_are() {
        let mut f = fixture(1 << 20, 5);
        let mut out = LineSplitter::new(OutputStream::Stdout);
        let data = b"\x00\xff\x1b[31m\r\tend\n";
        f.feed(&mut out, T1, data);
        let bytes = std::fs::read(f.dir.path().join("web/web@2.log")).unwrap();
        let mut expected = format!("{T1} stdout ").into_bytes();
        expected.extend_from_slice(data);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn rotation_keeps_at_most_keep_files_of_bounded_size() {
        let line_len = STAMP_LEN + 8 + 90 + 1; // 123 bytes with the prefix
        let mut f = fixture(1000, 3);
        let mut out = LineSplitter::new(OutputStream::Stdout);
        for i in 0..200 {
            let line = format!("{i:03}{}\n", "a".repeat(87));
            f.feed(&mut out, T1, line.as_bytes());
        }
        assert_eq!(
            f.files(),
            ["web@2.log", "web@2.log.1", "web@2.log.2", "web@2.log.3"]
        );
        let per_file = 1000 / line_len; // 8 lines
        for name in ["web@2.log.1", "web@2.log.2", "web@2.log.3"] {
            let text = f.read(name);
            assert_eq!(
                text.len(),
                per_file * line_len,
                "{name} is full but not over"
            );
        }
        // Newest last: .log holds the last lines, .log.1 the ones before.
        let current = f.read("web@2.log");
        assert!(current
            .trim_end()
            .ends_with(&format!("199{}", "a".repeat(87))));
        let previous = f.read("web@2.log.1");
        let last_previous = previous.lines().last().unwrap();
        let first_current = current.lines().next().unwrap();
        let number = |line: &str| line[STAMP_LEN + 8..STAMP_LEN + 11].parse::<u32>().unwrap();
        assert_eq!(number(last_previous) + 1, number(first_current));
        assert_eq!(f.file.rotations(), (200 / per_file - 1) as u64);
    }

    #[test]
    fn rotation_with_keep_zero_drops_the_old_file() {
        let mut f = fixture(100, 0);
        let mut out = LineSplitter::new(OutputStream::Stderr);
        for _ in 0..5 {
            f.feed(&mut out, T1, format!("{}\n", "b".repeat(60)).as_bytes());
        }
        assert_eq!(f.files(), ["web@2.log"]);
        assert_eq!(f.read("web@2.log").lines().count(), 1);
    }

    #[test]
    fn a_lowered_keep_removes_the_extra_files_at_the_next_rotation() {
        let mut f = fixture(100, 4);
        let mut out = LineSplitter::new(OutputStream::Stdout);
        for _ in 0..6 {
            f.feed(&mut out, T1, format!("{}\n", "c".repeat(60)).as_bytes());
        }
        assert_eq!(f.files().len(), 5);
        let (id, path) = (f.file.id.clone(), f.file.path.clone());
        f.file.reconfigure(
            id,
            path,
            Rotation {
                max_size: 100,
                keep: 1,
            },
        );
        f.feed(&mut out, T1, format!("{}\n", "c".repeat(60)).as_bytes());
        assert_eq!(f.files(), ["web@2.log", "web@2.log.1"]);
    }

    #[test]
    fn appends_to_an_existing_file_and_counts_its_size() {
        let mut f = fixture(200, 1);
        std::fs::create_dir_all(f.dir.path().join("web")).unwrap();
        std::fs::write(f.dir.path().join("web/web@2.log"), "x".repeat(150)).unwrap();
        let mut out = LineSplitter::new(OutputStream::Stdout);
        f.feed(&mut out, T1, b"short line that does not fit\n");
        assert_eq!(f.read("web@2.log.1"), "x".repeat(150));
        assert_eq!(
            f.read("web@2.log"),
            format!("{T1} stdout short line that does not fit\n")
        );
    }

    #[test]
    fn a_full_disk_discards_and_reports() {
        if !Path::new("/dev/full").exists() {
            return;
        }
        let (tx, mut inputs) = mpsc::unbounded_channel();
        let id = InstanceId {
            unit: "web".into(),
            index: 0,
        };
        let rotation = Rotation {
            max_size: 1 << 40,
            keep: 1,
        };
        // Every write to /dev/full fails with ENOSPC.
        let path = PathBuf::from("/dev/full");
        let mut file = LogFile::new(id, "web".into(), path, rotation, Notifier::new(tx));
        let mut lines = LineSplitter::new(OutputStream::Stdout);
        let mut out = Vec::new();
        lines.feed(&mut file, &stamp(T1), b"lost\n", &mut out);
        lines.feed(&mut file, &stamp(T1), b"lost too\n", &mut out);
        let Ok(Input::LogError {
            error: Some(error), ..
        }) = inputs.try_recv()
        else {
            panic!("the core is told");
        };
        assert_eq!(error, "cannot write /dev/full: No space left on device");
        assert!(inputs.try_recv().is_err(), "told once");
        assert_eq!(file.failure.as_ref().unwrap().discarded, 78);
    }

    #[test]
    fn an_unwritable_dir_discards_reports_once_and_recovers() {
        let mut f = fixture(1 << 20, 5);
        // A file where the unit's directory should be: nothing can be created.
        std::fs::write(f.dir.path().join("web"), "in the way").unwrap();
        let mut out = LineSplitter::new(OutputStream::Stdout);
        f.feed(&mut out, T1, b"lost\n");
        f.feed(&mut out, T1, b"lost too\n");
        let Ok(Input::LogError { instance, error }) = f.inputs.try_recv() else {
            panic!("the core is told");
        };
        assert_eq!(instance.index, 2);
        let error = error.expect("an error");
        assert!(error.contains("web@2.log"), "{error}");
        assert!(f.inputs.try_recv().is_err(), "told once");
        assert_eq!(
            f.file.failure.as_ref().unwrap().discarded,
            2 * (STAMP_LEN + 8) as u64 + 14
        );

        // Fixed; writing resumes at the next retry.
        std::fs::remove_file(f.dir.path().join("web")).unwrap();
        f.file.failure.as_mut().unwrap().retry_at = Instant::now();
        f.feed(&mut out, T2, b"kept\n");
        assert_eq!(f.read("web@2.log"), format!("{T2} stdout kept\n"));
        assert!(matches!(
            f.inputs.try_recv(),
            Ok(Input::LogError { error: None, .. })
        ));
    }
}
