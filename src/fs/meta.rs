//! What an observed entry is: its kind and attributes from `lstat`,
//! never followed.

use nix::sys::stat::{FileStat, SFlag};

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
