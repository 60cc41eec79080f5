//! The plan: one pure function from the desired state and an observation
//! to the list of changes. `--plan`, `--check` and apply all go through
//! [`plan`]; apply executes exactly the changes it returns.
//!
//! The plan is deterministic: changes sorted by phase, then path, then
//! operation; skipped items and warnings in observation order; no
//! timestamps; container paths only.

use std::path::{Path, PathBuf};

use crate::desired::config::Policy;
use crate::desired::model::Phase;
use crate::desired::model::{Desired, Perms};
use crate::fs::{Kind, Meta};
use crate::s6::findings::{Failure, Skipped};
use crate::s6::layout::{MODE_EVENT, MODE_SUPERVISE_STATIC, Role, role};

pub(crate) mod application;
mod change;
pub(crate) mod multiplex;
mod order;
mod profiles;
pub(crate) mod slot_diff;
pub(crate) mod steps;

use crate::observe::{BaseObs, Entries, Node, Observed, ScandirObs, StaticObs};
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
    fn not_a_dir(&mut self, at: At<'_>, kind: Kind) {
        let reason = format!("is a {}, not a directory; left alone", kind.describe());
        self.skip(&at.path(), reason);
    }

    /// Add a change on an observed node.
    fn change(&mut self, phase: Phase, anchor: Anchor, n: &Node, op: Op) {
        self.change_at(phase, anchor, n.into(), n.meta, op);
    }

    /// Add a change on the observed entry `at`, as it was observed (`expect`).
    fn change_at(&mut self, phase: Phase, anchor: Anchor, at: At<'_>, expect: Meta, op: Op) {
        let to = if phase == Phase::Profiles && anchor == Anchor::Home {
            &mut self.volume
        } else {
            &mut self.plan.changes
        };
        to.push(Change {
            phase,
            path: at.path(),
            op,
            when: When::Always,
            target: Target {
                anchor,
                rel: at.rel(),
                expect,
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
        self.entry(phase, anchor, node.into(), &node.meta, want, tree_dev);
    }

    /// Changes that bring the entry `at`, observed as `m`, to `want`, or a
    /// skip when it must not be touched.
    fn entry(
        &mut self,
        phase: Phase,
        anchor: Anchor,
        at: At<'_>,
        m: &Meta,
        want: Perms,
        tree_dev: u64,
    ) {
        // A symlink where s6 expects a real entry is always worth reporting,
        // whoever owns it: it is never followed.
        if m.kind == Kind::Symlink {
            return self.skip(&at.path(), "symlink; not followed".into());
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
            return self.skip(&at.path(), reason);
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
        self.change_at(phase, anchor, at, *m, Op::Perms { from, to });
    }

    /// Apply the role table to every entry kept below one servicedir (or
    /// slot), and to the servicedir itself with `itself`.
    fn servicedir(
        &mut self,
        phase: Phase,
        anchor: Anchor,
        dir: &Node,
        below: &Entries,
        itself: bool,
    ) {
        if itself {
            self.by_role(
                phase,
                anchor,
                dir.into(),
                Path::new(""),
                &dir.meta,
                dir.meta.dev,
            );
        }
        let rels = below.rels();
        for (i, rel) in rels.iter().enumerate() {
            let at = At {
                node: dir,
                below: Some(rel),
            };
            self.by_role(phase, anchor, at, rel, &below.meta(i), dir.meta.dev);
        }
    }

    /// The role table on one entry, at `rel` relative to its servicedir.
    fn by_role(
        &mut self,
        phase: Phase,
        anchor: Anchor,
        at: At<'_>,
        rel: &Path,
        m: &Meta,
        dev: u64,
    ) {
        let r = role(rel, m.kind);
        if matches!(r, Role::SuperviseDir | Role::EventDir) && m.kind != Kind::Dir {
            return self.not_a_dir(at, m.kind);
        }
        if let Some(w) = self.want(phase, r) {
            self.entry(phase, anchor, at, m, w, dev);
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
            self.servicedir(
                Phase::Static,
                Anchor::Servicedirs,
                &svc.node,
                &svc.below,
                false,
            );
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
                Some(n) => self.not_a_dir(n.into(), n.meta.kind),
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
            self.servicedir(Phase::Scandir, Anchor::Scandir, top, &slot.below, true);
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

/// An observed entry a change or a skip is about: a node, or the entry at
/// `below` (relative to it) of the entries kept below it.
#[derive(Clone, Copy)]
struct At<'a> {
    node: &'a Node,
    below: Option<&'a Path>,
}

impl At<'_> {
    /// Its container path.
    fn path(&self) -> PathBuf {
        match self.below {
            Some(rel) => self.node.path.join(rel),
            None => self.node.path.clone(),
        }
    }

    /// Its path relative to the base directory.
    fn rel(&self) -> PathBuf {
        match self.below {
            Some(rel) => self.node.rel.join(rel),
            None => self.node.rel.clone(),
        }
    }
}

impl<'a> From<&'a Node> for At<'a> {
    fn from(node: &'a Node) -> Self {
        At { node, below: None }
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
