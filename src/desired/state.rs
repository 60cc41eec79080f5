//! A profile's recorded state (docs/phases.md; docs/reference-image.md, "The application's own settings") and the start decision.
//!
//! Pure functions over bytes the caller read: the state file
//! (`gateway_state.json`) says whether the profile's gateway was meant to be
//! running, the lifecycle file (`state/gateway.lifecycle.json`) says whether
//! the previous container stopped it cleanly. Both live in the user's volume
//! and may be corrupt: a bad state file is a reason string for a warning,
//! never a failure of the run; a bad lifecycle file is just `unknown`.

use crate::desired::config::StartPolicy;

pub mod json;

use serde_json::Value;

const BOM: &[u8] = b"\xEF\xBB\xBF";

pub(crate) fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(BOM).unwrap_or(bytes)
}

/// The prior state recorded in a profile's state file.
///
/// `desired_state`, if present and a string, wins; otherwise (absent or
/// `null`) `gateway_state` if it is a string, where a value listed in
/// `transient_running` counts as `running`; otherwise `Ok(None)`.
/// `Err` carries the reason for the warning (the caller names the file):
/// invalid JSON (with serde_json's line and column), not an object, or a
/// `desired_state` that is set but not a string: the operator's intent is
/// there but unreadable, so it is "no state" (never started), and
/// `gateway_state` does not stand in for it (the application also takes
/// such a value as the intent, and it never starts a gateway).
/// A leading UTF-8 BOM is accepted.
pub fn parse_state(
    bytes: &[u8],
    transient_running: &[String],
) -> Result<Option<String>, StateError> {
    let bytes = strip_bom(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(StateError::Empty);
    }
    let fields =
        json::parse_fields(bytes, &["desired_state", "gateway_state"]).map_err(StateError::Json)?;
    let (desired, gateway) = match fields {
        json::Fields::Object(values) => {
            let mut values = values.into_iter();
            (values.next().flatten(), values.next().flatten())
        }
        json::Fields::Other(doc) => return Err(StateError::NotObject(kind(&doc))),
    };
    match desired {
        Some(Value::String(s)) => return Ok(Some(s)),
        None | Some(Value::Null) => {}
        Some(v) => return Err(StateError::DesiredNotString(kind(&v))),
    }
    if let Some(Value::String(s)) = gateway {
        if transient_running.contains(&s) {
            return Ok(Some("running".into()));
        }
        return Ok(Some(s));
    }
    Ok(None)
}

/// Why a state file says nothing usable (the caller names the file).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("empty file, not a JSON object")]
    Empty,
    #[error("not valid JSON: {0}")]
    Json(json::JsonError),
    #[error("not a JSON object (found {0})")]
    NotObject(&'static str),
    #[error("desired_state is {0}, not a string")]
    DesiredNotString(&'static str),
}

/// A JSON value's kind, as the warnings name it.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// How the previous container left the profile's gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PriorExit {
    /// The lifecycle file says `exited`.
    Clean,
    /// The lifecycle file still says `running`: the gateway died with the container.
    Unclean,
    /// Missing, unreadable, corrupt, or another phase.
    Unknown,
}

impl PriorExit {
    pub fn as_str(self) -> &'static str {
        match self {
            PriorExit::Clean => "clean",
            PriorExit::Unclean => "unclean",
            PriorExit::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for PriorExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classify the lifecycle file's contents (`None`: missing or unreadable)
/// by its `phase` field: `exited` → clean, `running` → unclean, anything
/// else → unknown. A leading UTF-8 BOM is accepted.
pub fn parse_lifecycle(bytes: Option<&[u8]>) -> PriorExit {
    let Some(bytes) = bytes else {
        return PriorExit::Unknown;
    };
    let Ok(json::Fields::Object(phase)) = json::parse_fields(strip_bom(bytes), &["phase"]) else {
        return PriorExit::Unknown;
    };
    match phase
        .first()
        .and_then(Option::as_ref)
        .and_then(Value::as_str)
    {
        Some("exited") => PriorExit::Clean,
        Some("running") => PriorExit::Unclean,
        _ => PriorExit::Unknown,
    }
}

/// What happened to a profile's slot, as reported on stdout, in the boot
/// log and in the JSON `slots` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Published without `down`: s6-supervise starts it.
    Started,
    /// Published with `down`: supervised but not started.
    Registered,
    /// Not published (invalid name, reserved name...); the caller gives a reason.
    Skipped,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Started => "started",
            Action::Registered => "registered",
            Action::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a valid profile's slot starts (docs/phases.md).
///
/// `start` is the declared entry's policy (`Auto` for discovered profiles):
/// `Always` and `Never` decide alone. Under `Auto` the slot starts iff the
/// state is listed in `autostart` and the profile is the default one or
/// `multiplex` is off (with multiplex on, one gateway serves all named
/// profiles, so their own slots stay down). With `folded` (multiplexing,
/// and a named profile's state asked to autostart) the default slot starts
/// under `Auto` whatever its own state. Never returns `Skipped`.
pub fn decide(
    state: Option<&str>,
    autostart: &[String],
    is_default: bool,
    multiplex: bool,
    start: StartPolicy,
    folded: bool,
) -> Action {
    let starts = match start {
        StartPolicy::Always => true,
        StartPolicy::Never => false,
        StartPolicy::Auto if is_default && multiplex && folded => true,
        StartPolicy::Auto => {
            state.is_some_and(|s| autostart.iter().any(|a| a == s)) && (is_default || !multiplex)
        }
    };
    if starts {
        Action::Started
    } else {
        Action::Registered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient() -> Vec<String> {
        vec!["draining".into(), "degraded".into()]
    }

    fn state(text: &[u8]) -> Result<Option<String>, String> {
        parse_state(text, &transient()).map_err(|e| e.to_string())
    }

    #[test]
    fn state_is_read_as_pythons_json_reads_it() {
        assert_eq!(
            state(br#"{"desired_state": "running", "x": NaN}"#),
            Ok(Some("running".into()))
        );
        assert_eq!(
            state(br#"{"desired_state": "stopped", "pid": 1e400, "desired_state": "running"}"#),
            Ok(Some("running".into()))
        );
        let deep = format!(
            "{{\"x\": {}{}, \"desired_state\": \"running\"}}",
            "[".repeat(1000),
            "]".repeat(1000)
        );
        assert_eq!(state(deep.as_bytes()), Ok(Some("running".into())));
        assert_eq!(
            state(b"\xEF\xBB\xBF{\"desired_state\": \"bom\"}"),
            Ok(Some("bom".into()))
        );
        assert_eq!(
            state(br#"{"desired_state": Infinity}"#),
            Err("desired_state is a number, not a string".into())
        );
        assert_eq!(
            state(br#"{"gateway_state": "x",}"#),
            Err("not valid JSON: key must be a string at line 1 column 23".into())
        );
        assert_eq!(
            state(b"[1]"),
            Err("not a JSON object (found an array)".into())
        );
        assert_eq!(state(b" \n"), Err("empty file, not a JSON object".into()));
        let huge = format!(
            "{{\"desired_state\": \"running\", \"n\": {}}}",
            "7".repeat(4301)
        );
        assert!(
            state(huge.as_bytes())
                .unwrap_err()
                .contains("more than 4300 digits")
        );
        assert_eq!(
            parse_lifecycle(Some(br#"{"phase": "exited", "t": -Infinity}"#)),
            PriorExit::Clean
        );
    }

    #[test]
    fn desired_state_wins() {
        assert_eq!(
            state(br#"{"desired_state": "stopped", "gateway_state": "running"}"#),
            Ok(Some("stopped".into()))
        );
        assert_eq!(
            state(br#"{"desired_state": "running"}"#),
            Ok(Some("running".into()))
        );
    }

    #[test]
    fn gateway_state_is_the_fallback_and_transient_counts_as_running() {
        assert_eq!(
            state(br#"{"desired_state": null, "gateway_state": "draining"}"#),
            Ok(Some("running".into()))
        );
        assert_eq!(
            state(br#"{"gateway_state": "degraded"}"#),
            Ok(Some("running".into()))
        );
        assert_eq!(
            state(br#"{"gateway_state": "stopped"}"#),
            Ok(Some("stopped".into()))
        );
        // A desired_state that is set but not a string is unreadable
        // intent: no state (with a warning), gateway_state does not stand in.
        assert_eq!(
            state(br#"{"desired_state": 1, "gateway_state": "running"}"#),
            Err("desired_state is a number, not a string".into())
        );
        assert_eq!(
            state(br#"{"desired_state": ["running"], "gateway_state": "running"}"#),
            Err("desired_state is an array, not a string".into())
        );
        // transient_running comes from the configuration, not a built-in list.
        assert_eq!(
            parse_state(br#"{"gateway_state": "draining"}"#, &[]).ok(),
            Some(Some("draining".into()))
        );
        // Only gateway_state is mapped: desired_state is taken literally.
        assert_eq!(
            state(br#"{"desired_state": "draining"}"#),
            Ok(Some("draining".into()))
        );
    }

    #[test]
    fn no_state_fields_means_none() {
        assert_eq!(state(b"{}"), Ok(None));
        assert_eq!(
            state(br#"{"desired_state": null, "gateway_state": ["running"]}"#),
            Ok(None)
        );
        assert_eq!(state(br#"{"pid": 42}"#), Ok(None));
    }

    #[test]
    fn bom_is_accepted() {
        assert_eq!(
            state(b"\xEF\xBB\xBF{\"gateway_state\": \"running\"}\n"),
            Ok(Some("running".into()))
        );
    }

    #[test]
    fn not_an_object_is_a_reason() {
        assert_eq!(
            state(b"[\"running\"]"),
            Err("not a JSON object (found an array)".into())
        );
        assert_eq!(
            state(b"\"running\""),
            Err("not a JSON object (found a string)".into())
        );
        assert_eq!(state(b"null"), Err("not a JSON object (found null)".into()));
    }

    #[test]
    fn invalid_json_reason_has_line_and_column() {
        let e = state(b"{\n  \"gateway_state\": running\n}").unwrap_err();
        assert!(e.starts_with("not valid JSON: "), "{e}");
        assert!(e.contains("line 2 column"), "{e}");
        let e = state(b"{\"gateway_state\": \"run").unwrap_err();
        assert!(e.contains("line 1 column"), "{e}");
    }

    #[test]
    fn empty_or_truncated_file_is_a_reason() {
        assert_eq!(state(b""), Err("empty file, not a JSON object".into()));
        assert_eq!(
            state(b"\xEF\xBB\xBF \n"),
            Err("empty file, not a JSON object".into())
        );
    }

    #[test]
    fn invalid_utf8_is_a_reason_not_a_panic() {
        let e = state(b"{\"gateway_state\": \"\xFF\"}").unwrap_err();
        assert!(e.starts_with("not valid JSON: "), "{e}");
    }

    #[test]
    fn lifecycle_phases() {
        assert_eq!(
            parse_lifecycle(Some(br#"{"phase": "exited", "pid": 9}"#)),
            PriorExit::Clean
        );
        assert_eq!(
            parse_lifecycle(Some(br#"{"phase": "running"}"#)),
            PriorExit::Unclean
        );
        assert_eq!(
            parse_lifecycle(Some(b"\xEF\xBB\xBF{\"phase\": \"exited\"}")),
            PriorExit::Clean
        );
        assert_eq!(
            parse_lifecycle(Some(br#"{"phase": "starting"}"#)),
            PriorExit::Unknown
        );
        assert_eq!(
            parse_lifecycle(Some(br#"{"phase": 1}"#)),
            PriorExit::Unknown
        );
        assert_eq!(parse_lifecycle(Some(b"{}")), PriorExit::Unknown);
        assert_eq!(parse_lifecycle(Some(br#"["exited"]"#)), PriorExit::Unknown);
        assert_eq!(parse_lifecycle(Some(b"{\"phase\": ")), PriorExit::Unknown);
        assert_eq!(parse_lifecycle(None), PriorExit::Unknown);
    }

    #[test]
    fn words() {
        assert_eq!(PriorExit::Clean.as_str(), "clean");
        assert_eq!(PriorExit::Unclean.to_string(), "unclean");
        assert_eq!(PriorExit::Unknown.as_str(), "unknown");
        assert_eq!(Action::Started.as_str(), "started");
        assert_eq!(Action::Registered.to_string(), "registered");
        assert_eq!(Action::Skipped.as_str(), "skipped");
        assert_eq!(
            serde_json::to_string(&[Action::Started, Action::Registered, Action::Skipped]).unwrap(),
            r#"["started","registered","skipped"]"#
        );
        assert_eq!(
            serde_json::to_string(&PriorExit::Unclean).unwrap(),
            r#""unclean""#
        );
    }

    fn auto() -> Vec<String> {
        vec!["running".into()]
    }

    #[test]
    fn decide_auto_follows_state_and_multiplex() {
        use Action::*;
        use StartPolicy::Auto;
        let a = auto();
        // (state, is_default, multiplex) -> action
        let cases = [
            (Some("running"), true, false, Started),
            (Some("running"), false, false, Started),
            (Some("running"), true, true, Started),
            (Some("running"), false, true, Registered),
            (Some("stopped"), true, false, Registered),
            (Some("stopped"), false, false, Registered),
            (None, true, false, Registered),
            (None, false, false, Registered),
        ];
        for (st, is_default, multiplex, want) in cases {
            assert_eq!(
                decide(st, &a, is_default, multiplex, Auto, false),
                want,
                "state={st:?} default={is_default} multiplex={multiplex}"
            );
        }
        // autostart comes from the configuration.
        let both = vec!["running".to_string(), "paused".to_string()];
        assert_eq!(
            decide(Some("paused"), &both, false, false, Auto, false),
            Started
        );
        assert_eq!(
            decide(Some("running"), &[], true, false, Auto, false),
            Registered
        );
    }

    #[test]
    fn a_folded_intent_starts_the_default_slot_only() {
        use Action::*;
        use StartPolicy::*;
        let a = auto();
        for st in [None, Some("stopped"), Some("running")] {
            assert_eq!(decide(st, &a, true, true, Auto, true), Started);
            assert_eq!(decide(st, &a, true, true, Never, true), Registered);
            assert_eq!(decide(st, &a, false, true, Auto, true), Registered);
        }
    }

    #[test]
    fn decide_always_and_never_override() {
        let a = auto();
        for st in [None, Some("running"), Some("stopped")] {
            for is_default in [true, false] {
                for multiplex in [true, false] {
                    assert_eq!(
                        decide(st, &a, is_default, multiplex, StartPolicy::Always, false),
                        Action::Started
                    );
                    assert_eq!(
                        decide(st, &a, is_default, multiplex, StartPolicy::Never, false),
                        Action::Registered
                    );
                }
            }
        }
    }
}
