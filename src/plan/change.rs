//! What a plan holds: changes (an operation on a target below a configured
//! base, under a condition), slot builds and the plan itself.

use std::path::PathBuf;

use crate::desired::config::Policy;
use crate::desired::model::Perms;
use crate::desired::model::Phase;
use crate::desired::slot::{self, SlotEntry};
use crate::desired::state::{Action, PriorExit};
use crate::fs::Meta;
use crate::plan::slot_diff::Why;
use crate::plan::steps::{Effect, When};
use crate::s6::findings::{Failure, Skipped};
use crate::s6::layout::{self, MODE_SUPERVISE_STATIC};

/// Which configured base directory a change is relative to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Anchor {
    Servicedirs,
    Scandir,
    /// The profiles home (the persistent volume).
    Home,
}

/// Where apply finds the target of a change, and what it must still be.
#[derive(Clone, Debug)]
pub struct Target {
    pub anchor: Anchor,
    /// Relative to the anchor; empty for the anchor itself.
    pub rel: PathBuf,
    /// The entry as observed; apply refuses to act if dev/ino/kind changed.
    pub expect: Meta,
}

/// One operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Owner and/or mode, set in one step (narrow, chown, chmod). `to`'s
    /// set parts change (an owner change sets both ids); `from` has the
    /// observed values of the same parts.
    Perms { from: Perms, to: Perms },
    /// Remove a directory tree (never following symlinks inside it).
    Remove,
    /// Remove one non-directory (a symlink itself, never its target).
    Unlink,
    /// Build a slot in its staging dir, then `rename` it into place.
    Publish(Box<SlotBuild>),
    /// Build a slot in its staging dir, then swap it with the existing one
    /// (`RENAME_EXCHANGE`) and remove the old tree.
    Replace(Box<SlotBuild>),
    /// Create an empty file (a slot's `down`) in place.
    Create { mode: u32 },
    /// Write the default profile's state file for a legacy `gateway run`
    /// container (`running`, stamped when written), with `owner`'s
    /// effective ids when root.
    SeedState { owner: (u32, u32) },
}

/// An owner as (uid, gid).
pub type Owner = (u32, u32);

/// What every slot of one plan is rendered from: shared, so a plan holds
/// no slot's scripts (at 10,000 profiles that was most of the memory).
#[derive(Debug, PartialEq, Eq)]
pub struct SlotRecipe {
    /// The scripts, prepared once for every slot.
    pub scripts: slot::Scripts,
    pub policy: Policy,
    pub uid: u32,
    pub gid: u32,
}

/// Everything needed to build one slot. Its entries (scripts included)
/// are rendered when needed ([`SlotBuild::entries`]) by the comparer, the
/// builder and the diff, and dropped after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotBuild {
    pub profile: String,
    pub staging: String,
    /// Owner of the slot directory itself.
    pub owner: Owner,
    pub is_default: bool,
    /// Registered, not started: the slot has `down`.
    pub down: bool,
    pub recipe: std::sync::Arc<SlotRecipe>,
}

impl SlotBuild {
    /// Every entry, parents first, with its owner.
    pub fn entries(&self) -> Vec<(SlotEntry, Owner)> {
        let r = &*self.recipe;
        let files = r.scripts.render(&self.profile, self.is_default);
        slot_entries(slot::entries(files, self.down), r.policy, r.uid, r.gid).1
    }
}

/// The slot's entries with their owners and the policy's modes: in compat
/// everything belongs to the user (who builds it); in strict the
/// definitions are root's and only the supervise skeleton is the group's,
/// with s6-svperms' modes.
pub fn slot_entries(
    entries: Vec<SlotEntry>,
    policy: Policy,
    uid: u32,
    gid: u32,
) -> (Owner, Vec<(SlotEntry, Owner)>) {
    if policy == Policy::Compat {
        let v = entries.into_iter().map(|e| (e, (uid, gid))).collect();
        return ((uid, gid), v);
    }
    let v = entries
        .into_iter()
        .map(|e| {
            let skeleton = layout::in_skeleton(e.path());
            let e = match e {
                SlotEntry::Dir { path, .. } if path.ends_with(layout::SUPERVISE) => {
                    SlotEntry::Dir {
                        path,
                        mode: MODE_SUPERVISE_STATIC,
                    }
                }
                SlotEntry::Fifo { path, .. } => SlotEntry::Fifo {
                    path,
                    mode: layout::MODE_CONTROL_STRICT,
                },
                e => e,
            };
            let owner = if skeleton { (0, gid) } else { (0, 0) };
            (e, owner)
        })
        .collect();
    ((0, 0), v)
}

impl Op {
    pub fn verb(&self) -> &'static str {
        match self {
            Op::Perms { to, .. } if to.owner().is_some() => "chown",
            Op::Perms { .. } => "chmod",
            Op::Remove => "remove",
            Op::Unlink => "unlink",
            Op::Publish(_) => "publish",
            Op::Replace(_) => "replace",
            Op::Create { .. } | Op::SeedState { .. } => "create",
        }
    }

    /// Order within one path: removals first.
    pub(super) fn rank(&self) -> u8 {
        match self {
            Op::Remove | Op::Unlink => 0,
            Op::Publish(_)
            | Op::Replace(_)
            | Op::Create { .. }
            | Op::SeedState { .. }
            | Op::Perms { .. } => 1,
        }
    }

    /// The op as printed: one part per verb, with `from` and `to` as
    /// printed (`0:0`, `0700`) when it has them. A permissions change is
    /// one step but two parts when both owner and mode change (`chown`,
    /// then `chmod`), so a plan reads as the calls it makes.
    pub fn parts(&self) -> impl Iterator<Item = (&'static str, Option<(Shown, Shown)>)> {
        let (first, second) = match self {
            Op::Perms { from, to } => {
                let chown = from.owner().zip(to.owner()).map(|((fu, fg), (tu, tg))| {
                    ("chown", Some((Shown::Owner(fu, fg), Shown::Owner(tu, tg))))
                });
                let chmod = from
                    .mode
                    .zip(to.mode)
                    .map(|(f, t)| ("chmod", Some((Shown::Mode(f), Shown::Mode(t)))));
                match chown {
                    Some(c) => (Some(c), chmod),
                    None => (chmod, None),
                }
            }
            op => (Some((op.verb(), None)), None),
        };
        first.into_iter().chain(second)
    }

    /// How many parts [`Op::parts`] gives (changes are counted as printed).
    pub fn part_count(&self) -> usize {
        self.parts().count()
    }
}

/// An owner (`uid:gid`) or a mode (4-digit octal) as a plan prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    Owner(u32, u32),
    Mode(u32),
}

impl Shown {
    /// Push as [`Display`](std::fmt::Display) shows it, without the
    /// formatting machinery (a plan has a line or two per entry).
    pub fn push_to(self, buf: &mut String) {
        fn decimal(buf: &mut String, n: u32) {
            let mut digits = [0u8; 10];
            let mut at = digits.len();
            let mut n = n;
            loop {
                at -= 1;
                digits[at] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            digits[at..].iter().for_each(|&d| buf.push(char::from(d)));
        }
        match self {
            Shown::Owner(u, g) => {
                decimal(buf, u);
                buf.push(':');
                decimal(buf, g);
            }
            // `{:04o}`: at least four octal digits.
            Shown::Mode(m) => {
                let width = (32 - m.leading_zeros()).div_ceil(3).max(4);
                for i in (0..width).rev() {
                    buf.push(char::from(b'0' + ((m >> (3 * i)) & 7) as u8));
                }
            }
        }
    }
}

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shown::Owner(u, g) => write!(f, "{u}:{g}"),
            Shown::Mode(m) => write!(f, "{m:04o}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Change {
    pub phase: Phase,
    /// Container path, as printed.
    pub path: PathBuf,
    pub op: Op,
    /// Its condition: a volume change waits for the slots.
    pub when: When,
    pub target: Target,
    /// Why a slot is published or replaced, or its `down` changed.
    pub why: Option<Box<Why>>,
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Tree changes, in the order apply runs them.
    pub changes: Vec<Change>,
    /// What the run does after the changes (rescan, boot log): shown, not drift.
    pub effects: Vec<Effect>,
    pub slots: Vec<SlotReport>,
    pub skipped: Vec<Skipped>,
    pub warnings: Vec<String>,
    pub errors: Vec<Failure>,
    /// Stdout lines of the profiles phase besides one per slot (a
    /// dashboard container's notice).
    pub lines: Vec<String>,
}

/// What happens to one profile's slot (docs/phases.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotReport {
    pub profile: String,
    /// `None` when the name is not valid (no slot name is built from it).
    pub slot: Option<String>,
    pub prior_state: Option<String>,
    pub action: Action,
    pub reason: Option<String>,
    pub prior_exit: PriorExit,
    /// The default slot under multiplexing: the named profiles whose state
    /// asked to autostart, folded into it (docs/reference-image.md, "One gateway per container").
    pub folded: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permissions_change_is_one_op_printed_as_its_calls() {
        let both = Op::Perms {
            from: Perms {
                uid: Some(0),
                gid: Some(0),
                mode: Some(0o700),
            },
            to: Perms {
                uid: Some(10000),
                gid: Some(10000),
                mode: Some(0o710),
            },
        };
        let shown = |op: &Op| -> Vec<(&str, Option<(String, String)>)> {
            op.parts()
                .map(|(v, ft)| (v, ft.map(|(f, t)| (f.to_string(), t.to_string()))))
                .collect()
        };
        assert_eq!(
            shown(&both),
            vec![
                ("chown", Some(("0:0".into(), "10000:10000".into()))),
                ("chmod", Some(("0700".into(), "0710".into()))),
            ]
        );
        assert_eq!(both.part_count(), 2);
        assert_eq!(both.verb(), "chown");
        let mode_only = Op::Perms {
            from: Perms {
                mode: Some(0o600),
                ..Perms::default()
            },
            to: Perms {
                mode: Some(0o660),
                ..Perms::default()
            },
        };
        assert_eq!(
            shown(&mode_only),
            vec![("chmod", Some(("0600".into(), "0660".into())))]
        );
        assert_eq!(shown(&Op::Unlink), vec![("unlink", None)]);
        assert_eq!(Op::Unlink.part_count(), 1);
    }

    #[test]
    fn shown_values_push_as_they_display() {
        for v in [
            Shown::Owner(0, 0),
            Shown::Owner(10000, 10000),
            Shown::Owner(u32::MAX, 7),
            Shown::Mode(0),
            Shown::Mode(0o7),
            Shown::Mode(0o755),
            Shown::Mode(0o3730),
            Shown::Mode(0o17777),
            Shown::Mode(u32::MAX),
        ] {
            let mut pushed = String::new();
            v.push_to(&mut pushed);
            assert_eq!(pushed, v.to_string());
        }
    }
}
