//! Primitives for building a new tree (a slot's staging dir) with few
//! system calls: directories made without opening them, and the modes they
//! are born with, so that a caller fixes only what the kernel did not set.
//!
//! `mkdir(2)` sets the permission bits and the sticky bit but never the
//! setgid bit; a new directory inherits setgid from its parent instead. A
//! builder that wants setgid leaves (s6's `event/` dirs, 03730) can so set
//! setgid on the parents it holds open, make the leaves without opening
//! them, and clear setgid on those parents afterwards (one `fchmod` on a
//! held fd each), instead of opening every leaf to `fchmod` it.

use std::ffi::OsStr;

use nix::sys::stat::Mode;

use super::dir::{Dir, name_ok};
use super::error::{Error, Result};

/// The setgid bit.
pub const SETGID: u32 = 0o2000;

/// The mode a directory made by [`Dir::make_dir`] with `mode` is born
/// with, or `None` when the umask is not cleared (then only a `fchmod`
/// makes it exact): the permission and sticky bits asked for, setgid if
/// and only if the parent has it, never setuid.
pub fn born_dir_mode(mode: u32, parent_setgid: bool) -> Option<u32> {
    super::creds::umask_cleared()
        .then_some((mode & 0o1777) | if parent_setgid { SETGID } else { 0 })
}

impl Dir {
    /// `mkdirat` with the permission and sticky bits of `mode` (see
    /// [`born_dir_mode`] for what the new directory gets); not opened.
    pub fn make_dir(&self, name: &OsStr, mode: u32) -> Result<()> {
        name_ok(name)?;
        nix::sys::stat::mkdirat(self.as_fd(), name, Mode::from_bits_truncate(mode & 0o1777))
            .map_err(Error::os("mkdirat"))
    }

    /// [`Dir::make_dir`], then the new directory opened (never through a
    /// symlink: one planted at the name in between is refused).
    pub fn make_dir_open(&self, name: &OsStr, mode: u32) -> Result<Dir> {
        self.make_dir(name, mode)?;
        self.open_dir(name)
    }

    /// `fchmod` of this directory itself (the fd it holds, whatever its
    /// name points to now).
    pub fn chmod_self(&self, mode: u32) -> Result<()> {
        nix::sys::stat::fchmod(self.as_fd(), Mode::from_bits_truncate(mode))
            .map_err(Error::os("fchmod"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn setgid_is_inherited_and_sticky_is_kept() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open_path(t.path()).unwrap();
        let old = nix::sys::stat::umask(Mode::empty());
        let top = d.make_dir_open(OsStr::new("top"), 0o755).unwrap();
        top.chmod_self(0o755 | SETGID).unwrap();
        top.make_dir(OsStr::new("event"), 0o3730).unwrap();
        let inner = top.make_dir_open(OsStr::new("inner"), 0o755).unwrap();
        inner.make_dir(OsStr::new("event"), 0o3730).unwrap();
        inner.chmod_self(0o755).unwrap();
        top.chmod_self(0o755).unwrap();
        d.make_dir(OsStr::new("plain"), 0o1730).unwrap();
        nix::sys::stat::umask(old);
        let mode = |p: &str| {
            std::fs::symlink_metadata(t.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("top"), 0o755);
        assert_eq!(mode("top/event"), 0o3730);
        assert_eq!(mode("top/inner"), 0o755);
        assert_eq!(mode("top/inner/event"), 0o3730);
        assert_eq!(mode("plain"), 0o1730);
    }
}
