//! Lifecycle events: what happened to whom. herdd logs them and streams them
//! to `herdctl events` as JSON lines `{"time": ..., "type": ..., ...}`.

use crate::protocol::TaskId;
use crate::state::Exit;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Lifecycle {
    /// A process was spawned for an instance (`web@2`) or a task (`convert#17`).
    Started {
        instance: String,
        pid: u32,
        /// The task, when a pool task's process started.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<TaskRef>,
    },
    Ready {
        instance: String,
    },
    Exited {
        instance: String,
        pid: u32,
        exit: Exit,
        /// The task, when a pool task's process exited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<TaskRef>,
    },
    Restarting {
        instance: String,
        delay_ms: u64,
    },
    Stopping {
        instance: String,
        pid: u32,
        signal: String,
    },
    Failed {
        instance: String,
        reason: String,
        /// The task, when a pool task could not be run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<TaskRef>,
    },
    TaskQueued {
        task: TaskId,
        pool: String,
    },
    SemaphoreAcquired {
        semaphore: String,
        holder: String,
    },
    SemaphoreReleased {
        semaphore: String,
        holder: String,
    },
    EventChanged {
        event: String,
        set: bool,
    },
    /// Only in the stream: this subscriber fell behind and missed `missed` events.
    Lagged {
        missed: u64,
    },
    /// A ready instance sent no `WATCHDOG=1` within its `watchdog` time: it
    /// is stopped and started again.
    WatchdogExpired {
        instance: String,
        pid: u32,
        timeout_ms: u64,
    },
    /// A rolling restart of `unit` restarts `instance`: step `step` of `steps`.
    RolloutStep {
        unit: String,
        instance: String,
        step: u32,
        steps: u32,
    },
    /// A rolling restart of `unit` ended: every instance replaced and ready,
    /// or stopped at the first that was not (`error` says which and why).
    RolloutEnded {
        unit: String,
        error: Option<String>,
    },
    /// An instance's health probe passed for the first time since it
    /// started, or again after failures.
    Healthy {
        instance: String,
    },
    /// A running instance failed its health probe `retries` times in a row:
    /// it is stopped and started again. `reason` is the last failure.
    Unhealthy {
        instance: String,
        pid: u32,
        reason: String,
    },
    /// The `on_failure` hook of `unit` (a unit or a pool) was spawned for
    /// the failure of `instance` (`web@2`, `convert#17`).
    HookStarted {
        unit: String,
        instance: String,
        pid: u32,
    },
    /// That hook's process ended (`timed_out`: killed at its `on_failure_timeout`).
    HookExited {
        unit: String,
        instance: String,
        pid: u32,
        exit: Exit,
        timed_out: bool,
    },
    /// That hook could not be executed: it is not run again for `unit`
    /// until the next reload.
    HookFailed {
        unit: String,
        instance: String,
        error: String,
    },
    /// A task's timer came due (or `herdctl start` ran it now): `outcome`
    /// says what happened: `started`, `submitted to pool P as task N`,
    /// `queued` or `skipped` (the previous run was still going).
    TimerFired {
        unit: String,
        outcome: String,
    },
}

/// A pool task named in an event, so that front ends need not parse its
/// label (`convert#17 (name)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRef {
    pub id: TaskId,
    pub pool: String,
}

/// One line of `herdctl events --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLine {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    #[serde(flatten)]
    pub event: Lifecycle,
}

impl Lifecycle {
    /// The everyday events of a pool task: queued, started, and exited with
    /// success. A busy pool has thousands a minute; herdd logs them at
    /// `debug` (they stay in `herdctl events` and `herdctl tasks`), so that
    /// they neither bury its other lines nor use up journald's rate limit.
    pub fn is_routine_task_event(&self) -> bool {
        match self {
            Lifecycle::TaskQueued { .. } => true,
            Lifecycle::Started { task, .. } => task.is_some(),
            Lifecycle::Exited { task, exit, .. } => task.is_some() && exit.is_success(),
            _ => false,
        }
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lifecycle::Started { instance, pid, .. } => write!(f, "{instance}: started (pid {pid})"),
            Lifecycle::Ready { instance } => write!(f, "{instance}: ready"),
            Lifecycle::Exited {
                instance,
                pid,
                exit,
                ..
            } => {
                write!(f, "{instance}: pid {pid} exited ({exit})")
            }
            Lifecycle::Restarting { instance, delay_ms } => {
                write!(f, "{instance}: restarting in {delay_ms}ms")
            }
            Lifecycle::Stopping {
                instance,
                pid,
                signal,
            } => write!(f, "{instance}: stopping pid {pid} with {signal}"),
            Lifecycle::Failed {
                instance, reason, ..
            } => write!(f, "{instance}: failed: {reason}"),
            Lifecycle::TaskQueued { task, pool } => write!(f, "{pool}#{task}: queued"),
            Lifecycle::SemaphoreAcquired { semaphore, holder } => {
                write!(f, "semaphore {semaphore}: acquired by {holder}")
            }
            Lifecycle::SemaphoreReleased { semaphore, holder } => {
                write!(f, "semaphore {semaphore}: released by {holder}")
            }
            Lifecycle::EventChanged { event, set } => {
                write!(f, "event {event}: {}", if *set { "set" } else { "cleared" })
            }
            Lifecycle::Lagged { missed } => write!(f, "missed {missed} events (reader too slow)"),
            Lifecycle::WatchdogExpired {
                instance,
                pid,
                timeout_ms,
            } => write!(
                f,
                "{instance}: watchdog: pid {pid} sent no WATCHDOG=1 within {timeout_ms}ms; restarting"
            ),
            Lifecycle::RolloutStep {
                unit,
                instance,
                step,
                steps,
            } => write!(f, "{unit}: rolling restart {step}/{steps}: {instance}"),
            Lifecycle::RolloutEnded { unit, error: None } => {
                write!(f, "{unit}: rolling restart done")
            }
            Lifecycle::RolloutEnded {
                unit,
                error: Some(error),
            } => write!(f, "{unit}: rolling restart stopped: {error}"),
            Lifecycle::Healthy { instance } => write!(f, "{instance}: healthy"),
            Lifecycle::Unhealthy {
                instance,
                pid,
                reason,
            } => write!(f, "{instance}: unhealthy: {reason}; restarting pid {pid}"),
            Lifecycle::HookStarted { instance, pid, .. } => {
                write!(f, "{instance}: on_failure hook started (pid {pid})")
            }
            Lifecycle::HookExited {
                instance,
                pid,
                exit,
                timed_out,
                ..
            } => {
                let killed = if *timed_out { ", killed at its timeout" } else { "" };
                write!(f, "{instance}: on_failure hook pid {pid} exited ({exit}{killed})")
            }
            Lifecycle::HookFailed {
                unit,
                instance,
                error,
            } => write!(
                f,
                "{instance}: on_failure hook cannot run: {error}; not run again for {unit} until reload"
            ),
            Lifecycle::TimerFired { unit, outcome } => write!(f, "{unit}: timer: {outcome}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_event_names_its_task() {
        let exited = |task| Lifecycle::Exited {
            instance: "p#17".into(),
            pid: 42,
            exit: Exit::Code(0),
            task,
        };
        let task = TaskRef {
            id: 17,
            pool: "p".into(),
        };
        let json = serde_json::to_value(exited(Some(task.clone()))).unwrap();
        assert_eq!(json["task"], serde_json::json!({"id": 17, "pool": "p"}));
        let json = serde_json::to_value(exited(None)).unwrap();
        assert!(json.get("task").is_none(), "{json}");
        let back: Lifecycle = serde_json::from_value(json).unwrap();
        assert_eq!(back, exited(None));
    }

    #[test]
    fn json_shape() {
        let line = EventLine {
            time: "2026-11-29T17:00:00.000Z".into(),
            event: Lifecycle::Exited {
                instance: "web@1".into(),
                pid: 42,
                exit: Exit::Signal("SIGKILL".into()),
                task: None,
            },
        };
        let json = serde_json::to_string(&line).unwrap();
        assert_eq!(
            json,
            r#"{"time":"2026-11-29T17:00:00.000Z","type":"exited","instance":"web@1","pid":42,"exit":{"signal":"SIGKILL"}}"#
        );
        assert_eq!(serde_json::from_str::<EventLine>(&json).unwrap(), line);
    }
}
