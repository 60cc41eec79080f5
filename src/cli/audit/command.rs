//! The `audit` subcommand: its arguments, its inputs (configuration,
//! accounts, the disk or a tree description) and its exit code.

use std::io::Write;
use std::path::Path;

use super::access::Who;
use super::render::{self, ErrorJson};
use super::{Audit, Kind, definitions, live};
use crate::cli::args::{AuditArgs as Args, Format};
use crate::cli::run::{EXIT_DRIFT, EXIT_FATAL, EXIT_OK, Fatal};
use crate::desired::accounts::{self, AccountError};
use crate::desired::config::{Config, Policy, Principal};

/// Run the audit; returns the exit code: 0 no path to root beyond what the
/// policy accepts, 3 one or more, 100 bad usage or configuration, 111 the
/// root could not be opened or the report not written.
pub fn run(args: Args, env: &crate::desired::config::env::Lookup<'_>, out: &mut dyn Write) -> i32 {
    let format = args.format;
    let (audit, who, policy) = match audit(&args, env) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("reconcile: fatal: {e}");
            if format == Format::Json {
                let error = ErrorJson {
                    op: "audit".into(),
                    path: String::new(),
                    error: e.to_string(),
                };
                let _ = render::fatal_json(error, out);
            }
            return e.exit_code();
        }
    };
    let written = match format {
        Format::Human => render::human(&audit, &who, policy.as_str(), out),
        Format::Json => render::json(&audit, &who, policy.as_str(), out),
    };
    let code = if audit.unaccepted() > 0 {
        EXIT_DRIFT
    } else {
        EXIT_OK
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => code,
        Err(e) => {
            eprintln!(
                "reconcile: fatal: unable to write the audit to stdout: {}",
                crate::fs::os_error(&e)
            );
            if code == EXIT_OK { EXIT_FATAL } else { code }
        }
    }
}

/// The audit of the disk under `--root`, or of the `--tree` description.
fn audit(
    args: &Args,
    env: &crate::desired::config::env::Lookup<'_>,
) -> Result<(Audit, Who, Policy), Fatal> {
    let tree = match &args.tree {
        Some(f) => Some(crate::tree::read_description(f)?),
        None => None,
    };
    // Opened before anything is read under it: a --root that cannot be
    // opened is said as a run says it.
    let root = match &tree {
        Some(_) => None,
        None => Some(
            crate::fs::Dir::open_path(&args.root).map_err(|err| Fatal::Root {
                path: args.root.clone(),
                err,
            })?,
        ),
    };
    let config = match &tree {
        Some(d) => crate::tree::inputs::config(d, args.config.as_deref(), env)?,
        None => crate::desired::config::file::load_config(&args.root, args.config.as_deref(), env)?,
    };
    let db = |file: &'static str| match &tree {
        Some(d) => crate::tree::inputs::file_bytes(d, Path::new(file))
            .map_err(|reason| AccountError::Read { file, reason }),
        None => accounts::read_db(&args.root, file),
    };
    let mut a = Audit::default();
    let (who, configured) = who(args, &config, &db, &mut a)?;
    let bases = live::Bases {
        servicedirs: &config.static_.servicedirs.0,
        scandir: &config.scandir.path.0,
    };
    let ids = who.ids.clone();
    match &tree {
        Some(d) => {
            let src = crate::tree::source::TreeSource::new(d, ids);
            live::audit(&src, &who, &bases, &mut a);
            definitions::from_description(d, &who, &mut a);
        }
        None => {
            let root = root.as_ref().expect("opened above without --tree");
            let src = crate::observe::Disk {
                root,
                untrusted: ids,
            };
            live::audit(&src, &who, &bases, &mut a);
            definitions::from_disk(&args.root, &who, &mut a);
        }
    }
    finish(&mut a, config.policy, configured);
    Ok((a, who, config.policy))
}

/// Sort the findings, resolve the lines' dependencies, and mark what the
/// policy accepts: in compat, the scandir and its slots, as the configured
/// user's own (as their owner or through their group; not what everyone
/// may write, nor what another user may).
fn finish(a: &mut Audit, policy: Policy, configured: bool) {
    let accepts = policy == Policy::Compat && configured;
    for l in a.lines.values_mut() {
        l.paths.sort_by(|x, y| x.path.cmp(&y.path));
        if accepts && matches!(l.kind, Kind::Scandir | Kind::Slot) {
            for f in l.paths.iter_mut().filter(|f| f.own) {
                f.accepted = true;
            }
        }
    }
    a.settle();
}

/// The audited user and every group they are in; whether they are the
/// configured user.
fn who(
    args: &Args,
    config: &Config,
    db: &dyn Fn(&'static str) -> Result<Vec<u8>, AccountError>,
    a: &mut Audit,
) -> Result<(Who, bool), Fatal> {
    let principal_of = |s: &String| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Principal::Name(s.clone()));
        }
        s.parse()
            .map(Principal::Id)
            .map_err(|_| AccountError::UnknownUser {
                name: s.clone(),
                file: accounts::PASSWD,
            })
    };
    let (principal, at) = match &args.user {
        Some(s) => (
            principal_of(s).map_err(|err| Fatal::Account {
                at: "--user".into(),
                err,
            })?,
            "--user".to_string(),
        ),
        None => (config.user.clone(), config.source.describe("user")),
    };
    let (uid, primary, name) = account(&principal, db).map_err(|err| Fatal::Account {
        at: at.clone(),
        err,
    })?;
    // The configured user, whom the policy concerns (`--user` may name them
    // too).
    let configured =
        args.user.is_none() || account(&config.user, db).is_ok_and(|(u, _, _)| u == uid);
    let group_db = db(accounts::GROUP).unwrap_or_else(|e| {
        a.warnings
            .push(format!("{e}; only the primary group {primary} is counted"));
        Vec::new()
    });
    let groups = accounts::user_groups(&group_db, name.as_deref(), primary);
    a.warnings.extend(groups.warnings);
    a.group_names = accounts::group_names(&group_db, &groups.gids);
    Ok((Who::new(uid, primary, groups.gids), configured))
}

/// A principal's uid, primary gid and name (a uid not in `/etc/passwd`:
/// its own number as its group, and no name).
fn account(
    principal: &Principal,
    db: &dyn Fn(&'static str) -> Result<Vec<u8>, AccountError>,
) -> Result<(u32, u32, Option<String>), AccountError> {
    Ok(match principal {
        Principal::Name(n) => {
            let passwd = db(accounts::PASSWD)?;
            let acct = accounts::resolve_from(&passwd, b"", &Principal::Name(n.clone()), None)?;
            (acct.uid, acct.gid, Some(n.clone()))
        }
        Principal::Id(uid) => {
            let passwd = db(accounts::PASSWD).unwrap_or_default();
            match accounts::user_by_uid(&passwd, *uid) {
                Some((n, gid)) => (*uid, gid, Some(n)),
                None => (*uid, *uid, None),
            }
        }
    })
}
