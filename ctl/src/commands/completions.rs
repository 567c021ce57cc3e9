//! `herdctl completions SHELL`: completion scripts generated from the same
//! clap definitions that parse the command line, so they never drift.

use super::Outcome;
use crate::cli::{Cli, CompletionsArgs};
use crate::error::Error;
use clap::CommandFactory;
use std::io::{self, Write};

pub fn exec(args: CompletionsArgs) -> Result<Outcome, Error> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "herdctl", &mut script);
    let mut stdout = io::stdout().lock();
    stdout.write_all(&script)?;
    stdout.flush()?;
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap_complete::Shell;

    #[test]
    fn scripts_mention_every_verb() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "herdctl", &mut script);
            let script = String::from_utf8_lossy(&script);
            for verb in [
                "status",
                "start",
                "stop",
                "restart",
                "kill",
                "scale",
                "shutdown",
                "submit",
                "join",
                "map",
                "tasks",
                "output",
                "cancel",
                "pool",
                "terminate",
                "sem",
                "acquire",
                "event",
                "events",
                "follow",
            ] {
                assert!(script.contains(verb), "{shell}: {verb}");
            }
        }
    }
}
