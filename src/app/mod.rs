//! What the application in the container says about its own gateways,
//! beyond the profile state files: whether named profiles are multiplexed
//! by the default gateway (its configuration files and environment), and
//! what the container was started to run (its command line).
//!
//! The decisions are pure functions over bytes and strings
//! ([`multiplex`], [`command`]); [`read`] gathers the bytes through held
//! directory fds, bounded, never following a symlink as root.

pub mod command;
pub mod multiplex;
pub mod read;
pub mod yaml;

use crate::scan::StateObs;

/// The application's configuration files in the profiles home, in the order
/// they are layered (a later one wins).
pub const GATEWAY_JSON: &str = "gateway.json";
pub const CONFIG_YAML: &str = "config.yaml";

/// The environment variable that overrides multiplexing (SPEC 3).
pub const MULTIPLEX_ENV: &str = "GATEWAY_MULTIPLEX_PROFILES";

/// Largest application file read (configuration files, a process's command
/// line is bounded separately in [`read`]).
pub const FILE_LIMIT: u64 = 1 << 20;

/// What the profiles phase observed of the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppObs {
    /// `<home>/gateway.json`, as found.
    pub gateway_json: StateObs,
    /// `<home>/config.yaml`, as found.
    pub config_yaml: StateObs,
    /// The container's command line: the argv of the first process holding
    /// the wrapper (`None` when no process does, or `<root>/proc` is absent).
    pub argv: Option<Vec<String>>,
}

impl Default for AppObs {
    fn default() -> Self {
        AppObs {
            gateway_json: StateObs::Missing,
            config_yaml: StateObs::Missing,
            argv: None,
        }
    }
}

/// The accepted spellings of a boolean in the application's environment
/// switches, after trimming and lower-casing.
pub const TRUE_WORDS: [&str; 4] = ["1", "true", "yes", "on"];
pub const FALSE_WORDS: [&str; 4] = ["0", "false", "no", "off"];

/// A boolean word (trimmed, any case), or `None` when it is not one.
pub fn bool_word(raw: &str) -> Option<bool> {
    let t = raw.trim().to_ascii_lowercase();
    if TRUE_WORDS.contains(&t.as_str()) {
        Some(true)
    } else if FALSE_WORDS.contains(&t.as_str()) {
        Some(false)
    } else {
        None
    }
}

/// An environment switch as found in the container's environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum EnvSwitch {
    /// Not set, or blank.
    #[default]
    Unset,
    Set(bool),
    /// Set to something that is not a boolean word: ignored with a warning.
    Unrecognized(String),
}

impl EnvSwitch {
    pub fn from_value(raw: Option<&str>) -> EnvSwitch {
        match raw {
            None => EnvSwitch::Unset,
            Some(v) if v.trim().is_empty() => EnvSwitch::Unset,
            Some(v) => match bool_word(v) {
                Some(b) => EnvSwitch::Set(b),
                None => EnvSwitch::Unrecognized(v.to_string()),
            },
        }
    }
}

/// The environment the profiles phase decides with (read once, with the
/// configuration, because the cont-init runs with-contenv).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppEnv {
    /// `GATEWAY_MULTIPLEX_PROFILES`.
    pub multiplex: EnvSwitch,
    /// The legacy-migration opt-out variable (`container.no_supervise_env`)
    /// holds `1`, `true` or `yes` (any case), as the application reads it.
    pub no_supervise: bool,
}

/// Whether an opt-out variable's value counts as set: the application
/// accepts exactly `1`, `true` and `yes` in any case, untrimmed.
pub fn opt_out_set(raw: Option<&str>) -> bool {
    raw.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// What the application's side says for one run of the profiles phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// A dashboard container: no profile slot at all.
    pub dashboard: bool,
    /// Named profiles are served by the default gateway (registered down).
    pub multiplex: bool,
    /// A legacy `gateway run` container without a state file for the
    /// default profile: write one (`running`) and start the default slot.
    pub migrate_default: bool,
    pub warnings: Vec<String>,
}

/// Decide from the configuration and the observation (pure).
pub fn decide(cfg: &crate::config::Config, obs: &crate::scan::ProfilesObs) -> Decision {
    let home = &cfg.profiles.home.0;
    let (json_path, yaml_path) = (home.join(GATEWAY_JSON), home.join(CONFIG_YAML));
    let m = multiplex::decide(
        multiplex::AppFile {
            path: &json_path,
            found: &obs.app.gateway_json,
        },
        multiplex::AppFile {
            path: &yaml_path,
            found: &obs.app.config_yaml,
        },
        cfg.profiles.multiplex,
        &cfg.app_env.multiplex,
    );
    log::info!("multiplex_profiles {} (from {})", m.on, m.from);
    let kind = command::classify(obs.app.argv.as_deref(), &cfg.container);
    let default_without_state = matches!(obs.home, crate::scan::BaseObs::Present(_))
        && obs.profiles.iter().any(|p| {
            p.source == crate::scan::ProfileSource::Default
                && p.problem.is_none()
                && p.state == StateObs::Missing
        });
    Decision {
        dashboard: kind == command::Kind::Dashboard,
        multiplex: m.on,
        migrate_default: kind == command::Kind::LegacyGatewayRun
            && !cfg.app_env.no_supervise
            && default_without_state,
        warnings: m.warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bool_words() {
        for w in ["1", "TRUE", " yes ", "On"] {
            assert_eq!(bool_word(w), Some(true), "{w}");
        }
        for w in ["0", "False", "no\n", "OFF"] {
            assert_eq!(bool_word(w), Some(false), "{w}");
        }
        for w in ["maybe", "2", "enable", "", "y"] {
            assert_eq!(bool_word(w), None, "{w}");
        }
    }

    #[test]
    fn env_switch() {
        assert_eq!(EnvSwitch::from_value(None), EnvSwitch::Unset);
        assert_eq!(EnvSwitch::from_value(Some("  ")), EnvSwitch::Unset);
        assert_eq!(EnvSwitch::from_value(Some("Yes")), EnvSwitch::Set(true));
        assert_eq!(EnvSwitch::from_value(Some("off")), EnvSwitch::Set(false));
        assert_eq!(
            EnvSwitch::from_value(Some("maybe")),
            EnvSwitch::Unrecognized("maybe".into())
        );
    }

    #[test]
    fn opt_out_words() {
        assert!(opt_out_set(Some("1")));
        assert!(opt_out_set(Some("TRUE")));
        assert!(opt_out_set(Some("yes")));
        assert!(!opt_out_set(Some("on")));
        assert!(!opt_out_set(Some(" 1")));
        assert!(!opt_out_set(Some("")));
        assert!(!opt_out_set(None));
    }
}
