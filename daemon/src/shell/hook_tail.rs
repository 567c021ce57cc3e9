//! `HERD_LOG_TAIL` of a failure hook: the last lines of the failed
//! instance's log file, or of a pool task's captured output, in an
//! anonymous memory file the hook gets as descriptor 3 (so the path is
//! `/dev/fd/3`). Nothing is left on disk, whatever user the hook runs as
//! can read it, and it goes away with the last process that holds it.

use super::logs::{log_path, LogHub};
use crate::core::hooks::{last_lines, LogTail, TAIL_LINES};
use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The path the hook reads its tail at: the descriptor it is given.
pub const TAIL_PATH: &str = "/dev/fd/3";

/// At most this much of a log file's end is read for its last lines: 50
/// lines of a log are rarely more, and the event loop reads it.
const READ_AT_MOST: u64 = 64 * 1024;

/// The tail as a memory file, ready to be passed to the hook.
pub fn prepare(tail: &LogTail, logs: &LogHub) -> io::Result<OwnedFd> {
    let bytes = match tail {
        LogTail::LogFile { unit, instance } => {
            let path = logs
                .position(instance)
                .map(|(path, _)| path)
                .unwrap_or_else(|| log_path(&logs.dir(), unit, instance));
            // A log not written yet, or removed, leaves the tail empty.
            read_tail(&path).unwrap_or_default()
        }
        LogTail::Captured(bytes) => bytes.clone(),
        LogTail::Empty => Vec::new(),
    };
    let fd = memory_file(c"herd-log-tail")?;
    let mut file = File::from(fd);
    file.write_all(&bytes)?;
    file.rewind()?;
    Ok(file.into())
}

/// The last [`TAIL_LINES`] lines of the regular file at `path`, from at
/// most its last [`READ_AT_MOST`] bytes.
fn read_tail(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        // Not a FIFO someone put there: never wait for a writer.
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Ok(Vec::new());
    }
    file.seek(SeekFrom::Start(metadata.len().saturating_sub(READ_AT_MOST)))?;
    let mut text = Vec::new();
    file.take(READ_AT_MOST).read_to_end(&mut text)?;
    Ok(last_lines(&text, TAIL_LINES).to_vec())
}

/// An anonymous file in memory (`memfd_create`), close-on-exec in herdd.
fn memory_file(name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid C string; the call has no other preconditions.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_tail_is_its_last_lines() {
        let dir = std::env::temp_dir().join(format!("herd-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("web.log");
        let text: String = (0..200).map(|n| format!("line {n}\n")).collect();
        std::fs::write(&path, text).unwrap();
        let tail = read_tail(&path).unwrap();
        let tail = String::from_utf8(tail).unwrap();
        assert_eq!(tail.lines().count(), TAIL_LINES);
        assert!(tail.starts_with("line 150\n"), "{tail}");
        assert!(tail.ends_with("line 199\n"), "{tail}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
