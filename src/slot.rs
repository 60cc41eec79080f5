//! What a profile slot contains (SPEC 6.4): its scripts and its supervise
//! skeleton, as data.
//!
//! [`render`] produces the three scripts, [`entries`] lists every entry of a
//! complete slot relative to the slot directory, parents first. The builder
//! creates exactly these entries in the staging dir; the comparer checks an
//! existing slot against them (contents, modes, owners, `down`), ignoring
//! s6-supervise's runtime files ([`layout::is_runtime`]).
//!
//! The skeleton (`event/`, `supervise/`, `supervise/event/`,
//! `supervise/control`, and the same in `log/`) is created ahead of
//! s6-supervise because s6-supervise keeps what it finds on EEXIST: that is
//! how the user gets to control and watch a root-run supervisor.

use std::path::{Path, PathBuf};

use crate::config::Templates;
#[cfg(doc)]
use crate::layout;
use crate::layout::{
    MODE_CONTROL_COMPAT, MODE_EVENT, MODE_FILE, MODE_SCRIPT, MODE_SLOT_DIR, MODE_SUPERVISE_SLOT,
};

/// Contents of `type`.
pub const TYPE_CONTENT: &str = "longrun\n";

/// The three scripts of a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotFiles {
    pub run: String,
    pub finish: String,
    pub log_run: String,
}

/// One entry of a complete slot, `path` relative to the slot directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotEntry {
    Dir {
        path: PathBuf,
        mode: u32,
    },
    File {
        path: PathBuf,
        mode: u32,
        content: String,
    },
    Fifo {
        path: PathBuf,
        mode: u32,
    },
}

impl SlotEntry {
    pub fn path(&self) -> &Path {
        match self {
            SlotEntry::Dir { path, .. }
            | SlotEntry::File { path, .. }
            | SlotEntry::Fifo { path, .. } => path,
        }
    }

    pub fn mode(&self) -> u32 {
        match self {
            SlotEntry::Dir { mode, .. }
            | SlotEntry::File { mode, .. }
            | SlotEntry::Fifo { mode, .. } => *mode,
        }
    }
}

/// The scripts for `profile`'s slot.
///
/// `user` is what `s6-setuidgid` accepts: an account name or `uid:gid`.
/// `home` is the gateway's `HOME` and working directory.
///
/// A template from `profiles.templates` replaces the matching default; in it
/// `{profile}`, `{user}` and `{home}` are replaced by the values as they are
/// (one left-to-right pass, so a value containing `{user}` is not expanded
/// again; no shell quoting: quote them in the template if they may need it).
/// Any other text, other braces included, is kept as written. The defaults
/// shell-quote `user` and `home` where needed.
pub fn render(
    profile: &str,
    is_default: bool,
    user: &str,
    home: &str,
    templates: &Templates,
) -> SlotFiles {
    let fill = |t: &String| substitute(t, profile, user, home);
    SlotFiles {
        run: templates
            .run
            .as_ref()
            .map(fill)
            .unwrap_or_else(|| default_run(profile, is_default, user, home)),
        finish: templates
            .finish
            .as_ref()
            .map(fill)
            .unwrap_or_else(default_finish),
        log_run: templates
            .log_run
            .as_ref()
            .map(fill)
            .unwrap_or_else(|| default_log_run(profile, user)),
    }
}

/// Every entry of a complete slot, parents before children; `down` only
/// when the slot is registered but not started.
pub fn entries(files: &SlotFiles, down: bool) -> Vec<SlotEntry> {
    let dir = |p: &str, mode| SlotEntry::Dir {
        path: p.into(),
        mode,
    };
    let file = |p: &str, mode, content: &str| SlotEntry::File {
        path: p.into(),
        mode,
        content: content.to_string(),
    };
    let fifo = |p: &str, mode| SlotEntry::Fifo {
        path: p.into(),
        mode,
    };
    let mut v = vec![
        file("type", MODE_FILE, TYPE_CONTENT),
        file("run", MODE_SCRIPT, &files.run),
        file("finish", MODE_SCRIPT, &files.finish),
    ];
    if down {
        v.push(file("down", MODE_FILE, ""));
    }
    v.extend([
        dir("event", MODE_EVENT),
        dir("supervise", MODE_SUPERVISE_SLOT),
        dir("supervise/event", MODE_EVENT),
        fifo("supervise/control", MODE_CONTROL_COMPAT),
        dir("log", MODE_SLOT_DIR),
        file("log/run", MODE_SCRIPT, &files.log_run),
        dir("log/event", MODE_EVENT),
        dir("log/supervise", MODE_SUPERVISE_SLOT),
        dir("log/supervise/event", MODE_EVENT),
        fifo("log/supervise/control", MODE_CONTROL_COMPAT),
    ]);
    v
}

fn substitute(template: &str, profile: &str, user: &str, home: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    'outer: while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        for (key, value) in [("{profile}", profile), ("{user}", user), ("{home}", home)] {
            if let Some(after) = tail.strip_prefix(key) {
                out.push_str(value);
                rest = after;
                continue 'outer;
            }
        }
        out.push('{');
        rest = &tail[1..];
    }
    out.push_str(rest);
    out
}

/// `s` as one shell word: unchanged when it is made of characters that are
/// never special, otherwise single-quoted.
fn sh_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:@%+=,".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn default_run(profile: &str, is_default: bool, user: &str, home: &str) -> String {
    let hermes = if is_default {
        "hermes gateway run --replace".to_string()
    } else {
        format!("hermes -p {} gateway run --replace", sh_quote(profile))
    };
    let home = sh_quote(home);
    let user = sh_quote(user);
    format!(
        r#"#!/command/with-contenv sh
# s6-reconcile: gateway for profile {profile}
set -e
exec 2>&1
export HOME={home}
cd {home}
if [ -f /opt/hermes/.venv/bin/activate ]; then
  . /opt/hermes/.venv/bin/activate
fi
export HERMES_S6_SUPERVISED_CHILD=1
export HERMES_SUPERVISED_CHILD=1
if [ "$(id -u)" = 0 ]; then
  exec s6-setuidgid {user} {hermes}
fi
exec {hermes}
"#
    )
}

fn default_finish() -> String {
    r#"#!/bin/sh
# s6-reconcile: $1 is the run script's exit code (256 if a signal killed it,
# then $2 is the signal). 0 (intentional stop) and 78 (EX_CONFIG) exit 125,
# which tells s6-supervise not to restart; anything else restarts.
case "$1" in
  0|78) exit 125 ;;
esac
exit 0
"#
    .to_string()
}

fn default_log_run(profile: &str, user: &str) -> String {
    let user = sh_quote(user);
    let profile = sh_quote(profile);
    format!(
        r#"#!/command/with-contenv sh
# s6-reconcile: logger for profile {profile}
# The log dir is in the user's volume: create it and clear s6-log's stale
# lock as the user, never as root.
set -e
log_dir="${{HERMES_HOME:-/opt/data}}/logs/gateways/{profile}"
if [ "$(id -u)" = 0 ]; then
  s6-setuidgid {user} mkdir -p "$log_dir"
  s6-setuidgid {user} rm -f "$log_dir/lock"
  exec s6-setuidgid {user} s6-log 1 n10 s1000000 T "$log_dir"
fi
mkdir -p "$log_dir"
rm -f "$log_dir/lock"
exec s6-log 1 n10 s1000000 T "$log_dir"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Output};

    fn defaults(profile: &str, is_default: bool) -> SlotFiles {
        render(
            profile,
            is_default,
            "hermes",
            "/opt/data",
            &Templates::default(),
        )
    }

    /// Run `sh <script> args...` with `PATH` set to `path` and extra env.
    fn sh(script: &str, dir: &Path, path: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
        let file = dir.join("script");
        std::fs::write(&file, script).unwrap();
        let mut cmd = Command::new("/bin/sh");
        cmd.arg(&file)
            .args(args)
            .env_clear()
            .env("PATH", path)
            .current_dir(dir);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// Stub commands that print what they were asked to do; `id -u` prints
    /// `uid`; `s6-setuidgid USER CMD...` prints `as USER:` and runs CMD.
    fn stubs(dir: &Path, uid: u32) -> String {
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let write = |name: &str, body: &str| {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        write("id", &format!("echo {uid}"));
        write(
            "s6-setuidgid",
            "u=$1; shift; echo \"as $u: $*\"; exec \"$@\"",
        );
        write(
            "hermes",
            "echo \"hermes $* HOME=$HOME PWD=$(pwd) S6=$HERMES_S6_SUPERVISED_CHILD \
             SUP=$HERMES_SUPERVISED_CHILD\"; echo to-stderr >&2",
        );
        write("s6-log", "echo \"s6-log $*\"");
        format!("{}:/usr/bin:/bin", bin.display())
    }

    #[test]
    fn default_scripts_pass_sh_n() {
        let tmp = tempfile::tempdir().unwrap();
        for files in [
            defaults("default", true),
            defaults("work", false),
            render(
                "x_y-1",
                false,
                "o'brien",
                "/home/with space/$HOME",
                &Templates::default(),
            ),
        ] {
            for script in [&files.run, &files.finish, &files.log_run] {
                let out = Command::new("sh")
                    .arg("-n")
                    .arg({
                        let p = tmp.path().join("s");
                        std::fs::write(&p, script).unwrap();
                        p
                    })
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "sh -n failed: {}\n{script}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    #[test]
    fn shebangs() {
        let f = defaults("work", false);
        assert!(f.run.starts_with("#!/command/with-contenv sh\n"));
        assert!(f.finish.starts_with("#!/bin/sh\n"));
        assert!(f.log_run.starts_with("#!/command/with-contenv sh\n"));
    }

    #[test]
    fn run_for_named_profile_as_root_drops_to_the_user() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        std::fs::create_dir(&home).unwrap();
        let path = stubs(tmp.path(), 0);
        let f = render(
            "work",
            false,
            "hermes",
            home.to_str().unwrap(),
            &Templates::default(),
        );
        let out = sh(&f.run, tmp.path(), &path, &[], &[]);
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8(out.stdout.clone()).unwrap();
        let h = home.display();
        assert_eq!(
            stdout,
            format!(
                "as hermes: hermes -p work gateway run --replace\n\
                 hermes -p work gateway run --replace HOME={h} PWD={h} S6=1 SUP=1\n\
                 to-stderr\n"
            )
        );
        assert!(out.stderr.is_empty(), "stderr goes to the logger: {out:?}");
    }

    #[test]
    fn run_for_default_profile_as_non_root_execs_directly() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("with space");
        std::fs::create_dir(&home).unwrap();
        let path = stubs(tmp.path(), 10000);
        let f = render(
            "default",
            true,
            "hermes",
            home.to_str().unwrap(),
            &Templates::default(),
        );
        assert!(!f.run.contains("-p default"));
        let out = sh(&f.run, tmp.path(), &path, &[], &[]);
        assert!(out.status.success(), "{out:?}");
        let h = home.display();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("hermes gateway run --replace HOME={h} PWD={h} S6=1 SUP=1\nto-stderr\n")
        );
    }

    #[test]
    fn run_stops_when_home_is_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let path = stubs(tmp.path(), 0);
        let missing = tmp.path().join("nope");
        let f = render(
            "work",
            false,
            "hermes",
            missing.to_str().unwrap(),
            &Templates::default(),
        );
        let out = sh(&f.run, tmp.path(), &path, &[], &[]);
        assert!(!out.status.success());
        assert!(!String::from_utf8_lossy(&out.stdout).contains("hermes -p"));
    }

    #[test]
    fn finish_exit_codes() {
        let tmp = tempfile::tempdir().unwrap();
        let f = defaults("work", false);
        for (args, want) in [
            (&["0", "0"][..], 125),
            (&["78", "0"][..], 125),
            (&["1", "0"][..], 0),
            (&["77", "0"][..], 0),
            (&["256", "15"][..], 0),
            (&["256", "9"][..], 0),
        ] {
            let out = sh(&f.finish, tmp.path(), "/usr/bin:/bin", &[], args);
            assert_eq!(out.status.code(), Some(want), "finish {args:?}");
        }
    }

    #[test]
    fn log_run_as_root_prepares_the_dir_as_the_user() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let log_dir = data.join("logs/gateways/work");
        std::fs::create_dir_all(&log_dir).unwrap();
        std::fs::write(log_dir.join("lock"), "").unwrap();
        let path = stubs(tmp.path(), 0);
        let f = defaults("work", false);
        let out = sh(
            &f.log_run,
            tmp.path(),
            &path,
            &[("HERMES_HOME", data.to_str().unwrap())],
            &[],
        );
        assert!(out.status.success(), "{out:?}");
        let d = log_dir.display();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!(
                "as hermes: mkdir -p {d}\n\
                 as hermes: rm -f {d}/lock\n\
                 as hermes: s6-log 1 n10 s1000000 T {d}\n\
                 s6-log 1 n10 s1000000 T {d}\n"
            )
        );
        assert!(!log_dir.join("lock").exists());
        assert!(!f.log_run.contains("chown"));
    }

    #[test]
    fn log_run_as_user_defaults_to_opt_data_and_runs_directly() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let path = stubs(tmp.path(), 10000);
        let f = defaults("x_y-1", false);
        let out = sh(
            &f.log_run,
            tmp.path(),
            &path,
            &[("HERMES_HOME", data.to_str().unwrap())],
            &[],
        );
        assert!(out.status.success(), "{out:?}");
        let d = data.join("logs/gateways/x_y-1");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("s6-log 1 n10 s1000000 T {}\n", d.display())
        );
        assert!(d.is_dir());
        // Unset or empty HERMES_HOME falls back to /opt/data (expanded at run time).
        assert!(
            f.log_run
                .contains("log_dir=\"${HERMES_HOME:-/opt/data}/logs/gateways/x_y-1\"")
        );
    }

    #[test]
    fn defaults_quote_odd_user_and_home() {
        let f = render(
            "work",
            false,
            "o'brien",
            "/srv/my home",
            &Templates::default(),
        );
        assert!(
            f.run
                .contains("export HOME='/srv/my home'\ncd '/srv/my home'\n")
        );
        assert!(
            f.run
                .contains("exec s6-setuidgid 'o'\\''brien' hermes -p work")
        );
        assert!(f.log_run.contains("s6-setuidgid 'o'\\''brien' mkdir -p"));
        let f = render(
            "work",
            false,
            "10000:10000",
            "/opt/data",
            &Templates::default(),
        );
        assert!(f.run.contains("exec s6-setuidgid 10000:10000 hermes"));
    }

    #[test]
    fn templates_replace_defaults_with_placeholders() {
        let t = Templates {
            run: Some("#!/bin/sh\nexec gw {profile} as {user} in {home} {other} {\n".into()),
            finish: None,
            log_run: Some("#!/bin/sh\nexec logger -t {profile}{profile}\n".into()),
        };
        let f = render("work", false, "hermes", "/opt/data", &t);
        assert_eq!(
            f.run,
            "#!/bin/sh\nexec gw work as hermes in /opt/data {other} {\n"
        );
        assert_eq!(f.finish, defaults("work", false).finish);
        assert_eq!(f.log_run, "#!/bin/sh\nexec logger -t workwork\n");
    }

    #[test]
    fn substituted_values_are_not_expanded_again() {
        let t = Templates {
            run: Some("{home}|{user}".into()),
            ..Templates::default()
        };
        let f = render("p", false, "{home}", "/x/{user}", &t);
        assert_eq!(f.run, "/x/{user}|{home}");
    }

    #[test]
    fn entries_of_a_down_slot() {
        let files = defaults("work", false);
        let got: Vec<(String, &str, u32)> = entries(&files, true)
            .iter()
            .map(|e| {
                let kind = match e {
                    SlotEntry::Dir { .. } => "dir",
                    SlotEntry::File { .. } => "file",
                    SlotEntry::Fifo { .. } => "fifo",
                };
                (e.path().display().to_string(), kind, e.mode())
            })
            .collect();
        let want: Vec<(String, &str, u32)> = [
            ("type", "file", 0o644),
            ("run", "file", 0o755),
            ("finish", "file", 0o755),
            ("down", "file", 0o644),
            ("event", "dir", 0o3730),
            ("supervise", "dir", 0o755),
            ("supervise/event", "dir", 0o3730),
            ("supervise/control", "fifo", 0o660),
            ("log", "dir", 0o755),
            ("log/run", "file", 0o755),
            ("log/event", "dir", 0o3730),
            ("log/supervise", "dir", 0o755),
            ("log/supervise/event", "dir", 0o3730),
            ("log/supervise/control", "fifo", 0o660),
        ]
        .into_iter()
        .map(|(p, k, m)| (p.to_string(), k, m))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn entries_contents_and_down() {
        let files = defaults("work", false);
        let up = entries(&files, false);
        assert!(!up.iter().any(|e| e.path() == Path::new("down")));
        assert_eq!(up.len() + 1, entries(&files, true).len());
        let content = |p: &str| {
            up.iter().find_map(|e| match e {
                SlotEntry::File { path, content, .. } if path == Path::new(p) => {
                    Some(content.clone())
                }
                _ => None,
            })
        };
        assert_eq!(content("type").as_deref(), Some("longrun\n"));
        assert_eq!(content("run"), Some(files.run.clone()));
        assert_eq!(content("finish"), Some(files.finish.clone()));
        assert_eq!(content("log/run"), Some(files.log_run.clone()));
    }

    #[test]
    fn entries_are_unique_and_parents_come_first() {
        let list = entries(&defaults("work", false), true);
        let mut seen_dirs = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for e in &list {
            assert!(seen.insert(e.path().to_path_buf()), "duplicate {e:?}");
            let parent = e.path().parent().unwrap();
            assert!(
                parent == Path::new("") || seen_dirs.contains(parent),
                "{e:?} before its parent"
            );
            assert!(!crate::layout::is_runtime(e.path()), "{e:?}");
            if let SlotEntry::Dir { path, .. } = e {
                seen_dirs.insert(path.clone());
            }
        }
    }
}
