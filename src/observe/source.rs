//! Where observations come from: the [`Source`] trait, and its disk
//! implementation [`Disk`] over held directory fds.
//!
//! The scanner asks a source only these questions, always relative to a
//! directory it holds (never by a path string from the root): open a
//! configured base, list a directory, `lstat` an entry, open a child
//! directory or the parent back, read a small regular file, read a
//! symlink's target. A second source (a tree description, docs/tree-format.md)
//! answers the same questions from memory, and the planner cannot tell
//! the two apart.
//!
//! # Implementing a source
//!
//! - Errors are `fs::Error`s carrying the OS error the disk would give
//!   (`fs::Os::NotFound` for a missing entry,
//!   `ELOOP` for a symlink opened as a directory, `ENOTDIR` for a
//!   non-directory, `EACCES`...): the scanner turns them into the same
//!   messages whatever the source.
//! - Names are single components as bytes (`OsStr`), never `.`, `..` or
//!   containing `/`; they may be any bytes (the scanner skips names that
//!   are not UTF-8 or hold a control character, after listing them).
//! - Nothing is ever followed: `stat` is `lstat`, `open_dir` refuses a
//!   symlink, `read_file` refuses anything but a regular file.
//! - A [`Source::Dir`] is a handle on one directory; the scanner holds a
//!   bounded number of them at once ([`MAX_OPEN_DIRS`]) and gets back to
//!   an ancestor with [`Source::open_parent`], checking its identity.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::fs::{self, BaseError, Dir, DirEntry, Meta};

/// The most directory handles the scanner holds at once while walking a
/// tree, whatever its depth (the bases are held besides).
pub const MAX_OPEN_DIRS: usize = 32;

/// A configured base directory, opened.
#[derive(Debug)]
pub struct OpenBase<D> {
    pub dir: D,
    /// Identity and attributes of the base directory itself.
    pub meta: Meta,
    /// Where it really is, as a container path (differs from the configured
    /// path when a trusted parent is a symlink).
    pub resolved: PathBuf,
}

/// Answers the scanner's questions about a tree. See the module docs.
pub trait Source {
    /// A handle on one directory.
    type Dir;

    /// Open the configured base at `path` (an absolute container path):
    /// symlinks among its parents are followed only where the user cannot
    /// change them (`fs::resolve_base`'s rules); the last component must be
    /// a real directory. `BaseError::Missing` when it does not exist.
    fn open_base(&self, path: &Path) -> Result<OpenBase<Self::Dir>, BaseError>;

    /// The entries of `dir`, sorted bytewise by name, without `.` and `..`;
    /// `kind` when known without a `stat` (`None` is always allowed).
    fn list(&self, dir: &Self::Dir) -> fs::Result<Vec<DirEntry>>;

    /// `lstat` of the entry `name` of `dir`.
    fn stat(&self, dir: &Self::Dir, name: &OsStr) -> fs::Result<Meta>;

    /// Open the child directory `name` of `dir`, never through a symlink
    /// (`ELOOP` or `ENOTDIR`), with its identity (`fstat` of what was opened).
    fn open_dir(&self, dir: &Self::Dir, name: &OsStr) -> fs::Result<(Self::Dir, Meta)>;

    /// Open the directory holding `dir` (`..`), with its identity; the
    /// caller compares it with the identity it recorded on the way down.
    fn open_parent(&self, dir: &Self::Dir) -> fs::Result<(Self::Dir, Meta)>;

    /// Open the entry `name` of `dir` without following it and say what it
    /// is; when it is a regular file of at most `limit` bytes, its contents
    /// too. Only called on entries listed or stat'ed as regular files.
    fn read_file(
        &self,
        dir: &Self::Dir,
        name: &OsStr,
        limit: u64,
    ) -> fs::Result<(Meta, Option<Vec<u8>>)>;

    /// The target of the symlink `name` of `dir`.
    fn read_link(&self, dir: &Self::Dir, name: &OsStr) -> fs::Result<OsString>;

    /// [`Source::read_file`] of `sub/name` below `dir` (`sub`, when given,
    /// a child directory, never followed), except that a regular file
    /// with more than one link is not read: its contents are `None`. For
    /// the user's state files, whose other names may be files the user
    /// cannot write; the disk checks the link count on the opened file
    /// before reading a byte.
    fn read_single_link_file(
        &self,
        dir: &Self::Dir,
        sub: Option<&OsStr>,
        name: &OsStr,
        limit: u64,
    ) -> fs::Result<(Meta, Option<Vec<u8>>)> {
        let (m, bytes) = match sub {
            Some(sub) => self.read_file(&self.open_dir(dir, sub)?.0, name, limit)?,
            None => self.read_file(dir, name, limit)?,
        };
        Ok(if m.nlink > 1 { (m, None) } else { (m, bytes) })
    }

    /// The symlink `name` of `dir`, followed
    /// to what it names, resolved inside the root (an absolute target or a
    /// `..` never leaves it): as [`Source::read_single_link_file`] of the
    /// target. Only inside [`Source::as_user`], for the user's state files.
    fn read_link_in_root(
        &self,
        dir: &Self::Dir,
        name: &OsStr,
        limit: u64,
    ) -> fs::Result<(Meta, Option<Vec<u8>>)> {
        let (m, bytes) = self.read_file_following(dir, name, limit)?;
        Ok(if m.nlink > 1 { (m, None) } else { (m, bytes) })
    }

    /// Run `f` with the unprivileged user's credentials (uid, gid) when that
    /// matters to this source (the disk, when running as root): the volume
    /// is observed with exactly the access the user has.
    fn as_user<R>(&self, ids: (u32, u32), f: impl FnOnce() -> R) -> fs::Result<R> {
        let _ = ids;
        Ok(f())
    }

    /// `stat` of the entry `name` of `dir`, following a symlink at its name
    /// (the one exception to "nothing is followed"): only called inside
    /// [`Source::as_user`], for what the application itself follows in the
    /// user's volume (a profile's marker). A source that cannot follow
    /// links says so with an error when the entry is one.
    fn stat_following(&self, dir: &Self::Dir, name: &OsStr) -> fs::Result<Meta> {
        let m = self.stat(dir, name)?;
        if m.kind == crate::fs::Kind::Symlink {
            return Err(fs::Refusal::NotFollowed.into());
        }
        Ok(m)
    }

    /// [`Source::read_file`], following a symlink at `name`: same rule as
    /// [`Source::stat_following`] (the application's configuration files).
    fn read_file_following(
        &self,
        dir: &Self::Dir,
        name: &OsStr,
        limit: u64,
    ) -> fs::Result<(Meta, Option<Vec<u8>>)> {
        self.stat_following(dir, name)?;
        self.read_file(dir, name, limit)
    }
}

/// The disk beneath a held root directory.
pub struct Disk<'a> {
    pub root: &'a Dir,
    /// The unprivileged user's ids: a symlink in a directory they can write
    /// is not followed while opening a base.
    pub untrusted: fs::Ids,
}

impl Source for Disk<'_> {
    type Dir = Dir;

    fn open_base(&self, path: &Path) -> Result<OpenBase<Dir>, BaseError> {
        let b = fs::resolve_base(self.root, path, &self.untrusted)?;
        Ok(OpenBase {
            dir: b.dir,
            meta: b.meta,
            resolved: b.resolved,
        })
    }

    fn list(&self, dir: &Dir) -> fs::Result<Vec<DirEntry>> {
        dir.list()
    }

    fn stat(&self, dir: &Dir, name: &OsStr) -> fs::Result<Meta> {
        dir.stat(name)
    }

    fn open_dir(&self, dir: &Dir, name: &OsStr) -> fs::Result<(Dir, Meta)> {
        let d = dir.open_dir(name)?;
        let m = d.meta()?;
        Ok((d, m))
    }

    fn open_parent(&self, dir: &Dir) -> fs::Result<(Dir, Meta)> {
        dir.open_parent()
    }

    fn read_file(
        &self,
        dir: &Dir,
        name: &OsStr,
        limit: u64,
    ) -> fs::Result<(Meta, Option<Vec<u8>>)> {
        dir.read_file_meta(name, limit)
    }

    fn read_link(&self, dir: &Dir, name: &OsStr) -> fs::Result<OsString> {
        dir.read_link(name)
    }

    fn read_single_link_file(
        &self,
        dir: &Dir,
        sub: Option<&OsStr>,
        name: &OsStr,
        limit: u64,
    ) -> fs::Result<(Meta, Option<Vec<u8>>)> {
        dir.read_single_link_file(sub, name, limit)
    }

    fn read_link_in_root(
        &self,
        dir: &Dir,
        name: &OsStr,
        limit: u64,
    ) -> fs::Result<(Meta, Option<Vec<u8>>)> {
        dir.read_file_meta_following(self.root, name, limit, 1)
    }

    fn as_user<R>(&self, ids: (u32, u32), f: impl FnOnce() -> R) -> fs::Result<R> {
        if fs::euid() == 0 {
            fs::with_effective_ids(ids.0, ids.1, || Ok::<R, fs::Error>(f()))
        } else {
            Ok(f())
        }
    }

    fn stat_following(&self, dir: &Dir, name: &OsStr) -> fs::Result<Meta> {
        dir.stat_following(self.root, name)
    }

    fn read_file_following(
        &self,
        dir: &Dir,
        name: &OsStr,
        limit: u64,
    ) -> fs::Result<(Meta, Option<Vec<u8>>)> {
        dir.read_file_meta_following(self.root, name, limit, u64::MAX)
    }
}

/// For tests: the disk, with `hook` run on each directory right after it
/// is listed (to count listings, or to change the tree between a listing
/// and what follows it). Everything else is the disk's.
#[cfg(test)]
pub(crate) struct OnList<'a, F> {
    pub disk: Disk<'a>,
    pub hook: F,
}

#[cfg(test)]
impl<F: Fn(&Dir) -> fs::Result<()>> Source for OnList<'_, F> {
    type Dir = Dir;
    fn open_base(&self, path: &Path) -> Result<OpenBase<Dir>, BaseError> {
        self.disk.open_base(path)
    }
    fn list(&self, dir: &Dir) -> fs::Result<Vec<DirEntry>> {
        let v = self.disk.list(dir)?;
        (self.hook)(dir)?;
        Ok(v)
    }
    fn stat(&self, dir: &Dir, name: &OsStr) -> fs::Result<Meta> {
        self.disk.stat(dir, name)
    }
    fn open_dir(&self, dir: &Dir, name: &OsStr) -> fs::Result<(Dir, Meta)> {
        self.disk.open_dir(dir, name)
    }
    fn open_parent(&self, dir: &Dir) -> fs::Result<(Dir, Meta)> {
        self.disk.open_parent(dir)
    }
    fn read_file(
        &self,
        dir: &Dir,
        name: &OsStr,
        limit: u64,
    ) -> fs::Result<(Meta, Option<Vec<u8>>)> {
        self.disk.read_file(dir, name, limit)
    }
    fn read_link(&self, dir: &Dir, name: &OsStr) -> fs::Result<OsString> {
        self.disk.read_link(dir, name)
    }
    fn read_single_link_file(
        &self,
        dir: &Dir,
        sub: Option<&OsStr>,
        name: &OsStr,
        limit: u64,
    ) -> fs::Result<(Meta, Option<Vec<u8>>)> {
        self.disk.read_single_link_file(dir, sub, name, limit)
    }
}
