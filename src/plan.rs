//! The plan: one pure function from the desired state and an observation
//! to the list of changes. `--plan`, `--check` and apply all go through
//! [`plan`]; apply executes exactly the changes it returns.
//!
//! The plan is deterministic: changes sorted by phase, then path, then
//! operation; skipped items and warnings in observation order; no
//! timestamps; container paths only.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::config::Policy;
use crate::fs::{Kind, Meta};
use crate::layout::{self, MODE_EVENT, MODE_SUPERVISE_STATIC, Role, role};
use crate::model::Phase;
use crate::model::{Desired, Perms};
pub use crate::report::{Failure, Skipped, SlotReport};
use crate::scan::{
    BaseObs, Node, Observed, ProfileObs, ProfileSource, ProfilesObs, ScandirObs, StateObs,
    StaticObs,
};
use crate::slot::{self, SlotEntry};
use crate::slot_diff::{self, SlotDiff, Why};
use crate::state::{self, Action, PriorExit};
use crate::steps::{self, Effect, When};
use crate::{config::StartPolicy, names};

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
    fn rank(&self) -> u8 {
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

/// Compute the plan. Pure: no I/O.
pub fn plan(d: &Desired, obs: &Observed) -> Plan {
    let mut p = Planner {
        d,
        plan: Plan::default(),
        volume: Vec::new(),
    };
    for e in &obs.errors {
        p.plan.errors.push(Failure {
            op: e.op.into(),
            path: e.path.clone(),
            error: e.error.clone(),
        });
    }
    if d.policy() == Policy::Compat && obs.has(Phase::Scandir) {
        p.plan.warnings.push(format!(
            "policy compat: uid {} can write the scandir and the slot definitions that root's \
             s6-supervise executes, so that user is effectively root (policy: strict avoids this)",
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

/// The plan's order, which is the order apply runs it: by phase, then
/// condition (the volume after the slots), then path, then operation.
/// Paths are in [`Path`]'s order (component by component). A stable sort:
/// the same as sorting by the whole key at once, done cheaply for the
/// usual plan, whose changes are made in path order within each phase
/// and condition.
pub fn sort_changes(changes: &mut [Change]) {
    let key = |c: &Change| (c.phase, c.when);
    if !changes.iter().all(|c| is_normal(&c.path)) {
        changes.sort_by(|a, b| (key(a), &a.path, a.op.rank()).cmp(&(key(b), &b.path, b.op.rank())));
        return;
    }
    if !changes.is_sorted_by_key(key) {
        changes.sort_by_key(key);
    }
    let in_group =
        |a: &Change, b: &Change| cmp_normal(&a.path, &b.path).then(a.op.rank().cmp(&b.op.rank()));
    for group in changes.chunk_by_mut(|a, b| key(a) == key(b)) {
        if !group.is_sorted_by(|a, b| in_group(a, b).is_le()) {
            group.sort_by(in_group);
        }
    }
}

/// Whether `p` is absolute and written the way its components read back:
/// no empty, `.` or `..` component, no trailing `/`. Such paths compare as
/// [`Path`] does by [`cmp_normal`], without splitting them into components.
fn is_normal(p: &Path) -> bool {
    let b = p.as_os_str().as_bytes();
    let Some((b'/', rest)) = b.split_first() else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    // One pass: each component (between slashes, and the last one) is
    // neither empty nor `.` nor `..`.
    let odd = |len: usize, dots: usize| len == 0 || (len == dots && len <= 2);
    let (mut len, mut dots) = (0, 0);
    for &c in rest {
        if c == b'/' {
            if odd(len, dots) {
                return false;
            }
            (len, dots) = (0, 0);
        } else {
            len += 1;
            dots += usize::from(c == b'.');
        }
    }
    !odd(len, dots)
}

/// [`Path`]'s order of two [`is_normal`] paths: bytewise, with `/` below
/// every other byte (a component that is a prefix of another sorts first,
/// and so does a path that ends where another goes on).
fn cmp_normal(a: &Path, b: &Path) -> std::cmp::Ordering {
    let (a, b) = (a.as_os_str().as_bytes(), b.as_os_str().as_bytes());
    let at = a.iter().zip(b).position(|(x, y)| x != y);
    match at {
        None => a.len().cmp(&b.len()),
        Some(i) => {
            let rank = |c: u8| if c == b'/' { 0 } else { u16::from(c) + 1 };
            rank(a[i]).cmp(&rank(b[i]))
        }
    }
}

struct Planner<'a> {
    d: &'a Desired,
    plan: Plan,
    /// The profiles phase's changes in the volume, which run after the
    /// slots ([`When::AfterSlots`]): kept apart so that the plan is made in
    /// the order it is sorted to.
    volume: Vec<Change>,
}

impl Planner<'_> {
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
            self.removal(Phase::Scandir, n);
        }
    }
}

impl Planner<'_> {
    fn profiles(
        &mut self,
        o: &ProfilesObs,
        scandir: &BaseObs<ScandirObs>,
        scandir_phase_too: bool,
    ) {
        let d = self.d;
        let cfg = &d.config.profiles;
        let (uid, gid) = (d.account.uid, d.account.gid);
        let app = crate::app::decide(&d.config, o);
        // A dashboard container does nothing in this phase, not even warn
        // about the gateways' configuration.
        if app.dashboard {
            self.plan
                .lines
                .push(crate::app::command::DASHBOARD_LINE.into());
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
        // The slots kept, for pruning the others (only then).
        let mut wanted = std::collections::BTreeSet::new();
        self.plan.slots.reserve(o.profiles.len());
        self.plan.changes.reserve(o.profiles.len());
        for p in &o.profiles {
            let report = self.profile(p, slots, &recipe, &app);
            if let Some(s) = report.slot.as_ref().filter(|_| cfg.prune) {
                wanted.insert(s.clone());
            }
            self.plan.slots.push(report);
        }
        let Some(slots) = slots else { return };
        if cfg.prune {
            for (name, s) in &slots.entries {
                if name.starts_with(&cfg.slot_prefix) && !wanted.contains(name) {
                    self.removal(Phase::Profiles, &s.node);
                }
            }
        }
        if !scandir_phase_too {
            self.plan.skipped.extend(slots.bad_names.iter().cloned());
            for n in &slots.staging {
                self.removal(Phase::Profiles, n);
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
    fn removal(&mut self, phase: Phase, n: &Node) {
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
        app: &crate::app::Decision,
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
                at.join("state").join(crate::scan::LIFECYCLE_FILE).display()
            ));
        }
        let is_default = p.source == ProfileSource::Default;
        let prior_state = if is_default && app.migrate_default {
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
        );
        self.stale_files(p);
        let slot_name = names::slot_name(&cfg.slot_prefix, &p.name);
        let owner = match d.policy() {
            Policy::Compat => (uid, gid),
            Policy::Strict => (0, 0),
        };
        // Without a usable scandir nothing is published (SPEC 6.6: `skipped`
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
                    Err(why) => (Action::Skipped, Some(why)),
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
        }
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
            p.state_path.display()
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
    ) -> Result<(), String> {
        let path = names::join(&slots.base.path, OsStr::new(name));
        let rel = PathBuf::from(name);
        // publish: the scandir; replace: the old slot; create `down`: the
        // slot it goes in; unlink: `down`.
        let (op, expect, why) = match slots.entries.get(name) {
            None => {
                let why = slot_diff::new_slot();
                (Op::Publish(Box::new(build)), slots.base.meta, why)
            }
            Some(obs) => match slot_diff::compare(build.owner, &build.entries(), obs) {
                SlotDiff::Same => return Ok(()),
                SlotDiff::Different(why) => (Op::Replace(Box::new(build)), obs.node.meta, why),
                SlotDiff::Down { want: true } => (
                    Op::Create {
                        mode: layout::MODE_FILE,
                    },
                    obs.node.meta,
                    slot_diff::down_only(true),
                ),
                SlotDiff::Down { want: false } => {
                    let down = obs.node.rel.join(layout::DOWN);
                    let meta = obs.nodes.iter().find(|n| n.rel == down);
                    let meta = meta.map_or(obs.node.meta, |n| n.meta);
                    (Op::Unlink, meta, slot_diff::down_only(false))
                }
                SlotDiff::Unreadable { path, error } => {
                    let why = format!(
                        "not compared (the slot is left as it was): unable to read {}: {error}",
                        path.display()
                    );
                    self.plan.errors.push(Failure {
                        op: "read".into(),
                        path: path.to_path_buf(),
                        error: error.clone(),
                    });
                    return Err(why);
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
            path: p.state_path.clone(),
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

#[cfg(test)]
mod observed_tests;

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
    fn paths_sort_as_path_orders_them() {
        let names = [
            "/",
            "/a",
            "/a/b",
            "/a-b",
            "/a.b",
            "/a/b/c",
            "/ab",
            "/a b",
            "/run/service",
            "/run/service/gateway-a",
            "/run/service/gateway-a/down",
            "/run/service/gateway-a-b",
            "/run/service/gateway-a.tmp",
            "/run/service/.gateway-a.tmp",
            "/run/s6-rc",
            "/run/service/gateway-",
            "/opt/data/profiles/x/gateway.pid",
            "/opt/data",
            "/a/...",
            "/.a",
            "/a/.b",
            "/a/..b",
        ];
        for a in names {
            for b in names {
                let (pa, pb) = (Path::new(a), Path::new(b));
                assert!(is_normal(pa) && is_normal(pb));
                assert_eq!(cmp_normal(pa, pb), pa.cmp(pb), "{a} vs {b}");
            }
        }
        for odd in [
            "/a/", "/a//b", "/a/./b", "./a", "/a/.", "/a/..", "/../a", "a/b", "",
        ] {
            assert!(!is_normal(Path::new(odd)), "{odd}");
        }
    }

    #[test]
    fn sorting_changes_is_one_stable_sort_by_phase_condition_path_and_op() {
        let meta = crate::fs::Meta {
            kind: Kind::Dir,
            dev: 1,
            ino: 1,
            uid: 0,
            gid: 0,
            mode: 0o755,
            nlink: 1,
            size: 0,
        };
        let change = |i: u32, phase, when, path: &str, op| Change {
            phase,
            path: PathBuf::from(path),
            op,
            when,
            target: Target {
                anchor: Anchor::Scandir,
                rel: PathBuf::new(),
                expect: crate::fs::Meta {
                    ino: u64::from(i),
                    ..meta
                },
            },
            why: None,
        };
        let paths = [
            "/r/s/a",
            "/r/s/a/b",
            "/r/s/a-b",
            "/r/s",
            "/r/s/.a.tmp",
            "/r/s/a/b",
        ];
        let phases = [Phase::Profiles, Phase::Static, Phase::Scandir];
        let whens = [When::Always, When::AfterSlots];
        let ops = || [Op::Unlink, Op::Create { mode: 0o644 }, Op::Remove];
        let mut all = Vec::new();
        // Made in an order that is sorted in some groups and not in others,
        // with equal keys to show the sort is stable.
        for i in 0..90u32 {
            let k = i as usize;
            let op = ops()[(k * 7) % 3].clone();
            let path = paths[(k * 5 + k / 7) % paths.len()];
            all.push(change(
                i,
                phases[(k / 30) % 3],
                whens[(k / 3) % 2],
                path,
                op,
            ));
        }
        for take in [0, 1, 2, 12, 45, 90] {
            let mut fast = all[..take].to_vec();
            let mut want = fast.clone();
            want.sort_by(|a, b| {
                (a.phase, a.when, &a.path, a.op.rank()).cmp(&(
                    b.phase,
                    b.when,
                    &b.path,
                    b.op.rank(),
                ))
            });
            sort_changes(&mut fast);
            let ids = |v: &[Change]| v.iter().map(|c| c.target.expect.ino).collect::<Vec<_>>();
            assert_eq!(ids(&fast), ids(&want), "first {take}");
            // Already in order: left as it is.
            sort_changes(&mut fast);
            assert_eq!(ids(&fast), ids(&want));
        }
    }

    #[test]
    fn a_name_joins_as_path_join_does() {
        for dir in ["/run/service", "/", "", "rel", "/a/"] {
            for name in ["gateway-x", ".gateway-x.tmp", "", "/abs", "a/b"] {
                let (a, b) = (
                    names::join(Path::new(dir), OsStr::new(name)),
                    Path::new(dir).join(name),
                );
                assert_eq!(a.as_os_str(), b.as_os_str(), "{dir} {name}");
            }
        }
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
