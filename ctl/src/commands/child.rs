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
//! A signal that comes before CMD's pid is known is kept and passed on as
//! soon as it is (the last one, if several). Nothing is blocked, so CMD
//! starts with herdctl's own signal mask; its handlers reset on exec.

use crate::error::Error;
use libc::c_int;
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::ptr;
use std::sync::atomic::{AtomicI32, Ordering};

/// What herdctl passes on to CMD.
const FORWARDED: [c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// CMD's pid while it runs and is not yet reaped; 0 otherwise.
static CHILD: AtomicI32 = AtomicI32::new(0);

/// A signal to pass on that came before CMD's pid was known; 0 for none.
/// Whoever swaps it out first (the handler or [`run`]) sends it, so it is
/// sent exactly once.
static PENDING: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(signo: c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    if info.is_null() {
        return;
    }
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t.
    let (code, sender) = unsafe { ((*info).si_code, (*info).si_pid()) };
    // si_code > 0 (SI_KERNEL): from the terminal, to the whole group.
    if code > 0 || sender == CHILD.load(Ordering::SeqCst) {
        return;
    }
    PENDING.store(signo, Ordering::SeqCst);
    pass_on();
}

/// Sends the pending signal to CMD, if there is one and CMD is known.
/// Async-signal-safe: atomics and kill.
fn pass_on() {
    let child = CHILD.load(Ordering::SeqCst);
    if child <= 0 {
        return;
    }
    let signo = PENDING.swap(0, Ordering::SeqCst);
    if signo != 0 {
        // SAFETY: kill is async-signal-safe; the pid is our unreaped child.
        unsafe {
            libc::kill(child, signo);
        }
    }
}

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
    PENDING.store(0, Ordering::SeqCst);
    let guard = Forwarding::start().map_err(spawn_error)?;
    let child = match Command::new(program).args(args).spawn() {
        Ok(child) => child,
        Err(source) => {
            drop(guard);
            // A signal meant for CMD came first; with no CMD, it is ours.
            let signo = PENDING.swap(0, Ordering::SeqCst);
            if signo != 0 {
                // SAFETY: raising a signal whose previous action is back.
                unsafe {
                    libc::raise(signo);
                }
            }
            return Err(spawn_error(source));
        }
    };
    let pid = i32::try_from(child.id()).expect("pids fit in pid_t");
    CHILD.store(pid, Ordering::SeqCst);
    pass_on();
    let status = wait(pid);
    drop(guard);
    Ok(exit_code(status.map_err(spawn_error)?))
}

/// Waits for `pid` to end, forgets it (so nothing is forwarded to a reused
/// pid), then reaps it.
fn wait(pid: libc::pid_t) -> io::Result<ExitStatus> {
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
    CHILD.store(0, Ordering::SeqCst);
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

/// The forwarding handlers; dropping it restores the previous ones.
struct Forwarding {
    previous: Vec<(c_int, libc::sigaction)>,
}

impl Forwarding {
    fn start() -> io::Result<Forwarding> {
        // SAFETY: sigset and sigaction calls on zeroed, then filled-in
        // structures and valid out-pointers; the handler is async-signal-safe.
        unsafe {
            let mut guard = Forwarding {
                previous: Vec::new(),
            };
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = forward
                as extern "C" fn(c_int, *mut libc::siginfo_t, *mut libc::c_void)
                as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            for signo in FORWARDED {
                let mut previous: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signo, ptr::null(), &mut previous) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if previous.sa_sigaction == libc::SIG_IGN {
                    continue;
                }
                if libc::sigaction(signo, &action, ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
                guard.previous.push((signo, previous));
            }
            Ok(guard)
        }
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        // SAFETY: reinstalls the actions saved in `start`.
        unsafe {
            for (signo, previous) in &self.previous {
                libc::sigaction(*signo, previous, ptr::null_mut());
            }
        }
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
        assert_eq!(CHILD.load(Ordering::SeqCst), 0);

        let err = run(&["/no/such/program".into()]).unwrap_err();
        let Error::Spawn { program, source } = err else {
            panic!("expected a spawn error");
        };
        assert_eq!(program, "/no/such/program");
        assert_eq!(source.kind(), io::ErrorKind::NotFound);
    }
}
