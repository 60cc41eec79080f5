//! Creating the entries a tree description holds that apply never creates:
//! symlinks, hard links and socket nodes (for `reconcile materialize`).
//! Like everything in `fs`, relative to a held directory fd, one name at a time.

use std::ffi::OsStr;

use nix::fcntl::AtFlags;
use nix::sys::stat::{Mode, SFlag};

use super::Dir;
use super::dir::name_ok as single;
use super::error::{Error, Result};

/// Create the directory at the operator-given `path` (its parents are
/// theirs: followed) with `mode`; `Ok(false)` when something is already
/// there.
pub fn mkdir_path(path: &std::path::Path, mode: u32) -> Result<bool> {
    match nix::unistd::mkdir(path, Mode::from_bits_truncate(mode & 0o777)) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::EEXIST) => Ok(false),
        Err(e) => Err(Error::os("mkdir")(e)),
    }
}

impl Dir {
    /// Create a symlink `name` -> `target` (the target is stored, never resolved).
    pub fn symlink(&self, target: &OsStr, name: &OsStr) -> Result<()> {
        single(name)?;
        nix::unistd::symlinkat(target, self.as_fd(), name).map_err(Error::os("symlinkat"))
    }

    /// Create `name` as another name of `from_name` in `from` (never
    /// following a symlink at `from_name`).
    pub fn hard_link(&self, from: &Dir, from_name: &OsStr, name: &OsStr) -> Result<()> {
        single(name)?;
        single(from_name)?;
        nix::unistd::linkat(
            from.as_fd(),
            from_name,
            self.as_fd(),
            name,
            AtFlags::empty(),
        )
        .map_err(Error::os("linkat"))
    }

    /// Create a socket node `name` (as `bind(2)` would leave it, with no
    /// listener) with permission bits `mode & 0o777`.
    pub fn mksocket(&self, name: &OsStr, mode: u32) -> Result<()> {
        single(name)?;
        nix::sys::stat::mknodat(
            self.as_fd(),
            name,
            SFlag::S_IFSOCK,
            Mode::from_bits_truncate(mode & 0o777),
            0,
        )
        .map_err(Error::os("mknodat"))
    }
}
