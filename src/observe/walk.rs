//! Walking a tree below an opened directory: depth-first, sorted by name,
//! parents before children, with an explicit stack (depth costs no call
//! stack) and at most [`MAX_OPEN_DIRS`] directory handles held besides the
//! top one (deeper ones are dropped and reopened through `..`, identity
//! checked, on the way back up). What it observes is bounded too
//! ([`TREE_PATH_BYTES`] of paths): a planted tree of any depth or width
//! costs a bounded amount of memory and time. Never follows a symlink,
//! never descends into another file system, never lists a fifodir (what
//! clients leave there is theirs; which directories are fifodirs, and what
//! is read of a scandir servicedir's `supervise/`: [`layout::look`]) and
//! never looks at s6-supervise's runtime files.
//!
//! A file that is normally empty (`down`) is `lstat`ed first and not read
//! when its size is 0.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::{Content, Entries, Node, Scanner, Source, source::MAX_OPEN_DIRS};
use crate::fs::{self, Kind, Meta, Os, Refusal};
use crate::s6::findings::Skipped;
use crate::s6::layout::SLOT_FILE_LIMIT;
use crate::s6::layout::{self, Look};

/// The most bytes of relative paths one walked tree may hold. An entry
/// keeps only its name, but the plan builds every entry's path (its role,
/// the slot compare) and holds a tree's paths at once, so a chain of
/// directories costs the square of its depth in time and, while it is
/// planned, in memory: this bounds what a planted deep or wide tree costs (a
/// chain of one-letter names is observed to about 3,500 levels, far past
/// PATH_MAX; a servicedir or slot of s6's own holds a few hundred bytes).
pub const TREE_PATH_BYTES: usize = 12 << 20;

/// The same bound over every tree of a run (many planted trees at once):
/// past it, each further tree gets [`RESERVE_PATH_BYTES`].
pub const TOTAL_PATH_BYTES: usize = 24 << 20;

/// What a tree may still observe once it is over its bound: the walk goes
/// back to the servicedir's own entries and observes them (and what is
/// below them) within this much more, so that one planted deep entry does
/// not hide the servicedir's `run` or `supervise/`.
pub const RESERVE_PATH_BYTES: usize = 16 << 10;

/// The path bytes one walk may still spend.
struct Budget {
    spent: usize,
    /// Set once the tree went over its bound: the further allowance.
    reserve: Option<usize>,
}

impl Budget {
    /// Spend `cost`; `false` when the tree is over its bound (`total`: what
    /// every walk of the run has spent, this one included).
    fn spend(&mut self, cost: usize, total: usize) -> bool {
        self.spent += cost;
        match &mut self.reserve {
            None => {
                self.spent <= TREE_PATH_BYTES
                    && (total <= TOTAL_PATH_BYTES || self.spent <= RESERVE_PATH_BYTES)
            }
            Some(left) => match left.checked_sub(cost) {
                Some(l) => {
                    *left = l;
                    true
                }
                None => false,
            },
        }
    }
}

/// How to walk one servicedir's tree.
pub(super) struct Walk<'a> {
    /// The servicedir the entries are kept below: their paths, and the
    /// roles, are relative to it.
    pub servicedir: &'a Node,
    /// Where the walk starts: the servicedir itself (`None`) or one of
    /// its entries already observed (its `supervise/`).
    pub start: Option<usize>,
    /// Read regular files' contents (a slot's, for the compare).
    pub read: bool,
    /// A servicedir of the scandir, not a static one ([`layout::look`]).
    pub in_scandir: bool,
    /// What the files read are expected to hold: a file that holds it is
    /// [`Content::AsExpected`], its bytes dropped.
    pub expected: Option<&'a super::ExpectedFiles>,
}

impl Walk<'_> {
    /// What was read of the file at `rel` (relative to the servicedir).
    fn content(&self, rel: &Path, bytes: Vec<u8>) -> Content {
        let expected = || {
            let e = self.expected?;
            let rel = rel.to_str()?;
            e.iter().find(|(p, _)| *p == rel).map(|(_, c)| c.as_bytes())
        };
        match expected() {
            Some(want) if !bytes.is_empty() && want == bytes.as_slice() => Content::AsExpected,
            _ => Content::Bytes(bytes),
        }
    }

    /// The container path of the entry at `rel` (relative to the servicedir).
    fn shown(&self, rel: &Path) -> PathBuf {
        match rel.as_os_str().is_empty() {
            true => self.servicedir.path.clone(),
            false => self.servicedir.path.join(rel),
        }
    }

    /// What an entry at `rel` costs of the path budget: its path relative
    /// to the base directory.
    fn cost(&self, rel: &Path) -> usize {
        self.servicedir.rel.as_os_str().len() + 1 + rel.as_os_str().len()
    }
}

/// One directory being listed.
struct Frame<D> {
    /// `None` once dropped to stay within the budget.
    dir: Option<D>,
    /// Its entry: the servicedir (`None`) or one already added.
    at: Option<usize>,
    pending: Names,
}

/// The names of a directory still to observe.
type Names = std::vec::IntoIter<(String, Option<Kind>)>;

/// What was observed of one entry: its attributes, what was read of it,
/// and, for a directory to descend into, the directory opened.
type Found<D> = (Meta, Content, Option<D>);

impl<S: Source> Scanner<'_, S> {
    /// Add every entry below the walk's start (opened as `dir`) to `out`.
    pub(super) fn walk(
        &mut self,
        dir: S::Dir,
        how: &Walk<'_>,
        out: &mut Entries,
        bad: &mut Vec<Skipped>,
    ) {
        // The path of the directory being listed, relative to the
        // servicedir, and of the entry being observed.
        let start = how.start.map(|i| out.rel(i)).unwrap_or_default();
        let mut cur = start.clone();
        let mut rel = PathBuf::new();
        let pending = self.list_names(&dir, &how.shown(&cur), bad).into_iter();
        let mut budget = Budget {
            spent: 0,
            reserve: None,
        };
        let mut stack = vec![Frame {
            dir: Some(dir),
            at: how.start,
            pending,
        }];
        while let Some(f) = stack.last_mut() {
            let Some((name, kind)) = f.pending.next() else {
                let done = stack.pop().expect("not empty");
                if !stack.is_empty() {
                    cur.pop();
                }
                self.back_to_parent(&mut stack, done, how, out, &cur);
                continue;
            };
            let Some(d) = f.dir.as_ref() else {
                continue;
            };
            let at = f.at;
            rel.clone_from(&cur);
            rel.push(&name);
            let Some((meta, content, sub)) = self.entry(d, &name, kind, how, &rel) else {
                continue;
            };
            let cost = how.cost(&rel);
            self.path_bytes += cost;
            if !budget.spend(cost, self.path_bytes) {
                if budget.reserve.is_some() {
                    return;
                }
                // Back to the servicedir's own entries (the top frame
                // never drops its directory), within the reserve.
                bad.push(too_large(how.shown(&start)));
                budget.reserve = Some(RESERVE_PATH_BYTES);
                stack.truncate(1);
                cur.clone_from(&start);
                let f = &mut stack[0];
                f.pending = known_only(&cur, std::mem::take(&mut f.pending));
                continue;
            }
            let sub = sub.filter(|_| meta.dev == how.servicedir.meta.dev);
            let reserve = budget.reserve.is_some();
            let names = sub
                .as_ref()
                .map(|sub| self.names_of(sub, how, &rel, bad, reserve));
            let i = out.push(at, &name, meta, content);
            let (Some(sub), Some(pending)) = (sub, names) else {
                continue;
            };
            cur.push(&name);
            stack.push(Frame {
                dir: Some(sub),
                at: Some(i),
                pending,
            });
            if stack.len() > MAX_OPEN_DIRS + 1 {
                let i = stack.len() - 1 - MAX_OPEN_DIRS;
                stack[i].dir = None;
            }
        }
    }

    /// After `done` is listed, make sure its parent (now on top, at `cur`
    /// relative to the servicedir) holds its directory again: reopened
    /// through `..` from `done`, and only if it is still the directory
    /// observed on the way down.
    fn back_to_parent(
        &mut self,
        stack: &mut [Frame<S::Dir>],
        done: Frame<S::Dir>,
        how: &Walk<'_>,
        out: &Entries,
        cur: &Path,
    ) {
        let Some(parent) = stack.last_mut() else {
            return;
        };
        if parent.dir.is_some() {
            return;
        }
        let seen = parent.at.map_or(how.servicedir.meta, |i| out.meta(i));
        let reopened = done.dir.as_ref().map(|d| self.src.open_parent(d));
        match reopened {
            Some(Ok((d, m))) if m.same_file(&seen) => parent.dir = Some(d),
            Some(Ok(_)) => {
                let e = Refusal::MovedWhileObserved.into();
                self.error("open", how.shown(cur), &e);
                parent.pending = Vec::new().into_iter();
            }
            Some(Err(e)) => {
                self.error("open", how.shown(cur), &e);
                parent.pending = Vec::new().into_iter();
            }
            // Abandoned below: abandon this one too.
            None => parent.pending = Vec::new().into_iter(),
        }
    }

    /// Observe the entry `name` of `dir`, at `rel` relative to the
    /// servicedir (asked of every entry, only for roles).
    fn entry(
        &mut self,
        dir: &S::Dir,
        name: &str,
        kind: Option<Kind>,
        how: &Walk<'_>,
        rel: &Path,
    ) -> Option<Found<S::Dir>> {
        if layout::is_supervise_runtime_file(rel) {
            return None;
        }
        let descend = layout::look(rel, how.in_scandir) != Look::Nothing;
        // Without d_type, lstat first; then what it is decides. A file
        // that is normally empty too: when its size is 0, that is all
        // there is to observe (nothing opened or read).
        let (kind, seen) = match kind {
            Some(k) if !layout::usually_empty(rel, k) => (k, None),
            _ => {
                let m = self.lstat(dir, name, || how.shown(rel))?;
                if m.kind == Kind::File && m.size == 0 {
                    let content = match how.read {
                        true => Content::Bytes(Vec::new()),
                        false => Content::NotRead,
                    };
                    return Some((m, content, None));
                }
                (m.kind, Some(m))
            }
        };
        let os = OsStr::new(name);
        let just = |m: Meta| (m, Content::NotRead, None);
        match kind {
            Kind::Dir if descend => match self.src.open_dir(dir, os) {
                Ok((d, m)) if seen.is_none_or(|s| s.same_file(&m)) => {
                    Some((m, Content::NotRead, Some(d)))
                }
                Ok(_) => seen.map(just),
                Err(e) if is_gone_or_swapped(&e) => {
                    self.lstat(dir, name, || how.shown(rel)).map(just)
                }
                Err(e) => {
                    self.error("open", how.shown(rel), &e);
                    None
                }
            },
            Kind::File if how.read => self.read(dir, name, rel, how),
            _ => match seen {
                Some(m) => Some(just(m)),
                None => self.lstat(dir, name, || how.shown(rel)).map(just),
            },
        }
    }

    /// A regular file of a slot, with its contents; a failure to read it
    /// is kept with the entry (the compare reports it); a hard-linked one
    /// is not read. `rel` is its path relative to the servicedir.
    fn read(
        &mut self,
        dir: &S::Dir,
        name: &str,
        rel: &Path,
        how: &Walk<'_>,
    ) -> Option<Found<S::Dir>> {
        let os = OsStr::new(name);
        // A file with another name elsewhere is not read: the slot is
        // the user's to plant in (compat), and the other name may be a
        // file the user cannot read. It differs (its link count says so).
        match self
            .src
            .read_single_link_file(dir, None, os, SLOT_FILE_LIMIT)
        {
            Ok((m, bytes)) => {
                let content = bytes.map_or(Content::NotRead, |b| how.content(rel, b));
                Some((m, content, None))
            }
            Err(e) if is_gone_or_swapped(&e) => self
                .lstat(dir, name, || how.shown(rel))
                .map(|m| (m, Content::NotRead, None)),
            Err(e) => {
                let m = self.lstat(dir, name, || how.shown(rel))?;
                Some((m, Content::Unreadable(Box::new((&e).into())), None))
            }
        }
    }

    /// The names to observe in the directory at `rel` (opened as `sub`):
    /// its listing, or the names [`layout::look`] gives; in the reserve of
    /// the path budget, only the entries s6 knows.
    fn names_of(
        &mut self,
        sub: &S::Dir,
        how: &Walk<'_>,
        rel: &Path,
        bad: &mut Vec<Skipped>,
        reserve: bool,
    ) -> Names {
        if let Look::Names(names) = layout::look(rel, how.in_scandir) {
            let names: Vec<_> = names.iter().map(|n| (n.to_string(), None)).collect();
            return names.into_iter();
        }
        let names = self.list_names(sub, &how.shown(rel), bad).into_iter();
        match reserve {
            true => known_only(rel, names),
            false => names,
        }
    }
}

/// Of `names` (entries of the directory at `rel`, relative to the
/// servicedir), those s6 gives a meaning to ([`layout::is_known`]).
fn known_only(rel: &Path, names: Names) -> Names {
    let keep: Vec<_> = names
        .filter(|(n, _)| layout::is_known(&rel.join(n)))
        .collect();
    keep.into_iter()
}

/// A tree whose walk stopped at the path budget: what was observed is
/// planned as usual, the rest is left as it is.
fn too_large(top: PathBuf) -> Skipped {
    Skipped {
        path: top,
        reason: format!(
            "too deep or too large to observe in full (over {} MiB of path names below it, \
             or {} MiB in all); what is below the first such entry is left alone",
            TREE_PATH_BYTES >> 20,
            TOTAL_PATH_BYTES >> 20
        ),
    }
}

/// Vanished, or no longer what the listing said (a symlink or a
/// non-directory now): observe what is there instead.
pub(super) fn is_gone_or_swapped(e: &fs::Error) -> bool {
    [Os::NotFound, Os::Loop, Os::NotADir]
        .iter()
        .any(|o| o.is(e))
        || matches!(e.refusal(), Some(Refusal::Symlink { .. }))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::os::unix::fs::{MetadataExt, symlink};
    use std::path::Path;

    use crate::fs::{Dir, Kind};
    use crate::observe::source::OnList;
    use crate::observe::{BaseObs, Disk, Scanner};

    /// A slot's file that holds what is expected is not kept; one that
    /// differs is, with its bytes; `down` (empty) is kept as empty bytes.
    #[test]
    fn files_are_compared_as_they_are_read() {
        use crate::observe::Content;
        use std::borrow::Cow;
        let t = tempfile::tempdir().unwrap();
        let root = Dir::open_path(t.path()).unwrap();
        let slot = t.path().join("run/service/gateway-a");
        std::fs::create_dir_all(slot.join("log")).unwrap();
        std::fs::write(slot.join("type"), b"longrun\n").unwrap();
        std::fs::write(slot.join("run"), b"#!/bin/sh\nold\n").unwrap();
        std::fs::write(slot.join("log/run"), b"#!/bin/sh\nlog\n").unwrap();
        std::fs::write(slot.join("down"), b"").unwrap();
        let disk = Disk {
            root: &root,
            untrusted: (10000, 10000).into(),
        };
        let expected = |name: &str| {
            (name == "gateway-a").then(|| {
                vec![
                    ("type", Cow::Borrowed("longrun\n")),
                    ("run", Cow::Borrowed("#!/bin/sh\nnew\n")),
                    ("log/run", Cow::Borrowed("#!/bin/sh\nlog\n")),
                ]
            })
        };
        let mut sc = Scanner::new(&disk);
        sc.expected = Some(&expected);
        let BaseObs::Present(s) = sc.scandir(
            Path::new("/run/service"),
            "gateway-",
            Some("gateway-"),
            true,
        ) else {
            panic!("scandir present")
        };
        let content = |rel: &str| {
            let below = &s.entry("gateway-a").unwrap().below;
            below.content(below.find(Path::new(rel)).unwrap()).clone()
        };
        assert_eq!(content("type"), Content::AsExpected);
        assert_eq!(content("log/run"), Content::AsExpected);
        assert_eq!(content("run"), Content::Bytes(b"#!/bin/sh\nold\n".to_vec()));
        assert_eq!(content("down"), Content::Bytes(Vec::new()));
        assert!(sc.errors.is_empty(), "{:?}", sc.errors);
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_is_never_followed() {
        let t = tempfile::tempdir().unwrap();
        let root = Dir::open_path(t.path()).unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir_all(outside.join("deeper")).unwrap();
        std::fs::write(outside.join("secret"), b"s").unwrap();
        let slot = t.path().join("run/service/gateway-a");
        std::fs::create_dir_all(slot.join("sub")).unwrap();
        std::fs::write(slot.join("run"), b"#!/bin/sh\n").unwrap();
        // Right after the slot directory is listed, its `sub/` is swapped
        // for a symlink to a directory outside: the race between listing a
        // directory and opening an entry of it.
        let swapped = Cell::new(false);
        let src = OnList {
            disk: Disk {
                root: &root,
                untrusted: (10000, 10000).into(),
            },
            hook: |dir: &Dir| {
                let is_slot = dir.meta()?.ino == std::fs::metadata(&slot).unwrap().ino();
                if is_slot && !swapped.replace(true) {
                    std::fs::rename(slot.join("sub"), slot.join("sub.old")).unwrap();
                    symlink(&outside, slot.join("sub")).unwrap();
                }
                Ok(())
            },
        };
        let mut sc = Scanner::new(&src);
        let BaseObs::Present(s) = sc.scandir(Path::new("/run/service"), "gateway-", None, true)
        else {
            panic!("scandir present")
        };
        assert!(swapped.get(), "the swap happened");
        let below = &s.entry("gateway-a").unwrap().below;
        let sub = below.meta(below.find(Path::new("sub")).unwrap());
        assert_eq!(sub.kind, Kind::Symlink, "observed as what it is now");
        let names: Vec<_> = below
            .rels()
            .iter()
            .map(|n| n.display().to_string())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n.contains("secret") || n.contains("deeper")),
            "nothing behind the symlink was observed: {names:?}"
        );
        assert!(sc.errors.is_empty(), "{:?}", sc.errors);
    }
}
