//! `include = ["conf.d/*.toml"]`: which files a config file pulls in.
//!
//! Patterns are relative to the including file's directory (so a config tree
//! can be moved as a whole) and expand in sorted order, so the order units are
//! read in, and hence which of two duplicate definitions is reported, does not
//! depend on the file system.

use std::ops::Range;
use std::path::{Path, PathBuf};

use glob::{MatchOptions, Pattern};

use crate::value::{Cx, Value};

/// Characters that make an include a pattern rather than a file name.
const WILDCARDS: [char; 3] = ['*', '?', '['];

/// The files named by `include` in the file `cx` is reading, in order.
pub(crate) fn expand(cx: &mut Cx, value: &Value) -> Vec<PathBuf> {
    let base = cx
        .source
        .path
        .parent()
        .unwrap_or(Path::new(""))
        .to_path_buf();
    let patterns = cx.string_array("include", value).unwrap_or_default();
    patterns
        .into_iter()
        .flat_map(|(pattern, span)| expand_one(cx, &base, pattern, span))
        .collect()
}

fn expand_one(cx: &mut Cx, base: &Path, pattern: &str, span: Range<usize>) -> Vec<PathBuf> {
    if pattern.is_empty() {
        cx.error(span, "include", "an include pattern must not be empty");
        return Vec::new();
    }
    if !pattern.contains(WILDCARDS) {
        return literal(cx, base, pattern, span);
    }
    let Some(full) = full_pattern(base, pattern) else {
        let message =
            format!("cannot expand `{pattern}`: this file's directory is not valid UTF-8");
        cx.error(span, "include", message);
        return Vec::new();
    };
    let options = MatchOptions {
        // `*.toml` must not pick up editor droppings such as `.#web.toml`.
        require_literal_leading_dot: true,
        ..MatchOptions::new()
    };
    let matches = match glob::glob_with(&full, options) {
        Ok(matches) => matches,
        Err(error) => {
            let message = format!("invalid include pattern `{pattern}`: {}", error.msg);
            cx.error(span, "include", message);
            return Vec::new();
        }
    };
    let mut files = Vec::new();
    for entry in matches {
        match entry {
            // A pattern such as `conf.d/*` may also match directories.
            Ok(path) if path.is_dir() => {}
            Ok(path) => files.push(path),
            Err(error) => {
                let message = format!("cannot expand `{pattern}`: {error}");
                cx.error(span.clone(), "include", message);
            }
        }
    }
    files
}

/// A plain file name must exist: unlike a pattern matching nothing (an empty
/// `conf.d/`), a missing named file is almost certainly a mistake.
fn literal(cx: &mut Cx, base: &Path, name: &str, span: Range<usize>) -> Vec<PathBuf> {
    let path = base.join(name);
    if let Ok(false) = path.try_exists() {
        let message = format!("included file `{}` does not exist", path.display());
        cx.error(span, "include", message);
        return Vec::new();
    }
    vec![path]
}

/// `pattern` made relative to `base`, with any glob characters in `base`
/// itself escaped. `None` when `base` is not UTF-8 (glob needs a `str`).
fn full_pattern(base: &Path, pattern: &str) -> Option<String> {
    if Path::new(pattern).is_absolute() || base.as_os_str().is_empty() {
        return Some(pattern.to_string());
    }
    let base = Pattern::escape(base.to_str()?);
    Some(format!("{base}/{pattern}"))
}
