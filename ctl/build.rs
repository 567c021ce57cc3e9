//! Links herdctl's unwinder statically (gcc's `-static-libgcc`, for Rust).
//!
//! On linux-gnu the standard library asks the linker for `-lgcc_s`, the
//! shared unwinder. Loading that library costs every herdctl run a second
//! shared object to map and relocate and, worse, its constructor's `cpuid`
//! instructions, which trap to the hypervisor in a virtual machine: about
//! 5 % of a `herdctl status` (bench/README.md, `bench/ctl`), as much as
//! herdctl's own code. herdctl is a short-lived process whose start-up is
//! its speed, so its unwinder comes from gcc's static `libgcc_eh.a`
//! instead, exactly as in Rust's own fully static glibc builds:
//! a linker script named `libgcc_s.so`, found before the system's, points
//! the linker there. Unwinding and backtraces work as before.
//!
//! Fully static linking (`-C target-feature=+crt-static`) would also drop
//! libc's dynamic loading, but cargo applies that flag to every binary of
//! the workspace alike, herdd included, whose user and group lookups need
//! glibc's dynamically loaded NSS modules.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |name: &str| env::var(name).unwrap_or_default();
    let static_crt = var("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|feature| feature == "crt-static");
    // Elsewhere (musl, a static build) the standard library does not ask for
    // libgcc_s, and nothing is needed.
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" || static_crt {
        return;
    }
    let dir = PathBuf::from(var("OUT_DIR")).join("static-libgcc");
    fs::create_dir_all(&dir).expect("create OUT_DIR/static-libgcc");
    fs::write(dir.join("libgcc_s.so"), "INPUT(-lgcc_eh)\n").expect("write the linker script");
    println!("cargo:rustc-link-search=native={}", dir.display());
}
