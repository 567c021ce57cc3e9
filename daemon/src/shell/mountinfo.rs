//! Where a process's cgroups are in the file system: /proc/self/mountinfo
//! says where each cgroup hierarchy is mounted (and which of its directories:
//! a container may see only part of it), `/proc/<pid>/cgroup` where in each
//! hierarchy the process is.

use std::path::PathBuf;

/// One line of /proc/self/mountinfo: where a hierarchy is mounted.
struct Mount<'a> {
    /// The hierarchy's directory that is mounted (`/` unless bind-mounted).
    root: &'a str,
    point: &'a str,
    fstype: &'a str,
    super_options: &'a str,
}

fn mounts(mountinfo: &str) -> impl Iterator<Item = Mount<'_>> {
    mountinfo.lines().filter_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut left = left.split(' ');
        let root = left.nth(3)?;
        let point = left.next()?;
        let mut right = right.split(' ');
        let fstype = right.next()?;
        let super_options = right.nth(1).unwrap_or("");
        Some(Mount {
            root,
            point,
            fstype,
            super_options,
        })
    })
}

/// `mount point + (cgroup path relative to the mount's root)`, unescaping
/// mountinfo's octal escapes (`\040` for a space).
fn join_mount(mount: &Mount, path: &str) -> Option<PathBuf> {
    let relative = path.strip_prefix(mount.root)?;
    let dir = PathBuf::from(unescape(mount.point)).join(relative.trim_start_matches('/'));
    dir.is_dir().then_some(dir)
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 4);
        match code.and_then(|code| u8::from_str_radix(code, 8).ok()) {
            Some(byte) => {
                out.push(byte as char);
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The directory of a process's cgroup in the v2 hierarchy, from
/// /proc/self/mountinfo and the process's `/proc/<pid>/cgroup` (`0::/path`).
pub fn v2_dir(mountinfo: &str, memberships: &str) -> Option<PathBuf> {
    let path = memberships
        .lines()
        .find_map(|line| line.strip_prefix("0::"))?;
    mounts(mountinfo)
        .filter(|mount| mount.fstype == "cgroup2")
        .find_map(|mount| join_mount(&mount, path))
}

/// The directory of a process's cgroup in the v1 hierarchy that has
/// `controller` (`4:memory:/path` in its `/proc/<pid>/cgroup`).
pub fn v1_dir(mountinfo: &str, memberships: &str, controller: &str) -> Option<PathBuf> {
    let path = v1_path(memberships, controller)?;
    mounts(mountinfo)
        .filter(|mount| {
            mount.fstype == "cgroup" && mount.super_options.split(',').any(|o| o == controller)
        })
        .find_map(|mount| join_mount(&mount, path))
}

/// Where the cgroup hierarchies are mounted, parsed once for many look-ups
/// (reading usage of hundreds of processes). Unlike [`v2_dir`] and
/// [`v1_dir`] its answers are not checked against the file system: a
/// directory that has gone simply yields no files.
pub struct Hierarchies {
    v2: Option<OwnedMount>,
    v1: Vec<(OwnedMount, String)>,
}

struct OwnedMount {
    root: String,
    point: PathBuf,
}

impl OwnedMount {
    fn of(mount: &Mount) -> OwnedMount {
        OwnedMount {
            root: mount.root.to_string(),
            point: PathBuf::from(unescape(mount.point)),
        }
    }

    fn join(&self, path: &str) -> Option<PathBuf> {
        let relative = path.strip_prefix(self.root.as_str())?;
        Some(self.point.join(relative.trim_start_matches('/')))
    }
}

impl Hierarchies {
    pub fn parse(mountinfo: &str) -> Hierarchies {
        let mut hierarchies = Hierarchies {
            v2: None,
            v1: Vec::new(),
        };
        for mount in mounts(mountinfo) {
            match mount.fstype {
                "cgroup2" if hierarchies.v2.is_none() => {
                    hierarchies.v2 = Some(OwnedMount::of(&mount));
                }
                "cgroup" => hierarchies
                    .v1
                    .push((OwnedMount::of(&mount), mount.super_options.to_string())),
                _ => {}
            }
        }
        hierarchies
    }

    /// As [`v2_dir`], from the parsed mounts.
    pub fn v2_dir(&self, memberships: &str) -> Option<PathBuf> {
        let path = memberships
            .lines()
            .find_map(|line| line.strip_prefix("0::"))?;
        self.v2.as_ref()?.join(path)
    }

    /// As [`v1_dir`], from the parsed mounts.
    pub fn v1_dir(&self, memberships: &str, controller: &str) -> Option<PathBuf> {
        let path = v1_path(memberships, controller)?;
        self.v1
            .iter()
            .filter(|(_, options)| options.split(',').any(|o| o == controller))
            .find_map(|(mount, _)| mount.join(path))
    }
}

/// The path of a process's cgroup in the v1 hierarchy that has `controller`.
fn v1_path<'a>(memberships: &'a str, controller: &str) -> Option<&'a str> {
    memberships.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        controllers
            .split(',')
            .any(|name| name == controller)
            .then_some(path)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
35 24 0:31 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
36 35 0:32 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
37 35 0:33 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
38 35 0:34 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn reads_mountinfo() {
        let found: Vec<_> = mounts(MOUNTINFO)
            .map(|m| (m.root, m.point, m.fstype, m.super_options))
            .collect();
        assert_eq!(found[1], ("/", "/sys/fs/cgroup/pids", "cgroup", "rw,pids"));
        assert_eq!(found[3], ("/", "/sys/fs/cgroup/unified", "cgroup2", "rw"));
    }

    #[test]
    fn unescapes_mount_points() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/odd\\"), "/odd\\");
    }

    #[test]
    fn finds_nested_cgroups_under_their_mount() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = dir.path().join("memory");
        let v2 = dir.path().join("unified");
        std::fs::create_dir_all(v1.join("process_api/abc")).unwrap();
        std::fs::create_dir_all(v2.join("system.slice/herd.service")).unwrap();
        let mountinfo = format!(
            "35 24 0:31 / {} rw - cgroup cgroup rw,memory\n\
             38 24 0:34 / {} rw - cgroup2 cgroup2 rw\n",
            v1.display(),
            v2.display()
        );
        let memberships = "4:memory:/process_api/abc\n0::/system.slice/herd.service\n";
        assert_eq!(
            v1_dir(&mountinfo, memberships, "memory"),
            Some(v1.join("process_api/abc"))
        );
        assert_eq!(v1_dir(&mountinfo, memberships, "pids"), None);
        assert_eq!(
            v2_dir(&mountinfo, memberships),
            Some(v2.join("system.slice/herd.service"))
        );
        let parsed = Hierarchies::parse(&mountinfo);
        assert_eq!(
            parsed.v1_dir(memberships, "memory"),
            Some(v1.join("process_api/abc"))
        );
        assert_eq!(parsed.v1_dir(memberships, "pids"), None);
        assert_eq!(
            parsed.v2_dir(memberships),
            Some(v2.join("system.slice/herd.service"))
        );
    }
}
