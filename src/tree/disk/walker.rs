//! Walking a tree for a description the way the observation walks one
//! (`observe::walk`): from held directory fds, never by path (walkdir opens
//! each directory by its full path, so it fails at `PATH_MAX` and would
//! follow a directory swapped for a symlink midway), depth-first with an
//! explicit stack, at most [`MAX_OPEN_DIRS`] directory fds held (a deeper
//! one is dropped and reopened through `..`, identity checked, on the way
//! back up), never following a symlink, never entering another file
//! system, and at most [`TREE_PATH_BYTES`] of paths per servicedir (entry
//! of the top) and [`TOTAL_PATH_BYTES`] in all: a tree past that is
//! described up to the bound and said to be cut.

use std::ffi::OsString;
use std::path::Path;

use super::Describer;
use crate::fs::{Dir, Kind, Meta};
use crate::observe::{MAX_OPEN_DIRS, RESERVE_PATH_BYTES, TOTAL_PATH_BYTES, TREE_PATH_BYTES};
use crate::s6::layout;

/// One directory being walked.
struct Frame {
    /// `None` while dropped to stay within [`MAX_OPEN_DIRS`].
    dir: Option<Dir>,
    id: (u64, u64),
    rel: String,
    pending: std::vec::IntoIter<OsString>,
}

pub(super) struct Walker<'a> {
    d: &'a mut Describer,
    top: String,
    /// Held throughout: the way back after a tree is cut.
    top_dir: Dir,
    dev: u64,
    /// Path bytes spent in the current entry of the top (a servicedir),
    /// and in all.
    spent: usize,
    total: usize,
    /// The current servicedir, held: the way back after its tree is cut.
    slot_dir: Option<Dir>,
    /// Set once the current servicedir is cut: what it may still spend.
    reserve: Option<usize>,
    stack: Vec<Frame>,
}

impl<'a> Walker<'a> {
    /// A walk of the directory `dir` (with `meta`), described at `rel`.
    pub(super) fn new(d: &'a mut Describer, rel: &str, (meta, dir): (Meta, Dir)) -> Option<Self> {
        let top_dir = match dir.try_clone() {
            Ok(t) => t,
            Err(e) => {
                d.error("read directory", rel, e);
                return None;
            }
        };
        let mut w = Walker {
            d,
            top: rel.to_string(),
            top_dir,
            dev: meta.dev,
            spent: 0,
            total: 0,
            slot_dir: None,
            reserve: None,
            stack: Vec::new(),
        };
        w.push(rel.to_string(), dir, &meta);
        Some(w)
    }

    pub(super) fn run(mut self) {
        while let Some(f) = self.stack.last_mut() {
            let Some(name) = f.pending.next() else {
                self.pop();
                continue;
            };
            let Some(n) = name.to_str() else {
                let rel = format!("{}/{}", f.rel, name.to_string_lossy());
                self.d
                    .error("describe", &rel, "name is not valid UTF-8; not described");
                continue;
            };
            let rel = format!("{}/{n}", f.rel);
            if self.stack.len() == 1 {
                self.spent = 0;
                self.reserve = None;
            }
            self.total += rel.len() + 1;
            if self.total > TOTAL_PATH_BYTES {
                self.d.cut.push(too_large(&self.top));
                return;
            }
            if self.over(rel.len() + 1) {
                if let Err(e) = self.cut(&rel) {
                    return self.d.error("read directory", &self.top, e);
                }
                continue;
            }
            self.visit(name, rel);
        }
    }

    /// Spend `cost` in the current servicedir; `true` when it is over its
    /// bound (or, once cut, over its reserve).
    fn over(&mut self, cost: usize) -> bool {
        self.spent += cost;
        match &mut self.reserve {
            None => self.spent > TREE_PATH_BYTES,
            Some(left) => match left.checked_sub(cost) {
                Some(l) => {
                    *left = l;
                    false
                }
                None => true,
            },
        }
    }

    /// The current servicedir went over its bound at `rel`: say so once,
    /// then go back to the servicedir's own entries with
    /// [`RESERVE_PATH_BYTES`] more (as the observation does, so that one
    /// planted deep entry does not hide its `run` or `supervise/`), and
    /// past that on to the next servicedir.
    fn cut(&mut self, rel: &str) -> crate::fs::Result<()> {
        if self.reserve.is_none() {
            let tree = self.stack.get(1).map_or(rel, |f| &f.rel);
            self.d.cut.push(too_large(tree));
        }
        let (keep, held) = match (&self.reserve, &self.slot_dir) {
            (None, Some(slot)) if self.stack.len() > 2 => (2, slot),
            _ => (1, &self.top_dir),
        };
        let held = held.try_clone()?;
        self.reserve = Some(RESERVE_PATH_BYTES);
        self.stack.truncate(keep);
        let f = self.stack.last_mut().expect("kept");
        if f.dir.is_none() {
            f.dir = Some(held);
        }
        if keep == 2 {
            let known: Vec<OsString> = std::mem::take(&mut f.pending)
                .filter(|n| layout::is_known(Path::new(n)))
                .collect();
            f.pending = known.into_iter();
        }
        Ok(())
    }

    /// Describe the entry `name` of the innermost directory and, when it
    /// is a directory on the same file system, walk into it.
    fn visit(&mut self, name: OsString, rel: String) {
        let dir = self
            .stack
            .last()
            .and_then(|f| f.dir.as_ref())
            .expect("held");
        let m = match dir.stat(&name) {
            Ok(m) => m,
            // Gone since it was listed (s6-supervise renames its
            // `status.new` over `status` all the time): not in the tree.
            Err(e) if crate::fs::Os::NotFound.is(&e) => return,
            Err(e) => return self.d.error("stat", &rel, e),
        };
        self.d.add_at(dir, &name, &rel, &m, m.dev != self.dev);
        let enter = m.kind == Kind::Dir && m.dev == self.dev;
        if !enter {
            return;
        }
        match dir.open_dir(&name).and_then(|d| Ok((d.meta()?, d))) {
            Ok((now, sub)) if (now.dev, now.ino) == (m.dev, m.ino) => self.push(rel, sub, &now),
            Ok(_) => self
                .d
                .error("read directory", &rel, "changed while being described"),
            Err(e) => self.d.error("read directory", &rel, e),
        }
    }

    /// Enter `dir` (listed now, names sorted), dropping the fd of the
    /// frame that falls out of the [`MAX_OPEN_DIRS`] window.
    fn push(&mut self, rel: String, dir: Dir, meta: &Meta) {
        let mut names = match dir.entries() {
            Ok(n) => n,
            Err(e) => {
                self.d.error("read directory", &rel, e);
                Vec::new()
            }
        };
        names.sort();
        // Once cut, only what s6 gives a meaning to (as the observation).
        if let (Some(_), Some(slot)) = (self.reserve, self.stack.get(1)) {
            let below = rel.strip_prefix(&slot.rel).unwrap_or(&rel);
            let below = Path::new(below.trim_start_matches('/'));
            names.retain(|n| layout::is_known(&below.join(n)));
        }
        if self.stack.len() == 1 {
            self.slot_dir = dir.try_clone().ok();
        }
        self.stack.push(Frame {
            dir: Some(dir),
            id: (meta.dev, meta.ino),
            rel,
            pending: names.into_iter(),
        });
        if let Some(i) = self.stack.len().checked_sub(MAX_OPEN_DIRS + 1) {
            self.stack[i].dir = None;
        }
    }

    /// Leave the innermost directory, reopening its parent through `..`
    /// when the parent's fd was dropped.
    fn pop(&mut self) {
        let done = self.stack.pop().expect("not empty");
        let Some(parent) = self.stack.last_mut() else {
            return;
        };
        if parent.dir.is_some() {
            return;
        }
        match done.dir.as_ref().map(Dir::open_parent) {
            Some(Ok((dir, m))) if (m.dev, m.ino) == parent.id => parent.dir = Some(dir),
            _ => {
                self.d
                    .error("read directory", &parent.rel, "moved while being described");
                parent.pending = Vec::new().into_iter();
            }
        }
    }
}

/// What `snapshot` says on stderr of a tree it cut at the bound.
fn too_large(rel: &str) -> String {
    format!(
        "/{rel}: too deep or too large to describe in full (over {} MiB of path names \
         below it, or {} MiB in all); described up to that bound",
        TREE_PATH_BYTES >> 20,
        TOTAL_PATH_BYTES >> 20
    )
}
