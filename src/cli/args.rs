//! The command line: clap's raw arguments ([`Args`]) and the validated
//! settings the library runs on ([`Settings`]). Nothing here touches the tree.

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};

pub use crate::desired::model::{Mode, Phase};
use crate::report::render::{Style, Verbosity};

/// Output format of the plan and the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// When the human report is coloured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// When stdout is a terminal and NO_COLOR is unset or empty.
    Auto,
    Always,
    Never,
}

const ABOUT: &str = "Reconcile an s6-overlay container's supervision tree at boot.";

const LONG_ABOUT: &str = "\
Reconcile an s6-overlay container's supervision tree at boot.

Run once, as root, from cont-init (or an s6-rc oneshot). It
  * opens the static services' supervise/ and event/ trees to one
    unprivileged user (default hermes, 10000:10000), so that user can run
    s6-svc, s6-svstat and s6-svwait; s6rc-* and s6-linux-* stay root-only;
  * lets that user reach the scandir and ask s6-svscan to rescan;
  * restores the per-profile service slots the persistent volume declares.

Without --plan or --check it applies the changes. Every run computes one plan
from the configuration and the tree on disk; --plan prints it, apply executes
exactly it.";

const AFTER_HELP: &str = "\
Exit codes:
  0    done, or nothing to change
  1    partial failure: some items failed, every other item was still done
  3    --check found drift
  100  bad usage or bad configuration
  111  fatal system error before anything could be done, or another apply
       still held the apply lock after --lock-wait seconds

Environment (read because cont-init runs with-contenv):
  HERMES_HOME                  overrides profiles.home
  S6_PROFILE_GATEWAY_SCANDIR   overrides scandir.path
  GATEWAY_MULTIPLEX_PROFILES   multiplexing, above profiles.multiplex and the application's
                               gateway.json/config.yaml (1/true/yes/on, 0/false/no/off;
                               anything else: a warning, the layers below decide)
  HERMES_GATEWAY_NO_SUPERVISE  1/true/yes: no legacy `gateway run` migration
  S6_VERBOSITY                 s6-overlay's verbosity, used when neither -v nor -q is
                               given: 0 errors only (a successful apply prints nothing
                               on stdout), 1 warnings (an apply prints only warnings,
                               errors and the per-profile lines), 2 (the default) those
                               and one summary line, 3 the whole report and info
                               logging, 4 debug, 5 trace. An apply's human lines all
                               start with `reconcile:`. --plan and --check always print
                               the whole plan as it was; --format json is never
                               shortened nor prefixed.
  NO_COLOR                     set and not empty: no colour unless --color always
  RUST_LOG                     log filter (env_logger syntax)

Examples:
  reconcile --plan                         preview on this container
  reconcile --check --format json          CI drift check
  reconcile --plan --root ./tree           preview on a copy of a root
  reconcile --plan --tree tree.yaml        preview on a tree description (no root needed)
  reconcile snapshot --root ./tree         describe what reconcile observes (YAML)
  reconcile materialize tree.yaml ./tree   build a described tree (as root)
  reconcile audit --root ./image           who can observe, control, define each service
  reconcile --plan --diff                  why each slot changes, file by file
  reconcile --print-config                 the configuration in effect, as YAML
  reconcile --runtime                      one runtime pass (the runtime service's run)

Files (an apply as root): /run/s6-reconcile/boot.json, the last boot apply's JSON
report; /run/s6-reconcile/last.json, the last --runtime pass's, with its
\"sequence\" (docs/runtime.md).";

/// Raw command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "reconcile",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true,
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Print what apply would change; change nothing.
    #[arg(long, conflicts_with = "check")]
    pub plan: bool,

    /// Like --plan, but exit 3 when anything would change.
    #[arg(long)]
    pub check: bool,

    /// Configuration file [default: <root>/etc/s6-reconcile/config.yaml if present,
    /// else built-in defaults]. A relative path is taken from the current directory.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Treat DIR as the container's / (fixtures, tests, a copy of a root).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// Plan against a tree description (see `reconcile snapshot`) instead
    /// of the disk: no root needed, no other file read; the configuration,
    /// passwd and group come from the description (--config then names a
    /// container path in it). With --plan or --check only.
    #[arg(long, value_name = "FILE", conflicts_with = "root")]
    pub tree: Option<PathBuf>,

    /// Output format of the plan and the report.
    #[arg(long, value_enum, default_value = "human", value_name = "FORMAT")]
    pub format: Format,

    /// Run only this phase; repeatable [default: static, scandir, profiles].
    #[arg(long = "phase", value_enum, value_name = "PHASE", action = ArgAction::Append)]
    pub phases: Vec<Phase>,

    /// An apply prints its whole report (every change, skipped item and
    /// effect), with info logging on stderr (-vv debug, -vvv trace);
    /// S6_VERBOSITY is then ignored.
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// An apply prints only the per-profile lines, warnings and errors
    /// (as S6_VERBOSITY=1); S6_VERBOSITY is then ignored.
    #[arg(short, long)]
    pub quiet: bool,

    /// Colour the human report: changes, warnings and errors
    /// [auto: when stdout is a terminal and NO_COLOR is unset or empty].
    #[arg(long, value_enum, value_name = "WHEN", default_value = "auto")]
    pub color: Color,

    /// With the plan, a unified diff (--- current, +++ planned) of each slot
    /// file that would be created or rewritten; with --format json, a
    /// "diff" field on each such change.
    #[arg(long)]
    pub diff: bool,

    /// Print the configuration in effect (the file, then the environment
    /// overrides) as YAML that --config accepts, with the resolved user and
    /// group as comments; change nothing.
    #[arg(long, conflicts_with_all = ["plan", "check"])]
    pub print_config: bool,

    /// A runtime pass of the profiles phase, as the runtime service runs it
    /// after a profile was created or deleted (docs/runtime.md): publishes
    /// new and changed slots, retires the slots of deleted profiles whatever
    /// `prune` says, leaves unchanged slots, their `down` files, the
    /// profiles' runtime files and the boot log alone. Records its report,
    /// with a sequence number, in /run/s6-reconcile/last.json.
    #[arg(long, conflicts_with = "phases")]
    pub runtime: bool,

    /// How long an apply waits for another apply to finish (they take
    /// turns on /run/s6-reconcile.lock) before giving up with exit 111.
    #[arg(long, value_name = "SECONDS", default_value_t = crate::apply::lock::DEFAULT_WAIT.as_secs())]
    pub lock_wait: u64,
}

/// The tree-description subcommands (docs/tree-format.md).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a description of the tree reconcile observes under the root
    /// (YAML, `format: s6-reconcile-tree`, `version: 1`): the configured
    /// bases, etc/passwd, etc/group and the configuration. Deterministic;
    /// needs only read access to the tree.
    Snapshot {
        /// Treat DIR as the container's /.
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
        /// Configuration file [default: <root>/etc/s6-reconcile/config.yaml
        /// if present]; described at that default path.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Describe only what this phase observes; repeatable [default: all].
        #[arg(long = "phase", value_enum, value_name = "PHASE", action = ArgAction::Append)]
        phases: Vec<Phase>,
    },
    /// Say, per service, whether a user can observe, control and define
    /// it, and every path to root (docs/audit.md). Read-only. Exit 0: no
    /// path to root beyond what the policy accepts; 3: one or more.
    Audit(AuditArgs),
    /// Build the tree described in FILE under DIR (as root: owners, modes,
    /// FIFOs, sockets, symlinks, hard links). DIR must be empty or missing.
    Materialize {
        /// The tree description.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Where to build it (the container's / of the result).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub mode: Mode,
    pub root: PathBuf,
    /// `None`: the default config path under the root, if present.
    pub config: Option<PathBuf>,
    pub format: Format,
    /// Sorted, deduplicated, never empty.
    pub phases: Vec<Phase>,
    /// Observe this tree description instead of the disk under `root`.
    pub tree: Option<PathBuf>,
    /// How long an apply waits for the apply lock.
    pub lock_wait: std::time::Duration,
    /// How the human report looks (S6_VERBOSITY, colour).
    pub style: Style,
    /// Only print the effective configuration.
    pub print_config: bool,
    /// A runtime pass (`--runtime`): the profiles phase only.
    pub runtime: bool,
}

/// What the process's surroundings say about the output: the environment
/// (`S6_VERBOSITY`, `NO_COLOR`) and whether stdout is a terminal.
pub struct Surroundings<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub stdout_is_terminal: bool,
}

impl Surroundings<'_> {
    /// This process's own.
    pub fn of_process() -> Surroundings<'static> {
        use std::io::IsTerminal;
        Surroundings {
            env: &|k| std::env::var(k).ok(),
            stdout_is_terminal: std::io::stdout().is_terminal(),
        }
    }
}

/// `S6_VERBOSITY` as s6-overlay reads it: a number, else the default 2.
pub fn s6_verbosity(value: Option<&str>) -> u64 {
    match value {
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            v.parse().unwrap_or(u64::MAX)
        }
        _ => 2,
    }
}

/// A usage error (exit 100).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("--root {path}: {reason}")]
    Root { path: PathBuf, reason: String },
    #[error(
        "--tree needs --plan or --check: a description cannot be applied (build it with `reconcile materialize`, then apply with --root)"
    )]
    TreeApply,
    #[error("environment variable {var} is not valid UTF-8 ({value}); it must be text, or unset")]
    EnvNotUtf8 { var: &'static str, value: String },
}

/// Every environment variable `reconcile` reads (`RUST_LOG` for logging;
/// `container.no_supervise_env` at its default name).
pub const ENV_VARS: [&str; 7] = [
    "HERMES_HOME",
    "S6_PROFILE_GATEWAY_SCANDIR",
    "GATEWAY_MULTIPLEX_PROFILES",
    "HERMES_GATEWAY_NO_SUPERVISE",
    "S6_VERBOSITY",
    "NO_COLOR",
    "RUST_LOG",
];

/// Refuse a variable of [`ENV_VARS`] whose value is not UTF-8: read as
/// unset, it would silently run on the defaults (another volume, another
/// scandir) instead of the one the operator named. `get` is the lookup
/// (`std::env::var_os` for the process).
pub fn check_env(get: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<(), UsageError> {
    for var in ENV_VARS {
        if let Some(v) = get(var)
            && v.to_str().is_none()
        {
            return Err(UsageError::EnvNotUtf8 {
                var,
                value: crate::report::render::path_text(std::path::Path::new(&v)),
            });
        }
    }
    Ok(())
}

impl Args {
    /// Check what clap cannot: that the root is an existing directory.
    pub fn validate(self) -> Result<Settings, UsageError> {
        self.validate_in(&Surroundings::of_process())
    }

    /// [`Args::validate`] with the given environment and terminal.
    pub fn validate_in(self, around: &Surroundings<'_>) -> Result<Settings, UsageError> {
        let mode = if self.check {
            Mode::Check
        } else if self.plan {
            Mode::Plan
        } else {
            Mode::Apply
        };
        let verbosity = self.levels((around.env)("S6_VERBOSITY").as_deref()).1;
        // --print-config applies nothing: it may read a description too.
        if self.tree.is_some() && mode == Mode::Apply && !self.print_config {
            return Err(UsageError::TreeApply);
        }
        match std::fs::metadata(&self.root) {
            _ if self.tree.is_some() => {}
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(UsageError::Root {
                    path: self.root,
                    reason: "not a directory".into(),
                });
            }
            Err(e) => {
                return Err(UsageError::Root {
                    path: self.root,
                    reason: e.to_string(),
                });
            }
        }
        let mut phases = if self.runtime {
            vec![Phase::Profiles]
        } else if self.phases.is_empty() {
            Phase::ALL.to_vec()
        } else {
            self.phases
        };
        phases.sort();
        phases.dedup();
        Ok(Settings {
            mode,
            root: self.root,
            config: self.config,
            format: self.format,
            phases,
            tree: self.tree,
            lock_wait: std::time::Duration::from_secs(self.lock_wait),
            style: Style {
                verbosity,
                color: self.color.enabled(around),
                diff: self.diff,
            },
            print_config: self.print_config,
            runtime: self.runtime,
        })
    }

    /// The stderr log level, before RUST_LOG: from -v/-q, else from this
    /// process's S6_VERBOSITY.
    pub fn log_level(&self) -> log::LevelFilter {
        self.levels(std::env::var("S6_VERBOSITY").ok().as_deref()).0
    }

    /// The log level and the report's verbosity: from -v/-q when given,
    /// else from S6_VERBOSITY (docs/boot-output.md has the table).
    fn levels(&self, s6_verbosity: Option<&str>) -> (log::LevelFilter, Verbosity) {
        use log::LevelFilter;
        if self.quiet {
            return (LevelFilter::Warn, Verbosity::Warnings);
        }
        match self.verbose {
            0 => {}
            1 => return (LevelFilter::Info, Verbosity::Full),
            2 => return (LevelFilter::Debug, Verbosity::Full),
            _ => return (LevelFilter::Trace, Verbosity::Full),
        }
        // s6-overlay's levels: 0 errors, 1 warnings, 2 (default) what it
        // does, 3 more, 4 and 5 debugging and tracing.
        match self::s6_verbosity(s6_verbosity) {
            0 => (LevelFilter::Error, Verbosity::Errors),
            1 => (LevelFilter::Warn, Verbosity::Warnings),
            2 => (LevelFilter::Warn, Verbosity::Summary),
            3 => (LevelFilter::Info, Verbosity::Full),
            4 => (LevelFilter::Debug, Verbosity::Full),
            _ => (LevelFilter::Trace, Verbosity::Full),
        }
    }
}

impl Color {
    fn enabled(self, around: &Surroundings<'_>) -> bool {
        match self {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                around.stdout_is_terminal && (around.env)("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
}

/// The clap command, for the man page generator.
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn phases_are_sorted_and_deduplicated() {
        let a = Args::parse_from([
            "reconcile",
            "--plan",
            "--phase",
            "profiles",
            "--phase",
            "static",
            "--phase",
            "static",
        ]);
        let s = a.validate().unwrap();
        assert_eq!(s.phases, vec![Phase::Static, Phase::Profiles]);
        assert_eq!(s.mode, Mode::Plan);
    }

    #[test]
    fn runtime_is_the_profiles_phase_alone() {
        let s = Args::parse_from(["reconcile", "--runtime", "--plan"])
            .validate()
            .unwrap();
        assert!(s.runtime);
        assert_eq!(s.phases, vec![Phase::Profiles]);
        assert!(Args::try_parse_from(["reconcile", "--runtime", "--phase", "static"]).is_err());
    }

    #[test]
    fn plan_and_check_conflict() {
        assert!(Args::try_parse_from(["reconcile", "--plan", "--check"]).is_err());
    }

    #[test]
    fn missing_root_is_a_usage_error() {
        let a = Args::parse_from(["reconcile", "--root", "/nonexistent/x"]);
        let e = a.validate().unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x"), "{e}");
    }
}

/// `reconcile audit`'s arguments (docs/audit.md; the command is `audit::run`).
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Treat DIR as the container's / (a copy of an image's file system).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Audit a tree description (see `reconcile snapshot`) instead of the
    /// disk; --config then names a container path in it.
    #[arg(long, value_name = "FILE", conflicts_with = "root")]
    pub tree: Option<PathBuf>,
    /// Configuration file [default: <root>/etc/s6-reconcile/config.yaml
    /// if present, else built-in defaults].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Audit this user (a name in <root>/etc/passwd, or a uid) instead of
    /// the configured one.
    #[arg(long, value_name = "NAME|UID")]
    pub user: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human", value_name = "FORMAT")]
    pub format: Format,
}
