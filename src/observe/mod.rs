//! Observation of the tree: what is there now, as plain data, without
//! judging it.
//!
//! Everything is asked of a [`Source`] (the disk through held directory
//! fds, or a tree description), always relative to a directory handle it
//! gave: bases are opened once, entries below them are listed, `lstat`ed,
//! opened and read by single names, never by a path string from the root
//! and never through a symlink. Trees are walked iteratively with a
//! bounded number of open directories (`walk.rs`), so depth costs neither
//! stack nor descriptors. Names are bytes: one that is not UTF-8 or holds
//! a control character is reported as skipped (escaped), never walked.
//!
//! The scandir is observed once per run; both the scandir and the profiles
//! phase plan from that one observation, and apply updates it with what it
//! did ([`Observed::applied`]) instead of observing again.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::desired::model::Phase;
use crate::fs::{self, BaseError, Meta};
use crate::s6::findings::Skipped;

pub(crate) mod application;
mod entries;
mod profiles;
mod servicedirs;
pub(crate) mod source;

mod walk;

pub use entries::Entries;
pub use profiles::{LIFECYCLE_FILE, ProfileObs, ProfileSource, ProfilesObs, StateObs};
pub use servicedirs::{ScandirObs, ServiceObs, SlotObs, StaticObs};
pub use source::{Disk, MAX_OPEN_DIRS, OpenBase, Source};
pub use walk::{RESERVE_PATH_BYTES, TOTAL_PATH_BYTES, TREE_PATH_BYTES};

/// What was read of a regular file (only a slot's files are read).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Content {
    /// Not read: not a regular file, larger than the limit, or not asked.
    #[default]
    NotRead,
    Bytes(Vec<u8>),
    /// Read, and exactly the (non-empty) bytes the slot is expected to
    /// hold there ([`Request::expected`]): compared as it was read, not
    /// kept.
    AsExpected,
    /// Reading failed: why (boxed: rare, and a node is kept per entry).
    Unreadable(Box<crate::s6::findings::Cause>),
}

/// The contents a slot's regular files are expected to hold, by path
/// relative to the slot (`run`, `log/run`).
pub type ExpectedFiles = Vec<(&'static str, std::borrow::Cow<'static, str>)>;

/// What the files of the slot named by its argument are expected to hold
/// (`None`: nothing is expected of it). The scanner asks once per slot
/// and compares each file as it reads it: at 10,000 slots, keeping every
/// slot's scripts until the plan compared them was most of the
/// observation's memory.
pub type Expect<'a> = &'a dyn Fn(&str) -> Option<ExpectedFiles>;

/// One observed entry a base, a servicedir or a profile is known by (what
/// is below a servicedir is kept as [`Entries`]).
#[derive(Clone, Debug)]
pub struct Node {
    /// Container path, built from the configured base path (what operators see).
    pub path: PathBuf,
    /// Path relative to its base directory (empty for the base itself).
    pub rel: PathBuf,
    pub meta: Meta,
}

impl Node {
    /// The last component of the path ("" for a base shown as `/`).
    pub fn name(&self) -> &str {
        self.path
            .file_name()
            .and_then(OsStr::to_str)
            .unwrap_or_default()
    }

    /// The entry `name` of this directory node.
    pub fn child(&self, name: &OsStr, meta: Meta) -> Node {
        Node {
            path: self.path.join(name),
            rel: self.rel.join(name),
            meta,
        }
    }

    fn base(shown: &Path, meta: Meta) -> Node {
        Node {
            path: shown.to_path_buf(),
            rel: PathBuf::new(),
            meta,
        }
    }
}

/// A problem met while observing; reported, and the item is left alone.
#[derive(Clone, Debug)]
pub struct ScanError {
    pub op: &'static str,
    pub path: PathBuf,
    pub error: crate::s6::findings::Cause,
}

/// What was found at a configured base directory.
#[derive(Debug)]
pub enum BaseObs<T> {
    Missing { path: PathBuf },
    Unusable { path: PathBuf, error: String },
    Present(T),
}

impl<T> BaseObs<T> {
    pub fn present(&self) -> Option<&T> {
        match self {
            BaseObs::Present(t) => Some(t),
            _ => None,
        }
    }

    /// The same failure, for another kind of observation.
    fn retype<U>(self) -> BaseObs<U> {
        match self {
            BaseObs::Missing { path } => BaseObs::Missing { path },
            BaseObs::Unusable { path, error } => BaseObs::Unusable { path, error },
            BaseObs::Present(_) => unreachable!("retype is only called on failures"),
        }
    }
}

/// Everything observed. `phases` are the phases to plan; the scandir is
/// observed when the scandir or the profiles phase is selected.
#[derive(Debug, Default)]
pub struct Observed {
    pub phases: Vec<Phase>,
    pub static_: Option<BaseObs<StaticObs>>,
    pub scandir: Option<BaseObs<ScandirObs>>,
    pub profiles: Option<ProfilesObs>,
    pub errors: Vec<ScanError>,
    /// Places the running user may not read (permission denied): what is
    /// below them was not observed, so nothing there is missing, extra or
    /// to change (docs/security.md, "What it observes, and how").
    pub unobserved: Vec<PathBuf>,
    /// The effective uid the observation ran as, for the notices.
    pub uid: u32,
}

impl Observed {
    pub fn has(&self, phase: Phase) -> bool {
        self.phases.contains(&phase)
    }
}

/// What to observe and how.
#[derive(Clone)]
pub struct Request<'a> {
    pub phases: &'a [Phase],
    pub servicedirs: &'a Path,
    pub scandir: &'a Path,
    pub profiles: &'a crate::desired::config::ProfilesConfig,
    /// How the container's command is found (with the profiles phase).
    pub container: &'a crate::desired::config::ContainerConfig,
    /// The unprivileged user's ids: the volume is observed with them.
    pub user: (u32, u32),
    /// Names of static services (and scandir entries) left root-only:
    /// not read at all, only their own entry is looked at.
    pub skip: &'a [crate::desired::config::NameGlob],
    /// What the slots' files are expected to hold (the plan's own
    /// rendering of them), when the profiles phase is observed.
    pub expected: Option<Expect<'a>>,
}

/// Observe what `req` asks for, once.
pub fn observe<'a, S: Source>(src: &'a S, req: &Request<'a>) -> Observed {
    let mut sc = Scanner::new(src);
    sc.skip = req.skip;
    let mut observed = Observed {
        phases: req.phases.to_vec(),
        uid: fs::euid(),
        ..Observed::default()
    };
    let has = |p| req.phases.contains(&p);
    if has(Phase::Static) {
        observed.static_ = Some(sc.static_dirs(req.servicedirs));
    }
    if has(Phase::Scandir) || has(Phase::Profiles) {
        let read = has(Phase::Profiles).then_some(req.profiles.slot_prefix.as_str());
        let staging_of = req.profiles.slot_prefix.as_str();
        let svscan = has(Phase::Scandir);
        sc.expected = req.expected;
        observed.scandir = Some(sc.scandir(req.scandir, staging_of, read, svscan));
    }
    if has(Phase::Profiles) {
        let mut o = sc.profiles_as_user(req.profiles, req.user);
        // `<root>/proc` is the kernel's, not the user's: read as we are.
        o.app.argv = crate::observe::application::container_argv(src, &req.container.wrapper);
        observed.profiles = Some(o);
    }
    observed.errors = sc.errors;
    observed.unobserved = sc.unobserved;
    observed
}

/// The observer over one source; collects the problems it meets.
pub struct Scanner<'s, S: Source> {
    pub src: &'s S,
    pub errors: Vec<ScanError>,
    /// What slots' files are expected to hold (see [`Request::expected`]).
    pub expected: Option<Expect<'s>>,
    /// Skip globs of the static phase (see [`Request::skip`]).
    pub skip: &'s [crate::desired::config::NameGlob],
    /// Places not readable by the running user (see [`Observed::unobserved`]).
    pub unobserved: Vec<PathBuf>,
    /// Observing the user's volume with the user's ids: what the user
    /// cannot read there is a failure, as before.
    in_volume: bool,
    /// Bytes of relative paths the walks have observed so far, against
    /// [`walk::TOTAL_PATH_BYTES`].
    path_bytes: usize,
}

impl<'s, S: Source> Scanner<'s, S> {
    pub fn new(src: &'s S) -> Self {
        Scanner {
            src,
            errors: Vec::new(),
            expected: None,
            skip: &[],
            unobserved: Vec::new(),
            in_volume: false,
            path_bytes: 0,
        }
    }

    /// Open a configured base; the observation says why it is not usable.
    fn base(&mut self, path: &Path) -> Result<(OpenBase<S::Dir>, Node), BaseObs<()>> {
        match self.src.open_base(path) {
            Ok(b) => {
                let node = Node::base(path, b.meta);
                Ok((b, node))
            }
            Err(BaseError::Missing) => Err(BaseObs::Missing {
                path: path.to_path_buf(),
            }),
            Err(e) => Err(BaseObs::Unusable {
                path: path.to_path_buf(),
                error: e.to_string(),
            }),
        }
    }

    /// Whether `name` matches a skip glob: left root-only, not read.
    fn skipped(&self, name: &str) -> bool {
        self.skip.iter().any(|g| g.is_match(name))
    }

    /// Record a failure; a permission the running user lacks in the
    /// servicedirs or the scandir (root has every permission there) is a
    /// place not observed, said once, not an error.
    fn error(&mut self, op: &'static str, path: PathBuf, e: &fs::Error) {
        if e.permission_denied() && !self.in_volume {
            if !self.unobserved.contains(&path) {
                self.unobserved.push(path);
            }
            return;
        }
        self.errors.push(ScanError {
            op,
            path,
            error: e.into(),
        });
    }

    /// The entries of `dir` (shown as `at`) whose names can be used, as
    /// strings; the others go to `bad` with the reason.
    fn list_names(
        &mut self,
        dir: &S::Dir,
        at: &Path,
        bad: &mut Vec<Skipped>,
    ) -> Vec<(String, Option<fs::Kind>)> {
        let entries = match self.src.list(dir) {
            Ok(e) => e,
            Err(e) => {
                self.error("read directory", at.to_path_buf(), &e);
                return Vec::new();
            }
        };
        entries
            .into_iter()
            .filter_map(|e| match e.name.into_string() {
                Ok(s) if crate::s6::names::listed_name_problem(s.as_bytes()).is_none() => {
                    Some((s, e.kind))
                }
                Ok(s) => {
                    bad.push(bad_name(at, s.as_bytes()));
                    None
                }
                Err(n) => {
                    bad.push(bad_name(at, n.as_encoded_bytes()));
                    None
                }
            })
            .collect()
    }

    /// `lstat` of `name` in `dir` (the directory `at`); `None` when missing
    /// or on an error (recorded).
    fn stat(&mut self, dir: &S::Dir, at: &Node, name: &str) -> Option<Node> {
        let m = self.lstat(dir, name, || at.path.join(name))?;
        Some(at.child(OsStr::new(name), m))
    }

    /// `lstat` of `name` in `dir`, `shown` giving its path for an error.
    fn lstat(&mut self, dir: &S::Dir, name: &str, shown: impl FnOnce() -> PathBuf) -> Option<Meta> {
        match self.src.stat(dir, OsStr::new(name)) {
            Ok(m) => Some(m),
            Err(e) if fs::Os::NotFound.is(&e) => None,
            Err(e) => {
                self.error("stat", shown(), &e);
                None
            }
        }
    }
}

/// A skipped entry whose name cannot be used, shown escaped.
fn bad_name(at: &Path, name: &[u8]) -> Skipped {
    let reason = crate::s6::names::listed_name_problem(name).unwrap_or("name refused; left alone");
    Skipped {
        path: at.join(crate::s6::names::escape(name)),
        reason: reason.to_string(),
    }
}
