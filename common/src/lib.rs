//! Types shared by `herdd` and `herdctl`.
//!
//! # Layout
//! - [`names`]    — unit and instance names (`web`, `web@2`) and how they are matched
//! - [`state`]    — states and exit statuses, spelled as the protocol shows them
//! - [`protocol`] — the versioned JSON-lines control protocol (requests, replies, error codes)
//! - [`client`]   — a small blocking client for the control socket
//! - [`api`]      — herd from Rust: the protocol's verbs as typed methods ([`api::Herd`])
//! - [`dbus`]     — the D-Bus names: bus name, object path, interface, error names
//! - [`events`]   — lifecycle events, as logged and streamed by `herdctl events`
//! - [`paths`]    — default locations of the config file and the socket
//! - [`signals`]  — signal names and numbers

pub mod api;
pub mod client;
pub mod dbus;
pub mod events;
pub mod names;
pub mod paths;
pub mod protocol;
pub mod signals;
pub mod state;

#[cfg(test)]
mod property;
