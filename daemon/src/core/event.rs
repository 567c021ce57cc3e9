//! Named events owned by herdd: boolean flags, as `multiprocessing.Event`.

use super::lifecycle::Lifecycle;
use super::Action;
use herd_common::protocol::EventStatus;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct Events {
    flags: BTreeMap<String, bool>,
}

impl Events {
    pub fn new(declared: impl IntoIterator<Item = (String, bool)>) -> Self {
        Events {
            flags: declared.into_iter().collect(),
        }
    }

    /// `reload`: newly declared events get their initial state; existing
    /// ones keep theirs.
    pub fn declare(&mut self, declared: impl IntoIterator<Item = (String, bool)>) {
        for (name, set) in declared {
            self.flags.entry(name).or_insert(set);
        }
    }

    pub fn is_set(&self, name: &str) -> bool {
        self.flags.get(name).copied().unwrap_or(false)
    }

    pub fn exists(&self, name: &str) -> bool {
        self.flags.contains_key(name)
    }

    /// Sets or clears `name`, creating it if needed; publishes a change.
    pub fn change(&mut self, name: &str, set: bool, out: &mut Vec<Action>) {
        let old = self.flags.insert(name.to_string(), set);
        if old != Some(set) {
            out.push(Action::Publish(Lifecycle::EventChanged {
                event: name.to_string(),
                set,
            }));
        }
    }

    pub fn status(&self, name: &str) -> EventStatus {
        EventStatus {
            name: name.to_string(),
            set: self.is_set(name),
        }
    }

    pub fn list(&self) -> Vec<EventStatus> {
        self.flags.keys().map(|name| self.status(name)).collect()
    }
}

impl Events {
    pub fn snapshot(&self) -> Vec<(String, bool)> {
        self.flags
            .iter()
            .map(|(name, set)| (name.clone(), *set))
            .collect()
    }

    /// Events keep their state across a re-exec or a crash of herdd.
    pub fn restore(&mut self, flags: &[(String, bool)]) {
        self.flags.extend(flags.iter().cloned());
    }
}
