//! One run of `reconcile`: load the configuration, observe, plan, then
//! render or apply, and decide the exit code. `main.rs` only parses the
//! command line and maps [`Fatal`] to a message.

use std::io::Write;
use std::path::PathBuf;

use crate::apply::bootlog;
use crate::apply::lock::LockError;
use crate::cli::args::{Format, Settings};
use crate::desired::accounts::{self, AccountError};
use crate::desired::config::{Config, ConfigError};
use crate::desired::model::Desired;
use crate::desired::model::{Mode, Phase};
use crate::fs::{self, Dir};
use crate::observe::{self, Disk, Observed, Request};
use crate::plan;
use crate::plan::steps::EffectReport;
use crate::report::Report;
use crate::report::config as print_config;
use crate::report::render;
use crate::s6::findings::Failure;

mod applying;
pub mod subcommands;

use crate::desired::config::file::load_config;

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
    Tree(#[from] crate::tree::ReadError),
    /// `at` names the configuration value that led to the account files
    /// (`/etc/s6-reconcile/config.yaml:1:7: user`).
    #[error("{at}: {err}")]
    Account { at: String, err: AccountError },
    #[error("unable to open root {path}: {err}")]
    Root {
        path: PathBuf,
        #[source]
        err: fs::Error,
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
            Fatal::Config(ConfigError::EnvNotText(e)) => {
                ("read environment variable", PathBuf::from(&e.var))
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
            Fatal::Tree(crate::tree::ReadError::Read { path, .. }) => {
                ("read tree description", path.clone())
            }
            Fatal::Tree(crate::tree::ReadError::Parse(e)) => {
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

/// What a run works from: the tree description (`--tree`), the
/// configuration and the account it names.
type Inputs = (
    Option<crate::tree::Description>,
    Config,
    crate::desired::accounts::Account,
);

/// Read the inputs: with `--tree` the description is the whole input
/// (configuration, accounts and tree); nothing else is read.
fn inputs(
    settings: &Settings,
    env: &crate::desired::config::env::Lookup<'_>,
) -> Result<Inputs, Fatal> {
    let tree = match &settings.tree {
        Some(file) => Some(crate::tree::read_description(file)?),
        None => None,
    };
    let config = match &tree {
        Some(d) => crate::tree::inputs::config(d, settings.config.as_deref(), env)?,
        None => load_config(&settings.root, settings.config.as_deref(), env)?,
    };
    let account = match &tree {
        Some(d) => crate::tree::inputs::account(d, &config),
        None => accounts::resolve(&settings.root, &config.user, config.group.as_ref()),
    }
    .map_err(|err| Fatal::Account {
        at: config.source.describe(err.key()),
        err,
    })?;
    Ok((tree, config, account))
}

/// Run once; returns the exit code. A runtime pass stopped before anything
/// could be done still records its report (the error in `errors`), so its
/// caller finds why in `last.json`. (A refused boot apply changes nothing,
/// not even `boot.json`: its error is on stderr and fails the boot.)
pub fn run(
    settings: &Settings,
    env: &crate::desired::config::env::Lookup<'_>,
    out: &mut dyn Write,
) -> Result<Ran, Fatal> {
    let ran = run_once(settings, env, out);
    // Not after a lock timeout: the apply holding the lock records its own
    // report, and the sequence is only ever counted under the lock.
    if let Err(e) = &ran
        && !matches!(e, Fatal::Lock(_))
        && settings.runtime
        && settings.mode == Mode::Apply
        && settings.tree.is_none()
        && let Ok(root) = Dir::open_path(&settings.root)
    {
        let mut report = Report {
            errors: vec![e.failure()],
            ..Report::default()
        };
        // The account may be what failed: only root's own checks of
        // /run and the record directory apply.
        record(settings, &root, &NOBODY, Some(e.exit_code()), &mut report);
        for f in &report.errors[1..] {
            log::warn!("{}: {}", f.path.display(), f.error);
        }
    }
    ran
}

/// Ids no file belongs to, for [`record`] when the account is unknown.
const NOBODY: fs::Ids = fs::Ids {
    uid: u32::MAX - 1,
    gid: u32::MAX - 1,
    groups: Vec::new(),
};

fn run_once(
    settings: &Settings,
    env: &crate::desired::config::env::Lookup<'_>,
    out: &mut dyn Write,
) -> Result<Ran, Fatal> {
    let (tree, config, account) = inputs(settings, env)?;
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
        });
    }
    let mut desired = Desired::new(config, account);
    desired.runtime = settings.runtime;
    let mut report = Report::default();
    if let Some(d) = &tree {
        // Validated: --tree goes with --plan or --check only.
        let acct = &desired.account;
        let src = crate::tree::source::TreeSource::new(d, acct.ids());
        let observed = observe_from(&src, settings, &desired);
        // Planned as root would plan it on the materialized tree.
        warn_unwritable_volume(&desired, &observed, true, &mut report);
        plan_only(&desired, &observed, &mut report);
        volume_owners_doing(&desired, &observed, &mut report);
        add_profile_lines(settings, &mut report);
        return finish(settings, report, out);
    }
    let root = Dir::open_path(&settings.root).map_err(|err| Fatal::Root {
        path: settings.root.clone(),
        err,
    })?;

    match settings.mode {
        Mode::Plan | Mode::Check => {
            let observed = observe(settings, &desired, &root);
            warn_unwritable_volume(&desired, &observed, fs::euid() == 0, &mut report);
            plan_only(&desired, &observed, &mut report);
            volume_owners_doing(&desired, &observed, &mut report);
        }
        Mode::Apply => {
            // The lock is held until the report is recorded.
            let _held = applying::apply_all(settings, &desired, &root, &mut report)?;
            add_profile_lines(settings, &mut report);
            let acct = &desired.account;
            record(settings, &root, &acct.ids(), None, &mut report);
            return finish(settings, report, out);
        }
    }
    add_profile_lines(settings, &mut report);
    finish(settings, report, out)
}

/// Record an apply's JSON report (docs/runtime.md "Files"): a runtime
/// pass's in `last.json` with its sequence number, any other apply's in
/// `boot.json`. Only root records (the directory is root's); a failure to
/// record is an error of the run, so the caller who waits for the file
/// learns it from the exit code.
/// `code`: the exit code when the run stopped before its report.
fn record(settings: &Settings, root: &Dir, user: &fs::Ids, code: Option<i32>, report: &mut Report) {
    use crate::apply::record::{self, Records};
    if fs::uid() != 0 {
        log::info!("not root: the report is not recorded in /run/s6-reconcile");
        return;
    }
    let result = fs::stop_acting()
        .map_err(|err| record::RecordError::Io {
            path: std::path::Path::new("/run").join(record::DIR_NAME),
            err,
        })
        .and_then(|()| Records::open(root, user))
        .and_then(|records| {
            let Some(records) = records else {
                log::info!("no /run under the root: the report is not recorded");
                return Ok(());
            };
            let (name, sequence) = if settings.runtime {
                (record::LAST, Some(records.next_sequence()?))
            } else {
                (record::BOOT, None)
            };
            let code = code.unwrap_or_else(|| exit_code(settings.mode, report));
            let mut json = Vec::new();
            render::json_recorded(settings.mode, report, sequence, code, &mut json);
            records.write(name, &json)
        });
    if let Err(e) = result {
        report.errors.push(Failure {
            op: "record".into(),
            path: e.path().to_path_buf(),
            error: e.to_string().into(),
        });
    }
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

/// The per-profile lines of a run of the profiles phase.
fn add_profile_lines(settings: &Settings, report: &mut Report) {
    if settings.phases.contains(&Phase::Profiles) {
        let per_slot = report
            .slots
            .iter()
            .map(|s| bootlog::stdout_line(&s.profile, s.prior_state.as_deref(), s.action));
        report.lines.extend(per_slot);
    }
}

/// Render the report and decide the exit code.
fn finish(settings: &Settings, report: Report, out: &mut dyn Write) -> Result<Ran, Fatal> {
    let output = match settings.format {
        Format::Human => render::human(settings.mode, &report, settings.style, out),
        Format::Json => render::json(settings.mode, &report, settings.style, out),
    };
    let code = exit_code(settings.mode, &report);
    Ok(Ran {
        code,
        output,
        code_if_unwritten: exit_code_after_output(settings.mode, code),
    })
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
    // As root the log is written with the user's uid and primary gid
    // only (the supplementary groups are dropped, README "Safety").
    let writer = if as_root {
        fs::Ids::new(acct.uid, acct.gid)
    } else {
        fs::current_ids()
    };
    if writer.uid == 0 || fs::access(&home.meta, &writer, fs::Want::Modify).is_some() {
        return;
    }
    report.warnings.push(format!(
        "{} (profiles.home, owner {}:{}, mode {:04o}) is not writable by uid {} gid {}, \
         who writes the boot log there: the apply will fail to append it",
        desired.config.profiles.home.0.display(),
        home.meta.uid,
        home.meta.gid,
        home.meta.mode,
        writer.uid,
        writer.gid
    ));
}

/// What the volume's owner alone could have caused in their own volume
/// (a planted boot log, a mode they set, a stale runtime file they keep)
/// is a warning naming the file and the reason, not a failed boot
/// (README "Exit codes"): failures strictly below a home the user owns,
/// whose cause an owner can produce. The home itself not opened, a home
/// that is not the user's, a failing disk or a read-only mount still
/// count, as does anything outside the volume.
fn volume_owners_doing(desired: &Desired, observed: &Observed, report: &mut Report) {
    let Some(home) = observed.profiles.as_ref().and_then(|p| p.home.present()) else {
        return;
    };
    if home.meta.uid != desired.account.uid {
        return;
    }
    let base = &desired.config.profiles.home.0;
    let (theirs, count): (Vec<Failure>, Vec<Failure>) = std::mem::take(&mut report.errors)
        .into_iter()
        .partition(|e| e.path != *base && e.path.starts_with(base) && e.error.owner_can_cause());
    report.errors = count;
    for e in theirs {
        report.warnings.push(format!(
            "unable to {} {}: {}; in uid {}'s volume {}: left to its owner, the boot goes on",
            e.op,
            e.path.display(),
            e.error,
            desired.account.uid,
            base.display()
        ));
    }
}

/// Observe the tree once, for every selected phase.
fn observe(settings: &Settings, desired: &Desired, root: &Dir) -> Observed {
    let acct = &desired.account;
    let src = Disk {
        root,
        untrusted: acct.ids(),
    };
    observe_from(&src, settings, desired)
}

/// Observe through `src`: the disk, or a tree description (`--tree`).
fn observe_from<S: observe::Source>(src: &S, settings: &Settings, desired: &Desired) -> Observed {
    let acct = &desired.account;
    let user = (acct.uid, acct.gid);
    // The slots' files are compared with what the plan wants as they are
    // read, and only those that differ are kept.
    let scripts = crate::plan::slot_diff::scripts(desired);
    let expected = |slot: &str| crate::plan::slot_diff::expected_files(desired, &scripts, slot);
    let req = Request {
        phases: &settings.phases,
        servicedirs: desired.servicedirs(),
        scandir: desired.scandir(),
        profiles: &desired.config.profiles,
        container: &desired.config.container,
        user,
        skip: &desired.config.static_.skip,
        expected: Some(&expected),
    };
    observe::observe(src, &req)
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
