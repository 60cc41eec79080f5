//! What the application in the container says about its own gateways,
//! beyond the profile state files: its configuration files in the profiles
//! home and what the container was started to run ([`command`]).
//!
//! The observation reads these files (`observe::application`); the plan
//! decides from them (`plan::application`, `plan::multiplex`).

pub(crate) mod command;
pub mod yaml;

/// The application's configuration files in the profiles home, in the order
/// they are layered (a later one wins).
pub const GATEWAY_JSON: &str = "gateway.json";
pub const CONFIG_YAML: &str = "config.yaml";

/// Largest application file read (configuration files, a process's command
/// line is bounded separately by the observation).
pub const FILE_LIMIT: u64 = 1 << 20;
