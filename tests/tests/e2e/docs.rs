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
            other => panic!("unexpected error for {other}: {line}"),
        };
        let keys = list.trim_end_matches(')').split(", ").map(String::from);
        tables.insert(table.to_string(), keys.collect());
    }
    assert_eq!(tables.len(), 8, "one list per table:\n{}", stderr(&out));
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
                sections.entry(section.clone()).or_default().insert(key.clone()),
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
    let service_only: BTreeSet<String> = ["instances", "sets_event"].map(String::from).into();
    let expected_docs: [(&str, BTreeSet<String>); 8] = [
        ("top", &union(&docs, &["Top level"]) | &documented_tables(&docs)),
        ("herd", union(&docs, &["`[herd]`"])),
        (
            "service",
            union(&docs, &[unit, "Process keys", "Log keys"]),
        ),
        (
            "task",
            &union(&docs, &[unit, "Process keys", "Log keys"]) - &service_only,
        ),
        ("rlimits", union(&docs, &["`rlimits`"])),
        ("pool", union(&docs, &["`[pool.NAME]`", "Process keys"])),
        ("semaphore", union(&docs, &["`[semaphore.NAME]`"])),
        ("event", union(&docs, &["`[event.NAME]`"])),
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
    assert!(broken.is_empty(), "links to nothing in the repository:\n{}", broken.join("\n"));
}
