//! The entries below one observed directory (a slot, a static servicedir),
//! as the walk found them: parents before children. Each entry keeps its
//! name and the index of the directory it is in, not its path, so what an
//! observation holds grows with the number of entries and the length of
//! their names, not with their depth; a path is built when it is asked
//! for. A converged slot is a dozen entries of 48 bytes and its names.

use std::path::{Path, PathBuf};

use super::Content;
use crate::fs::{Kind, Meta};

/// The entries below one directory (the top). See the module docs.
#[derive(Clone, Debug, Default)]
pub struct Entries {
    /// Every entry's name, one after another.
    names: String,
    list: Vec<Entry>,
    /// The bytes read of a regular file, or why it could not be read, by
    /// entry index, in order (see [`Read::Kept`]).
    kept: Vec<(u32, Content)>,
}

/// One entry below the top: where its name is, its directory, and what
/// `lstat` said ([`Meta`], stored in fewer bytes: see [`Entries::meta`]).
#[derive(Clone, Debug)]
struct Entry {
    /// Where its name ends in `names` (it starts where the previous
    /// entry's ends).
    end: u32,
    /// The index of the directory it is in, or [`TOP`].
    parent: u32,
    kind: Kind,
    read: Read,
    /// `Meta::mode`: the permission bits, at most 0o7777.
    mode: u16,
    uid: u32,
    gid: u32,
    /// `Meta::nlink`: Linux counts an inode's links in 32 bits.
    nlink: u32,
    size: u64,
    dev: u64,
    ino: u64,
}

/// What was read of an entry ([`Content`] without the bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Read {
    Not,
    AsExpected,
    /// Bytes, or why they could not be read: in [`Entries::kept`].
    Kept,
}

static NOT_READ: Content = Content::NotRead;
static AS_EXPECTED: Content = Content::AsExpected;

/// The parent of an entry directly below the top.
const TOP: u32 = u32::MAX;

/// An index or a length into an [`Entries`]: bounded by the walk's path
/// budget, far below 4 GiB.
fn index(i: usize) -> u32 {
    u32::try_from(i).expect("bounded by the walk's path budget")
}

impl Entries {
    /// Add the entry `name` of the directory `parent` (an index already
    /// added; `None`: the top) and return its index.
    pub fn push(
        &mut self,
        parent: Option<usize>,
        name: &str,
        meta: Meta,
        content: Content,
    ) -> usize {
        let parent = parent.map_or(TOP, |p| {
            assert!(p < self.list.len(), "a parent is added before its entries");
            index(p)
        });
        self.names.push_str(name);
        let i = self.list.len();
        let read = match content {
            Content::NotRead => Read::Not,
            Content::AsExpected => Read::AsExpected,
            kept => {
                self.kept.push((index(i), kept));
                Read::Kept
            }
        };
        self.list.push(Entry {
            end: index(self.names.len()),
            parent,
            kind: meta.kind,
            read,
            mode: 0,
            uid: 0,
            gid: 0,
            nlink: 0,
            size: 0,
            dev: 0,
            ino: 0,
        });
        self.set_meta(i, meta);
        i
    }

    /// What `lstat` said of the entry at `i` (a link count past 32 bits,
    /// which Linux never has, reads as `u32::MAX`).
    pub fn meta(&self, i: usize) -> Meta {
        let e = &self.list[i];
        Meta {
            kind: e.kind,
            dev: e.dev,
            ino: e.ino,
            uid: e.uid,
            gid: e.gid,
            mode: u32::from(e.mode),
            nlink: u64::from(e.nlink),
            size: e.size,
        }
    }

    /// Change what is known of the entry at `i` (what an apply did to it).
    pub fn set_meta(&mut self, i: usize, m: Meta) {
        let e = &mut self.list[i];
        e.kind = m.kind;
        e.dev = m.dev;
        e.ino = m.ino;
        e.uid = m.uid;
        e.gid = m.gid;
        e.mode = (m.mode & 0o7777) as u16;
        e.nlink = u32::try_from(m.nlink).unwrap_or(u32::MAX);
        e.size = m.size;
    }

    /// What was read of the entry at `i`.
    pub fn content(&self, i: usize) -> &Content {
        match self.list[i].read {
            Read::Not => &NOT_READ,
            Read::AsExpected => &AS_EXPECTED,
            Read::Kept => {
                let k = self.kept.binary_search_by_key(&index(i), |(j, _)| *j);
                &self.kept[k.expect("kept when read")].1
            }
        }
    }

    /// Give back what the walk reserved and did not use.
    pub fn shrink_to_fit(&mut self) {
        self.names.shrink_to_fit();
        self.list.shrink_to_fit();
        self.kept.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The name of the entry at `i`.
    pub fn name(&self, i: usize) -> &str {
        let start = match i {
            0 => 0,
            _ => self.list[i - 1].end as usize,
        };
        &self.names[start..self.list[i].end as usize]
    }

    /// The directory the entry at `i` is in (`None`: the top).
    pub fn parent(&self, i: usize) -> Option<usize> {
        match self.list[i].parent {
            TOP => None,
            p => Some(p as usize),
        }
    }

    /// The path of the entry at `i` relative to the top.
    pub fn rel(&self, i: usize) -> PathBuf {
        let mut chain = vec![i];
        while let Some(p) = self.parent(*chain.last().expect("not empty")) {
            chain.push(p);
        }
        chain.iter().rev().map(|&j| self.name(j)).collect()
    }

    /// The path of every entry relative to the top, by index.
    pub fn rels(&self) -> Vec<PathBuf> {
        let mut rels: Vec<PathBuf> = Vec::with_capacity(self.list.len());
        for i in 0..self.list.len() {
            let name = self.name(i);
            let rel = match self.parent(i) {
                Some(p) => {
                    // Sized first: `join` would copy, then grow.
                    let dir = &rels[p];
                    let mut rel = PathBuf::with_capacity(dir.as_os_str().len() + 1 + name.len());
                    rel.push(dir);
                    rel.push(name);
                    rel
                }
                None => PathBuf::from(name),
            };
            rels.push(rel);
        }
        rels
    }

    /// The index of the entry at `rel` (relative to the top): a search
    /// through the entries for each component, for a few lookups (many
    /// go through [`Entries::rels`] once).
    pub fn find(&self, rel: &Path) -> Option<usize> {
        let mut at = None;
        for name in rel.iter() {
            let name = name.to_str()?;
            at = Some((0..self.len()).find(|&i| self.parent(i) == at && self.name(i) == name)?);
        }
        at
    }

    /// Drop the entry at `i` and every entry below it (an apply removed
    /// them); the others keep their order.
    pub fn remove(&mut self, i: usize) {
        let old = std::mem::take(self);
        // Where each old entry went (`None`: removed), known for a parent
        // before its entries.
        let mut moved: Vec<Option<usize>> = Vec::with_capacity(old.len());
        for j in 0..old.len() {
            let to = match old.parent(j).map(|p| moved[p]) {
                _ if j == i => None,
                // Below a removed entry.
                Some(None) => None,
                parent => {
                    let content = old.content(j).clone();
                    Some(self.push(parent.flatten(), old.name(j), old.meta(j), content))
                }
            };
            moved.push(to);
        }
    }

    /// Set what was read of the entry at `i`: for tests.
    #[cfg(test)]
    pub fn set_content(&mut self, i: usize, content: Content) {
        let key = index(i);
        self.kept.retain(|(j, _)| *j != key);
        self.list[i].read = match content {
            Content::NotRead => Read::Not,
            Content::AsExpected => Read::AsExpected,
            kept => {
                let k = self.kept.partition_point(|(j, _)| *j < key);
                self.kept.insert(k, (key, kept));
                Read::Kept
            }
        };
    }

    /// Add the entry at `rel` (relative to the top), its directory being
    /// already there: for tests that build an observation by hand.
    #[cfg(test)]
    pub fn insert(&mut self, rel: impl AsRef<Path>, meta: Meta, content: Content) -> usize {
        let rel = rel.as_ref();
        let parent = rel
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| self.find(p).expect("its directory is there"));
        let name = rel.file_name().and_then(|n| n.to_str()).expect("a name");
        self.push(parent, name, meta, content)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: Kind) -> Meta {
        Meta {
            kind,
            dev: 1,
            ino: 2,
            uid: 0,
            gid: 0,
            mode: 0o755,
            nlink: 1,
            size: 0,
        }
    }

    fn five() -> Entries {
        let mut t = Entries::default();
        for rel in [
            "log",
            "log/run",
            "log/supervise",
            "log/supervise/control",
            "run",
        ] {
            t.insert(rel, meta(Kind::Dir), Content::NotRead);
        }
        t
    }

    #[test]
    fn names_parents_and_paths() {
        let t = five();
        assert_eq!(t.name(3), "control");
        assert_eq!(t.parent(3), Some(2));
        assert_eq!(t.parent(4), None);
        assert_eq!(t.rel(3), Path::new("log/supervise/control"));
        let rels: Vec<_> = t.rels();
        assert_eq!(rels[1], Path::new("log/run"));
        assert_eq!(rels[4], Path::new("run"));
        assert_eq!(t.find(Path::new("log/supervise/control")), Some(3));
        assert_eq!(t.find(Path::new("supervise/control")), None);
        assert_eq!(t.find(Path::new("log/run/x")), None);
    }

    /// Every attribute comes back as it was given (the mode's special
    /// bits, ids and sizes past 32 bits, a link count past 16).
    #[test]
    fn attributes_and_contents_come_back_whole() {
        let mut t = Entries::default();
        let m = Meta {
            kind: Kind::File,
            dev: u64::MAX - 1,
            ino: 1 << 40,
            uid: u32::MAX - 2,
            gid: 70_000,
            mode: 0o7777,
            nlink: 70_000,
            size: 5 << 32,
        };
        t.push(None, "a", m, Content::Bytes(b"x".to_vec()));
        t.push(None, "b", meta(Kind::Fifo), Content::NotRead);
        t.push(None, "c", meta(Kind::File), Content::AsExpected);
        let error = Content::Unreadable(Box::new("EIO".into()));
        t.push(None, "d", meta(Kind::File), error.clone());
        assert_eq!(t.meta(0), m);
        assert_eq!(t.meta(1), meta(Kind::Fifo));
        let contents: Vec<_> = (0..4).map(|i| t.content(i).clone()).collect();
        let bytes = Content::Bytes(b"x".to_vec());
        assert_eq!(
            contents,
            [bytes, Content::NotRead, Content::AsExpected, error]
        );
        t.remove(1);
        assert_eq!(t.content(2), &Content::Unreadable(Box::new("EIO".into())));
        assert_eq!(t.meta(0), m);
    }

    /// At 10,000 slots of 13 entries, 8 bytes more an entry would be 1
    /// MiB of the 24 MiB a run may use (benches/README.md).
    #[test]
    fn an_entry_is_48_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 48);
    }

    #[test]
    fn removing_an_entry_removes_what_is_below_it() {
        let mut t = five();
        t.remove(2);
        let rels: Vec<_> = t.rels();
        assert_eq!(
            rels,
            [Path::new("log"), Path::new("log/run"), Path::new("run")]
        );
        t.remove(0);
        assert_eq!(t.rels(), [Path::new("run")]);
    }
}
