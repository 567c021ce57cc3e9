//! Who gets a connection: a total limit, a reserve only privileged clients
//! (root, herdd's own user, members of `control_group`) may use, and a
//! limit per uid for everyone else, so that no local user can take every
//! connection and lock the administrator out.
//!
//! The numbers (docs/protocol.md, "Limits"): [`MAX_CONNECTIONS`] in all,
//! of which [`RESERVED`] are kept for privileged clients, and at most
//! [`PER_UID`] per unprivileged uid. Each can be overridden by the
//! environment (tests use small ones); the total is also lowered when
//! `RLIMIT_NOFILE` cannot hold it.

use std::collections::HashMap;
use std::time::Duration;
use tracing::warn;

/// Most connections served at once. Each idle connection costs a task and
/// a small read buffer; 1000 clients are the documented load.
pub const MAX_CONNECTIONS: usize = 4096;

/// Connections only privileged clients may take: with every other slot
/// held, root can still run `herdctl status` and `stop`.
pub const RESERVED: usize = 64;

/// Most connections one unprivileged uid may hold at once.
pub const PER_UID: usize = 256;

/// A connection that has not sent a byte this long after it was accepted
/// is closed. One that has spoken may stay idle for as long as it likes
/// (`events -f`, a held semaphore, a waiting `join`).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Descriptors kept for everything else herdd opens (children's pipes,
/// logs, ...) when `RLIMIT_NOFILE` is what limits connections (but at most
/// three quarters of the limit).
const FD_HEADROOM: u64 = 256;

const MAX_CONNECTIONS_ENV: &str = "HERD_MAX_CONNECTIONS";
const RESERVED_ENV: &str = "HERD_RESERVED_CONNECTIONS";
const PER_UID_ENV: &str = "HERD_MAX_CONNECTIONS_PER_UID";
const IDLE_TIMEOUT_ENV: &str = "HERD_IDLE_TIMEOUT_MS";

/// The limits in force, read once at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub reserved: usize,
    pub per_uid: usize,
    pub idle_timeout: Duration,
}

impl Limits {
    /// The defaults, overridden by the environment, with the total lowered
    /// if herdd could not open that many descriptors.
    pub fn from_env() -> anyhow::Result<Limits> {
        let wanted = env_number(MAX_CONNECTIONS_ENV, MAX_CONNECTIONS)?;
        let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)?;
        // A small limit still leaves a quarter of it to clients: children
        // are held back by the shell's descriptor reserve, not by this.
        let by_fds = usize::try_from(soft.saturating_sub(FD_HEADROOM).max(soft / 4).max(1))
            .unwrap_or(usize::MAX);
        if by_fds < wanted {
            warn!(
                nofile = soft,
                max_connections = by_fds,
                "RLIMIT_NOFILE allows fewer connections than {wanted}; \
                 raise it (LimitNOFILE=) to serve more"
            );
        }
        let max_connections = wanted.min(by_fds);
        // A small limit (few descriptors) keeps a quarter for the privileged.
        let reserved =
            env_number(RESERVED_ENV, RESERVED.min(max_connections / 4))?.min(max_connections - 1);
        Ok(Limits {
            max_connections,
            reserved,
            per_uid: env_number(PER_UID_ENV, PER_UID)?,
            idle_timeout: Duration::from_millis(env_number(
                IDLE_TIMEOUT_ENV,
                IDLE_TIMEOUT.as_millis() as usize,
            )? as u64),
        })
    }
}

fn env_number(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| anyhow::anyhow!("{name}={text:?}: not a positive number")),
        Err(_) => Ok(default),
    }
}

/// Why a connection was turned away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot this client may use is taken.
    Full { max: usize },
    /// This uid holds its share.
    UidFull { uid: u32, max: usize },
}

impl Refusal {
    /// The `too_busy` message.
    pub fn message(&self) -> String {
        match self {
            Refusal::Full { max } => {
                format!("herdd is serving its maximum of {max} connections; try again later")
            }
            Refusal::UidFull { uid, max } => format!(
                "uid {uid} already holds its maximum of {max} connections; close some and \
                 try again"
            ),
        }
    }
}

/// The connections being served, by uid.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    total: usize,
    by_uid: HashMap<u32, usize>,
}

impl Admission {
    pub fn new(limits: Limits) -> Admission {
        Admission {
            limits,
            total: 0,
            by_uid: HashMap::new(),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Takes a slot for a client of `uid`, or says why not.
    pub fn admit(&mut self, uid: u32, privileged: bool) -> Result<(), Refusal> {
        let Limits {
            max_connections,
            reserved,
            per_uid,
            ..
        } = self.limits;
        let open_to_all = max_connections - reserved;
        let held = self.by_uid.get(&uid).copied().unwrap_or(0);
        if self.total >= max_connections || (!privileged && self.total >= open_to_all) {
            return Err(Refusal::Full {
                max: max_connections,
            });
        }
        if !privileged && held >= per_uid {
            return Err(Refusal::UidFull { uid, max: per_uid });
        }
        self.total += 1;
        *self.by_uid.entry(uid).or_default() += 1;
        Ok(())
    }

    /// A connection of `uid` has ended.
    pub fn release(&mut self, uid: u32) {
        self.total = self.total.saturating_sub(1);
        if let Some(held) = self.by_uid.get_mut(&uid) {
            *held -= 1;
            if *held == 0 {
                self.by_uid.remove(&uid);
            }
        }
    }

    pub fn total(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission() -> Admission {
        Admission::new(Limits {
            max_connections: 10,
            reserved: 3,
            per_uid: 4,
            idle_timeout: IDLE_TIMEOUT,
        })
    }

    #[test]
    fn one_user_gets_its_share_and_no_more() {
        let mut admission = admission();
        for _ in 0..4 {
            admission.admit(65534, false).unwrap();
        }
        assert_eq!(
            admission.admit(65534, false),
            Err(Refusal::UidFull { uid: 65534, max: 4 })
        );
        admission.admit(1000, false).unwrap();
        admission.release(65534);
        admission.admit(65534, false).unwrap();
    }

    #[test]
    fn the_reserve_is_for_privileged_clients_only() {
        let mut admission = admission();
        for uid in 0..7 {
            admission.admit(2000 + uid, false).unwrap();
        }
        assert_eq!(admission.admit(3000, false), Err(Refusal::Full { max: 10 }));
        for _ in 0..3 {
            admission.admit(0, true).unwrap();
        }
        assert_eq!(admission.admit(0, true), Err(Refusal::Full { max: 10 }));
        assert_eq!(admission.total(), 10);
        admission.release(0);
        admission.admit(0, true).unwrap();
    }

    #[test]
    fn privileged_clients_have_no_share_to_exhaust() {
        let mut admission = admission();
        for _ in 0..10 {
            admission.admit(0, true).unwrap();
        }
        assert!(admission.admit(0, true).is_err());
    }
}
