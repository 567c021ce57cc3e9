//! herdd: the herd supervisor daemon, as a library so tests can drive it.
//!
//! # Layout
//! Three layers; each depends only on the ones below it:
//! - [`control`] — the front ends: the control socket (listener, one task per
//!   connection, authorisation, limits) and D-Bus. They send requests to
//!   the shell through [`shell::clients`].
//! - [`shell`]   — the I/O shell: the event loop, spawning, signalling and
//!   reaping processes, pipes, logs, the journal, cgroups.
//! - [`core`]    — the PURE supervisor state machine: inputs in, actions out;
//!   no I/O, no clock.
//!
//! [`server`] wires control to the shell. Syscalls: the supervisor's own
//! (fork, exec, kill, wait, pipes, cgroups, the journal) are all in the
//! shell; the front ends make only what serving a client takes (accept,
//! peer credentials, the socket's lock and directory, group lookups for
//! `control_group`). The core makes none.

pub mod control;
pub mod core;
pub mod server;
pub mod shell;

pub use server::{run, start};
