//! Links herdctl statically (a static-pie executable) on linux-gnu.
//!
//! herdctl is a short-lived process whose start-up is its speed: a
//! dynamically linked `herdctl status` spends much of its time in glibc's
//! loader (mapping and relocating libc, libm and the unwinder libgcc_s,
//! whose constructor runs `cpuid` again, and that traps to the hypervisor in
//! a virtual machine). A static-pie herdctl has no loader and no shared
//! object; the kernel maps one file and the C start-up relocates it in
//! place, so its address is still randomised (bench/README.md, `bench/ctl`).
//!
//! `-C target-feature=+crt-static` would do this, but cargo applies it to
//! every binary and, without `--target`, to build scripts and proc-macros
//! too (which cannot be static), and herdd must stay dynamic: its user and
//! group lookups need glibc's loadable NSS modules (`systemd`, `sss`...). So
//! this script does it for the herdctl binary alone, with what rustc already
//! passes the linker: for each library the standard library asks for
//! (`-lc`, `-lm`, `-lgcc_s`...), a linker script of that name, found before
//! the system's, names the static archive instead (libgcc_s: gcc's
//! `libgcc_eh.a`, exactly as Rust's own static builds), and `-static-pie`
//! picks the start files and leaves out the loader. Unwinding, backtraces
//! and panics work as before. herdctl does no NSS lookup of its own; a
//! static glibc still reads `/etc/hosts` and DNS (built in) for a
//! `--dbus tcp:host=...` address.
//!
//! Where glibc's static archives are missing (`libc6-dev` has them on
//! Debian; `glibc-static` on Fedora), or with `HERDCTL_DYNAMIC=1` (a
//! distribution whose policy forbids static linking), herdctl is linked
//! dynamically, with only the unwinder linked in. The crate's tests read
//! which it was from `HERDCTL_LINKED` (ctl/tests/startup.rs).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The libraries the standard library and the libc crate ask the linker
/// for on linux-gnu, besides the unwinder.
const C_LIBRARIES: [&str; 6] = ["c", "m", "rt", "pthread", "dl", "util"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=HERDCTL_DYNAMIC");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let var = |name: &str| env::var(name).unwrap_or_default();
    let static_crt = var("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|feature| feature == "crt-static");
    // Elsewhere (musl, another system) the standard library does not ask for
    // libgcc_s, and nothing is needed; a build for `+crt-static` is already
    // static (a static-pie on linux-gnu).
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" {
        println!("cargo:rustc-env=HERDCTL_LINKED=as-the-target-says");
        return;
    }
    if static_crt {
        println!("cargo:rustc-env=HERDCTL_LINKED=static");
        return;
    }
    let out = PathBuf::from(var("OUT_DIR"));

    // Every target of the package (the tests' harnesses too) takes gcc's
    // static unwinder instead of the shared libgcc_s.
    let unwinder = out.join("static-libgcc");
    write_script(&unwinder, "gcc_s", "INPUT(-lgcc_eh)");
    println!("cargo:rustc-link-search=native={}", unwinder.display());

    let linker = env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".into());
    let archives = if var("HERDCTL_DYNAMIC") == "1" {
        Err("HERDCTL_DYNAMIC=1".to_string())
    } else {
        static_archives(&linker)
    };
    match archives {
        Ok(archives) => {
            // Only the herdctl binary sees these names: a library linked
            // statically into a dynamically linked test harness would break it.
            let dir = out.join("static-libc");
            for name in C_LIBRARIES {
                let script = if name == "c" {
                    // libc and libgcc need each other's symbols.
                    format!(
                        "GROUP({} {} {})",
                        archives[name], archives["gcc"], archives["gcc_eh"]
                    )
                } else {
                    format!("INPUT({})", archives[name])
                };
                write_script(&dir, name, &script);
            }
            println!("cargo:rustc-link-arg-bin=herdctl=-L{}", dir.display());
            println!("cargo:rustc-link-arg-bin=herdctl=-static-pie");
            println!("cargo:rustc-env=HERDCTL_LINKED=static");
        }
        Err(why) => {
            if why != "HERDCTL_DYNAMIC=1" {
                println!("cargo:warning=herdctl is linked dynamically: {why}");
            }
            println!("cargo:rustc-env=HERDCTL_LINKED=dynamic");
        }
    }
}

/// Where the linker finds each static archive herdctl needs, or why not.
fn static_archives(
    linker: &str,
) -> Result<std::collections::HashMap<&'static str, String>, String> {
    let mut found = std::collections::HashMap::new();
    for name in C_LIBRARIES.into_iter().chain(["gcc", "gcc_eh"]) {
        let file = format!("lib{name}.a");
        let output = Command::new(linker)
            .arg(format!("-print-file-name={file}"))
            .output()
            .map_err(|err| format!("cannot run {linker}: {err}"))?;
        let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
        // The compiler echoes the bare name when it does not find the file.
        if !output.status.success() || !Path::new(&path).is_absolute() || !Path::new(&path).exists()
        {
            return Err(format!(
                "{linker} finds no {file} (glibc's static libraries: libc6-dev, glibc-static)"
            ));
        }
        found.insert(name, path);
    }
    Ok(found)
}

/// Writes the linker script `lib<name>.so` into `dir`: the linker takes it
/// for the shared library of that name and reads what it names instead.
fn write_script(dir: &Path, name: &str, script: &str) {
    fs::create_dir_all(dir).expect("create a directory in OUT_DIR");
    fs::write(dir.join(format!("lib{name}.so")), format!("{script}\n"))
        .expect("write a linker script");
}
