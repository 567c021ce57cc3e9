//! How clients reach the core.

pub mod auth;
pub mod dbus;
pub mod logs;
pub mod socket;
