//! Config errors as users see them: `file:line:column: key: message`.
//!
//! Validation never stops at the first problem; every error is collected in an
//! [`Errors`] sink and handed back at once, so a user fixes a config in one
//! round instead of one error per `herdd --check-config` run.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in one file, pointing at the key or value that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, counted in characters (not bytes).
    pub column: usize,
    /// Dotted path of the offending key, e.g. `service.web.restart`; empty when
    /// the error is about the file as a whole (unreadable, bad TOML syntax).
    pub key: String,
    pub message: String,
}

/// `file:line:column: key: message`, or `file:line:column: message` when the
/// key is empty (rather than a dangling `: :`).
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        write!(f, "{file}:{}:{}: ", self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every error found in a configuration (never empty when returned by
/// [`crate::load`] or [`crate::parse`]), sorted by file (in the order the files
/// were read, main file first), then line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A resolved position in a file, kept instead of a byte span when the error
/// may be reported after the file's text is gone (cross-unit checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The start of `file`: where whole-file errors (unreadable, bad syntax
    /// without a position) are reported.
    pub fn start_of(file: &Path) -> Location {
        Location {
            file: file.to_path_buf(),
            line: 1,
            column: 1,
        }
    }
}

/// Collects errors from every file and check, then sorts them for reporting.
#[derive(Debug, Default)]
pub(crate) struct Errors {
    list: Vec<ConfigError>,
}

impl Errors {
    pub fn push(&mut self, at: &Location, key: &str, message: impl Into<String>) {
        self.list.push(ConfigError {
            file: at.file.clone(),
            line: at.line,
            column: at.column,
            key: key.to_string(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Sorts by file in `file_order` (files not listed go last, by name), then
    /// by position. The sort is stable, so errors at one position keep the
    /// order in which they were found.
    pub fn into_sorted(mut self, file_order: &[PathBuf]) -> ConfigErrors {
        let rank = |file: &Path| {
            file_order
                .iter()
                .position(|known| known == file)
                .unwrap_or(file_order.len())
        };
        self.list.sort_by(|a, b| {
            (rank(&a.file), &a.file, a.line, a.column).cmp(&(
                rank(&b.file),
                &b.file,
                b.line,
                b.column,
            ))
        });
        ConfigErrors(self.list)
    }
}
