//! `reconcile audit`: what one user can do to each service, and every
//! path to root (docs/audit.md).
//!
//! Per service (the static s6-rc services, the legacy `services.d`
//! services, the slots in the scandir, the scandir itself) it answers
//! three questions the way the kernel would for that user and all their
//! groups ([`access`]): can they **observe** it (`s6-svstat`,
//! `s6-svwait`), **control** it (`s6-svc`, `s6-svscanctl`), **define** it
//! (change a file or directory that root, or s6-supervise as root, runs
//! from). Every way to define is a path to root, named with the entry and
//! why (owner, group, mode). The live trees are observed through the same
//! [`crate::observe::Source`] the other commands use ([`live`]); the image's
//! definition trees are walked without following links ([`definitions`]).
//! Nothing is changed.

use std::collections::BTreeMap;
use std::path::Path;

pub mod access;
mod command;
mod definitions;
mod live;
pub mod render;

pub use command::run;

use access::Why;

/// What a service is, as the audit groups it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A directory above the definitions or the live trees, or the root of
    /// a definition tree: the services below it follow its line.
    Tree,
    /// The scandir itself.
    Scandir,
    /// A static s6-rc service: its live servicedir and its source definition.
    S6Rc,
    /// A legacy `/etc/services.d` service.
    Legacy,
    /// A real directory in the scandir (a profile slot, or a service
    /// someone put there).
    Slot,
    /// `cont-init.d` and `cont-finish.d` scripts.
    Scripts,
}

/// One of observe or control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Can {
    Yes,
    /// No, and the first thing that stops it.
    No(String),
    /// The audit could not look (an unreadable directory, nothing live).
    Unknown(String),
    /// Not a question for this line.
    NotApplicable,
}

/// A path to root: an entry the user can change that root runs from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Container path, escaped for printing.
    pub path: String,
    pub why: String,
    /// Accepted by the configured policy (compat: the scandir and slots
    /// handed to the configured user).
    pub accepted: bool,
    /// The name of the group through which the user may change it (from
    /// `<root>/etc/group`), when it is a group's and the group has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    /// The user may change it as its owner or through its group, not as
    /// everyone may (what compat hands over is the user's, not everyone's).
    #[serde(skip)]
    pub own: bool,
}

/// One line of the audit.
#[derive(Clone, Debug)]
pub struct Line {
    pub kind: Kind,
    pub name: String,
    pub observe: Can,
    pub control: Can,
    pub paths: Vec<Finding>,
    /// Other lines (by name) whose paths to root also define this one.
    pub via: Vec<String>,
}

impl Line {
    fn new(kind: Kind, name: &str) -> Line {
        let na = if matches!(kind, Kind::Tree | Kind::Scripts) {
            Can::NotApplicable
        } else {
            Can::Unknown("not live: no servicedir observed".into())
        };
        Line {
            kind,
            name: name.to_string(),
            observe: na.clone(),
            control: na,
            paths: Vec::new(),
            via: Vec::new(),
        }
    }

    pub fn define(&self) -> bool {
        !self.paths.is_empty() || !self.via.is_empty()
    }
}

/// Everything the audit found, before rendering.
#[derive(Debug, Default)]
pub struct Audit {
    pub lines: BTreeMap<(Kind, String), Line>,
    /// What could not be looked at, and links not followed.
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
    /// Lines (by name) that other lines depend on: (dependent, parent).
    links: Vec<((Kind, String), (Kind, String))>,
    /// The names of the user's groups, by gid (escaped for printing).
    pub group_names: BTreeMap<u32, String>,
}

impl Audit {
    fn line(&mut self, kind: Kind, name: &str) -> &mut Line {
        self.lines
            .entry((kind, name.to_string()))
            .or_insert_with(|| Line::new(kind, name))
    }

    fn finding(&mut self, kind: Kind, name: &str, path: &Path, why: Why) {
        let path = crate::s6::names::escape(path.as_os_str().as_encoded_bytes());
        let group_name = (why.class == access::Class::Group)
            .then(|| self.group_names.get(&why.gid))
            .flatten()
            .map(|n| crate::s6::names::escape(n.as_bytes()));
        let f = Finding {
            path,
            why: why.describe(group_name.as_deref()),
            group_name,
            accepted: false,
            own: matches!(why.class, access::Class::Owner | access::Class::Group),
        };
        let line = self.line(kind, name);
        if !line.paths.contains(&f) {
            line.paths.push(f);
        }
    }

    /// `line` is defined by whatever defines `parent` too.
    fn depends(&mut self, line: (Kind, &str), parent: (Kind, &str)) {
        let l = (line.0, line.1.to_string());
        let p = (parent.0, parent.1.to_string());
        if !self.links.contains(&(l.clone(), p.clone())) {
            self.links.push((l, p));
        }
    }

    fn note(&mut self, text: String) {
        if !self.notes.contains(&text) {
            self.notes.push(text);
        }
    }

    /// Resolve the dependencies into each line's `via`: a parent line
    /// defined by its own paths or through its own parents, to the end of
    /// the chain (`/run` writable defines the servicedirs, which define
    /// each service).
    fn settle(&mut self) {
        let links = std::mem::take(&mut self.links);
        let mut changed = true;
        while changed {
            changed = false;
            for (l, p) in &links {
                let defined = self.lines.get(p).is_some_and(Line::define);
                if let Some(line) = self.lines.get_mut(l)
                    && defined
                    && !line.via.contains(&p.1)
                {
                    line.via.push(p.1.clone());
                    changed = true;
                }
            }
        }
    }

    /// The paths to root no policy accepts, counted once per path.
    pub fn unaccepted(&self) -> usize {
        self.unique(|f| !f.accepted)
    }

    pub fn accepted(&self) -> usize {
        self.unique(|f| f.accepted)
    }

    fn unique(&self, keep: impl Fn(&Finding) -> bool) -> usize {
        let mut paths: Vec<&str> = self
            .lines
            .values()
            .flat_map(|l| &l.paths)
            .filter(|f| keep(f))
            .map(|f| f.path.as_str())
            .collect();
        paths.sort();
        paths.dedup();
        paths.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_defined_parent_defines_its_lines_to_the_end_of_the_chain() {
        let mut a = Audit::default();
        a.line(Kind::S6Rc, "cron");
        a.line(Kind::Tree, "/run/s6-rc/servicedirs");
        a.line(Kind::Tree, "/run").paths.push(Finding {
            own: true,
            group_name: None,
            path: "/run".into(),
            why: "everyone may write it (0:0 0777)".into(),
            accepted: false,
        });
        // Listed child first: one pass would miss the chain.
        a.depends((Kind::S6Rc, "cron"), (Kind::Tree, "/run/s6-rc/servicedirs"));
        a.depends((Kind::Tree, "/run/s6-rc/servicedirs"), (Kind::Tree, "/run"));
        a.settle();
        let cron = &a.lines[&(Kind::S6Rc, "cron".to_string())];
        assert!(cron.define());
        assert_eq!(cron.via, vec!["/run/s6-rc/servicedirs"]);
        assert_eq!(a.unaccepted(), 1);
    }
}
