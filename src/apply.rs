//! Apply: execute a plan's changes through held directory fds.
//!
//! Apply makes no decisions: it runs the plan's changes in order, each
//! under the condition the plan gave it ([`When`]), re-checking each target
//! (dev, ino, kind) before touching it, keeps going after a failure and
//! returns a typed [`Outcome`] per change, every failure with its
//! operation, path and OS error.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::fs::{self, Dir, Refusal};
use crate::plan::steps::{Outcome, SLOTS_FAILED, When};
use crate::plan::{Anchor, Change, Op, Owner, SlotBuild};
use crate::s6::findings::{Cause, Failure, Skipped};
pub(crate) mod bootlog;
pub(crate) mod effects;
pub mod lock;
pub(crate) mod observed;
pub(crate) mod record;
pub mod retire;

mod stage;

/// The base directories apply acts beneath, opened at apply time.
pub trait Anchors {
    fn anchor(&mut self, a: Anchor) -> Result<&Dir, fs::BaseError>;
}

/// What apply did, for the report: the changes done (moved, not cloned:
/// a publish carries its slot's scripts), the failures, and the changes
/// whose condition did not hold.
#[derive(Debug, Default)]
pub struct Applied {
    pub done: Vec<Change>,
    pub errors: Vec<Failure>,
    pub skipped: Vec<Skipped>,
}

impl Applied {
    /// Sort `changes` by their `outcomes` (one each, in order).
    pub fn collect(changes: Vec<Change>, outcomes: Vec<Outcome>) -> Applied {
        let mut out = Applied {
            done: Vec::with_capacity(changes.len()),
            ..Applied::default()
        };
        for (c, o) in changes.into_iter().zip(outcomes) {
            match o {
                Outcome::Done => out.done.push(c),
                Outcome::DoneWith(e) => {
                    out.errors.push(e);
                    out.done.push(c);
                }
                // A leftover its supervisor still holds: not the run's
                // failure (a later run removes it), said as left alone.
                Outcome::Failed(e) if e.error.supervised() => out.skipped.push(Skipped {
                    path: c.path,
                    reason: format!("not removed: {}", e.error),
                }),
                Outcome::Failed(e) => out.errors.push(e),
                Outcome::NotRun(reason) => out.skipped.push(Skipped {
                    path: c.path,
                    reason: reason.into(),
                }),
                Outcome::NeedsRoot(e) => out.skipped.push(Skipped {
                    path: c.path,
                    reason: format!(
                        "needs root: unable to {} as uid {}: {}; left as it is",
                        e.op,
                        fs::euid(),
                        e.error
                    ),
                }),
            }
        }
        out
    }
}

/// The parent directory of the last target, kept open: changes are sorted
/// by path, so consecutive changes mostly share it.
struct ParentCache {
    key: Option<(Anchor, PathBuf)>,
    dir: Option<Dir>,
    /// The held directory's identity, read once (an fd's never changes).
    meta: Option<fs::Meta>,
}

impl ParentCache {
    fn get(&mut self, anchors: &mut dyn Anchors, a: Anchor, parent: &Path) -> Result<&Dir, Cause> {
        let key = (a, parent.to_path_buf());
        if self.key.as_ref() != Some(&key) {
            // Below the cached parent (a deep tree, walked down in order):
            // go on from it instead of from the base, so a tree of any
            // depth costs one open per level, not one per level per entry.
            let below = match (&self.key, &self.dir) {
                (Some((ka, kp)), Some(d)) if *ka == a => parent
                    .strip_prefix(kp)
                    .ok()
                    .map(|rest| d.open_beneath(rest)),
                _ => None,
            };
            self.key = None;
            self.meta = None;
            self.dir = Some(match below {
                Some(d) => d?,
                None => anchors.anchor(a)?.open_beneath(parent)?,
            });
            self.key = Some(key);
        }
        Ok(self.dir.as_ref().expect("set above"))
    }

    /// The held directory (after [`ParentCache::get`]) must be the one
    /// observed (`expect`: dev, ino, kind).
    fn check_same(&mut self, expect: &fs::Meta) -> fs::Result<()> {
        let meta = match self.meta {
            Some(m) => m,
            None => {
                let m = self.dir.as_ref().expect("after get").meta()?;
                *self.meta.insert(m)
            }
        };
        if meta.same_file(expect) {
            Ok(())
        } else {
            Err(Refusal::NotAsObserved.into())
        }
    }
}

/// Execute `changes` (a plan's, or the part of it one set of credentials
/// runs) in order, each under its condition: a [`When::AfterSlots`] change
/// runs only if no earlier change failed. One outcome per change.
pub fn apply(changes: &[Change], anchors: &mut dyn Anchors) -> Vec<Outcome> {
    // The effective ids entries are created with (they do not change
    // while changes run, but for a moment inside a seeded state file).
    let me = (fs::euid(), fs::egid());
    run_all(changes, anchors, me)
}

fn run_all(changes: &[Change], anchors: &mut dyn Anchors, me: Owner) -> Vec<Outcome> {
    let mut cache = ParentCache {
        key: None,
        dir: None,
        meta: None,
    };
    let mut failed = false;
    let failure = |c: &Change, StepError { op, cause }: StepError| {
        log::debug!("{} {}: {cause}", op, c.path.display());
        Failure {
            op: op.into(),
            path: c.path.clone(),
            error: cause,
        }
    };
    let mut outcomes = Vec::with_capacity(changes.len());
    for c in changes {
        if c.when == When::AfterSlots && failed {
            outcomes.push(Outcome::NotRun(SLOTS_FAILED));
            continue;
        }
        let result = run_one(c, anchors, &mut cache, me);
        outcomes.push(match result {
            Ok(None) => Outcome::Done,
            Ok(Some(late)) => Outcome::DoneWith(failure(c, late)),
            Err(e) => {
                failed |= c.when == When::Always;
                match needs_root(&e.cause) {
                    true => Outcome::NeedsRoot(failure(c, e)),
                    false => Outcome::Failed(failure(c, e)),
                }
            }
        });
    }
    outcomes
}

/// A step that failed: the operation (`mkdir`, `publish`...) and its typed
/// cause.
#[derive(Debug)]
struct StepError {
    op: &'static str,
    cause: Cause,
}

impl<E: Into<Cause>> From<(&'static str, E)> for StepError {
    fn from((op, e): (&'static str, E)) -> StepError {
        StepError {
            op,
            cause: e.into(),
        }
    }
}

/// Whether `e` is a permission only root has, refused to a run that is
/// not root (a container started as the user; not root's own run acting
/// with the user's effective ids, whose failures stay failures).
fn needs_root(e: &Cause) -> bool {
    fs::euid() != 0 && fs::acting_as().is_none() && e.permission_denied()
}

/// A step's result: `Ok(Some(_))` when it was done but something after the
/// point of no return failed (a replaced slot's old tree not removed).
type StepResult = Result<Option<StepError>, StepError>;

fn run_one(
    c: &Change,
    anchors: &mut dyn Anchors,
    cache: &mut ParentCache,
    me: Owner,
) -> StepResult {
    let t = &c.target;
    let (parent, name) = match t.rel.parent().zip(t.rel.file_name()) {
        Some((p, n)) => (p, n),
        // The anchor itself (the scandir): act on its held fd.
        _ => {
            let dir = anchors.anchor(t.anchor).map_err(|e| ("open", e))?;
            return on_self(dir, c).map(|()| None);
        }
    };
    cache
        .get(anchors, t.anchor, parent)
        .map_err(|e| ("open", e))?;
    on_child(cache, name, c, me)
}

fn on_self(dir: &Dir, c: &Change) -> Result<(), StepError> {
    let m = &c.target.expect;
    match c.op {
        Op::Perms { to, .. } => Ok(dir.set_perms_self(m, to.owner(), to.mode)?),
        _ => Err(StepError {
            op: c.op.verb(),
            cause: Cause::Text(format!(
                "refusing to {} a configured base directory",
                c.op.verb()
            )),
        }),
    }
}

fn on_child(cache: &mut ParentCache, name: &OsStr, c: &Change, me: Owner) -> StepResult {
    let m = &c.target.expect;
    match &c.op {
        Op::Publish(b) => {
            cache.check_same(m).map_err(|e| ("publish", e))?;
            publish(cache.dir.as_ref().expect("after get"), name, b, None, me)
        }
        Op::Replace(b) => publish(cache.dir.as_ref().expect("after get"), name, b, Some(m), me),
        &Op::Create { .. } | &Op::SeedState { .. } => {
            // Into the directory observed, never another.
            cache.check_same(m).map_err(|e| ("create", e))?;
            on_entry(cache.dir.as_ref().expect("after get"), name, c).map(|()| None)
        }
        _ => on_entry(cache.dir.as_ref().expect("after get"), name, c).map(|()| None),
    }
}

fn on_entry(dir: &Dir, name: &OsStr, c: &Change) -> Result<(), StepError> {
    let m = &c.target.expect;
    match &c.op {
        Op::Perms { to, .. } => Ok(dir.set_perms(name, m, to.owner(), to.mode)?),
        Op::Publish(_) | Op::Replace(_) => unreachable!("on_child publishes"),
        // `down` goes in place into the slot observed (checked by the caller).
        &Op::Create { mode } => Ok(dir
            .create_file(name, b"", mode)
            .map_err(|e| ("create", e))?),
        &Op::SeedState { owner } => {
            // Into the home observed (checked by the caller), never through
            // a symlink, never over an existing file (O_EXCL), as the user.
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let content = crate::desired::application::command::migrated_state(unix);
            crate::fs::as_user(owner, || dir.create_file(name, content.as_bytes(), 0o644))
                .map_err(|e| ("create", e))?;
            Ok(())
        }
        Op::Remove | Op::Unlink => {
            let now = dir.stat(name).map_err(|e| ("stat", e))?;
            if !now.same_file(m) {
                return Err(StepError {
                    op: c.op.verb(),
                    cause: Refusal::NotAsObserved.into(),
                });
            }
            if let Some(dot) = retire_name(c) {
                // A pruned slot: out of s6-svscan's sight now, removed once
                // its supervisor has let go (see `retire`).
                if dir
                    .stat_opt(OsStr::new(&dot))
                    .map_err(|e| ("stat", e))?
                    .is_some()
                {
                    remove_unheld(dir, OsStr::new(&dot))?;
                }
                Ok(dir
                    .rename_noreplace(name, OsStr::new(&dot))
                    .map_err(|e| ("remove", e))?)
            } else if matches!(c.op, Op::Remove) {
                remove_unheld(dir, name)
            } else {
                Ok(dir.unlink(name).map_err(|e| ("unlink", e))?)
            }
        }
    }
}

/// Remove the tree `name` of `dir` unless a supervisor still holds it
/// (see [`retire::held`]): a leftover a run could not retire in time is
/// removed only once its supervisor has let go. A tree whose lock these
/// ids cannot look at (a directory they cannot search) goes to the removal,
/// which says what stops it.
fn remove_unheld(dir: &Dir, name: &OsStr) -> Result<(), StepError> {
    if matches!(retire::held(dir, name), Ok(true)) {
        return Err(StepError {
            op: "remove",
            cause: Cause::Supervised,
        });
    }
    Ok(dir.remove_tree(name).map_err(|e| ("remove", e))?)
}

/// Build the slot completely under its staging name (a dot name: s6-svscan
/// ignores it), then make it visible in one step: `rename` for a new slot,
/// `RENAME_EXCHANGE` with the existing one (`replace` = its observed
/// identity), whose old tree is then removed. At no instant is the slot
/// missing or half-built under its real name.
fn publish(
    scandir: &Dir,
    slot: &OsStr,
    b: &SlotBuild,
    replace: Option<&fs::Meta>,
    me: Owner,
) -> StepResult {
    let verb = if replace.is_some() {
        "replace"
    } else {
        "publish"
    };
    stage::stage(scandir, b, me).map_err(|e| stage::inside(verb, b, e))?;
    swap(scandir, slot, b, replace)
}

/// Make a staged slot visible (see [`publish`]); the staging dir is
/// removed if that fails.
fn swap(scandir: &Dir, slot: &OsStr, b: &SlotBuild, replace: Option<&fs::Meta>) -> StepResult {
    let staging = OsStr::new(&b.staging);
    let verb = if replace.is_some() {
        "replace"
    } else {
        "publish"
    };
    let swapped = match replace {
        None => scandir.rename_noreplace(staging, slot),
        Some(m) => match scandir.stat(slot) {
            Ok(now) if now.same_file(m) => scandir.exchange(staging, slot),
            Ok(_) => Err(Refusal::NotAsObserved.into()),
            Err(e) => Err(e),
        },
    };
    if let Err(e) = swapped {
        let _ = scandir.remove_tree(staging);
        return Err((verb, e).into());
    }
    // A replace: the staging name now holds the old slot, removed once its
    // supervisor has let go (see `retire`, after the rescan).
    Ok(None)
}

/// The dot name a change retires a slot tree under, if it does: the old
/// tree of a replace (swapped to the staging name), or a pruned slot (a
/// top-level slot directory the profiles phase removes, renamed to its
/// retire name).
pub fn retire_name(c: &Change) -> Option<String> {
    match &c.op {
        Op::Replace(b) => Some(b.staging.clone()),
        Op::Remove
            if c.phase == crate::desired::model::Phase::Profiles
                && c.target.anchor == Anchor::Scandir
                && c.target.expect.kind == fs::Kind::Dir =>
        {
            let name = c.target.rel.to_str()?;
            let top = !name.is_empty() && !name.contains('/') && !name.starts_with('.');
            top.then(|| crate::s6::names::retired_name(name))
        }
        _ => None,
    }
}
