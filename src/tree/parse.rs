//! Reading a tree description. Every error names the file, the line and
//! the column (of the entry at fault), and why: broken YAML, an unknown
//! `format` or `version`, a path that escapes the root, a duplicate entry,
//! an entry under a non-directory, an unknown type, a mode over 07777.
//! Entries are checked as they are read, so the position is the entry's own.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::desired::config::aliases::{self, AliasWork};

use super::{Content, Description, Entry, FORMAT, Node, Perms, VERSION, is_runtime_path};

/// A description that cannot be read (exit 100).
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ParseError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Why one entry of a description is refused (said after its path).
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("empty path")]
    EmptyPath,
    #[error("absolute path: paths are relative to the container's /")]
    Absolute,
    #[error("path escapes the root (`..`)")]
    Escapes,
    #[error("path has an empty or `.` component (write it canonically)")]
    NotCanonical,
    #[error("path holds a NUL byte")]
    Nul,
    #[error("duplicate entry")]
    Duplicate,
    #[error("entry under {parent}, a mount point (described, never entered)")]
    UnderMount { parent: String },
    #[error("entry under a non-directory: {parent} is a {kind}")]
    UnderNonDir { parent: String, kind: &'static str },
    #[error("parent {parent} is not described (parents come before their entries)")]
    NoParent { parent: String },
    #[error("{key}: 4294967295 is chown's \"no change\", not an id (0..4294967294)")]
    NoChangeId { key: &'static str },
    #[error("s6-supervise's runtime file: described by type only (path and type)")]
    RuntimeKeys,
    #[error("`links` is written only when more than 1")]
    LinksOne,
    #[error("a symlink needs a non-empty `target`")]
    SymlinkTarget,
    #[error("a hardlink needs a `target`")]
    HardlinkTarget,
    #[error("unknown type {0:?} (dir, file, fifo, socket, symlink, hardlink, chardev, blockdev)")]
    UnknownType(String),
    #[error("hardlink target {target} is a {kind}, not a regular file")]
    HardlinkToNonFile { target: String, kind: &'static str },
    #[error("hardlink target {target} is not an earlier entry of the description")]
    HardlinkUnknown { target: String },
    #[error("{target} has links: {links}, and this is its name number {names}")]
    TooManyNames {
        target: String,
        links: u64,
        names: u64,
    },
    #[error("{target} needs `links:` (its link count) to have another name")]
    NoLinks { target: String },
    #[error("`{key}` does not apply to type {kind}")]
    NotApplicable { key: &'static str, kind: String },
    #[error("mode {0}: write the mode as a quoted octal string, e.g. \"0755\"")]
    ModeNumber(u64),
    #[error("mode {0:?}: not an octal number like \"0755\"")]
    ModeNotOctal(String),
    #[error("mode {0:?} is over 07777 (permission bits, setuid, setgid and sticky only)")]
    ModeTooBig(String),
    #[error("base64: {0}")]
    Base64(base64::DecodeError),
    #[error("sha256: want 64 lower-case hex digits")]
    Sha256,
    #[error("give one of `content`, `base64`, or `size` with `sha256`")]
    ContentKeys,
}

/// Parse the description `text`, read from `file` (named in errors).
pub fn parse(text: &str, file: &Path) -> Result<Description, ParseError> {
    let err = |e: serde_yaml::Error| located(file, text, e);
    if let Err(e @ AliasWork::TooMuch { at, .. }) = aliases::check(text) {
        let (line, column) = at.unwrap_or((1, 1));
        return Err(ParseError {
            file: file.to_path_buf(),
            line,
            column,
            message: e.to_string(),
        });
    }
    let header: Header = serde_yaml::from_str(text).map_err(err)?;
    check_header(&header, text, file)?;
    let state = RefCell::new(State::default());
    let doc = DocSeed { state: &state };
    doc.deserialize(serde_yaml::Deserializer::from_str(text))
        .map_err(err)?;
    let mut d = Description {
        entries: state.into_inner().entries,
    };
    d.sort();
    Ok(d)
}

/// The document's first two keys, read before the entries so that a
/// description of another format or version is refused as such.
#[derive(Deserialize)]
struct Header {
    format: Option<serde_yaml::Value>,
    version: Option<serde_yaml::Value>,
}

fn check_header(h: &Header, text: &str, file: &Path) -> Result<(), ParseError> {
    let at = |key: &str, message: String| {
        let (line, column) = key_position(text, key);
        ParseError {
            file: file.to_path_buf(),
            line,
            column,
            message,
        }
    };
    match &h.format {
        Some(serde_yaml::Value::String(f)) if f == FORMAT => {}
        Some(other) => {
            return Err(at(
                "format",
                format!(
                    "format: {}: not a tree description (want {FORMAT})",
                    show(other)
                ),
            ));
        }
        None => return Err(at("format", format!("missing `format: {FORMAT}`"))),
    }
    match &h.version {
        Some(serde_yaml::Value::Number(n)) if n.as_u64() == Some(VERSION.into()) => Ok(()),
        Some(other) => Err(at(
            "version",
            format!(
                "unknown version {} (this reconcile reads version {VERSION})",
                show(other)
            ),
        )),
        None => Err(at("version", format!("missing `version: {VERSION}`"))),
    }
}

fn show(v: &serde_yaml::Value) -> String {
    serde_yaml::to_string(v)
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Line and column (1-based) of a top-level `key:`, else of the document start.
fn key_position(text: &str, key: &str) -> (usize, usize) {
    text.lines()
        .position(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')))
        .map(|i| (i + 1, 1))
        .unwrap_or((1, 1))
}

fn located(file: &Path, text: &str, e: serde_yaml::Error) -> ParseError {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or_else(|| (text.lines().count().max(1), 1));
    let mut message = e.to_string();
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    ParseError {
        file: file.to_path_buf(),
        line,
        column,
        message,
    }
}

/// What the entries read so far say, for the checks that span entries.
#[derive(Default)]
struct State {
    entries: Vec<Entry>,
    /// Path -> index in `entries`.
    index: HashMap<String, usize>,
    /// Path of a hard-linked file -> names described so far.
    names: HashMap<String, u64>,
}

struct DocSeed<'a> {
    state: &'a RefCell<State>,
}

impl<'de> DeserializeSeed<'de> for DocSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tree description (format, version, entries)")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        let mut entries = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                // Checked by `check_header`.
                "format" | "version" => {
                    map.next_value::<de::IgnoredAny>()?;
                }
                "entries" => {
                    map.next_value_seed(EntriesSeed { state: self.state })?;
                    entries = true;
                }
                other => {
                    return Err(de::Error::custom(format!(
                        "unknown key `{other}` (format, version, entries)"
                    )));
                }
            }
        }
        if !entries {
            return Err(de::Error::custom(
                "missing `entries:` (a list, may be empty)",
            ));
        }
        Ok(())
    }
}

struct EntriesSeed<'a> {
    state: &'a RefCell<State>,
}

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of entries")
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        while seq
            .next_element_seed(EntrySeed { state: self.state })?
            .is_some()
        {}
        Ok(())
    }
}

/// One entry as written; checked by [`State::add`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    path: String,
    #[serde(rename = "type")]
    kind: String,
    mode: Option<RawMode>,
    uid: Option<u32>,
    gid: Option<u32>,
    content: Option<String>,
    base64: Option<String>,
    size: Option<u64>,
    sha256: Option<String>,
    target: Option<String>,
    links: Option<u64>,
    mount: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawMode {
    Text(String),
    Number(u64),
}

struct EntrySeed<'a> {
    state: &'a RefCell<State>,
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        // Through deserialize_map so that an error raised while checking
        // carries the position of this entry.
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an entry: {path: ..., type: ...}")
    }
    fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<(), M::Error> {
        let raw = RawEntry::deserialize(de::value::MapAccessDeserializer::new(map))?;
        let path = raw.path.clone();
        self.state
            .borrow_mut()
            .add(raw)
            .map_err(|m| de::Error::custom(format!("{path}: {m}")))
    }
}

impl State {
    fn add(&mut self, raw: RawEntry) -> Result<(), EntryError> {
        check_path(&raw.path)?;
        if self.index.contains_key(&raw.path) {
            return Err(EntryError::Duplicate);
        }
        if let Some((parent, _)) = raw.path.rsplit_once('/') {
            match self.index.get(parent).map(|&i| &self.entries[i].node) {
                Some(Node::Dir { mount: false, .. }) => {}
                Some(Node::Dir { mount: true, .. }) => {
                    return Err(EntryError::UnderMount {
                        parent: parent.into(),
                    });
                }
                Some(other) => {
                    return Err(EntryError::UnderNonDir {
                        parent: parent.into(),
                        kind: other.kind_name(),
                    });
                }
                None => {
                    return Err(EntryError::NoParent {
                        parent: parent.into(),
                    });
                }
            }
        }
        let node = self.node(&raw)?;
        self.index.insert(raw.path.clone(), self.entries.len());
        self.entries.push(Entry {
            path: raw.path,
            node,
        });
        Ok(())
    }

    fn node(&mut self, r: &RawEntry) -> Result<Node, EntryError> {
        for (key, id) in [("uid", r.uid), ("gid", r.gid)] {
            if id == Some(u32::MAX) {
                return Err(EntryError::NoChangeId { key });
            }
        }
        let only = |allowed: &[&str]| r.only(allowed);
        let perms = |default_mode: u32| r.perms(default_mode);
        const PERMS: [&str; 3] = ["mode", "uid", "gid"];
        Ok(match r.kind.as_str() {
            "dir" => {
                only(&["mode", "uid", "gid", "mount"])?;
                Node::Dir {
                    perms: perms(0o755)?,
                    mount: r.mount.unwrap_or(false),
                }
            }
            "file" if is_runtime_path(&r.path) => {
                only(&[]).map_err(|_| EntryError::RuntimeKeys)?;
                Node::Runtime
            }
            "file" => {
                only(&["mode", "uid", "gid", "content", "links"])?;
                if r.links.is_some_and(|n| n < 2) {
                    return Err(EntryError::LinksOne);
                }
                if r.links.is_some() {
                    self.names.insert(r.path.clone(), 1);
                }
                Node::File {
                    perms: perms(0o644)?,
                    content: content(r)?,
                    links: r.links,
                }
            }
            "fifo" => {
                only(&PERMS)?;
                Node::Fifo {
                    perms: perms(0o644)?,
                }
            }
            "socket" => {
                only(&PERMS)?;
                Node::Socket {
                    perms: perms(0o644)?,
                }
            }
            "chardev" => {
                only(&PERMS)?;
                Node::CharDevice {
                    perms: perms(0o644)?,
                }
            }
            "blockdev" => {
                only(&PERMS)?;
                Node::BlockDevice {
                    perms: perms(0o644)?,
                }
            }
            "symlink" => {
                only(&["uid", "gid", "target"])?;
                match &r.target {
                    Some(t) if !t.is_empty() && !t.contains('\0') => Node::Symlink {
                        uid: r.uid.unwrap_or(0),
                        gid: r.gid.unwrap_or(0),
                        target: t.clone(),
                    },
                    _ => return Err(EntryError::SymlinkTarget),
                }
            }
            "hardlink" => {
                only(&["target"])?;
                let target = r.target.clone().ok_or(EntryError::HardlinkTarget)?;
                self.hardlink(&target)?;
                Node::Hardlink { target }
            }
            other => {
                return Err(EntryError::UnknownType(other.into()));
            }
        })
    }

    /// Count one more name for the file at `target`; it must be an earlier
    /// `file` entry whose `links` leaves room for it.
    fn hardlink(&mut self, target: &str) -> Result<(), EntryError> {
        let links = match self.index.get(target).map(|&i| &self.entries[i].node) {
            Some(Node::File { links, .. }) => *links,
            Some(other) => {
                return Err(EntryError::HardlinkToNonFile {
                    target: target.into(),
                    kind: other.kind_name(),
                });
            }
            None => {
                return Err(EntryError::HardlinkUnknown {
                    target: target.into(),
                });
            }
        };
        let names = self.names.entry(target.to_string()).or_insert(1);
        *names += 1;
        match links {
            Some(n) if *names <= n => Ok(()),
            Some(links) => Err(EntryError::TooManyNames {
                target: target.into(),
                links,
                names: *names,
            }),
            None => Err(EntryError::NoLinks {
                target: target.into(),
            }),
        }
    }
}

impl RawEntry {
    /// Refuse the keys given that `allowed` does not list.
    fn only(&self, allowed: &[&str]) -> Result<(), EntryError> {
        let has_content = self.content.is_some()
            || self.base64.is_some()
            || self.size.is_some()
            || self.sha256.is_some();
        let given = [
            ("mode", self.mode.is_some()),
            ("uid", self.uid.is_some()),
            ("gid", self.gid.is_some()),
            ("content", has_content),
            ("target", self.target.is_some()),
            ("links", self.links.is_some()),
            ("mount", self.mount.is_some()),
        ];
        match given.iter().find(|(k, g)| *g && !allowed.contains(k)) {
            Some((key, _)) => Err(EntryError::NotApplicable {
                key,
                kind: self.kind.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Owner and mode, root's and `default_mode` when left out.
    fn perms(&self, default_mode: u32) -> Result<Perms, EntryError> {
        Ok(Perms {
            uid: self.uid.unwrap_or(0),
            gid: self.gid.unwrap_or(0),
            mode: match &self.mode {
                None => default_mode,
                Some(m) => parse_mode(m)?,
            },
        })
    }
}

fn check_path(path: &str) -> Result<(), EntryError> {
    if path.is_empty() {
        return Err(EntryError::EmptyPath);
    }
    if path.starts_with('/') {
        return Err(EntryError::Absolute);
    }
    for c in path.split('/') {
        match c {
            ".." => return Err(EntryError::Escapes),
            "." | "" => {
                return Err(EntryError::NotCanonical);
            }
            _ if c.contains('\0') => return Err(EntryError::Nul),
            _ => {}
        }
    }
    Ok(())
}

fn parse_mode(m: &RawMode) -> Result<u32, EntryError> {
    let text = match m {
        RawMode::Text(t) => t,
        RawMode::Number(n) => {
            return Err(EntryError::ModeNumber(*n));
        }
    };
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return Err(EntryError::ModeNotOctal(text.clone()));
    }
    // At most 8 octal digits: 24 bits, always a u32.
    let mode =
        u32::from_str_radix(digits, 8).map_err(|_| EntryError::ModeNotOctal(text.clone()))?;
    if mode > 0o7777 {
        return Err(EntryError::ModeTooBig(text.clone()));
    }
    Ok(mode)
}

fn content(r: &RawEntry) -> Result<Content, EntryError> {
    match (&r.content, &r.base64, r.size, &r.sha256) {
        (None, None, None, None) => Ok(Content::Bytes(Vec::new())),
        (Some(text), None, None, None) => Ok(Content::Bytes(text.clone().into_bytes())),
        (None, Some(b64), None, None) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map(Content::Bytes)
            .map_err(EntryError::Base64),
        (None, None, Some(size), Some(sha256)) => {
            let hex = sha256.len() == 64
                && sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex {
                return Err(EntryError::Sha256);
            }
            Ok(Content::Digest {
                size,
                sha256: sha256.clone(),
            })
        }
        _ => Err(EntryError::ContentKeys),
    }
}

/// Largest description read: far above a snapshot of ten thousand slots.
pub const DESCRIPTION_LIMIT: u64 = 256 << 20;

/// Why a description file could not be read (exit 100).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("unable to read {path}: {error}")]
    Read { path: PathBuf, error: String },
    #[error("{0}")]
    Parse(#[from] ParseError),
}

/// Read and parse the description in `path`: a regular file of sane size.
pub fn read_description(path: &Path) -> Result<Description, ReadError> {
    let fail = |error: String| ReadError::Read {
        path: path.to_path_buf(),
        error,
    };
    // Non-blocking open and fstat before a byte is read: a FIFO or a
    // device in its place is refused at once, never waited on.
    use crate::fs::input::{Follow, InputError, read_regular};
    let bytes = read_regular(path, DESCRIPTION_LIMIT, Follow::Yes).map_err(|e| match e {
        InputError::TooLarge { limit } => fail(format!("a description is at most {limit} bytes")),
        e => fail(e.to_string()),
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let before = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before.len()
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1)
            + 1;
        ParseError {
            file: path.to_path_buf(),
            line,
            column,
            message: "not valid UTF-8".into(),
        }
    })?;
    Ok(parse(&text, path)?)
}
