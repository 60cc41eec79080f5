//! The fd primitives' one error type: an OS error with the system call
//! that met it, or a condition they refuse on purpose ([`Refusal`]).
//! Callers tell them apart by matching, and the errno values stay inside
//! `fs` ([`Os`] names the ones the stages tell apart); the text is made
//! only when a message is printed.

use std::io;

use nix::errno::Errno;

use super::meta::{Kind, Meta};

/// What the fd primitives return.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an fd primitive failed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// A system call failed.
    #[error(transparent)]
    Os(OsError),
    /// A refusal: nothing was asked of the OS, or its answer was not what
    /// was observed.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// A system call that failed: which one, and its errno (kept inside
/// `fs`; printed as s6 tools print it: the errno's description, no "(os
/// error N)").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .errno.desc())]
pub struct OsError {
    call: &'static str,
    errno: Errno,
}

impl OsError {
    /// The system call that met it (`openat`, `fchownat`...).
    pub fn call(&self) -> &'static str {
        self.call
    }
}

impl std::hash::Hash for OsError {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        (self.call, self.errno as i32).hash(h)
    }
}

impl Error {
    /// The OS error `errno`, met by `call`.
    pub(super) fn os(call: &'static str) -> impl Fn(Errno) -> Error {
        move |errno| Error::Os(OsError { call, errno })
    }

    /// The OS error a std call met (`read`, `write`); the rare one without
    /// an errno (a write that wrote nothing) counts as an I/O error.
    pub(super) fn std(call: &'static str) -> impl Fn(io::Error) -> Error {
        move |e| Error::os(call)(e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))
    }

    fn errno(&self) -> Option<Errno> {
        match self {
            Error::Os(o) => Some(o.errno),
            Error::Refused(_) => None,
        }
    }

    /// The refusal, if it is one.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Error::Refused(r) => Some(r),
            Error::Os(_) => None,
        }
    }

    /// Whether the OS refused a permission (EPERM, EACCES).
    pub fn permission_denied(&self) -> bool {
        matches!(self.errno(), Some(Errno::EPERM | Errno::EACCES))
    }

    /// Whether it is a fault of the system rather than of what is on
    /// disk: a failing device, a read-only mount, the process's or the
    /// kernel's resources. No file's owner can cause one; every refusal
    /// is about what is on disk.
    pub fn system_fault(&self) -> bool {
        matches!(
            self.errno(),
            Some(
                Errno::EIO
                    | Errno::EROFS
                    | Errno::ENOMEM
                    | Errno::EMFILE
                    | Errno::ENFILE
                    | Errno::ENOSYS
                    | Errno::EFAULT
                    | Errno::EBADF
            )
        )
    }
}

/// Why a primitive refused to act.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Refusal {
    /// A symlink where a directory or file was to be opened: never followed.
    #[error("{name} is a symlink; refusing to follow it")]
    Symlink { name: String },
    /// The entry is not the one observed (dev, ino or kind changed).
    #[error(
        "changed since it was observed (was a {} with inode {}, now a {} with inode {})",
        .was.kind.describe(), .was.ino, .now.kind.describe(), .now.ino
    )]
    Changed { was: Box<Meta>, now: Box<Meta> },
    /// The entry (or the directory a step works in) is no longer the one
    /// the plan observed; the step is not taken.
    #[error("changed since it was observed; left alone")]
    NotAsObserved,
    /// A directory being removed changed under us.
    #[error("changed while being removed")]
    ChangedWhileRemoving,
    /// A directory reopened through `..` is not the one walked down from.
    #[error("moved while being walked")]
    Moved,
    /// The same, met while observing: the directory is left alone.
    #[error("moved while being observed; left alone")]
    MovedWhileObserved,
    /// A regular file with more than one link: writing to it could reach
    /// any file of the same file system.
    #[error("is hard-linked ({links} links); refusing to write to it")]
    HardLinked { links: u64 },
    /// Another kind of file than expected.
    #[error("is a {}, not a {}", .found.describe(), .want.describe())]
    WrongKind { found: Kind, want: Kind },
    /// Another file system below a tree being removed.
    #[error("{name} is a mount point; not crossing it")]
    MountPoint { name: String },
    /// Not a single file name (empty, `.`, `..` or holding `/`).
    #[error("not a single file name: {name:?}")]
    BadName { name: String },
    /// A path to walk down that is not relative below the directory.
    #[error("not a relative path below the directory: {path}")]
    NotBeneath { path: String },
    /// A symlink's mode is never changed (it would be its target's).
    #[error("refusing to change the mode of a symlink")]
    SymlinkMode,
    /// A source that cannot follow symlinks met one where it was asked to.
    #[error("symlinks are not followed in this source")]
    NotFollowed,
    /// A tree description gives the file by digest only, not its content.
    #[error("the tree description gives this file by digest only, not its content")]
    DigestOnly,
}

/// The OS errors the stages tell apart or make (a tree description answers
/// as the disk would), by name: the errno values stay inside `fs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Os {
    /// `ENOENT`
    NotFound,
    /// `ENOTDIR`
    NotADir,
    /// `ELOOP`: a symlink met with `O_NOFOLLOW`.
    Loop,
    /// `EACCES`
    Access,
    /// `ENXIO`: a FIFO without a reader, a socket opened.
    NoDevice,
    /// `EINVAL`
    Invalid,
    /// `EEXIST`
    Exists,
}

impl Os {
    fn errno(self) -> Errno {
        match self {
            Os::NotFound => Errno::ENOENT,
            Os::NotADir => Errno::ENOTDIR,
            Os::Loop => Errno::ELOOP,
            Os::Access => Errno::EACCES,
            Os::NoDevice => Errno::ENXIO,
            Os::Invalid => Errno::EINVAL,
            Os::Exists => Errno::EEXIST,
        }
    }

    /// Whether `e` is this OS error.
    pub fn is(self, e: &Error) -> bool {
        e.errno() == Some(self.errno())
    }

    /// This OS error as the system call `call` would have met it (a tree
    /// description answers as the disk would).
    pub fn at(self, call: &'static str) -> Error {
        Error::os(call)(self.errno())
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;
    use crate::fs::Dir;

    /// An OS error keeps the call that met it and prints as s6 tools do;
    /// a refusal is told apart by matching, its text made when printed.
    #[test]
    fn os_errors_and_refusals_are_told_apart_by_type() {
        let t = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", t.path().join("l")).unwrap();
        let d = Dir::open_path(t.path()).unwrap();
        let missing = d.stat(OsStr::new("none")).unwrap_err();
        assert_eq!(missing, Os::NotFound.at("fstatat"));
        assert!(matches!(&missing, Error::Os(o) if o.call() == "fstatat"));
        assert!(Os::NotFound.is(&missing) && missing.refusal().is_none());
        assert_eq!(missing.to_string(), "No such file or directory");
        let link = d.open_dir(OsStr::new("l")).unwrap_err();
        assert!(matches!(link.refusal(), Some(Refusal::Symlink { .. })));
        assert!(!link.permission_denied() && !link.system_fault());
        assert_eq!(link.to_string(), "l is a symlink; refusing to follow it");
        let denied = Os::Access.at("openat");
        assert!(denied.permission_denied() && !denied.system_fault());
    }
}
