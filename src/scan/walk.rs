//! Walking a tree below an opened directory: depth-first, sorted by name,
//! parents before children, with an explicit stack (depth costs no call
//! stack) and at most [`MAX_OPEN_DIRS`] directory handles held (deeper
//! ones are dropped and reopened through `..`, identity checked, on the
//! way back up). Never follows a symlink, never descends into another file
//! system, never lists an `event/` fifodir (what clients leave there is
//! theirs) and never looks at s6-supervise's runtime files.

use std::ffi::OsStr;
use std::path::Path;

use super::{Content, Node, SLOT_FILE_LIMIT, Scanner, Source, source::MAX_OPEN_DIRS};
use crate::fs::Kind;
use crate::layout::{self, Role};
use crate::report::Skipped;

/// How to walk one servicedir's tree.
pub(super) struct Walk<'a> {
    /// The servicedir the tree belongs to (relative to the base): roles
    /// are relative to it.
    pub servicedir: &'a Path,
    /// Read regular files' contents (a slot's, for the compare).
    pub read: bool,
}

/// One directory being listed.
struct Frame<D> {
    /// `None` once dropped to stay within the budget.
    dir: Option<D>,
    at: Node,
    pending: std::vec::IntoIter<(String, Option<Kind>)>,
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
        let mut stack = vec![Frame {
            dir: Some(dir),
            at: top.clone(),
            pending,
        }];
        while let Some(f) = stack.last_mut() {
            let Some((name, kind)) = f.pending.next() else {
                let done = stack.pop().expect("not empty");
                self.back_to_parent(&mut stack, done);
                continue;
            };
            let Some(d) = f.dir.as_ref() else {
                continue;
            };
            let Some((node, sub)) = self.entry(d, &f.at, &name, kind, how) else {
                continue;
            };
            out.push(node.clone());
            let Some(sub) = sub.filter(|_| node.meta.dev == top.meta.dev) else {
                continue;
            };
            let pending = self.list_names(&sub, &node, bad).into_iter();
            stack.push(Frame {
                dir: Some(sub),
                at: node,
                pending,
            });
            if stack.len() > MAX_OPEN_DIRS {
                let i = stack.len() - 1 - MAX_OPEN_DIRS;
                stack[i].dir = None;
            }
        }
    }

    /// After `done` is listed, make sure its parent (now on top) holds its
    /// directory again: reopened through `..` from `done`, and only if it
    /// is still the directory observed on the way down.
    fn back_to_parent(&mut self, stack: &mut [Frame<S::Dir>], done: Frame<S::Dir>) {
        let Some(parent) = stack.last_mut() else {
            return;
        };
        if parent.dir.is_some() {
            return;
        }
        let reopened = done.dir.as_ref().map(|d| self.src.open_parent(d));
        match reopened {
            Some(Ok((d, m))) if m.same_file(&parent.at.meta) => parent.dir = Some(d),
            Some(Ok(_)) => {
                let e = std::io::Error::other("moved while being observed; left alone");
                self.error("open", parent.at.path.clone(), &e);
                parent.pending = Vec::new().into_iter();
            }
            Some(Err(e)) => {
                self.error("open", parent.at.path.clone(), &e);
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
        let rel = at.rel.join(name);
        let in_sd = rel.strip_prefix(how.servicedir).unwrap_or(&rel);
        if layout::is_supervise_runtime_file(in_sd) {
            return None;
        }
        let descend = layout::role(in_sd, Kind::Dir) != Role::EventDir;
        // Without d_type, lstat first; then what it is decides.
        let (kind, seen) = match kind {
            Some(k) => (k, None),
            None => {
                let n = self.stat(dir, at, name)?;
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
            Kind::File if how.read => self.read(dir, at, name).map(|n| (n, None)),
            _ => match seen {
                Some(n) => Some((n, None)),
                None => self.stat(dir, at, name).map(|n| (n, None)),
            },
        }
    }

    /// A regular file of a slot, with its contents; a failure to read it
    /// is kept with the node (the compare reports it).
    fn read(&mut self, dir: &S::Dir, at: &Node, name: &str) -> Option<Node> {
        let os = OsStr::new(name);
        match self.src.read_file(dir, os, SLOT_FILE_LIMIT) {
            Ok((m, bytes)) => {
                let mut n = at.child(os, m);
                n.content = bytes.map_or(Content::NotRead, Content::Bytes);
                Some(n)
            }
            Err(e) if is_gone_or_swapped(&e) => self.stat(dir, at, name),
            Err(e) => {
                let mut n = self.stat(dir, at, name)?;
                n.content = Content::Unreadable(crate::fs::os_error(&e));
                Some(n)
            }
        }
    }
}

/// Vanished, or no longer what the listing said (a symlink or a
/// non-directory now): observe what is there instead.
pub(super) fn is_gone_or_swapped(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ELOOP) | Some(libc::ENOTDIR)
    ) || e
        .to_string()
        .contains("is a symlink; refusing to follow it")
}
