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
        | Lifecycle::WatchdogExpired { instance, .. } => {
            Manager::instance_changed(emitter, instance, change(event)).await?;
        }
        Lifecycle::Exited { instance, exit, .. } => {
            Manager::instance_changed(emitter, instance, change(event)).await?;
            if let Some((id, pool)) = task_of(instance) {
                let result = exit.to_string();
                Manager::task_finished(emitter, id, pool, exit.is_success(), &result).await?;
            }
        }
        Lifecycle::Failed { instance, reason } => {
            Manager::instance_changed(emitter, instance, change(event)).await?;
            // A task fails without exiting only when it could not be run.
            if let Some((id, pool)) = task_of(instance) {
                Manager::task_finished(emitter, id, pool, false, reason).await?;
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
    }
}

/// The id and pool of a task's label: `convert#17` or `convert#17 (name)`.
pub(super) fn task_of(label: &str) -> Option<(u64, &str)> {
    let (pool, rest) = label.split_once('#')?;
    let digits = rest.split(' ').next()?;
    Some((digits.parse().ok()?, pool))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_labels() {
        assert_eq!(task_of("convert#17"), Some((17, "convert")));
        assert_eq!(task_of("convert#17 (thumb a.png)"), Some((17, "convert")));
        assert_eq!(task_of("web@2"), None);
        assert_eq!(task_of("db"), None);
    }

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
