//! Who may do what on the control socket (by the peer credentials, SO_PEERCRED).
//!
//! Root, herdd's own user and members of `[herd] control_group` may do
//! anything; everyone else who can reach the socket may only read. The
//! kernel vouches for the peer's uid, gid and groups (`SO_PEERCRED`,
//! `SO_PEERGROUPS`, taken when the client connected), so nothing the client
//! sends can change who it is.

use herd_common::protocol::Request;
use std::io;
use std::os::unix::io::{AsRawFd, RawFd};
use tokio::net::UnixStream;

/// The credentials of the process at the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    /// Primary group: a user whose primary group is `control_group` is a member.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// For the log only: a pid can be reused, so it decides nothing.
    pub pid: Option<i32>,
}

impl Peer {
    /// Reads the credentials the kernel recorded when the client connected.
    pub fn of(stream: &UnixStream) -> io::Result<Peer> {
        let cred = stream.peer_cred()?;
        // Without its groups a peer can still read; it just cannot control
        // herd through a group (failing closed).
        let groups = peer_groups(stream.as_raw_fd()).unwrap_or_else(|err| {
            tracing::debug!(error = %err, "SO_PEERGROUPS failed; ignoring the peer's groups");
            Vec::new()
        });
        Ok(Peer {
            uid: cred.uid(),
            gid: cred.gid(),
            groups,
            pid: cred.pid(),
        })
    }
}

/// The rule, fixed at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// herdd's effective uid: whoever runs herdd may control it.
    pub own_uid: u32,
    /// `[herd] control_group`, by name (for messages) and gid.
    pub control_group: Option<(String, u32)>,
}

impl Policy {
    /// The policy for this herdd: its euid, and `control_group` resolved to a
    /// gid now, so that a typo fails the start rather than locking everyone out.
    pub fn load(control_group: Option<&str>) -> anyhow::Result<Policy> {
        let control_group = match control_group {
            None => None,
            Some(name) => match nix::unistd::Group::from_name(name) {
                Ok(Some(group)) => Some((name.to_string(), group.gid.as_raw())),
                Ok(None) => anyhow::bail!("[herd] control_group = {name:?}: no such group"),
                Err(err) => {
                    anyhow::bail!("[herd] control_group = {name:?}: cannot look it up: {err}")
                }
            },
        };
        Ok(Policy {
            own_uid: nix::unistd::geteuid().as_raw(),
            control_group,
        })
    }

    /// Whether `peer` may control herd (start, stop, submit, shut down, ...).
    pub fn may_control(&self, peer: &Peer) -> bool {
        peer.uid == 0
            || peer.uid == self.own_uid
            || self
                .control_group
                .as_ref()
                .is_some_and(|(_, gid)| peer.gid == *gid || peer.groups.contains(gid))
    }

    /// Whether `peer` may send `request`: anyone may read, only some may change.
    pub fn allows(&self, peer: &Peer, request: &Request) -> bool {
        request.is_read_only() || self.may_control(peer)
    }

    /// The message of a `permission_denied` reply: which verb, and who may.
    pub fn denial(&self, request: &Request) -> String {
        let mut who = "root".to_string();
        if self.own_uid != 0 {
            who += &format!(", uid {} (herdd's user)", self.own_uid);
        }
        match &self.control_group {
            Some((name, _)) => who += &format!(" and members of group {name:?}"),
            None => who += " (or members of [herd] control_group, when one is set)",
        }
        format!(
            "permission denied: only {who} may {}; other users may only read status",
            request.verb()
        )
    }
}

/// `SO_PEERGROUPS` (Linux ≥ 4.13): not exported by the libc crate for every
/// target, and its value differs on sparc.
#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
const SO_PEERGROUPS: libc::c_int = 0x3d;
#[cfg(not(any(target_arch = "sparc", target_arch = "sparc64")))]
const SO_PEERGROUPS: libc::c_int = 59;

/// The peer's supplementary groups, as the kernel recorded them at connect.
fn peer_groups(fd: RawFd) -> io::Result<Vec<u32>> {
    const GID: usize = std::mem::size_of::<libc::gid_t>();
    let mut groups: Vec<libc::gid_t> = vec![0; 32];
    loop {
        let mut len = (groups.len() * GID) as libc::socklen_t;
        // SAFETY: the buffer is `len` bytes of gid_t; the kernel writes at most that.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let needed = len as usize / GID;
        if rc == 0 {
            groups.truncate(needed);
            // Kept for the connection's life: no room for more.
            groups.shrink_to_fit();
            return Ok(groups);
        }
        let err = io::Error::last_os_error();
        // ERANGE: too small; `len` now says how much is needed (at most NGROUPS_MAX).
        if err.raw_os_error() == Some(libc::ERANGE) && needed > groups.len() {
            groups.resize(needed, 0);
            continue;
        }
        return Err(err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERDD: u32 = 1000;
    const CONTROL: u32 = 500;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            uid,
            gid,
            groups: groups.to_vec(),
            pid: Some(42),
        }
    }

    fn policy(control_group: bool) -> Policy {
        Policy {
            own_uid: HERDD,
            control_group: control_group.then(|| ("herd".to_string(), CONTROL)),
        }
    }

    fn read_only() -> Request {
        Request::Status {
            names: vec![],
            usage: true,
        }
    }

    fn mutating() -> Request {
        Request::Stop {
            names: vec!["web".into()],
            wait: true,
        }
    }

    #[test]
    fn who_may_do_what() {
        // (peer, with control_group set, without) → may it control?
        let cases = [
            ("root", peer(0, 0, &[]), true, true),
            ("herdd's own user", peer(HERDD, 1000, &[]), true, true),
            (
                "supplementary member",
                peer(2000, 2000, &[7, CONTROL]),
                true,
                false,
            ),
            (
                "primary-group member",
                peer(2000, CONTROL, &[]),
                true,
                false,
            ),
            ("stranger", peer(65534, 65534, &[7]), false, false),
        ];
        for (who, peer, with_group, without_group) in cases {
            for (policy, may_control) in
                [(policy(true), with_group), (policy(false), without_group)]
            {
                let group = policy.control_group.is_some();
                assert!(
                    policy.allows(&peer, &read_only()),
                    "{who} may always read (control_group set: {group})"
                );
                assert_eq!(
                    policy.allows(&peer, &mutating()),
                    may_control,
                    "{who} stopping a unit (control_group set: {group})"
                );
            }
        }
    }

    #[test]
    fn every_mutating_verb_is_denied_to_strangers() {
        let stranger = peer(65534, 65534, &[]);
        let requests = [
            Request::Shutdown,
            Request::Kill {
                names: vec!["web".into()],
                signal: "KILL".into(),
            },
            Request::Submit {
                pool: "p".into(),
                command: vec!["/bin/true".into()],
                name: None,
                options: Default::default(),
            },
            Request::Output {
                id: 1,
                stream: Default::default(),
            },
        ];
        for request in requests {
            assert!(!policy(true).allows(&stranger, &request), "{request:?}");
        }
    }

    #[test]
    fn the_denial_names_the_verb_and_who_may() {
        let message = policy(true).denial(&mutating());
        assert!(message.starts_with("permission denied"), "{message}");
        assert!(message.contains("may stop"), "{message}");
        assert!(message.contains("uid 1000"), "{message}");
        assert!(message.contains("group \"herd\""), "{message}");
        let as_root = Policy {
            own_uid: 0,
            control_group: None,
        };
        let message = as_root.denial(&Request::Shutdown);
        assert!(message.contains("only root (or members of"), "{message}");
        assert!(message.contains("may shutdown"), "{message}");
    }

    #[test]
    fn an_unknown_control_group_is_a_start_error() {
        let err = Policy::load(Some("no-such-group-herd-test")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "[herd] control_group = \"no-such-group-herd-test\": no such group"
        );
        let known = Policy::load(Some("root")).unwrap();
        assert_eq!(known.control_group, Some(("root".to_string(), 0)));
    }

    #[tokio::test]
    async fn credentials_of_a_real_peer() {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        let peer = Peer::of(&ours).unwrap();
        assert_eq!(peer.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(peer.gid, nix::unistd::getegid().as_raw());
        assert_eq!(peer.pid, Some(std::process::id() as i32));
        let mut ours: Vec<u32> = nix::unistd::getgroups()
            .unwrap()
            .iter()
            .map(|g| g.as_raw())
            .collect();
        let mut seen = peer.groups.clone();
        ours.sort();
        seen.sort();
        assert_eq!(seen, ours);
    }
}
