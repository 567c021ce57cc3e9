//! Running a command as herdctl's own child (`sem acquire -- CMD`), the way
//! a shell runs a foreground job: stdio inherited, no shell in between,
//! herdctl waiting for it and passing its exit code on.
//!
//! # Signals
//! CMD stays in herdctl's process group, so what the terminal sends (Ctrl-C,
//! Ctrl-\, a hangup) reaches CMD directly. While CMD runs herdctl catches
//! SIGINT, SIGTERM, SIGHUP and SIGQUIT so that it outlives CMD (and can give
//! back what it holds for CMD, then exit with CMD's code), and passes on to
//! CMD the ones sent to herdctl alone, by `kill` (as `sudo` does). Signals
//! from the kernel (the terminal's) are not passed on: CMD already got them
//! and would get them twice. Neither are the ones CMD sends herdctl itself.
//! A signal herdctl was started with ignored (`nohup`) stays ignored.
//!
//! signal-hook's handlers only queue each signal with its sender (a
//! `SignalsInfo<WithOrigin>`); a thread of herdctl's passes them on. A signal
//! that comes before CMD's pid is known stays queued until it is. Once CMD has
//! ended, the signals do what their default action would again. Nothing is
//! blocked, so CMD starts with herdctl's own signal mask; its handlers reset
//! on exec.

use crate::commands::interrupt;
use crate::error::Error;
use libc::c_int;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::exfiltrator::origin::WithOrigin;
use signal_hook::iterator::{Handle, SignalsInfo};
use signal_hook::low_level::siginfo::{Cause, Origin};
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

/// What herdctl passes on to CMD.
const FORWARDED: [c_int; 4] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT];

/// True while no CMD runs: then the signals in [`FORWARDED`] take their
/// default action, as if herdctl had never caught them.
static IDLE: AtomicBool = AtomicBool::new(true);

/// Runs `argv` and returns the exit code to pass on: CMD's own, 128+N if a
/// signal N killed it. A command that cannot be started is an
/// [`Error::Spawn`].
pub fn run(argv: &[String]) -> Result<u8, Error> {
    let (program, args) = argv.split_first().ok_or_else(|| Error::Spawn {
        program: String::new(),
        source: io::Error::from(io::ErrorKind::NotFound),
    })?;
    let spawn_error = |source| Error::Spawn {
        program: program.clone(),
        source,
    };
    let mut signals = catch().map_err(spawn_error)?;
    let child = match Command::new(program).args(args).spawn() {
        Ok(child) => child,
        Err(source) => {
            IDLE.store(true, Ordering::SeqCst);
            // A signal meant for CMD came first; with no CMD, it is ours.
            if let Some(origin) = signals.pending().find(sent_by_a_process) {
                let _ = signal_hook::low_level::emulate_default_handler(origin.signal);
            }
            return Err(spawn_error(source));
        }
    };
    let pid = libc::pid_t::try_from(child.id()).expect("pids fit in pid_t");
    let forwarder = Forwarder::start(signals, pid);
    let status = wait(pid, &forwarder.child);
    IDLE.store(true, Ordering::SeqCst);
    forwarder.stop();
    Ok(exit_code(status.map_err(spawn_error)?))
}

/// Starts queueing the signals of [`FORWARDED`] that are not ignored.
fn catch() -> io::Result<SignalsInfo<WithOrigin>> {
    let mut caught = Vec::new();
    for signal in FORWARDED {
        if !interrupt::ignored(signal)? {
            caught.push(signal);
        }
    }
    defaults_when_idle(&caught)?;
    // Queueing first: a signal that comes before still kills herdctl.
    let signals = SignalsInfo::new(caught)?;
    IDLE.store(false, Ordering::SeqCst);
    Ok(signals)
}

/// Registers, once per process, the default action of each of `signals` for
/// while [`IDLE`] is set: signal-hook's handler stays installed after a
/// `SignalsInfo` is dropped, and would otherwise swallow them.
fn defaults_when_idle(signals: &[c_int]) -> io::Result<()> {
    static REGISTERED: OnceLock<Mutex<Vec<c_int>>> = OnceLock::new();
    let mut registered = REGISTERED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for &signal in signals {
        if !registered.contains(&signal) {
            signal_hook::flag::register_conditional_default(signal, &IDLE)?;
            registered.push(signal);
        }
    }
    Ok(())
}

/// Sent by `kill` (or `sigqueue`, `tgkill`) from some process, rather than
/// by the kernel on behalf of the terminal.
fn sent_by_a_process(origin: &Origin) -> bool {
    matches!(origin.cause, Cause::Sent(_))
}

/// The thread that passes the queued signals on to CMD.
struct Forwarder {
    /// CMD's pid until it has ended (0 from then on): held while sending,
    /// so nothing is ever sent to a pid reused after CMD was reaped.
    child: Arc<Mutex<libc::pid_t>>,
    handle: Handle,
    thread: JoinHandle<()>,
}

impl Forwarder {
    fn start(mut signals: SignalsInfo<WithOrigin>, pid: libc::pid_t) -> Forwarder {
        let child = Arc::new(Mutex::new(pid));
        let handle = signals.handle();
        let target = Arc::clone(&child);
        let thread = std::thread::spawn(move || {
            for origin in signals.forever() {
                let from_cmd = origin.process.is_some_and(|sender| sender.pid == pid);
                if sent_by_a_process(&origin) && !from_cmd {
                    let target = target.lock().unwrap_or_else(|p| p.into_inner());
                    if *target > 0 {
                        // SAFETY: kill(2) has no memory-safety preconditions;
                        // the pid is our child, not yet reaped (the lock
                        // keeps it so).
                        unsafe { libc::kill(*target, origin.signal) };
                    }
                }
            }
        });
        Forwarder {
            child,
            handle,
            thread,
        }
    }

    fn stop(self) {
        self.handle.close();
        let _ = self.thread.join();
    }
}

/// Waits for `pid` to end, forgets it in `child` (so nothing is forwarded
/// to a reused pid), then reaps it.
fn wait(pid: libc::pid_t, child: &Mutex<libc::pid_t>) -> io::Result<ExitStatus> {
    loop {
        let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
        // SAFETY: a valid out-pointer; WNOWAIT leaves the child to be reaped below.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                info.as_mut_ptr(),
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    *child
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = 0;
    let mut status: c_int = 0;
    loop {
        // SAFETY: a valid out-pointer.
        if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
            return Ok(ExitStatus::from_raw(status));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// How a shell reports a child's end: its code, or 128+N for signal N.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(signo)) => u8::try_from(128 + signo).unwrap_or(255),
        (None, None) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn exit_codes_are_a_shells() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGKILL)), 137);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGTERM)), 143);
    }

    /// One test, as the handlers are process-wide.
    #[test]
    fn runs_and_passes_the_code_on() {
        assert_eq!(run(&sh("exit 7")).unwrap(), 7);
        assert_eq!(run(&sh("kill -KILL $$")).unwrap(), 137);
        assert!(IDLE.load(Ordering::SeqCst));

        let err = run(&["/no/such/program".into()]).unwrap_err();
        let Error::Spawn { program, source } = err else {
            panic!("expected a spawn error");
        };
        assert_eq!(program, "/no/such/program");
        assert_eq!(source.kind(), io::ErrorKind::NotFound);
    }
}
