//! What the application's side says for one run of the profiles phase:
//! a dashboard container, multiplexed named profiles, a legacy container's
//! migration. Pure, from the configuration and the observation.

use crate::desired::application::{CONFIG_YAML, GATEWAY_JSON, command};
use crate::observe::StateObs;
use crate::plan::multiplex;

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
pub fn decide(cfg: &crate::desired::config::Config, obs: &crate::observe::ProfilesObs) -> Decision {
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
    let default_without_state = matches!(obs.home, crate::observe::BaseObs::Present(_))
        && obs.profiles.iter().any(|p| {
            p.source == crate::observe::ProfileSource::Default
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
