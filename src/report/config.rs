//! `reconcile --print-config`: the configuration in effect (the file, then
//! the environment overrides) written back as YAML that `--config` accepts,
//! every key spelled out, with where the values came from and the resolved
//! user and group as comments.
//!
//! The values are a `Serialize` view written by serde_yaml (which quotes
//! whatever would read back as something else); where each came from (the
//! file, the defaults, an environment override) is the comment block above
//! them, which `--config` ignores. A value holding a character that could
//! reorder or hide what the operator reads (bidirectional, invisible,
//! control) is never written raw: serde_yaml cannot escape it, so the
//! values are then written by serde_json with those characters escaped
//! (JSON is YAML's flow style), docs/configuration.md.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::desired::accounts::Account;
use crate::desired::config::env::{EnvSwitch, MULTIPLEX_ENV};
use crate::desired::config::{Config, ContainerConfig, ENV_OVERRIDES, Principal, StartPolicy};

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
    let view = view(cfg);
    let yaml = serde_yaml::to_string(&view).expect("the configuration serializes");
    // serde_yaml writes the characters YAML counts as printable as they
    // are, bidirectional overrides and invisible ones included; such a
    // value would reorder or hide what the operator reads.
    if !yaml
        .chars()
        .any(|c| c != '\n' && crate::report::render::hidden(c))
    {
        o.push_str(&yaml);
        return o;
    }
    o.push_str(
        "# A value holds a control, bidirectional or invisible character: the values\n\
         # are written in YAML's flow style (JSON's syntax), those characters escaped.\n",
    );
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Escaping::default());
    view.serialize(&mut ser)
        .expect("the configuration serializes");
    o.push_str(std::str::from_utf8(&out).expect("serde_json writes UTF-8"));
    o.push('\n');
    o
}

/// serde_json's pretty layout, with every [`crate::report::render::hidden`]
/// character of a string escaped (JSON's encoder escapes only those below
/// U+0020): `\u202e` as in JSON, and `\U000e0001` past U+FFFF, YAML's own
/// escape (YAML refuses JSON's surrogate pairs). What is written is YAML
/// that `--config` reads back as the same values.
#[derive(Default)]
struct Escaping(serde_json::ser::PrettyFormatter<'static>);

impl serde_json::ser::Formatter for Escaping {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut rest = fragment;
        while let Some((i, c)) = rest
            .char_indices()
            .find(|&(_, c)| crate::report::render::hidden(c))
        {
            w.write_all(&rest.as_bytes()[..i])?;
            match u32::from(c) {
                n if n <= 0xffff => write!(w, "\\u{n:04x}")?,
                n => write!(w, "\\U{n:08x}")?,
            }
            rest = &rest[i + c.len_utf8()..];
        }
        w.write_all(rest.as_bytes())
    }
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
}

/// The configuration as `--config` reads it, every key spelled out.
#[derive(Serialize)]
struct View<'a> {
    user: PrincipalView<'a>,
    group: Option<PrincipalView<'a>>,
    policy: &'static str,
    #[serde(rename = "static")]
    static_: StaticView<'a>,
    scandir: ScandirView,
    profiles: ProfilesView<'a>,
    boot_log: BootLogView,
    container: &'a ContainerConfig,
}

#[derive(Serialize)]
#[serde(untagged)]
enum PrincipalView<'a> {
    Name(&'a str),
    Id(u32),
}

#[derive(Serialize)]
struct StaticView<'a> {
    servicedirs: String,
    skip: Vec<&'a str>,
}

#[derive(Serialize)]
struct ScandirView {
    path: String,
}

#[derive(Serialize)]
struct ProfilesView<'a> {
    home: String,
    root: String,
    marker: &'a str,
    slot_prefix: &'a str,
    default_slot: bool,
    declared: Vec<DeclaredView<'a>>,
    state_file: &'a str,
    autostart: &'a [String],
    transient_running: &'a [String],
    stale_runtime_files: Vec<&'a str>,
    multiplex: Option<bool>,
    prune: bool,
    templates: TemplatesView<'a>,
}

#[derive(Serialize)]
struct DeclaredView<'a> {
    name: &'a str,
    start: &'static str,
}

#[derive(Serialize)]
struct TemplatesView<'a> {
    run: Option<&'a str>,
    finish: Option<&'a str>,
    log_run: Option<&'a str>,
}

#[derive(Serialize)]
struct BootLogView {
    path: String,
    rotate_bytes: u64,
}

fn principal(p: &Principal) -> PrincipalView<'_> {
    match p {
        Principal::Name(n) => PrincipalView::Name(n),
        Principal::Id(n) => PrincipalView::Id(*n),
    }
}

fn view(cfg: &Config) -> View<'_> {
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let p = &cfg.profiles;
    View {
        user: principal(&cfg.user),
        group: cfg.group.as_ref().map(principal),
        policy: cfg.policy.as_str(),
        static_: StaticView {
            servicedirs: path(&cfg.static_.servicedirs.0),
            skip: cfg.static_.skip.iter().map(|g| g.text.as_str()).collect(),
        },
        scandir: ScandirView {
            path: path(&cfg.scandir.path.0),
        },
        profiles: ProfilesView {
            home: path(&p.home.0),
            root: path(&p.root.0),
            marker: &p.marker.0,
            slot_prefix: &p.slot_prefix,
            default_slot: p.default_slot,
            declared: p
                .declared
                .iter()
                .map(|d| DeclaredView {
                    name: &d.name,
                    start: match d.start {
                        StartPolicy::Auto => "auto",
                        StartPolicy::Always => "always",
                        StartPolicy::Never => "never",
                    },
                })
                .collect(),
            state_file: &p.state_file.0,
            autostart: &p.autostart,
            transient_running: &p.transient_running,
            stale_runtime_files: p.stale_runtime_files.iter().map(|f| f.0.as_str()).collect(),
            // The environment's boolean wins over the key (and both over
            // the application's own files), so writing it into the key
            // means the same.
            multiplex: match cfg.app_env.multiplex {
                EnvSwitch::Set(b) => Some(b),
                _ => p.multiplex,
            },
            prune: p.prune,
            templates: TemplatesView {
                run: p.templates.run.as_deref(),
                finish: p.templates.finish.as_deref(),
                log_run: p.templates.log_run.as_deref(),
            },
        },
        boot_log: BootLogView {
            path: path(&cfg.boot_log.path.0),
            rotate_bytes: cfg.boot_log.rotate_bytes,
        },
        container: &cfg.container,
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
