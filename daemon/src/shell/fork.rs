//! Starting processes: clone, prepare the child, exec.
//!
//! The parent prepares everything (argv, environment, the files `exec` may
//! run, pipes) before the clone. The child then makes only raw syscalls:
//! moves into its own process group, resets signals, sets up stdio, cwd and
//! what `spawn.rs` asks (cgroups, limits, credentials, parent-death signal),
//! puts listening sockets at 3.., fills in its own pid, and execs: the
//! program itself, or the first one found in `PATH` as `execvp` does, so
//! that `exec` says what is wrong (with the child's credentials) and herdd
//! looks at no file per spawn.
//!
//! # vfork-style
//!
//! The child borrows herdd's memory instead of getting a copy (`CLONE_VM`),
//! so no page tables are copied and herdd takes no copy-on-write faults
//! afterwards: a fork's cost grows with herdd's size, this one does not. A
//! failure of the child (its exec, or a step before) is known when the
//! start returns ([`ForkError::Child`]). The other herdd threads (the
//! blocking pool, the journal writer) keep running beside the child, in
//! the same memory. Hence what the child may do, and why:
//!
//! - It runs on a stack of its own, on the heap, and starts in a function
//!   of its own (`child_main`); it never returns into the code that
//!   cloned, whose stack it does not have.
//! - It reads only memory prepared for it and written by no other thread
//!   (the plan, argv and envp arrays, `spawn.rs`'s setup), and writes only
//!   its stack, its own pid into the envp slots prepared for it, and the
//!   failure word the parent reads once it is done. It never allocates and
//!   never takes a lock: another herdd thread may hold malloc's, and the
//!   memory is the same.
//! - It makes raw syscalls through [`sys::call`], which returns the errno
//!   rather than setting `errno`: the child shares the thread-local storage
//!   of the thread that cloned it, which may be running meanwhile (below).
//!   Never glibc's `setuid`/`setgroups` wrappers, which signal every thread
//!   glibc knows of and would wait for ever.
//! - No handler of herdd's may run in it (they would act on herdd's state,
//!   say write to its signal pipe): the parent thread blocks every signal
//!   while it starts children (raw `rt_sigprocmask`, glibc's keeps two
//!   internal signals open), and the child sets every handled signal back
//!   to `SIG_DFL` before it clears its mask, as glibc's `posix_spawn` does.
//!   It has its own table of handlers (no `CLONE_SIGHAND`), its own
//!   descriptor table, cwd, umask, limits and credentials (no
//!   `CLONE_FILES`, `CLONE_FS`, `CLONE_THREAD`): changing those leaves
//!   herdd's alone. The one exception is the memory's dumpable flag, which
//!   changing credentials clears: once the children that changed theirs
//!   are done, the parent sets it back.
//! - It ends in `execve` or `exit_group`, nothing else.
//!
//! All of it happens on the thread that runs the event loop, herdd's main
//! thread, and never on a helper thread: the parent-death signal of a
//! `daemon` process fires when the *thread* that made it ends, and every
//! thread but the one that calls `execve` ends at `daemon-reexec`.
//!
//! ## Side by side (x86_64)
//!
//! [`fork_exec_all`] starts a batch (the spawns that one step of the core
//! hands out together: a unit's instances at start, a pool's tasks) with
//! `clone3(CLONE_VM | CLONE_CHILD_CLEARTID)` (plus `CLONE_INTO_CGROUP` for
//! a v2 cgroup), started by a few lines of assembly. The parent does not
//! sleep in the clone: it clones the next child while those before set up
//! and exec on the other cores, up to 16 at a time, then waits for each in
//! turn. The kernel clears each child's `running` word and wakes a futex
//! waiter on it when that child execs or exits (as it does for a thread's
//! join); only then does the parent read its failure word and let go of
//! its stack and memory. Results come back in the batch's order. The only
//! child of a batch is cloned with `CLONE_VFORK` too: with nothing to do
//! meanwhile, the parent sleeps in the clone rather than in a futex wait.
//!
//! ## Portable (every architecture)
//!
//! glibc's `clone(CLONE_VM | CLONE_VFORK)` on a stack of the child's own:
//! the calling thread sleeps until the child has exec'd or exited, one
//! child after the other. There is no `CLONE_INTO_CGROUP` here: the child
//! opens `cgroup.procs` in the cgroup's directory and writes to it first
//! thing. (herdd opens only the directory: a spawn created right in its
//! cgroup, the usual case, costs herdd no `openat` and `close` of a file
//! it would not use.) x86_64 takes this path when the kernel refuses the
//! `clone3` (before 5.3, or without `CLONE_INTO_CGROUP` before 5.7); its
//! tests take it on purpose.
//!
//! While a child works, herdd's event loop waits for it: a few dozen
//! syscalls, but a child stopped or blocked before its exec (a cwd on a
//! hung network mount; joining a v1 cgroup waits for an RCU grace period)
//! holds the loop too, as it would with `posix_spawn`.
//!
//! # fork
//!
//! Where the kernel (or a seccomp filter) refuses even the portable clone,
//! and in tests, the plain fork (`clone3` with `CLONE_INTO_CGROUP` and no stack, else
//! `fork` and a write to the cgroup's `cgroup.procs` in the child) runs the same code
//! on its own copy of memory, and the parent returns as soon as it exists.
//! A failure of the child then comes back through one pipe shared by all
//! children ([`ExecErrors`]): the child writes its pid and the errno there
//! before it exits. One pipe rather than one per child, because every
//! descriptor herdd holds is copied into every fork and closed again at
//! every exec.

use super::environ::Environ;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::{pipe2, read};
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

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
    /// The files to try, in order: `program` itself if it has a `/`, else
    /// `program` in each directory of `PATH`. The child tries them as
    /// `execvp` does, so `exec` itself says what is wrong (with the
    /// child's credentials, in its cwd), and herdd checks no file per spawn.
    paths: Vec<CString>,
    argv: Vec<CString>,
    env: Environ,
    cwd: Option<CString>,
    stdout: Stdio,
    stderr: Stdio,
    /// Listening sockets the child gets as descriptors 3.. (`LISTEN_FDS`).
    listen_fds: Vec<RawFd>,
    /// Indexes in `envp` of the entries the child fills with its own pid
    /// (only it knows it): an empty `LISTEN_PID=` or `WATCHDOG_PID=`.
    pid_slots: [Option<(usize, &'static [u8])>; PID_VARIABLES.len()],
    /// The setup changes the child's credentials (see [`ExecPlan::changes_credentials`]).
    credentials: bool,
}

/// Variables that name the process itself, filled in by the fork child
/// when the environment has them empty.
const PID_VARIABLES: [&[u8]; 2] = [b"LISTEN_PID=", b"WATCHDOG_PID="];

impl ExecPlan {
    /// `program` is looked up in the child's `PATH` unless it contains a `/`.
    /// An empty program is ENOENT, as `exec` would say; a NUL byte in any
    /// string is `InvalidInput`. The files are not looked at here: the
    /// child's `exec` finds out.
    pub fn new(
        program: &str,
        args: &[String],
        env: Environ,
        cwd: Option<&Path>,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<ExecPlan, io::Error> {
        let search = env.get(b"PATH").map(OsStr::from_bytes);
        let cstring = |bytes: &[u8]| {
            CString::new(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
        };
        let paths = candidates(program, search)?
            .iter()
            .map(|path| cstring(path.as_os_str().as_bytes()))
            .collect::<Result<_, _>>()?;
        let mut argv = vec![cstring(program.as_bytes())?];
        for arg in args {
            argv.push(cstring(arg.as_bytes())?);
        }
        let pid_slots = PID_VARIABLES.map(|prefix| {
            env.entries()
                .position(|entry| entry.to_bytes() == prefix)
                .map(|at| (at, prefix))
        });
        Ok(ExecPlan {
            pid_slots,
            paths,
            argv,
            env,
            cwd: cwd
                .map(|dir| cstring(dir.as_os_str().as_bytes()))
                .transpose()?,
            stdout,
            stderr,
            listen_fds: Vec::new(),
            credentials: false,
        })
    }

    /// The setup changes the child's uid or gids. A child that shares
    /// herdd's memory then clears that memory's dumpable flag (the kernel
    /// does so on any change of credentials): herdd sets it back.
    pub fn changes_credentials(&mut self) {
        self.credentials = true;
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

/// Why a start failed.
#[derive(Debug)]
pub enum ForkError {
    /// No child was made (no process, pipe or descriptor to be had).
    Fork(io::Error),
    /// The child failed before its program ran: its exec, or a step of its
    /// setup before it (a cgroup it could not join, a limit it could not
    /// set...). It has exited already. The vfork-style clones know this
    /// when they return; after a plain fork it comes through
    /// [`ExecErrors`]. `pid` is left for the reaper.
    Child { pid: u32, error: io::Error },
}

/// One process for [`fork_exec_all`] to start.
pub struct Launch<'a, F> {
    pub plan: &'a ExecPlan,
    /// What the child does before its exec: raw syscalls only, through
    /// [`sys::call`] (see the module docs).
    pub setup: F,
    /// A v2 cgroup (its directory, open) to start the child in.
    pub into_cgroup: Option<RawFd>,
}

/// Starts `plan`: the child moves into its own process group, gets default
/// signal handlers and a clean signal mask, its stdio, its cwd, runs `setup`
/// (raw syscalls only: see the module docs) and execs.
///
/// With `into_cgroup` (a v2 cgroup's directory), the child is created right
/// in that cgroup with `clone3(CLONE_INTO_CGROUP)`: moving a process into a
/// cgroup afterwards takes a lock that waits for an RCU grace period
/// (milliseconds) and holds up every fork meanwhile. Where that is not to
/// be had, the child opens the cgroup's `cgroup.procs` and writes to it
/// first thing.
pub fn fork_exec<F: Fn() -> io::Result<()>>(
    plan: &ExecPlan,
    setup: F,
    into_cgroup: Option<RawFd>,
) -> Result<Forked, ForkError> {
    let launch = Launch {
        plan,
        setup,
        into_cgroup,
    };
    let mut results = fork_exec_all(std::slice::from_ref(&launch));
    results
        .pop()
        .unwrap_or_else(|| Err(ForkError::Fork(io::Error::other("nothing was started"))))
}

/// Starts every launch as [`fork_exec`] does, several children at a time
/// where the clone allows it (see the module docs); one result per launch,
/// in their order, once every child has exec'd or failed.
pub fn fork_exec_all<F: Fn() -> io::Result<()>>(
    launches: &[Launch<'_, F>],
) -> Vec<Result<Forked, ForkError>> {
    start_all(launches, How::Best)
}

/// Which clone [`start_all`] uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum How {
    /// Concurrent vfork-style clones where available (x86_64), else the
    /// portable one.
    Best,
    /// glibc's `clone(CLONE_VM | CLONE_VFORK)`, one child after the other
    /// (every architecture; tests take it on purpose on x86_64).
    #[cfg_attr(all(not(test), target_arch = "x86_64"), allow(dead_code))]
    Portable,
    /// Always fork (tests take it on purpose; elsewhere only where the
    /// portable clone is refused).
    #[cfg_attr(not(test), allow(dead_code))]
    Fork,
}

fn start_all<F: Fn() -> io::Result<()>>(
    launches: &[Launch<'_, F>],
    how: How,
) -> Vec<Result<Forked, ForkError>> {
    let null = match dev_null() {
        Ok(null) => null,
        Err(error) => {
            return launches
                .iter()
                .map(|_| Err(ForkError::Fork(copy_error(&error))))
                .collect()
        }
    };
    // No handler of herdd's may run in a child before it has reset them;
    // the guard restores this thread's mask once every child has exec'd.
    let blocked = BlockedSignals::all();
    let changes_credentials = launches.iter().any(|launch| launch.plan.credentials);
    // SAFETY: prctl reads no memory.
    let dumpable = changes_credentials && unsafe { libc::prctl(libc::PR_GET_DUMPABLE) } == 1;
    let results = match how {
        How::Best => best(launches, null),
        How::Portable => launches
            .iter()
            .map(|launch| start_one(launch, null, portable_or_fork))
            .collect(),
        How::Fork => launches
            .iter()
            .map(|launch| start_one(launch, null, fork_style))
            .collect(),
    };
    if dumpable {
        // A child that changed credentials on herdd's memory cleared its
        // dumpable flag (the flag is the memory's); the children have
        // memory of their own now. Set once all of them are done, so that
        // no child clears it again afterwards.
        // SAFETY: prctl reads no memory.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) };
    }
    drop(blocked);
    results
}

#[cfg(target_arch = "x86_64")]
fn best<F: Fn() -> io::Result<()>>(
    launches: &[Launch<'_, F>],
    null: RawFd,
) -> Vec<Result<Forked, ForkError>> {
    concurrent::start_all(launches, null)
}

#[cfg(not(target_arch = "x86_64"))]
fn best<F: Fn() -> io::Result<()>>(
    launches: &[Launch<'_, F>],
    null: RawFd,
) -> Vec<Result<Forked, ForkError>> {
    launches
        .iter()
        .map(|launch| start_one(launch, null, portable_or_fork))
        .collect()
}

/// One child's memory from before its clone until it has exec'd, boxed so
/// that it stays where the child reads it.
struct Prepared<'a, F> {
    child: Child<'a, F>,
    /// NULL-terminated arrays of pointers into the plan, which `child`
    /// points at: kept here until the child has exec'd.
    _argv: Vec<*const libc::c_char>,
    _envp: Vec<*const libc::c_char>,
    /// Read ends of the stdout and stderr pipes (for the parent).
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    /// Write ends, which the parent closes once the child has its copies.
    writes: [Option<OwnedFd>; 2],
    into_cgroup: Option<RawFd>,
    /// Nonzero until the child has exec'd or exited (`CLONE_CHILD_CLEARTID`
    /// makes the kernel clear it and wake a futex waiter then).
    running: AtomicU32,
}

fn prepare<'a, F: Fn() -> io::Result<()>>(
    launch: &'a Launch<'a, F>,
    null: RawFd,
) -> io::Result<Box<Prepared<'a, F>>> {
    let plan = launch.plan;
    let (stdout_read, stdout_write) = pipe_for(&plan.stdout)?;
    let (stderr_read, stderr_write) = pipe_for(&plan.stderr)?;
    let target = |stdio: &Stdio, write: &Option<OwnedFd>| match stdio {
        Stdio::Inherit => None,
        Stdio::Null => Some(null),
        Stdio::Pipe => write.as_ref().map(AsRawFd::as_raw_fd),
    };
    let argv = pointers(&plan.argv);
    let mut envp: Vec<*const libc::c_char> = plan
        .env
        .entries()
        .map(CStr::as_ptr)
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let child = Child {
        plan,
        argv: argv.as_ptr(),
        envp: envp.as_mut_ptr(),
        pid_entries: [[0; 32]; PID_VARIABLES.len()],
        null,
        stdout: target(&plan.stdout, &stdout_write),
        stderr: target(&plan.stderr, &stderr_write),
        join: None,
        setup: &launch.setup,
        failure: AtomicI32::new(0),
    };
    Ok(Box::new(Prepared {
        child,
        _argv: argv,
        _envp: envp,
        stdout: stdout_read,
        stderr: stderr_read,
        writes: [stdout_write, stderr_write],
        into_cgroup: launch.into_cgroup,
        running: AtomicU32::new(1),
    }))
}

/// Starts one launch with `clone` (which returns once the child has
/// exec'd or failed, or at once for a fork).
fn start_one<'a, F: Fn() -> io::Result<()>>(
    launch: &'a Launch<'a, F>,
    null: RawFd,
    clone: fn(&mut Prepared<'a, F>) -> io::Result<libc::pid_t>,
) -> Result<Forked, ForkError> {
    let prepared = prepare(launch, null).map_err(ForkError::Fork)?;
    start_prepared(prepared, clone)
}

fn start_prepared<'a, F: Fn() -> io::Result<()>>(
    mut prepared: Box<Prepared<'a, F>>,
    clone: fn(&mut Prepared<'a, F>) -> io::Result<libc::pid_t>,
) -> Result<Forked, ForkError> {
    let before = boot_ticks();
    let pid = clone(&mut prepared);
    let after = boot_ticks();
    finish(prepared, pid, before.filter(|_| before == after))
}

/// The parent's side once the child has exec'd or failed (or, after a
/// fork, exists).
fn finish<F>(
    prepared: Box<Prepared<'_, F>>,
    pid: io::Result<libc::pid_t>,
    start_time: Option<u64>,
) -> Result<Forked, ForkError> {
    let pid = pid.map_err(ForkError::Fork)? as u32;
    let Prepared {
        child,
        stdout,
        stderr,
        ..
    } = *prepared;
    match child.failure.load(Ordering::Acquire) {
        0 => Ok(Forked {
            pid,
            stdout,
            stderr,
            start_time,
        }),
        errno => Err(ForkError::Child {
            pid,
            error: io::Error::from_raw_os_error(errno),
        }),
    }
}

/// What the child works from: all of it prepared by the parent.
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
    /// The directory of a v2 cgroup to join first thing, by writing to its
    /// `cgroup.procs` (where the clone could not create the child in it).
    join: Option<RawFd>,
    setup: &'a F,
    /// The errno of a vfork-style child that failed; read by the parent
    /// once the child has exited.
    failure: AtomicI32,
}

/// A stack for a vfork-style child, on the heap. The child runs a few
/// hundred bytes deep (the setup and the syscalls); the rest is margin for
/// debug builds. Pages it never touches are never faulted in.
struct ChildStack(Vec<u8>);

const STACK_SIZE: usize = 64 * 1024;

impl ChildStack {
    fn new() -> ChildStack {
        ChildStack(Vec::with_capacity(STACK_SIZE + 16))
    }

    /// Its lowest address and size, 16-byte aligned at both ends as the
    /// ABI wants the stack at a call.
    fn region(&mut self) -> (*mut u8, usize) {
        let start = self.0.as_mut_ptr();
        let skip = start.align_offset(16);
        // SAFETY: `skip` < 16 stays within the capacity.
        (unsafe { start.add(skip) }, STACK_SIZE)
    }
}

/// The portable vfork-style clone: glibc's `clone(CLONE_VM | CLONE_VFORK)`
/// on a stack of the child's own; returns once the child has exec'd or
/// exited. No `CLONE_INTO_CGROUP` here: the child joins by writing
/// `cgroup.procs`.
fn portable<F: Fn() -> io::Result<()>>(prepared: &mut Prepared<'_, F>) -> io::Result<libc::pid_t> {
    join_by_write(prepared);
    let mut stack = ChildStack::new();
    let (low, size) = stack.region();
    let context = (&mut prepared.child as *mut Child<'_, F>).cast::<libc::c_void>();
    // SAFETY: the stack grows down from `low + size`, within `stack`, which
    // outlives the call; CLONE_VFORK returns only once the child has
    // exec'd or exited, so it never uses the stack or `context` (a
    // `Child<F>` in `prepared`) after that. `portable_main` never returns.
    let pid = unsafe {
        libc::clone(
            portable_main::<F>,
            low.add(size).cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            context,
        )
    };
    prepared.writes = [None, None];
    if pid < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pid)
    }
}

/// The child is not created in its v2 cgroup (if it has one): it joins
/// by writing to the cgroup's `cgroup.procs` first thing.
fn join_by_write<F>(prepared: &mut Prepared<'_, F>) {
    prepared.child.join = prepared.into_cgroup;
    #[cfg(test)]
    if prepared.into_cgroup.is_some() {
        tests::JOINS_BY_WRITE.with(|joins| joins.set(joins.get() + 1));
    }
}

extern "C" fn portable_main<F: Fn() -> io::Result<()>>(context: *mut libc::c_void) -> libc::c_int {
    // SAFETY: only ever the entry of a child made by `portable`, with its `Child<F>`.
    unsafe { child_main::<F>(context) }
}

/// The portable clone, or a fork where that clone is refused outright (a
/// seccomp filter that allows only `fork`, say); not when the system is
/// out of processes or memory, which a fork would be too.
fn portable_or_fork<F: Fn() -> io::Result<()>>(
    prepared: &mut Prepared<'_, F>,
) -> io::Result<libc::pid_t> {
    match portable(prepared) {
        Err(error)
            if matches!(
                error.raw_os_error(),
                Some(libc::EINVAL | libc::EPERM | libc::ENOSYS)
            ) =>
        {
            prepared.child.join = None;
            fork_style(prepared)
        }
        result => result,
    }
}

/// Where a vfork-style child starts, on its own stack. It never returns:
/// there is no frame to return to.
///
/// # Safety
/// Only as the entry of a vfork-style child, with `context` a `Child<F>`.
unsafe extern "C" fn child_main<F: Fn() -> io::Result<()>>(context: *mut libc::c_void) -> ! {
    // SAFETY: `context` is the parent's `Child<F>`, which nothing else
    // touches until this process has exec'd or exited.
    unsafe {
        let child = &mut *context.cast::<Child<'_, F>>();
        let error = run_child(child);
        let errno = error.raw_os_error().unwrap_or(libc::EINVAL);
        child.failure.store(errno, Ordering::Release);
        sys::exit(127)
    }
}

/// The plain fork: the child runs on its own copy of herdd's memory, and the
/// parent returns as soon as it exists. A failure of the child is written to
/// [`ExecErrors`].
fn fork_style<F: Fn() -> io::Result<()>>(
    prepared: &mut Prepared<'_, F>,
) -> io::Result<libc::pid_t> {
    let report = EXEC_ERRORS.get().map_or(-1, AsRawFd::as_raw_fd);
    let cloned = match prepared.into_cgroup {
        // SAFETY: as for the fork below.
        Some(directory) => unsafe { clone_into_cgroup(directory) }.ok(),
        None => None,
    };
    let pid = match cloned {
        Some(pid) => pid,
        None => {
            join_by_write(prepared);
            // SAFETY: after the fork the child only makes raw syscalls on
            // its copy of memory prepared before (see the module docs).
            unsafe { libc::fork() }
        }
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: in the forked child; see above.
        unsafe {
            let child = &mut prepared.child;
            // Out of the way of descriptors 3.., which the sockets take.
            let report = if child.plan.listen_fds.is_empty() {
                Ok(report as usize)
            } else {
                let above = 3 + child.plan.listen_fds.len();
                sys::call(
                    libc::SYS_fcntl,
                    [report as usize, libc::F_DUPFD_CLOEXEC as usize, above],
                )
            };
            let error = run_child(child);
            let record = [
                sys::call(libc::SYS_getpid, []).unwrap_or(0) as i32,
                error.raw_os_error().unwrap_or(libc::EINVAL),
            ];
            if let Ok(report) = report {
                let _ = sys::call(libc::SYS_write, [report, record.as_ptr() as usize, 8]);
            }
            sys::exit(127);
        }
    }
    prepared.writes = [None, None];
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

/// Concurrent vfork-style clones on x86_64: `clone3(CLONE_VM |
/// CLONE_CHILD_CLEARTID)`, each child on a stack of its own and started by
/// a trampoline in [`child_main`]. The parent does not sleep in each
/// clone: it clones the next child while the ones before set up and exec
/// on the other cores, and waits for each (the kernel clears its
/// `running` word and wakes the futex on it at its exec or exit) before
/// its stack and memory are let go.
#[cfg(target_arch = "x86_64")]
mod concurrent {
    use super::{
        boot_ticks, child_main, finish, portable_or_fork, prepare, start_prepared, Child,
        ChildStack, CloneArgs, ForkError, Forked, Launch, Prepared, CLONE_INTO_CGROUP,
    };
    use std::collections::VecDeque;
    use std::io;
    use std::os::fd::RawFd;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    /// Children between their clone and their exec at most: enough to keep
    /// every core busy, few enough that their stacks stay small.
    const IN_FLIGHT: usize = 16;

    /// Set when the kernel has no `clone3` (before 5.3): no use asking again.
    static UNAVAILABLE: AtomicBool = AtomicBool::new(false);

    /// A child cloned and not yet known to have exec'd.
    struct Flight<'a, F> {
        index: usize,
        prepared: Box<Prepared<'a, F>>,
        stack: ChildStack,
        pid: libc::pid_t,
        start_time: Option<u64>,
    }

    pub(super) fn start_all<F: Fn() -> io::Result<()>>(
        launches: &[Launch<'_, F>],
        null: RawFd,
    ) -> Vec<Result<Forked, ForkError>> {
        let mut results: Vec<Option<Result<Forked, ForkError>>> =
            launches.iter().map(|_| None).collect();
        let mut flying: VecDeque<Flight<'_, F>> = VecDeque::new();
        let mut stacks: Vec<ChildStack> = Vec::new();
        for (index, launch) in launches.iter().enumerate() {
            if flying.len() == IN_FLIGHT {
                if let Some(flight) = flying.pop_front() {
                    land(flight, &mut results, &mut stacks);
                }
            }
            let mut prepared = match prepare(launch, null) {
                Ok(prepared) => prepared,
                Err(error) => {
                    results[index] = Some(Err(ForkError::Fork(error)));
                    continue;
                }
            };
            if UNAVAILABLE.load(Ordering::Relaxed) {
                results[index] = Some(start_prepared(prepared, portable_or_fork));
                continue;
            }
            let mut stack = stacks.pop().unwrap_or_else(ChildStack::new);
            let before = boot_ticks();
            let pid = clone(&mut prepared, &mut stack, launches.len() == 1);
            let after = boot_ticks();
            if pid < 0 {
                if pid == -(libc::ENOSYS as i64) {
                    UNAVAILABLE.store(true, Ordering::Relaxed);
                }
                // Any refusal (no CLONE_INTO_CGROUP before 5.7, say): the
                // portable clone, which joins the cgroup by a write.
                stacks.push(stack);
                results[index] = Some(start_prepared(prepared, portable_or_fork));
                continue;
            }
            // The child has copies of the pipes' write ends.
            prepared.writes = [None, None];
            flying.push_back(Flight {
                index,
                prepared,
                stack,
                pid: pid as libc::pid_t,
                start_time: before.filter(|_| before == after),
            });
        }
        while let Some(flight) = flying.pop_front() {
            land(flight, &mut results, &mut stacks);
        }
        results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| Err(ForkError::Fork(io::Error::other("not started"))))
            })
            .collect()
    }

    /// Waits until the child has exec'd or exited, then takes its result.
    fn land<'a, F>(
        flight: Flight<'a, F>,
        results: &mut [Option<Result<Forked, ForkError>>],
        stacks: &mut Vec<ChildStack>,
    ) {
        wait_cleared(&flight.prepared.running);
        results[flight.index] = Some(finish(flight.prepared, Ok(flight.pid), flight.start_time));
        stacks.push(flight.stack);
    }

    /// Returns once the kernel has cleared `word` (CLONE_CHILD_CLEARTID).
    fn wait_cleared(word: &AtomicU32) {
        while word.load(Ordering::Acquire) != 0 {
            // Not FUTEX_PRIVATE_FLAG: the kernel's wake at exec is a shared one.
            // SAFETY: FUTEX_WAIT reads the word, and returns at once if it
            // is no longer 1.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    word.as_ptr(),
                    libc::FUTEX_WAIT,
                    1u32,
                    std::ptr::null::<libc::timespec>(),
                )
            };
        }
    }

    /// Clones the child of `prepared` on `stack`: its pid, or `-errno`.
    /// `alone`: the only child of its batch, for which there is nothing to
    /// do meanwhile, so this thread sleeps in the clone until the exec
    /// (`CLONE_VFORK`) rather than in a futex wait after it (one syscall
    /// and one wake-up fewer).
    fn clone<F: Fn() -> io::Result<()>>(
        prepared: &mut Prepared<'_, F>,
        stack: &mut ChildStack,
        alone: bool,
    ) -> i64 {
        let (low, size) = stack.region();
        let mut flags = (libc::CLONE_VM | libc::CLONE_CHILD_CLEARTID) as u64;
        if alone {
            flags |= libc::CLONE_VFORK as u64;
        }
        if prepared.into_cgroup.is_some() {
            flags |= CLONE_INTO_CGROUP;
            #[cfg(test)]
            if super::tests::REFUSE_INTO_CGROUP.with(std::cell::Cell::get) {
                return -(libc::EINVAL as i64);
            }
        }
        let args = CloneArgs {
            flags,
            child_tid: prepared.running.as_ptr() as u64,
            exit_signal: libc::SIGCHLD as u64,
            stack: low as u64,
            stack_size: size as u64,
            cgroup: prepared.into_cgroup.map_or(0, |directory| directory) as u64,
            ..CloneArgs::default()
        };
        let context = (&mut prepared.child as *mut Child<'_, F>).cast::<libc::c_void>();
        // SAFETY: `args` describes `stack`, and the caller keeps both the
        // stack and `prepared` (whose `Child<F>` is `context` and whose
        // `running` the kernel clears) where they are until the child has
        // exec'd or exited (`land`). `child_main` never returns.
        unsafe { clone_on_stack(&args, child_main::<F>, context) }
    }

    /// `clone3(args)`; in the child, which the kernel starts on
    /// `args.stack`, calls `main(context)`. Returns the child's pid, or
    /// `-errno`, in the parent.
    ///
    /// # Safety
    /// `args` must name a stack that stays valid until the child execs or
    /// exits, and `main` must not return.
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

/// The child's side, on every path: returns only on failure.
///
/// # Safety
/// Only in a child made here, which starts with every signal blocked; the
/// rules of the module docs apply.
unsafe fn run_child<F: Fn() -> io::Result<()>>(child: &mut Child<'_, F>) -> io::Error {
    let fail = io::Error::from_raw_os_error;
    // SAFETY: raw syscalls on memory prepared by the parent (the caller's contract).
    unsafe {
        // herdd's handlers must not run here; then a clean mask, as the
        // program expects (herdd's blocked signals must not leak into it).
        reset_signal_handlers();
        if let Some(directory) = child.join {
            // First, while still root: every descendant is in the cgroup too.
            if let Err(errno) = join_cgroup(directory) {
                return fail(errno);
            }
        }
        if let Err(errno) = set_signal_mask(&empty_signal_set(), None) {
            return fail(errno);
        }
        if child.plan.pid_slots.iter().any(Option::is_some) {
            let pid = sys::call(libc::SYS_getpid, []).unwrap_or(0) as libc::pid_t;
            for (entry, slot) in child.pid_entries.iter_mut().zip(&child.plan.pid_slots) {
                if let Some((at, prefix)) = slot {
                    format_pid_entry(entry, prefix, pid);
                    *child.envp.add(*at) = entry.as_ptr().cast();
                }
            }
        }
        if let Err(errno) = sys::call(libc::SYS_setpgid, [0, 0]) {
            return fail(errno);
        }
        for (fd, target) in [(Some(child.null), 0), (child.stdout, 1), (child.stderr, 2)] {
            if let Some(fd) = fd {
                if let Err(errno) = redirect(fd, target) {
                    return fail(errno);
                }
            }
        }
        let plan = child.plan;
        if let Some(cwd) = &plan.cwd {
            if let Err(errno) = sys::call(libc::SYS_chdir, [cwd.as_ptr() as usize]) {
                return fail(errno);
            }
        }
        if let Err(error) = (child.setup)() {
            return error;
        }
        // Last: setup may still use descriptors (cgroup.procs) that these replace.
        if let Err(errno) = place_sockets(&plan.listen_fds) {
            return fail(errno);
        }
        fail(exec(plan, child.argv, child.envp.cast_const()))
    }
}

/// Joins the v2 cgroup whose directory is open as `directory`: opens its
/// `cgroup.procs`, writes `0` (this process), closes it.
///
/// # Safety
/// Async-signal-safe; for the child.
unsafe fn join_cgroup(directory: RawFd) -> Result<(), i32> {
    const PROCS: &[u8] = b"cgroup.procs\0";
    let flags = (libc::O_WRONLY | libc::O_CLOEXEC) as usize;
    // SAFETY: a NUL-terminated constant name; the descriptor opened here
    // is closed here, and only written from a constant byte.
    unsafe {
        let procs = sys::call(
            libc::SYS_openat,
            [directory as usize, PROCS.as_ptr() as usize, flags],
        )?;
        let written = sys::call(libc::SYS_write, [procs, b"0".as_ptr() as usize, 1]);
        let _ = sys::call(libc::SYS_close, [procs]);
        written.map(drop)
    }
}

/// Tries each of the plan's paths as `execvp` does: on to the next while
/// there is no such file, remembering a refusal (EACCES) to report if none
/// runs; any other error stops there. Returns only on failure, the errno.
///
/// # Safety
/// Async-signal-safe; for the child. `argv` and `envp` are NULL-terminated.
unsafe fn exec(
    plan: &ExecPlan,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> i32 {
    let mut denied = false;
    for path in &plan.paths {
        // SAFETY: NUL-terminated strings and arrays of the parent's making.
        let errno = unsafe {
            sys::call(
                libc::SYS_execve,
                [path.as_ptr() as usize, argv as usize, envp as usize],
            )
        }
        .err()
        .unwrap_or(libc::EINVAL);
        match errno {
            libc::EACCES => denied = true,
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
            other => return other,
        }
    }
    if denied {
        libc::EACCES
    } else {
        libc::ENOENT
    }
}

/// Raw syscalls for the fork child, whose result carries the errno.
///
/// A vfork-style child shares herdd's memory, and on x86_64 it runs
/// beside the thread that cloned it, whose thread-local `errno` it shares
/// too: so on x86_64 it never goes through `errno` (nor glibc), but
/// through the `syscall` instruction. Elsewhere the clone is the portable
/// one, whose parent sleeps until the exec: glibc's `syscall` is safe there.
pub mod sys {
    /// `args` padded with zeros to the six registers a syscall takes.
    fn six<const N: usize>(args: [usize; N]) -> [usize; 6] {
        let mut all = [0usize; 6];
        for (slot, arg) in all.iter_mut().zip(args) {
            *slot = arg;
        }
        all
    }

    /// Syscall `number` with up to six arguments: its result, or the errno.
    ///
    /// # Safety
    /// As the syscall itself: pointers in `args` must be valid for it.
    #[cfg(target_arch = "x86_64")]
    pub unsafe fn call<const N: usize>(
        number: libc::c_long,
        args: [usize; N],
    ) -> Result<usize, i32> {
        let a = six(args);
        let result: isize;
        // SAFETY: the syscall instruction clobbers rax (the result), rcx
        // and r11; the caller vouches for the arguments.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") number as isize => result,
                in("rdi") a[0],
                in("rsi") a[1],
                in("rdx") a[2],
                in("r10") a[3],
                in("r8") a[4],
                in("r9") a[5],
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        if (-4095..0).contains(&result) {
            Err(-result as i32)
        } else {
            Ok(result as usize)
        }
    }

    /// As on x86_64, through glibc's `syscall`.
    ///
    /// # Safety
    /// As the syscall itself: pointers in `args` must be valid for it.
    #[cfg(not(target_arch = "x86_64"))]
    pub unsafe fn call<const N: usize>(
        number: libc::c_long,
        args: [usize; N],
    ) -> Result<usize, i32> {
        let a = six(args);
        // SAFETY: the caller vouches for the arguments.
        let result = unsafe { libc::syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]) };
        if result == -1 {
            // SAFETY: this thread's errno.
            Err(unsafe { *libc::__errno_location() })
        } else {
            Ok(result as usize)
        }
    }

    /// Ends the child (`exit_group`).
    ///
    /// # Safety
    /// For a fork child only.
    pub unsafe fn exit(code: i32) -> ! {
        loop {
            // SAFETY: ends this process; returns never.
            let _ = unsafe { call(libc::SYS_exit_group, [code as usize]) };
        }
    }
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
        let ok = unsafe { set_signal_mask(&all, Some(&mut old)) }.is_ok();
        BlockedSignals(ok.then_some(old))
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            // SAFETY: restores the mask read in `all`.
            let _ = unsafe { set_signal_mask(old, None) };
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
unsafe fn set_signal_mask(
    set: &libc::sigset_t,
    old: Option<&mut libc::sigset_t>,
) -> Result<usize, i32> {
    let old = old.map_or(std::ptr::null_mut(), |old| old as *mut libc::sigset_t);
    // SAFETY: the caller's contract.
    unsafe {
        sys::call(
            libc::SYS_rt_sigprocmask,
            [
                libc::SIG_SETMASK as usize,
                set as *const libc::sigset_t as usize,
                old as usize,
                KERNEL_SIGSET_BYTES,
            ],
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
            let swapped = sys::call(
                libc::SYS_rt_sigaction,
                [
                    signal as usize,
                    &default as *const KernelSigaction as usize,
                    &mut old as *mut KernelSigaction as usize,
                    KERNEL_SIGSET_BYTES,
                ],
            );
            if swapped.is_ok() && old.handler == libc::SIG_IGN && signal != libc::SIGPIPE {
                let _ = sys::call(
                    libc::SYS_rt_sigaction,
                    [
                        signal as usize,
                        &old as *const KernelSigaction as usize,
                        0,
                        KERNEL_SIGSET_BYTES,
                    ],
                );
            }
        }
    }
}

/// As on x86_64, through glibc's `sigaction` (which declines glibc's own
/// internal signals; the parent of these architectures' portable clone
/// sleeps until the exec, so `errno` is the child's alone meanwhile).
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
unsafe fn redirect(fd: RawFd, target: RawFd) -> Result<(), i32> {
    // SAFETY: fcntl/dup3 on descriptors we own.
    unsafe {
        if fd == target {
            // dup3 refuses to copy onto itself; clear close-on-exec instead.
            sys::call(libc::SYS_fcntl, [fd as usize, libc::F_SETFD as usize, 0])
        } else {
            sys::call(libc::SYS_dup3, [fd as usize, target as usize, 0])
        }
    }
    .map(drop)
}

/// Most sockets a child gets (see `herd_config::MAX_SOCKETS_PER_UNIT`).
const MAX_SOCKETS: usize = herd_config::MAX_SOCKETS_PER_UNIT;

/// Puts `fds` at descriptors 3, 4, ... in order, without close-on-exec.
/// First every one that sits in that range is moved above it, so that no
/// `dup2` overwrites a socket still to be placed.
///
/// # Safety
/// Async-signal-safe (a fixed-size table on the stack); for the child.
unsafe fn place_sockets(fds: &[RawFd]) -> Result<(), i32> {
    let count = fds.len().min(MAX_SOCKETS);
    let first_free = 3 + count;
    let mut moved = [0usize; MAX_SOCKETS];
    // SAFETY: fcntl/dup3 on descriptors the child owns.
    unsafe {
        for (slot, fd) in moved.iter_mut().zip(fds) {
            *slot = if (*fd as usize) < first_free {
                sys::call(
                    libc::SYS_fcntl,
                    [*fd as usize, libc::F_DUPFD_CLOEXEC as usize, first_free],
                )?
            } else {
                *fd as usize
            };
        }
        for (slot, fd) in moved.iter().take(count).enumerate() {
            // dup3 without O_CLOEXEC clears close-on-exec on the copy.
            sys::call(libc::SYS_dup3, [*fd, 3 + slot, 0])?;
        }
    }
    Ok(())
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

/// The files `exec` may run for `program`, in order: `program` itself if
/// it has a `/` (relative to the child's cwd), else `program` in each
/// directory of `search` (`PATH`).
fn candidates(program: &str, search: Option<&OsStr>) -> io::Result<Vec<PathBuf>> {
    if program.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    if program.contains('/') {
        return Ok(vec![PathBuf::from(program)]);
    }
    let search = search.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    // An empty entry is the cwd, as for execvp.
    Ok(std::env::split_paths(search)
        .map(|dir| dir.join(program))
        .collect())
}

/// The same error again (an `io::Error` is not `Clone`).
fn copy_error(error: &io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => io::Error::new(error.kind(), error.to_string()),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::Pid;
    use std::ffi::OsString;
    use std::io::Read;
    use std::sync::atomic::AtomicUsize;

    fn plan(argv: &[&str], env: &[(&str, &str)]) -> ExecPlan {
        let env: Vec<(OsString, OsString)> = env
            .iter()
            .map(|(key, value)| (OsString::from(key), OsString::from(value)))
            .collect();
        let env = Environ::from_pairs(&env).unwrap();
        let args: Vec<String> = argv[1..].iter().map(|arg| arg.to_string()).collect();
        ExecPlan::new(argv[0], &args, env, None, Stdio::Pipe, Stdio::Null).unwrap()
    }

    fn no_setup() -> io::Result<()> {
        Ok(())
    }

    /// Every path this machine has: the concurrent clone where there is
    /// one, the portable vfork-style clone, the fork.
    const PATHS: [How; 3] = [How::Best, How::Portable, How::Fork];

    thread_local! {
        /// Children on this thread told to join their cgroup by a write
        /// rather than being created in it.
        pub(super) static JOINS_BY_WRITE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
        /// Makes the concurrent clone refuse `CLONE_INTO_CGROUP` on this
        /// thread, as a kernel before 5.7 does.
        pub(super) static REFUSE_INTO_CGROUP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// One launch on the path `how`.
    fn start<F: Fn() -> io::Result<()>>(
        plan: &ExecPlan,
        setup: F,
        into_cgroup: Option<RawFd>,
        how: How,
    ) -> Result<Forked, ForkError> {
        let launch = Launch {
            plan,
            setup,
            into_cgroup,
        };
        start_all(std::slice::from_ref(&launch), how).pop().unwrap()
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
        for how in PATHS {
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
        for attempt in 0..30 {
            let forked = start(&plan, no_setup, None, PATHS[attempt % 3]).unwrap();
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
    #[test]
    fn a_failure_in_the_child_comes_back_at_once() {
        let plan = plan(&["/bin/true"], &[]);
        let refuse = || Err(io::Error::from_raw_os_error(libc::EPERM));
        for how in [How::Best, How::Portable] {
            let Err(ForkError::Child { pid, error }) = start(&plan, refuse, None, how) else {
                panic!("the child's failure was not reported on {how:?}");
            };
            assert_eq!(error.raw_os_error(), Some(libc::EPERM));
            let status = waitpid(Pid::from_raw(pid as i32), None).unwrap();
            assert_eq!(status, WaitStatus::Exited(Pid::from_raw(pid as i32), 127));
        }
    }

    /// The child looks the program up in `PATH` as `execvp` does: a
    /// directory without it is skipped, a file it may not run is reported
    /// (EACCES) only if no later one runs, and a missing one is ENOENT.
    #[test]
    fn the_child_searches_path_and_exec_says_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("herd-fork-path-{}", std::process::id()));
        let (empty, denied) = (dir.join("empty"), dir.join("denied"));
        std::fs::create_dir_all(&empty).unwrap();
        std::fs::create_dir_all(&denied).unwrap();
        std::fs::write(denied.join("true"), "#!/bin/sh\n").unwrap();
        let path = |dirs: &[&Path]| std::env::join_paths(dirs).unwrap();
        let with_path = |program: &str, search: std::ffi::OsString| {
            let env = Environ::from_pairs(&[(OsString::from("PATH"), search)]).unwrap();
            ExecPlan::new(program, &[], env, None, Stdio::Null, Stdio::Null).unwrap()
        };
        let runs = with_path("true", path(&[&empty, &denied, Path::new("/bin")]));
        let refused = with_path("true", path(&[&empty, &denied]));
        let missing = with_path("no-such-program-here", path(&[&empty, Path::new("/bin")]));
        for how in [How::Best, How::Portable] {
            let forked = start(&runs, no_setup, None, how).unwrap();
            let pid = Pid::from_raw(forked.pid as i32);
            assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Exited(pid, 0));
            for (plan, errno) in [(&refused, libc::EACCES), (&missing, libc::ENOENT)] {
                let Err(ForkError::Child { pid, error }) = start(plan, no_setup, None, how) else {
                    panic!("no exec error on {how:?}");
                };
                assert_eq!(error.raw_os_error(), Some(errno), "on {how:?}");
                waitpid(Pid::from_raw(pid as i32), None).unwrap();
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A v2 cgroup of the test's own (under its current one), removed on
    /// drop; `None`, with a note, where cgroup v2 is not writable.
    struct TestCgroup(PathBuf);

    impl TestCgroup {
        fn new(name: &str) -> Option<TestCgroup> {
            let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
            let memberships = std::fs::read_to_string("/proc/self/cgroup").ok()?;
            let own = crate::shell::mountinfo::v2_dir(&mounts, &memberships)?;
            let dir = own.join(format!("forktest-{}-{name}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => Some(TestCgroup(dir)),
                Err(err) => {
                    eprintln!("note: no writable cgroup v2 here ({err}): not checked");
                    None
                }
            }
        }
    }

    impl Drop for TestCgroup {
        fn drop(&mut self) {
            // Empty once its reaped children have left it.
            for _ in 0..100 {
                if std::fs::remove_dir(&self.0).is_ok() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }

    /// On every path the child runs in the cgroup it was given: created
    /// right in it with `CLONE_INTO_CGROUP` by the concurrent clone and the
    /// fork, joined by a write of its own to `cgroup.procs` by the portable
    /// clone, and by the concurrent one's fallback when the kernel refuses
    /// the flag.
    #[test]
    fn the_child_runs_in_its_cgroup_on_every_path() {
        let Some(cgroup) = TestCgroup::new("paths") else {
            return;
        };
        let directory = std::fs::File::open(&cgroup.0).unwrap();
        let plan = plan(&["/bin/cat", "/proc/self/cgroup"], &[]);
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let cases = [
            (How::Best, false, 0),
            (How::Best, true, 1),
            (How::Portable, false, 1),
            (How::Fork, false, 0),
        ];
        for (how, refuse, joins) in cases {
            REFUSE_INTO_CGROUP.with(|flag| flag.set(refuse));
            let before = JOINS_BY_WRITE.with(std::cell::Cell::get);
            let forked = start(&plan, no_setup, Some(directory.as_raw_fd()), how);
            REFUSE_INTO_CGROUP.with(|flag| flag.set(false));
            let (text, status) = finish(forked.unwrap());
            assert!(
                matches!(status, WaitStatus::Exited(_, 0)),
                "{how:?}: {status:?}"
            );
            let landed = crate::shell::mountinfo::v2_dir(&mounts, &text);
            assert_eq!(
                landed.as_ref(),
                Some(&cgroup.0),
                "{how:?}, refused {refuse}: {text}"
            );
            let joined = JOINS_BY_WRITE.with(std::cell::Cell::get) - before;
            assert_eq!(joined, joins, "joins by write on {how:?}, refused {refuse}");
        }
    }

    /// Many children started together, some of which fail before their
    /// exec and some of which cannot exec: each result comes back in its
    /// launch's place, with its own pid, output and error, on every path.
    #[test]
    fn a_batch_comes_back_in_order_with_each_childs_own_result() {
        let plans: Vec<ExecPlan> = (0..40)
            .map(|n| match n % 10 {
                7 => plan(&["/no/such/program"], &[]),
                _ => plan(
                    &["/bin/sh", "-c", &format!("echo {n} $LISTEN_PID")],
                    &[("LISTEN_PID", "")],
                ),
            })
            .collect();
        let launches: Vec<_> = plans
            .iter()
            .enumerate()
            .map(|(n, plan)| Launch {
                plan,
                setup: move || match n % 10 {
                    3 => Err(io::Error::from_raw_os_error(libc::EPERM)),
                    _ => Ok(()),
                },
                into_cgroup: None,
            })
            .collect();
        for how in [How::Best, How::Portable] {
            let results = start_all(&launches, how);
            assert_eq!(results.len(), launches.len());
            for (n, result) in results.into_iter().enumerate() {
                match (n % 10, result) {
                    (3 | 7, Err(ForkError::Child { pid, error })) => {
                        let expected = if n % 10 == 3 {
                            libc::EPERM
                        } else {
                            libc::ENOENT
                        };
                        assert_eq!(error.raw_os_error(), Some(expected), "child {n}");
                        waitpid(Pid::from_raw(pid as i32), None).unwrap();
                    }
                    (3 | 7, Ok(_)) => panic!("child {n} should have failed on {how:?}"),
                    (_, Ok(forked)) => {
                        let pid = forked.pid;
                        let (text, status) = finish(forked);
                        assert_eq!(text, format!("{n} {pid}\n"), "child {n} on {how:?}");
                        assert_eq!(status, WaitStatus::Exited(Pid::from_raw(pid as i32), 0));
                    }
                    (_, Err(error)) => panic!("child {n} on {how:?}: {error:?}"),
                }
            }
        }
    }

    /// A child that changes its credentials clears the dumpable flag of the
    /// memory it shares with the parent (with `fs.suid_dumpable` 0, the
    /// default): the parent sets it back, or herdd could no longer dump core
    /// and its /proc files would turn root's. Needs root to change uid.
    #[test]
    fn the_parent_stays_dumpable_after_a_child_changed_credentials() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let mut plan = plan(&["/bin/true"], &[]);
        plan.changes_credentials();
        let become_nobody = || {
            // SAFETY: raw syscalls in the child, as spawn.rs makes them.
            unsafe {
                sys::call(libc::SYS_setgid, [65534])
                    .and_then(|_| sys::call(libc::SYS_setuid, [65534]))
                    .map_err(io::Error::from_raw_os_error)?;
            }
            Ok(())
        };
        for how in [How::Best, How::Portable] {
            let launches: Vec<_> = (0..4)
                .map(|_| Launch {
                    plan: &plan,
                    setup: become_nobody,
                    into_cgroup: None,
                })
                .collect();
            for forked in start_all(&launches, how) {
                finish(forked.unwrap());
            }
            // SAFETY: prctl reads no memory.
            assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE) }, 1, "{how:?}");
        }
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
            unsafe {
                let pid = sys::call(libc::SYS_getpid, []).unwrap_or(0);
                let _ = sys::call(libc::SYS_kill, [pid, libc::SIGUSR2 as usize]);
            }
            Ok(())
        };
        for how in PATHS {
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
            for attempt in 0..100 {
                let forked = start(&plan, no_setup, None, PATHS[attempt % 3]).unwrap();
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
