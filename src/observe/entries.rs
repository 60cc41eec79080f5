//! The entries below one observed directory (a slot, a static servicedir),
//! as the walk found them: parents before children. Each entry keeps its
//! name and the index of the directory it is in, not its path, so what an
//! observation holds grows with the number of entries and the length of
//! their names, not with their depth; a path is built when it is asked
//! for.

use std::path::{Path, PathBuf};

use super::Content;
use crate::fs::Meta;

/// The entries below one directory (the top). See the module docs.
#[derive(Clone, Debug, Default)]
pub struct Entries {
    /// Every entry's name, one after another.
    names: String,
    list: Vec<Entry>,
    /// What was read of regular files (a slot's), by entry index, in
    /// order; an entry that is not here was not read. Kept apart: most
    /// entries are directories and FIFOs.
    read: Vec<(u32, Content)>,
}

/// One entry below the top.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Where its name ends in `names` (it starts where the previous
    /// entry's ends).
    end: u32,
    /// The index of the directory it is in, or [`TOP`].
    parent: u32,
    pub meta: Meta,
}

/// What an entry not in [`Entries::read`] has.
static NOT_READ: Content = Content::NotRead;

/// The parent of an entry directly below the top.
const TOP: u32 = u32::MAX;

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
        let index = |i: usize| u32::try_from(i).expect("bounded by the walk's path budget");
        let parent = parent.map_or(TOP, |p| {
            assert!(p < self.list.len(), "a parent is added before its entries");
            index(p)
        });
        self.names.push_str(name);
        let end = index(self.names.len());
        self.list.push(Entry { end, parent, meta });
        let i = self.list.len() - 1;
        if content != Content::NotRead {
            self.read.push((index(i), content));
        }
        i
    }

    /// What was read of the entry at `i`.
    pub fn content(&self, i: usize) -> &Content {
        match self.read.binary_search_by_key(&i, |(j, _)| *j as usize) {
            Ok(k) => &self.read[k].1,
            Err(_) => &NOT_READ,
        }
    }

    /// Give back what the walk reserved and did not use.
    pub fn shrink_to_fit(&mut self) {
        self.names.shrink_to_fit();
        self.list.shrink_to_fit();
        self.read.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The entry at `i`.
    pub fn get(&self, i: usize) -> &Entry {
        &self.list[i]
    }

    pub fn get_mut(&mut self, i: usize) -> &mut Entry {
        &mut self.list[i]
    }

    /// Every entry, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.list.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.list.iter_mut()
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
            let rel = match self.parent(i) {
                Some(p) => rels[p].join(self.name(i)),
                None => PathBuf::from(self.name(i)),
            };
            rels.push(rel);
        }
        rels
    }

    /// The index of the entry at `rel` (relative to the top).
    pub fn find(&self, rel: &Path) -> Option<usize> {
        let mut at = None;
        for name in rel.iter() {
            let name = name.to_str()?;
            at =
                Some((0..self.list.len()).find(|&i| self.parent(i) == at && self.name(i) == name)?);
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
        for (j, e) in old.list.iter().enumerate() {
            let to = match old.parent(j).map(|p| moved[p]) {
                _ if j == i => None,
                // Below a removed entry.
                Some(None) => None,
                parent => Some(self.push(
                    parent.flatten(),
                    old.name(j),
                    e.meta,
                    old.content(j).clone(),
                )),
            };
            moved.push(to);
        }
    }

    /// Set what was read of the entry at `i`: for tests.
    #[cfg(test)]
    pub fn set_content(&mut self, i: usize, content: Content) {
        let key = u32::try_from(i).unwrap();
        match self.read.binary_search_by_key(&key, |(j, _)| *j) {
            Ok(k) => self.read[k].1 = content,
            Err(k) => self.read.insert(k, (key, content)),
        }
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
    use crate::fs::Kind;

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

    #[test]
    fn names_parents_and_paths() {
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

    #[test]
    fn removing_an_entry_removes_what_is_below_it() {
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
