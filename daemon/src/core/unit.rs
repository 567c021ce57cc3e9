//! A unit (service or task) from the config and its instances.

use super::action::{LogTarget, Output, SpawnSpec};
use super::instance::Instance;
use herd_common::names::instance_name;
use herd_common::state::State;
use herd_config::{LogMode, UnitConfig, UnitKind};
use std::collections::BTreeMap;

pub(super) const INSTANCE_PLACEHOLDER: &str = "{instance}";

#[derive(Debug, Clone)]
pub struct Unit {
    pub config: UnitConfig,
    /// Ordered by index; indexes are 0..n except while scaled-away ones drain.
    pub instances: Vec<Instance>,
    /// Instance names carry `@N` (the config set `instances`, or it was scaled).
    pub is_pool: bool,
    /// Whether the user wants it up: new instances from `scale` start only then.
    pub wanted: bool,
    /// Last readiness applied to its `sets_event` (all instances running).
    pub sets_event_ready: bool,
    /// Gone from the config (`reload`): dropped once its instances have exited.
    pub removing: bool,
}

/// How a unit looks to the units that are `after` it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsDependency {
    Satisfied,
    Pending,
    Failed,
}

impl Unit {
    pub fn new(config: UnitConfig) -> Self {
        let count = match config.kind {
            UnitKind::Service => config.instances.unwrap_or(1),
            UnitKind::Task => 1,
        };
        let instances = (0..count).map(|i| Instance::new(i, &config)).collect();
        Unit {
            is_pool: config.instances.is_some(),
            wanted: false,
            sets_event_ready: false,
            removing: false,
            config,
            instances,
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn instance_name(&self, index: u32) -> String {
        instance_name(&self.config.name, index, self.is_pool)
    }

    /// Position in `instances` of the instance numbered `index`.
    pub fn position(&self, index: u32) -> Option<usize> {
        // Instances are kept in index order, and usually dense: try the direct slot first.
        match self.instances.get(index as usize) {
            Some(instance) if instance.index == index => Some(index as usize),
            _ => self.instances.iter().position(|i| i.index == index),
        }
    }

    /// Instances that count: those not being scaled away.
    pub fn staying(&self) -> impl Iterator<Item = &Instance> {
        self.instances.iter().filter(|i| !i.is_leaving())
    }

    /// The number of instances the unit is scaled to.
    pub fn target_count(&self) -> u32 {
        self.staying().count() as u32
    }

    /// The unit's overall state: one shared state, or else the most pressing one.
    pub fn state(&self) -> State {
        const PRECEDENCE: [State; 8] = [
            State::Failed,
            State::Backoff,
            State::Stopping,
            State::Starting,
            State::Waiting,
            State::Running,
            State::Exited,
            State::Inactive,
        ];
        PRECEDENCE
            .into_iter()
            .find(|state| self.instances.iter().any(|i| i.state == *state))
            .unwrap_or(State::Inactive)
    }

    /// A service satisfies `after` once all its instances are running, a task
    /// once it exited 0; any failed instance fails its dependents.
    pub fn as_dependency(&self) -> AsDependency {
        let wanted_state = match self.config.kind {
            UnitKind::Service => State::Running,
            UnitKind::Task => State::Exited,
        };
        let mut staying = self.staying().peekable();
        if staying.peek().is_none() {
            return AsDependency::Pending;
        }
        let mut all = true;
        for instance in staying {
            if instance.state == State::Failed {
                return AsDependency::Failed;
            }
            all &= instance.state == wanted_state;
        }
        if all {
            AsDependency::Satisfied
        } else {
            AsDependency::Pending
        }
    }
}

/// The process to spawn for instance `index` (called `name`, e.g. `web@2`)
/// of a unit, with `{instance}` substituted.
pub fn spawn_spec(config: &UnitConfig, index: u32, name: &str) -> SpawnSpec {
    let number = index.to_string();
    let substitute = |text: &String| text.replace(INSTANCE_PLACEHOLDER, &number);
    let mut env: BTreeMap<String, String> = config
        .env
        .iter()
        .map(|(key, value)| (key.clone(), substitute(value)))
        .collect();
    env.insert("HERD_UNIT".into(), config.name.clone());
    env.insert("HERD_INSTANCE".into(), number.clone());
    if let Some(usec) = super::watchdog::usec(config) {
        env.insert("WATCHDOG_USEC".into(), usec);
        // Empty: the fork child fills in its own pid (see shell/fork.rs).
        env.insert("WATCHDOG_PID".into(), String::new());
    }
    SpawnSpec {
        argv: config.command.iter().map(substitute).collect(),
        env,
        cwd: config.cwd.clone(),
        user: config.user.clone(),
        group: config.group.clone(),
        umask: config.umask,
        rlimits: config.rlimits.iter().map(|(k, v)| (*k, *v)).collect(),
        confinement: Box::new(config.confinement),
        daemon: config.daemon,
        output: match config.log.mode {
            LogMode::File => Output::Log {
                instance: name.to_string(),
                to: LogTarget::File,
            },
            LogMode::Journal => Output::Log {
                instance: name.to_string(),
                to: LogTarget::Journal,
            },
            LogMode::Console => Output::Log {
                instance: name.to_string(),
                to: LogTarget::Console,
            },
            LogMode::Inherit => Output::Inherit,
            LogMode::Off => Output::Discard,
        },
        notify: config.ready == herd_config::Ready::Notify || config.watchdog.is_some(),
        sockets: config.sockets.clone(),
        listen_fds: Vec::new(),
        env_files: config.env_files.clone(),
    }
}
