//! herdd: the herd supervisor daemon, as a library so tests can drive it.
//!
//! # Layout
//! - [`core`]    — PURE supervisor state machine: inputs in, actions out; no I/O, no clock
//! - [`shell`]   — the only code that touches the OS: event loop, spawn, reap, signals
//! - [`control`] — the control socket: one task per connection, requests into the core

pub mod control;
pub mod core;
pub mod shell;

pub use shell::event_loop::run;
