//! How clients reach the supervisor: the control socket and D-Bus. The
//! front ends sit on top of the shell and send it requests
//! (`shell::clients`); nothing below calls back up into them.

pub mod admission;
pub mod auth;
pub mod connection;
pub mod dbus;
pub mod denials;
pub mod framing;
pub mod listener;
pub mod logs;
pub mod metrics;
pub mod metrics_http;
pub mod socket;
