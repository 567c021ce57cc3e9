//! `herdctl`, the systemctl-style command line of herd.
//!
//! # Layout
//! - `cli`      — clap derive types: the whole command line, nothing else
//! - `commands` — one module per verb, each with an `exec`
//! - `output`   — tables, durations, colour, JSON
//! - `error`    — what can go wrong, in words and in JSON
//! - `dbus`     — the D-Bus transport (`--dbus`)
//!
//! This file owns the exit-code policy (README "herdctl", exit codes), in one place.

mod cli;
mod commands;
mod dbus;
mod error;
#[cfg(test)]
mod generated;
mod output;

use clap::Parser;
use commands::Outcome;
use error::Error;
use herd_common::client::ClientError;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse_from(cli::join_dbus_value(std::env::args_os()));
    let json = cli.json;
    let result = commands::exec(cli);
    if let Err(err) = &result {
        report(err, json);
    }
    ExitCode::from(exit_code(&result))
}

/// Tells the user what went wrong: a message on stderr, and with `--json`
/// also an `{"error": ...}` document on stdout so scripts always get JSON.
fn report(err: &Error, json: bool) {
    if err.is_broken_pipe() {
        return;
    }
    output::print_diagnostic(&err.to_string());
    if json && !matches!(err, Error::Output(_)) {
        // stdout works (the failure was elsewhere); if it broke meanwhile,
        // the message on stderr has already said everything.
        let _ = output::print_json(&err.to_json());
    }
}

/// Exit codes: 0 ok; 1 operation failed; 2 usage error (clap exits 2 itself);
/// 3 not running; 4 no such unit/pool/task/semaphore; 5 permission denied;
/// 6 daemon unreachable (or it did not answer within `--timeout`). `join`, `submit --wait` and `sem acquire` pass a
/// process's own exit code on (`Outcome::Code`), `map` exits 130 when
/// interrupted, and a command `sem acquire` cannot run exits 127 (not
/// found) or 126, as shells do.
fn exit_code(result: &Result<Outcome, Error>) -> u8 {
    match result {
        Ok(Outcome::Success) => 0,
        Ok(Outcome::Failed) => 1,
        Ok(Outcome::NotRunning) => 3,
        Ok(Outcome::Code(code)) => *code,
        Err(Error::Client(ClientError::Remote(body))) => body.code.exit_code(),
        Err(Error::Client(ClientError::Unreachable { source, .. })) => {
            if error::is_denied(source) {
                5
            } else {
                6
            }
        }
        Err(Error::Client(ClientError::Protocol(_))) => 1,
        Err(Error::Client(ClientError::NoAnswer { .. })) => 6,
        Err(Error::Bus(err)) => {
            if err.denied {
                5
            } else {
                6
            }
        }
        // Whoever read our output has gone (`herdctl status | head -1`): not a failure.
        Err(err) if err.is_broken_pipe() => 0,
        Err(Error::Output(_) | Error::Input(_)) => 1,
        Err(Error::Spawn { source, .. }) => {
            if source.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_common::protocol::{ErrorBody, ErrorCode};
    use std::io;
    use std::path::PathBuf;

    fn client_error(err: ClientError) -> u8 {
        exit_code(&Err(Error::Client(err)))
    }

    fn unreachable(kind: io::ErrorKind) -> ClientError {
        ClientError::Unreachable {
            path: PathBuf::from("/run/herd/herd.sock"),
            source: io::Error::from(kind),
        }
    }

    /// Start-up: the command tree clap builds before parsing holds every
    /// verb but none of their arguments; a verb's come when it is parsed.
    #[test]
    fn verbs_arguments_are_built_only_when_parsed() {
        use clap::CommandFactory;
        let tree = cli::Cli::command();
        let map = tree.find_subcommand("map").expect("map is a verb");
        assert_eq!(map.get_arguments().count(), 0);
        assert!(tree.find_subcommand("pool").is_some());

        let mut built = cli::Cli::command();
        built.build();
        let map = built.find_subcommand("map").expect("map is a verb");
        assert!(map.get_arguments().any(|arg| arg.get_id() == "jobs"));
        let cli = cli::Cli::try_parse_from(["herdctl", "map", "-j", "3", "p", "--", "true"])
            .expect("map parses");
        assert!(matches!(cli.command, cli::Command::Map(args) if args.jobs == 3));
    }

    #[test]
    fn outcomes() {
        assert_eq!(exit_code(&Ok(Outcome::Success)), 0);
        assert_eq!(exit_code(&Ok(Outcome::Failed)), 1);
        assert_eq!(exit_code(&Ok(Outcome::NotRunning)), 3);
        assert_eq!(exit_code(&Ok(Outcome::Code(0))), 0);
        assert_eq!(exit_code(&Ok(Outcome::Code(137))), 137);
        assert_eq!(exit_code(&Err(Error::Input("bad".into()))), 1);
    }

    #[test]
    fn commands_that_cannot_run_exit_as_in_a_shell() {
        let spawn = |kind| Error::Spawn {
            program: "x".into(),
            source: io::Error::from(kind),
        };
        assert_eq!(exit_code(&Err(spawn(io::ErrorKind::NotFound))), 127);
        assert_eq!(exit_code(&Err(spawn(io::ErrorKind::PermissionDenied))), 126);
    }

    #[test]
    fn unreachable_daemon_is_6_unless_the_socket_refuses_us() {
        assert_eq!(client_error(unreachable(io::ErrorKind::NotFound)), 6);
        assert_eq!(
            client_error(unreachable(io::ErrorKind::ConnectionRefused)),
            6
        );
        assert_eq!(client_error(unreachable(io::ErrorKind::NotADirectory)), 6);
        assert_eq!(
            client_error(unreachable(io::ErrorKind::PermissionDenied)),
            5
        );
    }

    #[test]
    fn remote_errors_use_the_protocols_mapping() {
        let cases = [
            (ErrorCode::NoSuchUnit, 4),
            (ErrorCode::NoSuchPool, 4),
            (ErrorCode::NoSuchTask, 4),
            (ErrorCode::NoSuchSemaphore, 4),
            (ErrorCode::Refused, 1),
            (ErrorCode::PermissionDenied, 5),
            (ErrorCode::Failed, 1),
            (ErrorCode::ShuttingDown, 1),
            (ErrorCode::BadRequest, 2),
            (ErrorCode::UnsupportedVersion, 2),
        ];
        for (code, exit) in cases {
            let err = ClientError::Remote(ErrorBody::new(code, "x"));
            assert_eq!(client_error(err), exit, "{code:?}");
        }
    }

    #[test]
    fn protocol_and_output_errors() {
        assert_eq!(client_error(ClientError::Protocol("eof".into())), 1);
        let broken = Error::Output(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!(exit_code(&Err(broken)), 0);
        let full = Error::Output(io::Error::from(io::ErrorKind::StorageFull));
        assert_eq!(exit_code(&Err(full)), 1);
    }
}
