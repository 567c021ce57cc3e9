//! The documentation stands alone and stays complete: docs/config.md lists
//! exactly the keys herdd accepts, each with its type, default, example and
//! reload behaviour; and no Markdown file links outside the repository.

use crate::harness::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository")
        .to_path_buf()
}

/// A config with an unknown key in every table: herdd's "unknown key"
/// errors list the keys each table accepts.
const PROBE: &str = r#"zzz = 1
[herd]
zzz = 1
[service.s]
command = ["a"]
zzz = 1
rlimits = { zzz = 1 }
[task.t]
command = ["a"]
zzz = 1
[pool.p]
size = 1
zzz = 1
[semaphore.m]
capacity = 1
zzz = 1
[event.e]
zzz = 1
[socket.k]
listen = "127.0.0.1:1"
zzz = 1
"#;

/// The keys herdd accepts, by table: `top`, `herd`, `service`, `rlimits`, ...
fn accepted_keys() -> BTreeMap<String, BTreeSet<String>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herd.toml");
    std::fs::write(&path, PROBE).unwrap();
    let out = Command::new(bin("herdd"))
        .args(["--check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let mut tables = BTreeMap::new();
    for line in stderr(&out).lines() {
        let Some((_, rest)) = line.split_once(": ") else {
            continue;
        };
        let Some((key, list)) = rest.split_once(": unknown key `zzz` (expected one of: ") else {
            continue;
        };
        let table = match key {
            "zzz" => "top",
            "herd.zzz" => "herd",
            "service.s.zzz" => "service",
            "service.s.rlimits.zzz" => "rlimits",
            "task.t.zzz" => "task",
            "pool.p.zzz" => "pool",
            "semaphore.m.zzz" => "semaphore",
            "event.e.zzz" => "event",
            "socket.k.zzz" => "socket",
            other => panic!("unexpected error for {other}: {line}"),
        };
        let keys = list.trim_end_matches(')').split(", ").map(String::from);
        tables.insert(table.to_string(), keys.collect());
    }
    assert_eq!(tables.len(), 9, "one list per table:\n{}", stderr(&out));
    tables
}

/// docs/config.md's `## Section` headings, each with its `### \`key\`` entries.
fn documented_keys(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut sections: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            section = title.to_string();
            sections.entry(section.clone()).or_default();
        } else if let Some(key) = line.strip_prefix("### ") {
            let key = key.trim_matches('`').to_string();
            assert!(
                sections
                    .entry(section.clone())
                    .or_default()
                    .insert(key.clone()),
                "{key} twice in {section}"
            );
        }
    }
    sections
}

/// The tables the sections are about: `[herd]` gives `herd`, `[pool.NAME]` `pool`.
fn documented_tables(sections: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let mut tables = BTreeSet::new();
    for title in sections.keys() {
        for (at, _) in title.match_indices("`[") {
            let name = &title[at + 2..];
            let end = name.find(['.', ']']).unwrap_or(name.len());
            tables.insert(name[..end].to_string());
        }
    }
    tables
}

fn union(sections: &BTreeMap<String, BTreeSet<String>>, names: &[&str]) -> BTreeSet<String> {
    names
        .iter()
        .flat_map(|name| {
            sections
                .get(*name)
                .unwrap_or_else(|| panic!("docs/config.md has no section `## {name}`"))
                .iter()
                .cloned()
        })
        .collect()
}

#[test]
fn the_config_reference_documents_exactly_the_accepted_keys() {
    let text = std::fs::read_to_string(repo_root().join("docs/config.md")).unwrap();
    let docs = documented_keys(&text);
    let accepted = accepted_keys();
    let unit = "`[service.NAME]` and `[task.NAME]`";
    let service_only: BTreeSet<String> = [
        "instances",
        "sets_event",
        "sockets",
        "watchdog",
        "max_unavailable",
        "update",
        "health",
    ]
    .map(String::from)
    .into();
    let expected_docs: [(&str, BTreeSet<String>); 9] = [
        (
            "top",
            &union(&docs, &["Top level"]) | &documented_tables(&docs),
        ),
        ("herd", union(&docs, &["`[herd]`"])),
        (
            "service",
            union(
                &docs,
                &[unit, "Process keys", "Log keys", "Failure hook keys"],
            ),
        ),
        (
            "task",
            &union(
                &docs,
                &[
                    unit,
                    "Process keys",
                    "Log keys",
                    "Failure hook keys",
                    "Timer keys",
                ],
            ) - &service_only,
        ),
        ("rlimits", union(&docs, &["`rlimits`"])),
        (
            "pool",
            union(
                &docs,
                &["`[pool.NAME]`", "Process keys", "Failure hook keys"],
            ),
        ),
        ("semaphore", union(&docs, &["`[semaphore.NAME]`"])),
        ("event", union(&docs, &["`[event.NAME]`"])),
        ("socket", union(&docs, &["`[socket.NAME]`"])),
    ];
    for (table, documented) in expected_docs {
        let keys = &accepted[table];
        let missing: Vec<_> = keys.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(keys).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "docs/config.md, {table}: undocumented keys {missing:?}, documented but not accepted {extra:?}"
        );
    }
}

#[test]
fn every_key_in_the_config_reference_has_type_default_example_and_reload() {
    let text = std::fs::read_to_string(repo_root().join("docs/config.md")).unwrap();
    let entries: Vec<&str> = text.split("\n### ").skip(1).collect();
    assert!(entries.len() > 50, "only {} entries", entries.len());
    for entry in entries {
        let entry = entry.split("\n## ").next().unwrap();
        let name = entry.lines().next().unwrap();
        for field in ["Type", "Default", "Example", "Reload"] {
            assert!(
                entry.contains(&format!("\n- **{field}**: ")),
                "docs/config.md: {name} has no {field}"
            );
        }
    }
}

#[test]
fn every_example_in_the_config_reference_sets_its_own_key() {
    let text = std::fs::read_to_string(repo_root().join("docs/config.md")).unwrap();
    for entry in text.split("\n### ").skip(1) {
        let key = entry.lines().next().unwrap().trim_matches('`');
        let example = entry
            .lines()
            .find_map(|line| line.strip_prefix("- **Example**: `"))
            .and_then(|line| line.strip_suffix('`'))
            .unwrap_or_else(|| panic!("{key}: no one-line example"));
        let table: toml::Table = toml::from_str(example)
            .unwrap_or_else(|err| panic!("{key}: example {example:?} is not TOML: {err}"));
        // An rlimits key is shown inside `rlimits = { ... }`.
        let own = table.contains_key(key)
            || table
                .get("rlimits")
                .and_then(|limits| limits.as_table())
                .is_some_and(|limits| limits.contains_key(key));
        assert!(own, "{key}: example {example:?} does not set {key}");
    }
}

/// Every `.md` file of the repository (not under target/ or hidden folders).
fn markdown_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            markdown_files(&path, found);
        } else if name.ends_with(".md") {
            found.push(path);
        }
    }
}

/// The targets of `[text](target)` links in `text`.
fn links(text: &str) -> Vec<&str> {
    text.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &text[at + 2..];
            rest.find(')').map(|end| &rest[..end])
        })
        .collect()
}

#[test]
fn markdown_links_stay_inside_the_repository() {
    let root = repo_root().canonicalize().unwrap();
    let mut files = Vec::new();
    markdown_files(&root, &mut files);
    assert!(files.len() >= 4, "found {files:?}");
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for link in links(&text) {
            let target = link.split('#').next().unwrap();
            if target.is_empty() || link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let resolved = file.parent().unwrap().join(target);
            let inside = resolved
                .canonicalize()
                .is_ok_and(|path| path.starts_with(&root));
            if !inside {
                broken.push(format!("{}: {link}", file.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links to nothing in the repository:\n{}",
        broken.join("\n")
    );
}

/// Markdown inline text as roff: `code` and **strong** in bold, links as
/// their text.
fn inlines(text: &str) -> Vec<roff::Inline> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let next = rest.find(['`', '*', '[']).unwrap_or(rest.len());
        if next > 0 {
            out.push(roff::roman(&rest[..next]));
            rest = &rest[next..];
            continue;
        }
        let (inline, used) = if let Some(code) = rest.strip_prefix('`') {
            let end = code.find('`').unwrap_or(code.len());
            (roff::bold(&code[..end]), end + 2)
        } else if let Some(strong) = rest.strip_prefix("**") {
            let end = strong.find("**").unwrap_or(strong.len());
            (roff::bold(&strong[..end]), end + 4)
        } else if let Some((label, after)) = rest
            .strip_prefix('[')
            .and_then(|link| link.split_once("]("))
            .filter(|(label, _)| !label.contains(['[', '`']))
        {
            let end = after.find(')').unwrap_or(after.len());
            (roff::roman(label), label.len() + end + 4)
        } else {
            (roff::roman(&rest[..1]), 1)
        };
        out.push(inline);
        rest = &rest[used.min(rest.len())..];
    }
    out
}

/// herd.toml(5), from docs/config.md: `##` sections, `###` keys, paragraphs,
/// bullets and code blocks.
pub fn config_man_page(markdown: &str) -> String {
    let mut page = roff::Roff::new();
    let version = format!("herd {}", env!("CARGO_PKG_VERSION"));
    page.control(
        "TH",
        ["HERD.TOML", "5", "", version.as_str(), "File Formats"],
    );
    page.control("SH", ["NAME"]);
    page.text([roff::roman(
        "herd.toml - the configuration file of herdd, the herd process supervisor",
    )]);
    page.control("SH", ["DESCRIPTION"]);
    let mut paragraph: Vec<String> = Vec::new();
    let mut in_code = false;
    let flush = |page: &mut roff::Roff, paragraph: &mut Vec<String>| {
        if !paragraph.is_empty() {
            page.text(inlines(&paragraph.join(" ")));
            paragraph.clear();
        }
    };
    for line in markdown.lines() {
        if line.starts_with("```") {
            flush(&mut page, &mut paragraph);
            if in_code {
                page.control("fi", []).control("RE", []);
            } else {
                page.control("PP", [])
                    .control("RS", ["4"])
                    .control("nf", []);
            }
            in_code = !in_code;
        } else if in_code {
            page.text([roff::roman(line)]);
        } else if line.starts_with("# ") {
            continue;
        } else if let Some(title) = line.strip_prefix("## ") {
            flush(&mut page, &mut paragraph);
            page.control("SH", [title.replace('`', "").to_uppercase().as_str()]);
        } else if let Some(key) = line.strip_prefix("### ") {
            flush(&mut page, &mut paragraph);
            page.control("SS", [key.replace('`', "").as_str()]);
        } else if let Some(item) = line.strip_prefix("- ") {
            flush(&mut page, &mut paragraph);
            page.control("IP", ["\\(bu", "2"]);
            paragraph.push(item.to_string());
        } else if line.trim().is_empty() {
            flush(&mut page, &mut paragraph);
            paragraph.clear();
            page.control("PP", []);
        } else {
            paragraph.push(line.trim().to_string());
        }
    }
    flush(&mut page, &mut paragraph);
    page.control("SH", ["SEE ALSO"]);
    page.text([
        roff::bold("herdd"),
        roff::roman("(8), "),
        roff::bold("herdctl"),
        roff::roman("(1)"),
    ]);
    page.render()
}

#[test]
fn herd_toml_5_is_generated_from_the_config_reference() {
    let root = repo_root();
    let markdown = std::fs::read_to_string(root.join("docs/config.md")).unwrap();
    let page = config_man_page(&markdown);
    let path = root.join("man/herd.toml.5");
    if std::env::var_os("HERD_BLESS").is_some() {
        std::fs::write(&path, &page).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == page,
        "man/herd.toml.5 is stale: run `HERD_BLESS=1 cargo test -p herd-tests --test e2e docs::` and commit it"
    );
}

#[test]
fn man_pages_render_without_warnings() {
    let dir = repo_root().join("man");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .collect();
    pages.sort();
    let names: Vec<String> = pages
        .iter()
        .map(|page| page.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "herdctl.1",
        "herdctl-sem-acquire.1",
        "herdd.8",
        "herd.toml.5",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "no man/{expected}"
        );
    }
    if Command::new("man").arg("--version").output().is_err() {
        println!("note: man is not installed; man pages were not rendered");
        return;
    }
    for page in &pages {
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(page)
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {}", page.display(), stderr(&out));
        assert!(
            stderr(&out).is_empty(),
            "{}: {}",
            page.display(),
            stderr(&out)
        );
        assert!(stdout(&out).contains("NAME"), "{}", page.display());
    }
}

#[test]
fn markdown_files_name_only_markdown_files_of_the_repository() {
    let root = repo_root();
    let mut files = Vec::new();
    markdown_files(&root, &mut files);
    let names: BTreeSet<String> = files
        .iter()
        .map(|file| file.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut unknown = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let words = text.split(|c: char| !(c.is_ascii_alphanumeric() || "_-./".contains(c)));
        for word in words.filter(|word| word.ends_with(".md")) {
            let name = word.rsplit('/').next().unwrap();
            if name != ".md" && !names.contains(name) {
                unknown.push(format!("{}: {word}", file.display()));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "files named that are not in the repository:\n{}",
        unknown.join("\n")
    );
}
