//! A tree description as a [`Source`] of observations (`--tree`): the
//! scanner asks it the same questions it asks the disk and gets the answers
//! the disk would give for the materialized tree, errnos included, so the
//! planner cannot tell the two apart. Nothing here touches the file system.
//!
//! What the description does not hold is made up the way the disk makes it
//! up: the root is a `0:0 0755` directory; inode numbers are entry numbers,
//! shared by the names of a hard-linked file; every entry is on one device
//! but for `mount: true` directories; s6-supervise's runtime files are
//! empty root files `0644`. Reads are root's, except inside
//! [`Source::as_user`], where the user's permission bits are checked as
//! the kernel would (owner, else group, else other).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::{Content, Description, Node};
use crate::fs::{self, BaseError, DirEntry, Kind, Meta, Os, Refusal, controlled_by};
use crate::observe::{OpenBase, Source};

/// One entry in memory.
struct Item {
    parent: usize,
    meta: Meta,
    children: BTreeMap<Vec<u8>, usize>,
    /// A regular file's bytes (`None`: described by digest only).
    bytes: Option<Vec<u8>>,
    link: Option<OsString>,
}

/// A parsed description, ready to answer the scanner.
pub struct TreeSource {
    items: Vec<Item>,
    untrusted: crate::fs::Ids,
    /// The user's (uid, gid) while inside `as_user`.
    acting: Cell<Option<(u32, u32)>>,
}

/// A directory handle: an entry number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeDir(usize);

/// The OS error the disk would give, from a description (no system call
/// was made).
fn errno(o: Os) -> fs::Error {
    o.at("tree description")
}

const ROOT: usize = 0;

impl TreeSource {
    /// Index `d` (parsed, hence well-formed); `untrusted` as for the disk.
    pub fn new(d: &Description, untrusted: crate::fs::Ids) -> TreeSource {
        let root = Item {
            parent: ROOT,
            meta: meta(Kind::Dir, 1, 0, 0, 0o755, 0),
            children: BTreeMap::new(),
            bytes: None,
            link: None,
        };
        let mut items = vec![root];
        let mut by_path: std::collections::HashMap<&str, usize> = Default::default();
        let mut next_dev = 2;
        for e in &d.entries {
            let (parent, name) = match e.path.rsplit_once('/') {
                Some((p, n)) => (by_path[p], n),
                None => (ROOT, e.path.as_str()),
            };
            let dev = items[parent].meta.dev;
            let ino = items.len() as u64 + 1;
            let item = match &e.node {
                Node::Hardlink { target } => {
                    let t = by_path[target.as_str()];
                    items[parent].children.insert(name.as_bytes().to_vec(), t);
                    by_path.insert(&e.path, t);
                    continue;
                }
                node => item_of(node, parent, dev, ino, &mut next_dev),
            };
            let i = items.len();
            items.push(item);
            items[parent].children.insert(name.as_bytes().to_vec(), i);
            by_path.insert(&e.path, i);
        }
        // A directory's link count: itself, `.` and each subdirectory's `..`.
        for i in 0..items.len() {
            if items[i].meta.kind == Kind::Dir {
                let subdirs = items[i]
                    .children
                    .values()
                    .filter(|&&c| items[c].meta.kind == Kind::Dir)
                    .count() as u64;
                items[i].meta.nlink = 2 + subdirs;
            }
        }
        TreeSource {
            items,
            untrusted,
            acting: Cell::new(None),
        }
    }

    fn child(&self, dir: usize, name: &OsStr) -> fs::Result<usize> {
        let b = name.as_bytes();
        if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
            return Err(Refusal::BadName {
                name: name.to_string_lossy().into_owned(),
            }
            .into());
        }
        self.allowed(dir, 0o1)?;
        self.items[dir]
            .children
            .get(b)
            .copied()
            .ok_or_else(|| errno(Os::NotFound))
    }

    /// Permission check for the acting user: `want` is r=4, w=2, x=1.
    fn allowed(&self, i: usize, want: u32) -> fs::Result<()> {
        let Some((uid, gid)) = self.acting.get() else {
            return Ok(());
        };
        let m = &self.items[i].meta;
        let bits = if uid == 0 {
            0o7
        } else if m.uid == uid {
            m.mode >> 6
        } else if m.gid == gid {
            m.mode >> 3
        } else {
            m.mode
        };
        if bits & want == want {
            Ok(())
        } else {
            Err(errno(Os::Access))
        }
    }

    /// The ancestors' search permission, as a path walk from the root
    /// would need it (a held directory needs none; kept for `open_base`).
    fn resolve(&self, path: &Path) -> Result<OpenBase<TreeDir>, BaseError> {
        let mut todo: Vec<OsString> = Vec::new();
        push_components(&mut todo, path);
        let mut cur = ROOT;
        let mut cur_path = PathBuf::from("/");
        let mut hops = 0;
        while let Some(name) = todo.pop() {
            if name == ".." {
                cur_path.pop();
                cur = self.items[cur].parent;
                continue;
            }
            let i = match self.child(cur, &name) {
                Ok(i) => i,
                Err(e) if Os::NotFound.is(&e) => return Err(BaseError::Missing),
                Err(e) => return Err(e.into()),
            };
            let m = self.items[i].meta;
            let last = todo.is_empty();
            match m.kind {
                Kind::Dir => {
                    cur = i;
                    cur_path.push(&name);
                    if last {
                        return Ok(OpenBase {
                            dir: TreeDir(i),
                            meta: m,
                            resolved: cur_path,
                        });
                    }
                }
                Kind::Symlink if last => return Err(BaseError::Symlink),
                Kind::Symlink => {
                    let holder = self.items[cur].meta;
                    if controlled_by(&holder, &self.untrusted) || m.uid != holder.uid {
                        let mut at = cur_path.clone();
                        at.push(&name);
                        return Err(BaseError::UntrustedSymlink {
                            at,
                            uid: self.untrusted.uid,
                            gid: if self.untrusted.in_group(holder.gid) {
                                holder.gid
                            } else {
                                self.untrusted.gid
                            },
                        });
                    }
                    hops += 1;
                    if hops > 40 {
                        return Err(BaseError::Loop);
                    }
                    let target = self.items[i].link.clone().unwrap_or_default();
                    let target = Path::new(&target);
                    if target.is_absolute() {
                        cur = ROOT;
                        cur_path = PathBuf::from("/");
                    }
                    push_components(&mut todo, target);
                }
                k => return Err(BaseError::NotADir(k.describe())),
            }
        }
        Ok(OpenBase {
            dir: TreeDir(cur),
            meta: self.items[cur].meta,
            resolved: cur_path,
        })
    }
}

impl TreeSource {
    /// The entry `name` of `dir` with every symlink on the way followed, as
    /// `open(2)` would (at most 40, then `ELOOP`), with the acting user's
    /// search permission on each directory passed.
    fn follow(&self, dir: usize, name: &OsStr) -> fs::Result<usize> {
        let mut todo: Vec<OsString> = vec![name.to_os_string()];
        let mut cur = dir;
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                self.allowed(cur, 0o1)?;
                cur = self.items[cur].parent;
                continue;
            }
            let i = self.child(cur, &c)?;
            match self.items[i].meta.kind {
                Kind::Symlink => {
                    hops += 1;
                    if hops > 40 {
                        return Err(errno(Os::Loop));
                    }
                    let target = self.items[i].link.clone().unwrap_or_default();
                    if Path::new(&target).is_absolute() {
                        cur = ROOT;
                    }
                    push_components(&mut todo, Path::new(&target));
                    if todo.is_empty() {
                        return Ok(cur);
                    }
                }
                Kind::Dir => cur = i,
                _ if todo.is_empty() => return Ok(i),
                _ => return Err(errno(Os::NotADir)),
            }
        }
        Ok(cur)
    }
}

fn push_components(stack: &mut Vec<OsString>, p: &Path) {
    let comps: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    stack.extend(comps.into_iter().rev());
}

fn meta(kind: Kind, dev: u64, uid: u32, gid: u32, mode: u32, ino: u64) -> Meta {
    Meta {
        kind,
        dev,
        ino,
        uid,
        gid,
        mode,
        nlink: 1,
        size: 0,
    }
}

fn item_of(node: &Node, parent: usize, dev: u64, ino: u64, next_dev: &mut u64) -> Item {
    let mut item = Item {
        parent,
        meta: meta(Kind::Other, dev, 0, 0, 0, ino),
        children: BTreeMap::new(),
        bytes: None,
        link: None,
    };
    let m = &mut item.meta;
    let set = |m: &mut Meta, kind: Kind, p: &super::Perms| {
        m.kind = kind;
        m.uid = p.uid;
        m.gid = p.gid;
        m.mode = p.mode;
    };
    match node {
        Node::Dir { perms, mount } => {
            set(m, Kind::Dir, perms);
            if *mount {
                m.dev = *next_dev;
                *next_dev += 1;
            }
        }
        Node::File {
            perms,
            content,
            links,
        } => {
            set(m, Kind::File, perms);
            m.nlink = links.unwrap_or(1);
            m.size = content.size();
            if let Content::Bytes(b) = content {
                item.bytes = Some(b.clone());
            }
        }
        Node::Runtime => {
            m.kind = Kind::File;
            m.mode = 0o644;
            item.bytes = Some(Vec::new());
        }
        Node::Fifo { perms } => set(m, Kind::Fifo, perms),
        Node::Socket { perms } => set(m, Kind::Socket, perms),
        Node::CharDevice { perms } | Node::BlockDevice { perms } => set(m, Kind::Other, perms),
        Node::Symlink { uid, gid, target } => {
            m.kind = Kind::Symlink;
            m.uid = *uid;
            m.gid = *gid;
            m.mode = 0o777;
            m.size = target.len() as u64;
            item.link = Some(OsString::from(target));
        }
        Node::Hardlink { .. } => unreachable!("hard links share their target's item"),
    }
    item
}

impl Source for TreeSource {
    type Dir = TreeDir;

    fn open_base(&self, path: &Path) -> Result<OpenBase<TreeDir>, BaseError> {
        self.resolve(path)
    }

    fn list(&self, dir: &TreeDir) -> fs::Result<Vec<DirEntry>> {
        self.allowed(dir.0, 0o4)?;
        Ok(self.items[dir.0]
            .children
            .iter()
            .map(|(name, &i)| DirEntry {
                name: OsStr::from_bytes(name).to_os_string(),
                kind: Some(self.items[i].meta.kind),
            })
            .collect())
    }

    fn stat(&self, dir: &TreeDir, name: &OsStr) -> fs::Result<Meta> {
        self.child(dir.0, name).map(|i| self.items[i].meta)
    }

    fn open_dir(&self, dir: &TreeDir, name: &OsStr) -> fs::Result<(TreeDir, Meta)> {
        let i = self.child(dir.0, name)?;
        let m = self.items[i].meta;
        match m.kind {
            Kind::Dir => Ok((TreeDir(i), m)),
            // What fs::Dir::open_dir says for a symlink.
            Kind::Symlink => Err(Refusal::Symlink {
                name: Path::new(name).display().to_string(),
            }
            .into()),
            _ => Err(errno(Os::NotADir)),
        }
    }

    fn open_parent(&self, dir: &TreeDir) -> fs::Result<(TreeDir, Meta)> {
        let p = self.items[dir.0].parent;
        Ok((TreeDir(p), self.items[p].meta))
    }

    fn read_file(
        &self,
        dir: &TreeDir,
        name: &OsStr,
        limit: u64,
    ) -> fs::Result<(Meta, Option<Vec<u8>>)> {
        let i = self.child(dir.0, name)?;
        let item = &self.items[i];
        let m = item.meta;
        match m.kind {
            Kind::Symlink => return Err(errno(Os::Loop)),
            Kind::Socket => return Err(errno(Os::NoDevice)),
            _ => {}
        }
        self.allowed(i, 0o4)?;
        if m.kind != Kind::File || m.size > limit {
            return Ok((m, None));
        }
        match &item.bytes {
            Some(b) => Ok((m, Some(b.clone()))),
            None => Err(Refusal::DigestOnly.into()),
        }
    }

    fn read_link(&self, dir: &TreeDir, name: &OsStr) -> fs::Result<OsString> {
        let i = self.child(dir.0, name)?;
        self.items[i].link.clone().ok_or_else(|| errno(Os::Invalid))
    }

    fn stat_following(&self, dir: &TreeDir, name: &OsStr) -> fs::Result<Meta> {
        let i = self.follow(dir.0, name)?;
        Ok(self.items[i].meta)
    }

    fn read_file_following(
        &self,
        dir: &TreeDir,
        name: &OsStr,
        limit: u64,
    ) -> fs::Result<(Meta, Option<Vec<u8>>)> {
        let i = self.follow(dir.0, name)?;
        let p = self.items[i].parent;
        let last = self.items[p]
            .children
            .iter()
            .find(|&(_, &c)| c == i)
            .map(|(n, _)| OsStr::from_bytes(n).to_os_string())
            .ok_or_else(|| errno(Os::NotFound))?;
        self.read_file(&TreeDir(p), &last, limit)
    }

    fn as_user<R>(&self, ids: (u32, u32), f: impl FnOnce() -> R) -> fs::Result<R> {
        let before = self.acting.replace(Some(ids));
        let r = f();
        self.acting.set(before);
        Ok(r)
    }
}
