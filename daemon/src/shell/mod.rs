//! The I/O shell around the pure core: the event loop, and everything that
//! spawns, signals, reaps and watches processes. It makes the supervisor's
//! syscalls; the front ends in `control` make only those a client needs
//! (accepting, peer credentials, the socket's lock and directory, group
//! lookups). The shell never calls into `control`: clients reach it
//! through [`clients`].

pub mod adopt;
pub mod cgroup;
pub mod clients;
pub mod clock_changes;
pub mod descriptors;
pub mod environ;
pub mod event_loop;
pub mod events;
pub mod fork;
pub mod heap;
pub mod hook_tail;
pub mod inherited;
pub mod journal;
pub mod listen;
pub mod logging;
pub mod logs;
pub mod mountinfo;
pub mod notify;
pub mod output;
pub mod probe;
pub mod reaper;
pub mod reexec;
pub mod sd_notify;
pub mod spawn;
pub mod start_records;
pub mod survivors;
pub mod task_cgroups;
pub mod usage;
