//! Walking a tree below an opened directory: depth-first, sorted by name,
//! parents before children, with an explicit stack (depth costs no call
//! stack) and at most [`MAX_OPEN_DIRS`] directory handles held besides the
//! top one (deeper ones are dropped and reopened through `..`, identity
//! checked, on the way back up). The paths it keeps are bounded too
//! ([`TREE_PATH_BYTES`]): a planted tree of any depth or width costs a
//! bounded amount of memory and time. Never follows a symlink, never
//! descends into another file system, never lists a fifodir (what
//! clients leave there is theirs; which directories are fifodirs, and what
//! is read of a scandir servicedir's `supervise/`: [`layout::look`]) and
//! never looks at s6-supervise's runtime files.
//!
//! A file that is normally empty (`down`) is `lstat`ed first and not read
//! when its size is 0.

use std::ffi::OsStr;
use std::path::Path;

use super::{Content, Node, Scanner, Source, source::MAX_OPEN_DIRS};
use crate::fs::{self, Kind, Os, Refusal};
use crate::s6::findings::Skipped;
use crate::s6::layout::SLOT_FILE_LIMIT;
use crate::s6::layout::{self, Look};

/// The most bytes of relative paths one walked tree may hold. Every
/// observed entry keeps its path, so a chain of directories costs the
/// square of its depth: this bounds what a planted deep or wide tree costs
/// in memory and time (a chain of one-letter names is observed to about
/// 3,500 levels, far past PATH_MAX; a servicedir or slot of s6's own holds
/// a few hundred bytes).
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
    /// The servicedir the tree belongs to (relative to the base): roles
    /// are relative to it.
    pub servicedir: &'a Path,
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
}

/// One directory being listed.
pub(super) struct Frame<D> {
    /// `None` once dropped to stay within the budget.
    pub(super) dir: Option<D>,
    /// Its node: the top (`None`) or the one at this index of the output.
    pub(super) at: Option<usize>,
    pub(super) pending: Names,
}

/// The names of a directory still to observe.
pub(super) type Names = std::vec::IntoIter<(String, Option<Kind>)>;

/// The node of a frame: `top`, or one already output.
pub(super) fn node_of<'a>(at: Option<usize>, top: &'a Node, out: &'a [Node]) -> &'a Node {
    at.map_or(top, |i| &out[i])
}

impl<S: Source> Scanner<'_, S> {
    /// Append every entry below `top` (opened as `dir`) to `out`.
    pub(super) fn walk(
        &mut self,
        dir: S::Dir,
        top: &Node,
        how: &Walk<'_>,
        out: &mut Vec<Node>,
        bad: &mut Vec<Skipped>,
    ) {
        let pending = self.list_names(&dir, top, bad).into_iter();
        let mut budget = Budget {
            spent: 0,
            reserve: None,
        };
        let mut stack = vec![Frame {
            dir: Some(dir),
            at: None,
            pending,
        }];
        while let Some(f) = stack.last_mut() {
            let Some((name, kind)) = f.pending.next() else {
                let done = stack.pop().expect("not empty");
                self.back_to_parent(&mut stack, done, top, out);
                continue;
            };
            let Some(d) = f.dir.as_ref() else {
                continue;
            };
            let at = node_of(f.at, top, out);
            let Some((node, sub)) = self.entry(d, at, &name, kind, how) else {
                continue;
            };
            let cost = node.rel.as_os_str().len();
            self.path_bytes += cost;
            if !budget.spend(cost, self.path_bytes) {
                if budget.reserve.is_some() {
                    return;
                }
                // Back to the servicedir's own entries (the top frame
                // never drops its directory), within the reserve.
                bad.push(too_large(top));
                budget.reserve = Some(RESERVE_PATH_BYTES);
                stack.truncate(1);
                let f = &mut stack[0];
                f.pending = known_only(top, std::mem::take(&mut f.pending), how);
                continue;
            }
            let sub = sub.filter(|_| node.meta.dev == top.meta.dev);
            let reserve = budget.reserve.is_some();
            let names = sub
                .as_ref()
                .map(|sub| self.names_of(sub, &node, how, bad, reserve));
            out.push(node);
            let (Some(sub), Some(pending)) = (sub, names) else {
                continue;
            };
            stack.push(Frame {
                dir: Some(sub),
                at: Some(out.len() - 1),
                pending,
            });
            if stack.len() > MAX_OPEN_DIRS + 1 {
                let i = stack.len() - 1 - MAX_OPEN_DIRS;
                stack[i].dir = None;
            }
        }
    }

    /// After `done` is listed, make sure its parent (now on top) holds its
    /// directory again: reopened through `..` from `done`, and only if it
    /// is still the directory observed on the way down.
    fn back_to_parent(
        &mut self,
        stack: &mut [Frame<S::Dir>],
        done: Frame<S::Dir>,
        top: &Node,
        out: &[Node],
    ) {
        let Some(parent) = stack.last_mut() else {
            return;
        };
        if parent.dir.is_some() {
            return;
        }
        let at = node_of(parent.at, top, out);
        let reopened = done.dir.as_ref().map(|d| self.src.open_parent(d));
        match reopened {
            Some(Ok((d, m))) if m.same_file(&at.meta) => parent.dir = Some(d),
            Some(Ok(_)) => {
                let e = Refusal::MovedWhileObserved.into();
                self.error("open", at.path.clone(), &e);
                parent.pending = Vec::new().into_iter();
            }
            Some(Err(e)) => {
                self.error("open", at.path.clone(), &e);
                parent.pending = Vec::new().into_iter();
            }
            // Abandoned below: abandon this one too.
            None => parent.pending = Vec::new().into_iter(),
        }
    }

    /// Observe the entry `name` of `dir` (the node `at`): its node and,
    /// for a directory to descend into, the directory opened.
    fn entry(
        &mut self,
        dir: &S::Dir,
        at: &Node,
        name: &str,
        kind: Option<Kind>,
        how: &Walk<'_>,
    ) -> Option<(Node, Option<S::Dir>)> {
        // Its path relative to the servicedir, in a buffer kept from one
        // entry to the next (asked of every entry, only for roles).
        let mut in_sd = std::mem::take(&mut self.scratch);
        in_sd.as_mut_os_string().clear();
        in_sd.push(at.rel_below(how.servicedir).unwrap_or(&at.rel));
        in_sd.push(name);
        let found = self.entry_in(dir, at, name, kind, how, &in_sd);
        self.scratch = in_sd;
        found
    }

    /// [`Self::entry`], `in_sd` its path relative to the servicedir.
    fn entry_in(
        &mut self,
        dir: &S::Dir,
        at: &Node,
        name: &str,
        kind: Option<Kind>,
        how: &Walk<'_>,
        in_sd: &Path,
    ) -> Option<(Node, Option<S::Dir>)> {
        if layout::is_supervise_runtime_file(in_sd) {
            return None;
        }
        let descend = layout::look(in_sd, how.in_scandir) != Look::Nothing;
        // Without d_type, lstat first; then what it is decides. A file
        // that is normally empty too: when its size is 0, that is all
        // there is to observe (nothing opened or read).
        let (kind, seen) = match kind {
            Some(k) if !layout::usually_empty(in_sd, k) => (k, None),
            _ => {
                let mut n = self.stat(dir, at, name)?;
                if n.meta.kind == Kind::File && n.meta.size == 0 {
                    if how.read {
                        n.content = Content::Bytes(Vec::new());
                    }
                    return Some((n, None));
                }
                (n.meta.kind, Some(n))
            }
        };
        let os = OsStr::new(name);
        match kind {
            Kind::Dir if descend => match self.src.open_dir(dir, os) {
                Ok((d, m)) if seen.as_ref().is_none_or(|n| n.meta.same_file(&m)) => {
                    Some((at.child(os, m), Some(d)))
                }
                Ok(_) => seen.map(|n| (n, None)),
                Err(e) if is_gone_or_swapped(&e) => self.stat(dir, at, name).map(|n| (n, None)),
                Err(e) => {
                    self.error("open", at.path.join(name), &e);
                    None
                }
            },
            Kind::File if how.read => self.read(dir, at, name, in_sd, how).map(|n| (n, None)),
            _ => match seen {
                Some(n) => Some((n, None)),
                None => self.stat(dir, at, name).map(|n| (n, None)),
            },
        }
    }

    /// A regular file of a slot, with its contents; a failure to read it
    /// is kept with the node (the compare reports it); a hard-linked one
    /// is not read. `rel` is its path relative to the servicedir.
    fn read(
        &mut self,
        dir: &S::Dir,
        at: &Node,
        name: &str,
        rel: &Path,
        how: &Walk<'_>,
    ) -> Option<Node> {
        let os = OsStr::new(name);
        // A file with another name elsewhere is not read: the slot is
        // the user's to plant in (compat), and the other name may be a
        // file the user cannot read. It differs (its link count says so).
        match self
            .src
            .read_single_link_file(dir, None, os, SLOT_FILE_LIMIT)
        {
            Ok((m, bytes)) => {
                let mut n = at.child(os, m);
                n.content = bytes.map_or(Content::NotRead, |b| how.content(rel, b));
                Some(n)
            }
            Err(e) if is_gone_or_swapped(&e) => self.stat(dir, at, name),
            Err(e) => {
                let mut n = self.stat(dir, at, name)?;
                n.content = Content::Unreadable(Box::new((&e).into()));
                Some(n)
            }
        }
    }
}

impl<S: Source> Scanner<'_, S> {
    /// The names to observe in the directory `node` (opened as `sub`): its
    /// listing, or the names [`layout::look`] gives; in the reserve of the
    /// path budget, only the entries s6 knows.
    fn names_of(
        &mut self,
        sub: &S::Dir,
        node: &Node,
        how: &Walk<'_>,
        bad: &mut Vec<Skipped>,
        reserve: bool,
    ) -> Names {
        let rel = node.rel_below(how.servicedir).unwrap_or(&node.rel);
        if let Look::Names(names) = layout::look(rel, how.in_scandir) {
            let names: Vec<_> = names.iter().map(|n| (n.to_string(), None)).collect();
            return names.into_iter();
        }
        let names = self.list_names(sub, node, bad).into_iter();
        match reserve {
            true => known_only(node, names, how),
            false => names,
        }
    }
}

/// Of `names` (entries of `at`), those s6 gives a meaning to
/// ([`layout::is_known`]).
pub(super) fn known_only(at: &Node, names: Names, how: &Walk<'_>) -> Names {
    let keep: Vec<_> = names
        .filter(|(n, _)| {
            let rel = at.rel.join(n);
            layout::is_known(rel.strip_prefix(how.servicedir).unwrap_or(&rel))
        })
        .collect();
    keep.into_iter()
}

/// A tree whose walk stopped at the path budget: what was observed is
/// planned as usual, the rest is left as it is.
fn too_large(top: &Node) -> Skipped {
    Skipped {
        path: top.path.clone(),
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
            let nodes = &s.entries["gateway-a"].nodes;
            let n = nodes.iter().find(|n| n.rel == Path::new(rel)).unwrap();
            n.content.clone()
        };
        assert_eq!(content("gateway-a/type"), Content::AsExpected);
        assert_eq!(content("gateway-a/log/run"), Content::AsExpected);
        assert_eq!(
            content("gateway-a/run"),
            Content::Bytes(b"#!/bin/sh\nold\n".to_vec())
        );
        assert_eq!(content("gateway-a/down"), Content::Bytes(Vec::new()));
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
        let nodes = &s.entries["gateway-a"].nodes;
        let sub = nodes.iter().find(|n| n.rel.ends_with("sub")).unwrap();
        assert_eq!(sub.meta.kind, Kind::Symlink, "observed as what it is now");
        let names: Vec<_> = nodes.iter().map(|n| n.path.display().to_string()).collect();
        assert!(
            !names
                .iter()
                .any(|n| n.contains("secret") || n.contains("deeper")),
            "nothing behind the symlink was observed: {names:?}"
        );
        assert!(sc.errors.is_empty(), "{:?}", sc.errors);
    }
}
