//! Observing the persistent volume: which profiles exist (the default one
//! for the home itself, `<home>/<root>/<name>/` with the marker file,
//! declared ones), their state and lifecycle files, and stale runtime
//! files. Observed with the user's credentials when running as root
//! ([`Source::as_user`]), in every mode, so that `--plan` and apply see
//! the same volume.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

use super::{BaseObs, Node, Scanner, Source};
use crate::desired::config::{ProfilesConfig, StartPolicy};
use crate::fs::{self, Kind};
use crate::s6::findings::Skipped;
use crate::s6::names;

/// Largest state or lifecycle file read.
const STATE_LIMIT: u64 = 1 << 20;

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
    pub start: Option<StartPolicy>,
    /// The profile directory (the home for `default`), when it exists.
    pub dir: Option<Node>,
    /// Why this candidate must be skipped, found while observing.
    pub problem: Option<String>,
    pub state: StateObs,
    pub lifecycle: Option<Vec<u8>>,
    /// Why the lifecycle file was there but not read (then the prior exit
    /// is `unknown`, and the plan warns).
    pub lifecycle_problem: Option<String>,
    /// Stale runtime files present in the profile directory.
    pub stale: Vec<Node>,
}

impl ProfileObs {
    /// A candidate with nothing observed yet (no directory, no state).
    pub fn new(name: &str, source: ProfileSource, start: Option<StartPolicy>) -> Self {
        ProfileObs {
            name: name.to_string(),
            source,
            start,
            dir: None,
            problem: None,
            state: StateObs::Missing,
            lifecycle: None,
            lifecycle_problem: None,
            stale: Vec::new(),
        }
    }

    /// Where its state file is, as shown (`cfg`: the configuration it
    /// was observed with): in the home for the default profile, in its
    /// directory for one found there, below `<home>/<root>` for a declared
    /// one; nowhere (empty) for a candidate with a problem. Built when
    /// asked: at 10,000 profiles, kept it was a MiB.
    pub fn state_path(&self, cfg: &ProfilesConfig) -> PathBuf {
        let file = &cfg.state_file.0;
        match (self.source, &self.dir) {
            _ if self.problem.is_some() => PathBuf::new(),
            (ProfileSource::Default, _) => cfg.home.0.join(file),
            (ProfileSource::Declared, _) => cfg.home.0.join(cfg.root.0.join(&self.name)).join(file),
            (ProfileSource::Directory, Some(dir)) => dir.path.join(file),
            (ProfileSource::Directory, None) => PathBuf::new(),
        }
    }
}

#[derive(Debug)]
pub struct ProfilesObs {
    /// The application's configuration files and the container's command.
    pub app: crate::observe::application::AppObs,
    pub home: BaseObs<Node>,
    pub profiles: Vec<ProfileObs>,
    /// Entries of `<home>/<root>` that are not profiles, with the reason when
    /// worth reporting (a symlink, `default/`).
    pub not_profiles: Vec<(Node, String)>,
    /// Entries of `<home>/<root>` whose names cannot be used.
    pub bad_names: Vec<Skipped>,
}

/// What the listing of `<home>/<root>` gives.
#[derive(Default)]
struct Named {
    /// Sorted by name (as the listing is).
    profiles: Vec<ProfileObs>,
    not_profiles: Vec<(Node, String)>,
    bad_names: Vec<Skipped>,
}

impl<S: Source> Scanner<'_, S> {
    /// Observe the volume with the user's credentials (see the module docs).
    pub fn profiles_as_user(&mut self, cfg: &ProfilesConfig, user: (u32, u32)) -> ProfilesObs {
        let src = self.src;
        self.in_volume = true;
        let observed = src.as_user(user, || self.profiles(cfg, user));
        self.in_volume = false;
        match observed {
            Ok(o) => o,
            Err(e) => ProfilesObs {
                app: crate::observe::application::AppObs::default(),
                home: BaseObs::Unusable {
                    path: cfg.home.0.clone(),
                    error: format!(
                        "unable to observe it as uid {} gid {}: {}",
                        user.0, user.1, e
                    ),
                },
                profiles: Vec::new(),
                not_profiles: Vec::new(),
                bad_names: Vec::new(),
            },
        }
    }

    /// Observe the volume with the current credentials (`user`: the ids
    /// a symlink the application follows is followed with).
    pub fn profiles(&mut self, cfg: &ProfilesConfig, user: (u32, u32)) -> ProfilesObs {
        let home_path = &cfg.home.0;
        let home = self.base(home_path);
        let mut default = None;
        if cfg.default_slot {
            let name = names::DEFAULT_PROFILE;
            let start = declared_start(cfg, name);
            let mut p = ProfileObs::new(name, ProfileSource::Default, start);
            if let Ok((b, n)) = &home {
                p.dir = Some(n.clone());
                self.profile_files(&b.dir, n, cfg, &mut p);
            }
            default = Some(p);
        }
        let mut named = Named::default();
        let root = match &home {
            Ok((b, n)) => self.profiles_root(&b.dir, n, &cfg.root.0, &mut named),
            Err(_) => None,
        };
        if let Some((d, n)) = &root {
            self.named_profiles(d, n, cfg, user, &mut named);
        }
        for decl in &cfg.declared {
            let by_name = |p: &ProfileObs| p.name.as_str().cmp(&decl.name);
            let at = match named.profiles.binary_search_by(by_name) {
                _ if decl.name == names::DEFAULT_PROFILE => continue,
                Ok(_) => continue,
                Err(at) => at,
            };
            let p = self.declared(root.as_ref(), cfg, &decl.name, decl.start);
            named.profiles.insert(at, p);
        }
        // The default first; in place: at 10,000 profiles, a copy of them
        // all would be a few MiB more at once.
        let mut profiles = named.profiles;
        if let Some(p) = default {
            profiles.insert(0, p);
        }
        let app = match &home {
            Ok((b, _)) => {
                let read =
                    |name| crate::observe::application::app_file(self.src, &b.dir, name, user);
                crate::observe::application::AppObs {
                    gateway_json: read(crate::desired::application::GATEWAY_JSON),
                    config_yaml: read(crate::desired::application::CONFIG_YAML),
                    argv: None,
                }
            }
            Err(_) => crate::observe::application::AppObs::default(),
        };
        ProfilesObs {
            app,
            home: match home {
                Ok((_, n)) => BaseObs::Present(n),
                Err(o) => o.retype(),
            },
            profiles,
            not_profiles: named.not_profiles,
            bad_names: named.bad_names,
        }
    }

    /// Open `<home>/<root>` one component at a time; `None` when missing,
    /// not a directory (then only the default profile is restored) or
    /// unusable (reported).
    fn profiles_root(
        &mut self,
        home: &S::Dir,
        at: &Node,
        rel: &Path,
        named: &mut Named,
    ) -> Option<(S::Dir, Node)> {
        let mut cur: Option<(S::Dir, Node)> = None;
        for c in rel.components() {
            let Component::Normal(name) = c else {
                continue;
            };
            let (d, n) = match &cur {
                Some((d, n)) => (d, n),
                None => (home, at),
            };
            match self.src.open_dir(d, name) {
                Ok((sub, m)) => cur = Some((sub, n.child(name, m))),
                Err(e) if fs::Os::NotFound.is(&e) => return None,
                Err(e) => {
                    let n = n.clone();
                    match self.src.stat(d, name) {
                        Ok(m) if m.kind != Kind::Dir => {
                            let what = match m.kind {
                                Kind::Symlink => "is a symlink; not followed".to_string(),
                                k => format!("is a {}, not a directory", k.describe()),
                            };
                            let why = format!("{what}: only the default profile is restored");
                            named.not_profiles.push((n.child(name, m), why));
                        }
                        _ => self.error("open", at.path.join(rel), &e),
                    }
                    return None;
                }
            }
        }
        cur
    }

    /// The profile directories listed in `<home>/<root>` (opened as `d`).
    fn named_profiles(
        &mut self,
        d: &S::Dir,
        at: &Node,
        cfg: &ProfilesConfig,
        user: (u32, u32),
        out: &mut Named,
    ) {
        let names = self.list_names(d, &at.path, &mut out.bad_names);
        // Room for every profile without growing: the listing's, the
        // declared ones and the default.
        out.profiles
            .reserve_exact(names.len() + cfg.declared.len() + 1);
        for (name, kind) in names {
            let found = match kind {
                Some(Kind::Dir) | None => self.open_child(d, at, &name),
                Some(Kind::Symlink) => self.stat(d, at, &name).map(|n| (n, None)),
                Some(_) => continue,
            };
            let Some((node, pd)) = found else {
                continue;
            };
            let start = declared_start(cfg, &name);
            let pd = match (node.meta.kind, pd) {
                (Kind::Dir, Some(pd)) => pd,
                (Kind::Symlink, _) => {
                    let mut p = ProfileObs::new(&name, ProfileSource::Directory, start);
                    p.problem = Some(format!(
                        "profile directory {} is a symlink; not followed",
                        node.path.display()
                    ));
                    out.profiles.push(p);
                    continue;
                }
                _ => continue,
            };
            let marker = OsStr::new(&cfg.marker.0);
            match crate::observe::application::marker_exists(self.src, &pd, marker, user) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    let why = format!(
                        "unable to look up its {}: {}; not a profile",
                        cfg.marker.0, e
                    );
                    out.not_profiles.push((node, why));
                    continue;
                }
            }
            if names::is_reserved(&name) {
                let why = format!(
                    "{}/default/ collides with the reserved default slot; skipped",
                    cfg.root.0.display()
                );
                out.not_profiles.push((node, why));
                continue;
            }
            let mut p = ProfileObs::new(&name, ProfileSource::Directory, start);
            match names::validate_profile_name(&name, &cfg.slot_prefix) {
                Ok(()) => self.profile_files(&pd, &node, cfg, &mut p),
                Err(e) => p.problem = Some(e.to_string()),
            }
            p.dir = Some(node);
            out.profiles.push(p);
        }
        // Listed in order already (the names are unique): a check.
        out.profiles.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    }

    /// A `declared` profile without a directory of its own in the listing.
    fn declared(
        &mut self,
        root: Option<&(S::Dir, Node)>,
        cfg: &ProfilesConfig,
        name: &str,
        start: StartPolicy,
    ) -> ProfileObs {
        let mut p = ProfileObs::new(name, ProfileSource::Declared, Some(start));
        // Never build a path from an unvalidated name.
        if let Err(e) = names::validate_profile_name(name, &cfg.slot_prefix) {
            p.problem = Some(e.to_string());
            return p;
        }
        let Some((d, at)) = root else {
            return p;
        };
        match self.open_child(d, at, name) {
            Some((node, Some(pd))) if node.meta.kind == Kind::Dir => {
                self.profile_files(&pd, &node, cfg, &mut p);
                p.dir = Some(node);
            }
            Some((node, _)) if node.meta.kind == Kind::Symlink => {
                p.problem = Some("profile directory is a symlink; not followed".into())
            }
            Some((node, _)) => {
                p.problem = Some(format!(
                    "profile path is a {}, not a directory",
                    node.meta.kind.describe()
                ))
            }
            None => {}
        }
        p
    }

    /// State file, lifecycle file and stale runtime files of one profile
    /// directory (opened as `d`), each looked up by name: a profile
    /// directory is not listed (what is in it besides these is the
    /// application's, and three or four lookups cost fewer calls than a
    /// listing; benches/README.md, "Listing a directory").
    fn profile_files(&mut self, d: &S::Dir, at: &Node, cfg: &ProfilesConfig, p: &mut ProfileObs) {
        p.state = self.state_file(d, OsStr::new(&cfg.state_file.0));
        (p.lifecycle, p.lifecycle_problem) = self.lifecycle_file(d);
        for f in &cfg.stale_runtime_files {
            p.stale.extend(self.stat(d, at, &f.0));
        }
    }

    fn state_file(&mut self, d: &S::Dir, state_name: &OsStr) -> StateObs {
        let read = match self
            .src
            .read_single_link_file(d, None, state_name, STATE_LIMIT)
        {
            Err(e) if fs::Os::Loop.is(&e) => {
                return self.state_link(d, state_name);
            }
            // A socket (or a device) fails the open itself: say what it is,
            // as for the other kinds, not the open's errno.
            Err(e) if !fs::Os::NotFound.is(&e) => match self.src.stat(d, state_name) {
                Ok(m) if m.kind != Kind::File => {
                    return StateObs::Unreadable(format!(
                        "is a {}, not a regular file",
                        m.kind.describe()
                    ));
                }
                _ => Err(e),
            },
            read => read,
        };
        state_obs(read, false)
    }

    /// A state file that is a symlink: followed as the user, inside the
    /// root, to a regular file only (docs/reference-image.md, "Differences from the
    /// reference image"); anything else is "no state" with a warning.
    fn state_link(&mut self, d: &S::Dir, name: &OsStr) -> StateObs {
        match self.src.read_link_in_root(d, name, STATE_LIMIT) {
            Err(e) if crate::fs::Os::NotFound.is(&e) => {
                StateObs::Unreadable("is a symlink to nothing (dangling)".into())
            }
            read => state_obs(read, true),
        }
    }

    /// `state/gateway.lifecycle.json`: its bytes, or why it was there but
    /// not read (a hard link: another name for some other file). Missing
    /// or not a regular file: neither (the prior exit is `unknown`). A
    /// symlink is followed as a state file's is.
    fn lifecycle_file(&mut self, d: &S::Dir) -> (Option<Vec<u8>>, Option<String>) {
        let state = OsStr::new("state");
        let name = OsStr::new(LIFECYCLE_FILE);
        let read = match self
            .src
            .read_single_link_file(d, Some(state), name, STATE_LIMIT)
        {
            Err(e) if fs::Os::Loop.is(&e) => match self.src.open_dir(d, state) {
                Ok((sd, _)) => self.src.read_link_in_root(&sd, name, STATE_LIMIT),
                Err(e) => Err(e),
            },
            read => read,
        };
        match read {
            Ok((m, _)) if m.kind == Kind::File && m.nlink > 1 => (
                None,
                Some(format!(
                    "has {} links (a hard link to another file); not read",
                    m.nlink
                )),
            ),
            Ok((m, bytes)) if m.kind == Kind::File => (bytes, None),
            Ok((m, _)) => (
                None,
                Some(format!("is a {}, not a regular file", m.kind.describe())),
            ),
            Err(_) => (None, None),
        }
    }
}

/// What a state file read gave; `link`: through a followed symlink.
fn state_obs(read: fs::Result<(fs::Meta, Option<Vec<u8>>)>, link: bool) -> StateObs {
    let what = if link {
        "is a symlink to a file"
    } else {
        "is a file"
    };
    match read {
        // Another name for some other file (the user can link a file
        // they cannot write, even a root-only one): its content is not
        // the profile's state, and is never shown.
        Ok((m, _)) if m.kind == Kind::File && m.nlink > 1 && !link => {
            StateObs::Unreadable(format!(
                "has {} links (a hard link to another file); not read",
                m.nlink
            ))
        }
        Ok((m, _)) if m.kind == Kind::File && m.nlink > 1 => StateObs::Unreadable(format!(
            "{what} with {} links (a hard link to another file); not read",
            m.nlink
        )),
        Ok((_, Some(bytes))) => StateObs::Bytes(bytes),
        Ok((m, None)) if m.kind == Kind::File && !link => {
            StateObs::Unreadable(format!("larger than {STATE_LIMIT} bytes; not read"))
        }
        Ok((m, None)) if m.kind == Kind::File => {
            StateObs::Unreadable(format!("{what} larger than {STATE_LIMIT} bytes; not read"))
        }
        Ok((m, None)) if !link => {
            StateObs::Unreadable(format!("is a {}, not a regular file", m.kind.describe()))
        }
        Ok((m, None)) => StateObs::Unreadable(format!(
            "is a symlink to a {}, not a regular file",
            m.kind.describe()
        )),
        Err(e) if fs::Os::NotFound.is(&e) => StateObs::Missing,
        Err(e) if fs::Os::Loop.is(&e) => {
            StateObs::Unreadable("is a symlink that does not end at a file; not followed".into())
        }
        Err(e) => StateObs::Unreadable(e.to_string()),
    }
}

/// The lifecycle file, in a profile's `state/` directory.
pub const LIFECYCLE_FILE: &str = "gateway.lifecycle.json";

fn declared_start(cfg: &ProfilesConfig, name: &str) -> Option<StartPolicy> {
    cfg.declared
        .iter()
        .rev()
        .find(|d| d.name == name)
        .map(|d| d.start)
}
