//! An exclusive `flock` on a file opened beneath a held directory fd: the
//! primitive under the apply lock ([`crate::apply::lock`] decides where it lives
//! and who may hold it).

use std::ffi::OsStr;
use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;

use super::error::{Error, Result};
use super::{Dir, Meta};

/// A lock file, opened (created if missing) but not yet locked.
#[derive(Debug)]
pub struct LockFile {
    fd: OwnedFd,
    meta: Meta,
}

/// A held exclusive lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct Held {
    _lock: Flock<OwnedFd>,
}

impl Dir {
    /// Open `name` for locking, creating it with `mode` if it is missing;
    /// never through a symlink, never blocking on a FIFO.
    pub fn open_lock_file(&self, name: &OsStr, mode: u32) -> Result<LockFile> {
        super::dir::name_ok(name)?;
        let fd = nix::fcntl::openat(
            self.as_fd(),
            name,
            OFlag::O_RDWR
                | OFlag::O_CREAT
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(Error::os("openat"))?;
        let meta = super::dir::fd_meta(&fd)?;
        Ok(LockFile { fd, meta })
    }
}

impl LockFile {
    /// The file as opened (`fstat`).
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Try to take the lock without waiting: `Err(self)` back when another
    /// process holds it.
    pub fn try_lock(self) -> Result<Result<Held, LockFile>> {
        let meta = self.meta;
        match Flock::lock(self.fd, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Ok(Held { _lock: lock })),
            Err((fd, Errno::EWOULDBLOCK)) => Ok(Err(LockFile { fd, meta })),
            Err((_, e)) => Err(Error::os("flock")(e)),
        }
    }
}

impl Dir {
    /// Whether another process holds an `fcntl` record lock on `name` (as
    /// s6-supervise holds `supervise/lock`, and as `s6-svok` tests it):
    /// `F_GETLK` on the file opened read-only, never through a symlink,
    /// never blocking on a FIFO. A missing file is not locked.
    pub fn fcntl_locked(&self, name: &OsStr) -> Result<bool> {
        super::dir::name_ok(name)?;
        let fd = match nix::fcntl::openat(
            self.as_fd(),
            name,
            OFlag::O_RDONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(Error::os("openat")(e)),
        };
        // The whole file, for writing: any lock another process holds
        // on it conflicts and is reported back.
        let mut query = nix::libc::flock {
            l_type: nix::libc::F_WRLCK as _,
            l_whence: nix::libc::SEEK_SET as _,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETLK(&mut query))
            .map_err(Error::os("F_GETLK"))?;
        Ok(i32::from(query.l_type) != nix::libc::F_UNLCK)
    }
}
