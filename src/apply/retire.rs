//! Retiring old slot trees the way s6 expects: a replaced slot's old tree
//! (swapped to its staging name) and a pruned slot (renamed to its
//! retire name, `.<slot>.retired`) are removed only once their supervisors have let go, after the
//! rescan `an` asked s6-svscan to stop them. The positive signal is the
//! `fcntl` lock s6-supervise holds on `supervise/lock` (and its logger's
//! on `log/supervise/lock`) becoming free, as `s6-svok` tests it. One
//! deadline serves every tree retired in a run; a tree whose supervisor
//! has not let go by then is left under its dot name, said, and removed
//! by the next run. No supervisor ever writes into a removed directory
//! (docs/phases.md).

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use crate::fs::Dir;
use crate::s6::layout;

/// How long one run waits, in all, for the supervisors of the trees it
/// retires: longer than s6-supervise's default 5 s finish timeout.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// How often the locks are looked at while waiting.
const POLL: Duration = Duration::from_millis(20);

/// What became of the trees retired.
#[derive(Debug, Default)]
pub struct Retired {
    /// Removed, their supervisors gone.
    pub removed: Vec<String>,
    /// Left under their dot names, with why.
    pub left: Vec<(String, Left)>,
}

/// Why a retired tree was left.
#[derive(Debug, thiserror::Error)]
pub enum Left {
    #[error("its supervisor did not let go within {} s", DEADLINE.as_secs())]
    Supervised,
    #[error(transparent)]
    Fs(#[from] crate::fs::Error),
}

/// Whether a supervisor still holds the tree `name` of `scandir`. Every
/// removal of a tree in the scandir asks first: a tree a run left under a
/// dot name because its supervisor held it past the deadline is removed
/// by a later run only once it is free.
pub fn held(scandir: &Dir, name: &OsStr) -> crate::fs::Result<bool> {
    // What a replace swapped out may be no directory at all (a symlink
    // planted at the slot's name): nothing supervises it.
    match scandir.stat_opt(name)? {
        Some(m) if m.kind == crate::fs::Kind::Dir => {}
        _ => return Ok(false),
    }
    let top = match scandir.open_dir(name) {
        Ok(d) => d,
        Err(e) if crate::fs::Os::NotFound.is(&e) => return Ok(false),
        Err(e) => return Err(e),
    };
    for dir in [None, Some(layout::LOG)] {
        let d = match dir {
            None => top.try_clone()?,
            Some(sub) => match top.open_dir(OsStr::new(sub)) {
                Ok(d) => d,
                Err(e) if crate::fs::Os::NotFound.is(&e) => continue,
                Err(e) => return Err(e),
            },
        };
        let supervise = match d.open_dir(OsStr::new(layout::SUPERVISE)) {
            Ok(s) => s,
            Err(e) if crate::fs::Os::NotFound.is(&e) => continue,
            Err(e) => return Err(e),
        };
        if supervise.fcntl_locked(OsStr::new(layout::LOCK))? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Wait until the supervisors of `names` (dot names in `scandir`) have
/// let go, or `deadline`, removing each tree as soon as it is free.
pub fn retire(scandir: &Dir, names: Vec<String>, deadline: Instant) -> Retired {
    let mut out = Retired::default();
    let mut pending = names;
    loop {
        let mut still = Vec::new();
        for name in pending {
            match held(scandir, OsStr::new(&name)) {
                Ok(true) => still.push(name),
                Ok(false) => match scandir.remove_tree(OsStr::new(&name)) {
                    Ok(()) => out.removed.push(name),
                    Err(e) if crate::fs::Os::NotFound.is(&e) => out.removed.push(name),
                    Err(e) => out.left.push((name, e.into())),
                },
                Err(e) => out.left.push((name, e.into())),
            }
        }
        pending = still;
        let now = Instant::now();
        if pending.is_empty() || now >= deadline {
            break;
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
    out.left
        .extend(pending.into_iter().map(|n| (n, Left::Supervised)));
    out
}
