//! The per-profile report lines (docs/phases.md): one on stdout, one appended to
//! the boot log in the user's volume, which is rotated to `.1` when it has
//! grown to `boot_log.rotate_bytes`.
//!
//! Values that come from the user's volume (the prior state) are written
//! bare when they are a plain word, and quoted and escaped otherwise, so a
//! state file cannot forge extra fields or lines in the log.

use std::borrow::Cow;

use crate::desired::state::{Action, PriorExit};
use crate::fs::Kind;
use crate::s6::findings::Cause;

/// `reconcile: profile=<name> prior_state=<state|None> action=<action>`
pub fn stdout_line(profile: &str, prior_state: Option<&str>, action: Action) -> String {
    let (profile, state) = (word(profile), state_word(prior_state));
    let action = action.as_str();
    let mut s = String::with_capacity(48 + profile.len() + state.len() + action.len());
    for part in [
        "reconcile: profile=",
        &profile,
        " prior_state=",
        &state,
        " action=",
        action,
    ] {
        s.push_str(part);
    }
    s
}

/// `<ts> profile=<name> prior_state=<state|None> action=<action> prior_exit=<...>`
/// (no trailing newline) pushed onto `buf` (the boot log's lines are made
/// into one buffer, appended with one write).
pub fn push_log_line(
    buf: &mut String,
    ts: &str,
    profile: &str,
    prior_state: Option<&str>,
    action: Action,
    prior_exit: PriorExit,
) {
    let (profile, state) = (word(profile), state_word(prior_state));
    let parts = [
        ts,
        " profile=",
        &profile,
        " prior_state=",
        &state,
        " action=",
        action.as_str(),
        " prior_exit=",
        prior_exit.as_str(),
    ];
    buf.reserve(parts.iter().map(|p| p.len()).sum::<usize>() + 1);
    for part in parts {
        buf.push_str(part);
    }
}

/// ` folded=a,b` after a default slot's line when named profiles' intent
/// was folded into it (nothing otherwise).
pub fn push_folded(buf: &mut String, folded: &[String]) {
    if folded.is_empty() {
        return;
    }
    buf.push_str(" folded=");
    for (i, name) in folded.iter().enumerate() {
        if i > 0 {
            buf.push(',');
        }
        buf.push_str(&word(name));
    }
}

/// The local time as `%Y-%m-%dT%H:%M:%S%z` (e.g. `2026-11-26T04:06:17+0000`);
/// take it once per run so every line of a run carries the same value.
pub fn timestamp_now() -> String {
    chrono::Local::now()
        .format("%Y-%m-%dT%H:%M:%S%z")
        .to_string()
}

/// Whether a log of `size` bytes is rotated before appending: when it has
/// reached `rotate_bytes`. `rotate_bytes: 0` disables rotation (the log
/// grows without bound), rather than rotating on every run.
pub fn needs_rotation(size: u64, rotate_bytes: u64) -> bool {
    rotate_bytes != 0 && size >= rotate_bytes
}

fn state_word(s: Option<&str>) -> Cow<'_, str> {
    match s {
        None => Cow::Borrowed("None"),
        // A state literally called "None" must not read as "no state".
        Some("None") => Cow::Borrowed("\"None\""),
        Some(s) => word(s),
    }
}

/// `s` unchanged if it is a non-empty run of `[A-Za-z0-9_.:+-]`, otherwise
/// in double quotes with Rust escapes (`"a b"`, `"x\nprofile=y"`).
fn word(s: &str) -> Cow<'_, str> {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'+' | b'-'));
    if plain {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("{s:?}"))
    }
}

/// Append `lines` to the boot log at `rel_path` below the profiles home,
/// through dir fds and without following a symlink anywhere on the way.
/// Missing parent directories are created (0755). When the log is at least
/// `rotate_bytes` long it is first renamed to `<name>.1`, replacing an older
/// `.1`.
pub fn append(
    home: &crate::fs::Dir,
    rel_path: &std::path::Path,
    lines: &str,
    rotate_bytes: u64,
) -> Result<(), Cause> {
    use std::ffi::OsString;
    let (Some(parent), Some(name)) = (rel_path.parent(), rel_path.file_name()) else {
        return Err(Cause::Text("boot log path has no file name".into()));
    };
    let said = Cause::Text;
    let mut dir = home.try_clone()?;
    for c in parent.iter() {
        dir = match dir.open_dir(c) {
            Err(e) if crate::fs::Os::NotFound.is(&e) => dir.mkdir(c, 0o755)?,
            // `logs` planted as a file: say what it is.
            Err(e) if crate::fs::Os::NotADir.is(&e) => match dir.stat_opt(c) {
                Ok(Some(m)) => {
                    return Err(said(format!(
                        "{} is a {}, not a directory",
                        c.to_string_lossy(),
                        m.kind.describe()
                    )));
                }
                _ => return Err(e.into()),
            },
            other => other?,
        };
    }
    match dir.stat_opt(name)? {
        Some(m) if m.kind == Kind::Symlink => {
            return Err(said("is a symlink; not followed".into()));
        }
        Some(m) if m.kind != Kind::File => {
            return Err(said(format!(
                "is a {}, not a regular file",
                m.kind.describe()
            )));
        }
        Some(m) if needs_rotation(m.size, rotate_bytes) => {
            let mut old = OsString::from(name);
            old.push(".1");
            dir.rename(name, &old).map_err(|e| {
                said(format!(
                    "rotation to {} failed: {}",
                    old.to_string_lossy(),
                    Cause::from(e.clone())
                ))
            })?;
        }
        _ => {}
    }
    // Swapped for a symlink since the stat: still not followed.
    dir.append_file(name, lines.as_bytes(), 0o644)
        .map(drop)
        .map_err(|e| match dir.stat_opt(name) {
            Ok(Some(m)) if m.kind == Kind::Symlink => said("is a symlink; not followed".into()),
            _ => Cause::from(e.clone()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_lines() {
        assert_eq!(
            stdout_line("default", Some("running"), Action::Started),
            "reconcile: profile=default prior_state=running action=started"
        );
        assert_eq!(
            stdout_line("work", None, Action::Registered),
            "reconcile: profile=work prior_state=None action=registered"
        );
    }

    fn log_line(
        ts: &str,
        profile: &str,
        prior_state: Option<&str>,
        action: Action,
        prior_exit: PriorExit,
    ) -> String {
        let mut s = String::new();
        push_log_line(&mut s, ts, profile, prior_state, action, prior_exit);
        s
    }

    #[test]
    fn log_lines() {
        assert_eq!(
            log_line(
                "2026-11-26T04:06:17+0100",
                "work",
                Some("stopped"),
                Action::Registered,
                PriorExit::Clean
            ),
            "2026-11-26T04:06:17+0100 profile=work prior_state=stopped \
             action=registered prior_exit=clean"
        );
        assert_eq!(
            log_line("T", "default", None, Action::Started, PriorExit::Unknown),
            "T profile=default prior_state=None action=started prior_exit=unknown"
        );
    }

    #[test]
    fn odd_states_cannot_forge_fields_or_lines() {
        let line = stdout_line(
            "w",
            Some("x action=started\nreconcile: y"),
            Action::Registered,
        );
        assert_eq!(
            line,
            "reconcile: profile=w prior_state=\"x action=started\\nreconcile: y\" \
             action=registered"
        );
        assert!(!line.contains('\n'));
        assert_eq!(
            stdout_line("w", Some(""), Action::Registered),
            "reconcile: profile=w prior_state=\"\" action=registered"
        );
        assert_eq!(
            stdout_line("w", Some("None"), Action::Registered),
            "reconcile: profile=w prior_state=\"None\" action=registered"
        );
        assert_eq!(
            stdout_line("w", Some("v1.2:ok+x_y-z"), Action::Registered),
            "reconcile: profile=w prior_state=v1.2:ok+x_y-z action=registered"
        );
    }

    #[test]
    fn timestamp_shape() {
        let ts = timestamp_now();
        let parsed = chrono::DateTime::parse_from_str(&ts, "%Y-%m-%dT%H:%M:%S%z")
            .unwrap_or_else(|e| panic!("{ts}: {e}"));
        let age = chrono::Local::now().signed_duration_since(parsed);
        assert!(age.num_seconds().abs() < 60, "{ts}");
        assert_eq!(ts.len(), "2026-11-26T04:06:17+0000".len(), "{ts}");
    }

    mod append {
        use super::super::append;
        use crate::fs::Dir;
        use std::os::unix::fs::{MetadataExt, symlink};
        use std::path::Path;

        const LOG: &str = "logs/container-boot.log";

        fn home() -> (tempfile::TempDir, Dir) {
            let tmp = tempfile::tempdir().unwrap();
            let dir = Dir::open_path(tmp.path()).unwrap();
            (tmp, dir)
        }

        fn read(p: &Path) -> String {
            std::fs::read_to_string(p).unwrap()
        }

        #[test]
        fn creates_parents_and_appends() {
            let (tmp, home) = home();
            append(&home, Path::new(LOG), "one\n", 1000).unwrap();
            append(&home, Path::new(LOG), "two\nthree\n", 1000).unwrap();
            let log = tmp.path().join(LOG);
            assert_eq!(read(&log), "one\ntwo\nthree\n");
            let logs = std::fs::symlink_metadata(tmp.path().join("logs")).unwrap();
            assert!(logs.is_dir());
            assert_eq!(logs.mode() & 0o7777, 0o755);
            assert!(!tmp.path().join("logs/container-boot.log.1").exists());
            // A log directly in the home needs no parent.
            append(&home, Path::new("boot.log"), "x\n", 1000).unwrap();
            assert_eq!(read(&tmp.path().join("boot.log")), "x\n");
        }

        #[test]
        fn rotates_at_the_threshold_and_replaces_older_rotation() {
            let (tmp, home) = home();
            let log = tmp.path().join(LOG);
            let old = tmp.path().join("logs/container-boot.log.1");
            std::fs::create_dir(tmp.path().join("logs")).unwrap();
            std::fs::write(&old, "ancient\n").unwrap();

            // 9 bytes < 10: no rotation, the append makes it 14 bytes.
            std::fs::write(&log, "123456789").unwrap();
            append(&home, Path::new(LOG), "abcd\n", 10).unwrap();
            assert_eq!(read(&log), "123456789abcd\n");
            assert_eq!(read(&old), "ancient\n");

            // 14 bytes >= 10: renamed to .1 (replacing "ancient"), new file.
            append(&home, Path::new(LOG), "fresh\n", 10).unwrap();
            assert_eq!(read(&old), "123456789abcd\n");
            assert_eq!(read(&log), "fresh\n");

            // Exactly at the threshold rotates too.
            std::fs::write(&log, "0123456789").unwrap();
            append(&home, Path::new(LOG), "next\n", 10).unwrap();
            assert_eq!(read(&old), "0123456789");
            assert_eq!(read(&log), "next\n");
        }

        #[test]
        fn zero_rotate_bytes_never_rotates() {
            let (tmp, home) = home();
            append(&home, Path::new(LOG), "a\n", 0).unwrap();
            append(&home, Path::new(LOG), "b\n", 0).unwrap();
            assert_eq!(read(&tmp.path().join(LOG)), "a\nb\n");
            assert!(!tmp.path().join("logs/container-boot.log.1").exists());
        }

        #[test]
        fn symlink_at_the_log_path_is_not_followed() {
            let (tmp, home) = home();
            let target = tmp.path().join("precious");
            std::fs::write(&target, "keep me\n").unwrap();
            std::fs::create_dir(tmp.path().join("logs")).unwrap();
            let log = tmp.path().join(LOG);
            symlink(&target, &log).unwrap();

            // rotate_bytes 1: even a tiny symlink is never "rotated" away.
            let e = append(&home, Path::new(LOG), "evil\n", 1).unwrap_err();
            assert_eq!(e.to_string(), "is a symlink; not followed");
            assert_eq!(read(&target), "keep me\n");
            assert_eq!(std::fs::read_link(&log).unwrap(), target);
            assert!(!tmp.path().join("logs/container-boot.log.1").exists());
        }

        #[test]
        fn symlinked_parent_is_not_followed() {
            let (tmp, home) = home();
            let elsewhere = tmp.path().join("elsewhere");
            std::fs::create_dir(&elsewhere).unwrap();
            symlink(&elsewhere, tmp.path().join("logs")).unwrap();
            let e = append(&home, Path::new(LOG), "evil\n", 1000).unwrap_err();
            assert_eq!(e.to_string(), "logs is a symlink; refusing to follow it");
            assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        }

        #[test]
        fn hard_linked_log_is_refused() {
            let (tmp, home) = home();
            let other = tmp.path().join("other");
            std::fs::write(&other, "keep me\n").unwrap();
            std::fs::create_dir(tmp.path().join("logs")).unwrap();
            std::fs::hard_link(&other, tmp.path().join(LOG)).unwrap();
            let e = append(&home, Path::new(LOG), "evil\n", 1000).unwrap_err();
            assert!(e.to_string().contains("hard-linked"), "{e}");
            assert_eq!(read(&other), "keep me\n");
        }

        #[test]
        fn fifo_at_the_log_path_fails_without_blocking() {
            let (tmp, home) = home();
            std::fs::create_dir(tmp.path().join("logs")).unwrap();
            let status = std::process::Command::new("mkfifo")
                .arg(tmp.path().join(LOG))
                .status()
                .unwrap();
            assert!(status.success());
            // Refused from its kind, never opened (no hang, no ENXIO).
            let e = append(&home, Path::new(LOG), "x\n", 1000).unwrap_err();
            assert_eq!(e.to_string(), "is a FIFO, not a regular file");
        }

        #[test]
        fn a_failed_rotation_says_so_and_why() {
            let (tmp, home) = home();
            std::fs::create_dir(tmp.path().join("logs")).unwrap();
            std::fs::write(tmp.path().join(LOG), "full\n").unwrap();
            std::fs::create_dir(tmp.path().join("logs/container-boot.log.1")).unwrap();
            std::fs::write(tmp.path().join("logs/container-boot.log.1/x"), "").unwrap();
            let e = append(&home, Path::new(LOG), "x\n", 1).unwrap_err();
            assert_eq!(
                e.to_string(),
                "rotation to container-boot.log.1 failed: Is a directory"
            );
            assert_eq!(read(&tmp.path().join(LOG)), "full\n");
        }
    }

    #[test]
    fn rotation_threshold() {
        assert!(!needs_rotation(0, 262_144));
        assert!(!needs_rotation(262_143, 262_144));
        assert!(needs_rotation(262_144, 262_144));
        assert!(needs_rotation(1 << 30, 262_144));
        assert!(!needs_rotation(0, 0));
        assert!(!needs_rotation(u64::MAX, 0));
        assert!(needs_rotation(1, 1));
    }
}
