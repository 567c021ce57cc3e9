//! How the herdctl binary is linked: its start-up is what a `herdctl status`
//! costs, so it loads no shared object it can do without (ctl/build.rs).
//! The build script says which way it linked herdctl in `HERDCTL_LINKED`.

use std::path::Path;

const HERDCTL: &str = env!("CARGO_BIN_EXE_herdctl");

#[cfg(all(target_os = "linux", target_env = "gnu"))]
/// `PT_INTERP`: the program header naming the dynamic loader.
const PT_INTERP: u32 = 3;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
/// `ET_DYN`: a position-independent executable (or a shared object).
const ET_DYN: u16 = 3;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
/// What the ELF header of a 64-bit little-endian executable says about
/// loading it: its type, and the types of its program headers.
fn elf_header(path: &Path) -> (u16, Vec<u32>) {
    let file = std::fs::read(path).expect("read the herdctl binary");
    assert_eq!(&file[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(
        (file[4], file[5]),
        (2, 1),
        "not a 64-bit little-endian ELF file"
    );
    let u16_at = |at: usize| u16::from_le_bytes(file[at..at + 2].try_into().unwrap());
    let u32_at = |at: usize| u32::from_le_bytes(file[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(file[at..at + 8].try_into().unwrap());
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36) as usize, u16_at(0x38));
    let types = (0..phnum as usize)
        .map(|i| u32_at(phoff + i * phentsize))
        .collect();
    (u16_at(0x10), types)
}

#[cfg(all(
    target_os = "linux",
    target_env = "gnu",
    target_endian = "little",
    target_pointer_width = "64"
))]
#[test]
fn herdctl_is_linked_as_the_build_script_said() {
    let (kind, headers) = elf_header(Path::new(HERDCTL));
    match env!("HERDCTL_LINKED") {
        // No loader, so no shared object at all; and still position
        // independent, so its address is randomised.
        "static" => {
            assert!(
                !headers.contains(&PT_INTERP),
                "herdctl names a dynamic loader: {headers:?}"
            );
            assert_eq!(kind, ET_DYN, "herdctl is not position independent");
        }
        // HERDCTL_DYNAMIC=1, or glibc's static archives are missing: the
        // loader maps libc, but the unwinder is linked in, not loaded.
        "dynamic" => {
            assert!(headers.contains(&PT_INTERP), "{headers:?}");
            let objects = loaded_objects();
            assert!(objects.contains("libc.so"), "{objects}");
            assert!(!objects.contains("libgcc_s"), "{objects}");
        }
        other => panic!("the build script linked herdctl for another target ({other})"),
    }
}

/// herdctl, however it is linked, starts, reads its arguments, prints, and
/// reports a socket it cannot reach with its own exit code.
#[cfg(target_os = "linux")]
#[test]
fn herdctl_runs_and_reports_a_missing_herdd() {
    let version = std::process::Command::new(HERDCTL)
        .arg("--version")
        .output()
        .expect("run herdctl");
    assert!(version.status.success(), "{version:?}");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("herdctl {}", env!("CARGO_PKG_VERSION"))
    );

    let dir = tempfile::tempdir().expect("a temp dir");
    let socket = dir.path().join("none.sock");
    let status = std::process::Command::new(HERDCTL)
        .arg("--socket")
        .arg(&socket)
        .arg("status")
        .output()
        .expect("run herdctl");
    // 6: herdd unreachable, with the socket named.
    assert_eq!(status.status.code(), Some(6), "{status:?}");
    assert!(
        String::from_utf8_lossy(&status.stderr).contains("none.sock"),
        "{status:?}"
    );
}

/// The shared objects glibc's loader would map for herdctl, without running
/// it (`LD_TRACE_LOADED_OBJECTS`, what `ldd` uses).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn loaded_objects() -> String {
    let output = std::process::Command::new(HERDCTL)
        .env("LD_TRACE_LOADED_OBJECTS", "1")
        .output()
        .expect("run herdctl");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).expect("the loader's list is text")
}
