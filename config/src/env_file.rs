//! `env_file`: environment variables read from files at each start, in
//! systemd's `EnvironmentFile=` syntax, so secrets stay out of herd.toml.
//!
//! A file holds `KEY=VALUE` lines; blank lines and lines starting with `#`
//! or `;` are skipped; whitespace around the key and before the value is
//! dropped; a value may be quoted (`"..."` with `\"`, `\\`, `\$`, `` \` ``
//! and `\n` escapes, or `'...'` taken as written); an unquoted value loses
//! its trailing whitespace and continues on the next line after a final
//! `\`. A path written with a leading `-` is optional: a missing file is
//! then no error.
//!
//! The files are read when a process starts (so a restart picks up a
//! change), not when the config is loaded; `herdd --check-config` reads them
//! too ([`check`]). Errors name the file and line, never a value.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::model::Config;
use crate::paths::resolve;
use crate::value::{set, Cx, Value};

/// A file larger than this is refused: an environment file is a few lines,
/// and reading one must stay cheap for the event loop that starts processes.
pub const MAX_ENV_FILE: u64 = 1024 * 1024;

/// One `env_file` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFile {
    /// Absolute (a relative path is taken from the config file's directory).
    pub path: PathBuf,
    /// Written with a leading `-`: a missing file is skipped.
    pub optional: bool,
}

impl EnvFile {
    /// How it was written: the path, with `-` in front when optional.
    pub fn display(&self) -> String {
        let dash = if self.optional { "-" } else { "" };
        format!("{dash}{}", self.path.display())
    }
}

/// Reads the `env_file` key: one path or an array of paths.
pub(crate) fn read_key(
    cx: &mut Cx,
    key: &str,
    value: &Value,
    base: &Path,
    into: &mut Vec<EnvFile>,
) {
    let entries: Vec<(String, std::ops::Range<usize>)> = match value.get_ref() {
        toml::de::DeValue::String(text) => vec![(text.to_string(), value.span())],
        _ => match cx.string_array(key, value) {
            Some(items) => items
                .into_iter()
                .map(|(s, span)| (s.to_string(), span))
                .collect(),
            None => return,
        },
    };
    let mut files = Vec::new();
    for (text, span) in entries {
        let (optional, path) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.as_str()),
        };
        if path.is_empty() {
            cx.error(span, key, "an env_file path may not be empty");
            return;
        }
        files.push(EnvFile {
            path: resolve(base, path),
            optional,
        });
    }
    set(into, Some(files));
}

/// Every variable of `files`, in order (a later file wins over an earlier
/// one for the same name). The error names the file (and line).
pub fn load(files: &[EnvFile]) -> Result<Vec<(String, String)>, String> {
    let mut vars = Vec::new();
    for file in files {
        let Some(text) = read(file)? else { continue };
        let parsed = parse(&text).map_err(|(line, message)| {
            format!("env_file {}:{line}: {message}", file.path.display())
        })?;
        vars.extend(parsed);
    }
    Ok(vars)
}

/// The file's text; `None` when it is optional and missing. Opened without
/// blocking (a FIFO would wait for a writer) and only if it is a regular
/// file of at most [`MAX_ENV_FILE`] bytes.
fn read(file: &EnvFile) -> Result<Option<String>, String> {
    let name = file.path.display();
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&file.path);
    let mut handle = match opened {
        Ok(handle) => handle,
        Err(err) if file.optional && err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(format!("env_file {name}: {}", describe(&err))),
    };
    let meta = handle
        .metadata()
        .map_err(|err| format!("env_file {name}: {}", describe(&err)))?;
    if !meta.is_file() {
        return Err(format!("env_file {name}: not a regular file"));
    }
    if meta.len() > MAX_ENV_FILE {
        return Err(format!("env_file {name}: larger than {MAX_ENV_FILE} bytes"));
    }
    let mut bytes = Vec::new();
    handle
        .by_ref()
        .take(MAX_ENV_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| format!("env_file {name}: {}", describe(&err)))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| format!("env_file {name}: not UTF-8"))
}

/// "No such file or directory" rather than "... (os error 2)".
fn describe(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Parses one file's text; the error is (1-based line, message), and the
/// message never quotes a value.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut vars = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let number = index + 1;
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let Some((key, rest)) = trimmed.split_once('=') else {
            return Err((number, "expected KEY=VALUE".into()));
        };
        let key = key.trim();
        if !is_name(key) {
            return Err((
                number,
                "a variable name is letters, digits and _, not starting with a digit".into(),
            ));
        }
        let value = value(rest.trim_start(), &mut lines).map_err(|message| (number, message))?;
        vars.push((key.to_string(), value));
    }
    Ok(vars)
}

fn is_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The value after `=`: quoted, or unquoted with `\` line continuations
/// (which take further lines from `lines`).
fn value<'t>(
    rest: &str,
    lines: &mut impl Iterator<Item = (usize, &'t str)>,
) -> Result<String, String> {
    if let Some(inner) = rest.strip_prefix('\'') {
        let (value, after) = inner.split_once('\'').ok_or("unterminated single quote")?;
        return after_quote(after).map(|()| value.to_string());
    }
    if let Some(inner) = rest.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return after_quote(chars.as_str()).map(|()| value),
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(escaped @ ('"' | '\\' | '$' | '`')) => value.push(escaped),
                    Some(other) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => return Err("unterminated double quote".into()),
                },
                other => value.push(other),
            }
        }
        return Err("unterminated double quote".into());
    }
    let mut value = String::new();
    let mut part = rest;
    loop {
        match part.trim_end().strip_suffix('\\') {
            Some(continued) => {
                value.push_str(continued);
                match lines.next() {
                    Some((_, next)) => part = next,
                    None => break,
                }
            }
            None => {
                value.push_str(part.trim_end());
                break;
            }
        }
    }
    Ok(value)
}

/// Only whitespace or a comment may follow a closing quote.
fn after_quote(after: &str) -> Result<(), String> {
    let after = after.trim_start();
    if after.is_empty() || after.starts_with('#') {
        Ok(())
    } else {
        Err("unexpected text after the closing quote".into())
    }
}

/// What `herdd --check-config` adds: every required file of every unit and
/// pool exists and parses. One message per bad file.
pub fn check(config: &Config) -> Vec<String> {
    let units = config.units.iter().map(|u| (&u.name, &u.env_files));
    let pools = config.pools.iter().map(|p| (&p.name, &p.env_files));
    let mut errors = Vec::new();
    for (owner, files) in units.chain(pools) {
        for file in files {
            if let Err(message) = load(std::slice::from_ref(file)) {
                errors.push(format!("{owner}: {message}"));
            }
        }
    }
    errors.sort();
    errors.dedup();
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap_or_else(|(line, message)| panic!("{line}: {message}"))
    }

    fn pair(key: &str, value: &str) -> (String, String) {
        (key.to_string(), value.to_string())
    }

    #[test]
    fn systemd_syntax() {
        let text = "# a comment\n; another\n\nA=1\n  B = two words  \nC=\"quoted # not a comment\"\n\
                    D='single $HOME \\n'\nE=\"esc \\\" \\\\ \\$ \\n end\"\nF=\nG=line \\\n  continued\n\
                    H=a=b\n";
        assert_eq!(
            vars(text),
            [
                pair("A", "1"),
                pair("B", "two words"),
                pair("C", "quoted # not a comment"),
                pair("D", "single $HOME \\n"),
                pair("E", "esc \" \\ $ \n end"),
                pair("F", ""),
                pair("G", "line   continued"),
                pair("H", "a=b"),
            ]
        );
    }

    #[test]
    fn bad_lines_name_their_line_but_not_their_value() {
        for (text, line, words) in [
            ("A=1\nsecret-without-equals\n", 2, "expected KEY=VALUE"),
            ("1A=x\n", 1, "a variable name"),
            ("A B=x\n", 1, "a variable name"),
            ("\n\nA=\"hunter2\n", 3, "unterminated double quote"),
            ("A='hunter2\n", 1, "unterminated single quote"),
            ("A=\"x\" hunter2\n", 1, "after the closing quote"),
        ] {
            let (at, message) = parse(text).unwrap_err();
            assert_eq!(at, line, "{text:?}");
            assert!(message.contains(words), "{text:?}: {message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }

    #[test]
    fn files_load_in_order_and_optional_ones_may_be_missing() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("a.env");
        let second = dir.path().join("b.env");
        std::fs::write(&first, "A=1\nB=1\n").unwrap();
        std::fs::write(&second, "B=2\n").unwrap();
        let file = |path: &Path, optional| EnvFile {
            path: path.to_path_buf(),
            optional,
        };
        let missing = dir.path().join("missing.env");
        let loaded = load(&[
            file(&first, false),
            file(&missing, true),
            file(&second, false),
        ]);
        assert_eq!(
            loaded.unwrap(),
            [pair("A", "1"), pair("B", "1"), pair("B", "2")]
        );
        let err = load(&[file(&missing, false)]).unwrap_err();
        assert_eq!(
            err,
            format!("env_file {}: No such file or directory", missing.display())
        );
        let err = load(&[file(dir.path(), false)]).unwrap_err();
        assert!(err.ends_with("not a regular file"), "{err}");
        std::fs::write(&first, "A=1\noops\n").unwrap();
        let err = load(&[file(&first, false)]).unwrap_err();
        assert_eq!(
            err,
            format!("env_file {}:2: expected KEY=VALUE", first.display())
        );
    }
}
