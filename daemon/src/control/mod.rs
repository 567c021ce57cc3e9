//! How clients reach the core.

pub mod auth;
pub mod socket;
