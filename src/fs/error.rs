//! The conditions the fd primitives refuse on purpose, typed: a caller
//! tells them apart with [`refusal`] instead of reading message text. They
//! travel inside `io::Error` (as its payload), so every primitive keeps
//! one error type; the text is made only when a message is printed.

use std::io;

use nix::errno::Errno;

use super::meta::{Kind, Meta};

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
    Changed { was: Meta, now: Meta },
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
}

impl From<Refusal> for io::Error {
    fn from(r: Refusal) -> io::Error {
        let kind = match r {
            Refusal::BadName { .. } | Refusal::HardLinked { .. } | Refusal::WrongKind { .. } => {
                io::ErrorKind::InvalidInput
            }
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, r)
    }
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
    pub fn is(self, e: &io::Error) -> bool {
        e.raw_os_error() == Some(self.errno() as i32)
    }
}

impl From<Os> for io::Error {
    fn from(o: Os) -> io::Error {
        io::Error::from_raw_os_error(o.errno() as i32)
    }
}

/// The refusal an error carries, if it is one.
pub fn refusal(e: &io::Error) -> Option<&Refusal> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Refusal>())
}
