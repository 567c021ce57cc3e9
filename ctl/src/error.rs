//! Why a verb could not do its job, and how that is told to the user.
//!
//! The exit code for each case is chosen in one place, `main::exit_code`; this
//! module only says what happened, in words (stderr) and in JSON (stdout, with
//! `--json`).

use herd_common::client::ClientError;
use serde_json::{json, Value};
use std::fmt;
use std::io;
use std::path::Path;

/// Every way a verb can fail. Operations that were carried out and did not
/// succeed (a unit that failed to start) are not errors: see `commands::Outcome`.
#[derive(Debug)]
pub enum Error {
    /// Talking to herdd failed, or herdd refused the request.
    Client(ClientError),
    /// `--dbus`: no bus, or no herdd on it (exit 6), or the bus's policy
    /// refused the call (exit 5). The message names the bus tried.
    Bus(crate::dbus::BusError),
    /// Writing our own output failed; a closed pipe (`herdctl status | head`)
    /// is not worth a message and exits 0.
    Output(io::Error),
    /// What we were given to work on is unusable (`map`: stdin cannot be
    /// read, or a line is not UTF-8 and so cannot be an argument).
    Input(String),
    /// The command herdctl was to run itself (`sem acquire -- CMD`) could
    /// not be started. Exits 127 if it was not found, 126 otherwise, as a
    /// shell does.
    Spawn { program: String, source: io::Error },
}

impl From<ClientError> for Error {
    fn from(err: ClientError) -> Self {
        Error::Client(err)
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        Error::Output(err)
    }
}

impl Error {
    /// Whether the reader of our stdout went away; nothing is reported then.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(err) if err.kind() == io::ErrorKind::BrokenPipe)
    }

    /// The `{"error": {...}}` document printed on stdout with `--json`, so that
    /// scripts always get JSON. Codes are the daemon's own, plus `unreachable`,
    /// `no_answer` and `protocol_error` for failures that never reached it.
    pub fn to_json(&self) -> Value {
        let message = self.to_string();
        match self {
            Error::Client(ClientError::Remote(body)) => {
                json!({ "error": { "code": body.code.as_str(), "message": message } })
            }
            Error::Client(ClientError::Unreachable { path, source }) => {
                let code = if is_denied(source) {
                    "permission_denied"
                } else {
                    "unreachable"
                };
                json!({ "error": { "code": code, "message": message, "socket": path } })
            }
            Error::Client(ClientError::Protocol(_)) => {
                json!({ "error": { "code": "protocol_error", "message": message } })
            }
            Error::Client(ClientError::NoAnswer { path, .. }) => {
                json!({ "error": { "code": "no_answer", "message": message, "socket": path } })
            }
            Error::Bus(err) => {
                let code = if err.denied {
                    "permission_denied"
                } else {
                    "unreachable"
                };
                json!({ "error": { "code": code, "message": message, "bus": err.bus } })
            }
            Error::Output(_) => json!({ "error": { "code": "output", "message": message } }),
            Error::Input(_) => json!({ "error": { "code": "bad_input", "message": message } }),
            Error::Spawn { .. } => {
                json!({ "error": { "code": "cannot_run", "message": message } })
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Client(ClientError::Unreachable { path, source }) => {
                write_unreachable(f, path, source)
            }
            Error::Client(ClientError::Remote(body)) => f.write_str(&body.message),
            Error::Client(err @ (ClientError::Protocol(_) | ClientError::NoAnswer { .. })) => {
                err.fmt(f)
            }
            Error::Bus(err) => f.write_str(&err.message),
            Error::Output(err) => write!(f, "cannot write output: {}", describe_io(err)),
            Error::Input(message) => f.write_str(message),
            Error::Spawn { program, source } => {
                write!(f, "cannot run {program}: {}", describe_io(source))
            }
        }
    }
}

/// Names the socket that was tried, so a wrong `--socket`/`HERD_SOCKET` or a
/// root/user mix-up is obvious from the message alone.
fn write_unreachable(f: &mut fmt::Formatter<'_>, path: &Path, source: &io::Error) -> fmt::Result {
    let why = match source.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => "herdd is not running",
        _ if is_denied(source) => "permission denied",
        _ => "cannot reach herdd",
    };
    write!(
        f,
        "{why} (cannot connect to {}: {})",
        path.display(),
        describe_io(source)
    )
}

/// Whether connecting failed because the socket's mode keeps us out. herdd is
/// then likely running, so this is "permission denied" (exit 5), not
/// "unreachable" (exit 6).
pub fn is_denied(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::PermissionDenied
}

/// `No such file or directory`, without std's ` (os error 2)` suffix, which
/// says nothing to a user.
pub fn describe_io(err: &io::Error) -> String {
    let text = err.to_string();
    match err.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map_or_else(|| text.clone(), str::to_string),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_common::protocol::{ErrorBody, ErrorCode};
    use std::path::PathBuf;

    /// errno values that are the same on every Linux architecture.
    const ENOENT: i32 = 2;
    const EACCES: i32 = 13;

    fn unreachable(errno: i32) -> Error {
        Error::Client(ClientError::Unreachable {
            path: PathBuf::from("/run/herd/herd.sock"),
            source: io::Error::from_raw_os_error(errno),
        })
    }

    #[test]
    fn unreachable_names_the_socket() {
        assert_eq!(
            unreachable(ENOENT).to_string(),
            "herdd is not running (cannot connect to /run/herd/herd.sock: No such file or directory)"
        );
        assert_eq!(
            unreachable(EACCES).to_string(),
            "permission denied (cannot connect to /run/herd/herd.sock: Permission denied)"
        );
    }

    #[test]
    fn json_errors_keep_the_daemons_code() {
        let err = Error::Client(ClientError::Remote(ErrorBody::new(
            ErrorCode::NoSuchUnit,
            "no unit \"x\"",
        )));
        assert_eq!(
            err.to_json(),
            json!({"error": {"code": "no_such_unit", "message": "no unit \"x\""}})
        );
        assert_eq!(
            unreachable(ENOENT).to_json()["error"]["socket"],
            "/run/herd/herd.sock"
        );
        assert_eq!(
            unreachable(EACCES).to_json()["error"]["code"],
            "permission_denied"
        );
        let err = Error::Client(ClientError::Protocol("bad reply".into()));
        assert_eq!(err.to_json()["error"]["code"], "protocol_error");
        assert_eq!(err.to_string(), "protocol error: bad reply");
    }

    #[test]
    fn spawn_errors_name_the_program() {
        let err = Error::Spawn {
            program: "/no/such".into(),
            source: io::Error::from_raw_os_error(ENOENT),
        };
        assert_eq!(
            err.to_string(),
            "cannot run /no/such: No such file or directory"
        );
        assert_eq!(err.to_json()["error"]["code"], "cannot_run");
    }
}
