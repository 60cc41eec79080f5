//! Applying: the lock, one observation, the root phases, then the profiles
//! phase as the user.

use std::path::PathBuf;

use super::{Fatal, observe, volume_owners_doing, warn_unwritable_volume};
use crate::apply::effects;
use crate::apply::lock;
use crate::apply::{self, Anchors, Applied, retire};
use crate::cli::args::Settings;
use crate::desired::config::Policy;
use crate::desired::model::{Desired, Phase};
use crate::fs::{self, Dir};
use crate::observe::Observed;
use crate::plan::steps::{self, Outcome};
use crate::plan::{self, Anchor};
use crate::report::Report;
use crate::s6::findings::{Failure, say_who_acted};

/// The configured bases, opened lazily beneath the root at apply time.
struct OpenBases<'a> {
    root: &'a Dir,
    desired: &'a Desired,
    servicedirs: Option<Dir>,
    scandir: Option<Dir>,
    home: Option<Dir>,
}

impl Anchors for OpenBases<'_> {
    fn anchor(&mut self, a: Anchor) -> Result<&Dir, fs::BaseError> {
        let (slot, path) = match a {
            Anchor::Servicedirs => (&mut self.servicedirs, self.desired.servicedirs()),
            Anchor::Scandir => (&mut self.scandir, self.desired.scandir()),
            Anchor::Home => (&mut self.home, &self.desired.config.profiles.home.0),
        };
        if slot.is_none() {
            let acct = &self.desired.account;
            let base = fs::resolve_base(self.root, path, &acct.ids())?;
            *slot = Some(base.dir);
        }
        Ok(slot.as_ref().expect("set above"))
    }
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
fn apply_profiles(desired: &Desired, root: &Dir, observed: &Observed, report: &mut Report) {
    let acct = &desired.account;
    if fs::euid() == 0 && desired.policy() == Policy::Compat {
        if let Err(e) = fs::act_as(acct.uid, acct.gid) {
            report.errors.push(Failure {
                op: "act as".into(),
                path: PathBuf::from(format!("uid {} gid {}", acct.uid, acct.gid)),
                error: e.into(),
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
    let mut outcomes = apply::apply(&plan.changes, &mut anchors);
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
    retire_old_trees(desired, &applied, &mut anchors, report);
    report.add_applied(plan, applied);
}

/// After the rescan: remove the trees this apply retired (replaced slots'
/// old trees, pruned slots) once their supervisors have let go, within
/// one deadline for them all; say which are left for the next run.
fn retire_old_trees(
    desired: &Desired,
    applied: &Applied,
    anchors: &mut dyn Anchors,
    report: &mut Report,
) {
    let names: Vec<String> = applied.done.iter().filter_map(apply::retire_name).collect();
    if names.is_empty() {
        return;
    }
    let scandir = match anchors.anchor(Anchor::Scandir) {
        Ok(d) => d,
        Err(e) => {
            report.errors.push(Failure {
                op: "open".into(),
                path: desired.scandir().to_path_buf(),
                error: e.into(),
            });
            return;
        }
    };
    let deadline = std::time::Instant::now() + retire::DEADLINE;
    for (name, why) in retire::retire(scandir, names, deadline).left {
        report.warnings.push(format!(
            "{}: old slot tree left under this name ({why}); the next run removes it",
            desired.scandir().join(name).display()
        ));
    }
}

/// An apply of the settings' phases: the lock held throughout, the tree
/// observed once, the root phases applied, then the profiles phase.
pub(super) fn apply_all(
    settings: &Settings,
    desired: &Desired,
    root: &Dir,
    report: &mut Report,
) -> Result<Option<lock::ApplyLock>, Fatal> {
    let root_phases: Vec<Phase> = settings
        .phases
        .iter()
        .copied()
        .filter(|p| *p != Phase::Profiles)
        .collect();
    let with_profiles = settings.phases.contains(&Phase::Profiles);

    // Held to the end of the apply (through the privilege drop, the boot
    // log and the recorded report: the caller keeps it), so no other apply
    // observes a half-applied tree.
    let acct = &desired.account;
    let held = lock::acquire(root, &acct.ids(), settings.lock_wait, |path| {
        log::warn!(
            "another apply holds {}; waiting up to {} s for it to finish",
            path.display(),
            settings.lock_wait.as_secs()
        )
    })?;
    if let Some(lock) = &held {
        log::debug!("holding the apply lock {}", lock.path.display());
    }
    fs::clear_umask();
    // Observed once; each part of the apply plans from it, and what
    // apply did is written back into it (never observed again).
    let mut observed = observe(settings, desired, root);
    warn_unwritable_volume(desired, &observed, fs::euid() == 0, report);
    if !root_phases.is_empty() {
        observed.phases = root_phases;
        let mut plan = plan::plan(desired, &observed);
        let outcomes = apply::apply(&plan.changes, &mut bases(root, desired));
        let applied = Applied::collect(std::mem::take(&mut plan.changes), outcomes);
        observed.applied(&applied.done);
        report.add_applied(plan, applied);
    }
    if with_profiles {
        observed.phases = vec![Phase::Profiles];
        apply_profiles(desired, root, &observed, report);
    }
    volume_owners_doing(desired, &observed, report);
    Ok(held)
}
