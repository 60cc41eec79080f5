//! The image's definition trees, which root reads at every boot:
//! s6-rc's source definitions (`/etc/s6-overlay/s6-rc.d`, the
//! `user-bundles.d` bundles), the legacy `/etc/services.d` services and
//! the `cont-init.d`/`cont-finish.d` scripts, and every directory above
//! them up to `/`. On disk they are walked with walkdir (links not
//! followed, mounts not crossed, depth bounded); a directory the user can
//! change is a finding and is not entered (`filter_entry`), so nothing
//! the user can swap is ever walked. The walk is not sorted: walkdir
//! reads a sorted directory whole when it opens it, before `filter_entry`
//! refuses it, so a directory the user filled with names would be read to
//! its end; unsorted, a refused directory is opened and closed unread. What
//! the walk finds is sorted afterwards. A tree description (`--tree`) is
//! judged entry by entry with the same rules.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::access::{Who, Why};
use super::{Audit, Kind};
use crate::fs::{Kind as FsKind, Meta};
use crate::s6::layout;
use crate::tree::{Description, Node};

/// Levels below a tree's top looked at.
pub const MAX_DEPTH: usize = 16;

/// One definition tree: its path relative to `/`, and the kind of line
/// each of its top-level entries gets (`None`: the tree is one line).
struct Tree {
    rel: &'static str,
    entries: Option<Kind>,
}

const TREES: &[Tree] = &[
    Tree {
        rel: layout::S6RC_SOURCE,
        entries: Some(Kind::S6Rc),
    },
    Tree {
        rel: layout::USER_BUNDLES,
        entries: None,
    },
    Tree {
        rel: layout::LEGACY_SERVICES,
        entries: Some(Kind::Legacy),
    },
    Tree {
        rel: layout::CONT_INIT,
        entries: None,
    },
    Tree {
        rel: layout::CONT_FINISH,
        entries: None,
    },
];

impl Tree {
    fn top(&self) -> PathBuf {
        Path::new("/").join(self.rel)
    }

    fn top_line(&self) -> (Kind, String) {
        let kind = if self.rel == layout::CONT_INIT || self.rel == layout::CONT_FINISH {
            Kind::Scripts
        } else {
            Kind::Tree
        };
        (kind, self.top().display().to_string())
    }
}

/// What judging one entry adds to the audit, kept until the walk ends.
enum Op {
    Line(Kind, String),
    Depends((Kind, String), (Kind, String)),
    Finding(Kind, String, Why),
    Note(String),
}

/// Judges the entries of one tree as they are met, parents first.
struct Judge<'a> {
    who: &'a Who,
    a: &'a mut Audit,
    /// The device of the tree's top: a directory below it on another one
    /// is a mount, judged but not entered.
    top_dev: Option<u64>,
    /// What [`Judge::entry`] found, by entry path, in the walk's order.
    ops: Vec<(PathBuf, Op)>,
}

impl Judge<'_> {
    fn new<'a>(who: &'a Who, a: &'a mut Audit) -> Judge<'a> {
        Judge {
            who,
            a,
            top_dev: None,
            ops: Vec::new(),
        }
    }

    /// Add what the entries gave to the audit; sorted by path first (each
    /// directory's entries by name, a directory before what it holds).
    fn apply(&mut self, sort: bool) {
        let mut ops = std::mem::take(&mut self.ops);
        if sort {
            ops.sort_by(|x, y| x.0.cmp(&y.0));
        }
        for (path, op) in ops {
            match op {
                Op::Line(k, n) => {
                    self.a.line(k, &n);
                }
                Op::Depends(l, p) => self.a.depends((l.0, &l.1), (p.0, &p.1)),
                Op::Finding(k, n, why) => self.a.finding(k, &n, &path, why),
                Op::Note(text) => self.a.note(text),
            }
        }
    }

    /// Judge the entry at `path` (a container path, `depth` levels below
    /// `t`'s top); whether to enter it.
    fn entry(&mut self, t: &Tree, path: &Path, depth: usize, m: &Meta) -> bool {
        let top = t.top_line();
        let line = match (t.entries, path.strip_prefix(t.top()).ok()) {
            (Some(kind), Some(rel)) if depth > 0 => {
                let first = rel.components().next().map(|c| c.as_os_str());
                let name = crate::s6::names::escape(first.unwrap_or_default().as_encoded_bytes());
                let op = Op::Depends((kind, name.clone()), top.clone());
                self.ops.push((path.to_path_buf(), op));
                let op = Op::Line(kind, name.clone());
                self.ops.push((path.to_path_buf(), op));
                (kind, name)
            }
            _ => top,
        };
        if m.kind == FsKind::Symlink {
            let text = format!(
                "{}: a symlink, not followed; what it points to is not audited",
                shown(path)
            );
            self.ops.push((path.to_path_buf(), Op::Note(text)));
            return false;
        }
        if depth == 0 {
            self.top_dev = Some(m.dev);
        }
        // A directory on another device is a mount: judged, never entered.
        // The walk (`same_file_system`) has not opened it, so it must be
        // kept (`true`): walkdir's `filter_entry` answers `false` for a
        // directory by leaving the directory it last opened, which would be
        // the mount's parent, and the entries after the mount would go
        // unjudged.
        let mount = depth > 0 && m.kind == FsKind::Dir && self.top_dev.is_some_and(|d| d != m.dev);
        if mount {
            let text = format!(
                "{}: a mount, not crossed; what it holds is not audited",
                shown(path)
            );
            self.ops.push((path.to_path_buf(), Op::Note(text)));
        }
        if let Some(why) = self.who.can_change(m) {
            let op = Op::Finding(line.0, line.1, why);
            self.ops.push((path.to_path_buf(), op));
            return mount;
        }
        if mount {
            return true;
        }
        if m.kind == FsKind::Dir && depth == MAX_DEPTH {
            let text = format!(
                "{}: deeper than {MAX_DEPTH} levels; not audited",
                shown(path)
            );
            self.ops.push((path.to_path_buf(), Op::Note(text)));
        }
        m.kind == FsKind::Dir
    }

    /// The directories above `t`'s top, from `/` down: where the user can
    /// replace the next one, a path to root on its own line. `stat` gives
    /// the `lstat` of a container path (`None`: missing). Whether the top
    /// is there and a real directory.
    fn above(&mut self, t: &Tree, stat: &dyn Fn(&Path) -> Option<Meta>) -> bool {
        let top = t.top_line();
        let mut chain = vec![PathBuf::from("/")];
        for c in Path::new(t.rel).components() {
            let next = chain.last().map(|p| p.join(c)).unwrap_or_default();
            chain.push(next);
        }
        let Some(mut parent) = stat(&chain[0]) else {
            return false;
        };
        for pair in chain.windows(2) {
            let Some(child) = stat(&pair[1]) else {
                return false;
            };
            if let Some(why) = self.who.can_replace_in(&parent, child.uid) {
                let name = shown(&pair[0]);
                self.a.finding(Kind::Tree, &name, &pair[0], why);
                self.a.depends((top.0, &top.1), (Kind::Tree, &name));
            }
            if child.kind != FsKind::Dir {
                self.a.note(format!(
                    "{}: a {}, not followed; what it points to is not audited",
                    shown(&pair[1]),
                    child.kind.describe()
                ));
                return false;
            }
            parent = child;
        }
        self.a.line(top.0, &top.1);
        true
    }
}

fn shown(p: &Path) -> String {
    crate::s6::names::escape(p.as_os_str().as_encoded_bytes())
}

fn meta_of(md: &std::fs::Metadata) -> Meta {
    Meta {
        kind: FsKind::from_mode(md.mode()),
        dev: md.dev(),
        ino: md.ino(),
        uid: md.uid(),
        gid: md.gid(),
        mode: md.mode() & 0o7777,
        nlink: md.nlink(),
        size: md.size(),
    }
}

/// Walk the definition trees under `root` (the container's `/`).
pub fn from_disk(root: &Path, who: &Who, a: &mut Audit) {
    let stat = |p: &Path| {
        let rel = p.strip_prefix("/").unwrap_or(p);
        std::fs::symlink_metadata(root.join(rel))
            .ok()
            .map(|m| meta_of(&m))
    };
    for t in TREES {
        let mut judge = Judge::new(who, a);
        if !judge.above(t, &stat) {
            continue;
        }
        let mut unobservable = Vec::new();
        let walk = walkdir::WalkDir::new(root.join(t.rel))
            .follow_links(false)
            .follow_root_links(false)
            .same_file_system(true)
            .max_depth(MAX_DEPTH)
            .into_iter()
            .filter_entry(|e| match e.metadata() {
                Ok(md) => {
                    let path = Path::new("/").join(e.path().strip_prefix(root).unwrap_or(e.path()));
                    judge.entry(t, &path, e.depth(), &meta_of(&md))
                }
                // Said below, when the walk yields the error.
                Err(_) => true,
            });
        for r in walk {
            if let Err(e) = r {
                let at = e
                    .path()
                    .map(|p| Path::new("/").join(p.strip_prefix(root).unwrap_or(p)));
                let why = e
                    .io_error()
                    .map(crate::fs::os_error)
                    .unwrap_or_else(|| e.to_string());
                unobservable.push(format!(
                    "not observable: {}: {why}",
                    at.as_deref().map(shown).unwrap_or_default()
                ));
            }
        }
        judge.apply(true);
        unobservable.sort();
        for n in unobservable {
            a.note(n);
        }
    }
}

/// Judge the definition trees held in a tree description, as
/// [`from_disk`] would walk them once materialized.
pub fn from_description(d: &Description, who: &Who, a: &mut Audit) {
    let stat = |p: &Path| {
        let rel = p.to_string_lossy();
        let rel = rel.trim_start_matches('/');
        if rel.is_empty() {
            return Some(described(&Node::Dir {
                perms: crate::tree::Perms {
                    uid: 0,
                    gid: 0,
                    mode: 0o755,
                },
                mount: false,
            }));
        }
        d.get(rel).map(|e| resolve(d, &e.node))
    };
    for t in TREES {
        let mut judge = Judge::new(who, a);
        if !judge.above(t, &stat) {
            continue;
        }
        // Entries below a directory not entered are not judged.
        let mut closed: Vec<String> = Vec::new();
        let prefix = format!("{}/", t.rel);
        for e in &d.entries {
            let below = e.path.strip_prefix(&prefix);
            if e.path != t.rel && below.is_none() {
                continue;
            }
            if closed.iter().any(|c| e.path.starts_with(&format!("{c}/"))) {
                continue;
            }
            let depth = below.map_or(0, |b| b.split('/').count());
            if depth > MAX_DEPTH {
                continue;
            }
            let m = resolve(d, &e.node);
            let enter = judge.entry(t, &Path::new("/").join(&e.path), depth, &m);
            let mount = matches!(e.node, Node::Dir { mount: true, .. });
            if (!enter || mount || depth == MAX_DEPTH) && m.kind == FsKind::Dir {
                closed.push(e.path.clone());
            }
        }
        judge.apply(false);
    }
}

/// The `lstat` a described entry would give (a hard link: its file's).
fn resolve(d: &Description, node: &Node) -> Meta {
    match node {
        Node::Hardlink { target } => d
            .get(target)
            .map_or_else(|| described(node), |e| described(&e.node)),
        n => described(n),
    }
}

fn described(node: &Node) -> Meta {
    let (kind, uid, gid, mode) = match node {
        Node::Dir { perms, .. } => (FsKind::Dir, perms.uid, perms.gid, perms.mode),
        Node::File { perms, .. } => (FsKind::File, perms.uid, perms.gid, perms.mode),
        Node::Fifo { perms } => (FsKind::Fifo, perms.uid, perms.gid, perms.mode),
        Node::Socket { perms } => (FsKind::Socket, perms.uid, perms.gid, perms.mode),
        Node::CharDevice { perms } | Node::BlockDevice { perms } => {
            (FsKind::Other, perms.uid, perms.gid, perms.mode)
        }
        Node::Symlink { uid, gid, .. } => (FsKind::Symlink, *uid, *gid, 0o777),
        Node::Hardlink { .. } => (FsKind::File, 0, 0, 0),
        Node::Runtime => (FsKind::File, 0, 0, 0o644),
    };
    Meta {
        kind,
        dev: 1,
        ino: 0,
        uid,
        gid,
        mode,
        nlink: 1,
        size: 0,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_definition_tree_is_judged() {
        let rels: Vec<&str> = super::TREES.iter().map(|t| t.rel).collect();
        assert_eq!(rels, crate::s6::layout::DEFINITION_TREES);
    }
}
