//! The process's credentials: acting as the user (effective ids only) for
//! the rest of the run or for a while, the umask.

use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};

use super::error::{Error, Result};

/// Act as (uid, gid) for the rest of the run: the effective ids (and so
/// every permission check and the owner of what is created) become the
/// user's, supplementary groups only the user's group. The real and saved
/// uid stay 0, so the user can neither signal (`kill(2)` compares the
/// sender's ids with the target's real and saved uid) nor trace this
/// process; it is made not dumpable, so its `/proc` entries stay root's.
/// The running process's ids: effective uid and gid, and its
/// supplementary groups (none if they cannot be read).
pub fn current_ids() -> super::Ids {
    let groups = nix::unistd::getgroups().unwrap_or_default();
    super::Ids {
        uid: euid(),
        gid: egid(),
        groups: groups.into_iter().map(|g| g.as_raw()).collect(),
    }
}

pub fn act_as(uid: u32, gid: u32) -> Result<()> {
    let groups = nix::unistd::getgroups().map_err(Error::os("getgroups"))?;
    let _ = ROOT_GROUPS.set(groups);
    let g = Gid::from_raw(gid);
    let u = Uid::from_raw(uid);
    nix::sys::prctl::set_dumpable(false).map_err(Error::os("set_dumpable"))?;
    nix::unistd::setgroups(&[g]).map_err(Error::os("setgroups"))?;
    nix::unistd::setegid(g).map_err(Error::os("setegid"))?;
    nix::unistd::seteuid(u).map_err(Error::os("seteuid"))?;
    // The kernel resets the dumpable flag on a change of ids (to
    // fs.suid_dumpable, which may be 1 or 2): set it again.
    nix::sys::prctl::set_dumpable(false).map_err(Error::os("set_dumpable"))?;
    Ok(())
}

/// Root's supplementary groups before [`act_as`], for [`stop_acting`].
static ROOT_GROUPS: std::sync::OnceLock<Vec<Gid>> = std::sync::OnceLock::new();

/// Return to the real ids after [`act_as`] (a no-op when not acting): for
/// what a run does after its profiles phase with root's rights and none of
/// the user's input (recording its report in root's `/run`).
pub fn stop_acting() -> Result<()> {
    if acting_as().is_none() {
        return Ok(());
    }
    nix::unistd::seteuid(nix::unistd::getuid()).map_err(Error::os("seteuid"))?;
    nix::unistd::setegid(nix::unistd::getgid()).map_err(Error::os("setegid"))?;
    if let Some(groups) = ROOT_GROUPS.get() {
        nix::unistd::setgroups(groups).map_err(Error::os("setgroups"))?;
    }
    Ok(())
}

/// Whether this process is acting for another user (see [`act_as`]).
pub fn acting_as() -> Option<u32> {
    let (real, effective) = (nix::unistd::getuid(), nix::unistd::geteuid());
    (real != effective).then(|| effective.as_raw())
}

/// Run `f` with effective ids (uid, gid), then return to root. Only the
/// effective ids change (the saved ones stay 0), so permission checks and
/// the owner of what `f` creates are the user's. `f`'s error is any that
/// an OS error converts into (a failed switch is one).
pub fn with_effective_ids<R, E: From<Error>>(
    uid: u32,
    gid: u32,
    f: impl FnOnce() -> Result<R, E>,
) -> Result<R, E> {
    let (old_uid, old_gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    let old_groups = nix::unistd::getgroups().map_err(Error::os("getgroups"))?;
    // Supplementary groups too: root's would grant more than the user has.
    nix::unistd::setgroups(&[Gid::from_raw(gid)]).map_err(Error::os("setgroups"))?;
    let switched = nix::unistd::setegid(Gid::from_raw(gid))
        .and_then(|()| nix::unistd::seteuid(Uid::from_raw(uid)));
    let r = match switched {
        Ok(()) => f(),
        Err(e) => Err(Error::os("seteuid")(e).into()),
    };
    let back = nix::unistd::seteuid(old_uid)
        .and_then(|()| nix::unistd::setegid(old_gid))
        .and_then(|()| nix::unistd::setgroups(&old_groups));
    match back {
        Ok(()) => r,
        Err(e) => Err(Error::os("seteuid")(e).into()),
    }
}

/// Clear the umask: every mode this program sets is explicit, and entries
/// are then born with their final permission bits (only setgid and sticky
/// need the fchmod that follows), so a kill at any point leaves no entry
/// narrower than it should be.
pub fn clear_umask() {
    nix::sys::stat::umask(Mode::empty());
    UMASK_CLEARED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Set by [`clear_umask`]: the umask is 0 from then on, so an entry created
/// with only permission bits needs no fchmod after it.
static UMASK_CLEARED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether an entry created with `mode & 0o777` already has exactly
/// `mode`: the umask is 0 and `mode` has no setuid, setgid or sticky bit
/// (which mkdir and open do not set). Saves a system call per entry.
pub(super) fn born_exact(mode: u32) -> bool {
    mode & 0o7000 == 0 && umask_cleared()
}

/// Whether [`clear_umask`] ran: entries are born with the bits asked for.
pub(super) fn umask_cleared() -> bool {
    UMASK_CLEARED.load(std::sync::atomic::Ordering::Relaxed)
}

/// The effective uid of this process.
/// The real uid: who this process runs as, whatever it acts as.
pub fn uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The effective gid of this process.
pub fn egid() -> u32 {
    nix::unistd::getegid().as_raw()
}

/// Run `f` with the user's effective ids when this process is root (the
/// real and saved ids stay root), else as we are: for what apply writes
/// into the user's volume outside the profiles phase's own privilege drop.
pub fn as_user<R>(user: (u32, u32), f: impl FnOnce() -> Result<R>) -> Result<R> {
    if euid() == 0 && user.0 != 0 {
        with_effective_ids(user.0, user.1, f)
    } else {
        f()
    }
}
