//! The D-Bus errors of the typed methods.

use herd_common::protocol::{ErrorBody, ErrorCode};

/// The D-Bus errors of the typed methods: one per protocol [`ErrorCode`],
/// named `org.herd.Herd1.Error.<Code>` (herd_common::dbus::error_name).
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.herd.Herd1.Error")]
pub enum HerdError {
    #[zbus(error)]
    ZBus(zbus::Error),
    BadRequest(String),
    UnsupportedVersion(String),
    UnknownCommand(String),
    TooLarge(String),
    NoSuchUnit(String),
    NoSuchPool(String),
    NoSuchTask(String),
    Refused(String),
    NoSuchSemaphore(String),
    PermissionDenied(String),
    Failed(String),
    ShuttingDown(String),
    TooBusy(String),
    Reconnect(String),
}

impl From<ErrorBody> for HerdError {
    fn from(body: ErrorBody) -> Self {
        let message = body.message;
        match body.code {
            ErrorCode::BadRequest => HerdError::BadRequest(message),
            ErrorCode::UnsupportedVersion => HerdError::UnsupportedVersion(message),
            ErrorCode::UnknownCommand => HerdError::UnknownCommand(message),
            ErrorCode::TooLarge => HerdError::TooLarge(message),
            ErrorCode::NoSuchUnit => HerdError::NoSuchUnit(message),
            ErrorCode::NoSuchPool => HerdError::NoSuchPool(message),
            ErrorCode::NoSuchTask => HerdError::NoSuchTask(message),
            ErrorCode::Refused => HerdError::Refused(message),
            ErrorCode::NoSuchSemaphore => HerdError::NoSuchSemaphore(message),
            ErrorCode::PermissionDenied => HerdError::PermissionDenied(message),
            ErrorCode::Failed => HerdError::Failed(message),
            ErrorCode::ShuttingDown => HerdError::ShuttingDown(message),
            ErrorCode::TooBusy => HerdError::TooBusy(message),
            ErrorCode::Reconnect => HerdError::Reconnect(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_common::dbus::{error_name, ERROR_CODES};
    use zbus::DBusError;

    #[test]
    fn each_error_code_is_its_own_dbus_error() {
        for code in ERROR_CODES {
            let error = HerdError::from(ErrorBody::new(code, "why"));
            assert_eq!(error.name().as_str(), error_name(code), "{code:?}");
            assert_eq!(error.description(), Some("why"));
        }
    }
}
