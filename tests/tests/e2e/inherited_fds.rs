//! Children get stdin, stdout and stderr, not what herdd inherited.

use crate::harness::*;
use std::os::unix::fs::PermissionsExt;

fn fds(pid: u32) -> Vec<u32> {
    let mut fds: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds
}

#[test]
fn a_descriptor_herdd_inherited_reaches_no_service_and_no_task() {
    let mut herd = Herd::configure(
        r#"
[service.web]
command = ["/bin/sleep", "1000"]

[pool.p]
size = 1
"#,
    );
    // herdd started the way a shell script would: with fd 7 open, not
    // close-on-exec.
    let wrapper = herd.path("herdd-with-fd-7");
    let script = format!(
        "#!/bin/sh\nexec 7>{}\nexec {} \"$@\"\n",
        herd.path("leaked").display(),
        bin("herdd").display()
    );
    std::fs::write(&wrapper, script).unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    herd.herdd = wrapper;
    let herd = herd.launch();
    herd.wait_state("web", "running");
    assert!(
        fds(herd.daemon_pid()).contains(&7),
        "the test's premise: herdd has fd 7"
    );
    assert_eq!(fds(herd.pid_of("web")), [0, 1, 2]);
    let id = herd.ok(&[
        "submit",
        "p",
        "--",
        "/bin/sh",
        "-c",
        "if [ -e /proc/self/fd/7 ]; then exit 9; fi",
    ]);
    let out = herd.ctl(&["join", id.trim()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // Also after a re-exec (the new image inherits only what is handed over).
    herd.ok(&["daemon-reexec"]);
    herd.ok(&["restart", "web"]);
    herd.wait_state("web", "running");
    assert_eq!(fds(herd.pid_of("web")), [0, 1, 2]);
}
