//! How the herdctl binary is linked: its start-up is what a `herdctl status`
//! costs, so it loads no shared object it can do without (ctl/build.rs).

/// The shared objects glibc's loader would map for herdctl, without running
/// it (`LD_TRACE_LOADED_OBJECTS`, what `ldd` uses).
#[cfg(all(
    target_os = "linux",
    target_env = "gnu",
    not(target_feature = "crt-static")
))]
fn loaded_objects() -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_herdctl"))
        .env("LD_TRACE_LOADED_OBJECTS", "1")
        .output()
        .expect("run herdctl");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).expect("the loader's list is text")
}

#[cfg(all(
    target_os = "linux",
    target_env = "gnu",
    not(target_feature = "crt-static")
))]
#[test]
fn the_unwinder_is_linked_in_not_loaded() {
    let objects = loaded_objects();
    // The list is the real one: libc is in it.
    assert!(objects.contains("libc.so"), "{objects}");
    assert!(!objects.contains("libgcc_s"), "{objects}");
}
