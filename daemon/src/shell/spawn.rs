//! fork/exec of one process, as `SpawnSpec` describes it.
//!
//! `fork.rs` makes the child and execs; this file prepares what the child
//! needs (credentials, limits, environment). What the child does between
//! the clone and the exec follows `fork.rs`'s rules: the child may share
//! herdd's memory, so only raw syscalls on memory prepared here, no
//! allocation, no locks.

use super::cgroup::{Cgroups, Placement};
use super::fork::{fork_exec, ExecPlan, ForkError, Stdio};
use crate::core::{Output, Owner, SpawnSpec};
use herd_config::Rlimit;
use nix::errno::Errno;
use nix::unistd::{getegid, geteuid};
use std::collections::BTreeMap;
use std::ffi::OsString;
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
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Spawns `spec` in cgroups of its own, or a pool task without limits in
/// its pool's, as far as this system allows (see `cgroup.rs`): the one call
/// the event loop makes to start a process.
pub fn spawn_confined(
    cgroups: &mut Cgroups,
    owner: &Owner,
    spec: &SpawnSpec,
) -> Result<Spawned, String> {
    // The core names a task's pool in its environment.
    let pool = spec.env.get("HERD_POOL").map(String::as_str);
    let placement = cgroups.place(owner, &spec.confinement, pool);
    let join_by_write = placement
        .as_ref()
        .map(Placement::join_by_write)
        .unwrap_or_default();
    let into = placement.as_ref().and_then(Placement::v2);
    let result = spawn(spec, &join_by_write, into);
    cgroups.settle(placement, result.as_ref().ok().map(|spawned| spawned.pid));
    result
}

/// Spawns the process in its own process group; returns its pid, or a message
/// for `status` such as `exec /no/such: No such file or directory`.
/// `cgroup_procs` are open `cgroup.procs` files the child joins before exec
/// (see `cgroup.rs`); they stay open in herdd until this returns.
/// `into_cgroup` is a v2 cgroup (directory, `cgroup.procs`) to create the child in.
pub fn spawn(
    spec: &SpawnSpec,
    cgroup_procs: &[RawFd],
    into_cgroup: Option<(RawFd, RawFd)>,
) -> Result<Spawned, String> {
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
        parent: std::process::id() as libc::pid_t,
        cgroup_procs: cgroup_procs.to_vec(),
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
    let env = environment(spec, from_files);
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
    let apply = || {
        if setup.is_needed() {
            setup.apply()
        } else {
            Ok(())
        }
    };
    let forked = fork_exec(&plan, apply, into_cgroup).map_err(|err| match err {
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
}

/// The child's environment: herdd's own (unless `clear_env`), then the
/// variables of its `env_file`s, then the spec's `env` on top.
fn environment(spec: &SpawnSpec, from_files: Vec<(String, String)>) -> Vec<(OsString, OsString)> {
    let mut env: BTreeMap<OsString, OsString> = if spec.confinement.clear_env {
        BTreeMap::from([(OsString::from("PATH"), OsString::from(DEFAULT_PATH))])
    } else {
        std::env::vars_os().collect()
    };
    env.extend(
        from_files
            .into_iter()
            .map(|(key, value)| (OsString::from(key), OsString::from(value))),
    );
    env.extend(
        spec.env
            .iter()
            .map(|(key, value)| (OsString::from(key), OsString::from(value))),
    );
    env.into_iter().collect()
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

    /// Runs in the child, before its exec: raw syscalls only (fork.rs).
    fn apply(&self) -> io::Result<()> {
        // SAFETY: (the whole function) plain syscalls that only read memory
        // owned by `self` (shared with the parent, which waits, or copied
        // by a fork); no allocation, no locks.
        unsafe {
            // First, while still root: from here on every descendant is in
            // the cgroups too (and counted against their limits).
            for fd in &self.cgroup_procs {
                if libc::write(*fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(mask) = self.umask {
                libc::umask(mask as libc::mode_t);
            }
            for (resource, soft, hard) in &self.rlimits {
                let limit = libc::rlimit {
                    rlim_cur: *soft as libc::rlim_t,
                    rlim_max: *hard as libc::rlim_t,
                };
                check(libc::setrlimit(*resource, &limit))?;
            }
            if let Some(credentials) = &self.credentials {
                // Raw syscalls, not glibc's wrappers: those apply the change
                // to every thread glibc knows of, and a child made by a raw
                // clone3 still lists herdd's other threads (the journal
                // writer), so the wrapper would wait for them for ever.
                // They change this process's credentials only, even when it
                // shares herdd's memory.
                check_syscall(libc::syscall(
                    libc::SYS_setgroups,
                    credentials.groups.len(),
                    credentials.groups.as_ptr(),
                ))?;
                check_syscall(libc::syscall(libc::SYS_setgid, credentials.gid))?;
                check_syscall(libc::syscall(libc::SYS_setuid, credentials.uid))?;
            }
            // After the credentials: changing them clears the parent-death signal.
            if self.die_with_parent {
                check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
                // herdd may have died before prctl: then nobody would kill us.
                if libc::getppid() != self.parent {
                    libc::_exit(1);
                }
            }
            if self.no_new_privs {
                check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
            }
        }
        Ok(())
    }
}

fn check_syscall(result: libc::c_long) -> io::Result<()> {
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
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
