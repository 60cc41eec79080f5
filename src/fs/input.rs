//! Root-owned inputs (the configuration, `<root>/etc/passwd`,
//! `<root>/etc/group`): read only if they are regular files, and never more
//! than a cap. A FIFO, a device (`/dev/zero`) or a socket in their place is
//! refused at once: the open is non-blocking and the type is checked with
//! `fstat` on the opened descriptor before a single byte is read.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::error::{Error, Result};
use super::{Kind, Meta};

/// Whether the last component may be a symlink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Follow {
    /// Resolved by the kernel (the operator's `--config`, which may be a
    /// mounted ConfigMap: `config.yaml -> ..data/config.yaml`).
    Yes,
    /// Refused: the file must be a regular file itself.
    No,
}

/// Why an input was not read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{0}")]
    Open(Error),
    #[error("is a symlink (not followed; it must be a regular file)")]
    Symlink,
    #[error("is a {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    Read(Error),
    /// A tree description holds another kind of entry at the path.
    #[error("is a {0} in the description, not a regular file")]
    Described(&'static str),
    /// A tree description gives the file by digest only.
    #[error("described by digest only; the description must hold its content")]
    DigestOnly,
}

impl InputError {
    /// The file does not exist (callers may fall back to defaults).
    pub fn is_not_found(&self) -> bool {
        matches!(self, InputError::Open(e) if super::Os::NotFound.is(e))
    }

    /// No such file (a named `--config` that is missing; an entry a
    /// description does not hold).
    pub fn not_found() -> InputError {
        InputError::Open(super::Os::NotFound.at("open"))
    }
}

/// Read the regular file at `path`, at most `limit` bytes (more is an error,
/// not a truncation).
pub fn read_regular(
    path: &Path,
    limit: u64,
    follow: Follow,
) -> std::result::Result<Vec<u8>, InputError> {
    let mut flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    if follow == Follow::No {
        flags |= OFlag::O_NOFOLLOW;
    }
    let fd: OwnedFd = match nix::fcntl::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ELOOP) if follow == Follow::No => return Err(InputError::Symlink),
        Err(e) => return Err(InputError::Open(Error::os("open")(e))),
    };
    let st =
        nix::sys::stat::fstat(fd.as_fd()).map_err(|e| InputError::Read(Error::os("fstat")(e)))?;
    let meta = Meta::from_stat(&st);
    if meta.kind != Kind::File {
        return Err(InputError::NotRegular(meta.kind.describe()));
    }
    if meta.size > limit {
        return Err(InputError::TooLarge { limit });
    }
    let mut buf = Vec::new();
    // One byte past the cap tells a file that grew since the fstat.
    std::fs::File::from(fd)
        .take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| InputError::Read(Error::std("read")(e)))?;
    if buf.len() as u64 > limit {
        return Err(InputError::TooLarge { limit });
    }
    Ok(buf)
}

/// Open `path` for reading without following a symlink at its end, never
/// blocking (a FIFO opens at once) and never becoming a controlling
/// terminal.
pub fn open_nofollow(path: &Path) -> Result<std::fs::File> {
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    nix::fcntl::open(path, flags, Mode::empty())
        .map(std::fs::File::from)
        .map_err(Error::os("open"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_fifo_device_symlink_and_large_files_at_once() {
        let t = tempfile::tempdir().unwrap();
        let fifo = t.path().join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        let e = read_regular(&fifo, 100, Follow::Yes).unwrap_err();
        assert_eq!(e.to_string(), "is a FIFO, not a regular file");
        let e = read_regular(Path::new("/dev/zero"), 100, Follow::Yes).unwrap_err();
        assert_eq!(
            e.to_string(),
            "is a device or other special file, not a regular file"
        );
        let link = t.path().join("link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(matches!(
            read_regular(&link, 100, Follow::No),
            Err(InputError::Symlink)
        ));
        let big = t.path().join("big");
        std::fs::write(&big, [b'x'; 101]).unwrap();
        assert_eq!(
            read_regular(&big, 100, Follow::No).unwrap_err().to_string(),
            "is larger than 100 bytes"
        );
        assert_eq!(read_regular(&big, 101, Follow::No).unwrap().len(), 101);
        assert!(
            read_regular(&t.path().join("none"), 1, Follow::No)
                .unwrap_err()
                .is_not_found()
        );
    }
}
