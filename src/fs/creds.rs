//! The process's credentials: dropping privileges for good, switching the
//! effective ids for a while, the umask.

use std::io;

use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};

use super::errno_io;

/// Drop to (uid, gid) for good: supplementary groups cleared, then gid, then uid.
pub fn drop_privileges(uid: u32, gid: u32) -> io::Result<()> {
    let g = Gid::from_raw(gid);
    let u = Uid::from_raw(uid);
    nix::unistd::setgroups(&[g]).map_err(errno_io)?;
    nix::unistd::setresgid(g, g, g).map_err(errno_io)?;
    nix::unistd::setresuid(u, u, u).map_err(errno_io)?;
    Ok(())
}

/// Run `f` with effective ids (uid, gid), then return to root. Only the
/// effective ids change (the saved ones stay 0), so permission checks and
/// the owner of what `f` creates are the user's.
pub fn with_effective_ids<R>(
    uid: u32,
    gid: u32,
    f: impl FnOnce() -> io::Result<R>,
) -> io::Result<R> {
    let (old_uid, old_gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    let old_groups = nix::unistd::getgroups().map_err(errno_io)?;
    // Supplementary groups too: root's would grant more than the user has.
    nix::unistd::setgroups(&[Gid::from_raw(gid)]).map_err(errno_io)?;
    let switched = nix::unistd::setegid(Gid::from_raw(gid))
        .and_then(|()| nix::unistd::seteuid(Uid::from_raw(uid)));
    let r = match switched {
        Ok(()) => f(),
        Err(e) => Err(errno_io(e)),
    };
    let back = nix::unistd::seteuid(old_uid)
        .and_then(|()| nix::unistd::setegid(old_gid))
        .and_then(|()| nix::unistd::setgroups(&old_groups));
    match back {
        Ok(()) => r,
        Err(e) => Err(errno_io(e)),
    }
}

/// Clear the umask: every mode this program sets is explicit, and entries
/// are then born with their final permission bits (only setgid and sticky
/// need the fchmod that follows), so a kill at any point leaves no entry
/// narrower than it should be.
pub fn clear_umask() {
    nix::sys::stat::umask(Mode::empty());
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The effective gid of this process.
pub fn egid() -> u32 {
    nix::unistd::getegid().as_raw()
}
