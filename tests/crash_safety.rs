//! Crash safety of apply (docs/security.md, "Safety"): `reconcile` is killed with
//! SIGKILL at many points of an apply over a tree with many profiles, and
//! after each kill
//!
//! (a) no non-dot entry of the scandir is a half-built slot: every visible
//!     `gateway-*` slot is complete (`type`, `run`, `finish`, `log/run`, and
//!     the supervise skeleton in the slot and in `log/`), its definition is
//!     either the one it had before or the one a clean run gives it, and no
//!     slot that was visible before has gone missing;
//! (b) a following apply (no kill) exits 0 and converges to exactly the tree
//!     a clean apply produces (canonical dump: paths, types, modes, owners,
//!     contents; no inode numbers); the boot log's lines are compared with
//!     the timestamps masked: the recovery run's, after the killed run's if
//!     it got that far.
//!
//! Kill points are deterministic (`tests/common/killpoints.rs`): strace
//! records the mutating system calls of a clean apply in order; then, for
//! every k (sampled evenly over the whole range above [`MAX_KILL_POINTS`]),
//! the apply is rerun on a fresh copy under a seccomp+ptrace tracer that
//! stops only at those calls and sends SIGKILL on entry to the k-th, after
//! checking it is the recorded call. Cross-checks: the tracer's stops match
//! strace's record one to one, and at [`STRACE_KILLS`] of the points strace
//! itself (`--inject=...:signal=KILL:when=N`) kills the run and must leave
//! the very same tree. Last, [`RANDOM_KILLS`] plain runs are killed after
//! pseudo-random delays, without ptrace. The summary line (shown with
//! `--nocapture`) says how many kill points were exercised; fewer than
//! [`MIN_KILL_POINTS`] fail the test.
//!
//! The scenario, a container restart over a volume whose profiles changed
//! since the slots were last published: the default profile and 36 named
//! ones; slots to publish (deleted or new profiles), to replace (an older
//! `run`, a `finish` with another mode), to change only `down` of, one slot
//! still root-owned (the scandir phase chowns it), s6-supervise's root-owned
//! runtime files in some slots, stale runtime files, two leftover staging
//! dirs, no boot log yet, and static servicedirs as s6-rc-init leaves them.
//! Runs go on tmpfs (`/dev/shm`) when there is one, like `/run`.
//!
//! A second sweep does the same for a runtime pass (`--runtime`) after the
//! boot: a profile deleted (its slot retired with `prune` off), one
//! created, a slot edited, the gateways' pid files live.
//!
//! Debugging: `LIST_KILL_POINTS=1` lists the recorded calls by number,
//! `KILL_POINT=k` runs that one kill point only (the test then fails its
//! minimum on purpose).
//!
//! Needs root (owners, privilege drop, ptrace) and strace: fails, never
//! skips, without them.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, lchown};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::killpoints::{self as kp, End, Syscall};
use common::run::scrubbed_cmd;
use common::tree::{self, Content, Entry, Node, Perms};

const USER: u32 = 10000;
const SCANDIR: &str = "run/service";
const PREFIX: &str = "gateway-";
const BOOT_LOG: &str = "opt/data/logs/container-boot.log";
/// Where an apply records its report (docs/runtime.md).
const RECORDS: &str = "run/s6-reconcile/";
/// Named profiles that existed at the previous boot (`p00`..).
const OLD_PROFILES: usize = 32;
/// Profiles added since (`p32`..).
const NEW_PROFILES: usize = 4;
/// The old profile deleted since: its slot is pruned (renamed to its dot
/// name, then removed once its supervisor has let go).
const PRUNED: usize = 30;
/// Profiles of this boot: the default one, the old ones left, the new ones.
const PROFILES_NOW: usize = 1 + OLD_PROFILES - 1 + NEW_PROFILES;
/// Above this many mutating calls, kill points are sampled evenly.
const MAX_KILL_POINTS: usize = 3000;
/// The sweep must exercise at least this many kill points.
const MIN_KILL_POINTS: usize = 500;
/// Kills after pseudo-random delays, without ptrace.
const RANDOM_KILLS: usize = 60;
/// Kill points also killed by strace, to cross-check the tracer.
const STRACE_KILLS: usize = 12;

/// One sweep: the runs it kills and how many kill points it exercises.
struct Sweep {
    name: &'static str,
    /// The arguments of every apply of the sweep (besides `--root`).
    args: &'static [&'static str],
    max_kill_points: usize,
    min_kill_points: usize,
    strace_kills: usize,
    random_kills: usize,
}

/// The boot apply over the restarted container.
const BOOT: Sweep = Sweep {
    name: "boot apply",
    args: &[],
    max_kill_points: MAX_KILL_POINTS,
    min_kill_points: MIN_KILL_POINTS,
    strace_kills: STRACE_KILLS,
    random_kills: RANDOM_KILLS,
};

/// A runtime pass (`--runtime`, docs/runtime.md) after the boot, once a
/// profile was deleted, another created and a slot edited: about 90
/// mutating calls, every one a kill point.
const RUNTIME: Sweep = Sweep {
    name: "runtime pass",
    args: &["--runtime"],
    max_kill_points: 400,
    min_kill_points: 80,
    strace_kills: 4,
    random_kills: 20,
};

/// What every visible slot must hold, with its kind.
const SLOT_REQUIRED: &[(&str, &str)] = &[
    ("type", "file"),
    ("run", "file"),
    ("finish", "file"),
    ("event", "dir"),
    ("supervise", "dir"),
    ("supervise/event", "dir"),
    ("supervise/control", "fifo"),
    ("log", "dir"),
    ("log/run", "file"),
    ("log/event", "dir"),
    ("log/supervise", "dir"),
    ("log/supervise/event", "dir"),
    ("log/supervise/control", "fifo"),
];

// ---------------------------------------------------------------- the tree

fn perms(mode: u32, uid: u32) -> Perms {
    Perms {
        uid,
        gid: uid,
        mode,
    }
}

fn dir(path: &str, mode: u32, uid: u32) -> Entry {
    Entry {
        path: path.into(),
        node: Node::Dir {
            perms: perms(mode, uid),
            mount: false,
        },
    }
}

fn file(path: &str, mode: u32, uid: u32, content: &str) -> Entry {
    Entry {
        path: path.into(),
        node: Node::File {
            perms: perms(mode, uid),
            content: Content::Bytes(content.into()),
            links: None,
        },
    }
}

fn fifo(path: &str, mode: u32, uid: u32) -> Entry {
    Entry {
        path: path.into(),
        node: Node::Fifo {
            perms: perms(mode, uid),
        },
    }
}

fn symlink(path: &str, target: &str) -> Entry {
    Entry {
        path: path.into(),
        node: Node::Symlink {
            uid: 0,
            gid: 0,
            target: target.into(),
        },
    }
}

/// The same entry with owners 0:0 (modes and contents kept).
fn without_owner(node: &Node) -> Node {
    let zero = |p: &Perms| Perms {
        uid: 0,
        gid: 0,
        mode: p.mode,
    };
    match node {
        Node::Dir { perms, mount } => Node::Dir {
            perms: zero(perms),
            mount: *mount,
        },
        Node::File {
            perms,
            content,
            links,
        } => Node::File {
            perms: zero(perms),
            content: content.clone(),
            links: *links,
        },
        Node::Fifo { perms } => Node::Fifo { perms: zero(perms) },
        Node::Symlink { target, .. } => Node::Symlink {
            uid: 0,
            gid: 0,
            target: target.clone(),
        },
        other => other.clone(),
    }
}

/// A static servicedir as s6-rc-init leaves it: root-only supervise tree.
fn servicedir(out: &mut Vec<Entry>, at: &str, run: &str) {
    out.push(dir(at, 0o755, 0));
    out.push(dir(&format!("{at}/event"), 0o3730, 0));
    out.push(file(&format!("{at}/run"), 0o755, 0, run));
    out.push(dir(&format!("{at}/supervise"), 0o700, 0));
    out.push(fifo(&format!("{at}/supervise/control"), 0o600, 0));
    for f in ["death_tally", "lock", "status"] {
        out.push(file(&format!("{at}/supervise/{f}"), 0o644, 0, ""));
    }
    out.push(file(&format!("{at}/type"), 0o644, 0, "longrun\n"));
}

fn state_of(i: usize) -> Option<&'static str> {
    match i % 3 {
        0 => Some("{\"desired_state\": \"running\"}\n"),
        1 => Some("{\"gateway_state\": \"stopped\"}\n"),
        _ => None,
    }
}

fn add_profile(out: &mut Vec<Entry>, i: usize) {
    let p = format!("opt/data/profiles/p{i:02}");
    out.push(dir(&p, 0o755, USER));
    out.push(file(&format!("{p}/SOUL.md"), 0o644, USER, "# soul\n"));
    if let Some(state) = state_of(i) {
        out.push(file(&format!("{p}/gateway_state.json"), 0o644, USER, state));
    }
    if i % 4 == 1 {
        out.push(dir(&format!("{p}/state"), 0o755, USER));
        out.push(file(
            &format!("{p}/state/gateway.lifecycle.json"),
            0o644,
            USER,
            "{\"phase\": \"exited\"}\n",
        ));
    }
}

/// The tree of the previous boot, before its apply.
fn previous_boot() -> Vec<Entry> {
    let mut t = vec![
        dir("etc", 0o755, 0),
        file("etc/group", 0o644, 0, "root:x:0:\nhermes:x:10000:\n"),
        file(
            "etc/passwd",
            0o644,
            0,
            "root:x:0:0:root:/root:/bin/sh\nhermes:x:10000:10000::/opt/data:/bin/sh\n",
        ),
        dir("etc/s6-reconcile", 0o755, 0),
        file(
            "etc/s6-reconcile/config.yaml",
            0o644,
            0,
            "profiles:\n  prune: true\n",
        ),
        dir("opt", 0o755, 0),
        dir("opt/data", 0o755, USER),
        file("opt/data/SOUL.md", 0o644, USER, "# default\n"),
        file(
            "opt/data/gateway_state.json",
            0o644,
            USER,
            "{\"gateway_state\": \"draining\"}\n",
        ),
        dir("opt/data/profiles", 0o755, USER),
    ];
    for i in 0..OLD_PROFILES {
        add_profile(&mut t, i);
    }
    t.extend([
        dir("run", 0o755, 0),
        dir("run/s6-rc", 0o755, 0),
        dir("run/s6-rc/servicedirs", 0o755, 0),
    ]);
    servicedir(
        &mut t,
        "run/s6-rc/servicedirs/nginx",
        "#!/command/execlineb -P\nnginx -g \"daemon off;\"\n",
    );
    servicedir(
        &mut t,
        "run/s6-rc/servicedirs/nginx/log",
        "#!/command/execlineb -P\ns6-log n10 T /var/log/nginx\n",
    );
    servicedir(
        &mut t,
        "run/s6-rc/servicedirs/s6rc-fdholder",
        "#!/command/execlineb -P\ns6-fdholder-daemon -1 -i data/rules -- s\n",
    );
    t.extend([
        dir(SCANDIR, 0o755, 0),
        dir("run/service/.s6-svscan", 0o700, 0),
        fifo("run/service/.s6-svscan/control", 0o600, 0),
        file("run/service/.s6-svscan/lock", 0o600, 0, ""),
        symlink("run/service/nginx", "/run/s6-rc/servicedirs/nginx"),
        symlink(
            "run/service/s6rc-fdholder",
            "/run/s6-rc/servicedirs/s6rc-fdholder",
        ),
    ]);
    t
}

fn chown(p: &Path, uid: u32) {
    lchown(p, Some(uid), Some(uid)).unwrap_or_else(|e| panic!("lchown {}: {e}", p.display()));
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

fn write(p: &Path, content: &str, uid: u32, mode: u32) {
    fs::write(p, content).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    chown(p, uid);
    chmod(p, mode);
}

fn mkdir(p: &Path, uid: u32, mode: u32) {
    fs::create_dir(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
    chown(p, uid);
    chmod(p, mode);
}

fn chown_tree(p: &Path, uid: u32) {
    chown(p, uid);
    if fs::symlink_metadata(p).unwrap().is_dir() {
        for e in fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), uid);
        }
    }
}

/// Turn the tree after the previous boot's apply into this boot's input:
/// what changed in the volume since, and what a restart resets.
fn since_then(root: &Path) {
    let scandir = root.join(SCANDIR);
    let slot = |i: usize| scandir.join(format!("{PREFIX}p{i:02}"));
    let profile = |i: usize| root.join(format!("opt/data/profiles/p{i:02}"));
    for i in 0..OLD_PROFILES {
        match i % 5 {
            // Gone from the scandir: published again.
            4 => fs::remove_dir_all(slot(i)).unwrap(),
            // An older run script: replaced.
            1 => {
                let run = slot(i).join("run");
                let old = fs::read_to_string(&run).unwrap() + "# an older version\n";
                write(&run, &old, USER, 0o755);
            }
            // The operator started or stopped it since: only `down` changes.
            2 => {
                let state = if state_of(i) == state_of(0) {
                    "{\"desired_state\": \"stopped\"}\n"
                } else {
                    "{\"desired_state\": \"running\"}\n"
                };
                write(&profile(i).join("gateway_state.json"), state, USER, 0o644);
            }
            // Published by root long ago: the scandir phase chowns it.
            3 if i == 3 => chown_tree(&slot(i), 0),
            // Another mode: replaced.
            3 => chmod(&slot(i).join("finish"), 0o700),
            _ => {}
        }
        // Supervised before the restart: root's runtime files.
        if i % 6 == 0 && i % 5 != 4 {
            for sup in ["supervise", "log/supervise"] {
                for f in ["lock", "status", "death_tally"] {
                    write(&slot(i).join(sup).join(f), "", 0, 0o644);
                }
            }
        }
        // A previous container's PIDs.
        if i % 4 == 0 {
            write(&profile(i).join("gateway.pid"), "4242\n", USER, 0o644);
            write(&profile(i).join("processes.json"), "[]\n", USER, 0o644);
        }
    }
    write(&root.join("opt/data/gateway.pid"), "4141\n", USER, 0o644);
    fs::remove_dir_all(profile(PRUNED)).unwrap();
    let mut added = Vec::new();
    for i in OLD_PROFILES..OLD_PROFILES + NEW_PROFILES {
        add_profile(&mut added, i);
    }
    for e in &added {
        let p = root.join(&e.path);
        match (&e.node, tree::text(e)) {
            (Node::Dir { perms, .. }, _) => mkdir(&p, perms.uid, perms.mode),
            (Node::File { perms, .. }, Some(t)) => write(&p, t, perms.uid, perms.mode),
            (other, _) => unreachable!("{other:?}"),
        }
    }
    // No boot log yet (the first boot with this tool): apply creates its
    // directory and the file.
    fs::remove_dir_all(root.join("opt/data/logs")).unwrap();
    // Leftovers of an interrupted run: one root's, one the user's.
    let root_staging = scandir.join(format!(".{PREFIX}p07.tmp"));
    mkdir(&root_staging, 0, 0o700);
    write(&root_staging.join("type"), "longrun\n", 0, 0o644);
    let user_staging = scandir.join(format!(".{PREFIX}p12.tmp"));
    mkdir(&user_staging, USER, 0o755);
    write(&user_staging.join("run"), "#!/bin/sh\n", USER, 0o755);
    mkdir(&user_staging.join("log"), USER, 0o700);
    // The restart: s6-rc-init's root-only trees and scanner files again.
    chown(&scandir, 0);
    let svscan = scandir.join(".s6-svscan");
    chown(&svscan, 0);
    chmod(&svscan, 0o700);
    for f in ["control", "lock"] {
        chown(&svscan.join(f), 0);
    }
    for sd in ["nginx", "nginx/log", "s6rc-fdholder"] {
        let sd = root.join("run/s6-rc/servicedirs").join(sd);
        chown(&sd.join("event"), 0);
        chown_tree(&sd.join("supervise"), 0);
        chmod(&sd.join("supervise"), 0o700);
        chmod(&sd.join("supervise/control"), 0o600);
    }
}

// ---------------------------------------------------------------- running

/// A fresh root for one run: `<tmp>/root`, both searchable by the user;
/// side files (traces) go in `<tmp>`. On tmpfs when there is one: `/run` is
/// a tmpfs in a container, and it keeps a sweep of many runs fast.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new(entries: &[Entry]) -> Scratch {
        let mut b = tempfile::Builder::new();
        b.prefix("crash-safety-");
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            b.tempdir_in(shm)
        } else {
            b.tempdir()
        }
        .expect("create temp dir");
        chmod(dir.path(), 0o755);
        let s = Scratch { dir };
        mkdir(&s.root(), 0, 0o755);
        tree::materialise(&s.root(), entries).unwrap_or_else(|e| panic!("materialise: {e}"));
        s
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn side(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn reconcile(root: &Path, args: &[&str]) -> Command {
    let mut cmd = scrubbed_cmd(args);
    cmd.arg("--root").arg(root).stdin(Stdio::null());
    cmd
}

fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn apply_ok(root: &Path, args: &[&str], what: &str) -> Result<(), String> {
    let out = reconcile(root, args)
        .output()
        .map_err(|e| format!("{what}: cannot run reconcile: {e}"))?;
    if out.status.code() == Some(0) {
        Ok(())
    } else {
        Err(format!("{what}: apply did not exit 0: {}", describe(&out)))
    }
}

// ---------------------------------------------------------------- checks

/// The tree canonically, but for the boot log's content (its lines are
/// checked by [`check_converged`]; its type, mode and owner are here).
fn dump(root: &Path) -> String {
    let mut entries = tree::scan(root).unwrap_or_else(|e| panic!("scan: {e}"));
    for e in &mut entries {
        if e.path == BOOT_LOG
            && let Node::File { content, .. } = &mut e.node
        {
            *content = Content::Bytes("(lines compared apart)".into());
        }
        // The recorded report and sequence are the last run's own.
        if e.path.starts_with(RECORDS)
            && let Node::File { content, .. } = &mut e.node
        {
            *content = Content::Bytes("(the run's report)".into());
        }
    }
    tree::render(&entries)
}

fn boot_log(root: &Path) -> String {
    fs::read_to_string(root.join(BOOT_LOG)).unwrap_or_default()
}

/// The boot log lines with their timestamp (first field) masked.
fn masked(lines: &str) -> Vec<String> {
    lines
        .lines()
        .map(|l| match l.split_once(' ') {
            Some((_, rest)) => format!("<ts> {rest}"),
            None => l.to_string(),
        })
        .collect()
}

fn is_runtime(rel: &str) -> bool {
    s6_reconcile::s6::layout::is_supervise_runtime_file(std::path::Path::new(rel))
}

/// A slot's definition: its entries (relative to the slot) with kinds,
/// modes and contents, without owners (the scandir phase may be halfway
/// through a chown), `down` or s6-supervise's runtime files.
type View = Vec<Entry>;

fn view_of<'a>(entries: impl Iterator<Item = &'a Entry>, slot: &str) -> View {
    let prefix = format!("{SCANDIR}/{slot}/");
    entries
        .filter_map(|e| {
            let rel = e.path.strip_prefix(&prefix)?;
            (rel != "down" && !is_runtime(rel)).then(|| Entry {
                path: rel.to_string(),
                node: without_owner(&e.node),
            })
        })
        .collect()
}

fn slot_names(entries: &[Entry]) -> Vec<String> {
    let prefix = format!("{SCANDIR}/{PREFIX}");
    entries
        .iter()
        .filter(|e| e.path.starts_with(&prefix) && !e.path[SCANDIR.len() + 1..].contains('/'))
        .map(|e| e.path[SCANDIR.len() + 1..].to_string())
        .collect()
}

fn kind_name(k: &Node) -> &'static str {
    k.kind_name()
}

/// What the runs are checked against.
struct Reference {
    /// The sweep's apply arguments.
    args: &'static [&'static str],
    input: Vec<Entry>,
    /// The slots and static links visible in the input.
    before: BTreeMap<String, View>,
    static_links: BTreeMap<String, String>,
    /// After a clean apply.
    after: BTreeMap<String, View>,
    dump: String,
    input_log: String,
    run_log: Vec<String>,
}

/// (a): the scandir as s6-svscan sees it after a kill.
fn check_visible(root: &Path, r: &Reference) -> Vec<String> {
    let mut problems = Vec::new();
    let scandir = root.join(SCANDIR);
    let mut seen = Vec::new();
    for e in fs::read_dir(&scandir).expect("read scandir") {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        seen.push(name.clone());
        let path = scandir.join(&name);
        if let Some(target) = r.static_links.get(&name) {
            match fs::read_link(&path) {
                Ok(t) if t == Path::new(target) => {}
                other => problems.push(format!("{name}: static link now {other:?}")),
            }
            continue;
        }
        let md = fs::symlink_metadata(&path).unwrap();
        if !name.starts_with(PREFIX) || !md.is_dir() {
            problems.push(format!("{name}: unexpected visible entry ({md:?})"));
            continue;
        }
        let entries = match tree::scan(&path) {
            Ok(e) => e,
            Err(e) => {
                problems.push(format!("{name}: cannot scan: {e}"));
                continue;
            }
        };
        for (want, kind) in SLOT_REQUIRED {
            match entries.iter().find(|e| e.path == *want) {
                Some(e) if kind_name(&e.node) == *kind => {}
                Some(e) => problems.push(format!(
                    "{name}/{want}: half-built slot: a {} where a {kind} belongs",
                    kind_name(&e.node)
                )),
                None => problems.push(format!("{name}/{want}: half-built slot: missing")),
            }
        }
        if let Some(down) = entries.iter().find(|e| e.path == "down")
            && tree::text(down) != Some("")
        {
            problems.push(format!("{name}/down: not an empty file: {down:?}"));
        }
        let prefixed: Vec<Entry> = entries
            .into_iter()
            .map(|e| Entry {
                path: format!("{SCANDIR}/{name}/{}", e.path),
                ..e
            })
            .collect();
        let view = view_of(prefixed.iter(), &name);
        let matches = [r.before.get(&name), r.after.get(&name)]
            .into_iter()
            .flatten()
            .any(|v| *v == view);
        if !matches {
            problems.push(format!(
                "{name}: visible slot is neither its previous nor its new definition:\n{}",
                tree::render(&view)
            ));
        }
    }
    for name in r.before.keys().chain(r.static_links.keys()) {
        // A pruned slot may be gone (under its dot name, or removed).
        let pruned = r.before.contains_key(name) && !r.after.contains_key(name);
        if !seen.contains(name) && !pruned {
            problems.push(format!("{name}: was visible before, missing now"));
        }
    }
    problems
}

/// (b): after the recovery run.
fn check_converged(root: &Path, r: &Reference) -> Vec<String> {
    let mut problems = Vec::new();
    let got = dump(root);
    if got != r.dump {
        let want: Vec<&str> = r.dump.lines().collect();
        let have: Vec<&str> = got.lines().collect();
        let mut diff = String::new();
        for l in want.iter().filter(|l| !have.contains(l)).take(8) {
            diff += &format!("\n  - {l}");
        }
        for l in have.iter().filter(|l| !want.contains(l)).take(8) {
            diff += &format!("\n  + {l}");
        }
        problems.push(format!(
            "the tree differs from a clean apply's (- clean, + here):{diff}"
        ));
    }
    let log = boot_log(root);
    match log.strip_prefix(&r.input_log) {
        None => problems.push("the boot log lost what it held before".into()),
        Some(added) => {
            let lines = masked(added);
            let once = r.run_log.clone();
            let twice: Vec<String> = once.iter().chain(once.iter()).cloned().collect();
            if lines != once && lines != twice {
                problems.push(format!(
                    "the boot log gained neither the recovery run's lines nor the killed and the recovery run's:\n{}",
                    lines.join("\n")
                ));
            }
        }
    }
    problems
}

/// One kill: check (a), recover, check (b).
fn after_kill(scratch: &Scratch, r: &Reference) -> Vec<String> {
    let root = scratch.root();
    let mut problems = check_visible(&root, r);
    match apply_ok(&root, r.args, "recovery run") {
        Ok(()) => problems.extend(check_converged(&root, r)),
        Err(e) => problems.push(e),
    }
    problems
}

// ---------------------------------------------------------------- the test

fn reference(sweep: &Sweep) -> Reference {
    let prep = Scratch::new(&previous_boot());
    apply_ok(&prep.root(), &[], "previous boot").unwrap();
    since_then(&prep.root());
    let runtime = !sweep.args.is_empty();
    if runtime {
        apply_ok(&prep.root(), &[], "this boot").unwrap();
        since_boot(&prep.root());
    }
    let input = tree::scan(&prep.root()).unwrap();
    drop(prep);

    let clean = Scratch::new(&input);
    apply_ok(&clean.root(), sweep.args, "clean run").unwrap();
    let output = tree::scan(&clean.root()).unwrap();
    let input_log = input
        .iter()
        .find(|e| e.path == BOOT_LOG)
        .map(|e| match tree::text(e) {
            Some(t) => t.to_string(),
            None => panic!("boot log: {e:?}"),
        })
        .unwrap_or_default();
    let run_log = masked(
        boot_log(&clean.root())
            .strip_prefix(&input_log)
            .expect("the clean run appends to the boot log"),
    );
    let lines = if runtime { 0 } else { PROFILES_NOW };
    assert_eq!(
        run_log.len(),
        lines,
        "one boot log line per profile at boot"
    );
    let views = |entries: &[Entry]| {
        slot_names(entries)
            .into_iter()
            .map(|s| {
                let v = view_of(entries.iter(), &s);
                (s, v)
            })
            .collect::<BTreeMap<_, _>>()
    };
    let static_links = input
        .iter()
        .filter_map(|e| match &e.node {
            Node::Symlink { target, .. } => Some((
                e.path.strip_prefix(&format!("{SCANDIR}/"))?.to_string(),
                target.clone(),
            )),
            _ => None,
        })
        .filter(|(n, _)| !n.contains('/'))
        .collect();
    let r = Reference {
        args: sweep.args,
        before: views(&input),
        after: views(&output),
        static_links,
        dump: dump(&clean.root()),
        input_log,
        run_log,
        input,
    };
    // At runtime: one profile deleted, one created since the boot.
    assert_eq!(r.after.len(), PROFILES_NOW);
    // The clean result is a fixed point, and complete.
    assert!(
        check_visible(&clean.root(), &r).is_empty(),
        "{:?}",
        check_visible(&clean.root(), &r)
    );
    apply_ok(&clean.root(), sweep.args, "second clean run").unwrap();
    assert_eq!(
        dump(&clean.root()),
        r.dump,
        "a second apply changed the tree"
    );
    r
}

/// Turn the tree after this boot's apply into a runtime pass's input: the
/// application deleted profile p05 and created p40, p01's slot differs, its gateways run
/// (their pid files are live), and `prune` is off (a runtime pass retires
/// the deleted profile's slot all the same).
fn since_boot(root: &Path) {
    fs::remove_dir_all(root.join("opt/data/profiles/p05")).unwrap();
    let mut added = Vec::new();
    add_profile(&mut added, 40);
    for e in &added {
        let p = root.join(&e.path);
        match (&e.node, tree::text(e)) {
            (Node::Dir { perms, .. }, _) => mkdir(&p, perms.uid, perms.mode),
            (Node::File { perms, .. }, Some(t)) => write(&p, t, perms.uid, perms.mode),
            (other, _) => unreachable!("{other:?}"),
        }
    }
    write(&root.join("opt/data/gateway.pid"), "77\n", USER, 0o644);
    // A slot whose definition differs: replaced (exchanged, then retired).
    let run = root.join(SCANDIR).join(format!("{PREFIX}p01/run"));
    let old = fs::read_to_string(&run).unwrap() + "# edited\n";
    write(&run, &old, USER, 0o755);
    write(
        &root.join("etc/s6-reconcile/config.yaml"),
        "profiles:\n  prune: false\n",
        0,
        0o644,
    );
}

/// The runtime input must make the pass publish and retire, and leave the
/// live pid file.
fn assert_runtime_scenario_covers_every_path(r: &Reference) {
    let s = Scratch::new(&r.input);
    let out = reconcile(&s.root(), &["--runtime", "--plan", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ops: Vec<(String, String)> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["op"].as_str().unwrap().into(),
                c["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    for want in [
        ("publish", "/run/service/gateway-p40"),
        ("remove", "/run/service/gateway-p05"),
        ("replace", "/run/service/gateway-p01"),
    ] {
        assert!(
            ops.iter().any(|(o, p)| o == want.0 && p == want.1),
            "the runtime scenario no longer makes a pass do {want:?}: {ops:?}"
        );
    }
    assert_eq!(ops.len(), 3, "a runtime pass changes nothing else: {ops:?}");
}

/// The input must make apply take every path the sweep is meant to cover.
fn assert_scenario_covers_every_path(r: &Reference) {
    let s = Scratch::new(&r.input);
    let out = reconcile(&s.root(), &["--plan", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let changes = plan["changes"].as_array().expect("changes");
    let has = |phase: &str, op: &str, path_part: &str| {
        changes.iter().any(|c| {
            c["phase"] == phase
                && c["op"] == op
                && c["path"].as_str().is_some_and(|p| p.contains(path_part))
        })
    };
    let wanted = [
        ("static", "chown", "/run/s6-rc/servicedirs/nginx/supervise"),
        ("scandir", "chown", "/run/service/gateway-p03/run"),
        ("scandir", "remove", "/run/service/.gateway-p07.tmp"),
        ("scandir", "remove", "/run/service/.gateway-p12.tmp"),
        ("profiles", "publish", "/run/service/gateway-p04"),
        ("profiles", "publish", "/run/service/gateway-p33"),
        ("profiles", "replace", "/run/service/gateway-p01"),
        ("profiles", "replace", "/run/service/gateway-p08"),
        ("profiles", "remove", "/run/service/gateway-p30"),
        ("profiles", "create", "/run/service/gateway-p12/down"),
        ("profiles", "unlink", "/run/service/gateway-p02/down"),
        ("profiles", "unlink", "/opt/data/profiles/p00/gateway.pid"),
        ("profiles", "unlink", "/opt/data/gateway.pid"),
    ];
    let missing: Vec<_> = wanted
        .iter()
        .filter(|(ph, op, p)| !has(ph, op, p))
        .collect();
    assert!(
        missing.is_empty(),
        "the scenario no longer makes apply do {missing:?}; plan:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Kill points 1..=n, or `max` of them spread evenly (first and last included).
fn sample(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (1..=n).collect();
    }
    let mut ks: Vec<usize> = (0..max).map(|i| 1 + i * (n - 1) / (max - 1)).collect();
    ks.dedup();
    ks
}

fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 4)
}

/// Run `job(i)` for i in 0..n on a few threads; collect the failures.
fn in_parallel(n: usize, job: impl Fn(usize) -> Vec<String> + Sync) -> Vec<(usize, Vec<String>)> {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers() {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let problems = job(i);
                    if !problems.is_empty() {
                        failures.lock().unwrap().push((i, problems));
                    }
                }
            });
        }
    });
    let mut f = failures.into_inner().unwrap();
    f.sort_by_key(|(i, _)| *i);
    f
}

fn report(what: &str, failures: &[(String, Vec<String>)]) -> String {
    let mut s = format!("{} {what} failed:\n", failures.len());
    for (at, problems) in failures.iter().take(5) {
        s += &format!("* {at}:\n");
        for p in problems.iter().take(6) {
            s += &format!("    {}\n", p.replace('\n', "\n    "));
        }
    }
    s
}

/// A deterministic pseudo-random sequence (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The tree with the boot log's timestamps masked (for comparing two kills).
fn dump_masked(root: &Path) -> String {
    let mut entries = tree::scan(root).unwrap_or_else(|e| panic!("scan: {e}"));
    for e in &mut entries {
        if e.path == BOOT_LOG
            && let Node::File {
                content: Content::Bytes(b),
                ..
            } = &mut e.node
        {
            *b = masked(&String::from_utf8_lossy(b)).join("\n").into_bytes();
        }
    }
    tree::render(&entries)
}

/// Kill a run on `scratch` with the tracer on entry to mutating call `k`
/// (1-based), which must be `call`.
fn tracer_kill(scratch: &Scratch, args: &[&str], k: usize, call: &Syscall) -> Result<(), String> {
    let log = scratch.side("killed");
    let mut cmd = reconcile(&scratch.root(), args);
    kp::output_to(&mut cmd, &log).map_err(|e| format!("output files: {e}"))?;
    match kp::run_traced(cmd, Some(k), false) {
        Ok((_, End::Killed(stop))) if stop.key() == call.key() => Ok(()),
        Ok((_, End::Killed(stop))) => Err(format!(
            "killed at {}, not at the recorded call {} (the run is not deterministic?)",
            stop.key(),
            call.key()
        )),
        Ok((_, end)) => Err(format!(
            "the run ended ({end:?}) before mutating call {k}\n{}",
            kp::output_of(&log)
        )),
        Err(e) => Err(format!("tracer: {e}")),
    }
}

#[test]
fn killed_apply_never_shows_a_half_built_slot_and_the_next_run_converges() {
    sweep(&BOOT);
}

/// A runtime pass ended midway (SIGTERM from the next request, or a kill)
/// leaves nothing half-done, and the next pass converges.
#[test]
fn killed_runtime_pass_never_shows_a_half_built_slot_and_the_next_pass_converges() {
    sweep(&RUNTIME);
}

fn sweep(sweep: &Sweep) {
    assert!(
        tree::is_root(),
        "crash-safety test: must run as root (owners, privilege drop, ptrace); run scripts/test.sh as root"
    );
    if let Err(e) = kp::strace_available() {
        panic!("crash-safety test: strace is required (apt-get install strace): {e}");
    }
    // s6-linux-init's umask, whatever the shell's: how far a file created
    // and then chmodded gets before a kill depends on it. (The only test of
    // this binary, so setting it process-wide is safe.)
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0o022) };
    let started = Instant::now();
    let r = reference(sweep);
    if sweep.args.is_empty() {
        assert_scenario_covers_every_path(&r);
    } else {
        assert_runtime_scenario_covers_every_path(&r);
    }

    // The mutating calls of a clean apply, in order, as strace sees them...
    let rec = Scratch::new(&r.input);
    let mut cmd = reconcile(&rec.root(), sweep.args);
    cmd.stdin(Stdio::null());
    let (status, calls) = kp::record(&cmd, &rec.side("trace"), &rec.root())
        .unwrap_or_else(|e| panic!("recording the clean apply with strace: {e}"));
    assert_eq!(
        status.code(),
        Some(0),
        "apply under strace: {status}\n{}",
        kp::output_of(&rec.side("trace"))
    );
    assert_eq!(
        dump(&rec.root()),
        r.dump,
        "the apply under strace differs from a clean one"
    );
    // The boot apply makes every kind of watched call (a runtime pass, a
    // subset of its profiles phase, does not).
    let every_kind = if sweep.args.is_empty() {
        kp::WATCHED
    } else {
        &[]
    };
    for (name, _, _) in every_kind {
        assert!(
            calls.iter().any(|c| c.name == *name),
            "the recorded apply makes no {name} call"
        );
    }
    for flag in ["RENAME_NOREPLACE", "RENAME_EXCHANGE"] {
        assert!(
            calls.iter().any(|c| c.call.contains(flag)),
            "the recorded apply makes no renameat2({flag})"
        );
    }
    if std::env::var_os("LIST_KILL_POINTS").is_some() {
        for (i, c) in calls.iter().enumerate() {
            eprintln!("kill point {}: {}", i + 1, c.call);
        }
    }
    drop(rec);
    // ...and as the tracer stops at them: one to one.
    let rec = Scratch::new(&r.input);
    let mut cmd = reconcile(&rec.root(), sweep.args);
    kp::output_to(&mut cmd, &rec.side("traced")).unwrap();
    let (stops, end) = kp::run_traced(cmd, None, true).expect("tracer");
    assert!(
        matches!(end, End::Exited(0)),
        "traced apply: {end:?}\n{}",
        kp::output_of(&rec.side("traced"))
    );
    assert_eq!(
        dump(&rec.root()),
        r.dump,
        "the traced apply differs from a clean one"
    );
    let (want, got): (Vec<String>, Vec<String>) = (
        calls.iter().map(Syscall::key).collect(),
        stops.iter().map(kp::Stop::key).collect(),
    );
    if let Some(i) = (0..want.len().max(got.len())).find(|&i| want.get(i) != got.get(i)) {
        panic!(
            "the tracer's stops and strace's record differ at mutating call {}: strace {:?}, tracer {:?} ({} vs {} calls)",
            i + 1,
            want.get(i),
            got.get(i),
            want.len(),
            got.len()
        );
    }
    drop(rec);

    // (a) and (b) after a SIGKILL on entry to the k-th mutating call.
    let ks = match std::env::var("KILL_POINT") {
        Ok(k) => vec![k.parse().expect("KILL_POINT=<k>")],
        Err(_) => sample(calls.len(), sweep.max_kill_points),
    };
    let swept = Instant::now();
    let failures: Vec<(String, Vec<String>)> = in_parallel(ks.len(), |i| {
        let k = ks[i];
        let s = Scratch::new(&r.input);
        if let Err(e) = tracer_kill(&s, sweep.args, k, &calls[k - 1]) {
            return vec![e];
        }
        after_kill(&s, &r)
    })
    .into_iter()
    .map(|(i, p)| {
        let k = ks[i];
        (
            format!("kill point {k} of {}: {}", calls.len(), calls[k - 1].call),
            p,
        )
    })
    .collect();
    let sweep_time = swept.elapsed();
    let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
    for k in &ks {
        *by_name.entry(calls[k - 1].name.as_str()).or_default() += 1;
    }

    // Cross-check: strace's own kill at some of the same points leaves the
    // very same tree as the tracer's.
    let strace_ks = sample(calls.len(), sweep.strace_kills);
    let strace_failures: Vec<(String, Vec<String>)> = in_parallel(strace_ks.len(), |i| {
        let k = strace_ks[i];
        let call = &calls[k - 1];
        let a = Scratch::new(&r.input);
        let killed = match kp::strace_kill_at(
            &reconcile(&a.root(), sweep.args),
            call,
            &a.side("trace"),
            &a.root(),
        ) {
            Ok(x) => x,
            Err(e) => return vec![e],
        };
        if !killed.killed || !kp::killed_by_sigkill(&killed.status) {
            return vec![format!(
                "strace did not kill it: {}\n{}",
                killed.status,
                kp::output_of(&a.side("trace"))
            )];
        }
        if killed.last_call.as_deref() != Some(call.call.as_str()) {
            return vec![format!(
                "strace killed it at {:?}, not at the recorded call",
                killed.last_call
            )];
        }
        let b = Scratch::new(&r.input);
        if let Err(e) = tracer_kill(&b, sweep.args, k, call) {
            return vec![e];
        }
        if dump_masked(&a.root()) != dump_masked(&b.root()) {
            return vec!["strace's kill and the tracer's left different trees".into()];
        }
        after_kill(&a, &r)
    })
    .into_iter()
    .map(|(i, p)| {
        let k = strace_ks[i];
        (format!("strace kill point {k}: {}", calls[k - 1].call), p)
    })
    .collect();

    // Kills after pseudo-random delays, no ptrace at all.
    let timing = Scratch::new(&r.input);
    let t0 = Instant::now();
    apply_ok(&timing.root(), sweep.args, "timed run").unwrap();
    let clean_time = t0.elapsed();
    drop(timing);
    let delays: Vec<Duration> = {
        let mut rng = Rng(0x5eed_c0de_1234_5678);
        let span = clean_time.as_micros() as u64 * 3 / 2 + 1;
        (0..sweep.random_kills)
            .map(|_| Duration::from_micros(rng.next() % span))
            .collect()
    };
    let mid_run = AtomicUsize::new(0);
    let random_failures: Vec<(String, Vec<String>)> = in_parallel(sweep.random_kills, |i| {
        let s = Scratch::new(&r.input);
        let mut child = match reconcile(&s.root(), sweep.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => return vec![format!("cannot run reconcile: {e}")],
        };
        std::thread::sleep(delays[i]);
        let _ = child.kill();
        let status = child.wait().expect("wait");
        if kp::killed_by_sigkill(&status) {
            mid_run.fetch_add(1, Ordering::Relaxed);
        } else if status.code() != Some(0) {
            return vec![format!("exited {status} before the kill")];
        }
        after_kill(&s, &r)
    })
    .into_iter()
    .map(|(i, p)| (format!("random kill after {:?}", delays[i]), p))
    .collect();

    eprintln!(
        "crash safety, {}: {} kill points exercised, {} of the {} mutating system calls of a clean apply of {} profiles \
         (by call: {}) in {:.1}s; {} of them also killed by strace; {} kills after random delays, {} of which landed \
         mid-run (clean run {:.0}ms); total {:.1}s",
        sweep.name,
        ks.len() + strace_ks.len() + sweep.random_kills,
        ks.len(),
        calls.len(),
        PROFILES_NOW,
        by_name
            .iter()
            .map(|(n, c)| format!("{n} {c}"))
            .collect::<Vec<_>>()
            .join(", "),
        sweep_time.as_secs_f64(),
        strace_ks.len(),
        sweep.random_kills,
        mid_run.load(Ordering::Relaxed),
        clean_time.as_secs_f64() * 1000.0,
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", report("kill points", &failures));
    assert!(
        strace_failures.is_empty(),
        "{}",
        report("strace kill points", &strace_failures)
    );
    assert!(
        random_failures.is_empty(),
        "{}",
        report("random kills", &random_failures)
    );
    assert!(
        ks.len() >= sweep.min_kill_points,
        "only {} kill points exercised (at least {} wanted)",
        ks.len(),
        sweep.min_kill_points
    );
}
