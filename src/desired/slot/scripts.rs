//! A slot's three scripts (docs/configuration.md, "The keys"): the defaults and the operator's
//! templates, prepared once per run ([`Scripts`]) and rendered per slot.

use std::borrow::Cow;

use crate::desired::config::Templates;

/// The three scripts of a slot. A script that is the same for every slot
/// (the default `finish`) is borrowed, not copied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotFiles {
    pub run: Cow<'static, str>,
    pub finish: Cow<'static, str>,
    pub log_run: Cow<'static, str>,
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
///
/// To render many slots, prepare a [`Scripts`] once.
pub fn render(
    profile: &str,
    is_default: bool,
    user: &str,
    home: &str,
    templates: &Templates,
) -> SlotFiles {
    Scripts::new(user, home, templates).render(profile, is_default)
}

/// The scripts of every slot of one run, prepared once: the user, the
/// home and the templates are the same for all of them, so each template
/// is split once into text (with `{user}` and `{home}` already in it) and
/// the places where the profile goes; a slot's script is then one
/// allocation and a few copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scripts {
    run: Template,
    finish: Template,
    log_run: Template,
}

impl Scripts {
    pub fn new(user: &str, home: &str, templates: &Templates) -> Scripts {
        // The defaults get the values shell-quoted; a template the values
        // as they are.
        let (user_q, home_q) = (sh_quote(user), sh_quote(home));
        let pick = |t: &Option<String>, default: &'static str| match t {
            Some(t) => Template::compile(t, user, home, false),
            None => Template::compile(default, &user_q, &home_q, true),
        };
        Scripts {
            run: pick(&templates.run, DEFAULT_RUN),
            finish: pick(&templates.finish, DEFAULT_FINISH),
            log_run: pick(&templates.log_run, DEFAULT_LOG_RUN),
        }
    }

    /// The three scripts of `profile`'s slot.
    pub fn render(&self, profile: &str, is_default: bool) -> SlotFiles {
        SlotFiles {
            run: self.run.render(profile, is_default),
            finish: self.finish.render(profile, is_default),
            log_run: self.log_run.render(profile, is_default),
        }
    }
}

/// A template split at its placeholders, `{user}` and `{home}` filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Template {
    /// The whole text when it has no per-profile placeholder: every slot
    /// shares it.
    constant: Option<&'static str>,
    pieces: Vec<Piece>,
    /// Bytes of text in `pieces`.
    text_len: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// The profile name as it is (`{profile}`).
    Profile,
    /// The profile name as one shell word (defaults only: `{profile_q}`).
    ProfileQuoted,
    /// The gateway command line (defaults only: `{hermes}`).
    Hermes,
}

/// What the defaults can hold besides `{profile}`, `{user}` and `{home}`.
const DEFAULT_ONLY: [(&str, Piece); 2] = [
    ("{profile_q}", Piece::ProfileQuoted),
    ("{hermes}", Piece::Hermes),
];

impl Template {
    /// Split `t` in one left-to-right pass (as docs/configuration.md, "The keys", says of templates:
    /// a value put in is never expanded again). `is_default`: `t` is one of
    /// the defaults, which may also hold `{profile_q}` and `{hermes}`.
    fn compile(t: &str, user: &str, home: &str, is_default: bool) -> Template {
        let mut pieces = Vec::new();
        let mut text = String::with_capacity(t.len());
        let mut rest = t;
        'outer: while let Some(i) = rest.find('{') {
            text.push_str(&rest[..i]);
            let tail = &rest[i..];
            for (key, value) in [("{user}", user), ("{home}", home)] {
                if let Some(after) = tail.strip_prefix(key) {
                    text.push_str(value);
                    rest = after;
                    continue 'outer;
                }
            }
            let extra = DEFAULT_ONLY.iter().filter(|_| is_default);
            for (key, piece) in std::iter::once(&("{profile}", Piece::Profile)).chain(extra) {
                if let Some(after) = tail.strip_prefix(key) {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(piece.clone());
                    rest = after;
                    continue 'outer;
                }
            }
            text.push('{');
            rest = &tail[1..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        let constant = match pieces.as_slice() {
            [] => Some(""),
            // The default `finish`: no value in it at all.
            [Piece::Text(s)] if is_default && s == DEFAULT_FINISH => Some(DEFAULT_FINISH),
            _ => None,
        };
        let text_len = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(s) => s.len(),
                _ => 0,
            })
            .sum();
        Template {
            constant,
            pieces,
            text_len,
        }
    }

    fn render(&self, profile: &str, is_default: bool) -> Cow<'static, str> {
        if let Some(c) = self.constant {
            return Cow::Borrowed(c);
        }
        let quoted = sh_quote(profile);
        let mut out = String::with_capacity(self.text_len + 4 * (quoted.len() + 30));
        for p in &self.pieces {
            match p {
                Piece::Text(s) => out.push_str(s),
                Piece::Profile => out.push_str(profile),
                Piece::ProfileQuoted => out.push_str(&quoted),
                // The default profile runs plain `hermes`, never `-p default`.
                Piece::Hermes if is_default => out.push_str("hermes gateway run --replace"),
                Piece::Hermes => {
                    out.push_str("hermes -p ");
                    out.push_str(&quoted);
                    out.push_str(" gateway run --replace");
                }
            }
        }
        Cow::Owned(out)
    }
}

/// `s` as one shell word: unchanged when it is made of characters that are
/// never special, otherwise single-quoted.
fn sh_quote(s: &str) -> Cow<'_, str> {
    let plain = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'_' | b'-' | b'.' | b'/' | b':' | b'@' | b'%' | b'+' | b'=' | b','
                )
        });
    if plain {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("'{}'", s.replace('\'', r"'\''")))
    }
}

/// The default `run`: `{hermes}` is `hermes gateway run --replace` for the
/// default profile, `hermes -p <profile> gateway run --replace` otherwise.
const DEFAULT_RUN: &str = r#"#!/command/with-contenv sh
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
"#;

const DEFAULT_FINISH: &str = r#"#!/bin/sh
# s6-reconcile: $1 is the run script's exit code (256 if a signal killed it,
# then $2 is the signal). 0 (intentional stop) and 78 (EX_CONFIG) exit 125,
# which tells s6-supervise not to restart; anything else restarts.
case "$1" in
  0|78) exit 125 ;;
esac
exit 0
"#;

const DEFAULT_LOG_RUN: &str = r#"#!/command/with-contenv sh
# s6-reconcile: logger for profile {profile_q}
# The log dir is in the user's volume: create it and clear s6-log's stale
# lock as the user, never as root.
set -e
log_dir="${HERMES_HOME:-/opt/data}/logs/gateways/{profile_q}"
if [ "$(id -u)" = 0 ]; then
  s6-setuidgid {user} mkdir -p "$log_dir"
  s6-setuidgid {user} rm -f "$log_dir/lock"
  exec s6-setuidgid {user} s6-log 1 n10 s1000000 T "$log_dir"
fi
mkdir -p "$log_dir"
rm -f "$log_dir/lock"
exec s6-log 1 n10 s1000000 T "$log_dir"
"#;

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::process::{Command, Output};

    /// The default scripts of `profile` for user hermes in /opt/data.
    pub(in crate::desired::slot) fn defaults(profile: &str, is_default: bool) -> SlotFiles {
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
                        std::fs::write(&p, &**script).unwrap();
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
    fn a_template_keeps_the_defaults_own_placeholders_as_written() {
        let t = Templates {
            run: Some("{hermes} {profile_q} {profile}".into()),
            finish: Some("no placeholder".into()),
            ..Templates::default()
        };
        let scripts = Scripts::new("{profile}", "/h", &t);
        let f = scripts.render("p", false);
        assert_eq!(f.run, "{hermes} {profile_q} p");
        assert_eq!(f.finish, "no placeholder");
        // One preparation renders every slot the same as one call each.
        assert_eq!(
            scripts.render("q", true),
            render("q", true, "{profile}", "/h", &t)
        );
        let f = render("d", true, "hermes", "/opt/data", &Templates::default());
        assert!(matches!(f.finish, Cow::Borrowed(_)), "shared, not copied");
        assert!(f.run.contains("exec s6-setuidgid hermes hermes gateway run --replace\nfi\nexec hermes gateway run --replace\n"));
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
}
