//! The I/O shell around the pure core: the only code that makes syscalls.

pub mod adopt;
pub mod cgroup;
pub mod descriptors;
pub mod event_loop;
pub mod events;
pub mod fork;
pub mod journal;
pub mod logging;
pub mod logs;
pub mod mountinfo;
pub mod notify;
pub mod output;
pub mod reaper;
pub mod reexec;
pub mod sd_notify;
pub mod spawn;
