//! A filesystem tree described as data, for fixture scenarios.
//!
//! Git cannot hold owners, modes or FIFOs, so a fixture's input tree is a YAML
//! list of entries (`tree.yaml`), parents before children, paths relative to
//! the root:
//!
//! ```yaml
//! - {path: "etc", type: dir, mode: "0755"}
//! - {path: "etc/passwd", type: file, mode: "0644", content: "root:x:0:0::/root:/bin/sh\n"}
//! - {path: "run/service/.s6-svscan/control", type: fifo, mode: "0600"}
//! - {path: "run/service/nginx", type: symlink, target: "/run/s6-rc/servicedirs/nginx"}
//! - {path: "srv/x/supervise/extra", type: hardlink, target: "etc/shadow"}
//! ```
//!
//! `uid`/`gid` default to 0, `mode` to 0755 for directories and 0644 for files
//! and FIFOs, `content` to empty. A symlink's `target` is a container path and
//! is written as is (nothing here or in the tool follows it); a hard link's
//! `target` is another entry of the tree. [`materialise`] builds such a tree and
//! [`dump`] describes a real one in the same format, canonically: sorted by
//! path, every owner and mode explicit, no timestamps or inode numbers.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

/// Regular files up to this size whose content is UTF-8 are dumped verbatim.
pub const MAX_INLINE_CONTENT: u64 = 4096;

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File {
        content: Content,
    },
    Fifo,
    Symlink {
        target: String,
    },
    /// Another name for the regular file at `target` (a path in the tree).
    Hardlink {
        target: String,
    },
    /// Found by [`dump`] only; cannot be materialised.
    Socket,
    CharDevice,
    BlockDevice,
}

/// A regular file's content as the format records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    Text(String),
    /// Too large or not UTF-8: only a digest (lower-case hex) and the size.
    Digest {
        sha256: String,
        size: u64,
    },
}

/// One entry of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky; meaningless (0) for
    /// symlinks and hard links.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The link count of a regular file, when it is more than one.
    pub links: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    path: String,
    #[serde(rename = "type")]
    kind: String,
    mode: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
    content: Option<String>,
    target: Option<String>,
    links: Option<u64>,
    sha256: Option<String>,
    size: Option<u64>,
}

/// Parse a tree description. Errors name the entry (by index and path).
pub fn parse(yaml: &str) -> Result<Vec<Entry>, String> {
    let raw: Vec<RawEntry> =
        serde_yaml::from_str(yaml).map_err(|e| format!("tree description: {e}"))?;
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| {
            let path = r.path.clone();
            from_raw(r).map_err(|e| format!("tree entry {} ({path}): {e}", i + 1))
        })
        .collect()
}

fn from_raw(r: RawEntry) -> Result<Entry, String> {
    check_relative(&r.path)?;
    let mode = match &r.mode {
        None => None,
        Some(s) => Some(parse_mode(s)?),
    };
    let forbid = |what: &str, present: bool| {
        if present {
            Err(format!("`{what}` does not apply to type {}", r.kind))
        } else {
            Ok(())
        }
    };
    let content_given = r.content.is_some() || r.sha256.is_some() || r.size.is_some();
    let (kind, default_mode) = match r.kind.as_str() {
        "dir" => {
            forbid("content", content_given)?;
            forbid("target", r.target.is_some())?;
            forbid("links", r.links.is_some())?;
            (Kind::Dir, 0o755)
        }
        "fifo" => {
            forbid("content", content_given)?;
            forbid("target", r.target.is_some())?;
            forbid("links", r.links.is_some())?;
            (Kind::Fifo, 0o644)
        }
        "file" => {
            forbid("target", r.target.is_some())?;
            let content = match (r.content, r.sha256, r.size) {
                (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                    return Err("give either `content` or `sha256`+`size`".into());
                }
                (Some(text), None, None) => Content::Text(text),
                (None, Some(sha256), Some(size)) => Content::Digest { sha256, size },
                (None, None, None) => Content::Text(String::new()),
                (None, _, _) => return Err("`sha256` and `size` go together".into()),
            };
            if r.links == Some(0) || r.links == Some(1) {
                return Err("`links` is only written when more than 1".into());
            }
            (Kind::File { content }, 0o644)
        }
        "symlink" | "hardlink" => {
            forbid("content", content_given)?;
            forbid("mode", mode.is_some())?;
            forbid("links", r.links.is_some())?;
            let target = r
                .target
                .ok_or_else(|| format!("type {} needs a `target`", r.kind))?;
            if r.kind == "symlink" {
                if target.is_empty() {
                    return Err("empty symlink target".into());
                }
                (Kind::Symlink { target }, 0)
            } else {
                forbid("uid", r.uid.is_some())?;
                forbid("gid", r.gid.is_some())?;
                check_relative(&target)?;
                (Kind::Hardlink { target }, 0)
            }
        }
        other => {
            return Err(format!(
                "unknown type {other:?} (dir, file, fifo, symlink, hardlink)"
            ));
        }
    };
    Ok(Entry {
        path: r.path,
        kind,
        mode: mode.unwrap_or(default_mode),
        uid: r.uid.unwrap_or(0),
        gid: r.gid.unwrap_or(0),
        links: r.links,
    })
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let ok = (3..=4).contains(&s.len()) && s.bytes().all(|b| (b'0'..=b'7').contains(&b));
    if !ok {
        return Err(format!(
            "mode {s:?}: want 3 or 4 octal digits as a string, e.g. \"0755\""
        ));
    }
    Ok(u32::from_str_radix(s, 8).expect("checked octal"))
}

fn check_relative(path: &str) -> Result<(), String> {
    let p = Path::new(path);
    let normal = p.components().all(|c| matches!(c, Component::Normal(_)));
    if path.is_empty() || !normal || path.ends_with('/') || path.contains("//") {
        return Err(format!(
            "path {path:?} must be relative, without `.`, `..` or empty components"
        ));
    }
    Ok(())
}

/// Build `entries` under `root` (an existing directory): each entry is
/// created, then chowned (lchown semantics), then chmodded — chmod last
/// because chown clears setuid/setgid bits. Parents must come before children.
pub fn materialise(root: &Path, entries: &[Entry]) -> Result<(), String> {
    let mut kinds: HashMap<&str, &Kind> = HashMap::new();
    for e in entries {
        let p = root.join(&e.path);
        if let Some(parent) = Path::new(&e.path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            let parent = parent.to_str().expect("paths are UTF-8");
            if !matches!(kinds.get(parent), Some(Kind::Dir)) {
                return Err(format!(
                    "{}: parent {parent} is not an earlier dir entry",
                    e.path
                ));
            }
        }
        if kinds.contains_key(e.path.as_str()) {
            return Err(format!("{}: listed twice", e.path));
        }
        let io = |op: &str, err: std::io::Error| format!("{}: {op}: {err}", e.path);
        match &e.kind {
            Kind::Dir => fs::create_dir(&p).map_err(|err| io("mkdir", err))?,
            Kind::File { content } => {
                let Content::Text(text) = content else {
                    return Err(format!(
                        "{}: a file given by digest cannot be materialised",
                        e.path
                    ));
                };
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&p)
                    .map_err(|err| io("create", err))?;
                f.write_all(text.as_bytes())
                    .map_err(|err| io("write", err))?;
            }
            Kind::Fifo => nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .map_err(|err| io("mkfifo", err.into()))?,
            Kind::Symlink { target } => {
                std::os::unix::fs::symlink(target, &p).map_err(|err| io("symlink", err))?
            }
            Kind::Hardlink { target } => {
                if !matches!(kinds.get(target.as_str()), Some(Kind::File { .. })) {
                    return Err(format!(
                        "{}: hard link target {target} is not an earlier file entry",
                        e.path
                    ));
                }
                fs::hard_link(root.join(target), &p).map_err(|err| io("link", err))?;
            }
            Kind::Socket | Kind::CharDevice | Kind::BlockDevice => {
                return Err(format!("{}: cannot materialise {:?}", e.path, e.kind));
            }
        }
        if !matches!(e.kind, Kind::Hardlink { .. }) {
            std::os::unix::fs::lchown(&p, Some(e.uid), Some(e.gid))
                .map_err(|err| io("lchown", err))?;
        }
        if matches!(e.kind, Kind::Dir | Kind::File { .. } | Kind::Fifo) {
            fs::set_permissions(&p, fs::Permissions::from_mode(e.mode))
                .map_err(|err| io("chmod", err))?;
        }
        kinds.insert(&e.path, &e.kind);
    }
    for e in entries {
        if let Some(want) = e.links {
            let got = fs::symlink_metadata(root.join(&e.path))
                .map_err(|err| format!("{}: lstat: {err}", e.path))?
                .nlink();
            if got != want {
                return Err(format!("{}: links: {want} declared, {got} built", e.path));
            }
        }
    }
    Ok(())
}

/// Parse `yaml` and materialise it under `root`.
pub fn materialise_yaml(root: &Path, yaml: &str) -> Result<(), String> {
    materialise(root, &parse(yaml)?)
}

/// Observe the tree under `root` (not `root` itself) without following
/// symlinks: entries in path order, parents first. The first name (in that
/// order) of a multiply-linked regular file is a `file` with `links`; later
/// names of the same inode are `hardlink`s to it.
pub fn scan(root: &Path) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    let mut seen: HashMap<(u64, u64), String> = HashMap::new();
    walk(root, PathBuf::new(), &mut out, &mut seen)?;
    Ok(out)
}

fn walk(
    root: &Path,
    rel: PathBuf,
    out: &mut Vec<Entry>,
    seen: &mut HashMap<(u64, u64), String>,
) -> Result<(), String> {
    let dir = root.join(&rel);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .map_err(|e| format!("{}: read_dir: {e}", dir.display()))?
        .map(|d| d.map(|d| d.file_name()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: read_dir: {e}", dir.display()))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let rel = rel.join(&name);
        let p = root.join(&rel);
        let md = fs::symlink_metadata(&p).map_err(|e| format!("{}: lstat: {e}", p.display()))?;
        let path = rel.to_string_lossy().into_owned();
        let ft = md.file_type();
        let mut entry = Entry {
            path: path.clone(),
            kind: Kind::Dir,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            links: None,
        };
        if ft.is_dir() {
            out.push(entry);
            walk(root, rel, out, seen)?;
            continue;
        }
        entry.kind = if ft.is_file() {
            if md.nlink() > 1 {
                if let Some(first) = seen.get(&(md.dev(), md.ino())) {
                    out.push(Entry {
                        path,
                        kind: Kind::Hardlink {
                            target: first.clone(),
                        },
                        mode: 0,
                        uid: 0,
                        gid: 0,
                        links: None,
                    });
                    continue;
                }
                seen.insert((md.dev(), md.ino()), path.clone());
                entry.links = Some(md.nlink());
            }
            let bytes = fs::read(&p).map_err(|e| format!("{}: read: {e}", p.display()))?;
            let content = match String::from_utf8(bytes) {
                Ok(text) if text.len() as u64 <= MAX_INLINE_CONTENT => Content::Text(text),
                Ok(text) => digest(text.as_bytes()),
                Err(e) => digest(e.as_bytes()),
            };
            Kind::File { content }
        } else if ft.is_symlink() {
            let target =
                fs::read_link(&p).map_err(|e| format!("{}: readlink: {e}", p.display()))?;
            entry.mode = 0;
            Kind::Symlink {
                target: target.to_string_lossy().into_owned(),
            }
        } else if ft.is_fifo() {
            Kind::Fifo
        } else if ft.is_socket() {
            Kind::Socket
        } else if ft.is_char_device() {
            Kind::CharDevice
        } else {
            Kind::BlockDevice
        };
        out.push(entry);
    }
    Ok(())
}

fn digest(bytes: &[u8]) -> Content {
    Content::Digest {
        sha256: sha256_hex(bytes),
        size: bytes.len() as u64,
    }
}

/// The canonical description of the tree under `root`, in the format
/// [`parse`] reads: one flow mapping per line, every field explicit.
pub fn dump(root: &Path) -> String {
    match scan(root) {
        Ok(entries) => render(&entries),
        Err(e) => panic!("dump {}: {e}", root.display()),
    }
}

/// Render entries in the canonical one-line-per-entry form.
pub fn render(entries: &[Entry]) -> String {
    let mut s = String::new();
    for e in entries {
        let _ = write!(s, "- {{path: {}, type: ", quote(&e.path));
        let owner = |s: &mut String| {
            let _ = write!(
                s,
                ", mode: \"{:04o}\", uid: {}, gid: {}",
                e.mode, e.uid, e.gid
            );
        };
        match &e.kind {
            Kind::Dir => {
                s.push_str("dir");
                owner(&mut s);
            }
            Kind::Fifo => {
                s.push_str("fifo");
                owner(&mut s);
            }
            Kind::Socket | Kind::CharDevice | Kind::BlockDevice => {
                s.push_str(match e.kind {
                    Kind::Socket => "socket",
                    Kind::CharDevice => "chardev",
                    _ => "blockdev",
                });
                owner(&mut s);
            }
            Kind::File { content } => {
                s.push_str("file");
                owner(&mut s);
                if let Some(n) = e.links {
                    let _ = write!(s, ", links: {n}");
                }
                match content {
                    Content::Text(t) => {
                        let _ = write!(s, ", content: {}", quote(t));
                    }
                    Content::Digest { sha256, size } => {
                        let _ = write!(s, ", sha256: \"{sha256}\", size: {size}");
                    }
                }
            }
            Kind::Symlink { target } => {
                let _ = write!(
                    s,
                    "symlink, uid: {}, gid: {}, target: {}",
                    e.uid,
                    e.gid,
                    quote(target)
                );
            }
            Kind::Hardlink { target } => {
                let _ = write!(s, "hardlink, target: {}", quote(target));
            }
        }
        s.push_str("}\n");
    }
    s
}

/// A YAML double-quoted scalar. Everything that is not printable (controls,
/// YAML's extra line breaks, the BOM) is escaped, so one entry stays one line.
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            '\r' => q.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                let _ = write!(q, "\\u{:04x}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// Owner and mode of one path of a real tree, without following a symlink.
pub fn owner_mode(root: &Path, path: &str) -> (u32, u32, u32) {
    let md = fs::symlink_metadata(root.join(path)).unwrap_or_else(|e| panic!("lstat {path}: {e}"));
    (md.uid(), md.gid(), md.mode() & 0o7777)
}

/// Lower-case hex SHA-256 (FIPS 180-4); small enough to keep here rather
/// than add a dependency for the rare binary or large fixture file.
pub fn sha256_hex(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes(word.try_into().expect("4 bytes"));
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

/// A fresh root for a tree: a temp dir made searchable (mktemp gives 0700),
/// so that the unprivileged user can reach what the tool opens to it.
pub fn temp_root(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod temp root");
    dir
}

/// Whether this process can build trees with arbitrary owners.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
