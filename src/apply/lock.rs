//! One apply at a time (docs/security.md, "One apply at a time"): the apply lock.
//!
//! Two applies at once (both boot definitions installed, an operator
//! re-running during boot) would each remove the other's staging dirs as
//! leftovers and could publish a half-built slot. So an apply holds an
//! exclusive `flock` on `/run/s6-reconcile.lock` (under `--root`) from
//! before it observes until it exits, and a leftover staging dir is then
//! only ever one no running apply owns.
//!
//! The unprivileged user must be able neither to take nor to hold it, or
//! they could stall every boot: the file is root's, mode 0600 (opening it
//! is needed to lock it), in a directory the user cannot write (so the name
//! cannot be swapped). `/run` is a root-owned tmpfs in a container, so the
//! file never outlives the container; the scandir and the volume can be
//! the user's (compat), so it never lives there. Without a `/run` under
//! the root, the root directory itself holds it. The file is left in place
//! after the run (unlinking a lock file races with a waiter; the profiles
//! phase also runs with the user's ids by then).
//!
//! `--plan` and `--check` never take it, so they never block an apply. A
//! run that is not root and may not open the lock goes on without it: it
//! can only do what its user may do anyway.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::fs::lock::Held;
use crate::fs::{self, BaseError, Dir, Kind};

/// The lock file's name, in `/run` (or `/` without one).
pub const LOCK_NAME: &str = "s6-reconcile.lock";
/// How long an apply waits for another by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// How often a waiting apply tries again.
const POLL: Duration = Duration::from_millis(10);

/// Why the lock could not be taken (fatal: exit 111).
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("unable to take the apply lock {path}: {err}")]
    Io {
        path: PathBuf,
        #[source]
        err: fs::Error,
    },
    #[error(
        "refusing the apply lock {path}: {dir} is writable by uid {uid} or gid {gid}, who could take or hold it"
    )]
    UntrustedDir {
        path: PathBuf,
        dir: PathBuf,
        uid: u32,
        gid: u32,
    },
    #[error("refusing the apply lock {path}: {why}")]
    Untrusted { path: PathBuf, why: String },
    #[error(
        "another apply still holds the lock {path} after {waited} s; giving up (nothing was changed)"
    )]
    Timeout { path: PathBuf, waited: u64 },
}

/// The held apply lock (released when the process ends or this is dropped).
#[derive(Debug)]
pub struct ApplyLock {
    pub path: PathBuf,
    _held: Held,
}

/// Take the apply lock under `root`, waiting at most `wait` for another
/// apply to finish; `on_wait` is called once if it has to wait (to say so
/// on stderr). `user` is the unprivileged (uid, gid). `Ok(None)`: not
/// root and not permitted to lock; the run goes on without it.
pub fn acquire(
    root: &Dir,
    user: &fs::Ids,
    wait: Duration,
    on_wait: impl FnOnce(&Path),
) -> Result<Option<ApplyLock>, LockError> {
    let (dir, shown_dir) = lock_dir(root, user)?;
    let path = shown_dir.join(LOCK_NAME);
    let io = |err| LockError::Io {
        path: path.clone(),
        err,
    };
    let as_root = fs::euid() == 0;
    if as_root {
        let m = dir.meta().map_err(io)?;
        if fs::controlled_by(&m, user) {
            return Err(LockError::UntrustedDir {
                path,
                dir: shown_dir,
                uid: user.uid,
                gid: if user.in_group(m.gid) {
                    m.gid
                } else {
                    user.gid
                },
            });
        }
    }
    let mut file = match dir.open_lock_file(OsStr::new(LOCK_NAME), 0o600) {
        Ok(f) => f,
        Err(e) if !as_root && fs::Os::Access.is(&e) => {
            log::info!(
                "not root and not permitted to open {}: applying without the lock",
                path.display()
            );
            return Ok(None);
        }
        // What is at the name, said in the words of the rest of the tool
        // (never followed, never opened as something else).
        Err(e) => match dir.stat(OsStr::new(LOCK_NAME)) {
            Ok(m) if m.kind != Kind::File => {
                let why = match m.kind {
                    Kind::Symlink => "is a symlink; not followed".to_string(),
                    k => format!("is a {}, not a regular file", k.describe()),
                };
                return Err(LockError::Untrusted { path, why });
            }
            _ => return Err(io(e)),
        },
    };
    if let Some(why) = untrusted(file.meta(), fs::euid()) {
        return Err(LockError::Untrusted { path, why });
    }
    let start = Instant::now();
    let mut on_wait = Some(on_wait);
    loop {
        file = match file.try_lock().map_err(io)? {
            Ok(held) => return Ok(Some(ApplyLock { path, _held: held })),
            Err(file) => file,
        };
        if let Some(say) = on_wait.take() {
            say(&path);
        }
        if start.elapsed() >= wait {
            return Err(LockError::Timeout {
                path,
                waited: wait.as_secs(),
            });
        }
        std::thread::sleep(POLL.min(wait.saturating_sub(start.elapsed())));
    }
}

/// `/run` under the root, or the root itself when there is none; with the
/// container path it is shown as.
fn lock_dir(root: &Dir, user: &fs::Ids) -> Result<(Dir, PathBuf), LockError> {
    let run = Path::new("/run");
    match fs::resolve_base(root, run, user) {
        Ok(base) => Ok((base.dir, base.resolved)),
        Err(BaseError::Missing) => {
            root.try_clone()
                .map(|d| (d, PathBuf::from("/")))
                .map_err(|err| LockError::Io {
                    path: Path::new("/").join(LOCK_NAME),
                    err,
                })
        }
        Err(e) => Err(LockError::Untrusted {
            path: run.join(LOCK_NAME),
            why: format!("/run {e}"),
        }),
    }
}

/// Why an opened lock file must not be used, if it must not: anyone but
/// its owner (this process's euid) able to open it could hold it.
fn untrusted(m: &fs::Meta, euid: u32) -> Option<String> {
    if m.kind != Kind::File {
        return Some(format!("is a {}, not a regular file", m.kind.describe()));
    }
    if m.uid != euid {
        return Some(format!("is owned by uid {}, not uid {euid}", m.uid));
    }
    if m.nlink != 1 {
        return Some(format!("has {} links", m.nlink));
    }
    if m.mode & 0o077 != 0 {
        return Some(format!(
            "has mode {:04o}: others could open and hold it",
            m.mode
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn meta(kind: Kind, uid: u32, mode: u32, nlink: u64) -> fs::Meta {
        fs::Meta {
            kind,
            dev: 1,
            ino: 2,
            uid,
            gid: 0,
            mode,
            nlink,
            size: 0,
        }
    }

    #[test]
    fn only_a_private_regular_file_of_our_own_is_a_lock() {
        assert_eq!(untrusted(&meta(Kind::File, 0, 0o600, 1), 0), None);
        for (m, want) in [
            (meta(Kind::Fifo, 0, 0o600, 1), "is a FIFO"),
            (meta(Kind::File, 10000, 0o600, 1), "owned by uid 10000"),
            (meta(Kind::File, 0, 0o600, 2), "has 2 links"),
            (meta(Kind::File, 0, 0o644, 1), "mode 0644"),
        ] {
            let why = untrusted(&m, 0).expect("refused");
            assert!(why.contains(want), "{why}");
        }
    }

    #[test]
    fn a_second_taker_waits_then_gives_up() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("run")).unwrap();
        std::fs::set_permissions(t.path().join("run"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let root = Dir::open_path(t.path()).unwrap();
        let user = &fs::Ids::new(10000, 10000);
        let first = acquire(&root, user, Duration::ZERO, |_| panic!("no wait"))
            .unwrap()
            .expect("locked");
        assert_eq!(first.path, Path::new("/run/s6-reconcile.lock"));
        // flock locks belong to the open file: a second open in this
        // process conflicts like another process would.
        let mut said = None;
        let e = acquire(&root, user, Duration::from_millis(50), |p| {
            said = Some(p.to_path_buf())
        })
        .unwrap_err();
        assert_eq!(said.as_deref(), Some(Path::new("/run/s6-reconcile.lock")));
        assert!(matches!(e, LockError::Timeout { .. }), "{e}");
        drop(first);
        assert!(
            acquire(&root, user, Duration::ZERO, |_| panic!("no wait"))
                .unwrap()
                .is_some()
        );
    }
}
