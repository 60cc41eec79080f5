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
pub use error::{Error, Os, OsError, Refusal, Result};
pub use make::mkdir_path;
pub use meta::{Kind, Meta};
pub use stage::{SETGID, born_dir_mode};

/// A std OS error (writing stdout, a path the operator gave) as s6 tools
/// print it: the errno's description, no "(os error N)". The fd
/// primitives' [`Error`] prints so itself.
pub fn os_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}
