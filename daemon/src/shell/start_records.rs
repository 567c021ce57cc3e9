//! `<state_dir>/journal.starts`: the ids of the tasks herdd is about to
//! start, one line each (docs/journal.md). A record must be in the kernel
//! before the spawn it protects, so that it survives any death of herdd,
//! and a busy pool starts hundreds of tasks a second: so the file is mapped
//! into herdd's memory (`MAP_SHARED`) and a record is a copy into the page
//! cache, not a `write` (which on ext4 also updates the file's times,
//! through its journal, at every call). Stores into a shared mapping are
//! the file's contents at once, whatever becomes of herdd; they reach the
//! disk with the next `fsync` of the file, which the journal's writer does
//! before each snapshot.
//!
//! The file keeps a fixed size (grown when full); what follows the records
//! is zeros, and a reader stops at the first zero byte. A record torn by
//! herdd's death (its spawn had not happened yet) has a zero in it or no
//! newline yet, so it is never read as some other task's id. Clearing the
//! records zeroes the first byte before the rest, so a reader sees either
//! every old record or none.
//!
//! The file's blocks are allocated (`fallocate`) before it is mapped. Where
//! that or the mapping fails, records are appended with `write`.

use herd_common::protocol::TaskId;
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{compiler_fence, Ordering};

/// The mapped size to start with: a few hundred records, many more than
/// one snapshot interval usually adds before they are cleared.
const INITIAL_SIZE: usize = 16 * 1024;

/// The start records, opened on first use.
pub struct StartRecords {
    path: PathBuf,
    open: Option<Open>,
}

struct Open {
    file: File,
    /// `None`: appended with `write` (the file could not be mapped).
    map: Option<Mapping>,
    /// Bytes of records in the mapping.
    len: usize,
}

/// `size` bytes of the file, mapped shared and writable.
struct Mapping {
    ptr: NonNull<u8>,
    size: usize,
}

// SAFETY: the mapping is owned by one `StartRecords`, which only the event
// loop uses; it may move between threads like any owned buffer.
unsafe impl Send for Mapping {}

impl Mapping {
    fn new(file: &File, size: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh shared mapping of `size` bytes of `file` (which
        // is at least that long), at an address the kernel picks; nothing
        // else in herdd refers to that memory.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Mapping { ptr, size })
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `size` bytes mapped readable and writable at `ptr` until
        // drop, reached only through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.size) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped; no reference into it
        // outlives `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.size);
        }
    }
}

impl StartRecords {
    pub fn new(path: PathBuf) -> StartRecords {
        StartRecords { path, open: None }
    }

    /// Appends `records` (whole lines). Once it returns they are the
    /// file's: they survive any death of herdd.
    pub fn append(&mut self, records: &[u8]) -> io::Result<()> {
        if self.open.is_none() {
            self.open = Some(Open::at(&self.path)?);
        }
        let open = self.open.as_mut().expect("opened above");
        let Some(map) = &mut open.map else {
            return open.file.write_all(records);
        };
        let end = open.len + records.len();
        if end > map.size {
            let size = (end * 2).next_multiple_of(INITIAL_SIZE);
            match reserve(&open.file, size).and_then(|()| Mapping::new(&open.file, size)) {
                Ok(bigger) => *map = bigger,
                Err(_) => {
                    // Appending with `write` from here on.
                    open.map = None;
                    open.file.set_len(open.len as u64)?;
                    return open.file.write_all(records);
                }
            }
        }
        map.bytes()[open.len..end].copy_from_slice(records);
        open.len = end;
        // The copy is done before whatever the caller does next (a spawn).
        compiler_fence(Ordering::SeqCst);
        Ok(())
    }

    /// Drops every record (a snapshot on disk covers them).
    pub fn clear(&mut self) {
        let Some(open) = &mut self.open else {
            return;
        };
        let Some(map) = &mut open.map else {
            // With O_APPEND, the next record goes to the new end: 0.
            let _ = open.file.set_len(0);
            return;
        };
        if open.len == 0 {
            return;
        }
        let bytes = map.bytes();
        // The first byte first: from then on a reader finds no record.
        // SAFETY: a write to the first byte of the mapping (len > 0).
        unsafe { std::ptr::write_volatile(bytes.as_mut_ptr(), 0) };
        compiler_fence(Ordering::SeqCst);
        bytes[1..open.len].fill(0);
        open.len = 0;
    }

    /// The task ids recorded in the file at `path` (by this or an earlier
    /// herdd). A torn last record (herdd died while writing it) is a task
    /// whose spawn had not happened yet: ignored.
    pub fn read(path: &Path) -> HashSet<TaskId> {
        let bytes = std::fs::read(path).unwrap_or_default();
        records(&bytes)
            .split_inclusive(|byte| *byte == b'\n')
            .filter(|line| line.ends_with(b"\n"))
            .filter_map(|line| std::str::from_utf8(line).ok()?.trim().parse().ok())
            .collect()
    }
}

impl Open {
    /// Opens (or creates) the file and maps it, after the records an
    /// earlier herdd left in it: those stay until the next clear.
    fn at(path: &Path) -> io::Result<Open> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let mut existing = Vec::new();
        io::Read::read_to_end(&mut &file, &mut existing)?;
        let len = records(&existing).len();
        let size = (len * 2)
            .max(existing.len())
            .max(INITIAL_SIZE)
            .next_multiple_of(INITIAL_SIZE);
        let map = reserve(&file, size)
            .and_then(|()| Mapping::new(&file, size))
            .ok();
        if map.is_none() {
            // Appending with `write` from the end of the records on.
            file.set_len(len as u64)?;
        }
        Ok(Open { file, map, len })
    }
}

/// Makes the file `size` bytes long, with disk blocks for all of it: a
/// store into a page of the mapping without a block behind it would need
/// one, and on a full disk that is a SIGBUS, not an error.
fn reserve(file: &File, size: usize) -> io::Result<()> {
    let size = libc::off_t::try_from(size).map_err(io::Error::other)?;
    nix::fcntl::fallocate(file, nix::fcntl::FallocateFlags::empty(), 0, size)?;
    Ok(())
}

/// The records in a file's contents: everything before the first zero byte.
fn records(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .position(|byte| *byte == 0)
        .unwrap_or(bytes.len());
    &bytes[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_in_the_file_at_once_and_cleared_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.starts");
        let mut starts = StartRecords::new(path.clone());
        starts.append(b"1\n2\n").unwrap();
        starts.append(b"3\n").unwrap();
        assert!(starts.open.as_ref().unwrap().map.is_some(), "mapped");
        assert_eq!(StartRecords::read(&path), HashSet::from([1, 2, 3]));
        starts.clear();
        assert!(StartRecords::read(&path).is_empty());
        starts.append(b"4\n").unwrap();
        assert_eq!(StartRecords::read(&path), HashSet::from([4]));
    }

    #[test]
    fn the_mapping_grows_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.starts");
        let mut starts = StartRecords::new(path.clone());
        let ids: Vec<TaskId> = (1..=20_000).collect();
        for chunk in ids.chunks(7) {
            let text: String = chunk.iter().map(|id| format!("{id}\n")).collect();
            starts.append(text.as_bytes()).unwrap();
        }
        assert_eq!(StartRecords::read(&path), ids.into_iter().collect());
    }

    #[test]
    fn an_earlier_herdds_records_stay_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.starts");
        // Written with `write` by an older herdd, or mapped by a killed one.
        std::fs::write(&path, b"7\n8\n").unwrap();
        let mut starts = StartRecords::new(path.clone());
        starts.append(b"9\n").unwrap();
        assert_eq!(StartRecords::read(&path), HashSet::from([7, 8, 9]));
        drop(starts);
        let mut starts = StartRecords::new(path.clone());
        starts.append(b"10\n").unwrap();
        assert_eq!(StartRecords::read(&path), HashSet::from([7, 8, 9, 10]));
        starts.clear();
        assert!(StartRecords::read(&path).is_empty());
    }

    #[test]
    fn a_torn_record_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.starts");
        // What a death in the middle of copying "12\n13\n" after "5\n" can
        // leave: bytes not yet copied are still zero.
        for torn in [&b"5\n12\n1\0"[..], b"5\n12\n\x003\n", b"5\n12\n13"] {
            std::fs::write(&path, torn).unwrap();
            assert_eq!(
                StartRecords::read(&path),
                HashSet::from([5, 12]),
                "{torn:?}"
            );
        }
    }
}
