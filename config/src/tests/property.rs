//! Property tests of the parser, run with the unit tests:
//! every truncation and many byte edits of the example configs. Each must
//! give a config or errors — no panic — and every error must point inside
//! the text (a line and column that exist) and name the file.

use std::path::Path;

use super::valid::FULL;
use super::MAIN;
use crate::parse;

/// The configs the edits start from.
fn samples() -> Vec<&'static str> {
    vec![
        FULL,
        include_str!("../../../examples/demo.toml"),
        r#"
[service.locked]
command = ["/bin/sleep", "1000"]
user = "nobody"
group = "users"
umask = "027"
rlimits = { nofile = 1024, nproc = "infinity" }
no_new_privs = true
clear_env = true
memory_max = "512M"
pids_max = 10
cpu_weight = 50
env = { A = "1", 'B C' = "2" }
ready = 2.5
restart_delay = "1m30s"

[pool.batch]
size = 2
memory_max = 1073741824
pids_max = "max"
daemon = true
"#,
    ]
}

/// ASCII that TOML gives meaning to, so edits keep the text UTF-8 and reach
/// past the first syntax error often enough.
const ALPHABET: &[u8] = b"[]{}=\"'.,#\n 0123456789-_:aeitxz\\";

/// Parses `text`; on errors, checks that each names the file and points at
/// a line and column of `text`.
fn check(text: &str) {
    if text.contains("include") {
        return; // would read other files
    }
    let Err(errors) = parse(Path::new(MAIN), text) else {
        return;
    };
    assert!(!errors.0.is_empty(), "Err without errors for:\n{text}");
    let lines: Vec<&str> = text.split('\n').collect();
    for error in &errors.0 {
        assert_eq!(error.file, Path::new(MAIN), "{error}");
        assert!(
            error.line >= 1 && error.line <= lines.len(),
            "{error}: line out of range for:\n{text}"
        );
        let width = lines[error.line - 1].chars().count();
        assert!(
            error.column >= 1 && error.column <= width + 1,
            "{error}: column out of range for:\n{text}"
        );
    }
}

/// The byte offsets at which `text` may be cut or edited (char boundaries).
fn boundaries(text: &str) -> Vec<usize> {
    (0..=text.len())
        .filter(|at| text.is_char_boundary(*at))
        .collect()
}

#[test]
fn every_truncation() {
    for text in samples() {
        for end in boundaries(text) {
            check(&text[..end]);
        }
    }
}

#[test]
fn every_byte_replaced_or_removed() {
    for text in samples() {
        let bytes = text.as_bytes();
        for at in 0..bytes.len() {
            if !bytes[at].is_ascii() {
                continue;
            }
            // Two replacements per position, different ones along the text.
            for k in 0..2 {
                let mut edited = bytes.to_vec();
                edited[at] = ALPHABET[(at * 5 + k * 11) % ALPHABET.len()];
                check(std::str::from_utf8(&edited).expect("ASCII for ASCII keeps UTF-8"));
            }
            let mut removed = bytes.to_vec();
            removed.remove(at);
            check(std::str::from_utf8(&removed).expect("removing ASCII keeps UTF-8"));
        }
    }
}

#[test]
fn lines_swapped_and_doubled() {
    for text in samples() {
        let lines: Vec<&str> = text.lines().collect();
        for at in 1..lines.len() {
            let mut swapped = lines.clone();
            swapped.swap(at - 1, at);
            check(&swapped.join("\n"));
            let mut doubled = lines.clone();
            doubled.insert(at, lines[at]);
            check(&doubled.join("\n"));
        }
    }
}
