//! One run of `reconcile`: load the configuration, observe, plan, then
//! render or apply, and decide the exit code. `main.rs` only parses the
//! command line and maps [`Fatal`] to a message.

use std::io::Write;
use std::path::PathBuf;

use crate::accounts::{self, AccountError};
use crate::apply::{self, Anchors};
use crate::cli::{Format, Mode, Phase, Settings};
use crate::config::{Config, ConfigError};
use crate::fs::{self, Dir};
use crate::model::Desired;
use crate::plan::{self, Anchor};
use crate::render::{self, Report};
use crate::scan::{Observed, Scanner};

/// Exit codes (the s6 convention).
pub const EXIT_OK: i32 = 0;
pub const EXIT_PARTIAL: i32 = 1;
pub const EXIT_DRIFT: i32 = 3;
pub const EXIT_USAGE: i32 = 100;
pub const EXIT_FATAL: i32 = 111;

/// What stops a run before anything could be done.
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Account(#[from] AccountError),
    #[error("unable to open root {path}: {err}")]
    Root {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("unable to write the report: {0}")]
    Output(#[source] std::io::Error),
}

impl Fatal {
    pub fn exit_code(&self) -> i32 {
        match self {
            Fatal::Config(_) | Fatal::Account(_) => EXIT_USAGE,
            Fatal::Root { .. } | Fatal::Output(_) => EXIT_FATAL,
        }
    }
}

/// The default configuration file, as a container path.
pub const DEFAULT_CONFIG: &str = "/etc/s6-reconcile/config.yaml";

/// Load the configuration the settings name, then the environment overrides.
pub fn load_config(
    settings: &Settings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let (real, shown): (PathBuf, PathBuf) = match &settings.config {
        Some(p) => (p.clone(), p.clone()),
        None => (
            settings.root.join(DEFAULT_CONFIG.trim_start_matches('/')),
            PathBuf::from(DEFAULT_CONFIG),
        ),
    };
    let mut cfg = match std::fs::read(&real) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| ConfigError::Parse {
                path: shown.clone(),
                line: 1,
                column: 1,
                key: "(file)".into(),
                message: "not valid UTF-8".into(),
            })?;
            Config::from_yaml(&text, &shown)?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && settings.config.is_none() => {
            log::info!("no {DEFAULT_CONFIG}; using the built-in defaults");
            Config::default()
        }
        Err(err) => return Err(ConfigError::Read { path: shown, err }),
    };
    cfg.apply_env(env)?;
    Ok(cfg)
}

/// The configured bases, opened lazily beneath the root at apply time.
struct OpenBases<'a> {
    root: &'a Dir,
    desired: &'a Desired,
    servicedirs: Option<Dir>,
    scandir: Option<Dir>,
}

impl Anchors for OpenBases<'_> {
    fn anchor(&mut self, a: Anchor) -> std::io::Result<&Dir> {
        let (slot, path) = match a {
            Anchor::Servicedirs => (&mut self.servicedirs, self.desired.servicedirs()),
            Anchor::Scandir => (&mut self.scandir, self.desired.scandir()),
        };
        if slot.is_none() {
            let acct = &self.desired.account;
            let base = fs::resolve_base(self.root, path, (acct.uid, acct.gid))
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            *slot = Some(base.dir);
        }
        Ok(slot.as_ref().expect("set above"))
    }
}

/// Run once; returns the exit code.
pub fn run(
    settings: &Settings,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
) -> Result<i32, Fatal> {
    let config = load_config(settings, env)?;
    let account = accounts::resolve(&settings.root, &config.user, config.group.as_ref())?;
    log::info!(
        "user {} = {}:{}, policy {:?}",
        account.user_name,
        account.uid,
        account.gid,
        config.policy
    );
    let desired = Desired::new(config, account);
    let root = Dir::open_path(&settings.root).map_err(|err| Fatal::Root {
        path: settings.root.clone(),
        err,
    })?;

    let observed = observe(settings, &desired, &root);
    let plan = plan::plan(&desired, &observed);

    let mut report = Report {
        skipped: plan.skipped.clone(),
        warnings: plan.warnings.clone(),
        errors: plan.errors.clone(),
        ..Report::default()
    };
    match settings.mode {
        Mode::Plan | Mode::Check => report.changes = plan.changes.clone(),
        Mode::Apply => {
            let mut bases = OpenBases {
                root: &root,
                desired: &desired,
                servicedirs: None,
                scandir: None,
            };
            let applied = apply::apply(&plan, &mut bases);
            report.changes = applied.done;
            report.errors.extend(applied.errors);
        }
    }

    match settings.format {
        Format::Human => render::human(settings.mode, &report, out),
        Format::Json => render::json(settings.mode, &report, out),
    }
    .map_err(Fatal::Output)?;

    Ok(exit_code(settings.mode, &report))
}

fn observe(settings: &Settings, desired: &Desired, root: &Dir) -> Observed {
    let acct = &desired.account;
    let mut scanner = Scanner::new(&settings.root, root, (acct.uid, acct.gid));
    let mut observed = Observed::default();
    for phase in &settings.phases {
        match phase {
            Phase::Static => {
                observed.static_ = Some(scanner.static_dirs(desired.servicedirs()));
            }
            Phase::Scandir => {
                let staging = format!(".{}", desired.config.profiles.slot_prefix);
                observed.scandir = Some(scanner.scandir(desired.scandir(), &staging));
            }
            Phase::Profiles => {}
        }
    }
    observed.errors = scanner.errors;
    observed
}

fn exit_code(mode: Mode, r: &Report) -> i32 {
    if !r.errors.is_empty() {
        EXIT_PARTIAL
    } else if mode == Mode::Check && !r.changes.is_empty() {
        EXIT_DRIFT
    } else {
        EXIT_OK
    }
}
