//! `[socket.NAME]`: a listening socket herdd binds and holds, handed to the
//! services that name it in `sockets` (the systemd socket-activation
//! convention: descriptors from 3, `LISTEN_FDS`, `LISTEN_PID`,
//! `LISTEN_FDNAMES`). Binding is herdd's job; this module checks the keys.
//! Unknown names in `sockets`, and duplicates, are reported in `validate.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::accounts;
use crate::model::{ListenAddress, SocketConfig};
use crate::named::{missing_key, read_keys, read_tables, Parsed};
use crate::value::{set, Cx, Value};

const KEYS: &[&str] = &["listen", "backlog", "mode", "user", "group"];

/// The kernel caps the backlog at `net.core.somaxconn` anyway.
const MAX_BACKLOG: i64 = 65_535;

/// Most sockets one service may name: the fork child places them with a
/// fixed-size table (it may not allocate).
pub const MAX_SOCKETS_PER_UNIT: usize = 64;

/// Reads every socket of `[socket]` in one file.
pub(crate) fn parse_sockets(cx: &mut Cx, value: &Value) -> Vec<Parsed<SocketConfig>> {
    read_tables(cx, "socket", "socket", value, |cx, name, key, table, _| {
        let mut socket = SocketConfig {
            name: name.get_ref().to_string(),
            // Required: reported below when absent, so never used.
            listen: ListenAddress::Unix(PathBuf::new()),
            backlog: 1024,
            mode: None,
            user: None,
            group: None,
            defined_at: String::new(),
        };
        let mut has_listen = false;
        read_keys(cx, key, table, KEYS, |cx, field, key, value| {
            match field.get_ref().as_ref() {
                "listen" => {
                    has_listen = true;
                    let at = cx.source.locate(value.span());
                    socket.defined_at =
                        format!("{}:{}:{}: {key}", at.file.display(), at.line, at.column);
                    set(&mut socket.listen, listen(cx, key, value));
                }
                "backlog" => set(
                    &mut socket.backlog,
                    cx.integer_in(key, value, 1..=MAX_BACKLOG),
                ),
                "mode" => set(&mut socket.mode, mode(cx, key, value).map(Some)),
                "user" => set(&mut socket.user, accounts::user(cx, key, value).map(Some)),
                "group" => set(&mut socket.group, accounts::group(cx, key, value).map(Some)),
                _ => return false,
            }
            true
        });
        if !has_listen {
            missing_key(cx, name, key, "listen");
        }
        if matches!(socket.listen, ListenAddress::Tcp(_))
            && (socket.mode.is_some() || socket.user.is_some() || socket.group.is_some())
        {
            let message = "`mode`, `user` and `group` apply to Unix sockets only";
            cx.error(name.span(), key, message);
        }
        socket
    })
}

/// `"127.0.0.1:8080"`, `"[::1]:8080"` or an absolute path.
fn listen(cx: &mut Cx, key: &str, value: &Value) -> Option<ListenAddress> {
    let text = cx.non_empty_string(key, value)?;
    if text.starts_with('/') {
        // sun_path holds 108 bytes, the terminating NUL included.
        if text.len() > 107 || text.contains('\0') {
            let message = format!("Unix socket path `{text}` is too long (at most 107 bytes)");
            cx.error(value.span(), key, message);
            return None;
        }
        return Some(ListenAddress::Unix(PathBuf::from(text)));
    }
    match text.parse::<SocketAddr>() {
        Ok(address) => Some(ListenAddress::Tcp(address)),
        Err(_) => {
            let message = format!(
                "invalid listen address `{text}` (expected IP:PORT like \"127.0.0.1:8080\" or \
                 \"[::1]:8080\", or an absolute path for a Unix socket)"
            );
            cx.error(value.span(), key, message);
            None
        }
    }
}

/// `"0660"`: an octal string, like `umask`.
fn mode(cx: &mut Cx, key: &str, value: &Value) -> Option<u32> {
    let text = cx.non_empty_string(key, value)?;
    let parsed = text
        .bytes()
        .all(|digit| (b'0'..=b'7').contains(&digit))
        .then(|| u32::from_str_radix(text, 8).ok())
        .flatten()
        .filter(|mode| *mode <= 0o777);
    if parsed.is_none() {
        let message = format!("invalid mode `{text}` (expected an octal string like \"0660\")");
        cx.error(value.span(), key, message);
    }
    parsed
}
