//! The one way inputs reach the core: an input, its actions, and whatever
//! carrying those out feeds back (a spawn's pid or error, a config read
//! again), first in, first out, until nothing is left.
//!
//! herdd's event loop, the core's unit tests and its property tests all go
//! through [`Cascade::next`], so they see the core's actions in the same
//! order: every action of an input before the next input, and the inputs an
//! action produces after those queued before them.

use super::{Action, Input, Owner, SpawnSpec, Supervisor};
use std::collections::VecDeque;
use std::time::Instant;

/// The inputs and actions of one cascade, not yet handed over.
#[derive(Debug)]
pub struct Cascade {
    inputs: VecDeque<Input>,
    actions: VecDeque<Action>,
}

impl Cascade {
    /// A cascade that starts with `input`.
    pub fn new(input: Input) -> Cascade {
        Cascade {
            inputs: VecDeque::from([input]),
            actions: VecDeque::new(),
        }
    }

    /// The next action to carry out: the oldest one left of the input
    /// handled last, else the first of the next input's (handed to `core`
    /// at `now`). `None` once every input has been handled and every action
    /// taken.
    pub fn next(&mut self, core: &mut Supervisor, now: Instant) -> Option<Action> {
        self.next_with(core, now, |_| {})
    }

    /// [`Cascade::next`], showing `on_batch` each input's actions before
    /// the first of them is handed out: herdd records the task starts of a
    /// batch before it spawns any of them.
    pub fn next_with(
        &mut self,
        core: &mut Supervisor,
        now: Instant,
        mut on_batch: impl FnMut(&[Action]),
    ) -> Option<Action> {
        loop {
            if let Some(action) = self.actions.pop_front() {
                return Some(action);
            }
            let input = self.inputs.pop_front()?;
            let batch = core.handle(now, input);
            on_batch(&batch);
            self.actions.extend(batch);
        }
    }

    /// The next action if it is a spawn already handed out by the core
    /// (never a new input's): herdd starts consecutive spawns together.
    /// Their results are fed back after the inputs queued before, as
    /// one at a time.
    pub fn next_queued_spawn(&mut self) -> Option<(Owner, Box<SpawnSpec>)> {
        match self.actions.pop_front() {
            Some(Action::Spawn { owner, spec }) => Some((owner, spec)),
            Some(other) => {
                self.actions.push_front(other);
                None
            }
            None => None,
        }
    }

    /// An input that carrying out an action produced: it is handled after
    /// the inputs queued before it.
    pub fn feed_back(&mut self, input: Input) {
        self.inputs.push_back(input);
    }
}

impl Supervisor {
    /// Runs the cascade of `input` to its end at `now`: each action goes to
    /// `carry_out`, in order, and what that returns is fed back.
    pub fn drive(
        &mut self,
        now: Instant,
        input: Input,
        mut carry_out: impl FnMut(Action) -> Option<Input>,
    ) {
        let mut cascade = Cascade::new(input);
        while let Some(action) = cascade.next(self, now) {
            if let Some(input) = carry_out(action) {
                cascade.feed_back(input);
            }
        }
    }
}
