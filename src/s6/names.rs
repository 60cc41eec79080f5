//! Profile names and the slot names built from them (docs/phases.md).
//!
//! A profile name comes from a directory name in the user's volume or from
//! the configuration, so it is untrusted: nothing may build a path from it
//! before [`validate_profile_name`] accepted it. A valid name matches
//! `^[a-z0-9][a-z0-9_-]*$`, and both names derived from it must fit:
//! the slot `<prefix><name>` in [`SLOT_NAME_MAX`] bytes (s6-svscan skips
//! longer names) and the staging dir `.<slot>.tmp` in [`FILE_NAME_MAX`]
//! bytes (NAME_MAX). The staging limit is the tighter one, so with the
//! prefix `gateway-` the longest name is 242 bytes.

/// s6-svscan skips service directories whose name is longer than this.
pub const SLOT_NAME_MAX: usize = 251;

/// Longest file name the kernel accepts in one path component (NAME_MAX).
pub const FILE_NAME_MAX: usize = 255;

/// The name of the default profile (the home itself); a directory
/// `profiles/default/` would collide with its slot.
pub const DEFAULT_PROFILE: &str = "default";

const PATTERN: &str = "^[a-z0-9][a-z0-9_-]*$";

/// Why a profile name was refused. The Display text is the reason printed
/// next to the skipped profile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name does not match `^[a-z0-9][a-z0-9_-]*$`; `detail` says where.
    #[error("invalid profile name {name:?}: must match {PATTERN} ({detail})")]
    Pattern { name: String, detail: String },
    /// `<prefix><name>` is longer than s6-svscan accepts.
    #[error(
        "profile name of {name_len} bytes makes slot name {slot_preview} {slot_len} bytes: \
         s6-svscan skips names longer than {SLOT_NAME_MAX} bytes \
         (at most {max_name_len} bytes with prefix {prefix:?})"
    )]
    SlotTooLong {
        name_len: usize,
        slot_len: usize,
        slot_preview: String,
        prefix: String,
        max_name_len: usize,
    },
    /// `.<prefix><name>.tmp` is longer than a file name may be.
    #[error(
        "profile name of {name_len} bytes makes staging dir name {staging_preview} \
         {staging_len} bytes: file names are limited to {FILE_NAME_MAX} bytes \
         (at most {max_name_len} bytes with prefix {prefix:?})"
    )]
    StagingTooLong {
        name_len: usize,
        staging_len: usize,
        staging_preview: String,
        prefix: String,
        max_name_len: usize,
    },
}

/// The slot directory's name in the scandir: `<prefix><name>`.
pub fn slot_name(prefix: &str, name: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + name.len());
    s.push_str(prefix);
    s.push_str(name);
    s
}

/// The staging directory's name for `slot`: `.<slot>.tmp` (the leading dot
/// makes s6-svscan ignore it while it is being built).
pub fn staging_name(slot: &str) -> String {
    let mut s = String::with_capacity(slot.len() + 5);
    s.push('.');
    s.push_str(slot);
    s.push_str(".tmp");
    s
}

/// Whether a scandir entry is a dot name with the slot prefix
/// (`.<prefix>*`): what the scan observes for [`is_leftover`] to decide on.
pub fn is_dot_slot_name(entry: &str, slot_prefix: &str) -> bool {
    entry
        .strip_prefix('.')
        .is_some_and(|rest| rest.starts_with(slot_prefix))
}

/// The name a pruned slot is retired under: `.<slot>.retired`, out of
/// s6-svscan's sight until its supervisor has let go and it is removed.
pub fn retired_name(slot: &str) -> String {
    format!(".{slot}.retired")
}

/// Whether a dot entry of the scandir is a leftover this run removes: a
/// name `reconcile` itself creates. That is the staging name `.<slot>.tmp`
/// of a slot this run registers (`registered(slot)`; it also holds a
/// replaced slot until it is removed), and the retire name
/// `.<slot>.retired` of any slot (a pruned slot whose supervisor had not
/// let go when its run ended). The one decision on leftover names
/// (docs/reference-image.md, "Markers and leftovers"): any other dot name, such as
/// `.<slot>.tmp.stale-<n>` or the staging name of a profile that does not
/// exist, is left alone.
pub fn is_leftover(entry: &str, slot_prefix: &str, registered: impl Fn(&str) -> bool) -> bool {
    let Some(rest) = entry.strip_prefix('.') else {
        return false;
    };
    let ours = |slot: &str| slot.len() > slot_prefix.len() && slot.starts_with(slot_prefix);
    match (rest.strip_suffix(".tmp"), rest.strip_suffix(".retired")) {
        (Some(slot), _) => ours(slot) && registered(slot),
        (_, Some(slot)) => ours(slot),
        _ => false,
    }
}

/// True for names that a named profile directory may not use (`default`).
pub fn is_reserved(name: &str) -> bool {
    name == DEFAULT_PROFILE
}

/// The longest valid profile name with this prefix (0 if the prefix alone
/// leaves no room).
pub fn max_name_len(slot_prefix: &str) -> usize {
    let by_slot = SLOT_NAME_MAX.saturating_sub(slot_prefix.len());
    // staging = "." + slot + ".tmp"
    let by_staging = FILE_NAME_MAX.saturating_sub(slot_prefix.len() + 5);
    by_slot.min(by_staging)
}

/// Accept `name` as a profile name for slots named `<slot_prefix><name>`.
///
/// The pattern is checked first, then the slot name length, then the
/// staging name length, and the first violated rule is reported.
pub fn validate_profile_name(name: &str, slot_prefix: &str) -> Result<(), NameError> {
    if let Some(detail) = pattern_violation(name) {
        return Err(NameError::Pattern {
            name: name.to_string(),
            detail,
        });
    }
    // Lengths first: the names are built only to show them in an error.
    let slot_len = slot_prefix.len() + name.len();
    if slot_len > SLOT_NAME_MAX {
        let slot = slot_name(slot_prefix, name);
        return Err(NameError::SlotTooLong {
            name_len: name.len(),
            slot_len: slot.len(),
            slot_preview: preview(&slot),
            prefix: slot_prefix.to_string(),
            max_name_len: max_name_len(slot_prefix),
        });
    }
    if slot_len + 5 > FILE_NAME_MAX {
        let staging = staging_name(&slot_name(slot_prefix, name));
        return Err(NameError::StagingTooLong {
            name_len: name.len(),
            staging_len: staging.len(),
            staging_preview: preview(&staging),
            prefix: slot_prefix.to_string(),
            max_name_len: max_name_len(slot_prefix),
        });
    }
    Ok(())
}

fn pattern_violation(name: &str) -> Option<String> {
    let mut chars = name.char_indices();
    let Some((_, first)) = chars.next() else {
        return Some("the name is empty".into());
    };
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Some(format!(
            "it starts with {first:?}; the first character must be a lowercase letter or digit"
        ));
    }
    for (at, c) in chars {
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-') {
            return Some(format!("{c:?} at byte {at} is not allowed"));
        }
    }
    None
}

/// A long name, shortened for messages: the first 24 characters and `…`.
fn preview(s: &str) -> String {
    const KEEP: usize = 24;
    match s.char_indices().nth(KEEP) {
        Some((i, _)) => format!("\"{}…\"", &s[..i]),
        None => format!("{s:?}"),
    }
}

/// Why a name found on disk is not used: not UTF-8, or holding a control
/// character (which would garble every message that prints it). `None`
/// for a usable name.
pub fn listed_name_problem(name: &[u8]) -> Option<&'static str> {
    match std::str::from_utf8(name) {
        Err(_) => Some("name is not valid UTF-8; left alone"),
        Ok(s) if s.chars().any(char::is_control) => {
            Some("name holds a control character; left alone")
        }
        Ok(_) => None,
    }
}

/// A name as bytes, printable: valid UTF-8 without control characters
/// as it is, a backslash doubled, anything else as `\xNN` per byte.
pub fn escape(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    let mut b = [0u8; 4];
                    for byte in c.encode_utf8(&mut b).bytes() {
                        out.push_str(&format!("\\x{byte:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "gateway-";

    fn reason(name: &str) -> String {
        validate_profile_name(name, PREFIX).unwrap_err().to_string()
    }

    #[test]
    fn valid_names() {
        for name in ["a", "0", "x_y-1", "default", "work", "9lives", "a-", "a_"] {
            assert_eq!(validate_profile_name(name, PREFIX), Ok(()), "{name}");
        }
    }

    #[test]
    fn uppercase_is_refused_with_the_pattern() {
        assert_eq!(
            reason("Bad"),
            "invalid profile name \"Bad\": must match ^[a-z0-9][a-z0-9_-]*$ \
             (it starts with 'B'; the first character must be a lowercase letter or digit)"
        );
        assert_eq!(
            reason("bAd"),
            "invalid profile name \"bAd\": must match ^[a-z0-9][a-z0-9_-]*$ \
             ('A' at byte 1 is not allowed)"
        );
    }

    #[test]
    fn dot_and_slash_are_refused() {
        assert!(reason("a.b").ends_with("('.' at byte 1 is not allowed)"));
        assert!(reason("a/b").ends_with("('/' at byte 1 is not allowed)"));
        assert!(reason("..").contains("it starts with '.'"));
        assert!(reason("a b").contains("' ' at byte 1"));
        assert!(
            reason("a\nb").contains("'\\n' at byte 1"),
            "{}",
            reason("a\nb")
        );
        assert!(reason("é").contains("it starts with 'é'"));
        assert!(reason("aé").contains("'é' at byte 1"));
    }

    #[test]
    fn leading_dash_or_underscore_is_refused() {
        assert!(reason("-x").starts_with("invalid profile name \"-x\""));
        assert!(reason("-x").contains("it starts with '-'"));
        assert!(reason("_x").contains("it starts with '_'"));
    }

    #[test]
    fn empty_is_refused() {
        assert_eq!(
            reason(""),
            "invalid profile name \"\": must match ^[a-z0-9][a-z0-9_-]*$ (the name is empty)"
        );
    }

    #[test]
    fn staging_limit_decides_between_242_and_243() {
        let ok = "a".repeat(242);
        assert_eq!(validate_profile_name(&ok, PREFIX), Ok(()));
        assert_eq!(staging_name(&slot_name(PREFIX, &ok)).len(), 255);

        let long = "a".repeat(243);
        let err = validate_profile_name(&long, PREFIX).unwrap_err();
        assert!(matches!(err, NameError::StagingTooLong { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "profile name of 243 bytes makes staging dir name \".gateway-aaaaaaaaaaaaaaa…\" \
             256 bytes: file names are limited to 255 bytes \
             (at most 242 bytes with prefix \"gateway-\")"
        );
        assert_eq!(max_name_len(PREFIX), 242);
    }

    #[test]
    fn slot_limit_is_reported_for_300_chars() {
        let err = validate_profile_name(&"b".repeat(300), PREFIX).unwrap_err();
        assert_eq!(
            err.to_string(),
            "profile name of 300 bytes makes slot name \"gateway-bbbbbbbbbbbbbbbb…\" 308 bytes: \
             s6-svscan skips names longer than 251 bytes \
             (at most 242 bytes with prefix \"gateway-\")"
        );
    }

    #[test]
    fn pattern_is_checked_before_length() {
        let name = format!("{}X", "a".repeat(299));
        assert!(matches!(
            validate_profile_name(&name, PREFIX),
            Err(NameError::Pattern { .. })
        ));
    }

    #[test]
    fn limits_follow_the_prefix() {
        // A one-byte prefix: the staging name allows 249, the slot 250.
        assert_eq!(max_name_len("g"), 249);
        assert_eq!(validate_profile_name(&"a".repeat(249), "g"), Ok(()));
        assert!(validate_profile_name(&"a".repeat(250), "g").is_err());
        // A prefix that leaves no room refuses every name.
        let huge = "p".repeat(251);
        assert_eq!(max_name_len(&huge), 0);
        assert!(matches!(
            validate_profile_name("a", &huge),
            Err(NameError::SlotTooLong { .. })
        ));
    }

    #[test]
    fn derived_names() {
        assert_eq!(slot_name(PREFIX, "work"), "gateway-work");
        assert_eq!(staging_name("gateway-work"), ".gateway-work.tmp");
    }

    #[test]
    fn only_default_is_reserved() {
        assert!(is_reserved("default"));
        assert!(!is_reserved("defaults"));
        assert!(!is_reserved("Default"));
        assert!(!is_reserved("work"));
    }

    #[test]
    fn listed_names_are_escaped() {
        assert_eq!(escape(b"ok-name"), "ok-name");
        assert_eq!(escape(b"bad\xffname"), "bad\\xffname");
        assert_eq!(escape(b"a\nb"), "a\\x0ab");
        assert_eq!(escape(b"back\\slash"), "back\\\\slash");
        assert_eq!(escape("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert!(listed_name_problem(b"bad\xff").is_some());
        assert!(listed_name_problem(b"a\tb").is_some());
        assert!(listed_name_problem("caf\u{e9}".as_bytes()).is_none());
    }

    #[test]
    fn leftovers_are_the_staging_names_of_registered_slots_only() {
        let reg = |s: &str| s == "gateway-work" || s == "gateway-default";
        let left = |e: &str| is_leftover(e, "gateway-", reg);
        assert!(left(".gateway-work.tmp"));
        assert!(left(&staging_name("gateway-default")));
        assert!(!left(".gateway-work.tmp.stale-1764500000"));
        assert!(!left(".gateway-x.tmpfoo"));
        assert!(!left(".gateway-ghost.tmp"));
        assert!(!left(".gateway-.tmp"));
        assert!(!left("gateway-work.tmp"));
        assert!(!left(".gateway-work"));
        assert!(!left(".other-work.tmp"));
        assert!(!left(".s6-svscan"));
        assert!(left(".gateway-ghost.retired"));
        assert!(left(&retired_name("gateway-work")));
        assert!(!left(".gateway-.retired"));
        assert!(!left(".gateway-x.retiredfoo"));
        assert!(!left(".other-x.retired"));
        assert!(is_dot_slot_name(".gateway-x.tmpfoo", "gateway-"));
        assert!(!is_dot_slot_name(".s6-svscan", "gateway-"));
        assert!(!is_dot_slot_name("gateway-x", "gateway-"));
    }
}
