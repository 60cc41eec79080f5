//! Building a slot under its staging name (`.<slot>.tmp`, invisible to
//! s6-svscan), completely, with exact modes and owners, before anything
//! publishes it. A leftover of an interrupted run at that name is removed
//! first; a failed build is removed again.

use std::ffi::OsStr;
use std::path::Path;

use crate::desired::slot::SlotEntry;
use crate::fs::{self, Dir};
use crate::plan::{Owner, SlotBuild};
use crate::s6::findings::Cause;
use crate::s6::layout::MODE_SLOT_DIR;

use super::StepError;

/// Build `b` in `scandir` under its staging name. `me`: the effective ids
/// the entries are created with. Errors are the step's (see [`inside`]).
pub fn stage(scandir: &Dir, b: &SlotBuild, me: Owner) -> Result<(), StepError> {
    let staging = OsStr::new(&b.staging);
    let top = match scandir.make_dir_open(staging, MODE_SLOT_DIR) {
        // A leftover of an interrupted run (no running apply owns one:
        // applies are serialized by the lock), unless its supervisor still
        // holds it (an old tree a run left there).
        Err(e) if fs::Os::Exists.is(&e) => {
            super::remove_unheld(scandir, staging).map_err(|e| StepError {
                op: "remove leftover",
                cause: e.cause,
            })?;
            scandir.make_dir_open(staging, MODE_SLOT_DIR)
        }
        r => r,
    }
    .map_err(|e| ("mkdir", e))?;
    if fs::born_dir_mode(MODE_SLOT_DIR, false).is_none() {
        // A umask took bits away (not the case in a run: it clears it).
        if let Err(e) = top.chmod_self(MODE_SLOT_DIR) {
            let _ = scandir.remove_tree(staging);
            return Err(("chmod", e).into());
        }
    }
    let entries = b.entries();
    let built = if b.owner == me && entries.iter().all(|(_, o)| *o == me) {
        build_own(top, &entries)
    } else {
        build_for(top, b.owner, &entries, me)
    };
    if let Err(e) = built {
        let _ = scandir.remove_tree(staging);
        return Err(e);
    }
    Ok(())
}

/// A failure inside the staging dir, reported on the slot (`verb`: its
/// publish or replace) with the step and the staging dir.
pub fn inside(verb: &'static str, b: &SlotBuild, e: StepError) -> StepError {
    StepError {
        op: verb,
        cause: Cause::InStaging {
            step: e.op,
            staging: b.staging.clone(),
            cause: Box::new(e.cause),
        },
    }
}

/// A directory of the slot held open while its entries are made.
struct Held {
    /// Relative to the slot (`""`: the slot itself).
    path: &'static str,
    dir: Dir,
    /// Its mode now, and the mode it must end with.
    now: u32,
    want: u32,
}

/// Every entry created by us with its final owner (no chown): the case of
/// the user building their own slot. Directories are opened only when
/// entries go in them. The setgid leaves (`event/`) get their setgid bit
/// by inheritance (see `fs::stage`): while the slot is built, its held
/// directories carry setgid, cleared on each by one `fchmod` at the end.
/// A kill in between leaves only the staging dir, which is never
/// published and is removed by the next run.
fn build_own(top: Dir, entries: &[(SlotEntry, Owner)]) -> Result<(), StepError> {
    let setgid = entries
        .iter()
        .any(|(e, _)| matches!(e, SlotEntry::Dir { mode, .. } if mode & fs::SETGID != 0));
    let mut now = MODE_SLOT_DIR;
    if setgid && fs::born_dir_mode(MODE_SLOT_DIR, false).is_some() {
        now |= fs::SETGID;
        top.chmod_self(now).map_err(|e| ("chmod", e))?;
    }
    let mut held = Vec::with_capacity(entries.len());
    held.push(Held {
        path: "",
        dir: top,
        now,
        want: MODE_SLOT_DIR,
    });
    // Each entry's parent and name, split once (text, not path components).
    let split: Vec<(&str, &str)> = entries.iter().map(|(e, _)| e.parent_and_name()).collect();
    for (i, (e, _)) in entries.iter().enumerate() {
        let p = e.rel();
        let (parent, name) = split[i];
        let name = OsStr::new(name);
        let Some(at) = held.iter().position(|h| h.path == parent) else {
            // Entries list parents first: a parent is always held.
            return Err(StepError {
                op: "create",
                cause: Cause::Text(format!("{p} has no parent in the slot")),
            });
        };
        let (dir, parent_now) = (&held[at].dir, held[at].now);
        match e {
            SlotEntry::Dir { mode, .. } => {
                let has_children = split[i + 1..].iter().any(|(q, _)| *q == p);
                let born = fs::born_dir_mode(*mode, parent_now & fs::SETGID != 0);
                if has_children {
                    let d = dir.make_dir_open(name, *mode).map_err(|e| ("mkdir", e))?;
                    let now = match born {
                        Some(m) => m,
                        None => {
                            d.chmod_self(*mode).map_err(|e| ("chmod", e))?;
                            *mode
                        }
                    };
                    held.push(Held {
                        path: p,
                        dir: d,
                        now,
                        want: *mode,
                    });
                } else {
                    dir.make_dir(name, *mode).map_err(|e| ("mkdir", e))?;
                    if born != Some(*mode) {
                        let d = dir.open_dir(name).map_err(|e| ("open", e))?;
                        d.chmod_self(*mode).map_err(|e| ("chmod", e))?;
                    }
                }
            }
            SlotEntry::File { mode, content, .. } => dir
                .create_file(name, content.as_bytes(), *mode)
                .map_err(|e| ("create", e))?,
            SlotEntry::Fifo { mode, .. } => dir.mkfifo(name, *mode).map_err(|e| ("mkfifo", e))?,
        }
    }
    for h in &held {
        if h.now != h.want {
            h.dir.chmod_self(h.want).map_err(|e| ("chmod", e))?;
        }
    }
    Ok(())
}

/// Entries that need another owner than ours (root building a strict
/// slot): each created with its exact mode, then chowned (and its mode set
/// again: a chown may clear setgid).
fn build_for(
    top: Dir,
    owner: Owner,
    entries: &[(SlotEntry, Owner)],
    me: Owner,
) -> Result<(), StepError> {
    if owner != me {
        let m = top.meta().map_err(|e| ("stat", e))?;
        top.set_perms_self(&m, Some(owner), None)?;
    }
    // The directories made here stay open (entries list parents first), so
    // each entry is created through its parent's fd instead of walking the
    // path again for every entry.
    let mut made: Vec<(&str, Dir)> = Vec::new();
    for (e, owner) in entries {
        let p = e.rel();
        let (parent, name) = e.parent_and_name();
        let name = OsStr::new(name);
        let reopened;
        let dir = if parent.is_empty() {
            &top
        } else if let Some((_, d)) = made.iter().find(|(q, _)| *q == parent) {
            d
        } else {
            reopened = top
                .open_beneath(Path::new(parent))
                .map_err(|e| ("open", e))?;
            &reopened
        };
        let new_dir = match e {
            SlotEntry::Dir { mode, .. } => Some(dir.mkdir(name, *mode).map_err(|e| ("mkdir", e))?),
            SlotEntry::File { mode, content, .. } => {
                dir.create_file(name, content.as_bytes(), *mode)
                    .map_err(|e| ("create", e))?;
                None
            }
            SlotEntry::Fifo { mode, .. } => {
                dir.mkfifo(name, *mode).map_err(|e| ("mkfifo", e))?;
                None
            }
        };
        if *owner != me {
            // chown may clear setgid bits: set the mode again after it.
            let m = dir.stat(name).map_err(|e| ("stat", e))?;
            dir.set_perms(name, &m, Some(*owner), Some(e.mode()))?;
        }
        if let Some(d) = new_dir {
            made.push((p, d));
        }
    }
    Ok(())
}
