//! contrib/install.sh lays herd out as distributions do, under DESTDIR and
//! PREFIX, and the .deb (daemon/Cargo.toml's `package.metadata.deb`) ships
//! the same files.

use crate::docs::repo_root;
use crate::harness::*;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Runs contrib/install.sh into `destdir` with the test build's binaries.
fn install(destdir: &Path, prefix: Option<&str>) {
    let build = bin("herdd").parent().unwrap().to_path_buf();
    let mut command = Command::new("sh");
    command
        .arg(repo_root().join("contrib/install.sh"))
        .env("DESTDIR", destdir)
        .env("HERD_BUILD_DIR", build);
    if let Some(prefix) = prefix {
        command.env("PREFIX", prefix);
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "install.sh failed: {}", stderr(&out));
}

/// Every file under `root`, as paths relative to it.
fn files(root: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, root: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, found);
            } else {
                let relative = path.strip_prefix(root).unwrap();
                found.insert(relative.display().to_string());
            }
        }
    }
    let mut found = BTreeSet::new();
    walk(root, root, &mut found);
    found
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn install_sh_lays_herd_out_under_destdir_and_prefix_usr() {
    let dest = tempfile::tempdir().unwrap();
    install(dest.path(), None);
    let root = dest.path();
    let installed = files(root);
    for expected in [
        "usr/bin/herdd",
        "usr/bin/herdctl",
        "usr/lib/systemd/system/herd.service",
        "usr/share/dbus-1/system.d/org.herd.Herd1.conf",
        "usr/share/bash-completion/completions/herdctl",
        "usr/share/zsh/site-functions/_herdctl",
        "usr/share/fish/vendor_completions.d/herdctl.fish",
        "usr/share/man/man1/herdctl.1",
        "usr/share/man/man1/herdctl-sem-acquire.1",
        "usr/share/man/man5/herd.toml.5",
        "usr/share/man/man8/herdd.8",
        "etc/herd/herd.toml",
    ] {
        assert!(
            installed.contains(expected),
            "{expected} missing: {installed:#?}"
        );
    }
    assert_eq!(mode(&root.join("usr/bin/herdd")), 0o755);
    assert_eq!(mode(&root.join("usr/share/man/man8/herdd.8")), 0o644);

    let unit = std::fs::read_to_string(root.join("usr/lib/systemd/system/herd.service")).unwrap();
    assert!(
        unit.contains("\nExecStart=/usr/bin/herdd --config /etc/herd/herd.toml\n"),
        "{unit}"
    );

    // The installed binaries work, and the example config is valid.
    let version = Command::new(root.join("usr/bin/herdctl"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        stdout(&version).starts_with("herdctl "),
        "{}",
        stdout(&version)
    );
    let check = Command::new(root.join("usr/bin/herdd"))
        .arg("--check-config")
        .arg("--config")
        .arg(root.join("etc/herd/herd.toml"))
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));

    // The completions are herdctl's.
    let bash = std::fs::read_to_string(root.join("usr/share/bash-completion/completions/herdctl"));
    assert!(bash.unwrap().contains("herdctl"));
}

#[test]
fn install_sh_honours_prefix_and_keeps_an_edited_config() {
    let dest = tempfile::tempdir().unwrap();
    let config = dest.path().join("etc/herd/herd.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, "# mine\n").unwrap();
    install(dest.path(), Some("/usr/local"));
    let installed = files(dest.path());
    assert!(installed.contains("usr/local/bin/herdd"), "{installed:#?}");
    assert!(installed.contains("usr/local/share/man/man8/herdd.8"));
    assert!(!installed.iter().any(|file| file.starts_with("usr/bin")));
    let unit_path = dest
        .path()
        .join("usr/local/lib/systemd/system/herd.service");
    let unit = std::fs::read_to_string(unit_path).unwrap();
    assert!(unit.contains("\nExecStart=/usr/local/bin/herdd "), "{unit}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "# mine\n");
}

#[test]
fn the_deb_ships_what_install_sh_installs() {
    let dest = tempfile::tempdir().unwrap();
    install(dest.path(), Some("/usr"));
    let installed = files(dest.path());
    let daemon = repo_root().join("daemon");
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(daemon.join("Cargo.toml")).unwrap()).unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let mut shipped = BTreeSet::new();
    for asset in deb["assets"].as_array().unwrap() {
        let source = asset[0].as_str().unwrap();
        let target = asset[1].as_str().unwrap();
        let sources: Vec<String> = if let Some(binary) = source.strip_prefix("target/release/") {
            vec![binary.to_string()]
        } else {
            let (dir, pattern) = source.rsplit_once('/').unwrap();
            let names = std::fs::read_dir(daemon.join(dir)).unwrap().flatten();
            let names = names.map(|entry| entry.file_name().to_string_lossy().into_owned());
            let matching: Vec<String> = match pattern.strip_prefix('*') {
                Some(suffix) => names.filter(|name| name.ends_with(suffix)).collect(),
                None => names.filter(|name| name == pattern).collect(),
            };
            assert!(!matching.is_empty(), "deb asset {source} matches nothing");
            matching
        };
        for name in sources {
            let path = match target.strip_suffix('/') {
                Some(dir) => format!("{dir}/{name}"),
                None => target.to_string(),
            };
            shipped.insert(path);
        }
    }
    assert_eq!(shipped, installed, "the .deb and install.sh differ");
    let conf_files = deb["conf-files"].as_array().unwrap();
    assert_eq!(conf_files[0].as_str(), Some("/etc/herd/herd.toml"));
}
