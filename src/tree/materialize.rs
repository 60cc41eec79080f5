//! Building a described tree on disk (`reconcile materialize`), as root:
//! owners, modes (setgid and sticky included), FIFOs, sockets, symlinks
//! and hard links, so that describing it gives the description back.
//!
//! Two passes through held directory fds. First everything is created
//! root-only (directories 0700, files 0600), parents before children; then
//! owners and modes are set children before parents, so a directory is
//! handed to its owner only once everything below it is final: nobody can
//! swap an entry under us while we still work on it. chmod comes after
//! chown, which clears setuid/setgid.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::{Content, Description, Node, Perms};
use crate::fs::{self, Dir};

/// Why a description could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    #[error("{dir}: not empty; materialize builds into an empty directory only")]
    NotEmpty { dir: PathBuf },
    #[error("unable to {op} {path}: {error}")]
    Fs {
        op: &'static str,
        path: PathBuf,
        error: fs::Error,
    },
    #[error("{path}: {reason}")]
    Unbuildable { path: String, reason: &'static str },
    #[error(
        "{path}: links: {links}, but the description gives it {names} (the file and its \
         hardlink entries); materialize builds only the names described"
    )]
    Links {
        path: String,
        links: u64,
        names: String,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl Fn(fs::Error) -> MaterializeError + 'a {
    move |error| MaterializeError::Fs {
        op,
        path: path.to_path_buf(),
        error,
    }
}

/// Build `d` in `dir`, which must be empty or missing (then created 0755).
pub fn materialize(d: &Description, dir: &Path) -> Result<(), MaterializeError> {
    check_buildable(d)?;
    fs::mkdir_path(dir, 0o755).map_err(io("create", dir))?;
    let root = Dir::open_path(dir).map_err(io("open", dir))?;
    if !root.entries().map_err(io("read", dir))?.is_empty() {
        return Err(MaterializeError::NotEmpty {
            dir: dir.to_path_buf(),
        });
    }
    let mut dirs = Held::new(&root);
    for e in &d.entries {
        create(&mut dirs, dir, &e.path, &e.node)?;
    }
    let mut dirs = Held::new(&root);
    for e in d.entries.iter().rev() {
        let perms = match &e.node {
            Node::Dir { perms, .. }
            | Node::File { perms, .. }
            | Node::Fifo { perms }
            | Node::Socket { perms } => *perms,
            Node::Symlink { uid, gid, .. } => Perms {
                uid: *uid,
                gid: *gid,
                mode: 0,
            },
            Node::Runtime => Perms {
                uid: 0,
                gid: 0,
                mode: 0o644,
            },
            Node::Hardlink { .. } | Node::CharDevice { .. } | Node::BlockDevice { .. } => continue,
        };
        let symlink = matches!(e.node, Node::Symlink { .. });
        finish(&mut dirs, dir, &e.path, perms, symlink)?;
    }
    Ok(())
}

/// What cannot be built is refused before anything is created: besides
/// what `materialize` never makes, a `links: N` file whose hardlink entries
/// do not make up N names (a snapshot describes other names outside its
/// root by the count alone; built, the count would differ).
fn check_buildable(d: &Description) -> Result<(), MaterializeError> {
    let mut names: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    for e in &d.entries {
        if let Node::Hardlink { target } = &e.node {
            *names.entry(target.as_str()).or_insert(1) += 1;
        }
    }
    for e in &d.entries {
        if let Node::File { links: Some(n), .. } = e.node {
            let have = names.get(e.path.as_str()).copied().unwrap_or(1);
            if have != n {
                return Err(MaterializeError::Links {
                    path: format!("/{}", e.path),
                    links: n,
                    names: if have == 1 {
                        "1 name".into()
                    } else {
                        format!("{have} names")
                    },
                });
            }
        }
    }
    for e in &d.entries {
        let reason = match &e.node {
            Node::File {
                content: Content::Digest { .. },
                ..
            } => "described by size and digest only; its content is needed to build it",
            Node::CharDevice { .. } | Node::BlockDevice { .. } => {
                "a device node; materialize does not create devices"
            }
            Node::Dir { mount: true, .. } => "a mount point; materialize does not mount",
            _ => continue,
        };
        return Err(MaterializeError::Unbuildable {
            path: format!("/{}", e.path),
            reason,
        });
    }
    Ok(())
}

/// The most directories [`Held`] keeps open (far below the usual limit of
/// 1024 descriptors).
const HELD_MAX: usize = 256;

/// The directories of the path last worked in, held open from the root
/// down: the entries come in path order (and in reverse for the second
/// pass), so an entry's parent is the last one's or one level below, and
/// a description of thousands of levels opens each directory about once
/// instead of reopening every parent from the root.
struct Held<'r> {
    root: &'r Dir,
    /// `(relative path, directory)`, each the parent of the next.
    stack: Vec<(String, Dir)>,
}

impl<'r> Held<'r> {
    fn new(root: &'r Dir) -> Self {
        Held {
            root,
            stack: Vec::new(),
        }
    }

    /// The parent directory of `rel` opened beneath the root, and the name.
    fn parent<'a>(&mut self, rel: &'a str) -> fs::Result<(&Dir, &'a OsStr)> {
        let Some((p, name)) = rel.rsplit_once('/') else {
            return Ok((self.root, OsStr::new(rel)));
        };
        let within =
            |top: &str| p == top || p.strip_prefix(top).is_some_and(|r| r.starts_with('/'));
        while self.stack.last().is_some_and(|(top, _)| !within(top)) {
            self.stack.pop();
        }
        let (mut at, mut rest) = match self.stack.last() {
            Some((top, _)) => (top.len() + 1, &p[(top.len() + 1).min(p.len())..]),
            None => (0, p),
        };
        while !rest.is_empty() {
            let (c, more) = rest.split_once('/').unwrap_or((rest, ""));
            let next = match self.stack.last() {
                Some((_, d)) => d.open_beneath(Path::new(c))?,
                None => self.root.open_beneath(Path::new(c))?,
            };
            at += c.len();
            if self.stack.len() == HELD_MAX {
                self.stack.remove(0);
            }
            self.stack.push((p[..at].to_string(), next));
            at += 1;
            rest = more;
        }
        let dir = self.stack.last().map_or(self.root, |(_, d)| d);
        Ok((dir, OsStr::new(name)))
    }
}

/// The parent directory of `rel` opened beneath the root, and the name.
fn parent<'a>(root: &Dir, rel: &'a str) -> fs::Result<(Dir, &'a OsStr)> {
    let (dir, name) = match rel.rsplit_once('/') {
        Some((p, n)) => (root.open_beneath(Path::new(p))?, n),
        None => (root.try_clone()?, rel),
    };
    Ok((dir, OsStr::new(name)))
}

fn create(
    dirs: &mut Held<'_>,
    base: &Path,
    rel: &str,
    node: &Node,
) -> Result<(), MaterializeError> {
    let shown = base.join(rel);
    let root = dirs.root;
    let (dir, name) = dirs.parent(rel).map_err(io("open the parent of", &shown))?;
    let r = match node {
        Node::Dir { .. } => dir.mkdir(name, 0o700).map(drop),
        Node::File {
            content: Content::Bytes(b),
            ..
        } => dir.create_file(name, b, 0o600),
        Node::Runtime => dir.create_file(name, b"", 0o600),
        Node::Fifo { .. } => dir.mkfifo(name, 0o600),
        Node::Socket { .. } => dir.mksocket(name, 0o600),
        Node::Symlink { target, .. } => dir.symlink(OsStr::new(target), name),
        Node::Hardlink { target } => {
            let (from, from_name) = parent(root, target).map_err(io("open", &base.join(target)))?;
            dir.hard_link(&from, from_name, name)
        }
        // Refused by check_buildable.
        Node::File { .. } | Node::CharDevice { .. } | Node::BlockDevice { .. } => Ok(()),
    };
    r.map_err(io("create", &shown))
}

fn finish(
    dirs: &mut Held<'_>,
    base: &Path,
    rel: &str,
    p: Perms,
    symlink: bool,
) -> Result<(), MaterializeError> {
    let shown = base.join(rel);
    let (dir, name) = dirs.parent(rel).map_err(io("open the parent of", &shown))?;
    let meta = dir.stat(name).map_err(io("stat", &shown))?;
    dir.set_owner(name, &meta, p.uid, p.gid)
        .map_err(io("chown", &shown))?;
    if !symlink {
        dir.set_mode(name, &meta, p.mode)
            .map_err(io("chmod", &shown))?;
    }
    Ok(())
}
