//! Creating the entries a tree description holds that apply never creates:
//! symlinks, hard links and socket nodes (for `reconcile materialize`).
//! Like everything in `fs`, relative to a held directory fd, one name at a time.

use std::ffi::OsStr;
use std::io;

use nix::fcntl::AtFlags;
use nix::sys::stat::{Mode, SFlag};

use super::Dir;

fn io_err(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn single(name: &OsStr) -> io::Result<()> {
    let b = name.as_encoded_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a single file name: {name:?}"),
        ));
    }
    Ok(())
}

impl Dir {
    /// Create a symlink `name` -> `target` (the target is stored, never resolved).
    pub fn symlink(&self, target: &OsStr, name: &OsStr) -> io::Result<()> {
        single(name)?;
        nix::unistd::symlinkat(target, self.as_fd(), name).map_err(io_err)
    }

    /// Create `name` as another name of `from_name` in `from` (never
    /// following a symlink at `from_name`).
    pub fn hard_link(&self, from: &Dir, from_name: &OsStr, name: &OsStr) -> io::Result<()> {
        single(name)?;
        single(from_name)?;
        nix::unistd::linkat(
            from.as_fd(),
            from_name,
            self.as_fd(),
            name,
            AtFlags::empty(),
        )
        .map_err(io_err)
    }

    /// Create a socket node `name` (as `bind(2)` would leave it, with no
    /// listener) with permission bits `mode & 0o777`.
    pub fn mksocket(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        single(name)?;
        nix::sys::stat::mknodat(
            self.as_fd(),
            name,
            SFlag::S_IFSOCK,
            Mode::from_bits_truncate(mode & 0o777),
            0,
        )
        .map_err(io_err)
    }
}
