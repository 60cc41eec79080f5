//! Why a slot changes: the comparison of an existing slot with the wanted
//! one (docs/plan-format.md, "Why a slot changes": identical, `down` only, or anything else), with the
//! reason the plan prints for each `publish`, `replace` and `down` change
//! and the file contents `--diff` shows.
//!
//! Pure: it reads only the observation (the slot's tree with the contents
//! of its small files) and the wanted entries. The scanner compares each
//! file with what the plan wants as it reads it ([`expected_files`]) and
//! keeps only the bytes of a file that differs (`Content::AsExpected`
//! otherwise): one rendering, [`scripts`], serves both.

use std::borrow::Cow;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::desired::model::Desired;
use crate::desired::slot::{self, SlotEntry};
use crate::fs::Kind;
use crate::fs::Meta;
use crate::observe::{Content, ExpectedFiles, SlotObs};
use crate::plan::Owner;
use crate::s6::layout::{self, is_runtime};

/// The scripts every slot of `d` is built from, prepared once: the plan
/// renders the slots it wants from them, and the scanner compares the
/// existing slots' files with them ([`expected_files`]).
pub fn scripts(d: &Desired) -> slot::Scripts {
    let cfg = &d.config.profiles;
    slot::Scripts::new(
        &d.account.user_name,
        &cfg.home.0.display().to_string(),
        &cfg.templates,
    )
}

/// What the regular files of the slot named `slot` hold when it is as the
/// plan wants it (`down` aside: its presence is compared on its own): the
/// files of `SlotBuild::entries` of the slot's profile, rendered from
/// `scripts` ([`scripts`] of the same `d`). `None` for a name without the
/// slot prefix.
pub fn expected_files(d: &Desired, scripts: &slot::Scripts, slot: &str) -> Option<ExpectedFiles> {
    let profile = slot.strip_prefix(d.config.profiles.slot_prefix.as_str())?;
    let files = scripts.render(profile, profile == crate::s6::names::DEFAULT_PROFILE);
    let files = slot::entries(files, false)
        .into_iter()
        .filter_map(|e| match e {
            SlotEntry::File { path, content, .. } => Some((path, content)),
            _ => None,
        });
    Some(files.collect())
}

/// How an existing slot compares with the wanted one.
#[derive(Debug, PartialEq, Eq)]
pub enum SlotDiff<'a> {
    Same,
    /// Identical but for `down`: create it (`want`) or remove it.
    Down {
        want: bool,
    },
    /// Anything else: the slot is rebuilt and swapped in.
    Different(Why),
    /// A file of the slot could not be read: no decision is made on it
    /// (a transient read error must never replace, and restart, a live slot).
    Unreadable {
        path: PathBuf,
        error: &'a crate::s6::findings::Cause,
    },
}

/// Why a slot change is planned, as printed, and (for a replace) the
/// files whose content it rewrites. The planned contents stay in the
/// change's slot build: nothing is copied here for a new slot or for a
/// file that is the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Why {
    pub reason: Cow<'static, str>,
    pub files: Vec<FileChange>,
}

/// A slot file whose content a replace rewrites, and what it holds now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileChange {
    /// Relative to the slot directory (`run`, `log/run`).
    pub path: PathBuf,
    pub current: Current,
}

/// A slot file's current content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Current {
    /// No such file (or not a regular file).
    Absent,
    Text(String),
    /// A regular file whose content was not read (too large, or unreadable).
    Unread,
}

/// At most this many entries are named for one difference in a reason.
const MAX_NAMED: usize = 5;

/// The reason for publishing a slot that does not exist yet (every file
/// of it is new: see [`diffs`]).
pub fn new_slot() -> Why {
    Why {
        reason: Cow::Borrowed("new slot"),
        files: Vec::new(),
    }
}

/// The reason for creating (`want`) or removing `down` in place.
pub fn down_only(want: bool) -> Why {
    let reason = if want {
        "down only: the profile is registered, not started"
    } else {
        "down only: the profile starts"
    };
    Why {
        reason: Cow::Borrowed(reason),
        files: Vec::new(),
    }
}

/// One difference found.
enum Difference {
    Content(PathBuf),
    Owner(PathBuf, Owner, Owner),
    Mode(PathBuf, u32, u32),
    Kind(PathBuf, String),
    Missing(PathBuf),
    Extra(Vec<PathBuf>),
    Down(bool),
}

/// Compare an existing slot with the wanted entries and owner; every
/// difference is collected, so the reason names them all.
pub fn compare<'a>(
    owner: Owner,
    expected: &[(SlotEntry, Owner)],
    obs: &'a SlotObs,
) -> SlotDiff<'a> {
    let root = &obs.node.meta;
    if root.kind != Kind::Dir {
        return not_a_dir(root.kind, expected);
    }
    let mut found = Vec::new();
    let top = PathBuf::new();
    let (have, want) = ((root.uid, root.gid), layout::MODE_SLOT_DIR);
    check_meta(&mut found, &top, have, owner, root.mode, want);
    let below = &obs.below;
    let rels = below.rels();
    let compared = || rels.iter().enumerate().filter(|(_, rel)| !is_runtime(rel));
    let unreadable = compared().find_map(|(i, rel)| match below.content(i) {
        Content::Unreadable(error) => Some((rel, &**error)),
        _ => None,
    });
    if let Some((rel, error)) = unreadable {
        return SlotDiff::Unreadable {
            path: obs.node.path.join(rel),
            error,
        };
    }
    let seen = compared().map(|(i, rel)| Some((rel.as_path(), (below.meta(i), below.content(i)))));
    let mut seen = Seen(seen.collect());
    let (mut want_down, mut down_owner) = (false, owner);
    let mut files = Vec::new();
    for (e, want_owner) in expected {
        // `down` is compared on its own below: only its presence may differ.
        if e.rel() == layout::DOWN {
            (want_down, down_owner) = (true, *want_owner);
            continue;
        }
        match seen.take(e.path()) {
            Some(n) => entry(e, *want_owner, n, &mut found, &mut files),
            // Below a place the running user may not read: not seen is
            // not missing (the notice says what was not observed).
            None if obs.unobserved.iter().any(|u| e.path().starts_with(u)) => {}
            None => {
                found.push(Difference::Missing(e.path().to_path_buf()));
                files.extend(file_change(e, Current::Absent));
            }
        }
    }
    let down = seen.take(Path::new(layout::DOWN));
    let have_down = down.is_some();
    if let Some(n) = down {
        check_down(n, down_owner, &mut found);
    }
    found.extend(extras(seen));
    if found.is_empty() {
        return match (want_down, have_down) {
            (w, h) if w == h => SlotDiff::Same,
            (w, _) => SlotDiff::Down { want: w },
        };
    }
    if want_down != have_down {
        found.push(Difference::Down(want_down));
    }
    SlotDiff::Different(Why {
        reason: reason(&found).into(),
        files,
    })
}

/// The slot's name holds something else than a directory: nothing inside
/// to compare, every file is new.
fn not_a_dir(kind: Kind, expected: &[(SlotEntry, Owner)]) -> SlotDiff<'static> {
    let files = expected
        .iter()
        .filter_map(|(e, _)| file_change(e, Current::Absent))
        .collect();
    SlotDiff::Different(Why {
        reason: format!("the slot {}, not a directory", kind_text(kind)).into(),
        files,
    })
}

/// Compare one wanted entry `e` with the entry observed at its path.
fn entry(
    e: &SlotEntry,
    want_owner: Owner,
    (m, content): Observed<'_>,
    found: &mut Vec<Difference>,
    files: &mut Vec<FileChange>,
) {
    let p = e.path();
    match e {
        SlotEntry::Dir { .. } | SlotEntry::Fifo { .. } => {
            let want = if matches!(e, SlotEntry::Dir { .. }) {
                Kind::Dir
            } else {
                Kind::Fifo
            };
            if m.kind != want {
                found.push(Difference::Kind(p.to_path_buf(), kind_text(m.kind)));
            }
        }
        SlotEntry::File { content: want, .. } => {
            if m.kind != Kind::File {
                found.push(Difference::Kind(p.to_path_buf(), kind_text(m.kind)));
            } else if m.nlink != 1 {
                found.push(Difference::Kind(
                    p.to_path_buf(),
                    format!("has {} links", m.nlink),
                ));
            }
            // Compared in place, or by the scanner as it read the file
            // (the same rendering): a converged slot costs no copy.
            let same = m.kind == Kind::File
                && m.size == want.len() as u64
                && match content {
                    Content::Bytes(c) => c.as_slice() == want.as_bytes(),
                    Content::AsExpected => true,
                    Content::NotRead | Content::Unreadable(_) => false,
                };
            if !same {
                let current = match (m.kind, content) {
                    (Kind::File, Content::Bytes(c)) => {
                        Current::Text(String::from_utf8_lossy(c).into_owned())
                    }
                    (Kind::File, _) => Current::Unread,
                    _ => Current::Absent,
                };
                found.push(Difference::Content(p.to_path_buf()));
                files.extend(file_change(e, current));
            }
        }
    }
    check_meta(found, p, (m.uid, m.gid), want_owner, m.mode, e.mode());
}

/// An existing `down`: an empty regular file with the wanted owner and mode.
fn check_down((m, content): Observed<'_>, owner: Owner, found: &mut Vec<Difference>) {
    let down = Path::new(layout::DOWN);
    if m.kind != Kind::File {
        found.push(Difference::Kind(down.to_path_buf(), kind_text(m.kind)));
    } else if *content != Content::Bytes(Vec::new()) {
        found.push(Difference::Kind(down.to_path_buf(), "is not empty".into()));
    }
    check_meta(
        found,
        down,
        (m.uid, m.gid),
        owner,
        m.mode,
        layout::MODE_FILE,
    );
}

/// What no wanted entry took, an extra directory's contents not named one
/// by one.
fn extras(seen: Seen<'_>) -> Option<Difference> {
    let mut extras: Vec<PathBuf> = seen
        .0
        .into_iter()
        .flatten()
        .map(|(p, _)| p.into())
        .collect();
    extras.sort();
    let mut named: Vec<PathBuf> = Vec::new();
    for x in extras {
        if !named.iter().any(|d| x.starts_with(d)) {
            named.push(x);
        }
    }
    (!named.is_empty()).then_some(Difference::Extra(named))
}

/// A slot's observed entries (s6's runtime files aside) by path relative
/// to the slot; each wanted entry takes its own, and what is left is
/// extra. A dozen entries: found by comparing bytes, no hashing of paths.
struct Seen<'a>(Vec<Option<(&'a Path, Observed<'a>)>>);

/// An observed entry of a slot: what `lstat` said and what was read.
type Observed<'a> = (Meta, &'a Content);

impl<'a> Seen<'a> {
    fn take(&mut self, p: &Path) -> Option<Observed<'a>> {
        let p = p.as_os_str().as_bytes();
        let slot = self
            .0
            .iter_mut()
            .find(|s| s.is_some_and(|(r, _)| r.as_os_str().as_bytes() == p))?;
        slot.take().map(|(_, n)| n)
    }
}

fn check_meta(
    found: &mut Vec<Difference>,
    p: &Path,
    have: Owner,
    want: Owner,
    mode: u32,
    want_mode: u32,
) {
    if have != want {
        found.push(Difference::Owner(p.to_path_buf(), have, want));
    }
    if mode != want_mode {
        found.push(Difference::Mode(p.to_path_buf(), mode, want_mode));
    }
}

fn file_change(e: &SlotEntry, current: Current) -> Option<FileChange> {
    match e {
        SlotEntry::File { path, .. } => Some(FileChange {
            path: PathBuf::from(path),
            current,
        }),
        _ => None,
    }
}

fn kind_text(k: Kind) -> String {
    let what = match k {
        Kind::Dir => "a directory",
        Kind::File => "a regular file",
        Kind::Symlink => "a symlink",
        Kind::Fifo => "a FIFO",
        _ => "a special file",
    };
    format!("is {what}")
}

/// An entry as named in a reason.
fn name(p: &Path) -> String {
    if p.as_os_str().is_empty() {
        "the slot directory".into()
    } else {
        p.display().to_string()
    }
}

/// The differences as one line: the files whose content differs first,
/// then each other difference in the slots' order. Entries with the same
/// owner (or mode) change are named together, at most
/// [`MAX_NAMED`] of them.
fn reason(found: &[Difference]) -> String {
    let content: Vec<String> = found
        .iter()
        .filter_map(|d| match d {
            Difference::Content(p) => Some(name(p)),
            _ => None,
        })
        .collect();
    let mut parts = Vec::new();
    match content.len() {
        0 => {}
        1 => parts.push(format!("{} differs", content[0])),
        _ => parts.push(format!("{} differ", names(&content))),
    }
    // Owner and mode changes, grouped by what they change from and to
    // (expected entries only: a slot has a dozen, so this stays small).
    let mut done: Vec<(&str, String)> = Vec::new();
    for d in found {
        if let Some((_, what, from_to)) = perm_change(d) {
            if done.contains(&(what, from_to.clone())) {
                continue;
            }
            let same: Vec<String> = found
                .iter()
                .filter_map(perm_change)
                .filter(|(_, w, f)| *w == what && *f == from_to)
                .map(|(p, ..)| name(p))
                .collect();
            parts.push(format!("{what} of {} {from_to}", names(&same)));
            done.push((what, from_to));
            continue;
        }
        parts.push(match d {
            Difference::Content(_) | Difference::Owner(..) | Difference::Mode(..) => continue,
            Difference::Kind(p, what) => format!("{} {what}", name(p)),
            Difference::Missing(p) => format!("{} missing", name(p)),
            Difference::Extra(xs) => {
                let xs: Vec<String> = xs.iter().map(|p| name(p)).collect();
                format!("extra {}", names(&xs))
            }
            Difference::Down(true) => "down added".into(),
            Difference::Down(false) => "down removed".into(),
        });
    }
    parts.join("; ")
}

/// An owner or mode difference: the entry, which, and `from → to`.
fn perm_change(d: &Difference) -> Option<(&Path, &'static str, String)> {
    match d {
        Difference::Owner(p, (u, g), (wu, wg)) => {
            Some((p, "owner", format!("{u}:{g} → {wu}:{wg}")))
        }
        Difference::Mode(p, m, w) => Some((p, "mode", format!("{m:04o} → {w:04o}"))),
        _ => None,
    }
}

/// Names joined with commas, at most [`MAX_NAMED`] of them.
fn names(all: &[String]) -> String {
    let shown = all[..all.len().min(MAX_NAMED)].join(", ");
    match all.len().saturating_sub(MAX_NAMED) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// The unified diffs (`--- current`, `+++ planned`) of the slot at
/// container path `slot` built from `entries`: of the `files` a replace
/// rewrites, or with `None` (a new slot) of every non-empty file.
pub fn diffs(slot: &Path, entries: &[(SlotEntry, Owner)], files: Option<&[FileChange]>) -> String {
    let planned = |path: &Path| {
        entries.iter().find_map(|(e, _)| match e {
            SlotEntry::File {
                path: p, content, ..
            } if Path::new(p) == path => Some(&**content),
            _ => None,
        })
    };
    let mut out = String::new();
    match files {
        Some(files) => {
            for f in files {
                if let Some(new) = planned(&f.path) {
                    out.push_str(&unified(slot, &f.path, &f.current, new));
                }
            }
        }
        None => {
            for (e, _) in entries {
                if let SlotEntry::File { path, content, .. } = e
                    && !content.is_empty()
                {
                    out.push_str(&unified(slot, Path::new(path), &Current::Absent, content));
                }
            }
        }
    }
    out
}

/// The most bytes of one side `--diff` compares line by line: a slot
/// file the user wrote may be as large as the scanner reads (1 MiB), and a
/// line diff costs up to the product of the two sides' line counts.
pub const DIFF_MAX_BYTES: usize = 64 * 1024;

/// The most lines of one side `--diff` compares line by line.
pub const DIFF_MAX_LINES: usize = 4096;

/// How long one file's line diff may take before the diff library settles
/// for a coarser (still correct) diff.
const DIFF_DEADLINE: std::time::Duration = std::time::Duration::from_millis(500);

fn unified(slot: &Path, rel: &Path, current: &Current, planned: &str) -> String {
    let path = slot.join(rel);
    let (old, note) = match current {
        Current::Absent => ("", " (absent)"),
        Current::Text(t) => (t.as_str(), ""),
        Current::Unread => ("", " (not read: too large, unreadable or hard-linked)"),
    };
    let old_label = format!("current {}{note}", path.display());
    let new_label = format!("planned {}", path.display());
    let too_large = |t: &str| t.len() > DIFF_MAX_BYTES || t.lines().nth(DIFF_MAX_LINES).is_some();
    if too_large(old) || too_large(planned) {
        return format!(
            "--- {old_label}\n+++ {new_label}\n\
             @@ not compared line by line: the current file is {} ({}), the planned file {} ({}); \
             --diff compares files of at most {DIFF_MAX_BYTES} bytes and {DIFF_MAX_LINES} lines @@\n",
            bytes(old.len()),
            lines(old),
            bytes(planned.len()),
            lines(planned),
        );
    }
    similar::TextDiff::configure()
        .deadline(std::time::Instant::now() + DIFF_DEADLINE)
        .diff_lines(old, planned)
        .unified_diff()
        .context_radius(3)
        .header(&old_label, &new_label)
        .to_string()
}

fn bytes(n: usize) -> String {
    if n == 1 {
        "1 byte".into()
    } else {
        format!("{n} bytes")
    }
}

fn lines(t: &str) -> String {
    match t.lines().count() {
        1 => "1 line".into(),
        n => format!("{n} lines"),
    }
}

/// The unified diffs of the files a slot change creates or rewrites.
pub fn change_diffs(c: &crate::plan::Change, why: &Why) -> String {
    match &c.op {
        crate::plan::Op::Publish(b) => diffs(&c.path, &b.entries(), None),
        crate::plan::Op::Replace(b) => diffs(&c.path, &b.entries(), Some(&why.files)),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::Meta;

    const USER: Owner = (10000, 10000);

    fn file(path: &'static str, mode: u32, content: &str) -> (SlotEntry, Owner) {
        let content = content.to_string().into();
        (
            SlotEntry::File {
                path,
                mode,
                content,
            },
            USER,
        )
    }

    /// The wanted entries of a small slot, with or without `down`.
    fn wanted(down: bool) -> Vec<(SlotEntry, Owner)> {
        let mut v = vec![
            file("type", 0o644, "longrun\n"),
            file("run", 0o755, "#!/bin/sh\nexec app\n"),
        ];
        if down {
            v.push(file("down", 0o644, ""));
        }
        v.push((
            SlotEntry::Dir {
                path: "supervise",
                mode: 0o755,
            },
            USER,
        ));
        v.push((
            SlotEntry::Fifo {
                path: "supervise/control",
                mode: 0o660,
            },
            USER,
        ));
        v
    }

    fn meta(kind: Kind, mode: u32, content: Option<&str>) -> Meta {
        Meta {
            kind,
            dev: 1,
            ino: 2,
            uid: USER.0,
            gid: USER.1,
            mode,
            nlink: 1,
            size: content.map_or(0, |c| c.len() as u64),
        }
    }

    /// Add the entry at `rel` to the slot `obs`.
    fn add(obs: &mut SlotObs, rel: &str, kind: Kind, mode: u32, content: Option<&str>) {
        let read = content.map_or(Content::NotRead, |c| Content::Bytes(c.into()));
        obs.below.insert(rel, meta(kind, mode, content), read);
    }

    /// Change the attributes of the entry `i` of the slot `obs`.
    fn change(obs: &mut SlotObs, i: usize, f: impl FnOnce(&mut Meta)) {
        let mut m = obs.below.meta(i);
        f(&mut m);
        obs.below.set_meta(i, m);
    }

    /// A slot on disk exactly as `expected` wants it.
    fn observed(expected: &[(SlotEntry, Owner)]) -> SlotObs {
        let mut obs = SlotObs {
            node: crate::observe::Node {
                path: "/run/service/gateway-x".into(),
                rel: "gateway-x".into(),
                meta: meta(Kind::Dir, layout::MODE_SLOT_DIR, None),
            },
            below: Default::default(),
            unobserved: Vec::new(),
        };
        for (e, _) in expected {
            match e {
                SlotEntry::Dir { path, mode } => add(&mut obs, path, Kind::Dir, *mode, None),
                SlotEntry::Fifo { path, mode } => add(&mut obs, path, Kind::Fifo, *mode, None),
                SlotEntry::File {
                    path,
                    mode,
                    content,
                } => add(&mut obs, path, Kind::File, *mode, Some(content)),
            }
        }
        obs
    }

    fn reason(d: SlotDiff<'_>) -> String {
        match d {
            SlotDiff::Different(why) => why.reason.into_owned(),
            other => panic!("not different: {other:?}"),
        }
    }

    #[test]
    fn identical_or_down_only() {
        let (up, down) = (wanted(false), wanted(true));
        assert_eq!(compare(USER, &up, &observed(&up)), SlotDiff::Same);
        assert_eq!(compare(USER, &down, &observed(&down)), SlotDiff::Same);
        assert_eq!(
            compare(USER, &down, &observed(&up)),
            SlotDiff::Down { want: true }
        );
        assert_eq!(
            compare(USER, &up, &observed(&down)),
            SlotDiff::Down { want: false }
        );
    }

    #[test]
    fn every_difference_is_named_files_first() {
        let want = wanted(false);
        let mut obs = observed(&want);
        let other = "#!/bin/sh\nexec other\n";
        obs.below.set_meta(1, meta(Kind::File, 0o775, Some(other)));
        obs.below.set_content(1, Content::Bytes(other.into()));
        change(&mut obs, 3, |m| m.uid = 0);
        obs.below.remove(0);
        for extra in ["a", "b", "c", "d", "e", "f"] {
            add(&mut obs, extra, Kind::File, 0o644, Some(""));
        }
        add(&mut obs, "g", Kind::Dir, 0o755, None);
        add(&mut obs, "g/inside", Kind::File, 0o644, Some(""));
        let d = compare(USER, &want, &obs);
        let SlotDiff::Different(why) = &d else {
            panic!("{d:?}")
        };
        assert_eq!(
            why.reason,
            "run differs; type missing; mode of run 0775 → 0755; \
             owner of supervise/control 0:10000 → 10000:10000; extra a, b, c, d, e and 2 more"
        );
        let files: Vec<(&Path, &Current)> = why
            .files
            .iter()
            .map(|f| (f.path.as_path(), &f.current))
            .collect();
        assert_eq!(
            files,
            [
                (Path::new("type"), &Current::Absent),
                (
                    Path::new("run"),
                    &Current::Text("#!/bin/sh\nexec other\n".into())
                )
            ]
        );
    }

    #[test]
    fn the_same_owner_or_mode_change_is_named_once_for_all_its_entries() {
        let want = wanted(false);
        let mut obs = observed(&want);
        obs.node.meta.uid = 0;
        for i in 0..obs.below.len() {
            change(&mut obs, i, |m| (m.uid, m.mode) = (0, 0o700));
        }
        assert_eq!(
            reason(compare(USER, &want, &obs)),
            "owner of the slot directory, type, run, supervise, supervise/control \
             0:10000 → 10000:10000; mode of type 0700 → 0644; \
             mode of run, supervise 0700 → 0755; mode of supervise/control 0700 → 0660"
        );
    }

    #[test]
    fn a_slot_that_is_not_a_directory_or_has_a_bad_down() {
        let want = wanted(true);
        let mut obs = observed(&want);
        obs.node.meta.kind = Kind::Symlink;
        assert_eq!(
            reason(compare(USER, &want, &obs)),
            "the slot is a symlink, not a directory"
        );
        let mut obs = observed(&wanted(false));
        add(&mut obs, "down", Kind::File, 0o600, Some("x"));
        assert_eq!(
            reason(compare(USER, &wanted(false), &obs)),
            "down is not empty; mode of down 0600 → 0644; down removed"
        );
    }

    #[test]
    fn an_unreadable_file_is_not_a_difference() {
        let want = wanted(false);
        let mut obs = observed(&want);
        obs.below
            .set_content(1, Content::Unreadable(Box::new("EIO".into())));
        assert_eq!(
            compare(USER, &want, &obs),
            SlotDiff::Unreadable {
                path: "/run/service/gateway-x/run".into(),
                error: &"EIO".into()
            }
        );
    }

    /// The scanner's expectation is the plan's own rendering: for the
    /// default and a named profile, with the defaults and with templates,
    /// in both policies, it is exactly the files `SlotBuild::entries` has.
    #[test]
    fn expected_files_are_the_planned_files() {
        use crate::desired::accounts::Account;
        use crate::desired::config::{Config, Policy};
        use crate::plan::{SlotBuild, SlotRecipe};
        for (policy, templated) in [
            (Policy::Compat, false),
            (Policy::Strict, false),
            (Policy::Compat, true),
        ] {
            let mut config = Config {
                policy,
                ..Config::default()
            };
            if templated {
                let t = &mut config.profiles.templates;
                t.run = Some("#!/bin/sh\nexec app {profile} {user} {home}\n".into());
                t.log_run = Some("#!/bin/sh\nexec logger {profile}\n".into());
            }
            let account = Account {
                uid: USER.0,
                gid: USER.1,
                user_name: "hermes".into(),
                groups: Vec::new(),
            };
            let d = Desired::new(config, account);
            let scripts = scripts(&d);
            let recipe = std::sync::Arc::new(SlotRecipe {
                scripts: scripts.clone(),
                policy,
                uid: USER.0,
                gid: USER.1,
            });
            for (profile, is_default) in [("default", true), ("p1", false)] {
                let slot = format!("{}{profile}", d.config.profiles.slot_prefix);
                let got = expected_files(&d, &scripts, &slot).unwrap();
                for down in [false, true] {
                    let build = SlotBuild {
                        profile: profile.into(),
                        staging: format!(".{slot}.tmp"),
                        owner: USER,
                        is_default,
                        down,
                        recipe: recipe.clone(),
                    };
                    let want: Vec<_> = build
                        .entries()
                        .into_iter()
                        .filter_map(|(e, _)| match e {
                            SlotEntry::File { path, content, .. } if path != layout::DOWN => {
                                Some((path, content))
                            }
                            _ => None,
                        })
                        .collect();
                    assert_eq!(got, want, "{policy:?} {profile} templated={templated}");
                }
            }
            assert!(expected_files(&d, &scripts, "other-p1").is_none());
        }
    }

    /// A file the scanner found as expected is the same file; any other
    /// difference is still seen.
    #[test]
    fn files_read_as_expected_are_the_same() {
        let want = wanted(false);
        let mut obs = observed(&want);
        for i in 0..obs.below.len() {
            if obs.below.meta(i).kind == Kind::File {
                obs.below.set_content(i, Content::AsExpected);
            }
        }
        assert_eq!(compare(USER, &want, &obs), SlotDiff::Same);
        change(&mut obs, 1, |m| m.size += 1);
        assert_eq!(reason(compare(USER, &want, &obs)), "run differs");
    }

    #[test]
    fn a_new_slot_diffs_every_file_against_nothing() {
        assert_eq!(new_slot().reason, "new slot");
        assert_eq!(
            diffs(Path::new("/run/service/gateway-x"), &wanted(true), None),
            "--- current /run/service/gateway-x/type (absent)\n\
             +++ planned /run/service/gateway-x/type\n\
             @@ -0,0 +1 @@\n\
             +longrun\n\
             --- current /run/service/gateway-x/run (absent)\n\
             +++ planned /run/service/gateway-x/run\n\
             @@ -0,0 +1,2 @@\n\
             +#!/bin/sh\n\
             +exec app\n",
            "every non-empty file (down is empty)"
        );
    }
}
