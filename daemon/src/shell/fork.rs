//! fork and exec without waiting for the exec.
//!
//! std's `Command::spawn` blocks until the child has exec'd, to report exec
//! errors; a supervisor starting hundreds of processes then cannot fork the
//! next one while the last one execs. Here the parent prepares everything
//! (paths, argv, environment) before the fork, catches the common exec errors
//! up front (a missing or non-executable program), and returns as soon as the
//! child exists. The rare later failure (say a corrupt binary) comes back
//! through one pipe shared by all children ([`ExecErrors`]): a child whose
//! exec failed writes its pid and the errno there before it exits. One pipe
//! rather than one per child, because every descriptor herdd holds is copied
//! into every fork and closed again at every exec.

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::{access, pipe2, read, AccessFlags};
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

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

/// Forks; the child moves into its own process group, gets a clean signal
/// mask, its stdio, its cwd, runs `setup` (async-signal-safe only) and execs.
///
/// With `into_cgroup` (a v2 cgroup's directory and `cgroup.procs`), the child
/// is created right in that cgroup with `clone3(CLONE_INTO_CGROUP)`: moving a
/// process into a cgroup afterwards takes a lock that waits for an RCU grace
/// period (milliseconds) and holds up every fork meanwhile. Kernels without
/// clone3 get a plain fork and a write to `cgroup.procs` in the child.
pub fn fork_exec(
    plan: &ExecPlan,
    setup: impl Fn() -> io::Result<()>,
    into_cgroup: Option<(RawFd, RawFd)>,
) -> io::Result<Forked> {
    let null = open_null()?;
    let (stdout_read, stdout_write) = pipe_for(&plan.stdout)?;
    let (stderr_read, stderr_write) = pipe_for(&plan.stderr)?;
    let report = EXEC_ERRORS.get().map_or(-1, AsRawFd::as_raw_fd);
    let argv = pointers(&plan.argv);
    let mut envp = pointers(&plan.envp);
    let target = |stdio: &Stdio, write: &Option<OwnedFd>| match stdio {
        Stdio::Inherit => None,
        Stdio::Null => Some(null.as_raw_fd()),
        Stdio::Pipe => write.as_ref().map(AsRawFd::as_raw_fd),
    };
    let stdout_fd = target(&plan.stdout, &stdout_write);
    let stderr_fd = target(&plan.stderr, &stderr_write);
    let cloned = match into_cgroup {
        // SAFETY: as for the fork below.
        Some((directory, _)) => unsafe { clone_into_cgroup(directory) }.ok(),
        None => None,
    };
    let (pid, join_by_write) = match cloned {
        Some(pid) => (pid, None),
        // SAFETY: after the fork the child only makes async-signal-safe
        // calls on memory prepared above, then execs or _exits.
        None => (unsafe { libc::fork() }, into_cgroup.map(|(_, procs)| procs)),
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: in the child; see above.
        unsafe {
            // Filled in here, in the child's own copy of `envp`: the pid is
            // known only now, and the child may not allocate.
            let mut pid_entries = [[0u8; 32]; PID_VARIABLES.len()];
            for (entry, slot) in pid_entries.iter_mut().zip(&plan.pid_slots) {
                if let Some((at, prefix)) = slot {
                    format_pid_entry(entry, prefix, libc::getpid());
                    envp[*at] = entry.as_ptr().cast();
                }
            }
            // Out of the way of descriptors 3.., which the sockets take.
            let report = if plan.listen_fds.is_empty() {
                report
            } else {
                let above = (3 + plan.listen_fds.len()) as libc::c_int;
                libc::fcntl(report, libc::F_DUPFD_CLOEXEC, above)
            };
            let error = match join_by_write {
                Some(procs) if libc::write(procs, b"0".as_ptr().cast(), 1) != 1 => {
                    io::Error::last_os_error()
                }
                _ => child(
                    plan,
                    &argv,
                    &envp,
                    null.as_raw_fd(),
                    stdout_fd,
                    stderr_fd,
                    &setup,
                ),
            };
            let record = [libc::getpid(), error.raw_os_error().unwrap_or(libc::EINVAL)];
            libc::write(report, record.as_ptr().cast(), 8);
            libc::_exit(127);
        }
    }
    Ok(Forked {
        pid: pid as u32,
        stdout: stdout_read,
        stderr: stderr_read,
    })
}

/// `clone3` with `CLONE_INTO_CGROUP`, otherwise like `fork`: returns the
/// child's pid in the parent and 0 in the child.
///
/// # Safety
/// As `fork`: the child may only make async-signal-safe calls.
unsafe fn clone_into_cgroup(directory: RawFd) -> io::Result<libc::pid_t> {
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

/// The child's side. Returns only on failure.
///
/// # Safety
/// Must run in a freshly forked child.
unsafe fn child(
    plan: &ExecPlan,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    null: RawFd,
    stdout: Option<RawFd>,
    stderr: Option<RawFd>,
    setup: &impl Fn() -> io::Result<()>,
) -> io::Error {
    let fail = || io::Error::last_os_error();
    // SAFETY: plain syscalls on prepared memory (caller's contract).
    unsafe {
        if libc::setpgid(0, 0) != 0 {
            return fail();
        }
        // herdd's blocked signals and its ignored SIGPIPE must not leak into the child.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        for (fd, target) in [(Some(null), 0), (stdout, 1), (stderr, 2)] {
            if let Some(fd) = fd {
                if redirect(fd, target) != 0 {
                    return fail();
                }
            }
        }
        if let Some(cwd) = &plan.cwd {
            if libc::chdir(cwd.as_ptr()) != 0 {
                return fail();
            }
        }
        if let Err(error) = setup() {
            return error;
        }
        // Last: setup may still use descriptors (cgroup.procs) that these replace.
        if place_sockets(&plan.listen_fds) != 0 {
            return fail();
        }
        libc::execve(plan.path.as_ptr(), argv.as_ptr(), envp.as_ptr());
    }
    fail()
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

fn open_null() -> io::Result<OwnedFd> {
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    Ok(file.into())
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

    #[test]
    fn listen_pid_is_written_in_decimal_with_a_terminating_nul() {
        let mut buffer = [0xffu8; 32];
        format_pid_entry(&mut buffer, b"LISTEN_PID=", 4_194_304);
        assert_eq!(&buffer[..19], b"LISTEN_PID=4194304\0");
        format_pid_entry(&mut buffer, b"WATCHDOG_PID=", 7);
        assert_eq!(&buffer[..15], b"WATCHDOG_PID=7\0");
    }
}
