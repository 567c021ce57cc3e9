//! Lifecycle events as D-Bus signals: `Event` with the JSON line, plus
//! typed ones derived from the event itself.

use super::interface::Manager;
use crate::shell::events::{EventHub, Next};
use herd_common::events::{EventLine, Lifecycle};
use std::sync::Arc;
use tracing::debug;
use zbus::object_server::SignalEmitter;

/// Emits every published lifecycle event as signals.
pub async fn emit_events(hub: Arc<EventHub>, emitter: SignalEmitter<'static>) {
    let (_, mut live) = hub.subscribe();
    loop {
        let event = match live.next().await {
            Next::Event(event) | Next::Lagged(event) => event,
            Next::Closed => return,
        };
        if let Err(err) = emit(&emitter, &event).await {
            debug!(error = %err, "cannot emit a D-Bus signal");
        }
    }
}

/// `Event` with the JSON line (encoded here, once), then the typed signal.
async fn emit(emitter: &SignalEmitter<'_>, line: &EventLine) -> zbus::Result<()> {
    let json = serde_json::to_string(line).unwrap_or_default();
    Manager::event(emitter, &json).await?;
    let event = &line.event;
    match event {
        Lifecycle::Started { instance, .. }
        | Lifecycle::Ready { instance }
        | Lifecycle::Restarting { instance, .. }
        | Lifecycle::Stopping { instance, .. }
        | Lifecycle::WatchdogExpired { instance, .. }
        | Lifecycle::Healthy { instance }
        | Lifecycle::Unhealthy { instance, .. } => {
            Manager::instance_changed(emitter, instance, change(event)).await?;
        }
        Lifecycle::Exited {
            instance,
            exit,
            task,
            ..
        } => {
            Manager::instance_changed(emitter, instance, change(event)).await?;
            if let Some(task) = task {
                let result = exit.to_string();
                let success = exit.is_success();
                Manager::task_finished(emitter, task.id, &task.pool, success, &result).await?;
            }
        }
        Lifecycle::Failed {
            instance,
            reason,
            task,
        } => {
            Manager::instance_changed(emitter, instance, change(event)).await?;
            // A task fails without exiting only when it could not be run.
            if let Some(task) = task {
                Manager::task_finished(emitter, task.id, &task.pool, false, reason).await?;
            }
        }
        Lifecycle::EventChanged { event, set } => {
            Manager::event_changed(emitter, event, *set).await?;
        }
        Lifecycle::TaskQueued { .. }
        | Lifecycle::SemaphoreAcquired { .. }
        | Lifecycle::SemaphoreReleased { .. }
        | Lifecycle::RolloutStep { .. }
        | Lifecycle::RolloutEnded { .. }
        | Lifecycle::HookStarted { .. }
        | Lifecycle::HookExited { .. }
        | Lifecycle::HookFailed { .. }
        | Lifecycle::TimerFired { .. }
        | Lifecycle::Lagged { .. } => {}
    }
    Ok(())
}

/// The event's type, as in its JSON (`started`).
pub(super) fn change(event: &Lifecycle) -> &'static str {
    match event {
        Lifecycle::Started { .. } => "started",
        Lifecycle::Ready { .. } => "ready",
        Lifecycle::Exited { .. } => "exited",
        Lifecycle::Restarting { .. } => "restarting",
        Lifecycle::Stopping { .. } => "stopping",
        Lifecycle::Failed { .. } => "failed",
        Lifecycle::TaskQueued { .. } => "task_queued",
        Lifecycle::SemaphoreAcquired { .. } => "semaphore_acquired",
        Lifecycle::SemaphoreReleased { .. } => "semaphore_released",
        Lifecycle::EventChanged { .. } => "event_changed",
        Lifecycle::Lagged { .. } => "lagged",
        Lifecycle::WatchdogExpired { .. } => "watchdog_expired",
        Lifecycle::RolloutStep { .. } => "rollout_step",
        Lifecycle::RolloutEnded { .. } => "rollout_ended",
        Lifecycle::Healthy { .. } => "healthy",
        Lifecycle::Unhealthy { .. } => "unhealthy",
        Lifecycle::HookStarted { .. } => "hook_started",
        Lifecycle::HookExited { .. } => "hook_exited",
        Lifecycle::HookFailed { .. } => "hook_failed",
        Lifecycle::TimerFired { .. } => "timer_fired",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_match_their_json() {
        let event = Lifecycle::Restarting {
            instance: "web".into(),
            delay_ms: 5,
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], change(&event));
    }
}
