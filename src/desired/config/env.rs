//! The application's environment switches the configuration reads (the
//! cont-init runs with-contenv): whether named profiles are multiplexed
//! (`GATEWAY_MULTIPLEX_PROFILES`) and the legacy-migration opt-out.

/// A variable whose value is not UTF-8: read as unset, it would silently
/// run on the defaults instead of what the operator named (exit 100).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {var} is not valid UTF-8 ({value}); it must be text, or unset")]
pub struct NotText {
    pub var: String,
    /// The value with its bytes that are not UTF-8 escaped.
    pub value: String,
}

/// How the configuration reads the environment: a variable's text, unset,
/// or [`NotText`].
pub type Lookup<'a> = dyn Fn(&str) -> Result<Option<String>, NotText> + 'a;

/// This process's environment as a [`Lookup`].
pub fn process(var: &str) -> Result<Option<String>, NotText> {
    match std::env::var_os(var) {
        None => Ok(None),
        Some(v) => v.into_string().map(Some).map_err(|v| NotText {
            var: var.to_string(),
            value: escaped(v.as_encoded_bytes()),
        }),
    }
}

/// `bytes` as text, each byte that is not part of UTF-8 as `\xNN`.
fn escaped(bytes: &[u8]) -> String {
    bytes.utf8_chunks().fold(String::new(), |mut o, c| {
        o.push_str(c.valid());
        for b in c.invalid() {
            o.push_str(&format!("\\x{b:02x}"));
        }
        o
    })
}

/// The environment variable that overrides multiplexing (docs/reference-image.md, "The application's own settings").
pub const MULTIPLEX_ENV: &str = "GATEWAY_MULTIPLEX_PROFILES";

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
    fn not_text_is_escaped() {
        assert_eq!(escaped(b"/srv/vol\xe9"), "/srv/vol\\xe9");
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
