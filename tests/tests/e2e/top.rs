//! `herdctl top` in batch mode: plain frames on stdout.

use crate::harness::*;

#[test]
fn batch_mode_prints_n_frames_naming_every_instance_and_pool() {
    let herd = Herd::start(
        r#"
[service.web]
command = ["sleep", "600"]
instances = 2
[service.burn]
command = ["sh", "-c", "while :; do :; done"]
[pool.convert]
size = 2
"#,
    );
    herd.wait_state("web@1", "running");
    herd.wait_state("burn", "running");
    let out = herd.ok(&["top", "-b", "-n", "2", "-d", "0.3"]);
    let headers = out.lines().filter(|l| l.starts_with("herd - ")).count();
    assert_eq!(headers, 2, "two frames:\n{out}");
    for name in ["web@0", "web@1", "burn", "convert"] {
        assert_eq!(
            out.lines()
                .filter(|l| l.starts_with(&format!("{name} ")))
                .count(),
            2,
            "{name} in each frame:\n{out}"
        );
    }
    // The second frame has a CPU rate for every running instance.
    let last = &out[out.rfind("herd - ").unwrap()..];
    let burn = last.lines().find(|l| l.starts_with("burn ")).unwrap();
    let cpu: f64 = burn.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(cpu >= 0.0, "{burn}");
}

#[test]
fn top_needs_a_number_of_frames_that_is_a_number() {
    let herd = Herd::start("[service.web]\ncommand = [\"sleep\", \"600\"]\n");
    let out = herd.ctl(&["top", "-b", "-n", "many"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
}
