//! Default locations, shared so that herdd and herdctl agree without a config.

use std::env;
use std::path::PathBuf;

fn is_root() -> bool {
    effective_uid() == 0
}

fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn xdg(var: &str, fallback_under_home: &str) -> PathBuf {
    match env::var_os(var) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home = env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
            PathBuf::from(home).join(fallback_under_home)
        }
    }
}

/// `/etc/herd/herd.toml` as root, `$XDG_CONFIG_HOME/herd/herd.toml` otherwise.
pub fn default_config() -> PathBuf {
    if is_root() {
        PathBuf::from("/etc/herd/herd.toml")
    } else {
        xdg("XDG_CONFIG_HOME", ".config").join("herd/herd.toml")
    }
}

/// `/run/herd/herd.sock` as root, `$XDG_RUNTIME_DIR/herd/herd.sock` otherwise.
pub fn default_socket() -> PathBuf {
    if is_root() {
        PathBuf::from("/run/herd/herd.sock")
    } else {
        match env::var_os("XDG_RUNTIME_DIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("herd/herd.sock"),
            _ => env::temp_dir().join(format!("herd-{}/herd.sock", effective_uid())),
        }
    }
}

/// `/var/log/herd` as root, `$XDG_STATE_HOME/herd/log` otherwise.
pub fn default_log_dir() -> PathBuf {
    if is_root() {
        PathBuf::from("/var/log/herd")
    } else {
        xdg("XDG_STATE_HOME", ".local/state").join("herd/log")
    }
}

/// `/var/lib/herd` as root, `$XDG_STATE_HOME/herd` otherwise.
pub fn default_state_dir() -> PathBuf {
    if is_root() {
        PathBuf::from("/var/lib/herd")
    } else {
        xdg("XDG_STATE_HOME", ".local/state").join("herd")
    }
}
