//! One config file's text, and the mapping from TOML byte spans to the
//! `line:column` positions that users see.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::errors::Location;

/// Config files (the main one and every include) larger than this are
/// refused: a config is small, and a mistaken include (`/dev/zero`, a log
/// file) must not fill herdd's memory.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Reads one config file: only a regular file, at most [`MAX_FILE_BYTES`],
/// UTF-8. A FIFO, device, socket or directory is refused without reading
/// from it (and without waiting: opening a FIFO would block until someone
/// writes to it). Errors are sentences for the user.
pub(crate) fn read_file(path: &Path) -> Result<String, String> {
    let file = OpenOptions::new()
        .read(true)
        // Opening a FIFO must not wait for a writer; reads of a regular
        // file are not affected.
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|error| format!("cannot read file: {error}"))?;
    // The type of what was opened, not of what the path named a moment
    // before: nothing can be swapped in between.
    let meta = file
        .metadata()
        .map_err(|error| format!("cannot read file: {error}"))?;
    let kind = meta.file_type();
    let odd = if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_char_device() || kind.is_block_device() {
        Some("a device")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_dir() {
        Some("a directory")
    } else {
        None
    };
    if let Some(odd) = odd {
        return Err(format!("cannot read file: it is {odd}, not a regular file"));
    }
    let too_large = || format!("cannot read file: larger than {MAX_FILE_BYTES} bytes");
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    read_at_most(file, path).and_then(|text| {
        // It may have grown since `fstat`.
        if text.len() as u64 > MAX_FILE_BYTES {
            Err(too_large())
        } else {
            Ok(text)
        }
    })
}

fn read_at_most(file: File, path: &Path) -> Result<String, String> {
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("cannot read file: {error}"))?;
    String::from_utf8(bytes)
        .map_err(|_| format!("cannot read file: {} is not UTF-8 text", path.display()))
}

/// A file being validated: its path (as it will be shown in errors) and text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    /// 1-based line and character column of the start of `span`. Spans come
    /// from the TOML parser, but are clamped anyway so that no input can make
    /// this panic.
    pub fn locate(&self, span: Range<usize>) -> Location {
        let mut offset = span.start.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        Location {
            file: self.path.to_path_buf(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_character_columns() {
        let source = Source {
            path: Path::new("x.toml"),
            text: "a = 1\nb = \"é\" x\n",
        };
        let at = |offset| {
            let location = source.locate(offset..offset);
            (location.line, location.column)
        };
        assert_eq!(at(0), (1, 1));
        assert_eq!(at(6), (2, 1));
        // "é" is two bytes but one column.
        assert_eq!(at(13), (2, 7));
        assert_eq!(at(12), (2, 6), "inside a character rounds down");
        assert_eq!(at(999), (3, 1), "past the end is clamped");
    }
}
