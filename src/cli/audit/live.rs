//! The live trees: the static servicedirs (`/run/s6-rc/servicedirs`) and
//! the scandir (`/run/service`), observed through a [`Source`] (the disk
//! through held directory fds, or a tree description), never through a
//! symlink. For each servicedir: can the user observe it (`s6-svstat`
//! searches `supervise/` and reads `supervise/lock` and `status`;
//! `s6-svwait` makes a FIFO in `event/`), control it (`s6-svc` writes
//! `supervise/control`), and which of its entries they can change.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::access::{Want, Who};
use super::{Audit, Can, Kind};
use crate::fs::{BaseError, Kind as FsKind, Meta};
use crate::observe::Source;
use crate::s6::layout;

/// Levels below a servicedir looked at (`log/`, `data/`, `env/`...).
pub const MAX_DEPTH: usize = 8;

/// The configured live bases.
pub struct Bases<'a> {
    pub servicedirs: &'a Path,
    pub scandir: &'a Path,
}

fn shown(p: &Path) -> String {
    crate::s6::names::escape(p.as_os_str().as_encoded_bytes())
}

/// Why the user cannot do something: the first thing that stops them, as
/// the line's reason says it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Denied(String);

/// Whether the user may `want` on `m` (at `path`); else why not.
fn check(who: &Who, m: Option<&Meta>, want: Want, path: &Path) -> Result<(), Denied> {
    let Some(m) = m else {
        return Err(Denied(format!("{} is missing", shown(path))));
    };
    if who.may(m, want).is_some() {
        return Ok(());
    }
    let verb = match want {
        Want::Read => "read",
        Want::Write => "write",
        Want::Search => "search",
        Want::Modify => "create entries in",
    };
    Err(Denied(format!(
        "cannot {verb} {} ({}:{} {:04o})",
        shown(path),
        m.uid,
        m.gid,
        m.mode
    )))
}

fn can(r: Result<(), Denied>) -> Can {
    match r {
        Ok(()) => Can::Yes,
        Err(Denied(why)) => Can::No(why),
    }
}

/// An opened base: its directory, `lstat`, whether the user reaches it
/// (else the first directory they cannot search), and where it really is.
struct Top<D> {
    dir: D,
    meta: Meta,
    reach: Result<(), Denied>,
    resolved: PathBuf,
}

/// Audit the live trees into `a`: the static servicedirs, s6-overlay's
/// copies of the legacy services, and the scandir.
pub fn audit<S: Source>(src: &S, who: &Who, bases: &Bases, a: &mut Audit) {
    let sc_name = shown(bases.scandir);
    let mut servicedirs = Vec::new();
    let legacy = Path::new(layout::LEGACY_LIVE);
    for (path, kind) in [(bases.servicedirs, Kind::S6Rc), (legacy, Kind::Legacy)] {
        // Most images have no legacy services: their absence is not news.
        if kind == Kind::Legacy && matches!(src.open_base(path), Err(BaseError::Missing)) {
            continue;
        }
        servicedirs.extend(servicedir_base(src, who, path, kind, &sc_name, a));
    }
    if let Some(top) = base(src, who, bases.scandir, (Kind::Scandir, &sc_name), a) {
        scandir(src, who, &top, bases, &servicedirs, a);
    }
}

/// Each servicedir in the base directory `path`, as a line of `kind`;
/// returns their paths (what the scandir's symlinks may point to).
fn servicedir_base<S: Source>(
    src: &S,
    who: &Who,
    path: &Path,
    kind: Kind,
    sc_name: &str,
    a: &mut Audit,
) -> Vec<PathBuf> {
    let base_name = shown(path);
    let Some(Top {
        dir,
        reach,
        resolved,
        ..
    }) = base(src, who, path, (Kind::Tree, &base_name), a)
    else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (name, m) in entries(src, &dir, path, a) {
        let at = path.join(&name);
        let line = shown(Path::new(&name));
        match (m.kind, src.open_dir(&dir, &name)) {
            (FsKind::Dir, Ok((d, m))) => {
                service(src, who, &d, &m, &at, (kind, &line), &reach, a);
                a.depends((kind, &line), (Kind::Tree, &base_name));
                a.depends((kind, &line), (Kind::Scandir, sc_name));
                // s6-rc's links may name it through the resolved path.
                found.push(resolved.join(&name));
                found.push(at);
            }
            (FsKind::Dir, Err(e)) => a.note(unobservable(&at, &e)),
            (k, _) => a.note(format!(
                "{}: a {}, not a servicedir; not audited",
                shown(&at),
                k.describe()
            )),
        }
    }
    found
}

fn unobservable(path: &Path, e: &crate::fs::Error) -> String {
    format!("not observable: {}: {e}", shown(path))
}

/// The entries of `dir` (at `path`) with their `lstat`; what cannot be
/// listed or stat'ed is said as not observable.
fn entries<S: Source>(
    src: &S,
    dir: &S::Dir,
    path: &Path,
    a: &mut Audit,
) -> Vec<(std::ffi::OsString, Meta)> {
    let list = match src.list(dir) {
        Ok(l) => l,
        Err(e) => {
            a.note(unobservable(path, &e));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for e in list {
        match src.stat(dir, &e.name) {
            Ok(m) => out.push((e.name, m)),
            Err(err) => a.note(unobservable(&path.join(&e.name), &err)),
        }
    }
    out
}

/// Open a configured base; note what stops it. Returns the directory and
/// whether the user can reach it (search on every directory above). The
/// base itself, and each directory above it in which the user can replace
/// the next one, are paths to root on `line` and on their own lines.
fn base<S: Source>(
    src: &S,
    who: &Who,
    path: &Path,
    line: (Kind, &str),
    a: &mut Audit,
) -> Option<Top<S::Dir>> {
    let b = match src.open_base(path) {
        Ok(b) => b,
        Err(BaseError::Missing) => {
            a.note(format!("{}: not present", shown(path)));
            return None;
        }
        Err(e) => {
            a.note(format!("not observable: {}: {e}", shown(path)));
            return None;
        }
    };
    a.line(line.0, line.1);
    if let Some(why) = who.can_change(&b.meta) {
        a.finding(line.0, line.1, path, why);
    }
    let mut reach = check(who, Some(&b.meta), Want::Search, path);
    let (mut child, mut child_path) = (b.meta, b.resolved.clone());
    let mut up = src.open_parent(&b.dir);
    while let Some(parent) = child_path.parent().map(Path::to_path_buf) {
        let (d, m) = match up {
            Ok(x) => x,
            Err(e) => {
                a.note(unobservable(&parent, &e));
                break;
            }
        };
        if let Some(why) = who.can_replace_in(&m, child.uid) {
            let name = shown(&parent);
            a.finding(Kind::Tree, &name, &parent, why);
            a.depends(line, (Kind::Tree, &name));
        }
        let r = check(who, Some(&m), Want::Search, &parent);
        if r.is_err() {
            reach = r;
        }
        up = src.open_parent(&d);
        (child, child_path) = (m, parent);
    }
    Some(Top {
        dir: b.dir,
        meta: b.meta,
        reach,
        resolved: b.resolved,
    })
}

/// The scandir: who can list it and ask s6-svscan to rescan; each real
/// directory in it is a slot; symlinks to the servicedirs are the static
/// services, any other symlink is not followed.
fn scandir<S: Source>(
    src: &S,
    who: &Who,
    top: &Top<S::Dir>,
    bases: &Bases,
    servicedirs: &[PathBuf],
    a: &mut Audit,
) {
    let (dir, reach) = (&top.dir, &top.reach);
    let name = shown(bases.scandir);
    let path = bases.scandir;
    let observe = reach
        .clone()
        .and_then(|()| check(who, Some(&top.meta), Want::Read, path));
    let svscan = path.join(layout::SVSCAN_DIR);
    let control = match src.open_dir(dir, OsStr::new(layout::SVSCAN_DIR)) {
        Ok((d, m)) => {
            let ctl = src.stat(&d, OsStr::new(layout::CONTROL)).ok();
            can(reach
                .clone()
                .and_then(|()| check(who, Some(&m), Want::Search, &svscan))
                .and_then(|()| {
                    check(
                        who,
                        ctl.as_ref(),
                        Want::Write,
                        &svscan.join(layout::CONTROL),
                    )
                }))
        }
        Err(e) if crate::fs::Os::NotFound.is(&e) => {
            Can::Unknown("no s6-svscan: .s6-svscan/ is missing".into())
        }
        Err(e) => Can::Unknown(unobservable(&svscan, &e)),
    };
    let l = a.line(Kind::Scandir, &name);
    l.observe = can(observe);
    l.control = control;
    for (entry, m) in entries(src, dir, path, a) {
        if entry.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let at = path.join(&entry);
        let line = shown(Path::new(&entry));
        match m.kind {
            FsKind::Symlink => {
                let target = src.read_link(dir, &entry).unwrap_or_default();
                if !servicedirs.iter().any(|s| s.as_os_str() == target) {
                    a.note(format!(
                        "{}: a symlink to {}, not followed; not audited",
                        shown(&at),
                        shown(Path::new(&target))
                    ));
                }
            }
            FsKind::Dir => match src.open_dir(dir, &entry) {
                Ok((d, m)) => {
                    service(src, who, &d, &m, &at, (Kind::Slot, &line), reach, a);
                    a.depends((Kind::Slot, &line), (Kind::Scandir, &name));
                }
                Err(e) => a.note(unobservable(&at, &e)),
            },
            _ => {}
        }
    }
}

/// One servicedir `dir` (at `path`, with `meta`): observe, control, and
/// every entry the user can change (supervise/ and event/ are theirs to
/// use, not definitions).
#[allow(clippy::too_many_arguments)]
fn service<S: Source>(
    src: &S,
    who: &Who,
    dir: &S::Dir,
    meta: &Meta,
    path: &Path,
    line: (Kind, &str),
    reach: &Result<(), Denied>,
    a: &mut Audit,
) {
    let reach = reach
        .clone()
        .and_then(|()| check(who, Some(meta), Want::Search, path));
    let (observe, control) = supervision(src, who, dir, path, reach);
    let l = a.line(line.0, line.1);
    (l.observe, l.control) = (observe, control);
    // A servicedir the user can change is theirs whole: one finding, and
    // what is below it is not listed as more.
    match who.can_change(meta) {
        Some(why) => a.finding(line.0, line.1, path, why),
        None => definitions(src, who, dir, path, 0, true, line, a),
    }
}

/// Observe and control of the servicedir `dir` at `path`.
fn supervision<S: Source>(
    src: &S,
    who: &Who,
    dir: &S::Dir,
    path: &Path,
    reach: Result<(), Denied>,
) -> (Can, Can) {
    let sup_path = path.join(layout::SUPERVISE);
    let (sup, sup_meta) = match src.open_dir(dir, OsStr::new(layout::SUPERVISE)) {
        Ok(x) => x,
        Err(e) if crate::fs::Os::NotFound.is(&e) => {
            let why = "not supervised: supervise/ is missing".to_string();
            return (Can::Unknown(why.clone()), Can::Unknown(why));
        }
        Err(e) => {
            let why = unobservable(&sup_path, &e);
            return (Can::Unknown(why.clone()), Can::Unknown(why));
        }
    };
    // What the audit itself cannot stat is not observable, never missing.
    let stat = |name: &str| match src.stat(&sup, OsStr::new(name)) {
        Ok(m) => Ok(Some(m)),
        Err(e) if crate::fs::Os::NotFound.is(&e) => Ok(None),
        Err(e) => Err(Can::Unknown(unobservable(&sup_path.join(name), &e))),
    };
    let reach = reach.and_then(|()| check(who, Some(&sup_meta), Want::Search, &sup_path));
    let control = match (&reach, stat(layout::CONTROL)) {
        (Err(Denied(why)), _) => Can::No(why.clone()),
        (Ok(()), Err(unknown)) => unknown,
        (Ok(()), Ok(None)) => Can::Unknown("not supervised: supervise/control is missing".into()),
        (Ok(()), Ok(Some(m))) => can(check(
            who,
            Some(&m),
            Want::Write,
            &sup_path.join(layout::CONTROL),
        )),
    };
    let observe = match (reach, stat(layout::LOCK), stat(layout::STATUS)) {
        (Err(Denied(why)), _, _) => Can::No(why),
        (Ok(()), Err(unknown), _) | (Ok(()), _, Err(unknown)) => unknown,
        // s6-supervise makes its lock when it starts: none, none running.
        (Ok(()), Ok(None), _) => Can::Unknown("not supervised: supervise/lock is missing".into()),
        (Ok(()), Ok(lock), Ok(status)) => {
            let event = src.stat(dir, OsStr::new(layout::EVENT)).ok();
            let mut r = check(who, lock.as_ref(), Want::Read, &sup_path.join(layout::LOCK));
            if let Some(m) = status {
                r = r.and_then(|()| {
                    check(who, Some(&m), Want::Read, &sup_path.join(layout::STATUS))
                });
            }
            can(r
                .and_then(|()| check(who, event.as_ref(), Want::Modify, &path.join(layout::EVENT))))
        }
    };
    (observe, control)
}

/// The entries below the servicedir `dir` (at `path`, `depth` levels
/// down) the user can change: a directory they can change is a finding
/// and is not entered; a symlink is noted, never followed.
#[allow(clippy::too_many_arguments)]
fn definitions<S: Source>(
    src: &S,
    who: &Who,
    dir: &S::Dir,
    path: &Path,
    depth: usize,
    servicedir: bool,
    line: (Kind, &str),
    a: &mut Audit,
) {
    for (name, m) in entries(src, dir, path, a) {
        if servicedir && (name == layout::SUPERVISE || name == layout::EVENT) {
            continue;
        }
        let at = path.join(&name);
        if m.kind == FsKind::Symlink {
            a.note(format!(
                "{}: a symlink, not followed; what it points to is not audited",
                shown(&at)
            ));
            continue;
        }
        if let Some(why) = who.can_change(&m) {
            a.finding(line.0, line.1, &at, why);
            continue;
        }
        if m.kind != FsKind::Dir {
            continue;
        }
        if depth + 1 >= MAX_DEPTH {
            a.note(format!(
                "{}: deeper than {MAX_DEPTH} levels; not audited",
                shown(&at)
            ));
            continue;
        }
        match src.open_dir(dir, &name) {
            Ok((d, _)) => {
                let log = servicedir && name == layout::LOG;
                definitions(src, who, &d, &at, depth + 1, log, line, a);
            }
            Err(e) => a.note(unobservable(&at, &e)),
        }
    }
}
