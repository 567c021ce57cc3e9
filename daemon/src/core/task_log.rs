//! The crash journal's task log (docs/journal.md): queued tasks do not
//! change while they wait, so the journal appends each one once to a log of
//! its own instead of rewriting every queued task in each snapshot. The
//! snapshot keeps the other live tasks whole and says how much of the log
//! it covers. One snapshot's changes cost what changed, not the queue.
//!
//! The log is lines, one record each, written in the order they happened:
//! - `+<id> <task>`: the task (a [`TaskSnapshot`] in JSON) is queued as
//!   written; a later `+` of the same id replaces it;
//! - `-<id>`: the task left the log (it started, ended, or now has
//!   something relative to the time of a snapshot, a retry delay say, and
//!   is written whole in each snapshot instead).
//!
//! `Index` is the core's side: which live tasks are in the log, which are
//! written whole, and which changed since the last snapshot.

use super::snapshot::TaskSnapshot;
use herd_common::protocol::TaskId;
use herd_common::state::TaskState;
use std::collections::{BTreeMap, BTreeSet};

/// Appends the record that `task` is queued as it is.
pub fn push_queued(out: &mut Vec<u8>, task: &TaskSnapshot) -> serde_json::Result<()> {
    out.extend_from_slice(format!("+{} ", task.id).as_bytes());
    serde_json::to_writer(&mut *out, task)?;
    out.push(b'\n');
    Ok(())
}

/// Appends the record that task `id` left the log.
pub fn push_left(out: &mut Vec<u8>, id: TaskId) {
    out.extend_from_slice(format!("-{id}\n").as_bytes());
}

/// Whether a task goes to the log: it is queued, and nothing in what a
/// snapshot holds of it depends on when the snapshot was taken.
pub fn belongs_in_log(task: &TaskSnapshot) -> bool {
    task.state == TaskState::Queued
        && task.pid.is_none()
        && task.started_ago_ms.is_none()
        && task.ended_ago_ms.is_none()
        && task.deadline_in_ms.is_none()
        && task.attempts.not_before_in_ms.is_none()
        && task.stdout.is_none()
        && task.stderr.is_none()
}

/// The latest `+` line of every task whose last record is one, lowest id
/// first. Every record of a log a snapshot covers is whole (the log is
/// synced before the snapshot that counts it): a line cut short, without
/// an id, or with a `+` that does not match its id, is corruption.
pub fn queued_lines(log: &[u8]) -> Result<BTreeMap<TaskId, &[u8]>, String> {
    let mut queued = BTreeMap::new();
    let mut at = 0;
    for line in log.split_inclusive(|byte| *byte == b'\n') {
        let whole = line
            .strip_suffix(b"\n")
            .ok_or_else(|| format!("a record cut short at byte {at}"))?;
        let bad = || format!("a bad record at byte {at}");
        let (&kind, rest) = whole.split_first().ok_or_else(bad)?;
        let id_end = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
        let id: TaskId = std::str::from_utf8(&rest[..id_end])
            .ok()
            .and_then(|id| id.parse().ok())
            .ok_or_else(bad)?;
        match kind {
            b'+' if id_end < rest.len() => {
                queued.insert(id, line);
            }
            b'-' if id_end == rest.len() => {
                queued.remove(&id);
            }
            _ => return Err(bad()),
        }
        at += line.len();
    }
    Ok(queued)
}

/// The tasks queued according to `log`, lowest id first.
pub fn replay(log: &[u8]) -> Result<Vec<TaskSnapshot>, String> {
    queued_lines(log)?
        .into_iter()
        .map(|(id, line)| {
            let json = &line[line.iter().position(|b| *b == b' ').unwrap_or(0)..];
            let task: TaskSnapshot = serde_json::from_slice(json)
                .map_err(|err| format!("task {id} in the log: {err}"))?;
            if task.id != id {
                return Err(format!("task {} recorded as {id}", task.id));
            }
            Ok(task)
        })
        .collect()
}

/// A log with the same tasks queued as `log`, one `+` line each.
pub fn compact(log: &[u8]) -> Result<Vec<u8>, String> {
    Ok(queued_lines(log)?
        .into_values()
        .flatten()
        .copied()
        .collect())
}

/// Which live tasks the journal keeps in the log, which it writes whole in
/// each snapshot, and which changed since its last snapshot.
#[derive(Debug, Default)]
pub(super) struct Index {
    /// In the log as of the last snapshot.
    pub logged: BTreeSet<TaskId>,
    /// Live and not in the log as of the last snapshot.
    pub whole: BTreeSet<TaskId>,
    /// Changed (or added, or removed) since the last snapshot.
    pub changed: BTreeSet<TaskId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(id: TaskId, command: &str) -> TaskSnapshot {
        TaskSnapshot {
            command: vec![command.into()],
            ..crate::core::snapshot::test_task(id, TaskState::Queued, None)
        }
    }

    fn log_of(records: &[Result<TaskSnapshot, TaskId>]) -> Vec<u8> {
        let mut log = Vec::new();
        for record in records {
            match record {
                Ok(task) => push_queued(&mut log, task).unwrap(),
                Err(id) => push_left(&mut log, *id),
            }
        }
        log
    }

    #[test]
    fn a_log_replays_to_the_tasks_still_queued_each_as_last_written() {
        let mut retried = queued(1, "/bin/a");
        retried.attempts.attempts = 1;
        let log = log_of(&[
            Ok(queued(1, "/bin/a")),
            Ok(queued(2, "/bin/b \"quoted\"\n")),
            Ok(queued(3, "/bin/c")),
            Err(1),
            Err(3),
            Ok(retried.clone()),
            Err(4),
        ]);
        assert_eq!(
            replay(&log).unwrap(),
            [retried, queued(2, "/bin/b \"quoted\"\n")]
        );
        assert_eq!(replay(b"").unwrap(), []);
    }

    #[test]
    fn a_torn_or_garbled_record_is_an_error_not_a_task() {
        let log = log_of(&[Ok(queued(1, "/bin/a")), Ok(queued(2, "/bin/b"))]);
        for cut in 1..log.len() {
            let torn = &log[..cut];
            if torn.ends_with(b"\n") {
                assert_eq!(replay(torn).unwrap().len(), 1, "{cut}");
            } else {
                let err = replay(torn).unwrap_err();
                assert!(err.contains("cut short"), "{cut}: {err}");
            }
        }
        for bad in [
            &b"*1\n"[..],
            b"+\n",
            b"+x {}\n",
            b"+1\n",
            b"-1 {}\n",
            b"+1 {\"id\": 1}\n",
            b"\0\0\n",
        ] {
            assert!(replay(bad).is_err(), "{bad:?}");
        }
        let mut renumbered = log_of(&[Ok(queued(1, "/bin/a"))]);
        renumbered[1] = b'7';
        assert!(replay(&renumbered).unwrap_err().contains("recorded as 7"));
    }

    #[test]
    fn compaction_keeps_exactly_the_queued_tasks() {
        let mut records: Vec<Result<TaskSnapshot, TaskId>> = Vec::new();
        for id in 1..=100 {
            records.push(Ok(queued(id, "/bin/true")));
            if id % 3 == 0 {
                records.push(Err(id - 1));
            }
        }
        records.push(Ok(queued(5, "/bin/again")));
        let log = log_of(&records);
        let compacted = compact(&log).unwrap();
        assert!(compacted.len() < log.len());
        assert_eq!(replay(&compacted).unwrap(), replay(&log).unwrap());
        assert_eq!(
            compacted.iter().filter(|b| **b == b'\n').count(),
            replay(&log).unwrap().len(),
            "one line per queued task"
        );
        assert_eq!(compact(&compacted).unwrap(), compacted);
    }
}
