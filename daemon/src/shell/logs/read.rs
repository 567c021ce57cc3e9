//! Reading log files back, for the `logs` request.
//!
//! Everything is read from the files herdd wrote (`file.rs`), never from
//! memory: a reader costs herdd only the reads it asks for, and a slow one
//! never makes herdd hold lines for it.
//!
//! - History: an instance's files, oldest first (`.log.N` … `.log.1`,
//!   `.log`), opened all at once so that a rotation while they are read
//!   changes nothing; with `-n`, each is scanned backwards from its end for
//!   the last lines. Several instances are merged by timestamp.
//! - Following: a [`Cursor`] per instance holds the open file it reads and
//!   how often the instance's log had rotated when that file was current
//!   (the hub counts rotations). When the file is read to its end and the
//!   log has rotated since, the file is complete: the cursor moves on to the
//!   next newer file, found by its number (`.log.<rotations - r>`). Files are
//!   opened and rotations counted in one step, with no await in between, on
//!   the thread that writes and rotates: a cursor never sees a rotation
//!   half done, so nothing is read twice or skipped — unless the reader fell
//!   so far behind that files were deleted (more than `log_keep` rotations),
//!   which it is told as a gap.

use super::file::{rotated, STAMP_LEN};
use super::{log_path, LogHub};
use herd_common::protocol::{LogLine, OutputStream};
use std::collections::{BinaryHeap, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Most rotated files looked for (`log_keep` is at most 1000).
const MAX_ROTATED: u64 = 1000;

/// Bytes read from a file at a time.
const CHUNK: usize = 64 * 1024;

/// A line longer than this (not written by herdd) is cut.
const MAX_RAW_LINE: usize = 256 * 1024;

/// Parses one line of a log file (without its newline):
/// `TIME STREAM TEXT`, `STREAM` being `stdout`, `stderr`, or either with `+`
/// (partial). A line herdd did not write is passed on whole as stdout text,
/// with an empty time.
pub fn parse(instance: &str, raw: &[u8]) -> LogLine {
    const TAGS: [(&[u8], OutputStream, bool); 4] = [
        (b"stdout ", OutputStream::Stdout, false),
        (b"stderr ", OutputStream::Stderr, false),
        (b"stdout+ ", OutputStream::Stdout, true),
        (b"stderr+ ", OutputStream::Stderr, true),
    ];
    if raw.len() > STAMP_LEN && raw[STAMP_LEN] == b' ' {
        let rest = &raw[STAMP_LEN + 1..];
        for (tag, stream, partial) in TAGS {
            if let Some(text) = rest.strip_prefix(tag) {
                return LogLine {
                    time: String::from_utf8_lossy(&raw[..STAMP_LEN]).into_owned(),
                    instance: instance.to_string(),
                    stream,
                    text: String::from_utf8_lossy(text).into_owned(),
                    partial,
                };
            }
        }
    }
    LogLine {
        time: String::new(),
        instance: instance.to_string(),
        stream: OutputStream::Stdout,
        text: String::from_utf8_lossy(raw).into_owned(),
        partial: false,
    }
}

/// The time of a raw line, for merging (empty if it has none).
fn time_of(raw: &[u8]) -> &[u8] {
    if raw.len() > STAMP_LEN && raw[STAMP_LEN] == b' ' {
        &raw[..STAMP_LEN]
    } else {
        &[]
    }
}

/// A byte range of an open file.
#[derive(Debug, Clone)]
pub struct Segment {
    file: Arc<File>,
    start: u64,
    end: u64,
}

/// The instances that have log files in `<dir>/<unit>/`, sorted.
pub fn instances_on_disk(dir: &Path, unit: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join(unit)) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let instance = name.strip_suffix(".log")?;
            let ours = instance == unit
                || instance
                    .strip_prefix(unit)
                    .and_then(|rest| rest.strip_prefix('@'))
                    .is_some_and(|index| index.parse::<u32>().is_ok());
            ours.then(|| instance.to_string())
        })
        .collect();
    found.sort();
    found
}

/// Where one instance's log is read from: what is on disk now (history),
/// and where following goes on from.
pub struct Snapshot {
    /// Oldest first; the last one is the current file, up to its size now.
    pub history: Vec<Segment>,
    pub cursor: Cursor,
}

/// Opens every file of `instance`'s log as it is now. Must run without an
/// await between it and the next [`Cursor::poll`] set-up (see the module doc).
pub fn snapshot(hub: &LogHub, dir: &Path, unit: &str, instance: &str) -> Snapshot {
    let (path, rotations) = hub
        .position(instance)
        .unwrap_or_else(|| (log_path(dir, unit, instance), 0));
    let mut history = Vec::new();
    let mut n = 1;
    let mut older = Vec::new();
    while n <= MAX_ROTATED {
        match File::open(rotated(&path, n)) {
            Ok(file) => older.push(file),
            Err(_) => break,
        }
        n += 1;
    }
    for file in older.into_iter().rev() {
        if let Some(segment) = whole(file) {
            history.push(segment);
        }
    }
    let mut cursor = Cursor {
        instance: instance.to_string(),
        unit: unit.to_string(),
        fallback: path.clone(),
        rotation: rotations,
        file: None,
        offset: 0,
        pending: Vec::new(),
    };
    if let Ok(file) = File::open(&path) {
        if let Some(segment) = whole(file) {
            cursor.file = Some(segment.file.clone());
            cursor.offset = segment.end;
            history.push(segment);
        }
    }
    Snapshot { history, cursor }
}

fn whole(file: File) -> Option<Segment> {
    let end = file.metadata().ok()?.len();
    Some(Segment {
        file: Arc::new(file),
        start: 0,
        end,
    })
}

/// The last `n` lines of `segments` (oldest first): the segments trimmed to
/// them, and how many lines that is (fewer than `n` if there are fewer).
pub fn tail(segments: Vec<Segment>, n: u64) -> (Vec<Segment>, u64) {
    let mut kept = VecDeque::new();
    let mut need = n;
    for segment in segments.into_iter().rev() {
        if need == 0 {
            break;
        }
        let (start, lines) = last_lines(&segment, need).unwrap_or((segment.end, 0));
        need -= lines;
        kept.push_front(Segment { start, ..segment });
    }
    (kept.into(), n - need)
}

/// Where the last `need` lines of `segment` start, and how many lines
/// there are from there (at most `need`).
fn last_lines(segment: &Segment, need: u64) -> io::Result<(u64, u64)> {
    if segment.end <= segment.start {
        return Ok((segment.start, 0));
    }
    let mut buffer = vec![0u8; CHUNK];
    // The newline ending the last line does not start a line.
    let mut last = [0u8; 1];
    segment.file.read_exact_at(&mut last, segment.end - 1)?;
    let mut high = if last[0] == b'\n' {
        segment.end - 1
    } else {
        segment.end
    };
    let mut found = 0;
    while high > segment.start {
        let low = high.saturating_sub(CHUNK as u64).max(segment.start);
        let part = &mut buffer[..(high - low) as usize];
        segment.file.read_exact_at(part, low)?;
        for at in memchr::memrchr_iter(b'\n', part) {
            found += 1;
            if found == need {
                return Ok((low + at as u64 + 1, need));
            }
        }
        high = low;
    }
    Ok((segment.start, found + 1))
}

/// Reads the lines of segments in order.
pub struct LineReader {
    segments: VecDeque<Segment>,
    buffer: Vec<u8>,
    /// `buffer[head..]` is read but not yet returned.
    head: usize,
    chunk: usize,
}

impl LineReader {
    /// `chunk`: bytes read at a time (smaller when many readers run at once).
    pub fn new(segments: Vec<Segment>, chunk: usize) -> LineReader {
        LineReader {
            segments: segments.into(),
            buffer: Vec::new(),
            head: 0,
            chunk,
        }
    }

    /// The next line without its newline; `None` at the end of the last segment.
    pub fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(at) = memchr::memchr(b'\n', &self.buffer[self.head..]) {
                let line = self.buffer[self.head..self.head + at].to_vec();
                self.head += at + 1;
                return Ok(Some(line));
            }
            if self.buffer.len() - self.head >= MAX_RAW_LINE {
                let line = self.buffer[self.head..].to_vec();
                self.buffer.clear();
                self.head = 0;
                return Ok(Some(line));
            }
            self.buffer.drain(..self.head);
            self.head = 0;
            let Some(segment) = self.segments.front_mut() else {
                return Ok(None);
            };
            if segment.start >= segment.end {
                self.segments.pop_front();
                if !self.buffer.is_empty() {
                    // The file did not end with a newline.
                    return Ok(Some(std::mem::take(&mut self.buffer)));
                }
                continue;
            }
            let want = (segment.end - segment.start).min(self.chunk as u64) as usize;
            let old = self.buffer.len();
            self.buffer.resize(old + want, 0);
            let n = segment
                .file
                .read_at(&mut self.buffer[old..], segment.start)?;
            self.buffer.truncate(old + n);
            if n == 0 {
                segment.start = segment.end; // shorter than it was: truncated behind us
            } else {
                segment.start += n as u64;
            }
        }
    }
}

/// The next line of one source: (its time, the source's index, the line).
/// Ordered by time, then by source, so ties keep the sources' order.
type Head = std::cmp::Reverse<(Vec<u8>, usize, Vec<u8>)>;

/// Merges the lines of several instances by time, oldest first (ties:
/// in the order the sources were given).
pub struct Merge {
    sources: Vec<(String, LineReader)>,
    /// The next line of each source, smallest time on top.
    heads: BinaryHeap<Head>,
    /// Lines still to skip before the first one returned.
    skip: u64,
}

impl Merge {
    /// `sources`: (instance, its reader). `skip` lines are dropped first
    /// (for `-n`: all but the last N of the merged lines).
    pub fn new(sources: Vec<(String, LineReader)>, skip: u64) -> io::Result<Merge> {
        let mut merge = Merge {
            sources,
            heads: BinaryHeap::new(),
            skip,
        };
        for index in 0..merge.sources.len() {
            merge.refill(index)?;
        }
        Ok(merge)
    }

    fn refill(&mut self, index: usize) -> io::Result<()> {
        if let Some(raw) = self.sources[index].1.next_line()? {
            let time = time_of(&raw).to_vec();
            self.heads.push(std::cmp::Reverse((time, index, raw)));
        }
        Ok(())
    }

    pub fn next_line(&mut self) -> io::Result<Option<LogLine>> {
        loop {
            let Some(std::cmp::Reverse((_, index, raw))) = self.heads.pop() else {
                return Ok(None);
            };
            self.refill(index)?;
            if self.skip > 0 {
                self.skip -= 1;
                continue;
            }
            return Ok(Some(parse(&self.sources[index].0, &raw)));
        }
    }
}

/// What a poll of a [`Cursor`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Polled {
    /// It stopped at `budget`: there is more to read now.
    pub more: bool,
    /// Rotated files that were deleted before they could be read.
    pub missed_files: u64,
}

/// Follows one instance's log across rotations (see the module doc).
pub struct Cursor {
    pub instance: String,
    pub unit: String,
    /// The current file's path if the hub does not know the instance.
    fallback: PathBuf,
    /// The hub's rotation count when `file` was (or will be) the current file.
    rotation: u64,
    file: Option<Arc<File>>,
    offset: u64,
    /// An unfinished line at the end of what was read.
    pending: Vec<u8>,
}

impl Cursor {
    /// A cursor for an instance that had no log file when following began
    /// (the hub has just started writing it): from the beginning of the
    /// first file herdd wrote for it.
    pub fn from_start(dir: &Path, unit: &str, instance: &str) -> Cursor {
        Cursor {
            instance: instance.to_string(),
            unit: unit.to_string(),
            fallback: log_path(dir, unit, instance),
            rotation: 0,
            file: None,
            offset: 0,
            pending: Vec::new(),
        }
    }

    /// Reads what was written since the last poll, up to about `budget`
    /// bytes, into `lines`. No await may come between this and the file
    /// operations it makes (it has none).
    pub fn poll(&mut self, hub: &LogHub, budget: usize, lines: &mut Vec<LogLine>) -> Polled {
        let mut polled = Polled::default();
        let mut read = 0;
        let mut buffer = vec![0u8; CHUNK.min(budget.max(1))];
        loop {
            let (path, rotations) = hub
                .position(&self.instance)
                .unwrap_or_else(|| (self.fallback.clone(), 0));
            if self.file.is_none() {
                let rotation = self.rotation.min(rotations);
                self.rotation = rotation;
                let name = if rotation == rotations {
                    path.clone()
                } else {
                    rotated(&path, rotations - rotation)
                };
                match File::open(&name) {
                    Ok(file) => {
                        self.file = Some(Arc::new(file));
                        self.offset = 0;
                    }
                    Err(_) if rotation < rotations => {
                        // Rotated away (or never written): on to the next.
                        polled.missed_files += 1;
                        self.rotation += 1;
                        continue;
                    }
                    Err(_) => return polled, // not written yet
                }
            }
            let Some(file) = &self.file else {
                return polled;
            };
            // An error reads as the end of the file: tried again next time.
            let n = file.read_at(&mut buffer, self.offset).unwrap_or_default();
            if n > 0 {
                self.offset += n as u64;
                read += n;
                self.split(&buffer[..n], lines);
                if read >= budget {
                    polled.more = true;
                    return polled;
                }
                continue;
            }
            // At the end of this file.
            if self.rotation < rotations {
                // Rotated since: complete. On to the next newer one.
                if !self.pending.is_empty() {
                    let raw = std::mem::take(&mut self.pending);
                    lines.push(parse(&self.instance, &raw));
                }
                self.file = None;
                self.rotation += 1;
                continue;
            }
            return polled;
        }
    }

    fn split(&mut self, mut data: &[u8], lines: &mut Vec<LogLine>) {
        while let Some(at) = memchr::memchr(b'\n', data) {
            if self.pending.is_empty() {
                lines.push(parse(&self.instance, &data[..at]));
            } else {
                self.pending.extend_from_slice(&data[..at]);
                let raw = std::mem::take(&mut self.pending);
                lines.push(parse(&self.instance, &raw));
            }
            data = &data[at + 1..];
        }
        self.pending.extend_from_slice(data);
        if self.pending.len() >= MAX_RAW_LINE {
            let raw = std::mem::take(&mut self.pending);
            lines.push(parse(&self.instance, &raw));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment_of(dir: &Path, name: &str, text: &str) -> Segment {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        whole(File::open(path).unwrap()).unwrap()
    }

    fn all(mut reader: LineReader) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            lines.push(String::from_utf8(line).unwrap());
        }
        lines
    }

    const T: &str = "2026-11-29T17:00:00.123Z";

    #[test]
    fn parses_what_the_writer_writes() {
        let line = parse("web@2", format!("{T} stderr+ half a li").as_bytes());
        assert_eq!(
            line,
            LogLine {
                time: T.into(),
                instance: "web@2".into(),
                stream: OutputStream::Stderr,
                text: "half a li".into(),
                partial: true,
            }
        );
        let line = parse("db", format!("{T} stdout ").as_bytes());
        assert_eq!((line.text.as_str(), line.partial), ("", false));
        let foreign = parse("db", b"not ours \xff");
        assert_eq!(foreign.time, "");
        assert_eq!(foreign.text, "not ours \u{fffd}");
    }

    #[test]
    fn tails_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let old = segment_of(dir.path(), "a.log.1", "1\n2\n3\n");
        let new = segment_of(dir.path(), "a.log", "4\n5\n");
        let read = |n| {
            let (segments, count) = tail(vec![old.clone(), new.clone()], n);
            (all(LineReader::new(segments, 2)), count)
        };
        assert_eq!(read(1), (vec!["5".to_string()], 1));
        assert_eq!(read(2), (vec!["4".into(), "5".into()], 2));
        assert_eq!(read(3), (vec!["3".into(), "4".into(), "5".into()], 3));
        assert_eq!(read(10).1, 5);
        assert_eq!(read(10).0.len(), 5);
        assert_eq!(read(0), (vec![], 0));
        // A file without its last newline, and an empty one.
        let odd = segment_of(dir.path(), "b.log", "x\ny");
        let empty = segment_of(dir.path(), "c.log", "");
        let (segments, count) = tail(vec![odd, empty], 1);
        assert_eq!(
            (all(LineReader::new(segments, 64)), count),
            (vec!["y".into()], 1)
        );
    }

    #[test]
    fn long_tails_scan_several_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
        let segment = segment_of(dir.path(), "a.log", &text);
        let (segments, count) = tail(vec![segment], 30_000);
        assert_eq!(count, 30_000);
        let lines = all(LineReader::new(segments, 4096));
        assert_eq!(lines.first().unwrap(), "line 20000");
        assert_eq!(lines.last().unwrap(), "line 49999");
    }

    #[test]
    fn merges_by_time_and_skips() {
        let dir = tempfile::tempdir().unwrap();
        let a = segment_of(
            dir.path(),
            "a.log",
            "2026-01-01T00:00:00.001Z stdout a1\n2026-01-01T00:00:00.004Z stdout a2\n",
        );
        let b = segment_of(
            dir.path(),
            "b.log",
            "2026-01-01T00:00:00.002Z stderr b1\n2026-01-01T00:00:00.004Z stdout b2\n",
        );
        let sources = || {
            vec![
                ("web@0".to_string(), LineReader::new(vec![a.clone()], 64)),
                ("web@1".to_string(), LineReader::new(vec![b.clone()], 64)),
            ]
        };
        let collect = |mut merge: Merge| {
            let mut out = Vec::new();
            while let Some(line) = merge.next_line().unwrap() {
                out.push(format!("{} {}", line.instance, line.text));
            }
            out
        };
        assert_eq!(
            collect(Merge::new(sources(), 0).unwrap()),
            ["web@0 a1", "web@1 b1", "web@0 a2", "web@1 b2"]
        );
        assert_eq!(collect(Merge::new(sources(), 3).unwrap()), ["web@1 b2"]);
    }

    #[test]
    fn instances_on_disk_belong_to_the_unit() {
        let dir = tempfile::tempdir().unwrap();
        let unit = dir.path().join("web");
        std::fs::create_dir(&unit).unwrap();
        for name in [
            "web@0.log",
            "web@1.log",
            "web@1.log.1",
            "web.log",
            "webby@0.log",
            "x",
        ] {
            std::fs::write(unit.join(name), "").unwrap();
        }
        assert_eq!(
            instances_on_disk(dir.path(), "web"),
            ["web", "web@0", "web@1"]
        );
        assert!(instances_on_disk(dir.path(), "none").is_empty());
    }
}
