//! The base directories (`static.servicedirs`, `scandir.path`,
//! `profiles.home`) taken together: none may contain another.

use std::path::Path;

use super::{Config, ConfigError};

/// The base directories, by key, with the variable that overrides each.
const BASES: [(&str, Option<&str>); 3] = [
    ("static.servicedirs", None),
    ("scandir.path", Some("S6_PROFILE_GATEWAY_SCANDIR")),
    ("profiles.home", Some("HERMES_HOME")),
];

impl Config {
    fn base(&self, key: &str) -> &Path {
        match key {
            "static.servicedirs" => &self.static_.servicedirs.0,
            "scandir.path" => &self.scandir.path.0,
            _ => &self.profiles.home.0,
        }
    }

    /// No base directory may contain another (or be the same): a walk of
    /// one would reach into the other with the other's rules.
    pub(super) fn check_bases(&self, path: &Path, from_env: &[&str]) -> Result<(), ConfigError> {
        for (i, (a, a_var)) in BASES.iter().enumerate() {
            for (b, b_var) in &BASES[i + 1..] {
                let (pa, pb) = (self.base(a), self.base(b));
                if !(pa.starts_with(pb) || pb.starts_with(pa)) {
                    continue;
                }
                let how = |x: &Path, y: &Path| match () {
                    _ if x == y => "is the same directory as",
                    _ if x.starts_with(y) => "is inside",
                    _ => "contains",
                };
                let rule = "the base directories (static.servicedirs, scandir.path, \
                            profiles.home) must not contain one another";
                // Blame what the environment set, else the later key.
                let env = [(b, b_var, pb, a, pa), (a, a_var, pa, b, pb)]
                    .into_iter()
                    .find(|(_, var, ..)| var.is_some_and(|v| from_env.contains(&v)));
                if let Some((_, Some(var), mine, other, theirs)) = env {
                    return Err(ConfigError::Env {
                        var,
                        value: mine.display().to_string(),
                        message: format!(
                            "{} {other} {:?}; {rule}",
                            how(mine, theirs),
                            theirs.display().to_string()
                        ),
                    });
                }
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    key: b.to_string(),
                    message: format!(
                        "{:?} {} {a} {:?}; {rule}",
                        pb.display().to_string(),
                        how(pb, pa),
                        pa.display().to_string()
                    ),
                });
            }
        }
        Ok(())
    }
}
