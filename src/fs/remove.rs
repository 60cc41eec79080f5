//! Removing a directory tree through held directory fds: never following a
//! symlink, never crossing into another file system, and iterative, so a
//! tree of any depth costs a bounded call stack and at most
//! [`MAX_OPEN_DIRS`] open descriptors (deeper directories are closed on the
//! way down and reopened through `..`, identity checked, on the way up).

use std::ffi::{OsStr, OsString};
use std::path::Path;

use super::dir::{Dir, DirEntry};
use super::error::{Error, Refusal, Result};
use super::meta::{Kind, Meta};

/// The most directories held open at once while removing a tree.
pub const MAX_OPEN_DIRS: usize = 32;

/// One directory being emptied.
struct Frame {
    /// `None` once closed to stay within the budget.
    dir: Option<Dir>,
    meta: Meta,
    /// Its name in its parent.
    name: OsString,
    pending: std::vec::IntoIter<DirEntry>,
}

impl Dir {
    /// Remove a child and, if it is a directory, everything below it.
    /// Removal stops at the first error (what is left stays where it was).
    pub fn remove_tree(&self, name: &OsStr) -> Result<()> {
        let meta = self.stat(name)?;
        if meta.kind != Kind::Dir {
            return self.unlink(name);
        }
        let top = self.open_dir(name)?;
        if !top.meta()?.same_file(&meta) {
            return Err(Refusal::ChangedWhileRemoving.into());
        }
        let pending = top.list()?.into_iter();
        let mut stack = vec![Frame {
            dir: Some(top),
            meta,
            name: name.to_os_string(),
            pending,
        }];
        while let Some(f) = stack.last_mut() {
            match f.pending.next() {
                Some(e) => {
                    let d = f.dir.as_ref().expect("the current directory is held");
                    if let Some(sub) = d.remove_entry(e, meta.dev)? {
                        stack.push(sub);
                        if stack.len() > MAX_OPEN_DIRS {
                            let i = stack.len() - 1 - MAX_OPEN_DIRS;
                            stack[i].dir = None;
                        }
                    }
                }
                None => {
                    let done = stack.pop().expect("not empty");
                    let parent = match stack.last_mut() {
                        None => self,
                        Some(p) => p.reopened(&done)?,
                    };
                    parent.rmdir(&done.name)?;
                }
            }
        }
        Ok(())
    }

    /// Remove the entry `e` of this directory; a directory is opened and
    /// returned as the next one to empty instead.
    fn remove_entry(&self, e: DirEntry, dev: u64) -> Result<Option<Frame>> {
        let kind = match e.kind {
            Some(k) => k,
            None => self.stat(&e.name)?.kind,
        };
        if kind != Kind::Dir {
            return self.unlink(&e.name).map(|()| None);
        }
        let sub = self.open_dir(&e.name)?;
        let meta = sub.meta()?;
        if meta.dev != dev {
            let name = Path::new(&e.name).display().to_string();
            return Err(Refusal::MountPoint { name }.into());
        }
        let pending = sub.list()?.into_iter();
        Ok(Some(Frame {
            dir: Some(sub),
            meta,
            name: e.name,
            pending,
        }))
    }

    /// `unlinkat(AT_REMOVEDIR)` of an empty child directory.
    fn rmdir(&self, name: &OsStr) -> Result<()> {
        nix::unistd::unlinkat(self.as_fd(), name, nix::unistd::UnlinkatFlags::RemoveDir)
            .map_err(Error::os("unlinkat"))
    }
}

impl Frame {
    /// This frame's directory, reopened from its child `done` through `..`
    /// when it was closed, and only if it is still the one walked into.
    fn reopened(&mut self, done: &Frame) -> Result<&Dir> {
        if self.dir.is_none() {
            let child = done.dir.as_ref().ok_or(Refusal::Moved)?;
            let (d, m) = child.open_parent()?;
            if !m.same_file(&self.meta) {
                return Err(Refusal::Moved.into());
            }
            self.dir = Some(d);
        }
        Ok(self.dir.as_ref().expect("set above"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn remove_tree_does_not_follow_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open_path(t.path()).unwrap();
        std::fs::create_dir_all(t.path().join("outside")).unwrap();
        std::fs::write(t.path().join("outside/keep"), b"k").unwrap();
        std::fs::create_dir_all(t.path().join("victim/sub")).unwrap();
        symlink(t.path().join("outside"), t.path().join("victim/sub/link")).unwrap();
        d.remove_tree(OsStr::new("victim")).unwrap();
        assert!(!t.path().join("victim").exists());
        assert!(t.path().join("outside/keep").exists());
    }

    #[test]
    fn removes_a_tree_deeper_than_the_descriptor_budget() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open_path(t.path()).unwrap();
        let depth = MAX_OPEN_DIRS * 3 + 5;
        let mut cur = d.mkdir(OsStr::new("deep"), 0o755).unwrap();
        for i in 0..depth {
            cur.create_file(OsStr::new("f"), b"x", 0o644).unwrap();
            if i % 7 == 0 {
                cur.mkdir(OsStr::new("side"), 0o755).unwrap();
            }
            cur = cur.mkdir(OsStr::new("d"), 0o755).unwrap();
        }
        drop(cur);
        d.remove_tree(OsStr::new("deep")).unwrap();
        assert!(!t.path().join("deep").exists());
    }
}
