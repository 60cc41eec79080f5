//! Describing a directory on disk: [`Describer`] collects entries (one at a
//! time, or whole subtrees walked with walkdir: never following a symlink,
//! never entering another file system) and turns them into a canonical
//! [`Description`]. Hard links get their identity symbolically: the first
//! name in path order is a `file` with `links`, later names are `hardlink`s
//! to it. Nothing here writes.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use super::{Content, Description, Entry, INLINE_LIMIT, Node, Perms, is_runtime_path, sha256_hex};

/// Something that could not be described.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unable to {op} {path}: {error}")]
pub struct DescribeError {
    pub op: &'static str,
    /// Container path (relative to the root, shown with a leading `/`).
    pub path: String,
    pub error: String,
}

/// One collected entry with the identity needed to spot hard links.
struct Found {
    node: Node,
    /// (dev, ino, nlink) of a regular file.
    inode: Option<(u64, u64, u64)>,
}

/// Collects entries below `root` (which is the container's `/`).
pub struct Describer {
    root: PathBuf,
    found: BTreeMap<Vec<String>, Found>,
    pub errors: Vec<DescribeError>,
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

    fn error(&mut self, op: &'static str, rel: &str, error: impl ToString) {
        self.errors.push(DescribeError {
            op,
            path: format!("/{rel}"),
            error: error.to_string(),
        });
    }

    /// Describe the entry at `rel` and the directories above it; returns its
    /// metadata, `None` when it (or a parent) does not exist.
    pub fn entry(&mut self, rel: &str) -> Option<std::fs::Metadata> {
        let mut prefix = String::new();
        let mut last = None;
        for part in rel.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            let md = match std::fs::symlink_metadata(self.real(&prefix)) {
                Ok(md) => md,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                    return None;
                }
                Err(e) => {
                    self.error("stat", &prefix, e);
                    return None;
                }
            };
            if !self.found.contains_key(&key(&prefix)) {
                self.add(&prefix, &md, false);
            }
            let is_dir = md.is_dir();
            last = Some(md);
            if !is_dir {
                break;
            }
        }
        last.filter(|_| prefix.len() == rel.len())
    }

    /// Describe `rel`, the directories above it and, when it is a
    /// directory, everything below it on the same file system.
    pub fn subtree(&mut self, rel: &str) {
        let Some(md) = self.entry(rel) else { return };
        if !md.is_dir() {
            return;
        }
        let start = self.real(rel);
        let dev = md.dev();
        let walker = WalkDir::new(&start)
            .min_depth(1)
            .follow_links(false)
            .follow_root_links(false)
            .same_file_system(true)
            .sort_by_file_name();
        for item in walker {
            let (sub, md) = match item.and_then(|e| Ok((e.path().to_path_buf(), e.metadata()?))) {
                Ok(x) => x,
                // Gone since it was listed (s6-supervise renames its
                // `status.new` over `status` all the time): not in the tree.
                Err(e)
                    if e.io_error()
                        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) =>
                {
                    continue;
                }
                Err(e) => {
                    let at = e
                        .path()
                        .and_then(|p| p.strip_prefix(&self.root).ok())
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_else(|| rel.to_string());
                    let msg = e
                        .io_error()
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| e.to_string());
                    self.error("read directory", &at, msg);
                    continue;
                }
            };
            let Ok(below) = sub.strip_prefix(&self.root) else {
                continue;
            };
            let Some(path) = below.to_str() else {
                self.error(
                    "describe",
                    &below.to_string_lossy(),
                    "name is not valid UTF-8; not described",
                );
                continue;
            };
            // walkdir lists a mount point but does not enter it.
            let mount = md.is_dir() && md.dev() != dev;
            self.add(path, &md, mount);
        }
    }

    fn add(&mut self, rel: &str, md: &std::fs::Metadata, mount: bool) {
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
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(self.real(rel));
        let mut f = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
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
        let mut small = Vec::new();
        if let Err(e) = (&mut f).take(INLINE_LIMIT + 1).read_to_end(&mut small) {
            self.error("read", rel, e);
            return None;
        }
        let private = self.private_by_digest && md.mode() & 0o004 == 0;
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
                let path = k.join("/");
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

fn key(rel: &str) -> Vec<String> {
    rel.split('/').map(str::to_string).collect()
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
