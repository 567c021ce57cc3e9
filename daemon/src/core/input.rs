//! What the shell feeds into the core.

use super::semaphore::ClientId;
use super::Owner;
use herd_common::protocol::{OutputStream, Request, TaskId};
use herd_common::state::Exit;

/// Identifies one pending request so its reply finds its way back to the client.
pub type RequestId = u64;

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// herdd has started: start every `autostart` unit.
    Boot,
    /// A client request, from connection `client`.
    Request {
        id: RequestId,
        client: ClientId,
        request: Request,
    },
    /// A connection closed: its semaphore slots are released, its waits dropped.
    ClientGone { client: ClientId },
    /// The shell carried out [`super::Action::Spawn`] and the process exists.
    Spawned { owner: Owner, pid: u32 },
    /// The shell could not spawn: exec error, missing cwd, a user switch
    /// herdd (not root) cannot make.
    SpawnFailed { owner: Owner, error: String },
    /// The process was forked but its exec failed after all (a corrupt
    /// binary, say): as `SpawnFailed`, for the owner of `pid`.
    ExecFailed { pid: u32, error: String },
    /// A task wrote to its stdout or stderr.
    Output {
        task: TaskId,
        stream: OutputStream,
        data: Vec<u8>,
    },
    /// A message on the notify socket, from `pid` (in process group `pgid`).
    Notify {
        pid: u32,
        pgid: Option<u32>,
        fields: Vec<(String, String)>,
    },
    /// `waitpid` reported a child's end. Unknown pids (re-parented orphans) are ignored.
    Exited { pid: u32, exit: Exit },
    /// The earliest deadline from [`super::Supervisor::next_deadline`] has passed.
    Tick,
    /// The shell read the config again, for `reload` request `id` (or SIGHUP):
    /// the new config, or every error in it (then nothing changes).
    ConfigLoaded {
        id: Option<RequestId>,
        config: Result<Box<herd_config::Config>, String>,
    },
    /// SIGTERM/SIGINT: shut down gracefully. A second one stops joined processes at once.
    Shutdown,
    /// The instance's output cannot be written to its log file (`Some`: why;
    /// it is read and discarded meanwhile), or can be again (`None`).
    LogError {
        instance: super::InstanceId,
        error: Option<String>,
    },
    /// A health probe of `instance`'s process `pid` ended: passed, or
    /// why not (`probe exited 1: <first line of its output>`).
    ProbeResult {
        instance: super::InstanceId,
        pid: u32,
        result: Result<(), String>,
    },
}

impl Input {
    /// False for inputs that never change what the journal keeps: read-only
    /// requests and task output.
    pub fn changes_state(&self) -> bool {
        match self {
            Input::Request { request, .. } => !request.is_read_only(),
            Input::Output { .. } | Input::LogError { .. } => false,
            // Most results change nothing the journal keeps (health is not
            // in it): the core counts those that act (see `probe_result`).
            Input::ProbeResult { .. } => false,
            Input::Boot
            | Input::ClientGone { .. }
            | Input::Spawned { .. }
            | Input::SpawnFailed { .. }
            | Input::ExecFailed { .. }
            | Input::Notify { .. }
            | Input::Exited { .. }
            | Input::Tick
            | Input::ConfigLoaded { .. }
            | Input::Shutdown => true,
        }
    }
}
