//! The Python client (clients/python) against the real herdd: its own
//! `unittest` suite, run here so that the README's test command runs it.

use crate::docs::repo_root;
use crate::harness::*;
use std::process::Command;

#[test]
fn the_python_client_passes_its_unittest_suite() {
    let package = repo_root().join("clients/python");
    let run = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "tests", "-t", ".", "-v"])
        .current_dir(&package)
        .env("HERDD", bin("herdd"))
        .env("HERDCTL", bin("herdctl"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("HERD_SOCKET")
        .output();
    let out = match run {
        Ok(out) => out,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            println!("note: python3 is not installed; the Python client was not tested");
            return;
        }
        Err(err) => panic!("cannot run python3: {err}"),
    };
    let report = stderr(&out);
    assert!(
        out.status.success(),
        "python3 -m unittest failed:\n{report}"
    );
    // Not vacuous: the suite ran, against herdd.
    assert!(report.contains("\nOK"), "{report}");
    assert!(
        report.contains("test_submit_returns_an_async_result"),
        "{report}"
    );
    assert!(!report.contains("skipped 'no herdd"), "{report}");
}
