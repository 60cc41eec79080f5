//! Tree descriptions (docs/tree-format.md): the tree reconcile observes, written
//! down as data and read back.
//!
//! A description is a versioned YAML document (`format: s6-reconcile-tree`,
//! `version: 1`) holding a list of entries, paths relative to the container's
//! `/`, parents before children. Each entry has a type (`dir`, `file`,
//! `fifo`, `socket`, `symlink`, `hardlink`, `chardev`, `blockdev`), an owner
//! and a mode (setgid and sticky included), a symlink's target, and a
//! regular file's content: inline when small, a digest above
//! [`INLINE_LIMIT`]. Identity is symbolic: the second name of a hard-linked
//! file is a `hardlink` entry naming the first. s6-supervise's runtime files
//! (`supervise/lock`, `status`, ...) are described by type only: root
//! rewrites them all the time and reconcile never looks inside them.
//!
//! [`parse`] reads a description (errors name file, line and column),
//! [`dump`] writes one canonically (sorted, every field explicit, no
//! timestamps, no inode numbers), [`disk`] describes a directory on disk
//! (from held fds with the observation's bounds, never following a symlink,
//! never crossing a mount), and
//! [`materialize`] builds a description on disk.

pub mod disk;
pub mod dump;
pub mod inputs;
pub mod materialize;
pub mod parse;
pub mod snapshot;
pub mod source;

pub use dump::dump;
pub use parse::{ParseError, ReadError, parse, read_description};

/// The `format:` of a description.
pub const FORMAT: &str = "s6-reconcile-tree";
/// The only `version:` this build reads and writes.
pub const VERSION: u32 = 1;
/// Regular files up to this size are described with their content; larger
/// ones by size and SHA-256 only.
pub const INLINE_LIMIT: u64 = 64 * 1024;

/// Owner and permission bits of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perms {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits including setuid/setgid/sticky (at most `0o7777`).
    pub mode: u32,
}

/// A regular file's content, as far as the description records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// Small: the bytes themselves (written as text when UTF-8, else base64).
    Bytes(Vec<u8>),
    /// Above [`INLINE_LIMIT`]: only the size and the SHA-256 (lower-case hex).
    Digest { size: u64, sha256: String },
}

impl Content {
    pub fn size(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::Digest { size, .. } => *size,
        }
    }
}

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Dir {
        perms: Perms,
        /// The root of another file system: described, never entered.
        mount: bool,
    },
    File {
        perms: Perms,
        content: Content,
        /// The link count, written only when more than one.
        links: Option<u64>,
    },
    Fifo {
        perms: Perms,
    },
    Socket {
        perms: Perms,
    },
    CharDevice {
        perms: Perms,
    },
    BlockDevice {
        perms: Perms,
    },
    /// A symlink: its owner and its target, verbatim (never followed).
    Symlink {
        uid: u32,
        gid: u32,
        target: String,
    },
    /// Another name for the regular file described at `target` (an earlier
    /// entry): the same inode.
    Hardlink {
        target: String,
    },
    /// One of s6-supervise's runtime files (`supervise/lock`, `status`, ...):
    /// a regular file, described by type only.
    Runtime,
}

impl Node {
    /// The `type:` as the format spells it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Node::Dir { .. } => "dir",
            Node::File { .. } | Node::Runtime => "file",
            Node::Fifo { .. } => "fifo",
            Node::Socket { .. } => "socket",
            Node::CharDevice { .. } => "chardev",
            Node::BlockDevice { .. } => "blockdev",
            Node::Symlink { .. } => "symlink",
            Node::Hardlink { .. } => "hardlink",
        }
    }
}

/// One entry: a path relative to the container's `/` (no `.`, `..` or empty
/// component, `/`-separated) and what is there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub node: Node,
}

/// A whole description: entries in canonical order (bytewise by path
/// components, so parents come before children).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Description {
    pub entries: Vec<Entry>,
}

impl Description {
    /// Put the entries in canonical order: by path, component by component.
    pub fn sort(&mut self) {
        self.entries
            .sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
    }

    /// The entry at `path`, if described.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.path == path)
    }
}

/// Whether `path` (relative to the root) names one of s6-supervise's
/// runtime files: a name s6-supervise rewrites, directly in a `supervise/`.
pub fn is_runtime_path(path: &str) -> bool {
    let mut parts = path.rsplit('/');
    match (parts.next(), parts.next()) {
        (Some(name), Some(dir)) => {
            dir == crate::s6::layout::SUPERVISE
                && crate::s6::layout::is_runtime_name(name.as_bytes())
        }
        _ => false,
    }
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests;
