//! `user` and `group`: looked up when the config is loaded.

use std::path::Path;

use super::{assert_single_errors, MAIN};
use crate::*;

/// `name` as the system's user database knows it, looked up independently.
pub(super) fn system_user(name: &str) -> User {
    let found = nix::unistd::User::from_name(name)
        .unwrap()
        .unwrap_or_else(|| panic!("user {name} on this system"));
    let c_name = std::ffi::CString::new(name).unwrap();
    let memberships = nix::unistd::getgrouplist(&c_name, found.gid)
        .unwrap()
        .into_iter()
        .map(|gid| gid.as_raw())
        .filter(|gid| *gid != found.gid.as_raw())
        .collect();
    User {
        name: name.to_string(),
        uid: found.uid.as_raw(),
        gid: found.gid.as_raw(),
        memberships,
    }
}

/// `name` as the system's group database knows it.
pub(super) fn system_group(name: &str) -> Group {
    let found = nix::unistd::Group::from_name(name)
        .unwrap()
        .unwrap_or_else(|| panic!("group {name} on this system"));
    Group {
        name: name.to_string(),
        gid: found.gid.as_raw(),
    }
}

#[test]
fn names_become_ids_at_load() {
    let text = "[service.a]\ncommand = [\"a\"]\nuser = \"root\"\ngroup = \"root\"\n\
                [pool.p]\nsize = 1\nuser = \"root\"\n";
    let config = parse(Path::new(MAIN), text).unwrap();
    let root = config.units[0].user.clone().expect("user");
    assert_eq!((root.name.as_str(), root.uid, root.gid), ("root", 0, 0));
    assert_eq!(root, system_user("root"));
    assert_eq!(config.units[0].group, Some(system_group("root")));
    assert_eq!(config.pools[0].user, Some(system_user("root")));
    assert_eq!(config.pools[0].group, None);
}

#[test]
fn unknown_names_are_errors_at_their_key() {
    assert_single_errors(&[
        (
            "[service.web]\ncommand = [\"a\"]\nuser = \"no-such-user-for-herd\"\n",
            "3:8: service.web.user: no such user `no-such-user-for-herd`",
        ),
        (
            "[task.t]\ncommand = [\"a\"]\ngroup = \"no-such-group-for-herd\"\n",
            "3:9: task.t.group: no such group `no-such-group-for-herd`",
        ),
        (
            "[pool.p]\nsize = 1\nuser = \"no-such-user-for-herd\"\n",
            "3:8: pool.p.user: no such user `no-such-user-for-herd`",
        ),
    ]);
}

#[test]
fn a_group_replaces_the_primary_one() {
    let user = User {
        name: "u".into(),
        uid: 1000,
        gid: 1000,
        memberships: vec![27, 100],
    };
    assert_eq!(user.groups_with(1000), [1000, 27, 100]);
    assert_eq!(user.groups_with(100), [100, 27]);
    assert_eq!(user.groups_with(5), [5, 27, 100]);
}
