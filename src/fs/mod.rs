//! File-system primitives that never follow a symlink.
//!
//! Every mutation goes through a held directory fd ([`Dir`]) and a single
//! file name: `fchownat`, `mkdirat`, `mkfifoat`, `unlinkat`, `renameat2`.
//! Paths are only walked one component at a time with `O_NOFOLLOW`, so a
//! symlink planted by the unprivileged user can never redirect a root
//! operation. The only place symlinks are resolved is [`resolve_base`], for
//! the configured base directories (`/run/s6-rc` is itself a symlink in a
//! real s6-overlay container), and only through directories the user cannot
//! write. This module is the only one that knows `nix`.

mod base;
mod creds;
mod dir;
mod error;
pub(crate) mod input;
pub(crate) mod lock;
mod make;
mod meta;
mod perms;
mod read;
mod remove;
mod stage;

use std::io;

use nix::errno::Errno;

pub use base::{
    Base, BaseError, Class, Ids, SYSTEM_DIRS, Want, access, access_as_owner_can, controlled_by,
    is_system_dir, resolve_base,
};
pub use creds::{
    act_as, acting_as, as_user, clear_umask, current_ids, egid, euid, stop_acting, uid,
    with_effective_ids,
};
pub use dir::{Dir, DirEntry};
pub use error::{Os, Refusal, refusal};
pub use meta::{Kind, Meta};
pub use stage::{SETGID, born_dir_mode};

fn errno_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// An OS error as s6 tools print it: the errno's description, no "(os error N)".
pub fn os_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

/// Whether an OS error is a fault of the system rather than of what is on
/// disk: a failing device, a read-only mount, the process's or the
/// kernel's resources. No file's owner can cause one.
pub fn system_fault(code: i32) -> bool {
    matches!(
        Errno::from_raw(code),
        Errno::EIO
            | Errno::EROFS
            | Errno::ENOMEM
            | Errno::EMFILE
            | Errno::ENFILE
            | Errno::ENOSYS
            | Errno::EFAULT
            | Errno::EBADF
    )
}
