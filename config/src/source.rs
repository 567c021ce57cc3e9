//! One config file's text, and the mapping from TOML byte spans to the
//! `line:column` positions that users see.

use std::ops::Range;
use std::path::Path;

use crate::errors::Location;

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
