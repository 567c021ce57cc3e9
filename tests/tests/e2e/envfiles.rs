//! `env_file`: variables from files, read at each start, under `env`, and
//! never shown in `status` or herdd's log.

use crate::harness::*;
use std::process::Command;

const SECRET: &str = "hunter2-very-secret";

#[test]
fn env_files_load_in_order_under_env_and_stay_secret() {
    let herd = Herd::configure(
        r#"
[service.web]
command = ["/bin/sh", "-c", "echo \"$A|$B|$C|$D\" > $DIR/out.tmp && mv $DIR/out.tmp $DIR/out; exec sleep 1000"]
env_file = ["a.env", "-missing.env", "$DIR/b.env"]
env = { C = "from-env" }

[pool.p]
size = 1
env_file = "a.env"
"#,
    );
    std::fs::write(
        herd.path("a.env"),
        format!("# the database\nA=\"{SECRET}\"\nB=from-a\nC=from-file\nD='x y'\n"),
    )
    .unwrap();
    std::fs::write(herd.path("b.env"), "B = from-b\n").unwrap();
    let herd = herd.launch();
    let out = herd.path("out");
    wait_until("web wrote its environment", || out.exists());
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("{SECRET}|from-b|from-env|x y\n")
    );
    // Pool tasks get them too.
    let id = herd.ok(&["submit", "p", "--", "/bin/sh", "-c", "echo $B"]);
    herd.ok(&["join", id.trim()]);
    assert_eq!(herd.ok(&["output", id.trim()]), "from-a\n");

    // A restart reads the files again.
    std::fs::remove_file(&out).unwrap();
    std::fs::write(herd.path("b.env"), "B=changed\n").unwrap();
    herd.ok(&["restart", "web"]);
    wait_until("web wrote its environment again", || out.exists());
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("{SECRET}|changed|from-env|x y\n")
    );

    let status = herd.ok(&["--json", "status", "web"]);
    assert!(!status.contains(SECRET), "{status}");
    assert!(!herd.ok(&["--json", "tasks"]).contains(SECRET));
    assert!(!herd.log().contains(SECRET), "{}", herd.log());
}

#[test]
fn a_bad_or_missing_env_file_fails_the_start_naming_file_and_line() {
    let herd = Herd::configure(
        r#"
[service.bad]
command = ["/bin/sleep", "1000"]
env_file = ["bad.env"]

[service.gone]
command = ["/bin/sleep", "1000"]
env_file = ["/no/such/herd.env"]
"#,
    );
    std::fs::write(herd.path("bad.env"), format!("A=1\n{SECRET}\n")).unwrap();
    let bad = herd.path("bad.env").display().to_string();

    let check = Command::new(bin("herdd"))
        .arg("--check-config")
        .arg("--config")
        .arg(&herd.config)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    let err = stderr(&check);
    assert!(
        err.contains(&format!("bad: env_file {bad}:2: expected KEY=VALUE")),
        "{err}"
    );
    assert!(
        err.contains("gone: env_file /no/such/herd.env: No such file or directory"),
        "{err}"
    );
    assert!(!err.contains(SECRET), "{err}");

    let herd = herd.launch();
    herd.wait_state("bad", "failed");
    herd.wait_state("gone", "failed");
    assert_eq!(
        herd.instance("bad")["reason"],
        format!("env_file {bad}:2: expected KEY=VALUE")
    );
    assert_eq!(
        herd.instance("gone")["reason"],
        "env_file /no/such/herd.env: No such file or directory"
    );
    assert!(!herd.log().contains(SECRET));

    // Fixed, it starts.
    std::fs::write(herd.path("bad.env"), "A=1\n").unwrap();
    herd.ok(&["start", "bad"]);
    herd.wait_state("bad", "running");
}
