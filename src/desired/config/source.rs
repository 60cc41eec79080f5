//! Where a configuration came from, for messages about its values that
//! are found wrong only after parsing (an unknown user).

use std::path::{Path, PathBuf};

/// The file a configuration was read from, and where its `user:` and
/// `group:` values stand (for account errors, which come after parsing).
#[derive(Clone, Debug, Default)]
pub struct Source {
    /// A container path; `None` for the built-in defaults.
    pub path: Option<PathBuf>,
    pub user_at: Option<(usize, usize)>,
    pub group_at: Option<(usize, usize)>,
}

impl Source {
    pub(super) fn new(path: &Path, text: &str) -> Source {
        Source {
            path: Some(path.to_path_buf()),
            user_at: top_level_value(text, "user"),
            group_at: top_level_value(text, "group"),
        }
    }

    /// `file:line:column: key` for messages about a top-level value, or
    /// `key (default)` when the built-in default was used.
    pub fn describe(&self, key: &str) -> String {
        let at = match key {
            "user" => self.user_at,
            _ => self.group_at,
        };
        match (&self.path, at) {
            (Some(p), Some((l, c))) => format!("{}:{l}:{c}: {key}", p.display()),
            (Some(p), None) => format!("{}: {key} (default)", p.display()),
            (None, _) => format!("{key} (default; no configuration file)"),
        }
    }
}

/// Line and column of the value of a top-level block key (`user: x`).
fn top_level_value(text: &str, key: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(n, l)| {
        let rest = l.strip_prefix(key)?.trim_start_matches([' ', '\t']);
        let rest = rest.strip_prefix(':')?;
        let value = rest.trim_start_matches([' ', '\t']);
        Some((n + 1, l.len() - value.len() + 1))
    })
}
