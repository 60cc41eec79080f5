//! The desired state: who gets access, with which owners and modes, under
//! which policy. Built once from the configuration and the accounts; the
//! planner compares observations against it.

use std::path::PathBuf;

use crate::desired::accounts::Account;
use crate::desired::config::{Config, Policy};
use crate::s6::layout;

/// Owner and mode of an entry as one fact: what an entry should have, and
/// the two sides of a planned permissions change. `None` is "not set":
/// leave that part alone (wanted) or it does not change (planned).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Perms {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: Option<u32>,
}

impl Perms {
    /// The owner, when both ids are set.
    pub fn owner(&self) -> Option<(u32, u32)> {
        self.uid.zip(self.gid)
    }
}

/// Everything the planner needs to know about the wanted state.
#[derive(Clone, Debug)]
pub struct Desired {
    pub config: Config,
    pub account: Account,
    /// A runtime pass (`reconcile --runtime`, docs/runtime.md): the
    /// profiles phase only, with no stale-file removal, no boot log, no
    /// legacy migration, existing slots' `down` left as they are, and
    /// every slot whose profile is gone retired whatever `prune` says.
    pub runtime: bool,
}

impl Desired {
    pub fn new(config: Config, account: Account) -> Desired {
        Desired {
            config,
            account,
            runtime: false,
        }
    }

    pub fn policy(&self) -> Policy {
        self.config.policy
    }

    pub fn servicedirs(&self) -> &PathBuf {
        &self.config.static_.servicedirs.0
    }

    pub fn scandir(&self) -> &PathBuf {
        &self.config.scandir.path.0
    }

    /// Owner for entries that are handed to the user: both ids in compat,
    /// only the group in strict (owners stay root).
    pub fn owner(&self) -> Perms {
        match self.policy() {
            Policy::Compat => Perms {
                uid: Some(self.account.uid),
                gid: Some(self.account.gid),
                mode: None,
            },
            Policy::Strict => Perms {
                uid: None,
                gid: Some(self.account.gid),
                mode: None,
            },
        }
    }

    pub fn with_mode(&self, mode: u32) -> Perms {
        Perms {
            mode: Some(mode),
            ..self.owner()
        }
    }

    pub fn control_mode(&self) -> u32 {
        match self.policy() {
            Policy::Compat => layout::MODE_CONTROL_COMPAT,
            Policy::Strict => layout::MODE_CONTROL_STRICT,
        }
    }

    /// Whether `name` is an internal service that stays root-only; returns the glob.
    pub fn skip_glob(&self, name: &str) -> Option<&str> {
        self.config
            .static_
            .skip
            .iter()
            .find(|g| g.is_match(name))
            .map(|g| g.text.as_str())
    }
}

/// What a run does with the plan it computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Print the plan, change nothing.
    Plan,
    /// Print the plan, change nothing, exit 3 when it is not empty.
    Check,
    /// Execute the plan.
    Apply,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Plan => "plan",
            Mode::Check => "check",
            Mode::Apply => "apply",
        }
    }
}

/// The three phases, in the order they run.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Static services' supervise/ and event/ under static.servicedirs.
    Static,
    /// The scandir, its .s6-svscan/ and its real slot directories.
    Scandir,
    /// Per-profile slots restored from the persistent volume.
    Profiles,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Static, Phase::Scandir, Phase::Profiles];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Static => "static",
            Phase::Scandir => "scandir",
            Phase::Profiles => "profiles",
        }
    }
}
