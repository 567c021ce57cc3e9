//! Starting a process: clone, prepare the child, exec.
//!
//! The parent prepares everything (paths, argv, environment, pipes) before
//! the clone and catches the common exec errors up front (a missing or
//! non-executable program). The child then makes only raw syscalls: moves
//! into its own process group, resets signals, sets up stdio, cwd and what
//! `spawn.rs` asks (cgroups, limits, credentials, parent-death signal), puts
//! listening sockets at 3.., fills in its own pid, and execs.
//!
//! # vfork-style (x86_64)
//!
//! The child is made with `clone3(CLONE_VM | CLONE_VFORK)` (and
//! `CLONE_INTO_CGROUP` when it gets a v2 cgroup): it borrows herdd's memory
//! instead of getting a copy, so no page tables are copied and herdd takes
//! no copy-on-write faults afterwards — a fork's cost grows with herdd's
//! size, this one does not. The calling thread sleeps until the child has
//! exec'd or exited, so a failure of the child is known when [`fork_exec`]
//! returns ([`ForkError::Child`]). The other herdd threads (the blocking
//! pool, the journal writer) keep running beside the child, in the same
//! memory. Hence what the child may do, and why:
//!
//! - It runs on a stack of its own, an array in the parent's frame (the
//!   parent sleeps in that frame until the exec), and starts in a function
//!   of its own (`child_main`, called by a few lines of assembly right after
//!   the syscall); it never returns into the code that cloned, whose stack
//!   it does not have.
//! - It reads only memory prepared for it and written by no other thread
//!   (the plan, argv and envp arrays, `spawn.rs`'s setup), and writes only
//!   its stack, its own pid into the envp slots prepared for it, and the
//!   failure word the parent reads after the clone. It never allocates and
//!   never takes a lock: another herdd thread may hold malloc's, and the
//!   memory is the same.
//! - It makes raw syscalls, or calls glibc's thin syscall wrappers; never
//!   glibc's `setuid`/`setgroups` wrappers, which signal every thread glibc
//!   knows of and would wait for ever.
//! - No handler of herdd's may run in it (they would act on herdd's state,
//!   say write to its signal pipe): the parent thread blocks every signal
//!   around the clone (raw `rt_sigprocmask`, glibc's keeps two internal
//!   signals open), and the child sets every handled signal back to
//!   `SIG_DFL` before it clears its mask, as glibc's `posix_spawn` does.
//!   It has its own table of handlers (no `CLONE_SIGHAND`), its own
//!   descriptor table, cwd, umask, limits and credentials (no
//!   `CLONE_FILES`, `CLONE_FS`, `CLONE_THREAD`): changing those leaves
//!   herdd's alone. The one exception is the memory's dumpable flag, which
//!   changing credentials clears; the parent sets it back.
//! - It ends in `execve` or `_exit`, nothing else.
//!
//! While the child works, herdd's event loop waits for it: a few dozen
//! syscalls, but a child stopped or blocked before its exec (a cwd on a
//! hung network mount; joining a v1 cgroup waits for an RCU grace period)
//! holds the loop too, as it would with `posix_spawn`.
//!
//! # fork (other architectures, old kernels)
//!
//! Elsewhere, or when the kernel refuses that `clone3` (before 5.3, or
//! without `CLONE_INTO_CGROUP` before 5.7), the child is forked (`clone3`
//! with `CLONE_INTO_CGROUP` and no stack, else `fork` and a write to
//! `cgroup.procs` in the child). It runs the same code on its own copy of
//! memory, and the parent returns as soon as it exists. A failure of the
//! child then comes back through one pipe shared by all children
//! ([`ExecErrors`]): the child writes its pid and the errno there before it
//! exits. One pipe rather than one per child, because every descriptor
//! herdd holds is copied into every fork and closed again at every exec.

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::{access, pipe2, read, AccessFlags};
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

/// Where a child's stdout or stderr goes.
pub enum Stdio {
    /// herdd's own.
    Inherit,
    /// /dev/null.
    Null,
    /// A new pipe; the parent gets the read end.
    Pipe,
}

/// Everything the child needs, built before the fork (the child may not allocate).
pub struct ExecPlan {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: Option<CString>,
    stdout: Stdio,
    stderr: Stdio,
    /// Listening sockets the child gets as descriptors 3.. (`LISTEN_FDS`).
    listen_fds: Vec<RawFd>,
    /// Indexes in `envp` of the entries the child fills with its own pid
    /// (only it knows it): an empty `LISTEN_PID=` or `WATCHDOG_PID=`.
    pid_slots: [Option<(usize, &'static [u8])>; PID_VARIABLES.len()],
}

/// Variables that name the process itself, filled in by the fork child
/// when the environment has them empty.
const PID_VARIABLES: [&[u8]; 2] = [b"LISTEN_PID=", b"WATCHDOG_PID="];

impl ExecPlan {
    /// `program` is looked up in the child's `PATH` unless it contains a `/`.
    /// Errors are what `exec` would say (ENOENT, EACCES), found without forking.
    pub fn new(
        program: &str,
        args: &[String],
        env: Vec<(OsString, OsString)>,
        cwd: Option<&Path>,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<ExecPlan, io::Error> {
        let search = env
            .iter()
            .rev()
            .find(|(key, _)| key == "PATH")
            .map(|(_, value)| value.clone());
        let path = resolve(program, search.as_deref(), cwd)?;
        let cstring = |bytes: &[u8]| {
            CString::new(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
        };
        let mut argv = vec![cstring(program.as_bytes())?];
        for arg in args {
            argv.push(cstring(arg.as_bytes())?);
        }
        let mut envp = Vec::with_capacity(env.len());
        for (key, value) in env {
            let mut pair = key.into_vec();
            pair.push(b'=');
            pair.extend_from_slice(value.as_bytes());
            envp.push(cstring(&pair)?);
        }
        let pid_slots = PID_VARIABLES.map(|prefix| {
            envp.iter()
                .position(|entry| entry.as_bytes() == prefix)
                .map(|at| (at, prefix))
        });
        Ok(ExecPlan {
            pid_slots,
            path: cstring(path.as_os_str().as_bytes())?,
            argv,
            envp,
            cwd: cwd
                .map(|dir| cstring(dir.as_os_str().as_bytes()))
                .transpose()?,
            stdout,
            stderr,
            listen_fds: Vec::new(),
        })
    }

    /// Passes `fds` as descriptors 3.. in this order (with an empty
    /// `LISTEN_PID=` in the environment, which the child fills in).
    pub fn pass_sockets(&mut self, fds: Vec<RawFd>) {
        self.listen_fds = fds;
    }
}

/// A child that exists (its exec may still be under way).
pub struct Forked {
    pub pid: u32,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// Its start time as `/proc/<pid>/stat` gives it (field 22, clock
    /// ticks since boot), when the clone fell within one tick: known
    /// without reading `/proc`.
    pub start_time: Option<u64>,
}

/// The write end of the exec-error pipe, for children (set once by [`ExecErrors::open`]).
static EXEC_ERRORS: std::sync::OnceLock<OwnedFd> = std::sync::OnceLock::new();

/// The read end of the pipe through which children report failed execs.
pub struct ExecErrors {
    read: tokio::io::unix::AsyncFd<OwnedFd>,
}

impl ExecErrors {
    /// Creates the pipe (once per herdd process).
    pub fn open() -> io::Result<ExecErrors> {
        let (read, write) = pipe()?;
        let flags = OFlag::from_bits_retain(fcntl(&read, FcntlArg::F_GETFL)?);
        fcntl(&read, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        EXEC_ERRORS
            .set(write)
            .map_err(|_| io::Error::other("the exec-error pipe exists already"))?;
        // SAFETY: the AsyncFd owns `read`, which stays open for its whole life.
        let read = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(read, tokio::io::Interest::READABLE)
        }
        .map_err(|err| err.into_parts().1)?;
        Ok(ExecErrors { read })
    }

    /// Waits until some child has reported a failed exec.
    pub async fn readable(&self) {
        if let Ok(mut ready) = self.read.readable().await {
            ready.clear_ready();
        }
    }

    /// Every (pid, errno) reported so far, without waiting.
    pub fn drain(&self) -> Vec<(u32, i32)> {
        let mut failures = Vec::new();
        loop {
            // Records are written whole (8 bytes < PIPE_BUF is atomic).
            let mut record = [0u8; 8];
            if read(self.read.get_ref(), &mut record) != Ok(8) {
                return failures;
            }
            let (pid, errno) = record.split_at(4);
            let field = |bytes: &[u8]| i32::from_ne_bytes(bytes.try_into().unwrap_or_default());
            failures.push((field(pid) as u32, field(errno)));
        }
    }
}

/// Why [`fork_exec`] started nothing.
#[derive(Debug)]
pub enum ForkError {
    /// No child was made (no process, pipe or descriptor to be had).
    Fork(io::Error),
    /// The child failed before its program ran: its exec, or a step of its
    /// setup before it (a cgroup it could not join, a limit it could not
    /// set...). It has exited already. Only the vfork-style clone knows this
    /// when `fork_exec` returns; after a plain fork it comes through
    /// [`ExecErrors`]. `pid` is left for the reaper.
    Child { pid: u32, error: io::Error },
}

/// Starts `plan`: the child moves into its own process group, gets default
/// signal handlers and a clean signal mask, its stdio, its cwd, runs `setup`
/// (raw syscalls only: see the module docs) and execs.
///
/// With `into_cgroup` (a v2 cgroup's directory and `cgroup.procs`), the child
/// is created right in that cgroup with `clone3(CLONE_INTO_CGROUP)`: moving a
/// process into a cgroup afterwards takes a lock that waits for an RCU grace
/// period (milliseconds) and holds up every fork meanwhile. Kernels without
/// it get a plain fork and a write to `cgroup.procs` in the child.
pub fn fork_exec<F: Fn() -> io::Result<()>>(
    plan: &ExecPlan,
    setup: F,
    into_cgroup: Option<(RawFd, RawFd)>,
) -> Result<Forked, ForkError> {
    start(plan, setup, into_cgroup, How::Best)
}

/// Which clone [`start`] uses.
#[derive(Clone, Copy)]
enum How {
    /// vfork-style where available, else fork.
    Best,
    /// Always fork (the fallback, which tests take on purpose).
    #[cfg_attr(not(test), allow(dead_code))]
    Fork,
}

fn start<F: Fn() -> io::Result<()>>(
    plan: &ExecPlan,
    setup: F,
    into_cgroup: Option<(RawFd, RawFd)>,
    how: How,
) -> Result<Forked, ForkError> {
    let null = dev_null().map_err(ForkError::Fork)?;
    let (stdout_read, stdout_write) = pipe_for(&plan.stdout).map_err(ForkError::Fork)?;
    let (stderr_read, stderr_write) = pipe_for(&plan.stderr).map_err(ForkError::Fork)?;
    let argv = pointers(&plan.argv);
    let mut envp = pointers(&plan.envp);
    let target = |stdio: &Stdio, write: &Option<OwnedFd>| match stdio {
        Stdio::Inherit => None,
        Stdio::Null => Some(null),
        Stdio::Pipe => write.as_ref().map(AsRawFd::as_raw_fd),
    };
    let mut child = Child {
        plan,
        argv: argv.as_ptr(),
        envp: envp.as_mut_ptr(),
        pid_entries: [[0; 32]; PID_VARIABLES.len()],
        null,
        stdout: target(&plan.stdout, &stdout_write),
        stderr: target(&plan.stderr, &stderr_write),
        setup: &setup,
        failure: AtomicI32::new(0),
    };
    // No handler of herdd's may run in the child before it has reset them;
    // the guard restores this thread's mask when the clone has returned.
    let blocked = BlockedSignals::all();
    let before = boot_ticks();
    let vfork = match how {
        How::Best => vfork_style(&mut child, into_cgroup),
        How::Fork => None,
    };
    let pid = match vfork {
        Some(result) => result,
        None => fork_style(&mut child, into_cgroup),
    };
    let after = boot_ticks();
    drop(blocked);
    let pid = pid.map_err(ForkError::Fork)?;
    match child.failure.load(Ordering::Acquire) {
        0 => Ok(Forked {
            pid: pid as u32,
            stdout: stdout_read,
            stderr: stderr_read,
            start_time: before.filter(|_| before == after),
        }),
        errno => Err(ForkError::Child {
            pid: pid as u32,
            error: io::Error::from_raw_os_error(errno),
        }),
    }
}

/// What the child works from: all of it prepared by the parent, in the
/// parent's frame.
struct Child<'a, F> {
    plan: &'a ExecPlan,
    /// NULL-terminated arrays of pointers into `plan`.
    argv: *const *const libc::c_char,
    /// The child points the pid slots of this array at `pid_entries`.
    envp: *mut *const libc::c_char,
    /// `LISTEN_PID=<pid>` and `WATCHDOG_PID=<pid>`, written by the child
    /// (only it knows its pid, and it may not allocate).
    pid_entries: [[u8; 32]; PID_VARIABLES.len()],
    null: RawFd,
    stdout: Option<RawFd>,
    stderr: Option<RawFd>,
    setup: &'a F,
    /// The errno of a vfork-style child that failed; read by the parent
    /// once the clone has returned (the child has exited by then).
    failure: AtomicI32,
}

/// The vfork-style clone (see the module docs): `None` where it is not
/// available (not x86_64, or a kernel that refuses `clone3` with these flags).
#[cfg(target_arch = "x86_64")]
fn vfork_style<F: Fn() -> io::Result<()>>(
    child: &mut Child<'_, F>,
    into_cgroup: Option<(RawFd, RawFd)>,
) -> Option<io::Result<libc::pid_t>> {
    vfork::clone_exec(child, into_cgroup.map(|(directory, _)| directory))
}

#[cfg(not(target_arch = "x86_64"))]
fn vfork_style<F: Fn() -> io::Result<()>>(
    _child: &mut Child<'_, F>,
    _into_cgroup: Option<(RawFd, RawFd)>,
) -> Option<io::Result<libc::pid_t>> {
    None
}

/// The plain fork: the child runs on its own copy of herdd's memory, and the
/// parent returns as soon as it exists. A failure of the child is written to
/// [`ExecErrors`].
fn fork_style<F: Fn() -> io::Result<()>>(
    child: &mut Child<'_, F>,
    into_cgroup: Option<(RawFd, RawFd)>,
) -> io::Result<libc::pid_t> {
    let report = EXEC_ERRORS.get().map_or(-1, AsRawFd::as_raw_fd);
    let cloned = match into_cgroup {
        // SAFETY: as for the fork below.
        Some((directory, _)) => unsafe { clone_into_cgroup(directory) }.ok(),
        None => None,
    };
    let (pid, join_by_write) = match cloned {
        Some(pid) => (pid, None),
        // SAFETY: after the fork the child only makes raw syscalls on
        // memory prepared above (its own copy of it), then execs or _exits.
        None => (unsafe { libc::fork() }, into_cgroup.map(|(_, procs)| procs)),
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: in the forked child; see above.
        unsafe {
            // Out of the way of descriptors 3.., which the sockets take.
            let report = if child.plan.listen_fds.is_empty() {
                report
            } else {
                let above = (3 + child.plan.listen_fds.len()) as libc::c_int;
                libc::fcntl(report, libc::F_DUPFD_CLOEXEC, above)
            };
            let error = match join_by_write {
                Some(procs) if libc::write(procs, b"0".as_ptr().cast(), 1) != 1 => {
                    io::Error::last_os_error()
                }
                _ => run_child(child),
            };
            let record = [libc::getpid(), error.raw_os_error().unwrap_or(libc::EINVAL)];
            libc::write(report, record.as_ptr().cast(), 8);
            libc::_exit(127);
        }
    }
    Ok(pid)
}

/// `clone3` with `CLONE_INTO_CGROUP`, otherwise like `fork`: returns the
/// child's pid in the parent and 0 in the child.
///
/// # Safety
/// As `fork`: the child may only make async-signal-safe calls.
unsafe fn clone_into_cgroup(directory: RawFd) -> io::Result<libc::pid_t> {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: directory as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 reads `args`; without a stack it returns twice, as fork.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pid as libc::pid_t)
    }
}

/// `struct clone_args` (linux/sched.h), up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The vfork-style clone on x86_64: `clone3` with a stack of the child's
/// own, and a trampoline that starts the child in [`vfork::child_main`].
#[cfg(target_arch = "x86_64")]
mod vfork {
    use super::{run_child, Child, CloneArgs, CLONE_INTO_CGROUP};
    use std::io;
    use std::mem::MaybeUninit;
    use std::os::fd::RawFd;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The child's stack. It runs a few hundred bytes deep (the setup and
    /// the syscall wrappers); the rest is margin for debug builds.
    const STACK_SIZE: usize = 64 * 1024;

    /// 16-byte aligned, as the ABI wants the stack at a call.
    #[repr(C, align(16))]
    struct Stack([MaybeUninit<u8>; STACK_SIZE]);

    /// Set when the kernel has no `clone3` (before 5.3): no use asking again.
    static UNAVAILABLE: AtomicBool = AtomicBool::new(false);

    /// Clones a child that shares herdd's memory, runs [`run_child`] on a
    /// stack in this frame and execs; returns once it has exec'd or exited.
    /// `None`: the kernel refused (the caller forks instead).
    pub(super) fn clone_exec<F: Fn() -> io::Result<()>>(
        child: &mut Child<'_, F>,
        cgroup: Option<RawFd>,
    ) -> Option<io::Result<libc::pid_t>> {
        if UNAVAILABLE.load(Ordering::Relaxed) {
            return None;
        }
        let mut stack = Stack([MaybeUninit::uninit(); STACK_SIZE]);
        let mut flags = (libc::CLONE_VM | libc::CLONE_VFORK) as u64;
        if cgroup.is_some() {
            flags |= CLONE_INTO_CGROUP;
        }
        let args = CloneArgs {
            flags,
            exit_signal: libc::SIGCHLD as u64,
            stack: stack.0.as_mut_ptr() as u64,
            stack_size: STACK_SIZE as u64,
            cgroup: cgroup.unwrap_or(0) as u64,
            ..CloneArgs::default()
        };
        // SAFETY: prctl reads no memory.
        let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE) };
        let context = (child as *mut Child<'_, F>).cast::<libc::c_void>();
        // SAFETY: `args` describes `stack`, which stays in this frame until
        // the call returns, and CLONE_VFORK returns only after the child has
        // exec'd or exited: it never uses the stack after that. `child_main`
        // gets `context`, a `Child<F>` that outlives the call likewise.
        let result = unsafe { clone_on_stack(&args, child_main::<F>, context) };
        if result < 0 {
            if result == -(libc::ENOSYS as i64) {
                UNAVAILABLE.store(true, Ordering::Relaxed);
            }
            // Any refusal (no CLONE_INTO_CGROUP before 5.7, say): fork.
            return None;
        }
        // Changing credentials in the child made the memory it shared with
        // herdd non-dumpable (the flag is the memory's); it has its own now.
        // SAFETY: prctl reads no memory.
        unsafe {
            if dumpable == 1 && libc::prctl(libc::PR_GET_DUMPABLE) != 1 {
                libc::prctl(libc::PR_SET_DUMPABLE, 1);
            }
        }
        Some(Ok(result as libc::pid_t))
    }

    /// Where the child starts, on its own stack. It never returns: there is
    /// no frame to return to.
    ///
    /// # Safety
    /// Only as the entry of a vfork-style child, with `context` a `Child<F>`.
    unsafe extern "C" fn child_main<F: Fn() -> io::Result<()>>(context: *mut libc::c_void) -> ! {
        // SAFETY: `context` is the parent's `Child<F>`; the parent thread is
        // suspended until this process execs or exits, so nothing else
        // touches it meanwhile.
        unsafe {
            let child = &mut *context.cast::<Child<'_, F>>();
            let error = run_child(child);
            let errno = error.raw_os_error().unwrap_or(libc::EINVAL);
            child.failure.store(errno, Ordering::Release);
            libc::_exit(127)
        }
    }

    /// `clone3(args)`; in the child, which the kernel starts on
    /// `args.stack`, calls `main(context)`. Returns the child's pid, or
    /// `-errno`, in the parent.
    ///
    /// # Safety
    /// `args` must name a stack that stays valid until the child execs or
    /// exits (CLONE_VFORK), and `main` must not return.
    unsafe fn clone_on_stack(
        args: &CloneArgs,
        main: unsafe extern "C" fn(*mut libc::c_void) -> !,
        context: *mut libc::c_void,
    ) -> i64 {
        let result: i64;
        // SAFETY: the syscall instruction clobbers only rax, rcx and r11 in
        // the parent. The child resumes after it with the same registers on
        // the new stack (16-byte aligned at its top), so `main` and
        // `context` come from r12 and r13; it clears the frame pointer
        // (nothing above it) and calls `main`, which never returns.
        unsafe {
            std::arch::asm!(
                "syscall",
                "test rax, rax",
                "jnz 2f",
                "xor ebp, ebp",
                "mov rdi, r13",
                "call r12",
                "ud2",
                "2:",
                inlateout("rax") libc::SYS_clone3 => result,
                in("rdi") args as *const CloneArgs,
                in("rsi") std::mem::size_of::<CloneArgs>(),
                in("r12") main,
                in("r13") context,
                lateout("rcx") _,
                lateout("r11") _,
            );
        }
        result
    }
}

/// The child's side, on either path: returns only on failure.
///
/// # Safety
/// Only in a child made by [`fork_exec`], which starts with every signal
/// blocked; the rules of the module docs apply.
unsafe fn run_child<F: Fn() -> io::Result<()>>(child: &mut Child<'_, F>) -> io::Error {
    let fail = || io::Error::last_os_error();
    // SAFETY: raw syscalls (and glibc's thin wrappers of them) on memory
    // prepared by the parent (the caller's contract).
    unsafe {
        // herdd's handlers must not run here; then a clean mask, as the
        // program expects (herdd's blocked signals must not leak into it).
        reset_signal_handlers();
        if set_signal_mask(&empty_signal_set(), None) != 0 {
            return fail();
        }
        let pid = libc::getpid();
        for (entry, slot) in child.pid_entries.iter_mut().zip(&child.plan.pid_slots) {
            if let Some((at, prefix)) = slot {
                format_pid_entry(entry, prefix, pid);
                *child.envp.add(*at) = entry.as_ptr().cast();
            }
        }
        if libc::setpgid(0, 0) != 0 {
            return fail();
        }
        for (fd, target) in [(Some(child.null), 0), (child.stdout, 1), (child.stderr, 2)] {
            if let Some(fd) = fd {
                if redirect(fd, target) != 0 {
                    return fail();
                }
            }
        }
        let plan = child.plan;
        if let Some(cwd) = &plan.cwd {
            if libc::chdir(cwd.as_ptr()) != 0 {
                return fail();
            }
        }
        if let Err(error) = (child.setup)() {
            return error;
        }
        // Last: setup may still use descriptors (cgroup.procs) that these replace.
        if place_sockets(&plan.listen_fds) != 0 {
            return fail();
        }
        libc::execve(plan.path.as_ptr(), child.argv, child.envp.cast_const());
    }
    fail()
}

/// Blocks every signal in this thread until dropped (then restores the mask
/// it found). The raw syscall: glibc's `sigprocmask` leaves its own two
/// internal signals unblocked.
struct BlockedSignals(Option<libc::sigset_t>);

impl BlockedSignals {
    fn all() -> BlockedSignals {
        // SAFETY: a sigset_t is plain bytes; all ones is every signal.
        let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: writes within `all`.
        unsafe {
            std::ptr::write_bytes(
                (&mut all as *mut libc::sigset_t).cast::<u8>(),
                0xff,
                std::mem::size_of::<libc::sigset_t>(),
            )
        };
        // SAFETY: as above.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: both sets are valid for the kernel's size.
        let ok = unsafe { set_signal_mask(&all, Some(&mut old)) } == 0;
        BlockedSignals(ok.then_some(old))
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            // SAFETY: restores the mask read in `all`.
            unsafe { set_signal_mask(old, None) };
        }
    }
}

/// The kernel's signal set: 64 signals on every architecture herd builds for
/// but MIPS.
#[cfg(not(any(target_arch = "mips", target_arch = "mips64")))]
const KERNEL_SIGSET_BYTES: usize = 8;
#[cfg(any(target_arch = "mips", target_arch = "mips64"))]
const KERNEL_SIGSET_BYTES: usize = 16;

fn empty_signal_set() -> libc::sigset_t {
    // SAFETY: all zeroes is the empty set.
    unsafe { std::mem::zeroed() }
}

/// `rt_sigprocmask(SIG_SETMASK)` without glibc's filtering.
///
/// # Safety
/// Async-signal-safe; `set` and `old` are read and written up to the kernel's size.
unsafe fn set_signal_mask(set: &libc::sigset_t, old: Option<&mut libc::sigset_t>) -> libc::c_long {
    let old = old.map_or(std::ptr::null_mut(), |old| old as *mut libc::sigset_t);
    // SAFETY: the caller's contract.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            set as *const libc::sigset_t,
            old,
            KERNEL_SIGSET_BYTES,
        )
    }
}

/// Every signal with a handler goes back to `SIG_DFL`, and so does SIGPIPE
/// (herdd ignores it; a program expects the default). Other ignored
/// signals stay ignored, as across any exec. Each signal is swapped for the
/// default in one call and put back only if it was ignored.
///
/// # Safety
/// Async-signal-safe; for the child.
#[cfg(target_arch = "x86_64")]
unsafe fn reset_signal_handlers() {
    /// The kernel's `struct sigaction` on x86_64 (not glibc's).
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for signal in 1..=64 {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        let mut old = KernelSigaction {
            handler: 0,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        // SAFETY: both structs have the kernel's layout and size.
        unsafe {
            let swapped = libc::syscall(
                libc::SYS_rt_sigaction,
                signal,
                &default as *const KernelSigaction,
                &mut old as *mut KernelSigaction,
                KERNEL_SIGSET_BYTES,
            );
            if swapped == 0 && old.handler == libc::SIG_IGN && signal != libc::SIGPIPE {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    signal,
                    &old as *const KernelSigaction,
                    std::ptr::null_mut::<KernelSigaction>(),
                    KERNEL_SIGSET_BYTES,
                );
            }
        }
    }
}

/// As on x86_64, through glibc's `sigaction` (which declines glibc's own
/// internal signals; the plain fork of these architectures gives the child
/// its own copy of memory, so their handlers could do no harm there).
///
/// # Safety
/// Async-signal-safe; for the child.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn reset_signal_handlers() {
    // SAFETY: sigaction on structs of glibc's layout, owned here.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        for signal in 1..=libc::SIGRTMAX() {
            if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                continue;
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, &default, &mut old) == 0
                && old.sa_sigaction == libc::SIG_IGN
                && signal != libc::SIGPIPE
            {
                libc::sigaction(signal, &old, std::ptr::null_mut());
            }
        }
    }
}

/// Makes `target` a copy of `fd` that survives exec.
///
/// # Safety
/// Async-signal-safe; for the child.
unsafe fn redirect(fd: RawFd, target: RawFd) -> libc::c_int {
    // SAFETY: fcntl/dup2 on descriptors we own.
    unsafe {
        if fd == target {
            // dup2 onto itself would keep close-on-exec set.
            libc::fcntl(fd, libc::F_SETFD, 0)
        } else if libc::dup2(fd, target) < 0 {
            -1
        } else {
            0
        }
    }
}

/// Most sockets a child gets (see `herd_config::MAX_SOCKETS_PER_UNIT`).
const MAX_SOCKETS: usize = herd_config::MAX_SOCKETS_PER_UNIT;

/// Puts `fds` at descriptors 3, 4, ... in order, without close-on-exec.
/// First every one that sits in that range is moved above it, so that no
/// `dup2` overwrites a socket still to be placed.
///
/// # Safety
/// Async-signal-safe (a fixed-size table on the stack); for the child.
unsafe fn place_sockets(fds: &[RawFd]) -> libc::c_int {
    let count = fds.len().min(MAX_SOCKETS);
    let first_free = (3 + count) as RawFd;
    let mut moved = [-1 as RawFd; MAX_SOCKETS];
    // SAFETY: fcntl/dup2 on descriptors the child owns.
    unsafe {
        for (slot, fd) in fds.iter().take(count).enumerate() {
            moved[slot] = if *fd < first_free {
                libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, first_free)
            } else {
                *fd
            };
            if moved[slot] < 0 {
                return -1;
            }
        }
        for (slot, fd) in moved.iter().take(count).enumerate() {
            // dup2 clears close-on-exec on the copy.
            if libc::dup2(*fd, 3 + slot as RawFd) < 0 {
                return -1;
            }
        }
    }
    0
}

/// Writes `prefix` (`LISTEN_PID=`), `pid` and a NUL into `buffer`, without
/// allocating. `prefix` is at most 14 bytes, so it fits.
fn format_pid_entry(buffer: &mut [u8; 32], prefix: &[u8], pid: libc::pid_t) {
    buffer[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 12];
    let mut count = 0;
    let mut rest = pid.unsigned_abs();
    loop {
        digits[count] = b'0' + (rest % 10) as u8;
        count += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for (at, digit) in digits[..count].iter().rev().enumerate() {
        buffer[prefix.len() + at] = *digit;
    }
    buffer[prefix.len() + count] = 0;
}

fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(pipe2(OFlag::O_CLOEXEC)?)
}

fn pipe_for(stdio: &Stdio) -> io::Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    match stdio {
        Stdio::Pipe => pipe().map(|(read, write)| (Some(read), Some(write))),
        Stdio::Inherit | Stdio::Null => Ok((None, None)),
    }
}

/// /dev/null, opened once (close-on-exec: each child gets its own copy
/// as stdin, and stdout/stderr where asked).
fn dev_null() -> io::Result<RawFd> {
    static NULL: std::sync::OnceLock<OwnedFd> = std::sync::OnceLock::new();
    if let Some(null) = NULL.get() {
        return Ok(null.as_raw_fd());
    }
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    Ok(NULL.get_or_init(|| file.into()).as_raw_fd())
}

/// `CLOCK_BOOTTIME` in the clock ticks of `/proc/<pid>/stat`'s start time
/// (the kernel stamps a new process with that clock, and `/proc` rounds it
/// down to ticks): a clone between two equal readings started in that tick.
fn boot_ticks() -> Option<u64> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
    // SAFETY: sysconf reads no memory of ours.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second)
        .ok()
        .filter(|ticks| *ticks > 0 && 1_000_000_000 % ticks == 0)?;
    let nanos = now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64;
    Some(nanos / (1_000_000_000 / per_second))
}

/// The file `exec` would run: `program` itself if it has a `/` (relative to
/// the child's cwd), else the first executable `PATH` entry.
fn resolve(program: &str, search: Option<&OsStr>, cwd: Option<&Path>) -> io::Result<PathBuf> {
    if program.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    if program.contains('/') {
        let path = match (cwd, Path::new(program).is_relative()) {
            (Some(cwd), true) => cwd.join(program),
            _ => PathBuf::from(program),
        };
        return executable(&path).map(|()| PathBuf::from(program));
    }
    let search = search
        .map(|s| s.to_os_string())
        .unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
    let mut denied = None;
    for dir in std::env::split_paths(&search) {
        let candidate = dir.join(program);
        match executable(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(err) if err.raw_os_error() == Some(libc::EACCES) => denied = Some(err),
            Err(_) => {}
        }
    }
    Err(denied.unwrap_or_else(|| io::Error::from_raw_os_error(libc::ENOENT)))
}

/// Whether `path` is a file exec could run (as herdd sees it).
fn executable(path: &Path) -> io::Result<()> {
    let metadata = std::fs::metadata(path)?;
    if metadata.is_dir() {
        return Err(io::Error::from_raw_os_error(libc::EACCES));
    }
    Ok(access(path, AccessFlags::X_OK)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::Pid;
    use std::io::Read;
    use std::sync::atomic::AtomicUsize;

    fn plan(argv: &[&str], env: &[(&str, &str)]) -> ExecPlan {
        let env = env
            .iter()
            .map(|(key, value)| (OsString::from(key), OsString::from(value)))
            .collect();
        let args: Vec<String> = argv[1..].iter().map(|arg| arg.to_string()).collect();
        ExecPlan::new(argv[0], &args, env, None, Stdio::Pipe, Stdio::Null).unwrap()
    }

    fn no_setup() -> io::Result<()> {
        Ok(())
    }

    /// Its stdout, then how it ended.
    fn finish(forked: Forked) -> (String, WaitStatus) {
        let mut text = String::new();
        std::fs::File::from(forked.stdout.unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let status = waitpid(Pid::from_raw(forked.pid as i32), None).unwrap();
        (text, status)
    }

    /// On both paths: the child fills in `LISTEN_PID` with its own pid (in
    /// the envp array it shares with the parent on the vfork path), runs in
    /// a process group of its own, and the parent gets its output.
    #[test]
    fn the_child_names_its_own_pid_and_leads_its_own_group() {
        let plan = plan(
            &[
                "/bin/sh",
                "-c",
                "echo $LISTEN_PID $$ $(cut -d' ' -f5 /proc/$$/stat)",
            ],
            &[("LISTEN_PID", ""), ("PATH", "/usr/bin:/bin")],
        );
        for how in [How::Best, How::Fork] {
            let forked = start(&plan, no_setup, None, how).unwrap();
            let pid = forked.pid;
            let (text, status) = finish(forked);
            assert_eq!(text, format!("{pid} {pid} {pid}\n"));
            assert_eq!(status, WaitStatus::Exited(Pid::from_raw(pid as i32), 0));
        }
    }

    /// The start time known from the clock is the one `/proc` shows (what
    /// adoption after a crash compares).
    #[test]
    fn the_start_time_is_the_one_proc_shows() {
        let plan = plan(&["/bin/true"], &[]);
        let mut known = 0;
        for _ in 0..20 {
            let forked = start(&plan, no_setup, None, How::Best).unwrap();
            let pid = forked.pid;
            if let Some(start_time) = forked.start_time {
                // A zombie until reaped below: /proc still has it.
                assert_eq!(Some(start_time), crate::shell::adopt::start_time(pid));
                known += 1;
            }
            finish(forked);
        }
        assert!(known > 0, "no clone fell within one clock tick");
    }

    /// The vfork-style child's failure is known when the call returns,
    /// with the errno of the step that failed.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_failure_in_the_child_comes_back_at_once() {
        let plan = plan(&["/bin/true"], &[]);
        let refuse = || Err(io::Error::from_raw_os_error(libc::EPERM));
        let Err(ForkError::Child { pid, error }) = start(&plan, refuse, None, How::Best) else {
            panic!("the child's failure was not reported");
        };
        assert_eq!(error.raw_os_error(), Some(libc::EPERM));
        let status = waitpid(Pid::from_raw(pid as i32), None).unwrap();
        assert_eq!(status, WaitStatus::Exited(Pid::from_raw(pid as i32), 127));
    }

    /// A child that changes its credentials clears the dumpable flag of the
    /// memory it shares with the parent (with `fs.suid_dumpable` 0, the
    /// default): the parent sets it back, or herdd could no longer dump core
    /// and its /proc files would turn root's. Needs root to change uid.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_parent_stays_dumpable_after_a_child_changed_credentials() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let plan = plan(&["/bin/true"], &[]);
        let become_nobody = || {
            // SAFETY: raw syscalls in the child, as spawn.rs makes them.
            unsafe {
                libc::syscall(libc::SYS_setgid, 65534);
                libc::syscall(libc::SYS_setuid, 65534);
            }
            Ok(())
        };
        let forked = start(&plan, become_nobody, None, How::Best).unwrap();
        finish(forked);
        // SAFETY: prctl reads no memory.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE) }, 1);
    }

    static HANDLED: AtomicUsize = AtomicUsize::new(0);

    extern "C" fn count(_: libc::c_int) {
        HANDLED.fetch_add(1, Ordering::SeqCst);
    }

    /// A signal that reaches the child before its exec takes the default
    /// action: the parent's handler would run on the parent's memory (on
    /// the vfork path the counter it bumps is the parent's own).
    #[test]
    fn a_handler_of_the_parent_never_runs_in_the_child() {
        // SAFETY: installs a handler that only bumps an atomic, for a
        // signal nothing else in this test binary uses.
        unsafe {
            let handler: extern "C" fn(libc::c_int) = count;
            libc::signal(libc::SIGUSR2, handler as libc::sighandler_t);
        }
        let plan = plan(&["/bin/true"], &[]);
        let signal_self = || {
            // SAFETY: kill and getpid on this (child) process.
            unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) };
            Ok(())
        };
        for how in [How::Best, How::Fork] {
            let forked = start(&plan, signal_self, None, how).unwrap();
            let pid = Pid::from_raw(forked.pid as i32);
            let (_, status) = finish(forked);
            assert_eq!(
                status,
                WaitStatus::Signaled(pid, nix::sys::signal::Signal::SIGUSR2, false)
            );
        }
        assert_eq!(HANDLED.load(Ordering::SeqCst), 0);
    }

    /// Children started one after the other while other threads allocate
    /// and free without pause (a child that took malloc's lock, or wrote
    /// where they do, would hang or crash this): all run and exit 0.
    #[test]
    fn spawns_while_other_threads_allocate() {
        let plan = plan(&["/bin/sh", "-c", "echo ok"], &[]);
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    while !done.load(Ordering::Relaxed) {
                        let junk: Vec<Vec<u8>> = (1..64).map(|n| vec![n as u8; n * 97]).collect();
                        std::hint::black_box(junk);
                    }
                });
            }
            for _ in 0..100 {
                let forked = start(&plan, no_setup, None, How::Best).unwrap();
                let pid = Pid::from_raw(forked.pid as i32);
                assert_eq!(
                    finish(forked),
                    ("ok\n".to_string(), WaitStatus::Exited(pid, 0))
                );
            }
            done.store(true, Ordering::Relaxed);
        });
    }

    #[test]
    fn listen_pid_is_written_in_decimal_with_a_terminating_nul() {
        let mut buffer = [0xffu8; 32];
        format_pid_entry(&mut buffer, b"LISTEN_PID=", 4_194_304);
        assert_eq!(&buffer[..19], b"LISTEN_PID=4194304\0");
        format_pid_entry(&mut buffer, b"WATCHDOG_PID=", 7);
        assert_eq!(&buffer[..15], b"WATCHDOG_PID=7\0");
    }
}
