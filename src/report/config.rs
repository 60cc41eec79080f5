//! `reconcile --print-config`: the configuration in effect (the file, then
//! the environment overrides) written back as YAML that `--config` accepts,
//! every key spelled out, with where the values came from and the resolved
//! user and group as comments.
//!
//! Written by hand rather than through the YAML crate (which stays behind
//! `desired::config`): strings that could be read as anything else are written as
//! JSON strings, which are valid YAML double-quoted scalars.

use std::fmt::Write as _;
use std::path::Path;

use crate::desired::accounts::Account;
use crate::desired::config::env::{EnvSwitch, MULTIPLEX_ENV};
use crate::desired::config::{Config, ENV_OVERRIDES, Principal, StartPolicy};

/// The whole text printed.
pub fn render(
    cfg: &Config,
    account: &Account,
    env: &crate::desired::config::env::Lookup<'_>,
) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# The configuration in effect (reconcile --print-config)."
    );
    let _ = match &cfg.source.path {
        Some(p) => writeln!(o, "# file: {}", p.display()),
        None => writeln!(o, "# file: none, the built-in defaults"),
    };
    // GATEWAY_MULTIPLEX_PROFILES counts only when it holds a boolean word
    // (otherwise the profiles phase warns and ignores it).
    let overrides: Vec<(&str, &str)> = ENV_OVERRIDES
        .iter()
        .copied()
        .filter(|(var, _)| match *var {
            MULTIPLEX_ENV => matches!(cfg.app_env.multiplex, EnvSwitch::Set(_)),
            _ => env(var).ok().flatten().is_some_and(|v| !v.is_empty()),
        })
        .collect();
    if overrides.is_empty() {
        let _ = writeln!(o, "# environment: no overrides");
    }
    for (var, key) in &overrides {
        let _ = writeln!(o, "# environment: {var} overrides {key}");
    }
    if let EnvSwitch::Unrecognized(v) = &cfg.app_env.multiplex {
        let _ = writeln!(
            o,
            "# environment: {MULTIPLEX_ENV}={} is not a boolean word: ignored",
            quoted(v)
        );
    }
    if cfg.app_env.no_supervise {
        let _ = writeln!(
            o,
            "# environment: {} is set: the legacy command is not migrated \
             (not a configuration key)",
            cfg.container.no_supervise_env
        );
    }
    let _ = writeln!(o, "{}", principals(cfg, account));
    let comment = |key: &str| {
        overrides
            .iter()
            .find(|(_, k)| *k == key)
            .map(|(var, _)| format!("  # {var}"))
            .unwrap_or_default()
    };
    let _ = writeln!(o, "user: {}", principal(&cfg.user));
    let _ = writeln!(
        o,
        "group: {}",
        cfg.group.as_ref().map_or("~".into(), principal)
    );
    let _ = writeln!(o, "policy: {}", cfg.policy.as_str());
    let st = &cfg.static_;
    let _ = writeln!(o, "static:");
    let _ = writeln!(o, "  servicedirs: {}", path(&st.servicedirs.0));
    let skip: Vec<&str> = st.skip.iter().map(|g| g.text.as_str()).collect();
    let _ = writeln!(o, "  skip: {}", list(&skip));
    let _ = writeln!(o, "scandir:");
    let _ = writeln!(
        o,
        "  path: {}{}",
        path(&cfg.scandir.path.0),
        comment("scandir.path")
    );
    profiles(&mut o, cfg, &comment);
    let _ = writeln!(o, "boot_log:");
    let _ = writeln!(o, "  path: {}", path(&cfg.boot_log.path.0));
    let _ = writeln!(o, "  rotate_bytes: {}", cfg.boot_log.rotate_bytes);
    container(&mut o, cfg);
    o
}

fn container(o: &mut String, cfg: &Config) {
    let c = &cfg.container;
    let strings = |v: &[String]| list(&v.iter().map(String::as_str).collect::<Vec<_>>());
    let _ = writeln!(o, "container:");
    let _ = writeln!(o, "  wrapper: {}", scalar(&c.wrapper));
    let _ = writeln!(o, "  dispatcher: {}", scalar(&c.dispatcher));
    let _ = writeln!(o, "  program: {}", scalar(&c.program));
    let _ = writeln!(o, "  legacy_command: {}", strings(&c.legacy_command));
    let _ = writeln!(o, "  no_supervise_flag: {}", scalar(&c.no_supervise_flag));
    let _ = writeln!(o, "  no_supervise_env: {}", scalar(&c.no_supervise_env));
    let _ = writeln!(
        o,
        "  dashboard_commands: {}",
        strings(&c.dashboard_commands)
    );
}

fn profiles(o: &mut String, cfg: &Config, comment: &dyn Fn(&str) -> String) {
    let p = &cfg.profiles;
    let strings = |v: &[String]| list(&v.iter().map(String::as_str).collect::<Vec<_>>());
    let _ = writeln!(o, "profiles:");
    let _ = writeln!(o, "  home: {}{}", path(&p.home.0), comment("profiles.home"));
    let _ = writeln!(o, "  root: {}", path(&p.root.0));
    let _ = writeln!(o, "  marker: {}", scalar(&p.marker.0));
    let _ = writeln!(o, "  slot_prefix: {}", scalar(&p.slot_prefix));
    let _ = writeln!(o, "  default_slot: {}", p.default_slot);
    if p.declared.is_empty() {
        let _ = writeln!(o, "  declared: []");
    } else {
        let _ = writeln!(o, "  declared:");
        for d in &p.declared {
            let start = match d.start {
                StartPolicy::Auto => "auto",
                StartPolicy::Always => "always",
                StartPolicy::Never => "never",
            };
            let _ = writeln!(o, "    - {{name: {}, start: {start}}}", scalar(&d.name));
        }
    }
    let _ = writeln!(o, "  state_file: {}", scalar(&p.state_file.0));
    let _ = writeln!(o, "  autostart: {}", strings(&p.autostart));
    let _ = writeln!(o, "  transient_running: {}", strings(&p.transient_running));
    let stale: Vec<&str> = p.stale_runtime_files.iter().map(|f| f.0.as_str()).collect();
    let _ = writeln!(o, "  stale_runtime_files: {}", list(&stale));
    // The environment's boolean wins over the key (and both over the
    // application's own files), so writing it into the key means the same.
    let multiplex = match cfg.app_env.multiplex {
        EnvSwitch::Set(b) => Some(b),
        _ => p.multiplex,
    };
    let _ = writeln!(
        o,
        "  multiplex: {}{}",
        multiplex.map_or("~".into(), |b| b.to_string()),
        comment("profiles.multiplex")
    );
    let _ = writeln!(o, "  prune: {}", p.prune);
    let _ = writeln!(o, "  templates:");
    for (key, text) in [
        ("run", &p.templates.run),
        ("finish", &p.templates.finish),
        ("log_run", &p.templates.log_run),
    ] {
        match text {
            None => {
                let _ = writeln!(o, "    {key}: ~");
            }
            Some(t) => template(o, key, t),
        }
    }
}

/// The comment lines on the user and group as resolved.
fn principals(cfg: &Config, a: &Account) -> String {
    let user = match &cfg.user {
        Principal::Name(n) => format!("# user {n}: uid {} (from /etc/passwd)", a.uid),
        Principal::Id(n) => format!("# user {n}: uid {n} (a number, not looked up)"),
    };
    let group = match &cfg.group {
        Some(Principal::Name(n)) => format!("# group {n}: gid {} (from /etc/group)", a.gid),
        Some(Principal::Id(n)) => format!("# group {n}: gid {n} (a number, not looked up)"),
        None => match &cfg.user {
            Principal::Name(n) => format!(
                "# group ~: gid {}, the primary group of {n} (from /etc/passwd)",
                a.gid
            ),
            Principal::Id(n) => format!("# group ~: gid {n}, the same number as the user"),
        },
    };
    format!("{user}\n{group}")
}

/// A template: a block literal when that reads back exactly, else a
/// quoted string.
fn template(o: &mut String, key: &str, text: &str) {
    let block_safe = text.ends_with('\n')
        && !text.ends_with("\n\n")
        && !text.starts_with([' ', '\n'])
        && text.chars().all(|c| c == '\n' || !c.is_control());
    if !block_safe {
        let _ = writeln!(o, "    {key}: {}", quoted(text));
        return;
    }
    let _ = writeln!(o, "    {key}: |");
    for line in text.lines() {
        if line.is_empty() {
            o.push('\n');
        } else {
            let _ = writeln!(o, "      {line}");
        }
    }
}

fn principal(p: &Principal) -> String {
    match p {
        Principal::Name(n) => scalar(n),
        Principal::Id(n) => n.to_string(),
    }
}

fn path(p: &Path) -> String {
    scalar(&p.to_string_lossy())
}

fn list(items: &[&str]) -> String {
    let items: Vec<String> = items.iter().map(|s| scalar(s)).collect();
    format!("[{}]", items.join(", "))
}

/// A string as a plain YAML scalar when it cannot be read as anything
/// else (a number, a boolean, null, an indicator), else quoted.
fn scalar(s: &str) -> String {
    let plain = s
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'/' || b == b'_')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if plain { s.to_string() } else { quoted(s) }
}

/// A double-quoted scalar (JSON's escapes are YAML's); the characters the
/// human report escapes ([`crate::report::render::hidden`]: DEL, C1, bidi and
/// invisible format characters) too, which JSON leaves as they are.
fn quoted(s: &str) -> String {
    let json = serde_json::to_string(s).expect("a string serializes");
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match u32::from(c) {
            _ if !crate::report::render::hidden(c) => out.push(c),
            n if n <= 0xffff => out.push_str(&format!("\\u{n:04x}")),
            n => out.push_str(&format!("\\U{n:08x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_that_read_as_something_else_are_quoted() {
        for (s, want) in [
            ("hermes", "hermes"),
            ("/run/service", "/run/service"),
            ("gateway-", "gateway-"),
            ("SOUL.md", "SOUL.md"),
            ("s6rc-*", "\"s6rc-*\""),
            ("yes", "\"yes\""),
            ("Off", "\"Off\""),
            ("null", "\"null\""),
            ("1x", "\"1x\""),
            ("-a", "\"-a\""),
            ("a: b", "\"a: b\""),
            ("", "\"\""),
            (".hidden", "\".hidden\""),
            ("a\u{202e}b\u{7f}", "\"a\\u202eb\\u007f\""),
        ] {
            assert_eq!(scalar(s), want, "{s:?}");
        }
    }
}
