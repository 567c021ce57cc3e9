//! Lifecycle notices: what happened to whom. The shell logs them; the
//! `events` stream will carry the same values.

use herd_common::state::Exit;
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Lifecycle {
    Started {
        instance: String,
        pid: u32,
    },
    Ready {
        instance: String,
    },
    Exited {
        instance: String,
        pid: u32,
        exit: Exit,
    },
    Restarting {
        instance: String,
        delay: Duration,
    },
    Stopping {
        instance: String,
        pid: u32,
        signal: String,
    },
    Failed {
        instance: String,
        reason: String,
    },
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lifecycle::Started { instance, pid } => write!(f, "{instance}: started (pid {pid})"),
            Lifecycle::Ready { instance } => write!(f, "{instance}: ready"),
            Lifecycle::Exited {
                instance,
                pid,
                exit,
            } => {
                write!(f, "{instance}: pid {pid} exited ({exit})")
            }
            Lifecycle::Restarting { instance, delay } => {
                write!(f, "{instance}: restarting in {delay:?}")
            }
            Lifecycle::Stopping {
                instance,
                pid,
                signal,
            } => write!(f, "{instance}: stopping pid {pid} with {signal}"),
            Lifecycle::Failed { instance, reason } => write!(f, "{instance}: failed: {reason}"),
        }
    }
}
