//! Observation of the tree: what is on disk now, as plain data, without
//! judging it. Bases are opened with [`fs::resolve_base`]; trees below them
//! are walked with walkdir, never following symlinks and never leaving the
//! file system they start on.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::fs::{self, Base, BaseError, Dir, Kind, Meta};
use crate::layout;

pub mod source;

pub use source::{Disk, OpenBase, Source};

/// One observed entry.
#[derive(Clone, Debug)]
pub struct Node {
    /// Container path, built from the configured base path (what operators see).
    pub path: PathBuf,
    /// Path relative to its base directory (empty for the base itself).
    pub rel: PathBuf,
    pub meta: Meta,
}

impl Node {
    pub fn name(&self) -> &str {
        self.path
            .file_name()
            .and_then(OsStr::to_str)
            .unwrap_or_default()
    }
}

/// A problem met while observing; reported, and the item is left alone.
#[derive(Clone, Debug)]
pub struct ScanError {
    pub op: &'static str,
    pub path: PathBuf,
    pub error: String,
}

/// What was found at a configured base directory.
#[derive(Debug)]
pub enum BaseObs<T> {
    Missing { path: PathBuf },
    Unusable { path: PathBuf, error: String },
    Present(T),
}

/// A walked directory tree: the root first, then descendants (sorted by name,
/// parents before children). Entries on another file system are listed but
/// not descended into.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

/// A static servicedir: the nodes that matter to it (the servicedir
/// itself, `supervise/` and below, `event/`, and the same for a `log/`
/// servicedir), with paths relative to the servicedirs base.
#[derive(Debug)]
pub struct ServiceObs {
    pub name: String,
    pub node: Node,
    pub nodes: Vec<Node>,
}

#[derive(Debug)]
pub struct StaticObs {
    pub base: Node,
    pub services: Vec<ServiceObs>,
    /// Entries of servicedirs that are not real directories.
    pub others: Vec<Node>,
}

#[derive(Debug)]
pub struct ScandirObs {
    pub base: Node,
    pub svscan: Option<Node>,
    /// `.s6-svscan/control` and `.s6-svscan/lock` when present.
    pub svscan_files: Vec<Node>,
    /// Real (non-symlink) slot directories, walked whole.
    pub slots: Vec<Tree>,
    /// Leftover staging entries `.<prefix>*.tmp*` (any type).
    pub staging: Vec<Node>,
}

/// Everything observed, per phase (`None`: phase not selected).
#[derive(Debug, Default)]
pub struct Observed {
    pub static_: Option<BaseObs<StaticObs>>,
    pub scandir: Option<BaseObs<ScandirObs>>,
    pub profiles: Option<ProfilesObs>,
    pub errors: Vec<ScanError>,
}

/// The observer: the real root directory, the held root fd and the
/// untrusted ids (for symlink trust while resolving bases).
pub struct Scanner<'a> {
    pub root_path: &'a Path,
    pub root: &'a Dir,
    pub untrusted: (u32, u32),
    pub errors: Vec<ScanError>,
}

impl<'a> Scanner<'a> {
    pub fn new(root_path: &'a Path, root: &'a Dir, untrusted: (u32, u32)) -> Self {
        Scanner {
            root_path,
            root,
            untrusted,
            errors: Vec::new(),
        }
    }

    /// The disk as a [`Source`], for the reads that already go through one.
    pub fn disk(&self) -> Disk<'a> {
        Disk {
            root: self.root,
            untrusted: self.untrusted,
        }
    }

    /// Open a configured base; the observation says why it is not usable.
    pub fn base(&mut self, path: &Path) -> Result<Base, BaseObs<()>> {
        match fs::resolve_base(self.root, path, self.untrusted) {
            Ok(b) => Ok(b),
            Err(BaseError::Missing) => Err(BaseObs::Missing {
                path: path.to_path_buf(),
            }),
            Err(e) => Err(BaseObs::Unusable {
                path: path.to_path_buf(),
                error: e.to_string(),
            }),
        }
    }

    fn real(&self, container: &Path) -> PathBuf {
        self.root_path
            .join(container.strip_prefix("/").unwrap_or(container))
    }

    /// Walk the tree at `rel` below a base (the base resolved to `resolved`,
    /// displayed as `shown`).
    pub fn walk(&mut self, base: &Base, shown: &Path, rel: &Path) -> Tree {
        let start = self.real(&base.resolved.join(rel));
        let mut nodes = Vec::new();
        let walker = WalkDir::new(&start)
            .follow_links(false)
            .follow_root_links(false)
            .same_file_system(true)
            .sort_by_file_name();
        for item in walker {
            match item {
                Ok(e) => {
                    let sub = e.path().strip_prefix(&start).unwrap_or(Path::new(""));
                    let r = if sub.as_os_str().is_empty() {
                        rel.to_path_buf()
                    } else {
                        rel.join(sub)
                    };
                    match e.metadata() {
                        // walkdir does not descend into another file system
                        // but lists the mount point: it is kept, with its
                        // dev, and the planner skips it.
                        Ok(m) => nodes.push(Node {
                            path: join_shown(shown, &r),
                            rel: r,
                            meta: Meta::from_std(&m),
                        }),
                        Err(err) => self.errors.push(ScanError {
                            op: "stat",
                            path: join_shown(shown, &r),
                            error: err.to_string(),
                        }),
                    }
                }
                Err(err) => {
                    let p = err
                        .path()
                        .and_then(|p| p.strip_prefix(&start).ok())
                        .map(|s| join_shown(shown, &rel.join(s)))
                        .unwrap_or_else(|| join_shown(shown, rel));
                    let msg = err
                        .io_error()
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| err.to_string());
                    self.errors.push(ScanError {
                        op: "read directory",
                        path: p,
                        error: msg,
                    });
                }
            }
        }
        Tree { nodes }
    }

    /// `lstat` of `rel` below a base; `None` when missing.
    pub fn stat(&mut self, base: &Base, shown: &Path, rel: &Path) -> Option<Node> {
        let real = self.real(&base.resolved.join(rel));
        match std::fs::symlink_metadata(&real) {
            Ok(m) => Some(Node {
                path: join_shown(shown, rel),
                rel: rel.to_path_buf(),
                meta: Meta::from_std(&m),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                self.errors.push(ScanError {
                    op: "stat",
                    path: join_shown(shown, rel),
                    error: e.to_string(),
                });
                None
            }
        }
    }

    /// Names in a directory below a base, sorted.
    pub fn list(&mut self, base: &Base, shown: &Path, rel: &Path) -> Vec<String> {
        let dir = if rel.as_os_str().is_empty() {
            base.dir.try_clone()
        } else {
            base.dir.open_beneath(rel)
        };
        match dir.and_then(|d| d.entries()) {
            Ok(names) => names
                .into_iter()
                .filter_map(|n| match n.into_string() {
                    Ok(s) => Some(s),
                    Err(n) => {
                        self.errors.push(ScanError {
                            op: "read directory",
                            path: join_shown(shown, &rel.join(&n)),
                            error: "name is not valid UTF-8; left alone".into(),
                        });
                        None
                    }
                })
                .collect(),
            Err(e) => {
                self.errors.push(ScanError {
                    op: "read directory",
                    path: join_shown(shown, rel),
                    error: e.to_string(),
                });
                Vec::new()
            }
        }
    }

    fn base_node(base: &Base, shown: &Path) -> Node {
        Node {
            path: shown.to_path_buf(),
            rel: PathBuf::new(),
            meta: base.meta,
        }
    }

    /// Observe the static servicedirs.
    pub fn static_dirs(&mut self, servicedirs: &Path) -> BaseObs<StaticObs> {
        let base = match self.base(servicedirs) {
            Ok(b) => b,
            Err(o) => return retype(o),
        };
        let mut services = Vec::new();
        let mut others = Vec::new();
        for name in self.list(&base, servicedirs, Path::new("")) {
            let Some(node) = self.stat(&base, servicedirs, Path::new(&name)) else {
                continue;
            };
            if node.meta.kind != Kind::Dir {
                others.push(node);
                continue;
            }
            services.push(self.service(&base, servicedirs, name, node));
        }
        BaseObs::Present(StaticObs {
            base: Self::base_node(&base, servicedirs),
            services,
            others,
        })
    }

    fn service(&mut self, base: &Base, shown: &Path, name: String, node: Node) -> ServiceObs {
        let mut nodes = Vec::new();
        self.servicedir_nodes(base, shown, &node, &mut nodes);
        let log = self
            .stat(base, shown, &node.rel.join(layout::LOG))
            .filter(|l| l.meta.kind == Kind::Dir && l.meta.dev == node.meta.dev);
        if let Some(log) = log {
            // A log/ directory is a servicedir when it has a run script.
            if self.stat(base, shown, &log.rel.join(layout::RUN)).is_some() {
                self.servicedir_nodes(base, shown, &log, &mut nodes);
                nodes.push(log);
            }
        }
        nodes.sort_by(|a, b| a.rel.cmp(&b.rel));
        ServiceObs { name, node, nodes }
    }

    /// `supervise/` (walked) and `event/` of one servicedir.
    fn servicedir_nodes(&mut self, base: &Base, shown: &Path, dir: &Node, out: &mut Vec<Node>) {
        if let Some(s) = self.stat(base, shown, &dir.rel.join(layout::SUPERVISE)) {
            if s.meta.kind == Kind::Dir && s.meta.dev == dir.meta.dev {
                out.extend(self.walk(base, shown, &s.rel).nodes);
            } else {
                out.push(s);
            }
        }
        out.extend(self.stat(base, shown, &dir.rel.join(layout::EVENT)));
    }

    /// Observe the scandir; `staging_prefix` is `.<slot_prefix>`.
    pub fn scandir(&mut self, scandir: &Path, staging_prefix: &str) -> BaseObs<ScandirObs> {
        let base = match self.base(scandir) {
            Ok(b) => b,
            Err(o) => return retype(o),
        };
        let mut slots = Vec::new();
        let mut staging = Vec::new();
        let mut svscan = None;
        let mut svscan_files = Vec::new();
        for name in self.list(&base, scandir, Path::new("")) {
            let rel = PathBuf::from(&name);
            if name == layout::SVSCAN_DIR {
                svscan = self.stat(&base, scandir, &rel);
                if svscan.as_ref().is_some_and(|n| n.meta.kind == Kind::Dir) {
                    for f in layout::SVSCAN_FILES {
                        if let Some(n) = self.stat(&base, scandir, &rel.join(f)) {
                            svscan_files.push(n);
                        }
                    }
                }
                continue;
            }
            if name
                .strip_prefix(staging_prefix)
                .is_some_and(|rest| rest.contains(".tmp"))
            {
                if let Some(n) = self.stat(&base, scandir, &rel) {
                    staging.push(n);
                }
                continue;
            }
            if name.starts_with('.') {
                continue;
            }
            if let Some(n) = self.stat(&base, scandir, &rel)
                && n.meta.kind == Kind::Dir
                && n.meta.dev == base.meta.dev
            {
                slots.push(self.walk(&base, scandir, &rel));
            }
        }
        BaseObs::Present(ScandirObs {
            base: Self::base_node(&base, scandir),
            svscan,
            svscan_files,
            slots,
            staging,
        })
    }
}

fn retype<T>(o: BaseObs<()>) -> BaseObs<T> {
    match o {
        BaseObs::Missing { path } => BaseObs::Missing { path },
        BaseObs::Unusable { path, error } => BaseObs::Unusable { path, error },
        BaseObs::Present(()) => unreachable!("retype is only called on failures"),
    }
}

/// The displayed container path of `rel` below the base shown as `shown`.
pub fn join_shown(shown: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        shown.to_path_buf()
    } else {
        shown.join(rel)
    }
}

/// How a profile's state file was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateObs {
    Missing,
    Bytes(Vec<u8>),
    /// Not readable as a regular file: the reason (symlink, directory, EACCES...).
    Unreadable(String),
}

/// Where a profile came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileSource {
    Default,
    Directory,
    Declared,
}

/// One candidate profile, as found (valid or not).
#[derive(Clone, Debug)]
pub struct ProfileObs {
    pub name: String,
    pub source: ProfileSource,
    /// `declared` entry's start policy (default `auto`), when declared.
    pub start: Option<crate::config::StartPolicy>,
    /// The profile directory (the home for `default`), when it exists.
    pub dir: Option<Node>,
    /// Why this candidate must be skipped, found while observing.
    pub problem: Option<String>,
    pub state_path: PathBuf,
    pub state: StateObs,
    pub lifecycle: Option<Vec<u8>>,
    /// Stale runtime files present in the profile directory.
    pub stale: Vec<Node>,
}

impl ProfileObs {
    /// A candidate with nothing observed yet (no directory, no state).
    fn new(name: &str, source: ProfileSource, start: Option<crate::config::StartPolicy>) -> Self {
        ProfileObs {
            name: name.to_string(),
            source,
            start,
            dir: None,
            problem: None,
            state_path: PathBuf::new(),
            state: StateObs::Missing,
            lifecycle: None,
            stale: Vec::new(),
        }
    }
}

/// An entry of the scandir whose name is a slot name or a staging name.
#[derive(Clone, Debug)]
pub struct SlotObs {
    pub node: Node,
    /// When a real directory: its tree, with the contents of small regular files.
    pub nodes: Vec<(Node, Option<Vec<u8>>)>,
}

#[derive(Debug)]
pub struct ProfilesObs {
    /// The application's configuration files and the container's command.
    pub app: crate::app::AppObs,
    pub home: BaseObs<Node>,
    pub profiles: Vec<ProfileObs>,
    /// Entries of `<home>/<root>` that are not profiles, with the reason when
    /// worth reporting (a symlink, `default/`).
    pub not_profiles: Vec<(Node, String)>,
    pub scandir: BaseObs<SlotsObs>,
}

#[derive(Debug)]
pub struct SlotsObs {
    pub base: Node,
    /// Non-dot entries starting with the slot prefix, by name.
    pub slots: std::collections::BTreeMap<String, SlotObs>,
    /// Staging entries `.<prefix>*.tmp*`.
    pub staging: Vec<Node>,
}

/// Largest state or lifecycle file read; larger ones are cut (and then
/// most likely fail to parse, which is reported).
const STATE_LIMIT: u64 = 1 << 20;
/// Largest slot file compared by content.
const SLOT_FILE_LIMIT: u64 = 1 << 20;

impl Scanner<'_> {
    /// Observe the profiles phase: the volume and the scandir's slots.
    pub fn profiles(&mut self, cfg: &crate::config::ProfilesConfig, scandir: &Path) -> ProfilesObs {
        let home_path = cfg.home.0.clone();
        let home = self.base(&home_path);
        let mut profiles = Vec::new();
        let mut not_profiles = Vec::new();
        let home_obs = match &home {
            Ok(b) => BaseObs::Present(Self::base_node(b, &home_path)),
            Err(BaseObs::Missing { path }) => BaseObs::Missing { path: path.clone() },
            Err(BaseObs::Unusable { path, error }) => BaseObs::Unusable {
                path: path.clone(),
                error: error.clone(),
            },
            Err(BaseObs::Present(())) => unreachable!(),
        };
        let declared_start = |name: &str| {
            cfg.declared
                .iter()
                .rev()
                .find(|d| d.name == name)
                .map(|d| d.start)
        };
        if cfg.default_slot {
            let default = crate::names::DEFAULT_PROFILE;
            let mut p = ProfileObs::new(default, ProfileSource::Default, declared_start(default));
            p.state_path = home_path.join(&cfg.state_file.0);
            if let Ok(b) = &home {
                p.dir = Some(Self::base_node(b, &home_path));
                self.profile_files(b, &home_path, Path::new(""), cfg, &mut p);
            }
            profiles.push(p);
        }
        let mut named: std::collections::BTreeMap<String, ProfileObs> = Default::default();
        if let Ok(b) = &home {
            let proot = cfg.root.0.clone();
            let listing = match b.dir.open_beneath(&proot) {
                Ok(_) => Some(self.list(b, &home_path, &proot)),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
                // Not a directory: the default profile is still restored.
                Err(e) => match self.stat(b, &home_path, &proot) {
                    Some(n) if n.meta.kind != Kind::Dir => {
                        let what = match n.meta.kind {
                            Kind::Symlink => "is a symlink; not followed".to_string(),
                            k => format!("is a {}, not a directory", k.describe()),
                        };
                        not_profiles
                            .push((n, format!("{what}: only the default profile is restored")));
                        None
                    }
                    _ => {
                        self.errors.push(ScanError {
                            op: "open",
                            path: home_path.join(&proot),
                            error: fs::os_error(&e),
                        });
                        None
                    }
                },
            };
            for name in listing.into_iter().flatten() {
                let rel = proot.join(&name);
                let Some(node) = self.stat(b, &home_path, &rel) else {
                    continue;
                };
                match node.meta.kind {
                    Kind::Dir => {}
                    Kind::Symlink => {
                        named.insert(
                            name.clone(),
                            ProfileObs {
                                problem: Some(format!(
                                    "profile directory {} is a symlink; not followed",
                                    node.path.display()
                                )),
                                ..ProfileObs::new(
                                    &name,
                                    ProfileSource::Directory,
                                    declared_start(&name),
                                )
                            },
                        );
                        continue;
                    }
                    _ => continue,
                }
                if !self.has_marker(b, &node, &cfg.marker.0, &mut not_profiles) {
                    continue;
                }
                if crate::names::is_reserved(&name) {
                    not_profiles.push((
                        node,
                        format!(
                            "{}/default/ collides with the reserved default slot; skipped",
                            proot.display()
                        ),
                    ));
                    continue;
                }
                let mut p = ProfileObs::new(&name, ProfileSource::Directory, declared_start(&name));
                p.dir = Some(node);
                p.state_path = home_path.join(&rel).join(&cfg.state_file.0);
                match crate::names::validate_profile_name(&name, &cfg.slot_prefix) {
                    Ok(()) => self.profile_files(b, &home_path, &rel, cfg, &mut p),
                    Err(e) => p.problem = Some(e.to_string()),
                }
                named.insert(name, p);
            }
        }
        for d in &cfg.declared {
            if d.name == crate::names::DEFAULT_PROFILE || named.contains_key(&d.name) {
                continue;
            }
            let mut p = ProfileObs::new(&d.name, ProfileSource::Declared, Some(d.start));
            // Never build a path from an unvalidated name.
            match crate::names::validate_profile_name(&d.name, &cfg.slot_prefix) {
                Ok(()) => {
                    let rel = cfg.root.0.join(&d.name);
                    p.state_path = home_path.join(&rel).join(&cfg.state_file.0);
                    if let Ok(b) = &home
                        && let Some(node) = self.stat(b, &home_path, &rel)
                    {
                        match node.meta.kind {
                            Kind::Dir => {
                                p.dir = Some(node);
                                self.profile_files(b, &home_path, &rel, cfg, &mut p);
                            }
                            Kind::Symlink => {
                                p.problem =
                                    Some("profile directory is a symlink; not followed".into())
                            }
                            k => {
                                p.problem = Some(format!(
                                    "profile path is a {}, not a directory",
                                    k.describe()
                                ))
                            }
                        }
                    }
                }
                Err(e) => p.problem = Some(e.to_string()),
            }
            named.insert(d.name.clone(), p);
        }
        profiles.extend(named.into_values());

        let scandir_obs = match self.base(scandir) {
            Err(o) => retype(o),
            Ok(b) => {
                let mut slots = std::collections::BTreeMap::new();
                let mut staging = Vec::new();
                for name in self.list(&b, scandir, Path::new("")) {
                    let is_staging = crate::names::is_staging(&name, &cfg.slot_prefix);
                    if !is_staging && !name.starts_with(&cfg.slot_prefix) {
                        continue;
                    }
                    let Some(node) = self.stat(&b, scandir, Path::new(&name)) else {
                        continue;
                    };
                    if is_staging {
                        staging.push(node);
                        continue;
                    }
                    let nodes = if node.meta.kind == Kind::Dir && node.meta.dev == b.meta.dev {
                        self.slot_tree(&b, scandir, &node.rel)
                    } else {
                        Vec::new()
                    };
                    slots.insert(name, SlotObs { node, nodes });
                }
                BaseObs::Present(SlotsObs {
                    base: Self::base_node(&b, scandir),
                    slots,
                    staging,
                })
            }
        };
        let app = match &home {
            Ok(b) => {
                let disk = self.disk();
                let read = |name| crate::app::read::app_file(&disk, &b.dir, name, self.untrusted);
                crate::app::AppObs {
                    gateway_json: read(crate::app::GATEWAY_JSON),
                    config_yaml: read(crate::app::CONFIG_YAML),
                    argv: None,
                }
            }
            Err(_) => crate::app::AppObs::default(),
        };
        ProfilesObs {
            app,
            home: home_obs,
            profiles,
            not_profiles,
            scandir: scandir_obs,
        }
    }

    /// Whether the profile directory `node` holds its marker (a symlink
    /// counts when its target exists for the user); a failed lookup is
    /// reported and the directory is not a profile.
    fn has_marker(
        &mut self,
        b: &Base,
        node: &Node,
        marker: &str,
        not_profiles: &mut Vec<(Node, String)>,
    ) -> bool {
        let found = b.dir.open_beneath(&node.rel).and_then(|d| {
            crate::app::read::marker_exists(&self.disk(), &d, OsStr::new(marker), self.untrusted)
        });
        match found {
            Ok(found) => found,
            Err(e) => {
                let why = format!(
                    "unable to look up its {marker}: {}; not a profile",
                    fs::os_error(&e)
                );
                not_profiles.push((node.clone(), why));
                false
            }
        }
    }

    /// State file, lifecycle file and stale runtime files of one profile dir.
    fn profile_files(
        &mut self,
        b: &Base,
        shown: &Path,
        rel: &Path,
        cfg: &crate::config::ProfilesConfig,
        p: &mut ProfileObs,
    ) {
        let dir = match b.dir.open_beneath(rel) {
            Ok(d) => d,
            Err(e) => {
                p.state = StateObs::Unreadable(fs::os_error(&e));
                return;
            }
        };
        let state_name = OsStr::new(&cfg.state_file.0);
        p.state = match dir.read_file(state_name, STATE_LIMIT) {
            Ok(bytes) => StateObs::Bytes(bytes),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => StateObs::Missing,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                StateObs::Unreadable("is a symlink; not followed".into())
            }
            Err(e) => StateObs::Unreadable(fs::os_error(&e)),
        };
        p.lifecycle = dir
            .open_dir(OsStr::new("state"))
            .and_then(|s| s.read_file(OsStr::new("gateway.lifecycle.json"), STATE_LIMIT))
            .ok();
        for f in &cfg.stale_runtime_files {
            if let Some(n) = self.stat(b, shown, &rel.join(&f.0)) {
                p.stale.push(n);
            }
        }
    }

    /// A slot directory's tree, with the contents of its small regular files
    /// (read through dir fds, never following a symlink).
    fn slot_tree(&mut self, b: &Base, shown: &Path, rel: &Path) -> Vec<(Node, Option<Vec<u8>>)> {
        let tree = self.walk(b, shown, rel);
        let mut out = Vec::with_capacity(tree.nodes.len());
        let mut parent: Option<(PathBuf, Dir)> = None;
        for n in tree.nodes {
            let mut content = None;
            if n.meta.kind == Kind::File
                && n.meta.size <= SLOT_FILE_LIMIT
                && let (Some(dir_rel), Some(name)) = (n.rel.parent(), n.rel.file_name())
            {
                if parent.as_ref().is_none_or(|(p, _)| p != dir_rel) {
                    parent = b
                        .dir
                        .open_beneath(dir_rel)
                        .ok()
                        .map(|d| (dir_rel.to_path_buf(), d));
                }
                content = parent
                    .as_ref()
                    .and_then(|(_, d)| d.read_file(name, SLOT_FILE_LIMIT).ok());
            }
            out.push((n, content));
        }
        out
    }
}
