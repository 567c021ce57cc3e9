//! Links herdd with packed relative relocations (`-z pack-relative-relocs`,
//! DT_RELR) where the C library knows them (glibc 2.36 or later): a
//! position-independent binary otherwise carries a 24-byte record for each
//! of its thousands of pointers to fix up at start, about 380 KiB of herdd's
//! file that stays resident in every herdd (bench/README.md, (d)). The
//! packed form is a few KiB. Elsewhere (another C library, an older glibc,
//! a cross build) herdd is linked as before.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let native = var("HOST") == var("TARGET");
    let gnu_linux = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if native && gnu_linux && glibc_knows_relr() {
        println!("cargo:rustc-link-arg-bin=herdd=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether this host's glibc is 2.36 or later (`getconf GNU_LIBC_VERSION`
/// says `glibc 2.36`): older ones cannot load a binary with DT_RELR.
fn glibc_knows_relr() -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|part| part.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (2, 36),
        _ => false,
    }
}
