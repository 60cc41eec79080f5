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

pub mod input;

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, RenameFlags};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::{Gid, Uid};

/// What kind of file an entry is, from `lstat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Dir,
    File,
    Fifo,
    Symlink,
    Socket,
    Other,
}

impl Kind {
    pub fn from_mode(mode: u32) -> Kind {
        match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFDIR => Kind::Dir,
            SFlag::S_IFREG => Kind::File,
            SFlag::S_IFIFO => Kind::Fifo,
            SFlag::S_IFLNK => Kind::Symlink,
            SFlag::S_IFSOCK => Kind::Socket,
            _ => Kind::Other,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Kind::Dir => "directory",
            Kind::File => "regular file",
            Kind::Fifo => "FIFO",
            Kind::Symlink => "symlink",
            Kind::Socket => "socket",
            Kind::Other => "device or other special file",
        }
    }
}

/// The observed identity and attributes of one entry (never followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub dev: u64,
    pub ino: u64,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    pub nlink: u64,
    pub size: u64,
}

impl Meta {
    pub fn from_stat(st: &FileStat) -> Meta {
        Meta {
            kind: Kind::from_mode(st.st_mode),
            dev: st.st_dev,
            ino: st.st_ino,
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode & 0o7777,
            nlink: st.st_nlink,
            size: st.st_size as u64,
        }
    }

    pub fn from_std(m: &std::fs::Metadata) -> Meta {
        use std::os::unix::fs::MetadataExt;
        Meta {
            kind: Kind::from_mode(m.mode()),
            dev: m.dev(),
            ino: m.ino(),
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode() & 0o7777,
            nlink: m.nlink(),
            size: m.size(),
        }
    }

    /// Same file: dev, ino and kind unchanged since it was observed.
    pub fn same_file(&self, other: &Meta) -> bool {
        self.dev == other.dev && self.ino == other.ino && self.kind == other.kind
    }
}

fn errno_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn name_ok(name: &OsStr) -> io::Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a single file name: {:?}", name),
        ));
    }
    Ok(())
}

/// A held directory file descriptor.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

impl Dir {
    /// Open an operator-given directory (the `--root`): symlinks in this
    /// path are the operator's own choice and are followed.
    pub fn open_path(path: &Path) -> io::Result<Dir> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_io)?;
        Ok(Dir { fd })
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
        })
    }

    /// `fstat` of the directory itself.
    pub fn meta(&self) -> io::Result<Meta> {
        fd_meta(&self.fd)
    }

    /// Change the owner of this directory itself; it must still be `expect`.
    pub fn set_owner_self(&self, expect: &Meta, uid: u32, gid: u32) -> io::Result<()> {
        check_same(&self.fd, expect)?;
        nix::unistd::fchownat(
            self.fd.as_fd(),
            "",
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::AT_EMPTY_PATH,
        )
        .map_err(errno_io)
    }

    /// Change the mode of this directory itself; it must still be `expect`.
    pub fn set_mode_self(&self, expect: &Meta, mode: u32) -> io::Result<()> {
        check_same(&self.fd, expect)?;
        match nix::sys::stat::fchmod(self.fd.as_fd(), Mode::from_bits_truncate(mode)) {
            Err(Errno::EBADF) => chmod_via_proc(&self.fd, mode),
            r => r.map_err(errno_io),
        }
    }

    /// Open a child directory, refusing a symlink (ELOOP) or a non-directory (ENOTDIR).
    pub fn open_dir(&self, name: &OsStr) -> io::Result<Dir> {
        name_ok(name)?;
        match nix::fcntl::openat(self.fd.as_fd(), name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Dir { fd }),
            // A directory we may search but not read: an O_PATH fd still
            // serves as the anchor of *at() calls.
            Err(Errno::EACCES) => nix::fcntl::openat(
                self.fd.as_fd(),
                name,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map(|fd| Dir { fd })
            .map_err(errno_io),
            // O_DIRECTORY|O_NOFOLLOW says ENOTDIR for a symlink: say what it is.
            Err(Errno::ENOTDIR) if self.stat(name).is_ok_and(|m| m.kind == Kind::Symlink) => {
                Err(io::Error::other(format!(
                    "{} is a symlink; refusing to follow it",
                    Path::new(name).display()
                )))
            }
            Err(e) => Err(errno_io(e)),
        }
    }

    /// Walk `rel` one component at a time, never following a symlink.
    pub fn open_beneath(&self, rel: &Path) -> io::Result<Dir> {
        let mut cur = self.try_clone()?;
        for c in rel.components() {
            match c {
                Component::Normal(n) => cur = cur.open_dir(n)?,
                Component::CurDir => {}
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("not a relative path below the directory: {}", rel.display()),
                    ));
                }
            }
        }
        Ok(cur)
    }

    /// `lstat` of a child.
    pub fn stat(&self, name: &OsStr) -> io::Result<Meta> {
        name_ok(name)?;
        nix::sys::stat::fstatat(self.fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map(|s| Meta::from_stat(&s))
            .map_err(errno_io)
    }

    /// `lstat` of a child; `None` when it does not exist.
    pub fn stat_opt(&self, name: &OsStr) -> io::Result<Option<Meta>> {
        match self.stat(name) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The names in this directory, sorted bytewise, without `.` and `..`.
    pub fn entries(&self) -> io::Result<Vec<OsString>> {
        let mut d = nix::dir::Dir::openat(
            self.fd.as_fd(),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_io)?;
        let mut names = Vec::new();
        for e in d.iter() {
            let e = e.map_err(errno_io)?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(OsStr::from_bytes(n).to_os_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Open a child for reading, never through a symlink, never blocking
    /// (a FIFO opens at once) and never becoming a controlling terminal.
    fn open_read(&self, name: &OsStr) -> io::Result<OwnedFd> {
        name_ok(name)?;
        nix::fcntl::openat(
            self.fd.as_fd(),
            name,
            OFlag::O_RDONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_io)
    }

    /// Read a regular file (never a symlink, FIFO or device), at most `limit` bytes.
    pub fn read_file(&self, name: &OsStr, limit: u64) -> io::Result<Vec<u8>> {
        let fd = self.open_read(name)?;
        expect_kind(&fd_meta(&fd)?, Kind::File)?;
        let mut buf = Vec::new();
        std::fs::File::from(fd).take(limit).read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// Create a new regular file (`O_EXCL`, never through a symlink) with
    /// exactly `mode`, whatever the umask.
    pub fn create_file(&self, name: &OsStr, content: &[u8], mode: u32) -> io::Result<()> {
        name_ok(name)?;
        let fd = nix::fcntl::openat(
            self.fd.as_fd(),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            // Born with its final permission bits (see clear_umask): a kill
            // before the fchmod below leaves no narrower mode behind.
            Mode::from_bits_truncate(mode & 0o777),
        )
        .map_err(errno_io)?;
        nix::sys::stat::fchmod(fd.as_fd(), Mode::from_bits_truncate(mode)).map_err(errno_io)?;
        let mut f = std::fs::File::from(fd);
        f.write_all(content)?;
        Ok(())
    }

    /// Append to a regular file, creating it with `mode` if missing; never
    /// through a symlink. Returns the file's size before the append.
    pub fn append_file(&self, name: &OsStr, content: &[u8], mode: u32) -> io::Result<u64> {
        name_ok(name)?;
        let flags = OFlag::O_WRONLY
            | OFlag::O_APPEND
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC;
        let open = |extra: OFlag| {
            nix::fcntl::openat(
                self.fd.as_fd(),
                name,
                flags | extra,
                Mode::from_bits_truncate(mode & 0o777),
            )
        };
        // Create exclusively first so a new file gets exactly `mode`.
        let fd = match open(OFlag::O_CREAT | OFlag::O_EXCL) {
            Ok(fd) => {
                nix::sys::stat::fchmod(fd.as_fd(), Mode::from_bits_truncate(mode))
                    .map_err(errno_io)?;
                fd
            }
            Err(Errno::EEXIST) => open(OFlag::empty()).map_err(errno_io)?,
            Err(e) => return Err(errno_io(e)),
        };
        let meta = fd_meta(&fd)?;
        expect_kind(&meta, Kind::File)?;
        // A hard link planted at the name could point at any file of the
        // same file system: refuse it.
        if meta.nlink > 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "is hard-linked ({} links); refusing to write to it",
                    meta.nlink
                ),
            ));
        }
        std::fs::File::from(fd).write_all(content)?;
        Ok(meta.size)
    }

    /// Create a directory with exactly `mode` (setgid and sticky included),
    /// whatever the umask, and return it opened.
    pub fn mkdir(&self, name: &OsStr, mode: u32) -> io::Result<Dir> {
        name_ok(name)?;
        nix::sys::stat::mkdirat(
            self.fd.as_fd(),
            name,
            Mode::from_bits_truncate(mode & 0o777),
        )
        .map_err(errno_io)?;
        let d = self.open_dir(name)?;
        nix::sys::stat::fchmod(d.fd.as_fd(), Mode::from_bits_truncate(mode)).map_err(errno_io)?;
        Ok(d)
    }

    /// Create a FIFO with exactly `mode`.
    pub fn mkfifo(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        name_ok(name)?;
        nix::unistd::mkfifoat(
            self.fd.as_fd(),
            name,
            Mode::from_bits_truncate(mode & 0o777),
        )
        .map_err(errno_io)?;
        let meta = self.stat(name)?;
        self.set_mode(name, &meta, mode)
    }

    /// Change owner of a child without following it; the child must still be
    /// the file that was observed (`expect`: dev, ino, kind).
    pub fn set_owner(&self, name: &OsStr, expect: &Meta, uid: u32, gid: u32) -> io::Result<()> {
        let fd = self.open_entry(name, expect)?;
        nix::unistd::fchownat(
            fd.as_fd(),
            "",
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::AT_EMPTY_PATH,
        )
        .map_err(errno_io)
    }

    /// Change the mode of a child without following it (a symlink is
    /// refused); the child must still be the file that was observed.
    pub fn set_mode(&self, name: &OsStr, expect: &Meta, mode: u32) -> io::Result<()> {
        if expect.kind == Kind::Symlink {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "refusing to change the mode of a symlink",
            ));
        }
        let fd = self.open_entry(name, expect)?;
        match chmod_via_proc(&fd, mode) {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                // No /proc (an empty chroot): reopen for real, without
                // following, check identity again, and fchmod that fd.
                let real = self.open_read(name)?;
                check_same(&real, expect)?;
                nix::sys::stat::fchmod(real.as_fd(), Mode::from_bits_truncate(mode))
                    .map_err(errno_io)
            }
            Err(e) => Err(e),
        }
    }

    /// An `O_PATH` fd on a child, checked against what was observed.
    fn open_entry(&self, name: &OsStr, expect: &Meta) -> io::Result<OwnedFd> {
        name_ok(name)?;
        let fd = nix::fcntl::openat(
            self.fd.as_fd(),
            name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_io)?;
        check_same(&fd, expect)?;
        Ok(fd)
    }

    /// Remove a non-directory child (a symlink itself, never its target).
    pub fn unlink(&self, name: &OsStr) -> io::Result<()> {
        name_ok(name)?;
        nix::unistd::unlinkat(
            self.fd.as_fd(),
            name,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        )
        .map_err(errno_io)
    }

    /// Remove a child and, if it is a directory, everything below it,
    /// through dir fds, never following a symlink and never crossing into
    /// another file system. Removal of a directory stops at the first error.
    pub fn remove_tree(&self, name: &OsStr) -> io::Result<()> {
        let meta = self.stat(name)?;
        if meta.kind != Kind::Dir {
            return self.unlink(name);
        }
        let sub = self.open_dir(name)?;
        let sub_meta = sub.meta()?;
        if !sub_meta.same_file(&meta) {
            return Err(io::Error::other("changed while being removed"));
        }
        sub.empty_dir(meta.dev)?;
        nix::unistd::unlinkat(self.fd.as_fd(), name, nix::unistd::UnlinkatFlags::RemoveDir)
            .map_err(errno_io)
    }

    fn empty_dir(&self, dev: u64) -> io::Result<()> {
        for n in self.entries()? {
            let m = self.stat(&n)?;
            if m.kind == Kind::Dir {
                if m.dev != dev {
                    return Err(io::Error::other(format!(
                        "{} is a mount point; not crossing it",
                        Path::new(&n).display()
                    )));
                }
                let sub = self.open_dir(&n)?;
                sub.empty_dir(dev)?;
                nix::unistd::unlinkat(self.fd.as_fd(), &*n, nix::unistd::UnlinkatFlags::RemoveDir)
                    .map_err(errno_io)?;
            } else {
                self.unlink(&n)?;
            }
        }
        Ok(())
    }

    /// `renameat` within this directory.
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        name_ok(from)?;
        name_ok(to)?;
        nix::fcntl::renameat(self.fd.as_fd(), from, self.fd.as_fd(), to).map_err(errno_io)
    }

    /// `renameat2(RENAME_NOREPLACE)` within this directory: fails with
    /// EEXIST rather than replace anything.
    pub fn rename_noreplace(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        name_ok(from)?;
        name_ok(to)?;
        nix::fcntl::renameat2(
            self.fd.as_fd(),
            from,
            self.fd.as_fd(),
            to,
            RenameFlags::RENAME_NOREPLACE,
        )
        .map_err(errno_io)
    }

    /// Atomically swap two entries of this directory (`RENAME_EXCHANGE`).
    pub fn exchange(&self, a: &OsStr, b: &OsStr) -> io::Result<()> {
        name_ok(a)?;
        name_ok(b)?;
        nix::fcntl::renameat2(
            self.fd.as_fd(),
            a,
            self.fd.as_fd(),
            b,
            RenameFlags::RENAME_EXCHANGE,
        )
        .map_err(errno_io)
    }

    /// Read a symlink's target (without following it).
    pub fn read_link(&self, name: &OsStr) -> io::Result<OsString> {
        name_ok(name)?;
        nix::fcntl::readlinkat(self.fd.as_fd(), name).map_err(errno_io)
    }

    /// Write bytes to a FIFO child without blocking (`O_NONBLOCK`).
    /// `Ok(false)` when no reader listens (ENXIO).
    pub fn write_fifo(&self, name: &OsStr, bytes: &[u8]) -> io::Result<bool> {
        name_ok(name)?;
        match nix::fcntl::openat(
            self.fd.as_fd(),
            name,
            OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => {
                expect_kind(&fd_meta(&fd)?, Kind::Fifo)?;
                std::fs::File::from(fd).write_all(bytes)?;
                Ok(true)
            }
            Err(Errno::ENXIO) => Ok(false),
            Err(e) => Err(errno_io(e)),
        }
    }
}

/// fchmod does not work on an `O_PATH` fd; the /proc magic link reaches the
/// very inode the fd holds, not whatever the name points to now.
fn chmod_via_proc(fd: &OwnedFd, mode: u32) -> io::Result<()> {
    let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        proc_path.as_str(),
        Mode::from_bits_truncate(mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(errno_io)
}

/// An OS error as s6 tools print it: the errno's description, no "(os error N)".
pub fn os_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

fn fd_meta(fd: &OwnedFd) -> io::Result<Meta> {
    nix::sys::stat::fstat(fd.as_fd())
        .map(|s| Meta::from_stat(&s))
        .map_err(errno_io)
}

fn expect_kind(meta: &Meta, kind: Kind) -> io::Result<()> {
    if meta.kind == kind {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is a {}, not a {}", meta.kind.describe(), kind.describe()),
        ))
    }
}

fn check_same(fd: &OwnedFd, expect: &Meta) -> io::Result<()> {
    let now = fd_meta(fd)?;
    if now.same_file(expect) {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "changed since it was observed (was a {} with inode {}, now a {} with inode {})",
            expect.kind.describe(),
            expect.ino,
            now.kind.describe(),
            now.ino
        )))
    }
}

/// A configured base directory (servicedirs, scandir, profiles home), opened.
#[derive(Debug)]
pub struct Base {
    pub dir: Dir,
    pub meta: Meta,
    /// Where it really is, as a container path (differs from the configured
    /// path when a trusted parent is a symlink).
    pub resolved: PathBuf,
}

/// Why a base directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    #[error("not present")]
    Missing,
    #[error("is a symlink; refusing to follow it")]
    Symlink,
    #[error("is a {0}, not a directory")]
    NotADir(&'static str),
    #[error(
        "path crosses symlink {at} in a directory writable by uid {uid} or gid {gid}; refusing to follow it"
    )]
    UntrustedSymlink { at: PathBuf, uid: u32, gid: u32 },
    #[error("too many levels of symlinks")]
    Loop,
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Open the configured base directory `path` (absolute container path)
/// beneath `root`. Symlinks among its parents are resolved as if `root`
/// were `/`, but only where the directory holding the symlink (and the
/// symlink) cannot be changed by `untrusted` (uid, gid): s6-rc's live
/// directory `/run/s6-rc` is such a root-owned symlink. The last component
/// must be a real directory.
pub fn resolve_base(root: &Dir, path: &Path, untrusted: (u32, u32)) -> Result<Base, BaseError> {
    let mut todo: Vec<OsString> = Vec::new();
    push_components(&mut todo, path);
    let mut cur = root.try_clone()?;
    let mut cur_path = PathBuf::from("/");
    let mut hops = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            // Only from symlink targets: go back up, never above the root.
            cur_path.pop();
            let rel = cur_path
                .strip_prefix("/")
                .unwrap_or(&cur_path)
                .to_path_buf();
            cur = root.open_beneath(&rel)?;
            continue;
        }
        let meta = match cur.stat(&name) {
            Ok(m) => m,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Err(BaseError::Missing),
            Err(e) => return Err(e.into()),
        };
        let last = todo.is_empty();
        match meta.kind {
            Kind::Dir => {
                let next = cur.open_dir(&name)?;
                cur = next;
                cur_path.push(&name);
                if last {
                    let meta = cur.meta()?;
                    return Ok(Base {
                        dir: cur,
                        meta,
                        resolved: cur_path,
                    });
                }
            }
            Kind::Symlink if last => return Err(BaseError::Symlink),
            Kind::Symlink => {
                let holder = cur.meta()?;
                if writable_by(&holder, untrusted) || meta.uid != holder.uid {
                    let mut at = cur_path.clone();
                    at.push(&name);
                    return Err(BaseError::UntrustedSymlink {
                        at,
                        uid: untrusted.0,
                        gid: untrusted.1,
                    });
                }
                hops += 1;
                if hops > 40 {
                    return Err(BaseError::Loop);
                }
                let target = cur.read_link(&name)?;
                let target = Path::new(&target);
                if target.is_absolute() {
                    cur = root.try_clone()?;
                    cur_path = PathBuf::from("/");
                }
                push_components(&mut todo, target);
            }
            Kind::File | Kind::Fifo | Kind::Socket | Kind::Other => {
                return Err(BaseError::NotADir(meta.kind.describe()));
            }
        }
    }
    // The path was "/" itself.
    let meta = cur.meta()?;
    Ok(Base {
        dir: cur,
        meta,
        resolved: cur_path,
    })
}

/// Push a path's components on a stack so that the first component pops first.
fn push_components(stack: &mut Vec<OsString>, p: &Path) {
    let mut comps: Vec<OsString> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => comps.push(n.to_os_string()),
            Component::ParentDir => comps.push("..".into()),
            _ => {}
        }
    }
    stack.extend(comps.into_iter().rev());
}

/// Whether a directory with `meta` can be written by (uid, gid).
pub fn writable_by(meta: &Meta, (uid, gid): (u32, u32)) -> bool {
    (meta.uid == uid && uid != 0 && meta.mode & 0o200 != 0)
        || (meta.gid == gid && gid != 0 && meta.mode & 0o020 != 0)
        || meta.mode & 0o002 != 0
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn tmp() -> (tempfile::TempDir, Dir) {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open_path(t.path()).unwrap();
        (t, d)
    }

    #[test]
    fn open_beneath_refuses_symlinks() {
        let (t, d) = tmp();
        std::fs::create_dir_all(t.path().join("a/b")).unwrap();
        symlink(t.path().join("a"), t.path().join("l")).unwrap();
        assert!(d.open_beneath(Path::new("a/b")).is_ok());
        let e = d.open_beneath(Path::new("l/b")).unwrap_err();
        assert_eq!(e.to_string(), "l is a symlink; refusing to follow it");
    }

    #[test]
    fn exact_modes_whatever_the_umask() {
        let (t, d) = tmp();
        let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o077));
        let ev = d.mkdir(OsStr::new("event"), 0o3730);
        d.mkfifo(OsStr::new("control"), 0o660).unwrap();
        d.create_file(OsStr::new("run"), b"#!/bin/sh\n", 0o755)
            .unwrap();
        nix::sys::stat::umask(old);
        ev.unwrap();
        let mode = |n: &str| {
            std::fs::symlink_metadata(t.path().join(n))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("event"), 0o3730);
        assert_eq!(mode("control"), 0o660);
        assert_eq!(mode("run"), 0o755);
    }

    #[test]
    fn set_mode_refuses_a_swapped_file() {
        let (t, d) = tmp();
        std::fs::write(t.path().join("f"), b"x").unwrap();
        let before = d.stat(OsStr::new("f")).unwrap();
        std::fs::remove_file(t.path().join("f")).unwrap();
        std::fs::write(t.path().join("other"), b"y").unwrap();
        symlink(t.path().join("other"), t.path().join("f")).unwrap();
        let e = d.set_mode(OsStr::new("f"), &before, 0o777).unwrap_err();
        assert!(
            e.to_string().contains("changed since it was observed"),
            "{e}"
        );
        let m = std::fs::metadata(t.path().join("other")).unwrap();
        assert_ne!(m.permissions().mode() & 0o777, 0o777);
    }

    #[test]
    fn remove_tree_does_not_follow_symlinks() {
        let (t, d) = tmp();
        std::fs::create_dir_all(t.path().join("outside")).unwrap();
        std::fs::write(t.path().join("outside/keep"), b"k").unwrap();
        std::fs::create_dir_all(t.path().join("victim/sub")).unwrap();
        symlink(t.path().join("outside"), t.path().join("victim/sub/link")).unwrap();
        d.remove_tree(OsStr::new("victim")).unwrap();
        assert!(!t.path().join("victim").exists());
        assert!(t.path().join("outside/keep").exists());
    }

    #[test]
    fn resolve_base_follows_trusted_symlinks_only() {
        let (t, d) = tmp();
        std::fs::create_dir_all(t.path().join("run/s6-rc:init:x/servicedirs")).unwrap();
        symlink("s6-rc:init:x", t.path().join("run/s6-rc")).unwrap();
        let b = resolve_base(&d, Path::new("/run/s6-rc/servicedirs"), (10000, 10000)).unwrap();
        assert_eq!(b.resolved, Path::new("/run/s6-rc:init:x/servicedirs"));
        // The last component must not be a symlink.
        symlink("s6-rc:init:x/servicedirs", t.path().join("run/sd")).unwrap();
        assert!(matches!(
            resolve_base(&d, Path::new("/run/sd"), (10000, 10000)),
            Err(BaseError::Symlink)
        ));
        // A world-writable holder makes the symlink untrusted.
        std::fs::set_permissions(
            t.path().join("run"),
            std::fs::Permissions::from_mode(0o1777),
        )
        .unwrap();
        let e = resolve_base(&d, Path::new("/run/s6-rc/servicedirs"), (10000, 10000)).unwrap_err();
        assert!(matches!(e, BaseError::UntrustedSymlink { .. }), "{e}");
        assert!(matches!(
            resolve_base(&d, Path::new("/nope"), (10000, 10000)),
            Err(BaseError::Missing)
        ));
    }
}
