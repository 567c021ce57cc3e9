//! Files generated from the clap definitions that parse the command line,
//! kept in the repository for the install step and packages (which cannot
//! run herdctl): herdctl(1) and one page per verb (`herdctl-status(1)`,
//! `herdctl-sem-acquire(1)`, ...) by clap_mangen in `man/`, and what
//! `herdctl completions bash|zsh|fish` prints in `contrib/completions/`.
//! These tests fail when they are stale; `HERD_BLESS=1 cargo test -p herdctl
//! generated` rewrites them.

use crate::cli::Cli;
use clap::CommandFactory;
use clap_complete::Shell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn repo_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

fn bless() -> bool {
    std::env::var_os("HERD_BLESS").is_some()
}

/// `herdctl*.1` files in `dir`, by name.
fn pages(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| {
                    let name = entry.file_name().into_string().ok()?;
                    let ours = name.starts_with("herdctl") && name.ends_with(".1");
                    ours.then(|| Some((name, std::fs::read(entry.path()).ok()?)))?
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn man_pages_are_current() {
    let generated = tempfile::tempdir().unwrap();
    clap_mangen::generate_to(Cli::command(), generated.path()).unwrap();
    let fresh = pages(generated.path());
    assert!(fresh.contains_key("herdctl.1") && fresh.contains_key("herdctl-sem-acquire.1"));
    let dir = repo_dir("man");
    if bless() {
        for name in pages(&dir).keys() {
            std::fs::remove_file(dir.join(name)).unwrap();
        }
        for (name, page) in &fresh {
            std::fs::write(dir.join(name), page).unwrap();
        }
        return;
    }
    let committed = pages(&dir);
    let stale: Vec<&String> = fresh
        .keys()
        .chain(committed.keys())
        .filter(|name| fresh.get(*name) != committed.get(*name))
        .collect();
    assert!(
        stale.is_empty(),
        "man/ is stale for {stale:?}: run `HERD_BLESS=1 cargo test -p herdctl generated` and commit man/"
    );
}

#[test]
fn completion_scripts_are_current() {
    let dir = repo_dir("contrib/completions");
    for (shell, file) in [
        (Shell::Bash, "herdctl.bash"),
        (Shell::Zsh, "_herdctl"),
        (Shell::Fish, "herdctl.fish"),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "herdctl", &mut script);
        let path = dir.join(file);
        if bless() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &script).unwrap();
            continue;
        }
        assert!(
            std::fs::read(&path).unwrap_or_default() == script,
            "{} is stale: run `HERD_BLESS=1 cargo test -p herdctl generated` and commit it",
            path.display()
        );
    }
}
