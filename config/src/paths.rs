//! Resolving relative paths written in a config file.
//!
//! herdd usually runs with `/` as its working directory, so a relative path in
//! the config would mean something different from what the author saw next to
//! the file. Relative paths are therefore taken relative to the directory of the
//! config file, and made absolute once, at load time.

use std::path::{Component, Path, PathBuf};

/// The absolute directory containing `file` (best effort: if the working
/// directory is unknown, a relative directory is returned unchanged).
pub(crate) fn directory_of(file: &Path) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new(""));
    if dir.is_absolute() {
        return normalize(dir);
    }
    match std::env::current_dir() {
        Ok(cwd) => normalize(&cwd.join(dir)),
        Err(_) => dir.to_path_buf(),
    }
}

/// `path` as written, made absolute against `base` when it is relative.
pub(crate) fn resolve(base: &Path, path: &str) -> PathBuf {
    normalize(&base.join(path))
}

/// Drops `.` components (`/etc/herd/./x` → `/etc/herd/x`). `..` is kept: with
/// symlinks it cannot be removed without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|component| !matches!(component, Component::CurDir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_follow_the_config_file() {
        let base = directory_of(Path::new("/etc/herd/herd.toml"));
        assert_eq!(base, Path::new("/etc/herd"));
        assert_eq!(
            resolve(&base, "./run/x.sock"),
            Path::new("/etc/herd/run/x.sock")
        );
        assert_eq!(
            resolve(&base, "/run/herd.sock"),
            Path::new("/run/herd.sock")
        );
        assert!(directory_of(Path::new("herd.toml")).is_absolute());
    }
}
