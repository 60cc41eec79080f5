//! The profiles phase's part of the plan: which profiles, their slots
//! (published, replaced, `down` in place, kept), stale runtime files, the
//! state file a legacy container is given, and the reports.

use std::path::{Path, PathBuf};

use crate::desired::config::Policy;
use crate::desired::model::Phase;
use crate::desired::state::{self, Action, PriorExit};
use crate::fs::Kind;
use crate::observe::{BaseObs, Node, ProfileObs, ProfileSource, ProfilesObs, ScandirObs, StateObs};
use crate::plan::SlotReport;
use crate::plan::slot_diff::{self, SlotDiff};
use crate::plan::steps::When;
use crate::s6::findings::Failure;
use crate::s6::layout::{self};
use crate::{desired::config::StartPolicy, s6::names};

use super::*;

impl Planner<'_> {
    pub(super) fn profiles(
        &mut self,
        o: &ProfilesObs,
        scandir: &BaseObs<ScandirObs>,
        scandir_phase_too: bool,
    ) {
        let d = self.d;
        let cfg = &d.config.profiles;
        let (uid, gid) = (d.account.uid, d.account.gid);
        let app = crate::plan::application::decide(&d.config, o);
        // A dashboard container does nothing in this phase, not even warn
        // about the gateways' configuration.
        if app.dashboard {
            self.plan
                .lines
                .push(crate::desired::application::command::DASHBOARD_LINE.into());
            return;
        }
        self.plan.warnings.extend(app.warnings.iter().cloned());
        match &o.home {
            BaseObs::Missing { path } => self.plan.warnings.push(format!(
                "profiles.home {} is not present: no profile state is read and no boot log is written",
                path.display()
            )),
            BaseObs::Unusable { path, error } => self.plan.errors.push(Failure {
                op: "open".into(),
                path: path.clone(),
                error: error.clone().into(),
            }),
            BaseObs::Present(_) => {}
        }
        let slots = self.slots_in(scandir);
        self.plan.skipped.extend(o.bad_names.iter().cloned());
        for (n, reason) in &o.not_profiles {
            self.plan
                .warnings
                .push(format!("{}: {reason}", n.path.display()));
            self.skip(&n.path, reason.clone());
        }
        let recipe = std::sync::Arc::new(SlotRecipe {
            scripts: slot_diff::scripts(d),
            policy: d.policy(),
            uid,
            gid,
        });
        // The slots kept, for pruning the others (only then). A runtime
        // pass is asked for after a profile was deleted: it always prunes.
        let prune = cfg.prune || d.runtime;
        let mut wanted = std::collections::BTreeSet::new();
        // A report per profile; changes only for the slots that differ
        // (none on a converged tree), so those are not reserved.
        self.plan.slots.reserve(o.profiles.len());
        let folded = if app.multiplex {
            self.folded(o)
        } else {
            Vec::new()
        };
        for p in &o.profiles {
            let folded = if p.source == ProfileSource::Default {
                folded.as_slice()
            } else {
                &[]
            };
            let report = self.profile(p, slots, &recipe, &app, folded);
            if let Some(s) = report.slot.as_ref().filter(|_| prune) {
                wanted.insert(s.clone());
            }
            self.plan.slots.push(report);
        }
        let Some(slots) = slots else { return };
        if prune {
            for s in &slots.entries {
                let name = s.name();
                if name.starts_with(&cfg.slot_prefix) && !wanted.contains(name) {
                    self.removal(Phase::Profiles, &s.node);
                }
            }
        }
        if !scandir_phase_too {
            self.plan.skipped.extend(slots.bad_names.iter().cloned());
            for n in &slots.staging {
                if self.is_leftover(n) {
                    self.removal(Phase::Profiles, n);
                }
            }
        }
    }

    /// The scandir the slots go in, or why there is none (an error).
    fn slots_in<'o>(&mut self, scandir: &'o BaseObs<ScandirObs>) -> Option<&'o ScandirObs> {
        match scandir {
            BaseObs::Present(s) => Some(s),
            BaseObs::Missing { path } => {
                self.plan.errors.push(Failure {
                    op: "open".into(),
                    path: path.clone(),
                    error: "scandir not present; no slot can be published".into(),
                });
                None
            }
            BaseObs::Unusable { path, error } => {
                self.plan.errors.push(Failure {
                    op: "open".into(),
                    path: path.clone(),
                    error: error.clone().into(),
                });
                None
            }
        }
    }

    /// Remove a scandir entry: a directory tree, or the entry itself.
    pub(super) fn removal(&mut self, phase: Phase, n: &Node) {
        let op = if n.meta.kind == Kind::Dir {
            Op::Remove
        } else {
            Op::Unlink
        };
        self.change(phase, Anchor::Scandir, n, op);
    }

    fn profile(
        &mut self,
        p: &ProfileObs,
        slots: Option<&ScandirObs>,
        recipe: &std::sync::Arc<SlotRecipe>,
        app: &crate::plan::application::Decision,
        folded: &[String],
    ) -> SlotReport {
        let (uid, gid) = (recipe.uid, recipe.gid);
        let d = self.d;
        let cfg = &d.config.profiles;
        if let Some(problem) = &p.problem {
            return self.invalid_profile(p, problem);
        }
        let prior_state = self.prior_state(p);
        if let Some(why) = &p.lifecycle_problem {
            let at = p.dir.as_ref().map_or_else(PathBuf::new, |n| n.path.clone());
            self.plan.warnings.push(format!(
                "{}: {why}; its prior exit is unknown",
                at.join("state")
                    .join(crate::observe::LIFECYCLE_FILE)
                    .display()
            ));
        }
        let is_default = p.source == ProfileSource::Default;
        // A runtime pass never migrates: the legacy state is the boot's.
        let prior_state = if is_default && app.migrate_default && !d.runtime {
            self.seed_state(p, (uid, gid));
            Some("running".to_string())
        } else {
            prior_state
        };
        let action = state::decide(
            prior_state.as_deref(),
            &cfg.autostart,
            is_default,
            app.multiplex,
            p.start.unwrap_or(StartPolicy::Auto),
            !folded.is_empty(),
        );
        // At runtime the gateways run: their pid files are not stale.
        if !d.runtime {
            self.stale_files(p);
        }
        let slot_name = names::slot_name(&cfg.slot_prefix, &p.name);
        let owner = match d.policy() {
            Policy::Compat => (uid, gid),
            Policy::Strict => (0, 0),
        };
        // Without a usable scandir nothing is published (docs/phases.md: `skipped`
        // is "not published"); the scandir's own error says why.
        let (action, reason) = match slots {
            Some(slots) => {
                let build = SlotBuild {
                    profile: p.name.clone(),
                    staging: names::staging_name(&slot_name),
                    owner,
                    is_default,
                    down: action == Action::Registered,
                    recipe: recipe.clone(),
                };
                match self.slot_change(slots, &slot_name, build) {
                    Ok(()) => (action, None),
                    Err(why) => (Action::Skipped, Some(why.to_string())),
                }
            }
            None => (
                Action::Skipped,
                Some(format!(
                    "not published: scandir {} is not usable",
                    d.scandir().display()
                )),
            ),
        };
        SlotReport {
            profile: p.name.clone(),
            slot: Some(slot_name),
            prior_state,
            action,
            reason,
            prior_exit: state::parse_lifecycle(p.lifecycle.as_deref()),
            folded: folded.to_vec(),
        }
    }

    /// Under multiplexing, the named profiles whose own state asks to
    /// autostart (start policy `auto`): their intent is folded into the
    /// default slot, with the notice the application prints (docs/reference-image.md,
    /// "One gateway per container"). None without a default profile to fold
    /// into. The warnings about a state file come from [`Self::prior_state`].
    fn folded(&mut self, o: &ProfilesObs) -> Vec<String> {
        let cfg = &self.d.config.profiles;
        let Some(default) = o
            .profiles
            .iter()
            .find(|p| p.source == ProfileSource::Default && p.problem.is_none())
        else {
            return Vec::new();
        };
        let names: Vec<String> = o
            .profiles
            .iter()
            .filter(|p| p.source != ProfileSource::Default && p.problem.is_none())
            .filter(|p| p.start.unwrap_or(StartPolicy::Auto) == StartPolicy::Auto)
            .filter(|p| match &p.state {
                StateObs::Bytes(b) => state::parse_state(b, &cfg.transient_running)
                    .ok()
                    .flatten()
                    .is_some_and(|s| cfg.autostart.contains(&s)),
                _ => false,
            })
            .map(|p| p.name.clone())
            .collect();
        let root = names::slot_name(&cfg.slot_prefix, names::DEFAULT_PROFILE);
        let asked = names.join(", ");
        if names.is_empty() {
            return names;
        }
        if default.start == Some(StartPolicy::Never) {
            self.plan.warnings.push(format!(
                "profile gateway(s) {asked} asked to autostart, but the ROOT slot ({root}) is \
                 declared never: no gateway serves them"
            ));
        } else {
            self.plan.lines.push(format!(
                "reconcile: profile gateway(s) {asked} asked to autostart; one gateway per container \
                 serves every profile, so the ROOT slot ({root}) was started instead and multiplexes them."
            ));
        }
        names
    }

    /// A candidate found unusable while observing: skipped, with why.
    fn invalid_profile(&mut self, p: &ProfileObs, problem: &str) -> SlotReport {
        let at = p
            .dir
            .as_ref()
            .map(|n| n.path.clone())
            .unwrap_or_else(|| PathBuf::from(format!("profile {:?}", p.name)));
        self.skip(&at, problem.to_string());
        SlotReport {
            profile: p.name.clone(),
            slot: None,
            prior_state: None,
            action: Action::Skipped,
            reason: Some(problem.to_string()),
            prior_exit: PriorExit::Unknown,
            folded: Vec::new(),
        }
    }

    /// The state the profile had, from its state file (a warning when the
    /// file is there but says nothing usable).
    fn prior_state(&mut self, p: &ProfileObs) -> Option<String> {
        let why = match &p.state {
            StateObs::Missing => return None,
            StateObs::Bytes(b) => {
                match state::parse_state(b, &self.d.config.profiles.transient_running) {
                    Ok(s) => return s,
                    Err(why) => why.to_string(),
                }
            }
            StateObs::Unreadable(why) => why.clone(),
        };
        self.plan.warnings.push(format!(
            "{}: {why}; treating the profile as having no state",
            p.state_path(&self.d.config.profiles).display()
        ));
        None
    }

    /// Stale runtime files of a previous container: removed.
    fn stale_files(&mut self, p: &ProfileObs) {
        for n in &p.stale {
            if n.meta.kind == Kind::Dir {
                let why = "stale runtime file is a directory; left alone";
                self.skip(&n.path, why.into());
                continue;
            }
            self.change(Phase::Profiles, Anchor::Home, n, Op::Unlink);
        }
    }

    /// The change that brings the slot `name` to `build`, if any. `Err`
    /// with the reason when the existing slot could not be compared (it is
    /// left as it is, and the failure is reported).
    fn slot_change(
        &mut self,
        slots: &ScandirObs,
        name: &str,
        build: SlotBuild,
    ) -> Result<(), NotCompared> {
        let path = slots.base.path.join(name);
        let rel = PathBuf::from(name);
        // publish: the scandir; replace: the old slot; create `down`: the
        // slot it goes in; unlink: `down`.
        let (op, expect, why) = match slots.entry(name) {
            // A scandir the running user may not list: the slot may be
            // there (the notice says what was not observed).
            None if slots.unlisted => return Ok(()),
            None => {
                let why = slot_diff::new_slot();
                (Op::Publish(Box::new(build)), slots.base.meta, why)
            }
            Some(obs) => match slot_diff::compare(build.owner, &build.entries(), obs) {
                SlotDiff::Same => return Ok(()),
                // At runtime the user starts and stops the slots: a `down`
                // differing from the boot's decision is theirs to keep.
                SlotDiff::Down { .. } if self.d.runtime => return Ok(()),
                SlotDiff::Different(why) => (Op::Replace(Box::new(build)), obs.node.meta, why),
                SlotDiff::Down { want: true } => (
                    Op::Create {
                        mode: layout::MODE_FILE,
                    },
                    obs.node.meta,
                    slot_diff::down_only(true),
                ),
                SlotDiff::Down { want: false } => {
                    let down = obs.below.find(Path::new(layout::DOWN));
                    let meta = down.map_or(obs.node.meta, |i| obs.below.meta(i));
                    (Op::Unlink, meta, slot_diff::down_only(false))
                }
                SlotDiff::Unreadable { path, error } => {
                    self.plan.errors.push(Failure {
                        op: "read".into(),
                        path: path.to_path_buf(),
                        error: error.clone(),
                    });
                    return Err(NotCompared {
                        path: path.to_path_buf(),
                        error: error.clone(),
                    });
                }
            },
        };
        let down = matches!(op, Op::Create { .. } | Op::Unlink);
        self.plan.changes.push(Change {
            phase: Phase::Profiles,
            path: if down { path.join(layout::DOWN) } else { path },
            op,
            when: When::Always,
            target: Target {
                anchor: Anchor::Scandir,
                rel: if down { rel.join(layout::DOWN) } else { rel },
                expect,
            },
            why: Some(Box::new(why)),
        });
        Ok(())
    }
}

impl Planner<'_> {
    /// Plan the default profile's state file of a legacy `gateway run`
    /// container, in the home observed (`p.dir`).
    fn seed_state(&mut self, p: &ProfileObs, owner: Owner) {
        let Some(home) = &p.dir else { return };
        let name = &self.d.config.profiles.state_file.0;
        self.volume.push(Change {
            phase: Phase::Profiles,
            path: p.state_path(&self.d.config.profiles),
            op: Op::SeedState { owner },
            when: When::Always,
            target: Target {
                anchor: Anchor::Home,
                rel: PathBuf::from(name),
                expect: home.meta,
            },
            why: None,
        });
    }
}

/// Why an existing slot was not compared (and is left as it was).
#[derive(Debug, thiserror::Error)]
#[error("not compared (the slot is left as it was): unable to read {}: {error}", .path.display())]
struct NotCompared {
    path: PathBuf,
    error: crate::s6::findings::Cause,
}
