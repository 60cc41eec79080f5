//! s6's servicedir layout: the one place that knows which entry of a
//! servicedir is what to s6 (definitions, `supervise/`, `control`,
//! s6-supervise's runtime files, `event/`) and the modes reconcile gives
//! them. The scanner, the planner, the slot builder and the tests ask this
//! module; nobody else matches entry names.
//!
//! A servicedir holds its definitions (`run`, `finish`, `type`, `down`,
//! data) and, once supervised, `supervise/` (s6-supervise's lock, status
//! and `control` FIFO) and `event/` (where s6-svwait and friends leave
//! their FIFOs). A `log/` subdirectory with a `run` script is a servicedir
//! of its own, with the same layout.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::fs::Kind;

/// s6-supervise's state directory.
pub const SUPERVISE: &str = "supervise";
/// The file in `supervise/` s6-supervise holds an `fcntl` lock on while
/// it runs (what `s6-svok` tests).
pub const LOCK: &str = "lock";
/// The FIFO in `supervise/` that s6-svc writes commands to.
pub const CONTROL: &str = "control";
/// The fifodir that s6-supervise notifies (`event/`, `supervise/event/`).
pub const EVENT: &str = "event";
/// A servicedir's logger servicedir.
pub const LOG: &str = "log";
/// The run script.
pub const RUN: &str = "run";
/// The finish script.
pub const FINISH: &str = "finish";
/// The service type file (s6-rc's, read by s6-svscan for `longrun`).
pub const TYPE: &str = "type";
/// Present: s6-supervise does not start the service on its own.
pub const DOWN: &str = "down";
/// s6-supervise's status file in `supervise/` (s6-svstat reads it).
pub const STATUS: &str = "status";

/// s6-overlay's definition trees in an image, relative to `/`: what root
/// reads at boot to know what to run. s6-rc's source definitions, the
/// bundles of s6-overlay 3.2.3 and later, the legacy services, and the
/// cont-init and cont-finish scripts.
pub const S6RC_SOURCE: &str = "etc/s6-overlay/s6-rc.d";
pub const USER_BUNDLES: &str = "etc/s6-overlay/user-bundles.d";
pub const LEGACY_SERVICES: &str = "etc/services.d";
pub const CONT_INIT: &str = "etc/cont-init.d";
pub const CONT_FINISH: &str = "etc/cont-finish.d";
pub const DEFINITION_TREES: [&str; 5] = [
    S6RC_SOURCE,
    USER_BUNDLES,
    LEGACY_SERVICES,
    CONT_INIT,
    CONT_FINISH,
];

/// Where s6-overlay copies the legacy services at boot (each linked into
/// the scandir), as a container path.
pub const LEGACY_LIVE: &str = "/run/s6/legacy-services";

/// s6-svscan's own directory in the scandir.
pub const SVSCAN_DIR: &str = ".s6-svscan";
/// Entries of `.s6-svscan/` opened to the user (the control FIFO that
/// s6-svscanctl writes to, and the lock s6-svscan holds).
pub const SVSCAN_FILES: [&str; 2] = ["control", "lock"];

/// Files that s6-supervise rewrites (as root, by write-then-rename) in
/// `supervise/`: never created, chowned or compared.
pub const SUPERVISE_RUNTIME_FILES: &[&str] = &[
    "lock",
    "status",
    "status.new",
    "death_tally",
    "death_tally.new",
];

/// `supervise/` of a static servicedir, and of a slot in strict policy
/// (s6-svperms' mode): the group may search it, which is what s6-svstat
/// and s6-svc need.
pub const MODE_SUPERVISE_STATIC: u32 = 0o710;
/// `supervise/` of a slot's skeleton (compat): searchable by anyone, so
/// that `s6-svstat` can read `supervise/lock`.
pub const MODE_SUPERVISE_SLOT: u32 = 0o755;
/// `event/` and `supervise/event/`: setgid + sticky, the group may create
/// FIFOs (s6-svwait) but only remove its own.
pub const MODE_EVENT: u32 = 0o3730;
/// `supervise/control` in compat: user and group may write (s6-svc).
pub const MODE_CONTROL_COMPAT: u32 = 0o660;
/// `supervise/control` in strict: root reads, the group only writes.
pub const MODE_CONTROL_STRICT: u32 = 0o620;
/// `run`, `finish`, `log/run`.
pub const MODE_SCRIPT: u32 = 0o755;
/// `type` and `down`.
pub const MODE_FILE: u32 = 0o644;
/// A slot directory and its `log/`.
pub const MODE_SLOT_DIR: u32 = 0o755;

/// What an entry is to s6, from its path relative to its servicedir.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The servicedir itself, its scripts and data (definitions).
    Definition,
    SuperviseDir,
    Control,
    /// One of s6-supervise's [`SUPERVISE_RUNTIME_FILES`].
    RuntimeFile,
    /// Anything else below `supervise/`.
    InSupervise,
    EventDir,
    /// What clients left in `event/` (their FIFOs).
    InEvent,
}

/// The components of `rel` (relative) as bytes, with a leading `log/`
/// removed when something follows it (`log/supervise` is the logger's
/// `supervise`). Only the first four are kept: no role depends on more
/// than three, and a fourth still tells a longer path from a shorter one.
/// Split at `/` without allocating (asked for every observed entry).
fn parts(rel: &Path) -> Parts<'_> {
    let mut p = Parts { v: [&[]; 5], n: 0 };
    let comps = rel.as_os_str().as_bytes().split(|&b| b == b'/');
    for c in comps.filter(|c| !c.is_empty() && *c != b".").take(5) {
        p.v[p.n] = c;
        p.n += 1;
    }
    p
}

/// See [`parts`].
struct Parts<'a> {
    v: [&'a [u8]; 5],
    n: usize,
}

impl<'a> Parts<'a> {
    fn as_slice(&self) -> &[&'a [u8]] {
        let all = &self.v[..self.n];
        let all = match all {
            [b"log", rest @ ..] if !rest.is_empty() => rest,
            _ => all,
        };
        &all[..all.len().min(4)]
    }
}

/// Whether `name` is one of s6-supervise's runtime files (a bare name).
pub fn is_runtime_name(name: &[u8]) -> bool {
    SUPERVISE_RUNTIME_FILES.iter().any(|f| f.as_bytes() == name)
}

/// The role of the entry at `rel` (relative to its servicedir) of `kind`.
pub fn role(rel: &Path, kind: Kind) -> Role {
    let (s, c, e) = (SUPERVISE.as_bytes(), CONTROL.as_bytes(), EVENT.as_bytes());
    match parts(rel).as_slice() {
        [d] if *d == s => Role::SuperviseDir,
        [d, f] if *d == s && *f == c && kind == Kind::Fifo => Role::Control,
        [d, f] if *d == s && is_runtime_name(f) => Role::RuntimeFile,
        [d, ..] if *d == s => Role::InSupervise,
        [d] if *d == e => Role::EventDir,
        [d, ..] if *d == e => Role::InEvent,
        _ => Role::Definition,
    }
}

/// What the observer reads of a directory of a servicedir.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Look {
    /// Listed, every entry observed.
    List,
    /// Only these entries, looked up by name.
    Names(&'static [&'static str]),
    /// Not opened: the directory's own entry is all there is to observe.
    Nothing,
}

/// What reconcile seeds in a `supervise/` (and s6-supervise creates when
/// missing): the control FIFO and the fifodir.
pub const SUPERVISE_SEEDED: &[&str] = &[CONTROL, EVENT];

/// What the observer reads of the directory at `rel` (relative to its
/// servicedir; `in_scandir`: a servicedir of the scandir, not a static
/// one). A fifodir (`event/`) holds its listeners' FIFOs, which
/// `s6-ftrigrd` creates and removes: run-time state, never read. In the
/// scandir, `supervise/` is s6-supervise's run-time directory: besides its
/// runtime files only `control` and `event/` are s6's (no s6 tool reads
/// anything else there), so those two are looked up by name and
/// `supervise/event/` is a fifodir like `event/`. A static servicedir's
/// `supervise/` is opened to the user whole, so it is listed
/// (docs/phases.md).
pub fn look(rel: &Path, in_scandir: bool) -> Look {
    let e = EVENT.as_bytes();
    match (role(rel, Kind::Dir), parts(rel).as_slice()) {
        (Role::EventDir, _) => Look::Nothing,
        (Role::InSupervise, [_, d]) if in_scandir && *d == e => Look::Nothing,
        (Role::SuperviseDir, _) if in_scandir => Look::Names(SUPERVISE_SEEDED),
        _ => Look::List,
    }
}

/// Whether s6 gives the entry at `rel` (relative to its servicedir) a
/// meaning: the definitions, `log/`, `supervise/` and what s6-supervise
/// keeps in it, `event/`. What a walk still observes once a tree is over
/// its bound, so that planted entries do not hide the servicedir's own.
pub fn is_known(rel: &Path) -> bool {
    let own = [RUN, FINISH, TYPE, DOWN, LOG, SUPERVISE, EVENT];
    let (s, c, e) = (SUPERVISE.as_bytes(), CONTROL.as_bytes(), EVENT.as_bytes());
    match parts(rel).as_slice() {
        [n] => own.iter().any(|o| o.as_bytes() == *n),
        [d, f] if *d == s => *f == c || *f == e || is_runtime_name(f),
        _ => false,
    }
}

/// `supervise/<runtime file>` or `log/supervise/<runtime file>` (`rel`
/// relative to the servicedir).
pub fn is_supervise_runtime_file(rel: &Path) -> bool {
    matches!(parts(rel).as_slice(), [d, f] if *d == SUPERVISE.as_bytes() && is_runtime_name(f))
}

/// Whether the entry at `rel` (relative to its servicedir) of `kind` is
/// a file that is normally empty: `down` (an empty marker). The scanner
/// `lstat`s it first: when its size is 0, it is not read.
pub fn usually_empty(rel: &Path, kind: Kind) -> bool {
    matches!((parts(rel).as_slice(), kind), ([f], Kind::File) if *f == DOWN.as_bytes())
}

/// Whether `rel` (relative to a slot) is something s6 or its clients put
/// there at run time: s6-supervise's runtime files, and what is inside
/// `event/` or `supervise/event/` (clients' FIFOs). A slot is compared
/// without them.
pub fn is_runtime(rel: &Path) -> bool {
    let (s, e) = (SUPERVISE.as_bytes(), EVENT.as_bytes());
    match parts(rel).as_slice() {
        [d, f] if *d == s && is_runtime_name(f) => true,
        [d, _] if *d == e => true,
        [d, d2, _] if *d == s && *d2 == e => true,
        _ => false,
    }
}

/// Whether `rel` (relative to a slot) is part of the supervise skeleton
/// (`supervise/`, `event/` and everything below them, in the slot or its
/// `log/`): in strict policy it belongs to the user's group.
pub fn in_skeleton(rel: &Path) -> bool {
    rel.iter().any(|c| c == SUPERVISE || c == EVENT)
}

/// Largest slot file compared by content.
pub const SLOT_FILE_LIMIT: u64 = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_entries_are_s6_names_at_their_level() {
        for rel in [
            "run",
            "finish",
            "type",
            "down",
            "log",
            "event",
            "supervise",
            "supervise/control",
            "supervise/event",
            "supervise/status",
            "log/run",
            "log/supervise/control",
        ] {
            assert!(is_known(Path::new(rel)), "{rel}");
        }
        for rel in [
            "junk",
            "run/x",
            "supervise/junk",
            "event/fifo",
            "a/a",
            "log/junk",
        ] {
            assert!(!is_known(Path::new(rel)), "{rel}");
        }
    }

    #[test]
    fn roles_follow_s6_layout() {
        assert_eq!(role(Path::new("supervise"), Kind::Dir), Role::SuperviseDir);
        assert_eq!(
            role(Path::new("supervise/control"), Kind::Fifo),
            Role::Control
        );
        assert_eq!(
            role(Path::new("supervise/control"), Kind::File),
            Role::InSupervise
        );
        assert_eq!(
            role(Path::new("supervise/status"), Kind::File),
            Role::RuntimeFile
        );
        assert_eq!(
            role(Path::new("supervise/death_tally.new"), Kind::File),
            Role::RuntimeFile
        );
        assert_eq!(
            role(Path::new("log/supervise/control"), Kind::Fifo),
            Role::Control
        );
        assert_eq!(role(Path::new("log/event"), Kind::Dir), Role::EventDir);
        assert_eq!(role(Path::new("event/ftrigw:x"), Kind::Fifo), Role::InEvent);
        assert_eq!(role(Path::new("run"), Kind::File), Role::Definition);
        assert_eq!(role(Path::new("log"), Kind::Dir), Role::Definition);
    }

    /// Deep paths keep the role of their first components, and nothing
    /// below `event/` is a runtime file but what is directly in it.
    #[test]
    fn deep_paths() {
        for (p, r) in [
            ("supervise/event/a/b/c", Role::InSupervise),
            ("log/supervise/a/b/c/d", Role::InSupervise),
            ("event/a/b/c/d/e", Role::InEvent),
            ("log/x/y/z/w", Role::Definition),
            ("log", Role::Definition),
            ("./supervise", Role::SuperviseDir),
        ] {
            assert_eq!(role(Path::new(p), Kind::Dir), r, "{p}");
        }
        assert!(is_runtime(Path::new("log/supervise/event/x")));
        assert!(!is_runtime(Path::new("supervise/event/x/y")));
        assert!(!is_runtime(Path::new("event/x/y")));
        assert!(!is_supervise_runtime_file(Path::new("supervise/lock/x")));
    }

    #[test]
    fn what_is_read_of_a_directory() {
        for (p, scandir, want) in [
            ("event", false, Look::Nothing),
            ("log/event", true, Look::Nothing),
            ("supervise/event", true, Look::Nothing),
            ("log/supervise/event", true, Look::Nothing),
            ("supervise", true, Look::Names(SUPERVISE_SEEDED)),
            ("log/supervise", true, Look::Names(SUPERVISE_SEEDED)),
            ("supervise/event", false, Look::List),
            ("supervise", false, Look::List),
            ("log", true, Look::List),
            ("data/supervise", true, Look::List),
            ("supervise/x", true, Look::List),
        ] {
            assert_eq!(look(Path::new(p), scandir), want, "{p} {scandir}");
        }
    }

    #[test]
    fn usually_empty_entries() {
        for (p, k) in [("down", Kind::File), ("log/down", Kind::File)] {
            assert!(usually_empty(Path::new(p), k), "{p}");
        }
        for (p, k) in [
            ("supervise/event", Kind::Dir),
            ("supervise/event", Kind::File),
            ("supervise", Kind::Dir),
            ("event", Kind::Dir),
            ("down", Kind::Dir),
            ("run", Kind::File),
            ("x/down", Kind::File),
        ] {
            assert!(!usually_empty(Path::new(p), k), "{p}");
        }
    }

    #[test]
    fn runtime_files() {
        for p in [
            "supervise/lock",
            "supervise/status",
            "supervise/status.new",
            "supervise/death_tally",
            "supervise/death_tally.new",
            "log/supervise/lock",
            "log/supervise/death_tally",
        ] {
            assert!(is_supervise_runtime_file(Path::new(p)), "{p}");
            assert!(is_runtime(Path::new(p)), "{p}");
        }
        for p in [
            "supervise/control",
            "supervise",
            "lock",
            "status",
            "log/lock",
            "event/lock",
            "x/supervise/lock",
        ] {
            assert!(!is_supervise_runtime_file(Path::new(p)), "{p}");
        }
    }

    #[test]
    fn clients_fifos_are_runtime() {
        for p in [
            "event/ftrigw:x",
            "supervise/event/ftrigw:y",
            "log/event/z",
            "log/supervise/event/z",
        ] {
            assert!(is_runtime(Path::new(p)), "{p}");
        }
        for p in [
            "event",
            "supervise/event",
            "run",
            "log/run",
            "supervise/control",
        ] {
            assert!(!is_runtime(Path::new(p)), "{p}");
        }
    }
}
