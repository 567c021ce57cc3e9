//! Lifecycle notices are defined in `herd_common::events`, shared with herdctl.

pub use herd_common::events::Lifecycle;
