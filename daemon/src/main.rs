//! `herdd` — parse arguments, load the config, run the supervisor.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// herd's supervisor daemon: starts, watches and reaps the processes in its config.
#[derive(Parser)]
#[command(name = "herdd", version)]
struct Args {
    /// Config file [default: /etc/herd/herd.toml as root, else $XDG_CONFIG_HOME/herd/herd.toml]
    #[arg(long, short, env = "HERD_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the config, report every error, and exit 0 (valid) or 1 without starting anything.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    herdd::shell::logging::init();
    let path = args
        .config
        .unwrap_or_else(herd_common::paths::default_config);
    let config = match herd_config::load(&path) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("herdd: {}: invalid configuration", path.display());
            return ExitCode::FAILURE;
        }
    };
    if args.check_config {
        println!("{}: ok ({} units)", path.display(), config.units.len());
        return ExitCode::SUCCESS;
    }
    match herdd::start(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("herdd: {err:#}");
            ExitCode::FAILURE
        }
    }
}
