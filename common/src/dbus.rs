//! herd on D-Bus: the names both ends agree on (docs/protocol.md), and the one
//! mapping between protocol error codes and D-Bus error names.
//!
//! herdd serves the interface [`INTERFACE`] at [`OBJECT_PATH`] under the bus
//! name [`BUS_NAME`]; see `docs/protocol.md` ("D-Bus") for its methods and
//! signals.

use crate::protocol::ErrorCode;

/// The well-known bus name herdd owns.
pub const BUS_NAME: &str = "org.herd.Herd1";
/// The object that carries the interface.
pub const OBJECT_PATH: &str = "/org/herd/Herd1";
/// The interface with herd's methods and signals.
pub const INTERFACE: &str = "org.herd.Herd1.Manager";
/// Every herd D-Bus error name is this prefix, a dot, and the code in CamelCase.
pub const ERROR_PREFIX: &str = "org.herd.Herd1.Error";

/// The generic method: takes a control-protocol request line, returns the reply line.
pub const REQUEST_METHOD: &str = "Request";
/// The method returning the remembered lifecycle events (JSON lines).
pub const RECENT_EVENTS_METHOD: &str = "RecentEvents";
/// The signal carrying every lifecycle event as one JSON `EventLine`.
pub const EVENT_SIGNAL: &str = "Event";

/// Every code, so tests and mappings can go over all of them.
pub const ERROR_CODES: [ErrorCode; 14] = [
    ErrorCode::BadRequest,
    ErrorCode::UnsupportedVersion,
    ErrorCode::UnknownCommand,
    ErrorCode::TooLarge,
    ErrorCode::NoSuchUnit,
    ErrorCode::NoSuchPool,
    ErrorCode::NoSuchTask,
    ErrorCode::Refused,
    ErrorCode::NoSuchSemaphore,
    ErrorCode::PermissionDenied,
    ErrorCode::Failed,
    ErrorCode::ShuttingDown,
    ErrorCode::TooBusy,
    ErrorCode::Reconnect,
];

/// The last part of the D-Bus error name of `code` (`NoSuchUnit`).
pub fn error_member(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::BadRequest => "BadRequest",
        ErrorCode::UnsupportedVersion => "UnsupportedVersion",
        ErrorCode::UnknownCommand => "UnknownCommand",
        ErrorCode::TooLarge => "TooLarge",
        ErrorCode::NoSuchUnit => "NoSuchUnit",
        ErrorCode::NoSuchPool => "NoSuchPool",
        ErrorCode::NoSuchTask => "NoSuchTask",
        ErrorCode::Refused => "Refused",
        ErrorCode::NoSuchSemaphore => "NoSuchSemaphore",
        ErrorCode::PermissionDenied => "PermissionDenied",
        ErrorCode::Failed => "Failed",
        ErrorCode::ShuttingDown => "ShuttingDown",
        ErrorCode::TooBusy => "TooBusy",
        ErrorCode::Reconnect => "Reconnect",
    }
}

/// The D-Bus error name of `code`: `org.herd.Herd1.Error.NoSuchUnit`.
pub fn error_name(code: ErrorCode) -> String {
    format!("{ERROR_PREFIX}.{}", error_member(code))
}

/// The code a herd D-Bus error name stands for; `None` for any other name.
pub fn error_code(name: &str) -> Option<ErrorCode> {
    let member = name.strip_prefix(ERROR_PREFIX)?.strip_prefix('.')?;
    ERROR_CODES
        .into_iter()
        .find(|code| error_member(*code) == member)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_own_name_and_maps_back() {
        let mut names: Vec<String> = ERROR_CODES.iter().map(|c| error_name(*c)).collect();
        for code in ERROR_CODES {
            assert_eq!(error_code(&error_name(code)), Some(code), "{code:?}");
        }
        assert_eq!(
            error_name(ErrorCode::NoSuchUnit),
            "org.herd.Herd1.Error.NoSuchUnit"
        );
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ERROR_CODES.len());
        assert_eq!(error_code("org.freedesktop.DBus.Error.AccessDenied"), None);
        assert_eq!(error_code("org.herd.Herd1.ErrorNoSuchUnit"), None);
    }

    #[test]
    fn names_are_the_protocol_codes_in_camel_case() {
        for code in ERROR_CODES {
            let camel: String = code
                .as_str()
                .split('_')
                .map(|word| {
                    let mut chars = word.chars();
                    chars.next().map_or_else(String::new, |first| {
                        first.to_ascii_uppercase().to_string() + chars.as_str()
                    })
                })
                .collect();
            assert_eq!(error_member(code), camel);
        }
    }
}
