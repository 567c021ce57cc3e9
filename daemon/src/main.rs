//! `herdd` — parse arguments, load the config, run the supervisor.

use clap::Parser;
use std::fmt::Display;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// herd's supervisor daemon: starts, watches and reaps the processes in its config.
///
/// herdd runs the services, tasks, pools, semaphores and events of its config
/// file and answers herdctl on a Unix socket (and on D-Bus when `[herd] dbus` is
/// set). SIGHUP reloads the config; SIGTERM and SIGINT shut it down, stopping
/// what it runs.
#[derive(Parser)]
#[command(name = "herdd", version, after_help = ENVIRONMENT)]
struct Args {
    /// Config file [default: /etc/herd/herd.toml as root, else $XDG_CONFIG_HOME/herd/herd.toml]
    #[arg(long, short, env = "HERD_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the config, report every error, and exit 0 (valid) or 1 without starting anything.
    #[arg(long)]
    check_config: bool,
}

/// The environment variables herdd reads, for `--help` and herdd(8).
const ENVIRONMENT: &str = "\
Environment:
  HERD_CONFIG     the config file, as --config
  HERD_LOG        herdd's own log filter: error, warn, info (default), debug, trace
  NO_COLOR        when set and not empty, no colour even on a terminal
  JOURNAL_STREAM  set by systemd: when it names herdd's stderr, log lines carry
                  journald's <N> priority prefix and no timestamp";

fn main() -> ExitCode {
    let args = Args::parse();
    herdd::shell::logging::init();
    let path = args
        .config
        .unwrap_or_else(herd_common::paths::default_config);
    let config = match herd_config::load(&path) {
        Ok(config) => config,
        Err(errors) => {
            report(
                std::io::stderr(),
                format_args!("{errors}\nherdd: {}: invalid configuration", path.display()),
            );
            return ExitCode::FAILURE;
        }
    };
    if args.check_config {
        let units = config.units.len();
        let line = format_args!("{}: ok ({units} units)", path.display());
        return if report(std::io::stdout(), line) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    match herdd::shell::event_loop::start(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report(std::io::stderr(), format_args!("herdd: {err:#}"));
            ExitCode::FAILURE
        }
    }
}

/// Writes `message` and a newline to `out`; false if it could not (a full
/// disk, a closed pipe), where `println!` would panic. There is nowhere left
/// to report that, so the exit code has to say it.
fn report(mut out: impl Write, message: impl Display) -> bool {
    writeln!(out, "{message}").and_then(|()| out.flush()).is_ok()
}
