//! Observing servicedirs: the static servicedirs (their `supervise/`
//! trees, `event/`, and the same for a `log/` servicedir) and the scandir
//! (`.s6-svscan/`, every real slot directory walked whole, leftover
//! staging dirs).

use std::ffi::OsStr;
use std::path::Path;

use super::walk::Walk;
use super::{BaseObs, Content, Entries, Node, Scanner, Source};
use crate::fs::Kind;
use crate::s6::findings::Skipped;
use crate::s6::layout;

/// A static servicedir: the entries that matter to it (`supervise/` and
/// below, `event/`, and the same for a `log/` servicedir), sorted by path.
#[derive(Debug)]
pub struct ServiceObs {
    pub name: String,
    pub node: Node,
    pub below: Entries,
}

#[derive(Debug)]
pub struct StaticObs {
    pub base: Node,
    pub services: Vec<ServiceObs>,
    /// Entries of servicedirs that are not real directories.
    pub others: Vec<Node>,
    /// Entries whose names cannot be used (not UTF-8, control characters).
    pub bad_names: Vec<Skipped>,
}

/// An entry of the scandir: a real directory (walked whole when on the
/// scandir's file system), or, when the profiles phase is observed, any
/// entry whose name has the slot prefix.
#[derive(Clone, Debug)]
pub struct SlotObs {
    pub node: Node,
    /// Everything below `node`, parents first, sorted; regular files of
    /// slot-prefixed entries with their contents.
    pub below: Entries,
    /// Places below `node` (relative to it) the running user may not
    /// read: nothing below them is missing or extra.
    pub unobserved: Vec<std::path::PathBuf>,
}

#[derive(Debug)]
pub struct ScandirObs {
    pub base: Node,
    pub svscan: Option<Node>,
    /// `.s6-svscan/control` and `.s6-svscan/lock` when present.
    pub svscan_files: Vec<Node>,
    /// Non-dot entries, sorted by name ([`ScandirObs::entry`]).
    pub entries: Vec<SlotObs>,
    /// Dot entries with the slot prefix `.<prefix>*` (any type): the
    /// plan removes those `s6::names::is_leftover` says are ours.
    pub staging: Vec<Node>,
    pub bad_names: Vec<Skipped>,
    /// The scandir could not be listed by the running user: a slot not
    /// seen may be there all the same.
    pub unlisted: bool,
}

impl ScandirObs {
    /// The real slot directories on the scandir's own file system.
    pub fn real_dirs(&self) -> impl Iterator<Item = &SlotObs> {
        let dev = self.base.meta.dev;
        self.entries
            .iter()
            .filter(move |s| s.node.meta.kind == Kind::Dir && s.node.meta.dev == dev)
    }

    /// Where the entry `name` is in [`ScandirObs::entries`] (`Err`: where
    /// it would go).
    pub fn position(&self, name: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|s| s.name().cmp(name))
    }

    /// The entry `name`.
    pub fn entry(&self, name: &str) -> Option<&SlotObs> {
        self.position(name).ok().map(|i| &self.entries[i])
    }
}

impl SlotObs {
    /// Its name in the scandir: its path relative to it (a single name,
    /// compared without parsing a path: asked for every lookup).
    pub fn name(&self) -> &str {
        self.node.rel.to_str().unwrap_or_default()
    }
}

impl<S: Source> Scanner<'_, S> {
    /// Open the child directory `name` of `dir`: the directory and its
    /// node, or just the node of what is there when it is not a directory.
    pub(super) fn open_child(
        &mut self,
        dir: &S::Dir,
        at: &Node,
        name: &str,
    ) -> Option<(Node, Option<S::Dir>)> {
        match self.src.open_dir(dir, OsStr::new(name)) {
            Ok((d, m)) => Some((at.child(OsStr::new(name), m), Some(d))),
            Err(e) if crate::fs::Os::NotFound.is(&e) => None,
            Err(e) if super::walk::is_gone_or_swapped(&e) => {
                self.stat(dir, at, name).map(|n| (n, None))
            }
            Err(e) => {
                self.error("open", at.path.join(name), &e);
                None
            }
        }
    }

    /// Observe the static servicedirs.
    pub fn static_dirs(&mut self, servicedirs: &Path) -> BaseObs<StaticObs> {
        let (b, base) = match self.base(servicedirs) {
            Ok(x) => x,
            Err(o) => return o.retype(),
        };
        let mut services = Vec::new();
        let mut others = Vec::new();
        let mut bad_names = Vec::new();
        for (name, kind) in self.list_names(&b.dir, &base.path, &mut bad_names) {
            // Left root-only: its own entry is all the plan looks at.
            if self.skipped(&name) {
                if let Some(node) = self.stat(&b.dir, &base, &name) {
                    match node.meta.kind {
                        Kind::Dir => services.push(ServiceObs {
                            name,
                            node,
                            below: Entries::default(),
                        }),
                        _ => others.push(node),
                    }
                }
                continue;
            }
            let found = match kind {
                Some(Kind::Dir) | None => self.open_child(&b.dir, &base, &name),
                Some(_) => self.stat(&b.dir, &base, &name).map(|n| (n, None)),
            };
            match found {
                Some((node, Some(d))) if node.meta.kind == Kind::Dir => {
                    let below = self.service(&d, &node, &mut bad_names);
                    services.push(ServiceObs { name, node, below });
                }
                Some((node, _)) => others.push(node),
                None => {}
            }
        }
        BaseObs::Present(StaticObs {
            base,
            services,
            others,
            bad_names,
        })
    }

    /// The entries of one static servicedir that matter, and of its `log/`
    /// servicedir, in path order (`event` < `log` < `supervise`).
    fn service(&mut self, d: &S::Dir, node: &Node, bad: &mut Vec<Skipped>) -> Entries {
        let mut below = Entries::default();
        self.event(d, node, None, &mut below);
        if let Some((log, Some(ld))) = self.open_child(d, node, layout::LOG)
            && log.meta.dev == node.meta.dev
            // A log/ directory is a servicedir when it has a run script.
            && self.stat(&ld, &log, layout::RUN).is_some()
        {
            let at = below.push(None, layout::LOG, log.meta, Content::NotRead);
            self.event(&ld, node, Some(at), &mut below);
            self.supervise(&ld, node, Some(at), &mut below, bad);
        }
        self.supervise(d, node, None, &mut below, bad);
        below
    }

    /// `event/` of the servicedir `node` (of its `log/`: `at`), opened as
    /// `d`.
    fn event(&mut self, d: &S::Dir, node: &Node, at: Option<usize>, out: &mut Entries) {
        let dir = at.map(|i| out.rel(i)).unwrap_or_default();
        let shown = || node.path.join(&dir).join(layout::EVENT);
        if let Some(m) = self.lstat(d, layout::EVENT, shown) {
            out.push(at, layout::EVENT, m, Content::NotRead);
        }
    }

    /// `supervise/` of the servicedir `node` (of its `log/`: `at`), opened
    /// as `d`, and what is below it.
    fn supervise(
        &mut self,
        d: &S::Dir,
        node: &Node,
        at: Option<usize>,
        out: &mut Entries,
        bad: &mut Vec<Skipped>,
    ) {
        let dir = at.map(|i| out.rel(i)).unwrap_or_default();
        let name = OsStr::new(layout::SUPERVISE);
        let shown = || node.path.join(&dir).join(name);
        let (m, sd) = match self.src.open_dir(d, name) {
            Ok((sd, m)) => (m, Some(sd)),
            Err(e) if crate::fs::Os::NotFound.is(&e) => return,
            Err(e) if super::walk::is_gone_or_swapped(&e) => {
                let Some(m) = self.lstat(d, layout::SUPERVISE, shown) else {
                    return;
                };
                (m, None)
            }
            Err(e) => return self.error("open", shown(), &e),
        };
        let s = out.push(at, layout::SUPERVISE, m, Content::NotRead);
        if let Some(sd) = sd.filter(|_| m.dev == node.meta.dev) {
            let how = Walk {
                servicedir: node,
                start: Some(s),
                read: false,
                in_scandir: false,
                expected: None,
            };
            self.walk(sd, &how, out, bad);
        }
    }

    /// Observe the scandir once for both phases; `staging_of` is the slot
    /// prefix whose staging dirs are leftovers; `slot_prefix`, when the
    /// profiles phase is observed, says which entries are slots (read for
    /// the compare); `scandir_phase`: observe `.s6-svscan/` and every real
    /// directory, not only the slots.
    pub fn scandir(
        &mut self,
        scandir: &Path,
        staging_of: &str,
        slot_prefix: Option<&str>,
        scandir_phase: bool,
    ) -> BaseObs<ScandirObs> {
        let (b, base) = match self.base(scandir) {
            Ok(x) => x,
            Err(o) => return o.retype(),
        };
        let mut obs = ScandirObs {
            base,
            svscan: None,
            svscan_files: Vec::new(),
            entries: Vec::new(),
            staging: Vec::new(),
            bad_names: Vec::new(),
            unlisted: false,
        };
        let base = obs.base.clone();
        let seen = self.unobserved.len();
        let listed = self.list_names(&b.dir, &base.path, &mut obs.bad_names);
        obs.unlisted = self.unobserved[seen..].contains(&base.path);
        obs.entries.reserve_exact(listed.len());
        for (name, kind) in listed {
            if name == layout::SVSCAN_DIR {
                // Only the scandir phase looks at s6-svscan's own directory
                // (root's, maybe not searchable by whoever runs the rest).
                if scandir_phase {
                    self.svscan(&b.dir, &base, &name, &mut obs);
                }
            } else if crate::s6::names::is_dot_slot_name(&name, staging_of) {
                obs.staging.extend(self.stat(&b.dir, &base, &name));
            } else if !name.starts_with('.') {
                let slot = slot_prefix.is_some_and(|p| name.starts_with(p));
                if !slot && !scandir_phase {
                    continue;
                }
                let bad = &mut obs.bad_names;
                if let Some(e) = self.scandir_entry(&b.dir, &base, &name, kind, slot, bad) {
                    obs.entries.push(e);
                }
            }
        }
        // Listed in order already (the names are unique): a check.
        obs.entries.sort_unstable_by(|a, b| a.name().cmp(b.name()));
        BaseObs::Present(obs)
    }

    fn svscan(&mut self, d: &S::Dir, base: &Node, name: &str, obs: &mut ScandirObs) {
        let Some((n, sd)) = self.open_child(d, base, name) else {
            return;
        };
        if let Some(sd) = sd {
            for f in layout::SVSCAN_FILES {
                obs.svscan_files.extend(self.stat(&sd, &n, f));
            }
        }
        obs.svscan = Some(n);
    }

    /// One non-dot entry of the scandir: a real directory is walked whole
    /// (its files read when it is a slot); any other entry is kept only
    /// when it has the slot prefix.
    fn scandir_entry(
        &mut self,
        d: &S::Dir,
        base: &Node,
        name: &str,
        kind: Option<Kind>,
        slot: bool,
        bad: &mut Vec<Skipped>,
    ) -> Option<SlotObs> {
        let (node, sub) = match kind {
            // Left root-only (s6-linux-init's own services): not read.
            _ if !slot && self.skipped(name) => (self.stat(d, base, name)?, None),
            Some(Kind::Dir) | None => self.open_child(d, base, name)?,
            Some(_) if slot => (self.stat(d, base, name)?, None),
            Some(_) => return None,
        };
        let mut below = Entries::default();
        let seen = self.unobserved.len();
        match sub {
            Some(sd) if node.meta.dev == base.meta.dev => {
                let expected = self.expected.filter(|_| slot).and_then(|f| f(name));
                let how = Walk {
                    servicedir: &node,
                    start: None,
                    read: slot,
                    in_scandir: true,
                    expected: expected.as_ref(),
                };
                self.walk(sd, &how, &mut below, bad);
                below.shrink_to_fit();
            }
            _ if node.meta.kind != Kind::Dir && !slot => return None,
            _ => {}
        }
        let unobserved = self.unobserved[seen..]
            .iter()
            .filter_map(|p| p.strip_prefix(&node.path).ok().map(Path::to_path_buf))
            .collect();
        Some(SlotObs {
            node,
            below,
            unobserved,
        })
    }
}
