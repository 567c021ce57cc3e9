//! `user` and `group`: looked up in the system's user database (NSS:
//! /etc/passwd and /etc/group, or LDAP and the like) when the config is
//! loaded, so that a name the system does not know is a config error at its
//! key, and herdd never waits on the database while it starts processes.
//! (A reload looks them up again.)

use std::ffi::CString;

use nix::unistd;

use crate::model::{Group, User};
use crate::value::{Cx, Value};

/// The account `user = "NAME"` names, with the groups that list it.
pub(crate) fn user(cx: &mut Cx, key: &str, value: &Value) -> Option<User> {
    let name = cx.non_empty_string(key, value)?;
    let found = match unistd::User::from_name(name) {
        Ok(Some(found)) => found,
        Ok(None) => {
            cx.error(value.span(), key, format!("no such user `{name}`"));
            return None;
        }
        Err(err) => {
            let message = format!("cannot look up user `{name}`: {}", err.desc());
            cx.error(value.span(), key, message);
            return None;
        }
    };
    let groups = CString::new(name)
        .ok()
        .and_then(|c_name| unistd::getgrouplist(&c_name, found.gid).ok());
    let Some(groups) = groups else {
        let message = format!("cannot look up the groups of user `{name}`");
        cx.error(value.span(), key, message);
        return None;
    };
    let gid = found.gid.as_raw();
    Some(User {
        name: name.to_string(),
        uid: found.uid.as_raw(),
        gid,
        memberships: groups
            .into_iter()
            .map(|group| group.as_raw())
            .filter(|group| *group != gid)
            .collect(),
    })
}

/// The group `group = "NAME"` names.
pub(crate) fn group(cx: &mut Cx, key: &str, value: &Value) -> Option<Group> {
    let name = cx.non_empty_string(key, value)?;
    match unistd::Group::from_name(name) {
        Ok(Some(found)) => Some(Group {
            name: name.to_string(),
            gid: found.gid.as_raw(),
        }),
        Ok(None) => {
            cx.error(value.span(), key, format!("no such group `{name}`"));
            None
        }
        Err(err) => {
            let message = format!("cannot look up group `{name}`: {}", err.desc());
            cx.error(value.span(), key, message);
            None
        }
    }
}
