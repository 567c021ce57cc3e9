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

/// herdctl's exit codes, for the EXIT STATUS section of herdctl(1) (as
/// `exit_code` in main.rs decides them).
const EXIT_STATUS: [(&str, &str); 10] = [
    ("0", "Success."),
    ("1", "The operation failed (a unit failed to start, a task failed, a timeout)."),
    ("2", "Usage error: bad arguments, or a request herdd could not parse."),
    ("3", "status NAME: a named unit is not running."),
    ("4", "No such unit, pool, task or semaphore."),
    ("5", "Permission denied: only root, herdd's user and [herd] control_group may change things."),
    ("6", "herdd is unreachable (the message names the socket or bus)."),
    ("126, 127", "sem acquire: CMD could not be executed, or was not found."),
    ("128+N", "join, submit --wait, sem acquire: the task or CMD was killed by signal N (its own exit code otherwise)."),
    ("130", "map was interrupted by Ctrl-C (its tasks are cancelled)."),
];

/// herdctl(1): clap_mangen's sections, then EXIT STATUS, ENVIRONMENT and SEE ALSO.
fn top_page() -> Vec<u8> {
    use roff::{bold, roman, Roff};
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let man = clap_mangen::Man::new(command);
    let mut page = Vec::new();
    man.render_title(&mut page).unwrap();
    man.render_name_section(&mut page).unwrap();
    man.render_synopsis_section(&mut page).unwrap();
    man.render_description_section(&mut page).unwrap();
    man.render_options_section(&mut page).unwrap();
    man.render_subcommands_section(&mut page).unwrap();
    let mut extra = Roff::new();
    extra.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in EXIT_STATUS {
        extra
            .control("TP", [])
            .text([bold(code)])
            .text([roman(meaning)]);
    }
    extra.control("SH", ["ENVIRONMENT"]);
    extra.control("TP", []).text([bold("HERD_SOCKET")]);
    extra.text([roman("herdd's control socket, as --socket.")]);
    extra.control("SH", ["SEE ALSO"]);
    extra.text([
        bold("herdd"),
        roman("(8), "),
        bold("herd.toml"),
        roman("(5), and herdctl-VERB(1) for each verb, e.g. "),
        bold("herdctl-sem-acquire"),
        roman("(1)"),
    ]);
    extra.to_writer(&mut page).unwrap();
    man.render_version_section(&mut page).unwrap();
    once_preamble(page)
}

/// Each of clap_mangen's `render_*_section` starts with the same two-line
/// preamble (defining `\*(Aq`); a page needs it once, at the top.
fn once_preamble(page: Vec<u8>) -> Vec<u8> {
    const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
    let text = String::from_utf8(page).expect("roff is UTF-8");
    let rest = text.strip_prefix(PREAMBLE).unwrap_or(&text);
    format!("{PREAMBLE}{}", rest.replace(PREAMBLE, "")).into_bytes()
}

#[test]
fn man_pages_are_current() {
    let generated = tempfile::tempdir().unwrap();
    clap_mangen::generate_to(Cli::command(), generated.path()).unwrap();
    std::fs::write(generated.path().join("herdctl.1"), top_page()).unwrap();
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
