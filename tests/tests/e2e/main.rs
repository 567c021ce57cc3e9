//! End-to-end tests: the real herdd and herdctl, each test with its own temp
//! dir, config and socket. They wait on state (`status --json`, files,
//! /proc) with a deadline rather than guess how long herdd takes; the few
//! fixed pauses pace a scenario (a client dripping bytes) or give something
//! a chance to go wrong (a process that must stay up). They stop every
//! process they start by PID. A test that writes hundreds of MiB or asserts
//! on times is `#[ignore]`d and run on purpose (see `.ci/run`).

mod harness;

mod backpressure;
mod batches;
mod blocking;
mod clients;
mod config;
mod control;
mod ctl_signals;
mod daemon_output;
mod dbus;
mod descriptors;
mod docs;
mod envfiles;
mod forward;
mod health;
mod hooks;
mod inherited_fds;
mod install;
mod jobs;
mod logs;
mod metrics;
mod pools;
mod privilege;
mod python;
mod recovery;
mod rolling;
mod rust_client;
mod security;
mod service;
mod sockets;
mod spawning;
mod stopping;
mod supervision;
mod survivors;
mod sync;
mod timers;
mod top;
mod usage;
mod watchdog;
