//! The files `reconcile` reads besides the observed tree (the
//! configuration, `/etc/passwd`, `/etc/group`), taken from a description
//! for `--tree`: the same bytes the disk would give, nothing else read.

use std::path::Path;

use super::{Content, Description, Node};
use crate::desired::accounts::{self, Account, AccountError};
use crate::desired::config::{Config, ConfigError};
use crate::fs::input::InputError;

/// The bytes of the regular file described at the container path `path`:
/// `NotFound` when it is not described, an error saying what it is
/// otherwise (a symlink is not followed).
pub fn file_bytes(d: &Description, path: &Path) -> Result<Vec<u8>, InputError> {
    let rel = path.to_string_lossy();
    let rel = rel.trim_start_matches('/');
    let mut entry = d.get(rel).ok_or_else(InputError::not_found)?;
    if let Node::Hardlink { target } = &entry.node {
        entry = d.get(target).ok_or_else(InputError::not_found)?;
    }
    match &entry.node {
        Node::File {
            content: Content::Bytes(b),
            ..
        } => Ok(b.clone()),
        Node::Runtime => Ok(Vec::new()),
        Node::File { .. } => Err(InputError::DigestOnly),
        other => Err(InputError::Described(other.kind_name())),
    }
}

/// The configuration at `config` (a container path; default
/// [`crate::desired::config::file::DEFAULT_CONFIG`]) in the description, then the
/// environment overrides, as `--root` would load it.
pub fn config(
    d: &Description,
    config: Option<&Path>,
    env: &crate::desired::config::env::Lookup<'_>,
) -> Result<Config, ConfigError> {
    let path = config.unwrap_or(Path::new(crate::desired::config::file::DEFAULT_CONFIG));
    let read = match file_bytes(d, path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(reason) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            reason,
        }),
    };
    crate::desired::config::file::config_from(read, path, config.is_some(), env)
}

/// The configured user and group, from the description's passwd and
/// group (read only when a name needs them, as from disk).
pub fn account(d: &Description, cfg: &Config) -> Result<Account, AccountError> {
    use crate::desired::config::Principal;
    let read = |file: &'static str| {
        file_bytes(d, Path::new(file)).map_err(|reason| AccountError::Read { file, reason })
    };
    let passwd = match &cfg.user {
        Principal::Name(_) => read(accounts::PASSWD)?,
        Principal::Id(_) => Vec::new(),
    };
    let group = match (&cfg.user, &cfg.group) {
        (_, Some(Principal::Name(_))) => read(accounts::GROUP)?,
        // The user's other groups, when the description has a group file.
        (Principal::Name(_), _) => match file_bytes(d, Path::new(accounts::GROUP)) {
            Err(e) if e.is_not_found() => Vec::new(),
            _ => read(accounts::GROUP)?,
        },
        _ => Vec::new(),
    };
    accounts::resolve_from(&passwd, &group, &cfg.user, cfg.group.as_ref())
}
