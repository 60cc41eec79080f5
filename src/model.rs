//! The desired state: who gets access, with which owners and modes, under
//! which policy. Built once from the configuration and the accounts; the
//! planner compares observations against it.

use std::path::PathBuf;

use crate::accounts::Account;
use crate::config::{Config, Policy};

/// supervise/ of a static servicedir: the user (compat) or group (strict)
/// may search it, which is what s6-svstat and s6-svc need.
pub const MODE_SUPERVISE: u32 = 0o710;
/// supervise/control in compat: user and group may write (s6-svc).
pub const MODE_CONTROL_COMPAT: u32 = 0o660;
/// supervise/control in strict: root reads, the group only writes.
pub const MODE_CONTROL_STRICT: u32 = 0o620;
/// event/: setgid + sticky, group may create FIFOs (s6-svwait) but only
/// remove its own.
pub const MODE_EVENT: u32 = 0o3730;

/// s6-supervise's own runtime files in supervise/: rewritten by root on
/// every state change, so never chowned nor compared.
pub fn is_supervise_runtime_file(name: &str) -> bool {
    crate::slot::SUPERVISE_RUNTIME_FILES.contains(&name)
}

/// Owner and mode an entry should have; `None` leaves that part alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Want {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: Option<u32>,
}

/// Everything the planner needs to know about the wanted state.
#[derive(Clone, Debug)]
pub struct Desired {
    pub config: Config,
    pub account: Account,
}

impl Desired {
    pub fn new(config: Config, account: Account) -> Desired {
        Desired { config, account }
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
    pub fn owner(&self) -> Want {
        match self.policy() {
            Policy::Compat => Want {
                uid: Some(self.account.uid),
                gid: Some(self.account.gid),
                mode: None,
            },
            Policy::Strict => Want {
                uid: None,
                gid: Some(self.account.gid),
                mode: None,
            },
        }
    }

    pub fn with_mode(&self, mode: u32) -> Want {
        Want {
            mode: Some(mode),
            ..self.owner()
        }
    }

    pub fn control_mode(&self) -> u32 {
        match self.policy() {
            Policy::Compat => MODE_CONTROL_COMPAT,
            Policy::Strict => MODE_CONTROL_STRICT,
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
