//! Owner and mode of an entry, changed through a held directory fd on the
//! very inode that was observed: one `O_PATH` fd checked against the
//! observation, the mode narrowed first, then `fchownat(fd, "")`, then the
//! mode (see [`Dir::set_perms`]).

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};

use super::Dir;
use super::dir::{check_same, name_ok};
use super::error::{Error, Refusal, Result};
use super::meta::{Kind, Meta};

impl Dir {
    /// Change owner of a child without following it; the child must still be
    /// the file that was observed (`expect`: dev, ino, kind).
    pub fn set_owner(&self, name: &OsStr, expect: &Meta, uid: u32, gid: u32) -> Result<()> {
        self.set_perms(name, expect, Some((uid, gid)), None)
            .map_err(|(_, e)| e)
    }

    /// Change the mode of a child without following it (a symlink is
    /// refused); the child must still be the file that was observed.
    pub fn set_mode(&self, name: &OsStr, expect: &Meta, mode: u32) -> Result<()> {
        if expect.kind == Kind::Symlink {
            return Err(Refusal::SymlinkMode.into());
        }
        let fd = self.open_entry(name, expect)?;
        match chmod_via_proc(&fd, mode) {
            Ok(()) => Ok(()),
            Err(e) if super::Os::NotFound.is(&e) || super::Os::NotADir.is(&e) => {
                // No /proc (an empty chroot): reopen for real, without
                // following, check identity again, and fchmod that fd.
                let real = self.open_read(name)?;
                check_same(&real, expect)?;
                nix::sys::stat::fchmod(real.as_fd(), Mode::from_bits_truncate(mode))
                    .map_err(Error::os("fchmod"))
            }
            Err(e) => Err(e),
        }
    }

    /// Set the owner and/or the mode of a child in one step, as tmpfiles'
    /// `fd_set_perms` does: one `O_PATH` fd, checked to be the entry that
    /// was observed (`expect`), then, when both change, the mode narrowed
    /// to `old & new` first (nobody briefly gets more access than either
    /// state grants), `fchownat(fd, "", AT_EMPTY_PATH)`, and the new mode
    /// (after the chown, which may clear setgid). A symlink's mode is never
    /// changed. The error names the call that failed (`chown` or `chmod`).
    pub fn set_perms(
        &self,
        name: &OsStr,
        expect: &Meta,
        owner: Option<(u32, u32)>,
        mode: Option<u32>,
    ) -> Result<(), (&'static str, Error)> {
        let first = if owner.is_some() { "chown" } else { "chmod" };
        if mode.is_some() && expect.kind == Kind::Symlink {
            return Err(("chmod", Refusal::SymlinkMode.into()));
        }
        let fd = self.open_entry(name, expect).map_err(|e| (first, e))?;
        let chmod = |m: u32| match chmod_via_proc(&fd, m) {
            Err(e) if super::Os::NotFound.is(&e) || super::Os::NotADir.is(&e) => {
                // No /proc (an empty chroot): reopen for real, without
                // following, check identity again, and fchmod that fd.
                let real = self.open_read(name)?;
                check_same(&real, expect)?;
                nix::sys::stat::fchmod(real.as_fd(), Mode::from_bits_truncate(m))
                    .map_err(Error::os("fchmod"))
            }
            r => r,
        };
        perms_step(expect.mode, owner, mode, &chmod, &|(uid, gid)| {
            fchown_empty(&fd, uid, gid)
        })
    }

    /// [`Dir::set_perms`] on this directory itself (a configured base).
    pub fn set_perms_self(
        &self,
        expect: &Meta,
        owner: Option<(u32, u32)>,
        mode: Option<u32>,
    ) -> Result<(), (&'static str, Error)> {
        let first = if owner.is_some() { "chown" } else { "chmod" };
        check_same(self.as_fd(), expect).map_err(|e| (first, e))?;
        let chmod = |m: u32| match nix::sys::stat::fchmod(self.as_fd(), Mode::from_bits_truncate(m))
        {
            Err(Errno::EBADF) => chmod_via_proc(self.as_fd(), m),
            r => r.map_err(Error::os("fchmod")),
        };
        perms_step(expect.mode, owner, mode, &chmod, &|(uid, gid)| {
            fchown_empty(self.as_fd(), uid, gid)
        })
    }

    /// An `O_PATH` fd on a child, checked against what was observed.
    fn open_entry(&self, name: &OsStr, expect: &Meta) -> Result<OwnedFd> {
        name_ok(name)?;
        let fd = nix::fcntl::openat(
            self.as_fd(),
            name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(Error::os("openat"))?;
        check_same(&fd, expect)?;
        Ok(fd)
    }
}

/// Narrow, chown, chmod: see [`Dir::set_perms`].
fn perms_step(
    old_mode: u32,
    owner: Option<(u32, u32)>,
    mode: Option<u32>,
    chmod: &dyn Fn(u32) -> Result<()>,
    chown: &dyn Fn((u32, u32)) -> Result<()>,
) -> Result<(), (&'static str, Error)> {
    if let Some(o) = owner {
        if let Some(new) = mode.filter(|new| old_mode & new != old_mode) {
            chmod(old_mode & new).map_err(|e| ("chmod", e))?;
        }
        chown(o).map_err(|e| ("chown", e))?;
    }
    if let Some(new) = mode {
        chmod(new).map_err(|e| ("chmod", e))?;
    }
    Ok(())
}

/// `fchownat(fd, "", AT_EMPTY_PATH)`: the inode the fd holds, whatever
/// its name points to now.
fn fchown_empty(fd: impl AsFd, uid: u32, gid: u32) -> Result<()> {
    nix::unistd::fchownat(
        fd.as_fd(),
        "",
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_EMPTY_PATH,
    )
    .map_err(Error::os("fchownat"))
}

/// fchmod does not work on an `O_PATH` fd; the /proc magic link reaches the
/// very inode the fd holds, not whatever the name points to now.
fn chmod_via_proc(fd: impl AsFd, mode: u32) -> Result<()> {
    let proc_path = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        proc_path.as_str(),
        Mode::from_bits_truncate(mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(Error::os("fchmodat"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perms_narrow_then_chown_then_chmod() {
        use std::cell::RefCell;
        let calls = RefCell::new(Vec::new());
        let run = |old: u32, owner: Option<(u32, u32)>, mode: Option<u32>| {
            calls.borrow_mut().clear();
            perms_step(
                old,
                owner,
                mode,
                &|m| {
                    calls.borrow_mut().push(format!("chmod {m:04o}"));
                    Ok(())
                },
                &|(u, g)| {
                    calls.borrow_mut().push(format!("chown {u}:{g}"));
                    Ok(())
                },
            )
            .unwrap();
            calls.borrow().clone()
        };
        // 0700 -> 0710 with a new owner: nothing to narrow (old & new = old).
        assert_eq!(
            run(0o700, Some((10000, 10000)), Some(0o710)),
            ["chown 10000:10000", "chmod 0710"]
        );
        // 0666 -> 0660: narrowed before the owner changes.
        assert_eq!(
            run(0o666, Some((10000, 10000)), Some(0o660)),
            ["chmod 0660", "chown 10000:10000", "chmod 0660"]
        );
        // 0755 -> 03730: only what both grant (0710) while the owner changes.
        assert_eq!(
            run(0o755, Some((0, 10000)), Some(0o3730)),
            ["chmod 0710", "chown 0:10000", "chmod 3730"]
        );
        assert_eq!(run(0o644, None, Some(0o600)), ["chmod 0600"]);
        assert_eq!(run(0o644, Some((1, 2)), None), ["chown 1:2"]);
    }

    #[test]
    fn perms_failures_name_the_call() {
        let e = perms_step(0o644, Some((1, 2)), Some(0o600), &|_| Ok(()), &|_| {
            Err(Error::os("fchownat")(Errno::EPERM))
        })
        .unwrap_err();
        assert_eq!(e.0, "chown");
    }
}
