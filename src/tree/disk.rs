//! Describing a directory on disk: [`Describer`] collects entries (one at a
//! time, or whole subtrees walked from held fds with the observation's bounds
//! (`disk/walker.rs`): never following a symlink, never entering another file
//! system) and turns them into a canonical
//! [`Description`]. Hard links get their identity symbolically: the first
//! name in path order is a `file` with `links`, later names are `hardlink`s
//! to it. Nothing here writes.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

mod walker;

use super::{Content, Description, Entry, INLINE_LIMIT, Node, Perms, is_runtime_path, sha256_hex};
use crate::fs::{Dir, Kind, Meta};
use std::ffi::OsStr;
use walker::Walker;

/// Something that could not be described.
#[derive(Debug, thiserror::Error)]
#[error("unable to {op} {path}: {error}")]
pub struct DescribeError {
    pub op: &'static str,
    /// Container path (relative to the root, shown with a leading `/`).
    pub path: String,
    pub error: Why,
}

/// Why an entry could not be described.
#[derive(Debug, thiserror::Error)]
pub enum Why {
    /// Met through a held directory fd.
    #[error(transparent)]
    Fs(#[from] crate::fs::Error),
    /// Met by a std call on the entry's path (a device, a root's listing).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Not what was listed any more, or not a name a description holds.
    #[error("{0}")]
    Said(&'static str),
}

impl From<&'static str> for Why {
    fn from(s: &'static str) -> Why {
        Why::Said(s)
    }
}

/// One collected entry with the identity needed to spot hard links.
struct Found {
    pub(super) node: Node,
    /// (dev, ino, nlink) of a regular file.
    pub(super) inode: Option<(u64, u64, u64)>,
}

/// A test's action at a directory [`Describer::entry`] has entered.
#[cfg(test)]
pub(super) type Hook = Box<dyn FnMut(&str)>;

/// Collects entries below `root` (which is the container's `/`).
pub struct Describer {
    root: PathBuf,
    /// Keyed by the path with `/` as NUL, which sorts as components do
    /// and costs no more than the path.
    found: BTreeMap<String, Found>,
    pub errors: Vec<DescribeError>,
    /// Trees described only up to the walk's bound: what to say about each.
    pub cut: Vec<String>,
    /// Set while describing with the user's effective ids ([`Describer::as_user`]).
    acting: bool,
    /// The root, opened once: every entry is reached from it by fd.
    root_dir: crate::fs::Result<Dir>,
    /// Called with each directory [`Describer::entry`] has entered (tests
    /// swap it for a symlink there).
    #[cfg(test)]
    pub(super) hook: Option<Hook>,
    /// Describe a regular file that others cannot read by its digest only,
    /// whatever its size (the image's definition trees: a description
    /// never holds a root-only file).
    pub private_by_digest: bool,
}

impl Describer {
    pub fn new(root: &Path) -> Self {
        Describer {
            root: root.to_path_buf(),
            found: BTreeMap::new(),
            errors: Vec::new(),
            cut: Vec::new(),
            acting: false,
            root_dir: Dir::open_path(root),
            #[cfg(test)]
            hook: None,
            private_by_digest: false,
        }
    }

    /// The directory described as the container's `/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn real(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    pub(super) fn error(&mut self, op: &'static str, rel: &str, error: impl Into<Why>) {
        self.errors.push(DescribeError {
            op,
            path: format!("/{rel}"),
            error: error.into(),
        });
    }

    /// Describe the entry at `rel` and the directories above it; returns its
    /// metadata, `None` when it (or a parent) does not exist. Each step is
    /// an `fstatat` or `openat` from the directory held before it, never
    /// following a symlink: a directory swapped for a link meanwhile is
    /// never crossed.
    pub fn entry(&mut self, rel: &str) -> Option<Meta> {
        let mut dir = match self.root_dir() {
            Ok(d) => d,
            Err(e) => {
                self.error("read directory", "", e);
                return None;
            }
        };
        let parts: Vec<&str> = rel.split('/').collect();
        let mut prefix = String::new();
        for (i, part) in parts.iter().enumerate() {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            let name = OsStr::new(part);
            let md = match dir.stat(name) {
                Ok(md) => md,
                Err(e) => return self.missing("stat", &prefix, e),
            };
            if !self.found.contains_key(&key(&prefix)) {
                self.add_at(&dir, name, &prefix, &md, false);
            }
            let last = i + 1 == parts.len();
            if last || md.kind != Kind::Dir {
                return last.then_some(md);
            }
            dir = match dir.open_dir(name) {
                Ok(d) => d,
                Err(e) => return self.missing("read directory", &prefix, e),
            };
            #[cfg(test)]
            if let Some(hook) = self.hook.as_mut() {
                hook(&prefix);
            }
        }
        None
    }

    /// `None` for an entry that is not there or, acting as the user, that
    /// the user cannot reach; any other failure is an error.
    fn missing<T>(&mut self, op: &'static str, rel: &str, e: crate::fs::Error) -> Option<T> {
        let absent = crate::fs::Os::NotFound.is(&e) || crate::fs::Os::NotADir.is(&e);
        let denied = self.acting && e.permission_denied();
        if !absent && !denied {
            self.error(op, rel, e);
        }
        None
    }

    /// The root, held open since the describer was made.
    fn root_dir(&self) -> crate::fs::Result<Dir> {
        match &self.root_dir {
            Ok(d) => d.try_clone(),
            Err(e) => Err(e.clone()),
        }
    }

    /// The directory `rel` below the root, opened one component at a time
    /// from the held root, never through a symlink.
    pub fn open_dir(&self, rel: &str) -> crate::fs::Result<Dir> {
        self.root_dir()?.open_beneath(Path::new(rel))
    }

    /// The target of the symlink at `rel`, read from its directory opened
    /// from the held root, never through a symlink on the way.
    pub fn read_link(&self, rel: &str) -> crate::fs::Result<PathBuf> {
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let dir = self.open_dir(parent)?;
        Ok(PathBuf::from(dir.read_link(OsStr::new(name))?))
    }

    /// Describe the child `name` of `dir` (at `rel`), met by
    /// [`Describer::entry`] or a walk: its content and link target read
    /// from `dir`, not by path. `mount`: a directory on another file system.
    pub(super) fn add_at(&mut self, dir: &Dir, name: &OsStr, rel: &str, m: &Meta, mount: bool) {
        let perms = Perms {
            uid: m.uid,
            gid: m.gid,
            mode: m.mode,
        };
        let mut inode = None;
        let node = match m.kind {
            Kind::Dir => Node::Dir { perms, mount },
            Kind::File if is_runtime_path(rel) => Node::Runtime,
            Kind::File => {
                let Some(content) = self.content_at(dir, name, rel, m) else {
                    return;
                };
                if m.nlink > 1 {
                    inode = Some((m.dev, m.ino, m.nlink));
                }
                Node::File {
                    perms,
                    content,
                    links: None,
                }
            }
            Kind::Symlink => match dir.read_link(name) {
                Ok(t) => Node::Symlink {
                    uid: m.uid,
                    gid: m.gid,
                    target: t.to_string_lossy().into_owned(),
                },
                Err(e) => return self.error("read link", rel, e),
            },
            Kind::Fifo => Node::Fifo { perms },
            Kind::Socket => Node::Socket { perms },
            // A device (the user cannot make one): which kind, by path.
            Kind::Other => {
                return match std::fs::symlink_metadata(self.real(rel)) {
                    Ok(md) => self.add(rel, &md, false),
                    Err(e) => self.error("stat", rel, e),
                };
            }
        };
        self.found.insert(key(rel), Found { node, inode });
    }

    /// A regular file's content, opened from its directory: never through
    /// a symlink, never blocking (a FIFO swapped in opens at once and is
    /// refused), the same file that was listed.
    fn content_at(&mut self, dir: &Dir, name: &OsStr, rel: &str, m: &Meta) -> Option<Content> {
        match dir.open_child(name) {
            Ok((now, f)) if (now.kind, now.dev, now.ino) == (m.kind, m.dev, m.ino) => {
                self.read_content(rel, f)
            }
            Ok(_) => {
                self.error("read", rel, "changed while being described");
                None
            }
            Err(e) if crate::fs::Os::NotFound.is(&e) => None,
            Err(e) if self.acting && e.permission_denied() => Some(Content::Bytes(Vec::new())),
            Err(e) => {
                self.error("read", rel, e);
                None
            }
        }
    }

    /// Run `f` with the effective ids `user` (when running as root), as the
    /// observation reads the volume: what the user cannot reach is not
    /// described, and a file the user cannot read is described by owner and
    /// mode with no content, so that a link the user planted never copies a
    /// root-only file into a description.
    pub fn as_user(&mut self, user: (u32, u32), f: impl FnOnce(&mut Self)) {
        if crate::fs::euid() != 0 {
            return f(self);
        }
        self.acting = true;
        let r = crate::fs::with_effective_ids(user.0, user.1, || {
            f(self);
            Ok::<(), crate::fs::Error>(())
        });
        self.acting = false;
        if let Err(e) = r {
            self.error("act as the user for", "", e);
        }
    }

    /// Describe `rel`, the directories above it and, when it is a
    /// directory, everything below it on the same file system, walked as
    /// the observation walks (see [`Walker`]).
    pub fn subtree(&mut self, rel: &str) {
        let Some(md) = self.entry(rel) else { return };
        if md.kind != Kind::Dir {
            return;
        }
        let top = self.open_dir(rel);
        let top = match top.and_then(|d| Ok((d.meta()?, d))) {
            Ok(x) => x,
            Err(e) => return self.error("read directory", rel, e),
        };
        if let Some(w) = Walker::new(self, rel, top) {
            w.run();
        }
    }

    pub(super) fn add(&mut self, rel: &str, md: &std::fs::Metadata, mount: bool) {
        let perms = Perms {
            uid: md.uid(),
            gid: md.gid(),
            mode: md.mode() & 0o7777,
        };
        let ft = md.file_type();
        let mut inode = None;
        let node = if ft.is_dir() {
            Node::Dir { perms, mount }
        } else if ft.is_file() && is_runtime_path(rel) {
            Node::Runtime
        } else if ft.is_file() {
            let Some(content) = self.content(rel, md) else {
                return;
            };
            if md.nlink() > 1 {
                inode = Some((md.dev(), md.ino(), md.nlink()));
            }
            Node::File {
                perms,
                content,
                links: None,
            }
        } else if ft.is_symlink() {
            match std::fs::read_link(self.real(rel)) {
                Ok(t) => Node::Symlink {
                    uid: perms.uid,
                    gid: perms.gid,
                    target: t.to_string_lossy().into_owned(),
                },
                Err(e) => return self.error("read link", rel, e),
            }
        } else if ft.is_fifo() {
            Node::Fifo { perms }
        } else if ft.is_socket() {
            Node::Socket { perms }
        } else if ft.is_char_device() {
            Node::CharDevice { perms }
        } else {
            Node::BlockDevice { perms }
        };
        self.found.insert(key(rel), Found { node, inode });
    }

    /// A regular file's content: never through a symlink, never blocking
    /// (a FIFO swapped in opens at once and is refused), the same file
    /// that was listed.
    fn content(&mut self, rel: &str, md: &std::fs::Metadata) -> Option<Content> {
        let opened = crate::fs::input::open_nofollow(&self.real(rel));
        let f = match opened {
            Ok(f) => f,
            Err(e) if crate::fs::Os::NotFound.is(&e) => return None,
            Err(e) if self.acting && e.permission_denied() => {
                return Some(Content::Bytes(Vec::new()));
            }
            Err(e) => {
                self.error("read", rel, e);
                return None;
            }
        };
        match f.metadata() {
            Ok(now) if now.is_file() && now.ino() == md.ino() && now.dev() == md.dev() => {}
            Ok(_) => {
                self.error("read", rel, "changed while being described");
                return None;
            }
            Err(e) => {
                self.error("read", rel, e);
                return None;
            }
        }
        self.read_content(rel, f)
    }

    /// The content of an opened regular file: its bytes, or above
    /// [`INLINE_LIMIT`] its size and digest.
    pub(super) fn read_content(&mut self, rel: &str, mut f: std::fs::File) -> Option<Content> {
        let mut small = Vec::new();
        if let Err(e) = (&mut f).take(INLINE_LIMIT + 1).read_to_end(&mut small) {
            self.error("read", rel, e);
            return None;
        }
        // Private unless its mode says others may read it.
        let private = self.private_by_digest && !f.metadata().is_ok_and(|m| m.mode() & 0o004 != 0);
        if small.len() as u64 <= INLINE_LIMIT && !private {
            return Some(Content::Bytes(small));
        }
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(&small);
        let mut size = small.len() as u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    size += n as u64;
                }
                Err(e) => {
                    self.error("read", rel, e);
                    return None;
                }
            }
        }
        let sha256 = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Some(Content::Digest { size, sha256 })
    }

    /// Add an entry that is not read from this root (a configuration file
    /// given outside it), creating missing parents as `0:0 0755` dirs.
    pub fn insert(&mut self, rel: &str, node: Node) {
        let mut prefix = String::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if !self.found.contains_key(&key(&prefix)) && self.entry(&prefix).is_none() {
                let perms = Perms {
                    uid: 0,
                    gid: 0,
                    mode: 0o755,
                };
                let node = Node::Dir {
                    perms,
                    mount: false,
                };
                self.found.insert(key(&prefix), Found { node, inode: None });
            }
        }
        self.found.insert(key(rel), Found { node, inode: None });
    }

    /// The canonical description of what was collected.
    pub fn finish(self) -> Description {
        let mut first: HashMap<(u64, u64), String> = HashMap::new();
        let entries = self
            .found
            .into_iter()
            .map(|(k, f)| {
                let path = k.replace('\0', "/");
                let node = match (f.node, f.inode) {
                    (Node::File { perms, content, .. }, Some((dev, ino, nlink))) => {
                        match first.get(&(dev, ino)) {
                            Some(target) => Node::Hardlink {
                                target: target.clone(),
                            },
                            None => {
                                first.insert((dev, ino), path.clone());
                                Node::File {
                                    perms,
                                    content,
                                    links: Some(nlink),
                                }
                            }
                        }
                    }
                    (node, _) => node,
                };
                Entry { path, node }
            })
            .collect();
        Description { entries }
    }
}

fn key(rel: &str) -> String {
    rel.replace('/', "\0")
}

/// Describe everything below `root` (the root itself excluded).
pub fn describe_all(root: &Path) -> (Description, Vec<DescribeError>) {
    let mut d = Describer::new(root);
    let names = match std::fs::read_dir(root) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect::<Vec<_>>(),
        Err(e) => {
            d.error("read directory", "", e);
            Vec::new()
        }
    };
    for name in names {
        d.subtree(&name);
    }
    let errors = std::mem::take(&mut d.errors);
    (d.finish(), errors)
}

/// Regular-file bytes as a description records them (for tests and the
/// harness, which mask parts of files before comparing).
pub fn content_of(bytes: &[u8]) -> Content {
    if bytes.len() as u64 <= INLINE_LIMIT {
        Content::Bytes(bytes.to_vec())
    } else {
        Content::Digest {
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile directory the user swaps for a link to a host directory
    /// while the describer is on its way into it: the held fds never cross
    /// the link, so the host's file is never described.
    #[test]
    fn a_directory_swapped_for_a_link_midway_is_not_crossed() {
        let root = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("SOUL.md"), "the host's secret\n").unwrap();
        let profiles = root.path().join("opt/data/profiles");
        std::fs::create_dir_all(profiles.join("bob")).unwrap();
        std::fs::write(profiles.join("bob/SOUL.md"), "bob's own\n").unwrap();
        let mut d = Describer::new(root.path());
        let (bob, hostdir) = (profiles.join("bob"), host.path().to_path_buf());
        d.hook = Some(Box::new(move |rel| {
            if rel == "opt/data/profiles/bob" {
                std::fs::rename(&bob, bob.with_file_name("bob.old")).unwrap();
                std::os::unix::fs::symlink(&hostdir, &bob).unwrap();
            }
        }));
        d.entry("opt/data/profiles/bob/SOUL.md");
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        let text = crate::tree::dump(&d.finish());
        assert!(
            !text.contains("host's secret"),
            "the host's file was described:\n{text}"
        );
        assert!(
            text.contains("opt/data/profiles/bob/SOUL.md") && text.contains("bob's own"),
            "{text}"
        );
    }
}
