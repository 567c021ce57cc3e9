//! The command line as clap derive types. No behaviour lives here: each verb's
//! `exec` is in `commands/`, so `completions` can generate scripts from exactly
//! these definitions.

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;
use std::path::PathBuf;

/// Control herdd, the herd process supervisor.
#[derive(Debug, Parser)]
#[command(name = "herdctl", version, propagate_version = true)]
pub struct Cli {
    /// herdd's control socket [default: /run/herd/herd.sock as root,
    /// $XDG_RUNTIME_DIR/herd/herd.sock otherwise]
    #[arg(long, global = true, env = "HERD_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Print one JSON document on stdout instead of human output
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show units and their instances; exit 3 if a named unit is not running
    Status(StatusArgs),
    /// Start units or instances, waiting until they are running (or exited, for tasks)
    Start(LifecycleArgs),
    /// Stop units or instances, waiting until their processes are gone
    Stop(LifecycleArgs),
    /// Stop, then start units or instances again
    Restart(LifecycleArgs),
    /// Send a signal to the process group of every running instance
    Kill(KillArgs),
    /// Change the number of instances of a service at run time
    Scale(ScaleArgs),
    /// Stop everything gracefully (daemon/join semantics); waits until herdd has exited
    Shutdown(ShutdownArgs),
    /// Print a shell completion script on stdout
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct ShutdownArgs {
    /// Return as soon as the shutdown has begun instead of waiting for herdd to exit
    #[arg(long)]
    pub no_block: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Units (`web`), instances (`web@2`) or globs (`'web*'`); all units when omitted
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

/// Arguments shared by `start`, `stop` and `restart`.
#[derive(Debug, Args)]
pub struct LifecycleArgs {
    /// Units (`web`), instances (`web@2`) or globs (`'web*'`)
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,

    /// Return as soon as herdd accepted the request instead of waiting
    #[arg(long)]
    pub no_block: bool,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Units (`web`), instances (`web@2`) or globs (`'web*'`)
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,

    /// Signal to send: a name (`SIGHUP`, `HUP`) or a number
    #[arg(
        short,
        long,
        value_name = "SIGNAL",
        default_value = "SIGTERM",
        value_parser = signal_arg
    )]
    pub signal: String,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The service to scale
    #[arg(value_name = "NAME")]
    pub name: String,

    /// The new number of instances
    #[arg(value_name = "N")]
    pub instances: u32,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

/// Rejects unknown signal names while parsing, so a typo is a usage error
/// (exit 2) reported by clap, and herdd never sees it. The text is passed on
/// as typed: herdd parses it with the same `parse_signal`.
fn signal_arg(text: &str) -> Result<String, String> {
    match herd_common::signals::parse_signal(text) {
        Some(_) => Ok(text.to_string()),
        None => {
            Err("unknown signal: use a name like SIGHUP or HUP, or a number from 1 to 64".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("herdctl").chain(args.iter().copied()))
    }

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse(&["status", "--json", "--socket", "/tmp/s.sock", "web"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.socket, Some(PathBuf::from("/tmp/s.sock")));
        let Command::Status(args) = cli.command else {
            panic!("expected status, got {:?}", cli.command);
        };
        assert_eq!(args.names, ["web"]);

        let cli = parse(&["--json", "shutdown"]).unwrap();
        assert!(cli.json);
        assert!(matches!(
            cli.command,
            Command::Shutdown(ShutdownArgs { no_block: false })
        ));
    }

    #[test]
    fn status_names_are_optional() {
        let cli = parse(&["status"]).unwrap();
        let Command::Status(args) = cli.command else {
            panic!("expected status");
        };
        assert!(args.names.is_empty());
        assert!(!cli.json);
    }

    #[test]
    fn lifecycle_verbs_need_names_and_take_no_block() {
        for verb in ["start", "stop", "restart"] {
            let err = parse(&[verb]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument, "{verb}");

            let cli = parse(&[verb, "web", "db@1", "--no-block"]).unwrap();
            let (Command::Start(args) | Command::Stop(args) | Command::Restart(args)) = cli.command
            else {
                panic!("expected {verb}");
            };
            assert_eq!(args.names, ["web", "db@1"]);
            assert!(args.no_block);
        }
    }

    #[test]
    fn kill_defaults_to_sigterm_and_checks_the_signal() {
        let Command::Kill(args) = parse(&["kill", "web"]).unwrap().command else {
            panic!("expected kill");
        };
        assert_eq!(args.signal, "SIGTERM");

        let Command::Kill(args) = parse(&["kill", "-s", "hup", "web", "db"]).unwrap().command
        else {
            panic!("expected kill");
        };
        assert_eq!(args.signal, "hup");
        assert_eq!(args.names, ["web", "db"]);

        let err = parse(&["kill", "--signal", "SIGFOO", "web"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn scale_takes_a_count() {
        let Command::Scale(args) = parse(&["scale", "web", "4"]).unwrap().command else {
            panic!("expected scale");
        };
        assert_eq!((args.name.as_str(), args.instances), ("web", 4));
        assert!(parse(&["scale", "web", "-1"]).is_err());
        assert!(parse(&["scale", "web"]).is_err());
    }

    #[test]
    fn completions_know_the_shells() {
        for shell in ["bash", "zsh", "fish"] {
            assert!(parse(&["completions", shell]).is_ok(), "{shell}");
        }
        assert!(parse(&["completions", "cmd.exe"]).is_err());
    }

    #[test]
    fn later_verbs_do_not_exist_yet() {
        let err = parse(&["reload"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSubcommand);
    }
}
