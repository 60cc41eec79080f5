//! Whether named profiles are multiplexed: served by the default profile's
//! gateway, so their own slots are registered down and never started.
//!
//! Layers, each later one winning when it says something:
//!
//! 1. the application's files in the profiles home, merged as the
//!    application merges them: `gateway.json`, then `config.yaml`, each with
//!    a top-level `multiplex_profiles` or a nested `gateway.multiplex_profiles`
//!    (a top-level key in either file beats a nested key in either file;
//!    between two keys of the same level `config.yaml` wins);
//! 2. our own `profiles.multiplex`, when set;
//! 3. `GATEWAY_MULTIPLEX_PROFILES`, when it holds a boolean word.
//!
//! A file that cannot be read or parsed is a warning naming it, and its
//! layer is skipped; so is an unrecognized environment value.

use std::path::Path;

use serde_json::{Map, Value};

use crate::desired::config::env::{EnvSwitch, FALSE_WORDS, MULTIPLEX_ENV, TRUE_WORDS};
use crate::observe::StateObs;

/// The key the application reads, top-level or under `gateway`.
pub const KEY: &str = "multiplex_profiles";

/// One of the application's files: its container path and what was found.
#[derive(Clone, Copy, Debug)]
pub struct AppFile<'a> {
    pub path: &'a Path,
    pub found: &'a StateObs,
}

/// The decision, where it came from (for the log), and what to warn about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Multiplex {
    pub on: bool,
    pub from: String,
    pub warnings: Vec<String>,
}

/// Decide multiplexing from the layers (see the module docs).
pub fn decide(
    gateway_json: AppFile<'_>,
    config_yaml: AppFile<'_>,
    ours: Option<bool>,
    env: &EnvSwitch,
) -> Multiplex {
    let mut warnings = Vec::new();
    let json = load(gateway_json, parse_json, &mut warnings);
    let yaml = load(config_yaml, parse_yaml, &mut warnings);
    if let EnvSwitch::Unrecognized(v) = env {
        warnings.push(format!(
            "{MULTIPLEX_ENV}={v:?} is not recognized (accepted: {}, or {}; blank means unset); \
             ignored, multiplexing follows the configuration",
            TRUE_WORDS.join(", "),
            FALSE_WORDS.join(", ")
        ));
    }
    let (on, from) = if let EnvSwitch::Set(b) = env {
        (*b, MULTIPLEX_ENV.to_string())
    } else if let Some(b) = ours {
        (b, "profiles.multiplex".to_string())
    } else {
        match from_files(json.as_ref(), yaml.as_ref()) {
            Some((v, which, key)) => {
                let path = if which == Which::Json {
                    gateway_json.path
                } else {
                    config_yaml.path
                };
                (truthy(v), format!("{} ({key})", path.display()))
            }
            None => (false, "default".to_string()),
        }
    };
    Multiplex { on, from, warnings }
}

fn load(
    f: AppFile<'_>,
    parse: fn(&[u8]) -> Result<Value, AppFileError>,
    warnings: &mut Vec<String>,
) -> Option<Map<String, Value>> {
    let why = match f.found {
        StateObs::Missing => return None,
        StateObs::Unreadable(why) => why.clone(),
        StateObs::Bytes(b) => match parse(b).and_then(as_map) {
            Ok(m) => return Some(m),
            Err(why) => why.to_string(),
        },
    };
    warnings.push(format!(
        "{}: {why}; its {KEY} setting is ignored",
        f.path.display()
    ));
    None
}

/// As the application's Python reads it (`crate::desired::state::json`), a leading
/// BOM skipped.
fn parse_json(bytes: &[u8]) -> Result<Value, AppFileError> {
    crate::desired::state::json::parse(crate::desired::state::strip_bom(bytes))
        .map_err(AppFileError::Json)
}

/// Why an application file's setting is ignored (the caller names the file).
#[derive(Debug, thiserror::Error)]
enum AppFileError {
    #[error("not valid JSON: {0}")]
    Json(crate::desired::state::json::JsonError),
    #[error("{0}")]
    Yaml(#[from] crate::desired::application::yaml::YamlError),
    #[error("not a mapping (found {0})")]
    NotMapping(&'static str),
}

/// As PyYAML reads it, for the keys that decide (`super::yaml`).
fn parse_yaml(bytes: &[u8]) -> Result<Value, AppFileError> {
    let want = crate::desired::application::yaml::Wanted {
        key: KEY,
        under: "gateway",
    };
    Ok(crate::desired::application::yaml::app_config(bytes, &want)?)
}

/// The document as a mapping. Like the application, an empty document or a
/// false-ish one (`null`, `false`, `0`, `""`, `[]`) counts as empty.
fn as_map(v: Value) -> Result<Map<String, Value>, AppFileError> {
    match v {
        Value::Object(m) => Ok(m),
        v if !truthy(&v) => Ok(Map::new()),
        v => Err(AppFileError::NotMapping(kind(&v))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Json,
    Yaml,
}

/// The value the application ends up with, from the two files, as it merges
/// them: `config.yaml`'s top-level key replaces `gateway.json`'s; its nested
/// key is taken only when neither file has a top-level key; a top-level key
/// that is `null` falls back to `gateway.json`'s nested key.
fn from_files<'a>(
    json: Option<&'a Map<String, Value>>,
    yaml: Option<&'a Map<String, Value>>,
) -> Option<(&'a Value, Which, &'static str)> {
    const NESTED: &str = "gateway.multiplex_profiles";
    let nested = |m: &'a Map<String, Value>| match m.get("gateway") {
        Some(Value::Object(g)) => g.get(KEY),
        _ => None,
    };
    let mut merged: Option<(&Value, Which, &str)> =
        json.and_then(|j| j.get(KEY)).map(|v| (v, Which::Json, KEY));
    if let Some(y) = yaml {
        if let Some(v) = y.get(KEY) {
            merged = Some((v, Which::Yaml, KEY));
        } else if merged.is_none()
            && let Some(v) = nested(y)
        {
            merged = Some((v, Which::Yaml, NESTED));
        }
    }
    match merged {
        Some((v, ..)) if v.is_null() => json.and_then(nested).map(|v| (v, Which::Json, NESTED)),
        None => json.and_then(nested).map(|v| (v, Which::Json, NESTED)),
        some => some,
    }
}

/// A configuration value as a boolean, as the application coerces it:
/// booleans as they are; strings by the boolean words (anything else is
/// false); numbers true unless zero; lists and mappings true unless empty;
/// `null` false.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => crate::desired::config::env::bool_word(s).unwrap_or(false),
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(s: Option<&str>) -> StateObs {
        match s {
            None => StateObs::Missing,
            Some(s) => StateObs::Bytes(s.as_bytes().to_vec()),
        }
    }

    fn run(j: Option<&str>, y: Option<&str>, ours: Option<bool>, env: EnvSwitch) -> Multiplex {
        let (j, y) = (file(j), file(y));
        decide(
            AppFile {
                path: Path::new("/opt/data/gateway.json"),
                found: &j,
            },
            AppFile {
                path: Path::new("/opt/data/config.yaml"),
                found: &y,
            },
            ours,
            &env,
        )
    }

    fn on(j: Option<&str>, y: Option<&str>) -> (bool, String) {
        let m = run(j, y, None, EnvSwitch::Unset);
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        (m.on, m.from)
    }

    #[test]
    fn nothing_means_off() {
        assert_eq!(on(None, None), (false, "default".into()));
        assert_eq!(on(Some("{}"), Some("")), (false, "default".into()));
    }

    #[test]
    fn each_file_top_level_or_nested() {
        let j = "/opt/data/gateway.json";
        let y = "/opt/data/config.yaml";
        assert_eq!(
            on(Some(r#"{"multiplex_profiles": true}"#), None),
            (true, format!("{j} (multiplex_profiles)"))
        );
        assert_eq!(
            on(Some(r#"{"gateway": {"multiplex_profiles": "on"}}"#), None),
            (true, format!("{j} (gateway.multiplex_profiles)"))
        );
        assert_eq!(
            on(None, Some("multiplex_profiles: yes\n")),
            (true, format!("{y} (multiplex_profiles)"))
        );
        assert_eq!(
            on(None, Some("gateway:\n  multiplex_profiles: true\n")),
            (true, format!("{y} (gateway.multiplex_profiles)"))
        );
    }

    #[test]
    fn gateway_json_is_read_as_pythons_json_reads_it() {
        for doc in [
            r#"{"multiplex_profiles": NaN}"#,
            r#"{"multiplex_profiles": -Infinity}"#,
            r#"{"multiplex_profiles": 1e400}"#,
            r#"{"multiplex_profiles": false, "multiplex_profiles": true}"#,
            "\u{feff}{\"gateway\": {\"multiplex_profiles\": [[]]}}",
        ] {
            assert!(on(Some(doc), None).0, "{doc}");
        }
        assert!(!on(Some(r#"{"multiplex_profiles": 0e400}"#), None).0);
        assert!(!on(Some(r#"{"gateway": {"multiplex_profiles": []}}"#), None).0);
    }

    #[test]
    fn config_yaml_is_read_as_pyyaml_reads_it() {
        let y = "/opt/data/config.yaml";
        for (doc, want) in [
            (
                "multiplex_profiles: false\nmultiplex_profiles: true\n",
                true,
            ),
            ("multiplex_profiles: 1e3\n", false),
            ("multiplex_profiles: 0o7\n", false),
            ("multiplex_profiles: 017\n", true),
            ("multiplex_profiles: 1:0\n", true),
            ("multiplex_profiles: 1_0\n", true),
            ("multiplex_profiles: off\n", false),
        ] {
            assert_eq!(
                on(None, Some(doc)),
                (want, format!("{y} (multiplex_profiles)")),
                "{doc}"
            );
        }
        let merged = "base: &base {multiplex_profiles: true}\ngateway: {<<: *base}\n";
        assert_eq!(
            on(None, Some(merged)),
            (true, format!("{y} (gateway.multiplex_profiles)"))
        );
        // What PyYAML refuses is a warning, and the layer is skipped.
        let m = run(
            Some(r#"{"multiplex_profiles": true}"#),
            Some("multiplex_profiles: !custom x\n"),
            None,
            EnvSwitch::Unset,
        );
        assert!(m.on);
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        assert!(m.warnings[0].contains("no constructor"), "{:?}", m.warnings);
    }

    #[test]
    fn config_yaml_beats_gateway_json_at_the_same_level() {
        let t = r#"{"multiplex_profiles": true}"#;
        assert!(!on(Some(t), Some("multiplex_profiles: false\n")).0);
        let nested = r#"{"gateway": {"multiplex_profiles": true}}"#;
        assert!(!on(Some(nested), Some("gateway: {multiplex_profiles: off}\n")).0);
        assert!(
            on(
                Some(r#"{"multiplex_profiles": false}"#),
                Some("multiplex_profiles: 1\n")
            )
            .0
        );
    }

    #[test]
    fn a_top_level_key_beats_a_nested_one_in_the_other_file() {
        // As the application merges: config.yaml's nested key only fills in
        // when no top-level key was seen in either file.
        assert!(
            on(
                Some(r#"{"multiplex_profiles": true}"#),
                Some("gateway:\n  multiplex_profiles: false\n")
            )
            .0
        );
        assert!(
            on(
                Some(r#"{"gateway": {"multiplex_profiles": false}}"#),
                Some("multiplex_profiles: true\n")
            )
            .0
        );
        // top-level null: the nested key of gateway.json is consulted.
        assert!(
            on(
                Some(r#"{"gateway": {"multiplex_profiles": true}}"#),
                Some("multiplex_profiles: null\n")
            )
            .0
        );
    }

    #[test]
    fn values_are_coerced_like_the_application() {
        for (v, want) in [
            ("true", true),
            ("false", false),
            ("\"YES\"", true),
            ("\"off\"", false),
            ("\"maybe\"", false),
            ("1", true),
            ("0", false),
            ("0.0", false),
            ("[1]", true),
            ("[]", false),
            ("{}", false),
            ("null", false),
        ] {
            let j = format!(r#"{{"multiplex_profiles": {v}}}"#);
            assert_eq!(on(Some(&j), None).0, want, "{v}");
        }
    }

    #[test]
    fn ours_then_env_override_the_files() {
        let y = Some("multiplex_profiles: true\n");
        let m = run(None, y, Some(false), EnvSwitch::Unset);
        assert_eq!((m.on, m.from.as_str()), (false, "profiles.multiplex"));
        let m = run(None, y, Some(false), EnvSwitch::Set(true));
        assert_eq!((m.on, m.from.as_str()), (true, MULTIPLEX_ENV));
        let m = run(None, y, None, EnvSwitch::Set(false));
        assert!(!m.on);
    }

    #[test]
    fn unrecognized_env_warns_and_falls_back() {
        let m = run(
            None,
            Some("multiplex_profiles: true\n"),
            None,
            EnvSwitch::Unrecognized("maybe".into()),
        );
        assert!(m.on);
        assert_eq!(m.warnings.len(), 1);
        assert!(
            m.warnings[0].starts_with(
                "GATEWAY_MULTIPLEX_PROFILES=\"maybe\" is not recognized (accepted: 1, true, yes, on, or 0, false, no, off"
            ),
            "{}",
            m.warnings[0]
        );
    }

    #[test]
    fn a_bad_file_is_a_warning_and_its_layer_is_skipped() {
        let m = run(
            Some(r#"{"multiplex_profiles": true}"#),
            Some("multiplex_profiles: [unclosed\n"),
            None,
            EnvSwitch::Unset,
        );
        assert!(m.on, "gateway.json still counts");
        assert_eq!(m.warnings.len(), 1);
        assert!(
            m.warnings[0].starts_with("/opt/data/config.yaml: "),
            "{}",
            m.warnings[0]
        );
        assert!(
            m.warnings[0].ends_with("; its multiplex_profiles setting is ignored"),
            "{}",
            m.warnings[0]
        );
        let m = run(Some("{oops"), None, None, EnvSwitch::Unset);
        assert!(!m.on);
        assert!(m.warnings[0].starts_with("/opt/data/gateway.json: not valid JSON: "));
        let m = run(Some("[1, 2]"), None, None, EnvSwitch::Unset);
        assert!(
            m.warnings[0].contains("not a mapping (found a list)"),
            "{:?}",
            m.warnings
        );
        let unreadable = StateObs::Unreadable("Permission denied".into());
        let missing = StateObs::Missing;
        let m = decide(
            AppFile {
                path: Path::new("/opt/data/gateway.json"),
                found: &unreadable,
            },
            AppFile {
                path: Path::new("/opt/data/config.yaml"),
                found: &missing,
            },
            None,
            &EnvSwitch::Unset,
        );
        assert_eq!(
            m.warnings,
            vec![
                "/opt/data/gateway.json: Permission denied; its multiplex_profiles setting is ignored"
            ]
        );
    }
}
