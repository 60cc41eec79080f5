//! The plan's steps besides the tree changes themselves: when a change
//! runs, what the run does after the changes (its effects), and how the
//! typed outcome of each step settles what is reported.
//!
//! Everything an apply does is in the plan, with its condition:
//! - changes in the volume (stale runtime files, a seeded state file) run
//!   only once every slot change of the same apply went through
//!   ([`When::AfterSlots`]), so a failed boot leaves the volume as it was;
//! - [`Effect::Rescan`]: after the slot changes, if any went through and an
//!   s6-svscan listens, `a` (as `s6-svscanctl -a`) is written to its control
//!   FIFO, or `an` when a slot was replaced or removed: a rescan only starts
//!   supervisors for new dev/ino pairs, and `n` stops those whose directory
//!   left the scandir (s6-svscan 2.11 keeps the old s6-supervise otherwise);
//! - [`Effect::BootLog`]: one line per profile appended to the boot log.
//!
//! Effects are shown by `--plan` but are not drift: `--check` counts
//! changes only, and a converged tree still appends its boot log lines.
//! This module is pure; `apply` and `effects` execute what it plans.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::desired::model::{Desired, Phase};
use crate::desired::state::Action;
use crate::plan::SlotReport;
use crate::plan::{Anchor, Change, Op, Plan};
use crate::s6::findings::Failure;
use crate::s6::layout;

/// When a change runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum When {
    /// In plan order.
    #[default]
    Always,
    /// Only if every change before it in the same apply went through (the
    /// volume's changes, after the slots).
    AfterSlots,
}

impl When {
    /// The condition as printed after the change, if it has one.
    pub fn describe(self) -> Option<&'static str> {
        match self {
            When::Always => None,
            When::AfterSlots => Some("after the slots"),
        }
    }

    /// As the JSON `when` field.
    pub fn as_str(self) -> &'static str {
        match self {
            When::Always => "always",
            When::AfterSlots => "after-slots",
        }
    }
}

/// What a rescan request writes to s6-svscan's control FIFO.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rescan {
    /// `a`: rescan now (slots were only added).
    Add,
    /// `an`: rescan and stop the supervisors of services that left the
    /// scandir (a slot was replaced or removed).
    Prune,
}

impl Rescan {
    pub fn command(self) -> &'static str {
        match self {
            Rescan::Add => "a",
            Rescan::Prune => "an",
        }
    }
}

/// A run effect: done after the changes, shown by `--plan`, never drift.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Ask a running s6-svscan to rescan (`control`: its FIFO, a
    /// container path). `planned` is what the changes as planned call for;
    /// apply writes what the changes done call for ([`rescan_for`]).
    Rescan { control: PathBuf, planned: Rescan },
    /// Append one line per profile to the boot log (`path`, a container
    /// path; `rel`, relative to the profiles home), rotated first at
    /// `rotate_bytes`, written with `ids` as effective ids when root.
    BootLog {
        path: PathBuf,
        rel: PathBuf,
        rotate_bytes: u64,
        lines: usize,
        ids: (u32, u32),
    },
}

impl Effect {
    pub fn verb(&self) -> &'static str {
        match self {
            Effect::Rescan { .. } => "rescan",
            Effect::BootLog { .. } => "append",
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Effect::Rescan { control, .. } => control,
            Effect::BootLog { path, .. } => path,
        }
    }
}

/// The typed outcome of one change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Done (the slot is published), with a failure after the point of no
    /// return: the old tree swapped out could not be removed.
    DoneWith(Failure),
    Failed(Failure),
    /// Not run: its condition did not hold.
    NotRun(&'static str),
    /// Refused to a run that is not root (EPERM, EACCES): not a failure
    /// of the run, said once as what needs root (docs/security.md, "What it
    /// observes, and how").
    NeedsRoot(Failure),
}

impl Outcome {
    pub fn done(&self) -> bool {
        matches!(self, Outcome::Done | Outcome::DoneWith(_))
    }
}

/// Why a [`When::AfterSlots`] change did not run.
pub const SLOTS_FAILED: &str = "left in place: publishing the slots failed";

/// Give the profiles phase's changes their conditions, put them in the
/// order they run, and plan the effects. `home_present`: the profiles home
/// could be observed (the boot log is written there).
pub fn plan_steps(d: &Desired, plan: &mut Plan, home_present: bool) {
    for c in plan.changes.iter_mut() {
        if c.phase == Phase::Profiles && c.target.anchor == Anchor::Home {
            c.when = When::AfterSlots;
        }
    }
    crate::plan::sort_changes(&mut plan.changes);
    let in_profiles = plan.changes.iter().filter(|c| c.phase == Phase::Profiles);
    if let Some(planned) = rescan_for(in_profiles) {
        let control = d.scandir().join(layout::SVSCAN_DIR).join(layout::CONTROL);
        plan.effects.push(Effect::Rescan { control, planned });
    }
    // Nothing to log when no profile was considered (a dashboard container).
    // A runtime pass writes no boot log (docs/runtime.md).
    if home_present && !plan.slots.is_empty() && !d.runtime {
        let cfg = &d.config.boot_log;
        plan.effects.push(Effect::BootLog {
            path: d.config.profiles.home.0.join(&cfg.path.0),
            rel: cfg.path.0.clone(),
            rotate_bytes: cfg.rotate_bytes,
            lines: plan.slots.len(),
            ids: (d.account.uid, d.account.gid),
        });
    }
}

/// The rescan that `changes` (planned or done) call for: none when no
/// top-level slot entry changed; `a` when slots were only published; `an`
/// when one was replaced or removed. Dot names (staging dirs) and entries
/// inside a slot (`down`) never count.
pub fn rescan_for<'a>(changes: impl Iterator<Item = &'a Change>) -> Option<Rescan> {
    let mut want = None;
    for c in changes.filter(|c| c.target.anchor == Anchor::Scandir) {
        let mut parts = c.target.rel.components();
        let top_level_slot = match (parts.next(), parts.next()) {
            (Some(name), None) => !name.as_os_str().as_encoded_bytes().starts_with(b"."),
            _ => false,
        };
        match &c.op {
            Op::Publish(_) => want = want.max(Some(Rescan::Add)),
            Op::Replace(_) | Op::Remove | Op::Unlink if top_level_slot => {
                return Some(Rescan::Prune);
            }
            _ => {}
        }
    }
    want
}

/// A slot whose publish or replace failed was not published: report it as
/// `skipped` (docs/phases.md), on stdout and in the boot log, with the failure
/// as the reason. A replace that swapped the slot in but could not remove
/// the old tree published it ([`Outcome::DoneWith`]).
pub fn settle_slots(slots: &mut [SlotReport], changes: &[Change], outcomes: &[Outcome]) {
    // Looked up by profile rather than searched for each slot: a search
    // per slot is quadratic in the number of profiles.
    let mut failed: HashMap<&str, (&Change, &Failure)> = HashMap::new();
    for (c, o) in changes.iter().zip(outcomes) {
        if let (Op::Publish(b) | Op::Replace(b), Outcome::Failed(e)) = (&c.op, o) {
            failed.entry(b.profile.as_str()).or_insert((c, e));
        }
    }
    for s in slots {
        let Some((change, e)) = failed.get(s.profile.as_str()) else {
            continue;
        };
        let what = match change.op {
            Op::Replace(_) => "not replaced (the previous slot is left as it was)",
            _ => "not published",
        };
        s.action = Action::Skipped;
        s.reason = Some(format!(
            "{what}: unable to {} {}: {}",
            e.op,
            e.path.display(),
            e.error
        ));
    }
}

/// A run effect, planned or done: a rescan request (`write`: `a` or
/// `an`) or a boot log append (`lines`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectReport {
    pub op: &'static str,
    pub path: PathBuf,
    pub write: Option<&'static str>,
    pub lines: Option<usize>,
}

impl EffectReport {
    /// The effect as the plan has it.
    pub fn planned(e: &Effect) -> EffectReport {
        let (write, lines) = match e {
            Effect::Rescan { planned, .. } => (Some(planned.command()), None),
            Effect::BootLog { lines, .. } => (None, Some(*lines)),
        };
        EffectReport {
            op: e.verb(),
            path: e.path().to_path_buf(),
            write,
            lines,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::state::PriorExit;
    use crate::fs::{Kind, Meta};
    use crate::plan::{SlotBuild, Target};

    fn change(rel: &str, op: Op) -> Change {
        Change {
            phase: Phase::Profiles,
            path: PathBuf::from("/run/service").join(rel),
            op,
            when: When::Always,
            why: None,
            target: Target {
                anchor: Anchor::Scandir,
                rel: PathBuf::from(rel),
                expect: Meta {
                    kind: Kind::Dir,
                    dev: 1,
                    ino: 2,
                    uid: 0,
                    gid: 0,
                    mode: 0o755,
                    nlink: 2,
                    size: 0,
                },
            },
        }
    }

    fn build(profile: &str) -> Box<SlotBuild> {
        Box::new(SlotBuild {
            profile: profile.into(),
            staging: format!(".gateway-{profile}.tmp"),
            owner: (0, 0),
            is_default: false,
            down: false,
            recipe: std::sync::Arc::new(crate::plan::SlotRecipe {
                scripts: crate::desired::slot::Scripts::new(
                    "hermes",
                    "/opt/data",
                    &Default::default(),
                ),
                policy: crate::desired::config::Policy::Compat,
                uid: 10000,
                gid: 10000,
            }),
        })
    }

    #[test]
    fn rescan_follows_what_changed_in_the_scandir() {
        let publish = change("gateway-a", Op::Publish(build("a")));
        let replace = change("gateway-b", Op::Replace(build("b")));
        let down = change("gateway-c/down", Op::Unlink);
        let staging = change(".gateway-d.tmp", Op::Remove);
        let pruned = change("gateway-e", Op::Remove);
        assert_eq!(rescan_for([&down, &staging].into_iter()), None);
        assert_eq!(rescan_for([&publish, &down].into_iter()), Some(Rescan::Add));
        assert_eq!(
            rescan_for([&publish, &replace].into_iter()),
            Some(Rescan::Prune)
        );
        assert_eq!(rescan_for([&pruned].into_iter()), Some(Rescan::Prune));
    }

    #[test]
    fn a_failed_publish_settles_its_slot_as_skipped_and_a_late_failure_does_not() {
        let slot = |p: &str| SlotReport {
            profile: p.into(),
            slot: Some(format!("gateway-{p}")),
            prior_state: None,
            action: Action::Started,
            reason: None,
            prior_exit: PriorExit::Unknown,
            folded: Vec::new(),
        };
        let mut slots = vec![slot("a"), slot("b"), slot("c")];
        let changes = vec![
            change("gateway-a", Op::Publish(build("a"))),
            change("gateway-b", Op::Replace(build("b"))),
            change("gateway-c", Op::Replace(build("c"))),
        ];
        let fail = |op: &str| Failure {
            op: op.into(),
            path: "/run/service/x".into(),
            error: "Permission denied".into(),
        };
        let outcomes = vec![
            Outcome::Failed(fail("publish")),
            Outcome::DoneWith(fail("remove old slot")),
            Outcome::Done,
        ];
        settle_slots(&mut slots, &changes, &outcomes);
        assert_eq!(slots[0].action, Action::Skipped);
        assert_eq!(
            slots[0].reason.as_deref(),
            Some("not published: unable to publish /run/service/x: Permission denied")
        );
        assert_eq!(slots[1].action, Action::Started);
        assert_eq!(slots[2].action, Action::Started);
    }
}
