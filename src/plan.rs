//! The plan: one pure function from the desired state and an observation
//! to the list of changes. `--plan`, `--check` and apply all go through
//! [`plan`]; apply executes exactly the changes it returns.
//!
//! The plan is deterministic: changes sorted by phase, then path, then
//! operation; skipped items and warnings in observation order; no
//! timestamps; container paths only.

use std::path::Path;

use crate::desired::config::Policy;
use crate::desired::model::Phase;
use crate::desired::model::{Desired, Perms};
use crate::fs::Kind;
use crate::s6::findings::{Failure, Skipped};
use crate::s6::layout::{MODE_EVENT, MODE_SUPERVISE_STATIC, Role, role};

pub(crate) mod application;
mod change;
pub(crate) mod multiplex;
mod order;
mod profiles;
pub(crate) mod slot_diff;
pub(crate) mod steps;

use crate::observe::{BaseObs, Node, Observed, ScandirObs, StaticObs};
pub use change::{Anchor, Change, Op, Owner, Plan, SlotBuild, SlotRecipe, SlotReport, Target};
pub use order::sort_changes;
use steps::When;

/// Compute the plan. Pure: no I/O.
pub fn plan(d: &Desired, obs: &Observed) -> Plan {
    let mut p = Planner {
        d,
        plan: Plan::default(),
        volume: Vec::new(),
        registered: registered_slots(d, obs),
    };
    for e in &obs.errors {
        p.plan.errors.push(Failure {
            op: e.op.into(),
            path: e.path.clone(),
            error: e.error.clone(),
        });
    }
    for place in &obs.unobserved {
        p.skip(place, format!("not observable as uid {}", obs.uid));
    }
    if d.policy() == Policy::Compat && obs.has(Phase::Scandir) {
        p.plan.warnings.push(format!(
            "policy compat: uid {} can write the scandir and the slot definitions that root's \
             s6-supervise executes, so that user is effectively root; `policy: strict` avoids \
             this, and loses nothing once the application asks the runtime service \
             s6-reconcile-runtime for its slots instead of writing them itself (docs/runtime.md)",
            d.account.uid
        ));
    }
    if let Some(s) = obs.static_.as_ref().filter(|_| obs.has(Phase::Static)) {
        p.base(s, |p, s| p.static_dirs(s));
    }
    if let Some(s) = obs.scandir.as_ref().filter(|_| obs.has(Phase::Scandir)) {
        p.base(s, |p, s| p.scandir(s));
    }
    if let (Some(o), Some(s)) = (&obs.profiles, &obs.scandir)
        && obs.has(Phase::Profiles)
    {
        p.profiles(o, s, obs.has(Phase::Scandir));
    }
    let mut plan = p.plan;
    plan.changes.append(&mut p.volume);
    match &obs.profiles {
        Some(o) if obs.has(Phase::Profiles) => {
            let home_present = matches!(o.home, BaseObs::Present(_));
            steps::plan_steps(d, &mut plan, home_present);
        }
        _ => sort_changes(&mut plan.changes),
    }
    plan
}

struct Planner<'a> {
    d: &'a Desired,
    plan: Plan,
    /// The profiles phase's changes in the volume, which run after the
    /// slots ([`When::AfterSlots`]): kept apart so that the plan is made in
    /// the order it is sorted to.
    volume: Vec<Change>,
    /// The slots this run registers: their leftovers are removed.
    registered: std::collections::BTreeSet<String>,
}

/// The slot names of the profiles this run registers (none when the
/// profiles were not observed, or in a dashboard container). An apply
/// plans its root phases from the same observation, before the profiles
/// phase: so leftovers are removed as root, even a root-owned one.
fn registered_slots(d: &Desired, obs: &Observed) -> std::collections::BTreeSet<String> {
    let Some(o) = obs.profiles.as_ref() else {
        return Default::default();
    };
    if crate::plan::application::decide(&d.config, o).dashboard {
        return Default::default();
    }
    o.profiles
        .iter()
        .filter(|p| p.problem.is_none())
        .map(|p| crate::s6::names::slot_name(&d.config.profiles.slot_prefix, &p.name))
        .collect()
}

impl Planner<'_> {
    /// Whether a dot entry of the scandir is a leftover of ours to remove.
    fn is_leftover(&self, n: &crate::observe::Node) -> bool {
        crate::s6::names::is_leftover(n.name(), &self.d.config.profiles.slot_prefix, |s| {
            self.registered.contains(s)
        })
    }

    fn base<T>(&mut self, o: &BaseObs<T>, f: impl FnOnce(&mut Self, &T)) {
        match o {
            BaseObs::Missing { path } => self.skip(path, "not present; skipping".into()),
            BaseObs::Unusable { path, error } => self.plan.errors.push(Failure {
                op: "open".into(),
                path: path.clone(),
                error: error.clone().into(),
            }),
            BaseObs::Present(t) => f(self, t),
        }
    }

    /// Report a non-directory where s6 expects a directory.
    fn not_a_dir(&mut self, n: &Node) {
        let reason = format!(
            "is a {}, not a directory; left alone",
            n.meta.kind.describe()
        );
        self.skip(&n.path, reason);
    }

    /// Add a change on an observed node.
    fn change(&mut self, phase: Phase, anchor: Anchor, n: &Node, op: Op) {
        let to = if phase == Phase::Profiles && anchor == Anchor::Home {
            &mut self.volume
        } else {
            &mut self.plan.changes
        };
        to.push(Change {
            phase,
            path: n.path.clone(),
            op,
            when: When::Always,
            target: Target {
                anchor,
                rel: n.rel.clone(),
                expect: n.meta,
            },
            why: None,
        });
    }

    fn skip(&mut self, path: &Path, reason: String) {
        self.plan.skipped.push(Skipped {
            path: path.to_path_buf(),
            reason,
        });
    }

    /// The wanted state of an entry with `role`, in `phase`.
    fn want(&self, phase: Phase, role: Role) -> Option<Perms> {
        let d = self.d;
        let strict = d.policy() == Policy::Strict;
        // s6-supervise's runtime files and clients' FIFOs are never touched.
        match role {
            Role::RuntimeFile | Role::InEvent => return None,
            _ => {}
        }
        // Compat scandir slots: the user owns them whole; modes stay as the
        // slot's builder made them.
        if phase == Phase::Scandir && !strict {
            return Some(d.owner());
        }
        match role {
            Role::SuperviseDir => Some(d.with_mode(MODE_SUPERVISE_STATIC)),
            Role::Control => Some(d.with_mode(d.control_mode())),
            Role::EventDir => Some(d.with_mode(MODE_EVENT)),
            Role::InSupervise if !strict => Some(d.owner()),
            _ => None,
        }
    }

    /// Changes that bring `node` to `want`, or a skip when it must not be touched.
    fn node(&mut self, phase: Phase, anchor: Anchor, node: &Node, want: Perms, tree_dev: u64) {
        let m = &node.meta;
        // A symlink where s6 expects a real entry is always worth reporting,
        // whoever owns it: it is never followed.
        if m.kind == Kind::Symlink {
            return self.skip(&node.path, "symlink; not followed".into());
        }
        let to_uid = want.uid.unwrap_or(m.uid);
        let to_gid = want.gid.unwrap_or(m.gid);
        let to_mode = want.mode.unwrap_or(m.mode);
        if (to_uid, to_gid, to_mode) == (m.uid, m.gid, m.mode) {
            return;
        }
        let reason = match m.kind {
            Kind::File if m.nlink > 1 => Some(format!(
                "hard-linked regular file ({} links); refusing to change it",
                m.nlink
            )),
            Kind::Socket | Kind::Other => Some(format!("{}; left alone", m.kind.describe())),
            _ if m.dev != tree_dev => Some("on another file system; not crossed".to_string()),
            _ => None,
        };
        if let Some(reason) = reason {
            return self.skip(&node.path, reason);
        }
        let chown = (to_uid, to_gid) != (m.uid, m.gid);
        let chmod = to_mode != m.mode;
        let from = Perms {
            uid: chown.then_some(m.uid),
            gid: chown.then_some(m.gid),
            mode: chmod.then_some(m.mode),
        };
        let to = Perms {
            uid: chown.then_some(to_uid),
            gid: chown.then_some(to_gid),
            mode: chmod.then_some(to_mode),
        };
        self.change(phase, anchor, node, Op::Perms { from, to });
    }

    /// Apply the role table to every node of one servicedir (or slot).
    fn servicedir<'n>(
        &mut self,
        phase: Phase,
        anchor: Anchor,
        dir: &Node,
        nodes: impl IntoIterator<Item = &'n Node>,
    ) {
        for n in nodes {
            let rel = n.rel_below(&dir.rel).unwrap_or(&n.rel);
            let r = role(rel, n.meta.kind);
            if r == Role::SuperviseDir && n.meta.kind != Kind::Dir {
                self.not_a_dir(n);
                continue;
            }
            if r == Role::EventDir && n.meta.kind != Kind::Dir {
                self.not_a_dir(n);
                continue;
            }
            if let Some(w) = self.want(phase, r) {
                self.node(phase, anchor, n, w, dir.meta.dev);
            }
        }
    }

    fn static_dirs(&mut self, s: &StaticObs) {
        self.plan.skipped.extend(s.bad_names.iter().cloned());
        for n in &s.others {
            let reason = match n.meta.kind {
                Kind::Symlink => "symlink; not followed".to_string(),
                k => format!("is a {}, not a servicedir", k.describe()),
            };
            self.skip(&n.path, reason);
        }
        for svc in &s.services {
            if let Some(glob) = self.d.skip_glob(&svc.name) {
                let reason = format!("matches skip glob {glob:?}; left root-only");
                self.skip(&svc.node.path, reason);
                continue;
            }
            self.servicedir(Phase::Static, Anchor::Servicedirs, &svc.node, &svc.nodes);
        }
    }

    fn scandir(&mut self, s: &ScandirObs) {
        let d = self.d;
        self.plan.skipped.extend(s.bad_names.iter().cloned());
        let compat = d.policy() == Policy::Compat;
        let dev = s.base.meta.dev;
        if compat {
            self.node(Phase::Scandir, Anchor::Scandir, &s.base, d.owner(), dev);
            match &s.svscan {
                Some(n) if n.meta.kind == Kind::Dir => {
                    // Searchable by the user's group is all s6-svscanctl
                    // needs; the owner stays, so the scanner's own scripts
                    // in there (crash, finish, SIG*) stay root's.
                    let search = Perms {
                        uid: None,
                        gid: Some(d.account.gid),
                        mode: Some(n.meta.mode | 0o010),
                    };
                    self.node(Phase::Scandir, Anchor::Scandir, n, search, dev);
                    for f in &s.svscan_files {
                        self.node(Phase::Scandir, Anchor::Scandir, f, d.owner(), dev);
                    }
                }
                Some(n) => self.not_a_dir(n),
                None => {}
            }
        }
        for slot in s.real_dirs() {
            let top = &slot.node;
            // s6-linux-init's own services are real directories in the scandir.
            if let Some(glob) = d.skip_glob(top.name()) {
                self.skip(
                    &top.path,
                    format!("matches skip glob {glob:?}; left root-only"),
                );
                continue;
            }
            let nodes = std::iter::once(top).chain(&slot.nodes);
            self.servicedir(Phase::Scandir, Anchor::Scandir, top, nodes);
        }
        for n in &s.staging {
            // A leftover staging dir of an interrupted run: removed as root,
            // a symlink at its name is removed itself, never followed.
            if self.is_leftover(n) {
                self.removal(Phase::Scandir, n);
            }
        }
    }
}

#[cfg(test)]
mod observed_tests;

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[test]
    fn a_name_joins_as_path_join_does() {
        for dir in ["/run/service", "/", "", "rel", "/a/"] {
            for name in ["gateway-x", ".gateway-x.tmp", "", "/abs", "a/b"] {
                let (a, b) = (
                    Path::new(dir).join(OsStr::new(name)),
                    Path::new(dir).join(name),
                );
                assert_eq!(a.as_os_str(), b.as_os_str(), "{dir} {name}");
            }
        }
    }
}
