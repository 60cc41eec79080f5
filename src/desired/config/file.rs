//! The configuration file a run reads, then the environment overrides.

use std::path::{Path, PathBuf};

use super::{Config, ConfigError};
use crate::fs;

/// The largest configuration file read (a real one is a few KiB).
pub const CONFIG_LIMIT: u64 = 1 << 20;

/// The default configuration file, as a container path.
pub const DEFAULT_CONFIG: &str = "/etc/s6-reconcile/config.yaml";

/// Load the configuration named by `--config` (`config`), else the default
/// file under `root`, then the environment overrides.
pub fn load_config(
    root: &Path,
    config: Option<&Path>,
    env: &crate::desired::config::env::Lookup<'_>,
) -> Result<Config, ConfigError> {
    let (real, shown): (PathBuf, PathBuf) = match config {
        Some(p) => (p.to_path_buf(), p.to_path_buf()),
        None => (
            root.join(DEFAULT_CONFIG.trim_start_matches('/')),
            PathBuf::from(DEFAULT_CONFIG),
        ),
    };
    let read = match fs::input::read_regular(&real, CONFIG_LIMIT, fs::input::Follow::Yes) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(reason) => Err(ConfigError::Read {
            path: shown.clone(),
            reason,
        }),
    };
    config_from(read, &shown, config.is_some(), env)
}

/// The configuration from what reading its file gave (`Ok(None)`: no such
/// file; `shown` is its path as messages name it; `explicit` when named by
/// `--config`: then it must exist; `Err`: it could not be read), then the environment overrides. The
/// disk and a tree description (`--tree`) both come through here.
pub fn config_from(
    read: Result<Option<Vec<u8>>, ConfigError>,
    shown: &Path,
    explicit: bool,
    env: &crate::desired::config::env::Lookup<'_>,
) -> Result<Config, ConfigError> {
    let shown = shown.to_path_buf();
    let mut cfg = match read {
        Ok(Some(bytes)) => {
            let text = String::from_utf8(bytes).map_err(|_| ConfigError::Parse {
                path: shown.clone(),
                line: 1,
                column: 1,
                key: "(file)".into(),
                message: "not valid UTF-8".into(),
            })?;
            Config::from_yaml(&text, &shown)?
        }
        Ok(None) if !explicit => {
            log::info!("no {DEFAULT_CONFIG}; using the built-in defaults");
            Config::default()
        }
        Ok(None) => {
            return Err(ConfigError::Read {
                path: shown,
                reason: fs::input::InputError::not_found(),
            });
        }
        Err(e) => return Err(e),
    };
    cfg.apply_env(env)?;
    Ok(cfg)
}
