//! The I/O shell around the pure core: the only code that makes syscalls.

pub mod event_loop;
pub mod logging;
pub mod output;
pub mod reaper;
pub mod spawn;
