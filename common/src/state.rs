//! States and exit statuses, spelled exactly as the protocol and herdctl
//! show them (docs/protocol.md).

use serde::{Deserialize, Serialize};
use std::fmt;

/// The state of a unit or one of its instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Not wanted: never started, or stopped.
    Inactive,
    /// Wanted, but held back by `after` (or, later, events and semaphores).
    Waiting,
    /// Spawned, not yet ready.
    Starting,
    /// Spawned and ready.
    Running,
    /// Stop signal sent, waiting for the process group to exit.
    Stopping,
    /// Finished with exit code 0 and not restarted (tasks, or services with
    /// `restart = "on-failure"`/`"never"`).
    Exited,
    /// Gave up: start limit hit, exec error, or a task that exited non-zero.
    Failed,
    /// Exited; waiting out the restart delay before the next start.
    Backoff,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Inactive => "inactive",
            State::Waiting => "waiting",
            State::Starting => "starting",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Exited => "exited",
            State::Failed => "failed",
            State::Backoff => "backoff",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of a pool task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Waiting for a free slot of its pool.
    Queued,
    Running,
    /// Ended with exit code 0.
    Exited,
    /// Ended otherwise: non-zero code, killed by a signal, or could not be executed.
    Failed,
    /// Removed from the queue, or stopped, by `cancel`, `pool terminate` or shutdown.
    Cancelled,
    /// Stopped because it ran longer than its timeout (and had no retry left).
    #[serde(rename = "timed_out")]
    TimedOut,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Exited => "exited",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
            TaskState::TimedOut => "timed out",
        }
    }

    /// Whether the task has ended (and can be joined without waiting).
    pub fn is_final(self) -> bool {
        match self {
            TaskState::Queued | TaskState::Running => false,
            TaskState::Exited | TaskState::Failed | TaskState::Cancelled | TaskState::TimedOut => {
                true
            }
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Exit {
    /// It called `exit(code)`.
    Code(i32),
    /// It was killed by a signal, named like `SIGKILL`.
    Signal(String),
    /// It ended while it was not herdd's child (adopted after a crash of
    /// herdd), so its status could not be collected. Counts as a failure.
    Unknown,
}

impl Exit {
    pub fn is_success(&self) -> bool {
        matches!(self, Exit::Code(0))
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Signal(signal) => write!(f, "killed by {signal}"),
            Exit::Unknown => write!(f, "status unknown, adopted"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_serialize_as_spec_spells_them() {
        let all = [
            (State::Inactive, "inactive"),
            (State::Waiting, "waiting"),
            (State::Starting, "starting"),
            (State::Running, "running"),
            (State::Stopping, "stopping"),
            (State::Exited, "exited"),
            (State::Failed, "failed"),
            (State::Backoff, "backoff"),
        ];
        for (state, text) in all {
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{text}\"")
            );
            assert_eq!(state.to_string(), text);
        }
    }

    #[test]
    fn exit_json_shape() {
        assert_eq!(
            serde_json::to_string(&Exit::Code(3)).unwrap(),
            r#"{"code":3}"#
        );
        assert_eq!(
            serde_json::to_string(&Exit::Signal("SIGKILL".into())).unwrap(),
            r#"{"signal":"SIGKILL"}"#
        );
        assert!(Exit::Code(0).is_success());
        assert!(!Exit::Signal("SIGTERM".into()).is_success());
    }
}
