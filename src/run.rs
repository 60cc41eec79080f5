//! One run of `reconcile`: load the configuration, observe, plan, then
//! render or apply, and decide the exit code. `main.rs` only parses the
//! command line and maps [`Fatal`] to a message.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::accounts::{self, AccountError};
use crate::apply::{self, Anchors, Applied};
use crate::bootlog;
use crate::cli::{Format, Settings};
use crate::config::Policy;
use crate::config::{Config, ConfigError};
use crate::effects;
use crate::fs::{self, Dir};
use crate::lock::{self, LockError};
use crate::model::Desired;
use crate::model::{Mode, Phase};
use crate::plan::{self, Anchor};
use crate::print_config;
use crate::render;
use crate::report::{EffectReport, Failure, Report, say_who_acted};
use crate::scan::{self, Disk, Observed, Request};
use crate::steps::{self, Outcome};

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
    Tree(#[from] crate::tree::command::ReadError),
    /// `at` names the configuration value that led to the account files
    /// (`/etc/s6-reconcile/config.yaml:1:7: user`).
    #[error("{at}: {err}")]
    Account { at: String, err: AccountError },
    #[error("unable to open root {path}: {err}")]
    Root {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("{0}")]
    Lock(#[from] LockError),
}

impl Fatal {
    pub fn exit_code(&self) -> i32 {
        match self {
            Fatal::Config(_) | Fatal::Account { .. } | Fatal::Tree(_) => EXIT_USAGE,
            Fatal::Root { .. } | Fatal::Lock(_) => EXIT_FATAL,
        }
    }

    /// The error as the JSON report's `errors` entry: what was being done,
    /// to which file, and the whole message.
    pub fn failure(&self) -> Failure {
        let (op, path) = match self {
            Fatal::Config(ConfigError::Env { var, .. }) => {
                ("read environment variable", PathBuf::from(*var))
            }
            Fatal::Config(
                ConfigError::Read { path, .. }
                | ConfigError::Parse { path, .. }
                | ConfigError::Invalid { path, .. },
            ) => ("load configuration", path.clone()),
            Fatal::Account { err, .. } => (
                "resolve",
                PathBuf::from(if err.key() == "user" {
                    accounts::PASSWD
                } else {
                    accounts::GROUP
                }),
            ),
            Fatal::Root { path, .. } => ("open root", path.clone()),
            Fatal::Tree(crate::tree::command::ReadError::Read { path, .. }) => {
                ("read tree description", path.clone())
            }
            Fatal::Tree(crate::tree::command::ReadError::Parse(e)) => {
                ("read tree description", e.file.clone())
            }
            Fatal::Lock(
                LockError::Io { path, .. }
                | LockError::UntrustedDir { path, .. }
                | LockError::Untrusted { path, .. }
                | LockError::Timeout { path, .. },
            ) => ("take the apply lock", path.clone()),
        };
        Failure {
            op: op.into(),
            path,
            error: self.to_string().into(),
        }
    }
}

/// A run that got as far as its report; `output` is whether the report
/// could be written, and `code_if_unwritten` the exit code if it could not.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub output: std::io::Result<()>,
    pub code_if_unwritten: i32,
    /// What the run built, kept past its report.
    pub spent: Spent,
}

/// What a run built, kept after its report is written: the report and the
/// observation. Dropped with the [`Ran`]; a caller that exits right after
/// (the binary) may leave it to the end of the process instead
/// (`std::mem::forget`): freeing it entry by entry, several allocations
/// per slot, costs about a tenth of a boot's user-space work, and the
/// kernel takes the memory back at once.
#[derive(Default)]
pub struct Spent {
    _report: Option<Report>,
    _observed: Option<Observed>,
}

impl std::fmt::Debug for Spent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Spent")
    }
}

/// The exit code when the report could not be written (a closed pipe, a
/// full disk): the run's own code, which a lost report never turns into 0.
/// An apply has done its work whatever happened to stdout; a plan or check
/// that found nothing wrong but could not say so did nothing (111).
pub fn exit_code_after_output(mode: Mode, code: i32) -> i32 {
    match (mode, code) {
        (Mode::Plan | Mode::Check, EXIT_OK) => EXIT_FATAL,
        _ => code,
    }
}

/// With `--format json`, a run stopped before anything could be done still
/// prints one object: no changes, the error in `errors`.
pub fn fatal_json(mode: Mode, failure: Failure, out: &mut dyn Write) -> std::io::Result<()> {
    let report = Report {
        errors: vec![failure],
        ..Report::default()
    };
    render::json(mode, &report, render::Style::default(), out)
}

/// The largest configuration file read (a real one is a few KiB).
pub const CONFIG_LIMIT: u64 = 1 << 20;

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
    let read = match fs::input::read_regular(&real, CONFIG_LIMIT, fs::input::Follow::Yes) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.to_string()),
    };
    config_from(read, &shown, settings.config.is_some(), env)
}

/// The configuration from what reading its file gave (`Ok(None)`: no such
/// file; `shown` is its path as messages name it; `explicit` when named by
/// `--config`: then it must exist), then the environment overrides. The
/// disk and a tree description (`--tree`) both come through here.
pub fn config_from(
    read: Result<Option<Vec<u8>>, String>,
    shown: &Path,
    explicit: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let shown = shown.to_path_buf();
    let mut cfg = match read {
        Ok(Some(bytes)) => {
            let text = String::from_utf8(bytes).map_err(|_| ConfigError::Parse {
                path: shown.clone(),
                line: 1,
                column: 1,
                key: "(file)".into(),
                message: "not valid UTF-8".into(),
            })?;
            Config::from_yaml(&text, &shown)?
        }
        Ok(None) if !explicit => {
            log::info!("no {DEFAULT_CONFIG}; using the built-in defaults");
            Config::default()
        }
        Ok(None) => {
            return Err(ConfigError::Read {
                path: shown,
                reason: "No such file or directory".into(),
            });
        }
        Err(reason) => {
            return Err(ConfigError::Read {
                path: shown,
                reason,
            });
        }
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
    home: Option<Dir>,
}

impl Anchors for OpenBases<'_> {
    fn anchor(&mut self, a: Anchor) -> std::io::Result<&Dir> {
        let (slot, path) = match a {
            Anchor::Servicedirs => (&mut self.servicedirs, self.desired.servicedirs()),
            Anchor::Scandir => (&mut self.scandir, self.desired.scandir()),
            Anchor::Home => (&mut self.home, &self.desired.config.profiles.home.0),
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
) -> Result<Ran, Fatal> {
    // `--tree`: the description is the whole input (configuration,
    // accounts and tree); nothing else is read.
    let tree = match &settings.tree {
        Some(file) => Some(crate::tree::command::read_description(file)?),
        None => None,
    };
    let config = match &tree {
        Some(d) => crate::tree::inputs::config(d, settings.config.as_deref(), env)?,
        None => load_config(settings, env)?,
    };
    let account = match &tree {
        Some(d) => crate::tree::inputs::account(d, &config),
        None => accounts::resolve(&settings.root, &config.user, config.group.as_ref()),
    }
    .map_err(|err| Fatal::Account {
        at: config.source.describe(err.key()),
        err,
    })?;
    log::info!(
        "user {} = {}:{}, policy {}",
        account.user_name,
        account.uid,
        account.gid,
        config.policy
    );
    if settings.print_config {
        let text = print_config::render(&config, &account, env);
        return Ok(Ran {
            code: EXIT_OK,
            output: out.write_all(text.as_bytes()),
            code_if_unwritten: EXIT_FATAL,
            spent: Spent::default(),
        });
    }
    let threads = build_threads(env)?;
    let desired = Desired::new(config, account);
    let mut report = Report::default();
    if let Some(d) = &tree {
        // Validated: --tree goes with --plan or --check only.
        let acct = &desired.account;
        let src = crate::tree::source::TreeSource::new(d, (acct.uid, acct.gid));
        let observed = observe_from(&src, settings, &desired);
        // Planned as root would plan it on the materialized tree.
        warn_unwritable_volume(&desired, &observed, true, &mut report);
        plan_only(&desired, &observed, &mut report);
        return finish(settings, report, observed, out);
    }
    let root = Dir::open_path(&settings.root).map_err(|err| Fatal::Root {
        path: settings.root.clone(),
        err,
    })?;

    let root_phases: Vec<Phase> = settings
        .phases
        .iter()
        .copied()
        .filter(|p| *p != Phase::Profiles)
        .collect();
    let with_profiles = settings.phases.contains(&Phase::Profiles);

    let observed = match settings.mode {
        Mode::Plan | Mode::Check => {
            let observed = observe(settings, &desired, &root);
            warn_unwritable_volume(&desired, &observed, fs::euid() == 0, &mut report);
            plan_only(&desired, &observed, &mut report);
            observed
        }
        Mode::Apply => {
            // Held to the end of the apply (through the privilege drop and
            // the boot log), so no other apply observes a half-applied tree.
            let acct = &desired.account;
            let _lock = lock::acquire(&root, (acct.uid, acct.gid), settings.lock_wait, |path| {
                log::warn!(
                    "another apply holds {}; waiting up to {} s for it to finish",
                    path.display(),
                    settings.lock_wait.as_secs()
                )
            })?;
            fs::clear_umask();
            // Observed once; each part of the apply plans from it, and what
            // apply did is written back into it (never observed again).
            let mut observed = observe(settings, &desired, &root);
            warn_unwritable_volume(&desired, &observed, fs::euid() == 0, &mut report);
            if !root_phases.is_empty() {
                observed.phases = root_phases;
                let mut plan = plan::plan(&desired, &observed);
                let outcomes = apply::apply(&plan.changes, &mut bases(&root, &desired), 1);
                let applied = Applied::collect(std::mem::take(&mut plan.changes), outcomes);
                observed.applied(&applied.done);
                report.add_applied(plan, applied);
            }
            if with_profiles {
                observed.phases = vec![Phase::Profiles];
                let threads = threads.unwrap_or_else(default_threads);
                apply_profiles(&desired, &root, &observed, threads, &mut report);
            }
            observed
        }
    };
    finish(settings, report, observed, out)
}

/// The environment variable that sets how many threads build slots (a
/// benchmark knob; see benches/README.md).
pub const THREADS_ENV: &str = "RECONCILE_THREADS";

/// The most slot builder threads [`THREADS_ENV`] may ask for.
pub const MAX_THREADS: usize = 64;

/// How many threads build the staging dirs of an apply's slots, if
/// [`THREADS_ENV`] says (1 to [`MAX_THREADS`]; empty = unset). Checked in
/// every mode, so that `--check` catches a bad value too.
fn build_threads(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<usize>, Fatal> {
    let Some(v) = env(THREADS_ENV).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match v.parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(Some(n)),
        _ => Err(Fatal::Config(ConfigError::Env {
            var: THREADS_ENV,
            value: v,
            message: format!("must be a number of threads from 1 to {MAX_THREADS}"),
        })),
    }
}

/// The default number of slot builder threads: two when the process may
/// use two CPUs or more, else one (more than two is not measured: every
/// build also takes the scandir's lock, to make its staging dir).
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

/// The plan of `--plan`/`--check` into the report: nothing is done.
fn plan_only(desired: &Desired, observed: &Observed, report: &mut Report) {
    let mut plan = plan::plan(desired, observed);
    // Moved, not cloned: each publish carries its slot's scripts.
    let changes = std::mem::take(&mut plan.changes);
    report
        .effects
        .extend(plan.effects.iter().map(EffectReport::planned));
    report.add_plan(plan, changes, Vec::new());
}

/// Render the report and decide the exit code.
fn finish(
    settings: &Settings,
    mut report: Report,
    observed: Observed,
    out: &mut dyn Write,
) -> Result<Ran, Fatal> {
    if settings.phases.contains(&Phase::Profiles) {
        let per_slot = report
            .slots
            .iter()
            .map(|s| bootlog::stdout_line(&s.profile, s.prior_state.as_deref(), s.action));
        report.lines.extend(per_slot);
    }

    let output = match settings.format {
        Format::Human => render::human(settings.mode, &report, settings.style, out),
        Format::Json => render::json(settings.mode, &report, settings.style, out),
    };
    let code = exit_code(settings.mode, &report);
    Ok(Ran {
        code,
        output,
        code_if_unwritten: exit_code_after_output(settings.mode, code),
        spent: Spent {
            _report: Some(report),
            _observed: Some(observed),
        },
    })
}

fn bases<'a>(root: &'a Dir, desired: &'a Desired) -> OpenBases<'a> {
    OpenBases {
        root,
        desired,
        servicedirs: None,
        scandir: None,
        home: None,
    }
}

/// The profiles phase of an apply: as the user when started as root in
/// compat policy (so nothing planted in the user's volume or scandir can
/// make root touch a root-owned file), then plan and apply: the changes
/// under their conditions, then the run effects (rescan, boot log).
fn apply_profiles(
    desired: &Desired,
    root: &Dir,
    observed: &Observed,
    threads: usize,
    report: &mut Report,
) {
    let acct = &desired.account;
    if fs::euid() == 0 && desired.policy() == Policy::Compat {
        if let Err(e) = fs::act_as(acct.uid, acct.gid) {
            report.errors.push(Failure {
                op: "act as".into(),
                path: PathBuf::from(format!("uid {} gid {}", acct.uid, acct.gid)),
                error: (&e).into(),
            });
            return;
        }
        log::info!(
            "profiles phase acts as {}:{} (effective ids; real and saved stay root)",
            acct.uid,
            acct.gid
        );
    }
    let mut plan = plan::plan(desired, observed);
    let mut anchors = bases(root, desired);
    // Started after the privilege drop: the slot builders act as the user too.
    let mut outcomes = apply::apply(&plan.changes, &mut anchors, threads);
    if let Some(uid) = fs::acting_as() {
        for o in &mut outcomes {
            if let Outcome::Failed(e) | Outcome::DoneWith(e) = o {
                say_who_acted(e, uid);
            }
        }
    }
    steps::settle_slots(&mut plan.slots, &plan.changes, &outcomes);
    let applied = Applied::collect(std::mem::take(&mut plan.changes), outcomes);
    let done = effects::run(&plan.effects, &applied.done, &plan.slots, &mut anchors);
    report.effects.extend(done.done);
    report.warnings.extend(done.warnings);
    report.errors.extend(done.errors);
    report.add_applied(plan, applied);
}

/// Warn when the volume is not writable by the user who will write it
/// (the boot log, and in compat the stale runtime files): a volume copied
/// or created as root makes every apply fail there, while the plan alone
/// would show nothing wrong. `as_root`: the run is root's (or, for a tree
/// description, planned as root's would be), so the user writes.
fn warn_unwritable_volume(
    desired: &Desired,
    observed: &Observed,
    as_root: bool,
    report: &mut Report,
) {
    let Some(home) = observed.profiles.as_ref().and_then(|p| p.home.present()) else {
        return;
    };
    let acct = &desired.account;
    let writer = if as_root {
        (acct.uid, acct.gid)
    } else {
        (fs::euid(), fs::egid())
    };
    if writer.0 == 0 || fs::writable_by(&home.meta, writer) {
        return;
    }
    report.warnings.push(format!(
        "{} (profiles.home, owner {}:{}, mode {:04o}) is not writable by uid {} gid {}, \
         who writes the boot log there: the apply will fail to append it",
        desired.config.profiles.home.0.display(),
        home.meta.uid,
        home.meta.gid,
        home.meta.mode,
        writer.0,
        writer.1
    ));
}

/// Observe the tree once, for every selected phase.
fn observe(settings: &Settings, desired: &Desired, root: &Dir) -> Observed {
    let acct = &desired.account;
    let src = Disk {
        root,
        untrusted: (acct.uid, acct.gid),
    };
    observe_from(&src, settings, desired)
}

/// Observe through `src`: the disk, or a tree description (`--tree`).
fn observe_from<S: scan::Source>(src: &S, settings: &Settings, desired: &Desired) -> Observed {
    let acct = &desired.account;
    let user = (acct.uid, acct.gid);
    // The slots' files are compared with what the plan wants as they are
    // read, and only those that differ are kept.
    let scripts = crate::slot_diff::scripts(desired);
    let expected = |slot: &str| crate::slot_diff::expected_files(desired, &scripts, slot);
    let req = Request {
        phases: &settings.phases,
        servicedirs: desired.servicedirs(),
        scandir: desired.scandir(),
        profiles: &desired.config.profiles,
        container: &desired.config.container,
        user,
        expected: Some(&expected),
    };
    scan::observe(src, &req)
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
