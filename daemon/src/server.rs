//! herdd assembled: the one place where the front ends (`control`) are
//! wired to the shell. The shell serves requests from a channel; the
//! socket listener and the D-Bus front end send into it. When the shell's
//! loop ends (shutdown finished, or `daemon-reexec`), the front ends let
//! their clients take their last replies, then herdd exits or re-executes.

use crate::control::admission::Limits;
use crate::control::dbus::{self, Sides};
use crate::control::denials::Denials;
use crate::control::listener::{Closing, Listener};
use crate::control::metrics_http::MetricsListener;
use crate::control::socket::Control;
use crate::shell::event_loop::{Outcome, Shell};
use crate::shell::reexec::Invocation;
use crate::shell::{clients, descriptors, inherited};
use herd_config::Config;
use tokio::sync::watch;
use tracing::{info, warn};

/// Builds the single-threaded runtime and runs herdd until shutdown completes.
pub fn start(config: Config) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(config))
}

/// Runs the supervisor until a shutdown has stopped every process.
pub async fn run(config: Config) -> anyhow::Result<()> {
    inherited::mark_inherited_close_on_exec();
    descriptors::raise_limit();
    let invocation = Invocation::current();
    let control = Control::bind(&config.herd.socket, config.herd.control_group.as_deref())?;
    let metrics = match config.herd.metrics_listen {
        Some(address) => Some(MetricsListener::bind(address)?),
        None => None,
    };
    let limits = Limits::from_env()?;
    let (requests_tx, requests) = clients::channel();
    if let Some(metrics) = metrics {
        tokio::spawn(metrics.serve(requests_tx.clone()));
    }
    let mut shell = Shell::new(&config, requests)?;
    shell.resume(&config);
    let denials = Denials::new();
    tokio::spawn(denials.clone().summarise());
    let sides = Sides {
        policy: control.policy.clone(),
        core: requests_tx.clone(),
        hub: shell.events(),
        denials: denials.clone(),
    };
    let mut listener = Listener::new(
        control,
        limits,
        requests_tx,
        shell.events(),
        shell.logs(),
        denials,
        shell.reserve(),
    );
    // The D-Bus front end, when `[herd] dbus` names a bus: up before READY=1.
    let dbus = dbus::start(&config.herd.dbus, sides).await;
    info!(socket = %config.herd.socket.display(), units = config.units.len(), "herdd started");
    shell.ready();
    loop {
        let (stop, stopped) = watch::channel(Closing::Open);
        let serving = tokio::spawn(listener.run(stopped));
        let outcome = shell.serve().await;
        stop.send_replace(match outcome {
            Outcome::Finished => Closing::Exit,
            Outcome::Reexec => Closing::Reexec,
        });
        // Every connection has written its last reply (or timed out).
        listener = serving.await?;
        if let Some(dbus) = &dbus {
            dbus.flush().await;
        }
        match outcome {
            Outcome::Finished => break,
            Outcome::Reexec => {
                let handover = shell.handover();
                info!(program = %invocation.program().display(), "re-executing");
                let error = invocation.exec(&handover);
                // Still here: carry on as before, with the state we have.
                warn!(error = %error, "re-exec failed; herdd goes on as it was");
                shell.reexec_failed();
            }
        }
    }
    shell.finish().await;
    info!("herdd stopped: every process has exited");
    Ok(())
}
