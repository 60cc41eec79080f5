//! What a profile slot contains (docs/phases.md): its scripts and its supervise
//! skeleton, as data.
//!
//! [`render`] produces the three scripts, [`entries`] lists every entry of a
//! complete slot relative to the slot directory, parents first. The builder
//! creates exactly these entries in the staging dir; the comparer checks an
//! existing slot against them (contents, modes, owners, `down`), ignoring
//! s6-supervise's runtime files ([`layout::is_runtime`]).
//!
//! The skeleton (`event/`, `supervise/`, `supervise/event/`,
//! `supervise/control`, and the same in `log/`) is created ahead of
//! s6-supervise because s6-supervise keeps what it finds on EEXIST: that is
//! how the user gets to control and watch a root-run supervisor.

use std::borrow::Cow;
use std::path::Path;

#[cfg(doc)]
use crate::s6::layout;
use crate::s6::layout::{
    MODE_CONTROL_COMPAT, MODE_EVENT, MODE_FILE, MODE_SCRIPT, MODE_SLOT_DIR, MODE_SUPERVISE_SLOT,
};

mod scripts;

pub use scripts::{Scripts, SlotFiles, render};

/// Contents of `type`.
pub const TYPE_CONTENT: &str = "longrun\n";

/// One entry of a complete slot, `path` relative to the slot directory
/// (`/`-separated, no leading or trailing `/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotEntry {
    Dir {
        path: &'static str,
        mode: u32,
    },
    File {
        path: &'static str,
        mode: u32,
        content: Cow<'static, str>,
    },
    Fifo {
        path: &'static str,
        mode: u32,
    },
}

impl SlotEntry {
    /// The path relative to the slot directory, as text.
    pub fn rel(&self) -> &'static str {
        match self {
            SlotEntry::Dir { path, .. }
            | SlotEntry::File { path, .. }
            | SlotEntry::Fifo { path, .. } => path,
        }
    }

    pub fn path(&self) -> &'static Path {
        Path::new(self.rel())
    }

    /// The directory it goes in (`""`: the slot directory) and its name:
    /// split once at the last `/`, without parsing path components.
    pub fn parent_and_name(&self) -> (&'static str, &'static str) {
        let rel = self.rel();
        // A byte loop: `rsplit_once('/')`'s searcher costs more on names
        // this short.
        match rel.bytes().rposition(|b| b == b'/') {
            Some(i) => (&rel[..i], &rel[i + 1..]),
            None => ("", rel),
        }
    }

    pub fn mode(&self) -> u32 {
        match self {
            SlotEntry::Dir { mode, .. }
            | SlotEntry::File { mode, .. }
            | SlotEntry::Fifo { mode, .. } => *mode,
        }
    }
}

/// Every entry of a complete slot, parents before children; `down` only
/// when the slot is registered but not started.
pub fn entries(files: SlotFiles, down: bool) -> Vec<SlotEntry> {
    let dir = |path, mode| SlotEntry::Dir { path, mode };
    let file = |path, mode, content| SlotEntry::File {
        path,
        mode,
        content,
    };
    let fifo = |path, mode| SlotEntry::Fifo { path, mode };
    let mut v = Vec::with_capacity(14);
    v.extend([
        file("type", MODE_FILE, Cow::Borrowed(TYPE_CONTENT)),
        file("run", MODE_SCRIPT, files.run),
        file("finish", MODE_SCRIPT, files.finish),
    ]);
    if down {
        v.push(file("down", MODE_FILE, Cow::Borrowed("")));
    }
    v.extend([
        dir("event", MODE_EVENT),
        dir("supervise", MODE_SUPERVISE_SLOT),
        dir("supervise/event", MODE_EVENT),
        fifo("supervise/control", MODE_CONTROL_COMPAT),
        dir("log", MODE_SLOT_DIR),
        file("log/run", MODE_SCRIPT, files.log_run),
        dir("log/event", MODE_EVENT),
        dir("log/supervise", MODE_SUPERVISE_SLOT),
        dir("log/supervise/event", MODE_EVENT),
        fifo("log/supervise/control", MODE_CONTROL_COMPAT),
    ]);
    v
}

#[cfg(test)]
mod tests {
    use super::scripts::tests::defaults;
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn entries_of_a_down_slot() {
        let files = defaults("work", false);
        let got: Vec<(String, &str, u32)> = entries(files.clone(), true)
            .iter()
            .map(|e| {
                let kind = match e {
                    SlotEntry::Dir { .. } => "dir",
                    SlotEntry::File { .. } => "file",
                    SlotEntry::Fifo { .. } => "fifo",
                };
                (e.path().display().to_string(), kind, e.mode())
            })
            .collect();
        let want: Vec<(String, &str, u32)> = [
            ("type", "file", 0o644),
            ("run", "file", 0o755),
            ("finish", "file", 0o755),
            ("down", "file", 0o644),
            ("event", "dir", 0o3730),
            ("supervise", "dir", 0o755),
            ("supervise/event", "dir", 0o3730),
            ("supervise/control", "fifo", 0o660),
            ("log", "dir", 0o755),
            ("log/run", "file", 0o755),
            ("log/event", "dir", 0o3730),
            ("log/supervise", "dir", 0o755),
            ("log/supervise/event", "dir", 0o3730),
            ("log/supervise/control", "fifo", 0o660),
        ]
        .into_iter()
        .map(|(p, k, m)| (p.to_string(), k, m))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn entries_contents_and_down() {
        let files = defaults("work", false);
        let up = entries(files.clone(), false);
        assert!(!up.iter().any(|e| e.path() == Path::new("down")));
        assert_eq!(up.len() + 1, entries(files.clone(), true).len());
        let content = |p: &str| {
            up.iter().find_map(|e| match e {
                SlotEntry::File { path, content, .. } if *path == p => Some(content.clone()),
                _ => None,
            })
        };
        assert_eq!(content("type").as_deref(), Some("longrun\n"));
        assert_eq!(content("run"), Some(files.run.clone()));
        assert_eq!(content("finish"), Some(files.finish.clone()));
        assert_eq!(content("log/run"), Some(files.log_run.clone()));
    }

    #[test]
    fn an_entry_splits_into_its_parent_and_name() {
        let split: Vec<_> = entries(defaults("w", false), true)
            .iter()
            .map(|e| e.parent_and_name())
            .collect();
        assert_eq!(split[0], ("", "type"));
        assert!(split.contains(&("log/supervise", "control")));
        for e in entries(defaults("w", false), true) {
            let (parent, name) = e.parent_and_name();
            assert_eq!(Path::new(parent), e.path().parent().unwrap());
            assert_eq!(Some(std::ffi::OsStr::new(name)), e.path().file_name());
        }
    }

    #[test]
    fn entries_are_unique_and_parents_come_first() {
        let list = entries(defaults("work", false), true);
        let mut seen_dirs = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for e in &list {
            assert!(seen.insert(e.path().to_path_buf()), "duplicate {e:?}");
            let parent = e.path().parent().unwrap();
            assert!(
                parent == Path::new("") || seen_dirs.contains(parent),
                "{e:?} before its parent"
            );
            assert!(!crate::s6::layout::is_runtime(e.path()), "{e:?}");
            if let SlotEntry::Dir { path, .. } = e {
                seen_dirs.insert(Path::new(path).to_path_buf());
            }
        }
    }
}
