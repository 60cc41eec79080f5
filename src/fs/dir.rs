//! [`Dir`]: a held directory fd and every operation on one of its entries
//! by a single name (`openat`, `fstatat`, `fchownat`, `mkdirat`,
//! `mkfifoat`, `unlinkat`, `renameat2`), never following a symlink.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, RenameFlags};
use nix::sys::stat::Mode;

use super::error::{Error, Refusal, Result};
use super::meta::{Kind, Meta};

pub(super) fn name_ok(name: &OsStr) -> Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(Refusal::BadName {
            name: name.to_string_lossy().into_owned(),
        }
        .into());
    }
    Ok(())
}

/// A held directory file descriptor.
#[derive(Debug)]
pub struct Dir {
    pub(super) fd: OwnedFd,
    /// `false` for an `O_PATH` fd (a directory we may search but not
    /// read): listing it is refused as the open would be, with EACCES.
    pub(super) readable: bool,
}

/// One entry of a directory listing: its name (bytes, as the file system
/// has it) and, when the file system says so in `d_type`, its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: OsString,
    pub kind: Option<Kind>,
}

pub(super) const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

impl Dir {
    fn from_fd(fd: OwnedFd) -> Dir {
        Dir { fd, readable: true }
    }

    fn search_only(fd: OwnedFd) -> Dir {
        Dir {
            readable: false,
            ..Dir::from_fd(fd)
        }
    }

    /// Open an operator-given directory (the `--root`): symlinks in this
    /// path are the operator's own choice and are followed.
    pub fn open_path(path: &Path) -> Result<Dir> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(Error::os("open"))?;
        Ok(Dir::from_fd(fd))
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn try_clone(&self) -> Result<Dir> {
        Ok(Dir {
            readable: self.readable,
            ..Dir::from_fd(self.fd.try_clone().map_err(Error::std("dup"))?)
        })
    }

    /// `fstat` of the directory itself.
    pub fn meta(&self) -> Result<Meta> {
        fd_meta(&self.fd)
    }

    /// Open a child directory, refusing a symlink (ELOOP) or a non-directory (ENOTDIR).
    pub fn open_dir(&self, name: &OsStr) -> Result<Dir> {
        name_ok(name)?;
        match nix::fcntl::openat(self.fd.as_fd(), name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Dir::from_fd(fd)),
            // A directory we may search but not read: an O_PATH fd still
            // serves as the anchor of *at() calls.
            Err(Errno::EACCES) => nix::fcntl::openat(
                self.fd.as_fd(),
                name,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map(Dir::search_only)
            .map_err(Error::os("openat")),
            // O_DIRECTORY|O_NOFOLLOW says ENOTDIR for a symlink: say what it is.
            Err(Errno::ENOTDIR) if self.stat(name).is_ok_and(|m| m.kind == Kind::Symlink) => {
                Err(Refusal::Symlink {
                    name: Path::new(name).display().to_string(),
                }
                .into())
            }
            Err(e) => Err(Error::os("openat")(e)),
        }
    }

    /// Open the directory that holds this one (`..`), with its identity.
    /// The caller checks the identity against the one it recorded on the
    /// way down: a directory moved meanwhile has another parent.
    pub fn open_parent(&self) -> Result<(Dir, Meta)> {
        let dir = match nix::fcntl::openat(self.fd.as_fd(), "..", DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Dir::from_fd(fd),
            Err(Errno::EACCES) => nix::fcntl::openat(
                self.fd.as_fd(),
                "..",
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map(Dir::search_only)
            .map_err(Error::os("openat"))?,
            Err(e) => return Err(Error::os("openat")(e)),
        };
        let meta = dir.meta()?;
        Ok((dir, meta))
    }

    /// Walk `rel` one component at a time, never following a symlink.
    pub fn open_beneath(&self, rel: &Path) -> Result<Dir> {
        let mut cur = self.try_clone()?;
        for c in rel.components() {
            match c {
                Component::Normal(n) => cur = cur.open_dir(n)?,
                Component::CurDir => {}
                _ => {
                    return Err(Refusal::NotBeneath {
                        path: rel.display().to_string(),
                    }
                    .into());
                }
            }
        }
        Ok(cur)
    }

    /// `lstat` of a child.
    pub fn stat(&self, name: &OsStr) -> Result<Meta> {
        name_ok(name)?;
        nix::sys::stat::fstatat(self.fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map(|s| Meta::from_stat(&s))
            .map_err(Error::os("fstatat"))
    }

    /// `lstat` of a child; `None` when it does not exist.
    pub fn stat_opt(&self, name: &OsStr) -> Result<Option<Meta>> {
        match self.stat(name) {
            Ok(m) => Ok(Some(m)),
            Err(e) if super::Os::NotFound.is(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Open a child for reading, never through a symlink, never blocking
    /// (a FIFO opens at once) and never becoming a controlling terminal.
    pub(super) fn open_read(&self, name: &OsStr) -> Result<OwnedFd> {
        name_ok(name)?;
        nix::fcntl::openat(
            self.fd.as_fd(),
            name,
            OFlag::O_RDONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(Error::os("openat"))
    }

    /// Create a new regular file (`O_EXCL`, never through a symlink) with
    /// exactly `mode`, whatever the umask.
    pub fn create_file(&self, name: &OsStr, content: &[u8], mode: u32) -> Result<()> {
        name_ok(name)?;
        let fd = nix::fcntl::openat(
            self.fd.as_fd(),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            // Born with its final permission bits (see clear_umask): a kill
            // before the fchmod below leaves no narrower mode behind.
            Mode::from_bits_truncate(mode & 0o777),
        )
        .map_err(Error::os("openat"))?;
        if !super::creds::born_exact(mode) {
            nix::sys::stat::fchmod(fd.as_fd(), Mode::from_bits_truncate(mode))
                .map_err(Error::os("fchmod"))?;
        }
        let mut f = std::fs::File::from(fd);
        f.write_all(content).map_err(Error::std("write"))?;
        Ok(())
    }

    /// Append to a regular file, creating it with `mode` if missing; never
    /// through a symlink. Returns the file's size before the append.
    pub fn append_file(&self, name: &OsStr, content: &[u8], mode: u32) -> Result<u64> {
        name_ok(name)?;
        let flags = OFlag::O_WRONLY
            | OFlag::O_APPEND
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC;
        let open = |extra: OFlag| {
            nix::fcntl::openat(
                self.fd.as_fd(),
                name,
                flags | extra,
                Mode::from_bits_truncate(mode & 0o777),
            )
        };
        // Create exclusively first so a new file gets exactly `mode`.
        let fd = match open(OFlag::O_CREAT | OFlag::O_EXCL) {
            Ok(fd) => {
                nix::sys::stat::fchmod(fd.as_fd(), Mode::from_bits_truncate(mode))
                    .map_err(Error::os("fchmod"))?;
                fd
            }
            Err(Errno::EEXIST) => open(OFlag::empty()).map_err(Error::os("fchmod"))?,
            Err(e) => return Err(Error::os("openat")(e)),
        };
        let meta = fd_meta(&fd)?;
        expect_kind(&meta, Kind::File)?;
        // A hard link planted at the name could point at any file of the
        // same file system: refuse it.
        if meta.nlink > 1 {
            return Err(Refusal::HardLinked { links: meta.nlink }.into());
        }
        std::fs::File::from(fd)
            .write_all(content)
            .map_err(Error::std("write"))?;
        Ok(meta.size)
    }

    /// Create a directory with exactly `mode` (setgid and sticky included),
    /// whatever the umask, and return it opened.
    pub fn mkdir(&self, name: &OsStr, mode: u32) -> Result<Dir> {
        name_ok(name)?;
        nix::sys::stat::mkdirat(
            self.fd.as_fd(),
            name,
            Mode::from_bits_truncate(mode & 0o777),
        )
        .map_err(Error::os("mkdirat"))?;
        let d = self.open_dir(name)?;
        if !super::creds::born_exact(mode) {
            nix::sys::stat::fchmod(d.fd.as_fd(), Mode::from_bits_truncate(mode))
                .map_err(Error::os("fchmod"))?;
        }
        Ok(d)
    }

    /// Create a FIFO with exactly `mode`.
    pub fn mkfifo(&self, name: &OsStr, mode: u32) -> Result<()> {
        name_ok(name)?;
        nix::unistd::mkfifoat(
            self.fd.as_fd(),
            name,
            Mode::from_bits_truncate(mode & 0o777),
        )
        .map_err(Error::os("mkfifoat"))?;
        if super::creds::born_exact(mode) {
            return Ok(());
        }
        let meta = self.stat(name)?;
        self.set_mode(name, &meta, mode)
    }

    /// Remove a non-directory child (a symlink itself, never its target).
    pub fn unlink(&self, name: &OsStr) -> Result<()> {
        name_ok(name)?;
        nix::unistd::unlinkat(
            self.fd.as_fd(),
            name,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        )
        .map_err(Error::os("unlinkat"))
    }

    /// `renameat` within this directory.
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> Result<()> {
        name_ok(from)?;
        name_ok(to)?;
        nix::fcntl::renameat(self.fd.as_fd(), from, self.fd.as_fd(), to)
            .map_err(Error::os("renameat"))
    }

    /// `renameat2(RENAME_NOREPLACE)` within this directory: fails with
    /// EEXIST rather than replace anything.
    pub fn rename_noreplace(&self, from: &OsStr, to: &OsStr) -> Result<()> {
        name_ok(from)?;
        name_ok(to)?;
        nix::fcntl::renameat2(
            self.fd.as_fd(),
            from,
            self.fd.as_fd(),
            to,
            RenameFlags::RENAME_NOREPLACE,
        )
        .map_err(Error::os("renameat2"))
    }

    /// Atomically swap two entries of this directory (`RENAME_EXCHANGE`).
    pub fn exchange(&self, a: &OsStr, b: &OsStr) -> Result<()> {
        name_ok(a)?;
        name_ok(b)?;
        nix::fcntl::renameat2(
            self.fd.as_fd(),
            a,
            self.fd.as_fd(),
            b,
            RenameFlags::RENAME_EXCHANGE,
        )
        .map_err(Error::os("renameat2"))
    }

    /// Write bytes to a FIFO child without blocking (`O_NONBLOCK`).
    /// `Ok(false)` when no reader listens (ENXIO).
    pub fn write_fifo(&self, name: &OsStr, bytes: &[u8]) -> Result<bool> {
        name_ok(name)?;
        match nix::fcntl::openat(
            self.fd.as_fd(),
            name,
            OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => {
                expect_kind(&fd_meta(&fd)?, Kind::Fifo)?;
                std::fs::File::from(fd)
                    .write_all(bytes)
                    .map_err(Error::std("write"))?;
                Ok(true)
            }
            Err(Errno::ENXIO) => Ok(false),
            Err(e) => Err(Error::os("openat")(e)),
        }
    }
}

pub(super) fn fd_meta(fd: impl AsFd) -> Result<Meta> {
    nix::sys::stat::fstat(fd.as_fd())
        .map(|s| Meta::from_stat(&s))
        .map_err(Error::os("fstat"))
}

pub(super) fn expect_kind(meta: &Meta, kind: Kind) -> Result<()> {
    if meta.kind == kind {
        Ok(())
    } else {
        Err(Refusal::WrongKind {
            found: meta.kind,
            want: kind,
        }
        .into())
    }
}

pub(super) fn check_same(fd: impl AsFd, expect: &Meta) -> Result<()> {
    let now = fd_meta(fd)?;
    if now.same_file(expect) {
        Ok(())
    } else {
        Err(Refusal::Changed {
            was: Box::new(*expect),
            now: Box::new(now),
        }
        .into())
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn tmp() -> (tempfile::TempDir, Dir) {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open_path(t.path()).unwrap();
        (t, d)
    }

    #[test]
    fn open_beneath_refuses_symlinks() {
        let (t, d) = tmp();
        std::fs::create_dir_all(t.path().join("a/b")).unwrap();
        symlink(t.path().join("a"), t.path().join("l")).unwrap();
        assert!(d.open_beneath(Path::new("a/b")).is_ok());
        let e = d.open_beneath(Path::new("l/b")).unwrap_err();
        assert_eq!(e.to_string(), "l is a symlink; refusing to follow it");
    }

    #[test]
    fn exact_modes_whatever_the_umask() {
        let (t, d) = tmp();
        let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o077));
        let ev = d.mkdir(OsStr::new("event"), 0o3730);
        d.mkfifo(OsStr::new("control"), 0o660).unwrap();
        d.create_file(OsStr::new("run"), b"#!/bin/sh\n", 0o755)
            .unwrap();
        nix::sys::stat::umask(old);
        ev.unwrap();
        let mode = |n: &str| {
            std::fs::symlink_metadata(t.path().join(n))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("event"), 0o3730);
        assert_eq!(mode("control"), 0o660);
        assert_eq!(mode("run"), 0o755);
    }

    #[test]
    fn set_mode_refuses_a_swapped_file() {
        let (t, d) = tmp();
        std::fs::write(t.path().join("f"), b"x").unwrap();
        let before = d.stat(OsStr::new("f")).unwrap();
        std::fs::remove_file(t.path().join("f")).unwrap();
        std::fs::write(t.path().join("other"), b"y").unwrap();
        symlink(t.path().join("other"), t.path().join("f")).unwrap();
        let e = d.set_mode(OsStr::new("f"), &before, 0o777).unwrap_err();
        assert!(
            e.to_string().contains("changed since it was observed"),
            "{e}"
        );
        let m = std::fs::metadata(t.path().join("other")).unwrap();
        assert_ne!(m.permissions().mode() & 0o777, 0o777);
    }
}
