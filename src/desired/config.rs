//! The configuration file: the only module that knows YAML.
//!
//! Every key is optional and the defaults reproduce the reference image.
//! Unknown keys are an error, and every error names the file, the line and
//! column, and the key (`profiles.declared[0].start`). Environment overrides
//! (cont-init runs with-contenv) are applied after parsing, by
//! [`Config::apply_env`].

pub(crate) mod aliases;
mod bases;
pub mod env;
pub(crate) mod file;
mod said;
mod section;
mod source;
mod values;
mod words;

use std::path::{Path, PathBuf};

use env::{AppEnv, EnvSwitch};
use section::{Section, Sectioned};
use serde::Deserialize;

pub use source::Source;
pub use values::{AbsPath, FileName, MAX_ID, NameGlob, Principal, RelPath, TEMPLATE_MAX};

/// Access policy (docs/security.md, "Policies").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// The reference image's layout: the user owns the trees.
    #[default]
    Compat,
    /// Owners stay root; the user's group gets observe/control access.
    Strict,
}

impl Policy {
    /// The name as the configuration writes it (`compat`, `strict`).
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Compat => "compat",
            Policy::Strict => "strict",
        }
    }
}

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const WORDS: &[(&str, Policy)] = &[("compat", Policy::Compat), ("strict", Policy::Strict)];
        values::one_of(d, WORDS, "`compat` or `strict`")
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    #[serde(deserialize_with = "values::de_user")]
    pub user: Principal,
    /// `None`: the user's primary group (or the same number for a numeric user).
    #[serde(deserialize_with = "values::de_group")]
    pub group: Option<Principal>,
    pub policy: Policy,
    #[serde(rename = "static", deserialize_with = "section::section")]
    pub static_: StaticConfig,
    #[serde(deserialize_with = "section::section")]
    pub scandir: ScandirConfig,
    #[serde(deserialize_with = "section::section")]
    pub profiles: ProfilesConfig,
    #[serde(deserialize_with = "section::section")]
    pub boot_log: BootLogConfig,
    #[serde(deserialize_with = "section::section")]
    pub container: ContainerConfig,
    /// The application's environment switches, read by [`Config::apply_env`].
    #[serde(skip)]
    pub app_env: AppEnv,
    /// Where this configuration came from, for messages about its values.
    #[serde(skip)]
    pub source: Source,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            user: Principal::Name("hermes".into()),
            group: None,
            policy: Policy::Compat,
            static_: StaticConfig::default(),
            scandir: ScandirConfig::default(),
            profiles: ProfilesConfig::default(),
            boot_log: BootLogConfig::default(),
            container: ContainerConfig::default(),
            app_env: AppEnv::default(),
            source: Source::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaticConfig {
    pub servicedirs: AbsPath,
    #[serde(deserialize_with = "values::list")]
    pub skip: Vec<NameGlob>,
}

impl Default for StaticConfig {
    fn default() -> Self {
        StaticConfig {
            servicedirs: AbsPath("/run/s6-rc/servicedirs".into()),
            skip: ["s6rc-*", "s6-linux-*"]
                .iter()
                .map(|g| NameGlob::new(g).expect("built-in glob"))
                .collect(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScandirConfig {
    pub path: AbsPath,
}

impl Default for ScandirConfig {
    fn default() -> Self {
        ScandirConfig {
            path: AbsPath("/run/service".into()),
        }
    }
}

/// When a declared profile starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartPolicy {
    /// Follow the profile's state file.
    #[default]
    Auto,
    /// Always published without `down`.
    Always,
    /// Always published with `down`.
    Never,
}

impl<'de> Deserialize<'de> for StartPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const WORDS: &[(&str, StartPolicy)] = &[
            ("auto", StartPolicy::Auto),
            ("always", StartPolicy::Always),
            ("never", StartPolicy::Never),
        ];
        values::one_of(d, WORDS, "one of `auto`, `always`, `never`")
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declared {
    /// Validated by the profiles phase (an invalid name skips that profile
    /// with a reason, it does not fail the whole configuration).
    #[serde(deserialize_with = "values::text")]
    pub name: String,
    #[serde(default)]
    pub start: StartPolicy,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Templates {
    #[serde(default, deserialize_with = "values::de_template")]
    pub run: Option<String>,
    #[serde(default, deserialize_with = "values::de_template")]
    pub finish: Option<String>,
    #[serde(default, deserialize_with = "values::de_template")]
    pub log_run: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfilesConfig {
    pub home: AbsPath,
    pub root: RelPath,
    pub marker: FileName,
    #[serde(deserialize_with = "values::de_slot_prefix")]
    pub slot_prefix: String,
    #[serde(deserialize_with = "values::switch")]
    pub default_slot: bool,
    #[serde(deserialize_with = "section::section_list")]
    pub declared: Vec<Declared>,
    pub state_file: FileName,
    #[serde(deserialize_with = "values::text_list")]
    pub autostart: Vec<String>,
    #[serde(deserialize_with = "values::text_list")]
    pub transient_running: Vec<String>,
    #[serde(deserialize_with = "values::list")]
    pub stale_runtime_files: Vec<FileName>,
    /// `None` (the default): the application's own configuration decides
    /// (see `plan::multiplex`); set, it overrides those files.
    #[serde(deserialize_with = "values::maybe_switch")]
    pub multiplex: Option<bool>,
    #[serde(deserialize_with = "values::switch")]
    pub prune: bool,
    #[serde(deserialize_with = "section::section")]
    pub templates: Templates,
}

impl Default for ProfilesConfig {
    fn default() -> Self {
        ProfilesConfig {
            home: AbsPath("/opt/data".into()),
            root: RelPath("profiles".into()),
            marker: FileName("SOUL.md".into()),
            slot_prefix: "gateway-".into(),
            default_slot: true,
            declared: Vec::new(),
            state_file: FileName("gateway_state.json".into()),
            autostart: vec!["running".into()],
            transient_running: vec!["draining".into(), "degraded".into()],
            stale_runtime_files: vec![
                FileName("gateway.pid".into()),
                FileName("processes.json".into()),
            ],
            multiplex: None,
            prune: false,
            templates: Templates::default(),
        }
    }
}

/// How the container's command is recognized (see `desired::application::command`).
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainerConfig {
    /// The image's entry wrapper: the process whose argv holds it is the
    /// container's command, and what follows it is the program's.
    #[serde(deserialize_with = "values::text")]
    pub wrapper: String,
    /// A dispatcher script peeled off after the wrapper (matched as a suffix).
    #[serde(deserialize_with = "values::text")]
    pub dispatcher: String,
    /// The program's name peeled off next (matched as a file name).
    #[serde(deserialize_with = "values::text")]
    pub program: String,
    /// The program's arguments that ran the default gateway before it was
    /// supervised: such a container gets a `running` state once.
    #[serde(deserialize_with = "values::text_list")]
    pub legacy_command: Vec<String>,
    /// An argument that opts out of that migration.
    #[serde(deserialize_with = "values::text")]
    pub no_supervise_flag: String,
    /// An environment variable that opts out when `1`, `true` or `yes`.
    #[serde(deserialize_with = "values::text")]
    pub no_supervise_env: String,
    /// Commands of containers that need no profile gateways at all.
    #[serde(deserialize_with = "values::text_list")]
    pub dashboard_commands: Vec<String>,
}

impl Default for ContainerConfig {
    fn default() -> Self {
        ContainerConfig {
            wrapper: "main-wrapper.sh".into(),
            dispatcher: "entrypoint-dispatch.sh".into(),
            program: "hermes".into(),
            legacy_command: vec!["gateway".into(), "run".into()],
            no_supervise_flag: "--no-supervise".into(),
            no_supervise_env: "HERMES_GATEWAY_NO_SUPERVISE".into(),
            dashboard_commands: vec!["dashboard".into()],
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootLogConfig {
    pub path: RelPath,
    #[serde(deserialize_with = "values::whole_number")]
    pub rotate_bytes: u64,
}

impl Default for BootLogConfig {
    fn default() -> Self {
        BootLogConfig {
            path: RelPath("logs/container-boot.log".into()),
            rotate_bytes: 262_144,
        }
    }
}

/// What each mapping of the file is, said when something else is found
/// there.
impl Section for Config {
    const EXPECTING: &'static str = "a mapping of configuration keys (user, group, policy, static, \
         scandir, profiles, boot_log, container); an empty file means all defaults";
}

impl Section for StaticConfig {
    const EXPECTING: &'static str =
        "a mapping with the keys servicedirs, skip (leave the key out for the defaults)";
}

impl Section for ScandirConfig {
    const EXPECTING: &'static str =
        "a mapping with the keys path (leave the key out for the defaults)";
}

impl Section for ProfilesConfig {
    const EXPECTING: &'static str = "a mapping with the keys home, root, marker, slot_prefix, \
         default_slot, declared, state_file, autostart, transient_running, stale_runtime_files, \
         multiplex, prune, templates (leave the key out for the defaults)";
}

impl Section for BootLogConfig {
    const EXPECTING: &'static str =
        "a mapping with the keys path, rotate_bytes (leave the key out for the defaults)";
}

impl Section for Templates {
    const EXPECTING: &'static str =
        "a mapping with the keys run, finish, log_run (leave the key out for the defaults)";
}

impl Section for ContainerConfig {
    const EXPECTING: &'static str = "a mapping with the keys wrapper, dispatcher, program, \
         legacy_command, no_supervise_flag, no_supervise_env, dashboard_commands (leave the key \
         out for the defaults)";
}

impl Section for Declared {
    const EXPECTING: &'static str = "a mapping with the keys name and start";
    const REQUIRED: &'static [&'static str] = &["name"];
}

/// A configuration error: always exit 100.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not a regular file of sane size, or an OS error.
    #[error("unable to read {path}: {reason}")]
    Read {
        path: PathBuf,
        reason: crate::fs::input::InputError,
    },
    /// `line`/`column` are 1-based; `key` is the dotted path to the offending key.
    #[error("{path}:{line}:{column}: {key}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("environment variable {var}={value:?}: {message}")]
    Env {
        var: &'static str,
        value: String,
        message: String,
    },
    /// A variable the configuration reads holds bytes that are not UTF-8.
    #[error(transparent)]
    EnvNotText(#[from] env::NotText),
}

/// The with-contenv overrides: each variable and the key it overrides
/// (applied by [`Config::apply_env`]; an empty value means unset).
pub const ENV_OVERRIDES: [(&str, &str); 3] = [
    ("HERMES_HOME", "profiles.home"),
    ("S6_PROFILE_GATEWAY_SCANDIR", "scandir.path"),
    ("GATEWAY_MULTIPLEX_PROFILES", "profiles.multiplex"),
];

impl Config {
    /// Parse YAML text. `path` is only used in messages (a container path).
    pub fn from_yaml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let parse_error = |line, column, key: &str, message: String| ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            key: key.into(),
            message,
        };
        // An empty file (or one holding only comments) means all defaults.
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return Ok(Config {
                source: Source::new(path, text),
                ..Config::default()
            });
        }
        if let Some((line, column)) = words::too_deep(text) {
            return Err(parse_error(
                line,
                column,
                "(file)",
                format!(
                    "nested deeper than {} levels (a configuration needs 4 at most)",
                    words::NESTING_MAX
                ),
            ));
        }
        if let Err(e @ aliases::AliasWork::TooMuch { at, .. }) = aliases::check(text) {
            let (line, column) = at.unwrap_or((1, 1));
            return Err(parse_error(line, column, "(file)", e.to_string()));
        }
        said::listen();
        let de = serde_yaml::Deserializer::from_str(text);
        let read: Result<Sectioned<Config>, _> = serde_path_to_error::deserialize(de);
        let mut cfg = read
            .map_err(|e| {
                let key = e.path().to_string();
                let inner = e.into_inner();
                let (line, column) = inner
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((1, 1));
                let key = if key == "." { "(top level)" } else { &key };
                // What the check that refused the value said; else the
                // YAML itself was refused, as serde_yaml says.
                let message = said::heard().unwrap_or_else(|| inner.to_string());
                parse_error(line, column, key, message)
            })?
            .0;
        cfg.source = Source::new(path, text);
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.into(),
            message,
        };
        let c = &self.container;
        if c.wrapper.is_empty() || c.wrapper.contains('\0') {
            return Err(invalid(
                "container.wrapper",
                "must not be empty (every process would match it)".into(),
            ));
        }
        let env_name_ok = !c.no_supervise_env.is_empty()
            && !c
                .no_supervise_env
                .starts_with(|ch: char| ch.is_ascii_digit())
            && c.no_supervise_env
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !env_name_ok {
            return Err(invalid(
                "container.no_supervise_env",
                format!("not an environment variable name: {:?}", c.no_supervise_env),
            ));
        }
        let t = &self.profiles.templates;
        for (key, template) in [
            ("profiles.templates.run", &t.run),
            ("profiles.templates.finish", &t.finish),
            ("profiles.templates.log_run", &t.log_run),
        ] {
            if let Some(template) = template {
                values::check_rendered_size(template).map_err(|m| invalid(key, m.to_string()))?;
            }
        }
        if self.profiles.autostart.is_empty() {
            log::debug!("profiles.autostart is empty: no profile slot will start");
        }
        self.check_bases(path, &[])
    }

    /// Apply the with-contenv overrides from `env` (a lookup function, so
    /// tests need not touch the process environment), then check the bases
    /// again: an override is held to the same rules as the file.
    pub fn apply_env(
        &mut self,
        env: impl Fn(&str) -> Result<Option<String>, env::NotText>,
    ) -> Result<(), ConfigError> {
        let mut from_env = Vec::new();
        let overrides = [
            ("HERMES_HOME", "profiles.home", env("HERMES_HOME")?),
            (
                "S6_PROFILE_GATEWAY_SCANDIR",
                "scandir.path",
                env("S6_PROFILE_GATEWAY_SCANDIR")?,
            ),
        ];
        for (var, key, value) in overrides {
            let Some(v) = value.filter(|v| !v.is_empty()) else {
                continue;
            };
            let base = values::parse_base(&v).map_err(|message| ConfigError::Env {
                var,
                value: v.clone(),
                message: format!("(overrides {key}) {message}"),
            })?;
            match key {
                "profiles.home" => self.profiles.home = base,
                _ => self.scandir.path = base,
            }
            from_env.push(var);
        }
        // Not an error when unrecognized: the profiles phase warns and
        // falls back to the configuration, as the application does.
        self.app_env = AppEnv {
            // Spelled out: the test harness scrubs every variable named here.
            multiplex: EnvSwitch::from_value(env("GATEWAY_MULTIPLEX_PROFILES")?.as_deref()),
            no_supervise: env::opt_out_set(env(&self.container.no_supervise_env)?.as_deref()),
        };
        let shown = self
            .source
            .path
            .clone()
            .unwrap_or_else(|| "(built-in defaults)".into());
        self.check_bases(&shown, &from_env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(text, Path::new("/etc/s6-reconcile/config.yaml"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("# nothing\n").unwrap();
        assert_eq!(c.user, Principal::Name("hermes".into()));
        assert_eq!(c.scandir.path.0, Path::new("/run/service"));
        assert!(c.static_.skip.iter().any(|g| g.is_match("s6rc-fdholder")));
        assert!(
            c.static_
                .skip
                .iter()
                .any(|g| g.is_match("s6-linux-init-shutdownd"))
        );
        assert!(!c.static_.skip.iter().any(|g| g.is_match("nginx")));
    }

    #[test]
    fn numbers_and_names() {
        let c = parse("user: 10000\ngroup: \"2000\"\npolicy: strict\n").unwrap();
        assert_eq!(c.user, Principal::Id(10000));
        assert_eq!(c.group, Some(Principal::Id(2000)));
        assert_eq!(c.policy, Policy::Strict);
    }

    #[test]
    fn unknown_key_names_file_line_column_and_key() {
        let e = parse("user: hermes\nstatic:\n  servicedirs: /x\n  skp: []\n").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("/etc/s6-reconcile/config.yaml:4:3: static.skp: unknown field `skp`"),
            "{msg}"
        );
    }

    /// Each check says what it expected and what it found in the
    /// configuration's words, at the value or the key it refuses; serde's
    /// own text is never rewritten.
    #[test]
    fn refusals_are_said_where_the_value_is_checked() {
        let file = "/etc/s6-reconcile/config.yaml";
        for (yaml, want) in [
            (
                "profiles:\n  prune: 3\n",
                "2:10: profiles.prune: expected true or false, found 3",
            ),
            (
                "profiles:\n  multiplex: maybe\n",
                "2:14: profiles.multiplex: expected true or false, found the string \"maybe\"",
            ),
            (
                "profiles:\n  autostart: running\n",
                "2:14: profiles.autostart: expected a list, found the string \"running\"",
            ),
            (
                "profiles:\n  home: {a: 1}\n",
                "2:9: profiles.home: expected an absolute path, found a mapping or a list",
            ),
            (
                "container:\n  program: [a]\n",
                "2:12: container.program: expected a string, found a mapping or a list",
            ),
            (
                "boot_log:\n  rotate_bytes: -1\n",
                "2:17: boot_log.rotate_bytes: expected a whole number (0 or more, without a \
                 unit), found -1",
            ),
            (
                "scandir: [x]\n",
                "1:10: scandir: expected a mapping with the keys path (leave the key out for \
                 the defaults), found a list",
            ),
            (
                "policy: lax\n",
                "1:9: policy: unknown variant `lax`, expected `compat` or `strict`",
            ),
            (
                "profiles:\n  declared:\n    - {start: never}\n",
                "3:7: profiles.declared[0]: missing field `name`",
            ),
            (
                "scandir:\n  pth: /x\n",
                "2:3: scandir.pth: unknown field `pth`, expected `path`",
            ),
            (
                "{user: a, policy: compat, user: b}\n",
                "1:27: user: duplicate key (given twice)",
            ),
            (
                "profiles: {prune: true,\n  \"prune\": false}\n",
                "2:3: profiles.prune: duplicate key (given twice)",
            ),
            (
                "profiles:\n  declared:\n  - name: a\n    name: b\n",
                "4:5: profiles.declared[0].name: duplicate key (given twice)",
            ),
        ] {
            let msg = parse(yaml).unwrap_err().to_string();
            assert_eq!(msg, format!("{file}:{want}"), "{yaml:?}");
        }
    }

    #[test]
    fn bad_glob_is_an_error_with_key() {
        let e = parse("static:\n  skip: [\"s6rc-*\", \"[oops\"]\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(":2:"), "{msg}");
        assert!(msg.contains("static.skip[1]"), "{msg}");
        assert!(msg.contains("bad glob \"[oops\""), "{msg}");
    }

    #[test]
    fn checked_values_are_located_at_the_value() {
        let at = |text: &str| {
            let msg = parse(text).unwrap_err().to_string();
            msg.split(": ").next().unwrap().to_string()
        };
        let file = "/etc/s6-reconcile/config.yaml";
        assert_eq!(
            at("static:\n  skip:\n    - \"s6rc-*\"\n    - \"a[b\"\n"),
            format!("{file}:4:7")
        );
        assert_eq!(
            at("profiles:\n  marker: SOUL.md\n  home: relative\n"),
            format!("{file}:3:9")
        );
        assert_eq!(
            at("profiles:\n  state_file: x\n  root: /abs\n"),
            format!("{file}:3:9")
        );
        assert_eq!(at("profiles:\n  marker: a/b\n"), format!("{file}:2:11"));
    }

    #[test]
    fn invalid_yaml_has_location() {
        let e = parse("user: [hermes\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("/etc/s6-reconcile/config.yaml:"), "{msg}");
    }

    #[test]
    fn relative_scandir_is_refused() {
        let e = parse("scandir:\n  path: run/service\n").unwrap_err();
        assert!(e.to_string().contains("scandir.path"), "{e}");
        assert!(e.to_string().contains("expected an absolute path"), "{e}");
    }

    /// A template that could render past the read-back limit is refused,
    /// naming the template; one just within the bound is accepted.
    #[test]
    fn templates_that_could_render_past_the_read_back_limit_are_refused() {
        let yaml = |key: &str, t: &str| format!("profiles:\n  templates:\n    {key}: \"{t}\"\n");
        let many = "{home}".repeat(64 * 1024 / 6);
        let e = parse(&yaml("log_run", &many)).unwrap_err().to_string();
        assert!(e.contains("profiles.templates.log_run"), "{e}");
        assert!(e.contains("10922 placeholders"), "{e}");
        assert!(e.contains("may hold at most 240"), "{e}");
        // 255 placeholders in a short template: 255 * 4096 < 1 MiB.
        let fine = "{user}".repeat(255);
        let c = parse(&yaml("run", &fine)).unwrap();
        assert_eq!(c.profiles.templates.run.as_deref(), Some(fine.as_str()));
        let e = parse(&yaml("finish", &"{profile}".repeat(257))).unwrap_err();
        assert!(e.to_string().contains("profiles.templates.finish"), "{e}");
    }

    #[test]
    fn bad_start_policy_names_key() {
        let e = parse("profiles:\n  declared:\n    - {name: a, start: sometimes}\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("profiles.declared[0].start"), "{msg}");
        assert!(msg.contains(":3:"), "{msg}");
    }

    #[test]
    fn env_overrides() {
        let mut c = Config::default();
        c.apply_env(|k| {
            Ok(match k {
                "HERMES_HOME" => Some("/data".into()),
                "S6_PROFILE_GATEWAY_SCANDIR" => Some("/run/gw".into()),
                "GATEWAY_MULTIPLEX_PROFILES" => Some("Yes".into()),
                "HERMES_GATEWAY_NO_SUPERVISE" => Some("TRUE".into()),
                _ => None,
            })
        })
        .unwrap();
        assert_eq!(c.profiles.home.0, Path::new("/data"));
        assert_eq!(c.scandir.path.0, Path::new("/run/gw"));
        assert_eq!(c.app_env.multiplex, EnvSwitch::Set(true));
        assert!(c.app_env.no_supervise);
        assert_eq!(c.profiles.multiplex, None, "the key stays unset");
    }

    #[test]
    fn multiplex_env_is_never_a_configuration_error() {
        let mut c = parse("profiles:\n  multiplex: true\n").unwrap();
        assert_eq!(c.profiles.multiplex, Some(true));
        c.apply_env(|k| Ok((k == "GATEWAY_MULTIPLEX_PROFILES").then(String::new)))
            .unwrap();
        assert_eq!(c.app_env.multiplex, EnvSwitch::Unset);
        c.apply_env(|k| Ok((k == "GATEWAY_MULTIPLEX_PROFILES").then(|| "maybe".into())))
            .unwrap();
        assert_eq!(c.app_env.multiplex, EnvSwitch::Unrecognized("maybe".into()));
    }

    #[test]
    fn container_keys() {
        let c = parse(
            "container:\n  wrapper: start.sh\n  dashboard_commands: [ui]\n  no_supervise_env: APP_FG\n",
        )
        .unwrap();
        assert_eq!(c.container.wrapper, "start.sh");
        assert_eq!(c.container.dashboard_commands, ["ui"]);
        assert_eq!(c.container.legacy_command, ["gateway", "run"]);
        let mut c = c;
        c.apply_env(|k| Ok((k == "APP_FG").then(|| "yes".into())))
            .unwrap();
        assert!(c.app_env.no_supervise);
        // A value that is not text is refused, named, not read as unset.
        let e = c
            .apply_env(|k| match k {
                "APP_FG" => Err(env::NotText {
                    var: k.into(),
                    value: "\\xff".into(),
                }),
                _ => Ok(None),
            })
            .unwrap_err();
        assert!(e.to_string().contains("APP_FG is not valid UTF-8"), "{e}");
        let e = parse("container:\n  wrapper: \"\"\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("container.wrapper: must not be empty"),
            "{e}"
        );
        let e = parse("container:\n  no_supervise_env: \"A-B\"\n").unwrap_err();
        assert!(e.to_string().contains("container.no_supervise_env"), "{e}");
    }
}
