//! Reading through a held directory fd: listing it (a directory stream
//! of its own on the same directory), reading small files and symlink targets by a single name,
//! never following a symlink unless the function says so.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::dir::{DIR_FLAGS, Dir, DirEntry, expect_kind, fd_meta, name_ok};
use super::error::{Error, Result};
use super::meta::{Kind, Meta};

impl Dir {
    /// The entries of this directory, sorted bytewise by name, without
    /// `.` and `..`: read through a directory stream of its own (libc's
    /// `opendir` of `.` relative to the held fd: the same directory, even
    /// if it was renamed meanwhile), closed once read; the held fd's
    /// offset never moves, so a directory can be listed again.
    pub fn list(&self) -> Result<Vec<DirEntry>> {
        if !self.readable {
            return Err(Error::os("getdents64")(Errno::EACCES));
        }
        // `nix::dir::Dir` is `fdopendir`. Making the held fd itself the
        // stream would trade this `openat` and `close` for an `lseek` back,
        // but a failed `fdopendir` would take the held fd with it
        // (benches/README.md, "Listing a directory").
        let stream = nix::dir::Dir::openat(self.fd.as_fd(), ".", DIR_FLAGS, Mode::empty())
            .map_err(Error::os("opendir"))?;
        let mut out = Vec::new();
        for e in stream {
            let e = e.map_err(Error::os("readdir"))?;
            let name = e.file_name().to_bytes();
            if name != b"." && name != b".." {
                out.push(DirEntry {
                    name: OsStr::from_bytes(name).to_os_string(),
                    kind: e.file_type().map(kind_of_type),
                });
            }
        }
        out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The names in this directory, sorted bytewise, without `.` and `..`.
    pub fn entries(&self) -> Result<Vec<OsString>> {
        Ok(self.list()?.into_iter().map(|e| e.name).collect())
    }

    /// Read a regular file (never a symlink, FIFO or device), at most `limit` bytes.
    pub fn read_file(&self, name: &OsStr, limit: u64) -> Result<Vec<u8>> {
        let fd = self.open_read(name)?;
        expect_kind(&fd_meta(&fd)?, Kind::File)?;
        let mut buf = Vec::new();
        std::fs::File::from(fd)
            .take(limit)
            .read_to_end(&mut buf)
            .map_err(Error::std("read"))?;
        Ok(buf)
    }

    /// What it is and, for a regular file of at most `limit` bytes and at
    /// most `links` links (checked on the opened fd before a byte is read),
    /// its contents (`None` otherwise), following a symlink at `name` the way
    /// the container sees it ([`Dir::resolve_in_root`]): only for files of
    /// the user's volume read with the user's effective ids (see
    /// `observe::Source::read_file_following`), never as root. Never blocks (a
    /// FIFO opens at once) and never becomes a controlling terminal.
    pub fn read_file_meta_following(
        &self,
        root: &Dir,
        name: &OsStr,
        limit: u64,
        links: u64,
    ) -> Result<(Meta, Option<Vec<u8>>)> {
        match self.resolve_in_root(root, name)? {
            (dir, Some(name)) => read_opened(dir.open_read(&name)?, limit, links),
            (dir, None) => Ok((dir.meta()?, None)),
        }
    }

    /// Open a child for reading (never through a symlink, never blocking)
    /// and say what the opened file is, for a reader that streams it.
    pub fn open_child(&self, name: &OsStr) -> Result<(Meta, std::fs::File)> {
        let fd = self.open_read(name)?;
        Ok((fd_meta(&fd)?, std::fs::File::from(fd)))
    }

    /// `stat` of a child, following a symlink at its name: same rule as
    /// [`Dir::read_file_meta_following`].
    pub fn stat_following(&self, root: &Dir, name: &OsStr) -> Result<Meta> {
        match self.resolve_in_root(root, name)? {
            (dir, Some(name)) => dir.stat(&name),
            (dir, None) => dir.meta(),
        }
    }

    /// Where the child `name` leads, its symlinks resolved as the container
    /// would resolve them with `root` as its `/`: an absolute target starts
    /// from `root`, `..` never climbs above it, at most 40 links (`ELOOP`),
    /// every step an `openat` or `fstatat` that does not follow (what
    /// `openat2`'s `RESOLVE_IN_ROOT` does, from the held directory rather
    /// than a path string from `root`, and on kernels or seccomp filters
    /// without `openat2`). Returns the directory holding the final entry and its name,
    /// or the final directory itself (`None`) when the path ends in `..`.
    pub fn resolve_in_root(&self, root: &Dir, name: &OsStr) -> Result<(Dir, Option<OsString>)> {
        name_ok(name)?;
        let top = root.meta()?;
        let mut cur = self.try_clone()?;
        let mut todo = vec![name.to_os_string()];
        let mut links = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                let m = cur.meta()?;
                if (m.dev, m.ino) != (top.dev, top.ino) {
                    cur = cur.open_parent()?.0;
                }
                continue;
            }
            if c == "." || c.is_empty() {
                continue;
            }
            if cur.stat(&c)?.kind == Kind::Symlink {
                links += 1;
                if links > 40 {
                    return Err(Error::os("readlinkat")(Errno::ELOOP));
                }
                let target = cur.read_link(&c)?;
                if target.as_bytes().starts_with(b"/") {
                    cur = root.try_clone()?;
                }
                todo.extend(
                    target
                        .as_bytes()
                        .split(|&b| b == b'/')
                        .rev()
                        .map(|part| OsStr::from_bytes(part).to_os_string()),
                );
                continue;
            }
            if todo.is_empty() {
                return Ok((cur, Some(c)));
            }
            cur = cur.open_dir(&c)?;
        }
        Ok((cur, None))
    }

    /// Open a child without following it and without blocking, and return
    /// what it is; when it is a regular file of at most `limit` bytes, its
    /// contents too (`None` otherwise). One `openat`, one `fstat` and, for
    /// a file whose size did not change, one `read`.
    pub fn read_file_meta(&self, name: &OsStr, limit: u64) -> Result<(Meta, Option<Vec<u8>>)> {
        read_opened(self.open_read(name)?, limit, u64::MAX)
    }

    /// [`Dir::read_file_meta`] of `sub/name` (`sub` a child directory),
    /// except that a file with more than one link is not read (`None`):
    /// the link count is checked on the opened fd before any byte is read.
    /// One `openat2` refusing every symlink on the way
    /// (`RESOLVE_NO_SYMLINKS`, `RESOLVE_BENEATH`) where the kernel has it;
    /// else the child directory is opened, then the file.
    pub fn read_single_link_file(
        &self,
        sub: Option<&OsStr>,
        name: &OsStr,
        limit: u64,
    ) -> Result<(Meta, Option<Vec<u8>>)> {
        name_ok(name)?;
        let Some(sub) = sub else {
            return read_opened(self.open_read(name)?, limit, 1);
        };
        name_ok(sub)?;
        let mut path = sub.to_os_string();
        path.push("/");
        path.push(name);
        use nix::fcntl::{OpenHow, ResolveFlag};
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
            .resolve(
                ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS
                    | ResolveFlag::RESOLVE_BENEATH,
            );
        match nix::fcntl::openat2(self.fd.as_fd(), path.as_os_str(), how) {
            Ok(fd) => read_opened(fd, limit, 1),
            Err(Errno::ENOENT) => Err(Error::os("openat2")(Errno::ENOENT)),
            // Not available (old kernel, a seccomp filter) or refused for
            // a symlink: the step-by-step opens give the same answer.
            Err(_) => read_opened(self.open_dir(sub)?.open_read(name)?, limit, 1),
        }
    }

    /// Read a symlink's target (without following it).
    pub fn read_link(&self, name: &OsStr) -> Result<OsString> {
        name_ok(name)?;
        nix::fcntl::readlinkat(self.fd.as_fd(), name).map_err(Error::os("readlinkat"))
    }
}

/// What an opened entry is and, for a regular file of at most `limit`
/// bytes and at most `links` links, its contents. One `fstat` and, for a
/// file whose size did not change, one `read`.
fn read_opened(
    fd: std::os::fd::OwnedFd,
    limit: u64,
    links: u64,
) -> Result<(Meta, Option<Vec<u8>>)> {
    let meta = fd_meta(&fd)?;
    if meta.kind != Kind::File || meta.size > limit || meta.nlink > links {
        return Ok((meta, None));
    }
    let mut f = std::fs::File::from(fd);
    // One byte more than the size: getting exactly the size is the end of
    // a regular file, so the usual case is a single read into a buffer
    // that holds the file and no more (what is read is kept, maybe for
    // every slot at once). A size of 0, as procfs says of every file,
    // reads on to the end.
    let first = match meta.size {
        0 => 4096,
        n => n + 1,
    }
    .min(limit + 1);
    let mut buf = vec![0u8; first as usize];
    let mut len = 0;
    loop {
        let n = f.read(&mut buf[len..]).map_err(Error::std("read"))?;
        len += n;
        if n == 0 || (len == meta.size as usize && n > 0) {
            break;
        }
        if len == buf.len() {
            if len as u64 > limit {
                return Ok((meta, None));
            }
            buf.resize(len * 2, 0);
        }
    }
    buf.truncate(len);
    Ok((meta, Some(buf)))
}

/// What a listing's `d_type` says an entry is.
fn kind_of_type(t: nix::dir::Type) -> Kind {
    use nix::dir::Type as T;
    match t {
        T::File => Kind::File,
        T::Directory => Kind::Dir,
        T::Symlink => Kind::Symlink,
        T::Fifo => Kind::Fifo,
        T::Socket => Kind::Socket,
        T::CharacterDevice | T::BlockDevice => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Links resolve with the held root as `/`: an absolute target, `..`
    /// past the root, a link on the way, a loop.
    #[test]
    fn resolve_in_root_never_leaves_the_root() {
        let t = tempfile::tempdir().unwrap();
        let p = |n: &str| t.path().join(n);
        for d in ["root", "root/etc", "root/vol", "root/vol/a", "root/vol/b"] {
            std::fs::create_dir(p(d)).unwrap();
        }
        std::fs::write(p("root/etc/key"), b"inside").unwrap();
        std::fs::write(p("root/vol/a/SOUL.md"), b"alice").unwrap();
        let link = |target: &str, at: &str| std::os::unix::fs::symlink(target, p(at)).unwrap();
        link("/etc/key", "root/vol/b/abs");
        link("../../../../../../etc/key", "root/vol/b/up");
        link("/vol/a", "root/vol/a-link");
        link("/vol/a-link/SOUL.md", "root/vol/b/SOUL.md");
        link("loop", "root/vol/b/loop");
        let root = Dir::open_path(&p("root")).unwrap();
        let b = Dir::open_path(&p("root/vol/b")).unwrap();
        let read = |name: &str| b.read_file_meta_following(&root, OsStr::new(name), 100, u64::MAX);
        assert_eq!(read("abs").unwrap().1.unwrap(), b"inside");
        assert_eq!(read("up").unwrap().1.unwrap(), b"inside");
        assert_eq!(read("SOUL.md").unwrap().1.unwrap(), b"alice");
        assert!(super::super::Os::Loop.is(&read("loop").unwrap_err()));
        assert_eq!(
            b.stat_following(&root, OsStr::new("abs")).unwrap().kind,
            Kind::File
        );
    }

    /// Around the edges of a `getdents64` buffer (names of 200 bytes: 73
    /// records in 16 KiB, 146 in glibc's 32 KiB) and past them, every entry
    /// is listed, and listed again alike.
    #[test]
    fn one_fill_listings_are_whole() {
        let at = std::path::Path::new("/dev/shm");
        let t = if at.is_dir() {
            tempfile::tempdir_in(at).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        for n in [
            0usize, 1, 60, 70, 71, 72, 73, 74, 75, 80, 146, 147, 148, 400,
        ] {
            let p = t.path().join(n.to_string());
            std::fs::create_dir(&p).unwrap();
            for i in 0..n {
                std::fs::write(p.join(format!("{i:0200}")), b"").unwrap();
            }
            let d = Dir::open_path(&p).unwrap();
            d.meta().unwrap();
            let names = d.entries().unwrap();
            assert_eq!(names.len(), n, "{n} entries");
            assert_eq!(d.entries().unwrap(), names, "listed again");
        }
    }
}
