//! How clients reach the core.

pub mod socket;
