//! fork/exec of one process, as `SpawnSpec` describes it.
//!
//! `fork.rs` makes the child and execs; this file prepares what the child
//! needs (credentials, limits, environment). What the child does between
//! the clone and the exec follows `fork.rs`'s rules: the child may share
//! herdd's memory, so only raw syscalls on memory prepared here, no
//! allocation, no locks.

use super::cgroup::{Cgroups, Placement};
use super::environ::Environ;
use super::fork::{fork_exec_all, sys, ExecPlan, ForkError, Launch, Stdio};
use crate::core::{Output, Owner, SpawnSpec};
use herd_config::Rlimit;
use nix::errno::Errno;
use nix::unistd::{getegid, geteuid};
use std::io;
use std::os::fd::{OwnedFd, RawFd};

/// A started process (its exec may still be under way).
pub struct Spawned {
    pub pid: u32,
    /// Read ends of its stdout and stderr pipes, when the spec asked for capture.
    pub output: Option<(OwnedFd, OwnedFd)>,
    /// Its start time in `/proc/<pid>/stat`'s terms, when known without reading it.
    pub start_time: Option<u64>,
}

/// `PATH` of a `clear_env` process whose `env` sets none (systemd's default).
pub use super::environ::DEFAULT_PATH;

/// Spawns `spec` in cgroups of its own, or a pool task without limits in
/// its pool's, as far as this system allows (see `cgroup.rs`).
pub fn spawn_confined(
    cgroups: &mut Cgroups,
    owner: &Owner,
    spec: &SpawnSpec,
) -> Result<Spawned, String> {
    let mut results = spawn_confined_all(cgroups, &[(owner, spec)]);
    results.pop().unwrap_or_else(|| Err("not started".into()))
}

/// [`spawn_confined`] for each of `specs`, their children started side by
/// side (`fork.rs`): the one call the event loop makes to start processes.
/// One result per spec, in their order.
pub fn spawn_confined_all(
    cgroups: &mut Cgroups,
    specs: &[(&Owner, &SpawnSpec)],
) -> Vec<Result<Spawned, String>> {
    let placed: Vec<(Option<Placement>, Result<Ready, String>)> = specs
        .iter()
        .map(|(owner, spec)| {
            // The core names a task's pool in its environment.
            let pool = spec.env.get("HERD_POOL").map(String::as_str);
            let placement = cgroups.place(owner, &spec.confinement, pool);
            let join_by_write = placement
                .as_ref()
                .map(Placement::join_by_write)
                .unwrap_or_default();
            let into = placement.as_ref().and_then(Placement::v2);
            (placement, Ready::new(spec, join_by_write, into))
        })
        .collect();
    let started = start_all(placed.iter().map(|(_, ready)| ready));
    placed
        .into_iter()
        .zip(started)
        .map(|((placement, _), result)| {
            cgroups.settle(placement, result.as_ref().ok().map(|spawned| spawned.pid));
            result
        })
        .collect()
}

/// Spawns the process in its own process group; returns its pid, or a message
/// for `status` such as `exec /no/such: No such file or directory`.
/// `cgroup_procs` are open `cgroup.procs` files the child joins before exec
/// (see `cgroup.rs`); they stay open in herdd until this returns.
/// `into_cgroup` is a v2 cgroup's directory to create the child in.
pub fn spawn(
    spec: &SpawnSpec,
    cgroup_procs: &[RawFd],
    into_cgroup: Option<RawFd>,
) -> Result<Spawned, String> {
    let ready = Ready::new(spec, cgroup_procs.to_vec(), into_cgroup);
    let mut results = start_all(std::iter::once(&ready));
    results.pop().unwrap_or_else(|| Err("not started".into()))
}

/// A process ready to start: everything its child needs, built before the clone.
struct Ready {
    program: String,
    plan: ExecPlan,
    setup: ChildSetup,
    into_cgroup: Option<RawFd>,
}

impl Ready {
    fn new(
        spec: &SpawnSpec,
        cgroup_procs: Vec<RawFd>,
        into_cgroup: Option<RawFd>,
    ) -> Result<Ready, String> {
        let (program, args) = spec.argv.split_first().ok_or("empty command")?;
        if let Some(cwd) = &spec.cwd {
            // exec reports a missing cwd as ENOENT, indistinguishable from a missing binary.
            if let Err(err) = std::fs::read_dir(cwd) {
                return Err(format!("cwd {}: {}", cwd.display(), describe(&err)));
            }
        }
        let credentials = Credentials::resolve(spec)?;
        // Read now, at each start, so a restart picks up an edited file. The
        // files are small regular files opened without blocking (env_file.rs).
        let from_files = herd_config::env_file::load(&spec.env_files)?;
        let setup = ChildSetup {
            parent: herdd_pid(),
            cgroup_procs,
            no_new_privs: spec.confinement.no_new_privs,
            die_with_parent: spec.daemon,
            umask: spec.umask,
            rlimits: spec
                .rlimits
                .iter()
                .map(|(r, v)| (resource(*r), *v, *v))
                .chain(children_nofile(spec))
                .collect(),
            credentials,
        };
        let env = environment(spec, &from_files)
            .map_err(|err| format!("exec {program}: {}", describe(&err)))?;
        let (stdout, stderr) = match spec.output {
            Output::Capture | Output::Log { .. } => (Stdio::Pipe, Stdio::Pipe),
            Output::Discard => (Stdio::Null, Stdio::Null),
            Output::Inherit => (Stdio::Inherit, Stdio::Inherit),
        };
        let cwd = spec.cwd.as_deref();
        let mut plan = ExecPlan::new(program, args, env, cwd, stdout, stderr)
            .map_err(|err| format!("exec {program}: {}", describe(&err)))?;
        if !spec.listen_fds.is_empty() {
            plan.pass_sockets(spec.listen_fds.clone());
        }
        if setup.credentials.is_some() {
            plan.changes_credentials();
        }
        Ok(Ready {
            program: program.clone(),
            plan,
            setup,
            into_cgroup,
        })
    }
}

/// Starts every ready process, side by side; a spec that could not be
/// made ready keeps its error. One result each, in order.
fn start_all<'a>(
    ready: impl Iterator<Item = &'a Result<Ready, String>>,
) -> Vec<Result<Spawned, String>> {
    let ready: Vec<&Result<Ready, String>> = ready.collect();
    let launches: Vec<_> = ready
        .iter()
        .filter_map(|ready| ready.as_ref().ok())
        .map(|ready| Launch {
            plan: &ready.plan,
            setup: || {
                if ready.setup.is_needed() {
                    ready.setup.apply()
                } else {
                    Ok(())
                }
            },
            into_cgroup: ready.into_cgroup,
        })
        .collect();
    let mut forked = fork_exec_all(&launches).into_iter();
    ready
        .iter()
        .map(|ready| {
            let ready = ready.as_ref().map_err(Clone::clone)?;
            let forked = forked
                .next()
                .unwrap_or_else(|| Err(ForkError::Fork(io::Error::other("not started"))));
            let program = &ready.program;
            let forked = forked.map_err(|err| match err {
                ForkError::Fork(err) => format!("fork: {}", describe(&err)),
                // As a failure reported by a forked child (`ExecErrors`) reads.
                ForkError::Child { error, .. } => format!("exec {program}: {}", describe(&error)),
            })?;
            let output = match (forked.stdout, forked.stderr) {
                (Some(stdout), Some(stderr)) => Some((stdout, stderr)),
                _ => None,
            };
            Ok(Spawned {
                pid: forked.pid,
                output,
                start_time: forked.start_time,
            })
        })
        .collect()
}

/// The child's environment: herdd's own (unless `clear_env`), then the
/// variables of its `env_file`s, then the spec's `env` on top.
fn environment(spec: &SpawnSpec, from_files: &[(String, String)]) -> io::Result<Environ> {
    let files = from_files.iter().map(|(key, value)| (key, value));
    let vars = files.chain(&spec.env);
    let vars = vars.map(|(key, value)| (key.as_bytes(), value.as_bytes()));
    Environ::new(spec.confinement.clear_env, vars)
}

/// "No such file or directory" rather than "No such file or directory (os error 2)".
fn describe(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => Errno::from_raw(code).desc().to_string(),
        None => err.to_string(),
    }
}

/// Who the child runs as: the ids the config's `user` and `group` had when
/// it was loaded (no user database lookup here: it may block on LDAP).
struct Credentials {
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
}

impl Credentials {
    fn resolve(spec: &SpawnSpec) -> Result<Option<Credentials>, String> {
        let (user, group) = (spec.user.as_ref(), spec.group.as_ref());
        if user.is_none() && group.is_none() {
            return Ok(None);
        }
        let (euid, egid) = (geteuid().as_raw(), getegid().as_raw());
        let uid = user.map_or(euid, |user| user.uid);
        let gid = group
            .map(|group| group.gid)
            .or(user.map(|user| user.gid))
            .unwrap_or(egid);
        if euid != 0 {
            if uid == euid && gid == egid {
                return Ok(None); // already who we should be
            }
            return Err("switching user or group needs herdd to run as root".into());
        }
        let groups = match user {
            Some(user) => user.groups_with(gid),
            None => vec![gid],
        };
        Ok(Some(Credentials { uid, gid, groups }))
    }
}

/// What the child does between fork and exec.
struct ChildSetup {
    parent: libc::pid_t,
    /// `cgroup.procs` files to write `0` to (join those cgroups).
    cgroup_procs: Vec<RawFd>,
    no_new_privs: bool,
    die_with_parent: bool,
    umask: Option<u32>,
    /// (resource, soft, hard)
    rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
    credentials: Option<Credentials>,
}

impl ChildSetup {
    fn is_needed(&self) -> bool {
        !self.cgroup_procs.is_empty()
            || self.no_new_privs
            || self.die_with_parent
            || self.umask.is_some()
            || !self.rlimits.is_empty()
            || self.credentials.is_some()
    }

    /// Runs in the child, before its exec: raw syscalls only, through
    /// `sys::call` (fork.rs).
    fn apply(&self) -> io::Result<()> {
        self.apply_raw().map_err(io::Error::from_raw_os_error)
    }

    fn apply_raw(&self) -> Result<(), i32> {
        // SAFETY: (the whole function) plain syscalls that only read memory
        // owned by `self` (shared with the parent, or copied by a fork); no
        // allocation, no locks, no errno.
        unsafe {
            // First, while still root: from here on every descendant is in
            // the cgroups too (and counted against their limits).
            for fd in &self.cgroup_procs {
                sys::call(libc::SYS_write, [*fd as usize, b"0".as_ptr() as usize, 1])?;
            }
            if let Some(mask) = self.umask {
                sys::call(libc::SYS_umask, [mask as usize])?;
            }
            for (resource, soft, hard) in &self.rlimits {
                let limit = [*soft, *hard]; // struct rlimit64
                sys::call(
                    libc::SYS_prlimit64,
                    [0, *resource as usize, limit.as_ptr() as usize, 0],
                )?;
            }
            if let Some(credentials) = &self.credentials {
                // Raw syscalls, not glibc's wrappers: those apply the change
                // to every thread glibc knows of, and a child made by a raw
                // clone3 still lists herdd's other threads (the journal
                // writer), so the wrapper would wait for them for ever.
                // They change this process's credentials only, even when it
                // shares herdd's memory.
                sys::call(
                    libc::SYS_setgroups,
                    [
                        credentials.groups.len(),
                        credentials.groups.as_ptr() as usize,
                    ],
                )?;
                sys::call(libc::SYS_setgid, [credentials.gid as usize])?;
                sys::call(libc::SYS_setuid, [credentials.uid as usize])?;
            }
            // After the credentials: changing them clears the parent-death signal.
            if self.die_with_parent {
                let signal = libc::SIGKILL as usize;
                sys::call(libc::SYS_prctl, [libc::PR_SET_PDEATHSIG as usize, signal])?;
                // herdd may have died before prctl: then nobody would kill us.
                if sys::call(libc::SYS_getppid, []) != Ok(self.parent as usize) {
                    sys::exit(1);
                }
            }
            if self.no_new_privs {
                sys::call(libc::SYS_prctl, [libc::PR_SET_NO_NEW_PRIVS as usize, 1])?;
            }
        }
        Ok(())
    }
}

/// herdd's pid, asked of the kernel once (herdd never forks itself, and
/// keeps its pid across a re-exec).
fn herdd_pid() -> libc::pid_t {
    static PID: std::sync::OnceLock<libc::pid_t> = std::sync::OnceLock::new();
    *PID.get_or_init(|| std::process::id() as libc::pid_t)
}

/// The descriptor limit herdd was started with, for a child whose
/// `rlimits` does not set one (herdd raised its own: descriptors.rs).
fn children_nofile(spec: &SpawnSpec) -> Option<(libc::__rlimit_resource_t, u64, u64)> {
    if spec.rlimits.iter().any(|(r, _)| *r == Rlimit::Nofile) {
        return None;
    }
    let (soft, hard) = super::descriptors::children_limit()?;
    Some((libc::RLIMIT_NOFILE, soft, hard))
}

fn resource(limit: Rlimit) -> libc::__rlimit_resource_t {
    match limit {
        Rlimit::Nofile => libc::RLIMIT_NOFILE,
        Rlimit::Nproc => libc::RLIMIT_NPROC,
        Rlimit::Core => libc::RLIMIT_CORE,
        Rlimit::Memlock => libc::RLIMIT_MEMLOCK,
        Rlimit::Stack => libc::RLIMIT_STACK,
        Rlimit::As => libc::RLIMIT_AS,
        Rlimit::Fsize => libc::RLIMIT_FSIZE,
        Rlimit::Cpu => libc::RLIMIT_CPU,
    }
}
