//! End-to-end tests: the real herdd and herdctl, each test with its own temp
//! dir, config and socket. They wait on `status --json` with a deadline,
//! never on fixed sleeps, and stop every process they start by PID.

mod harness;

mod config;
mod control;
mod ctl_signals;
mod daemon_output;
mod dbus;
mod docs;
mod install;
mod logs;
mod pools;
mod privilege;
mod python;
mod recovery;
mod security;
mod service;
mod stopping;
mod supervision;
mod sync;
