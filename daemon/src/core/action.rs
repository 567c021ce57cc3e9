//! What the core asks the shell to do.

use super::lifecycle::Lifecycle;
use super::{Owner, RequestId};
use herd_common::protocol::Reply;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Fork/exec a process in its own process group; answer with
    /// `Input::Spawned` or `Input::SpawnFailed`. (Boxed: the spec is by
    /// far the largest action.)
    Spawn { owner: Owner, spec: Box<SpawnSpec> },
    /// Send `signal` to the process group led by `pid`.
    Signal { pid: u32, signal: i32 },
    /// SIGKILL whatever is left in the process group of `pgid`, whose leader
    /// has just exited, so no stray process outlives its instance.
    KillLeftovers { pgid: u32 },
    /// `pool terminate`: once the pool's stopped tasks have exited, SIGKILL
    /// whatever they left behind in the pool's shared cgroup (processes that
    /// left their task's process group with `setsid`).
    KillPoolLeftovers { pool: String },
    /// Answer request `id`.
    Reply { id: RequestId, reply: Reply },
    /// Something happened that logs and the event stream should show.
    Publish(Lifecycle),
    /// Read the config file again and answer with `Input::ConfigLoaded`.
    ReadConfig { id: Option<RequestId> },
    /// `daemon-reexec`: once the replies are out, re-execute herdd with this
    /// state (the shell takes the snapshot).
    Reexec,
    /// Run a health probe of `instance`'s process `pid` (off the event
    /// loop, killed at its timeout); answer with `Input::ProbeResult`.
    Probe {
        instance: super::InstanceId,
        pid: u32,
        spec: Box<super::health::ProbeSpec>,
    },
    /// Stop the running probe of `instance`: its process is stopping or
    /// gone. No result comes back.
    CancelProbe { instance: super::InstanceId },
    /// Spawn the `on_failure` hook of `subject` as [`Action::Spawn`] does
    /// (owner [`Owner::Hook`]), with `HERD_LOG_TAIL` naming a file that
    /// holds `tail`.
    RunHook {
        subject: super::hooks::HookSubject,
        spec: Box<SpawnSpec>,
        tail: super::hooks::LogTail,
    },
}

/// Everything the shell needs to start one process, `{instance}` already substituted.
#[derive(Debug, Clone, PartialEq)]
pub struct SpawnSpec {
    pub argv: Vec<String>,
    /// Added to herdd's own environment (including `HERD_UNIT` and `HERD_INSTANCE`).
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    /// Who it runs as, looked up when the config was loaded.
    pub user: Option<herd_config::User>,
    pub group: Option<herd_config::Group>,
    pub umask: Option<u32>,
    /// `(resource, limit)` pairs; soft = hard = limit.
    pub rlimits: Vec<(herd_config::Rlimit, u64)>,
    /// `no_new_privs`, `clear_env` and the cgroup limits (boxed: they are
    /// rarely set, and `Action` stays small).
    pub confinement: Box<herd_config::Confinement>,
    /// Dies with herdd (parent-death signal) when true.
    pub daemon: bool,
    /// Where its stdout and stderr go.
    pub output: Output,
    /// `ready = "notify"`: give it `NOTIFY_SOCKET`.
    pub notify: bool,
    /// `env_file`: read by the shell just before the fork (so each start
    /// sees the files' current contents), under `env`.
    pub env_files: Vec<herd_config::env_file::EnvFile>,
    /// `sockets`: the names of the herd-held listening sockets it gets as
    /// descriptors 3.. (the shell looks up the descriptors).
    pub sockets: Vec<String>,
    /// The descriptors of `sockets`, filled in by the shell just before it
    /// spawns (the core never sees descriptors).
    pub listen_fds: Vec<i32>,
}

/// Where a process's stdout and stderr go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// herdd's own stdout and stderr (`log = "inherit"`).
    Inherit,
    /// `/dev/null` (`log = "off"`).
    Discard,
    /// Pipes back to herdd, kept in memory (`Input::Output`): pool tasks.
    Capture,
    /// Pipes back to herdd, whose lines go `to` the instance's log file
    /// (timestamped and rotated), journald or herdd's stdout. `instance`
    /// names the instance there: `web@2`.
    Log { instance: String, to: LogTarget },
}

/// Where the lines of a piped instance go (`log = "file" | "journal" | "console"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogTarget {
    /// `<log_dir>/<unit>/<instance>.log`.
    File,
    /// journald's native socket.
    Journal,
    /// herdd's own stdout, prefixed with the instance's name.
    Console,
}

impl Output {
    /// Whether the process writes into pipes herdd reads.
    pub fn is_piped(&self) -> bool {
        match self {
            Output::Capture | Output::Log { .. } => true,
            Output::Inherit | Output::Discard => false,
        }
    }
}
