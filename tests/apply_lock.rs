//! One apply at a time (docs/security.md, "One apply at a time", src/apply/lock.rs): concurrent applies take
//! turns on `/run/s6-reconcile.lock`, a waiting run says so and gives up
//! with exit 111, `--plan` is never blocked, the unprivileged user can
//! neither take nor hold the lock, and a run that is not root still works.
//!
//! These tests build trees with several owners and act as uid 10000: they
//! need root and fail (never skip) without it.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::s6::{as_user, reconcile};
use common::tree;

const PROFILES: usize = 12;
const ROUNDS: usize = 25;

fn need_root() {
    assert!(
        tree::is_root(),
        "the apply lock tests need root (owners, uid 10000); run them as root"
    );
}

/// A root with accounts, a volume of `PROFILES` named profiles (all
/// running) and an empty scandir, plus `extra` tree lines.
fn root_with(extra: &str) -> tempfile::TempDir {
    need_root();
    let mut yaml = String::from(
        r##"
- {path: etc, type: dir}
- {path: etc/passwd, type: file, content: "root:x:0:0:root:/root:/bin/sh\nhermes:x:10000:10000::/opt/data:/bin/sh\n"}
- {path: etc/group, type: file, content: "root:x:0:\nhermes:x:10000:\n"}
- {path: etc/s6-reconcile, type: dir}
- {path: opt, type: dir}
- {path: opt/data, type: dir, uid: 10000, gid: 10000}
- {path: opt/data/SOUL.md, type: file, uid: 10000, gid: 10000, content: "# default\n"}
- {path: opt/data/profiles, type: dir, uid: 10000, gid: 10000}
- {path: run, type: dir}
- {path: run/service, type: dir}
- {path: run/service/.s6-svscan, type: dir, mode: "0700"}
- {path: run/service/.s6-svscan/lock, type: file, mode: "0600"}
"##,
    );
    for i in 0..PROFILES {
        let dir = format!("opt/data/profiles/p{i:02}");
        yaml += &format!(
            "- {{path: {dir}, type: dir, uid: 10000, gid: 10000}}\n\
             - {{path: {dir}/SOUL.md, type: file, uid: 10000, gid: 10000}}\n\
             - {{path: {dir}/gateway_state.json, type: file, uid: 10000, gid: 10000, \
             content: \"{{\\\"desired_state\\\": \\\"running\\\"}}\"}}\n"
        );
    }
    yaml += extra;
    let dir = tree::temp_root("apply-lock-");
    tree::materialise_yaml(dir.path(), &yaml).unwrap_or_else(|e| panic!("tree: {e}"));
    dir
}

/// A configuration whose `run` template carries `round`, so that every
/// round's apply must replace every slot.
fn write_config(root: &Path, round: usize) {
    let yaml = format!(
        "profiles:\n  templates:\n    run: \"#!/bin/sh\\n# round {round} for {{profile}}\\nexec sleep 1000\\n\"\n"
    );
    fs::write(root.join("etc/s6-reconcile/config.yaml"), yaml).unwrap();
}

fn slot_names() -> Vec<String> {
    std::iter::once("gateway-default".to_string())
        .chain((0..PROFILES).map(|i| format!("gateway-p{i:02}")))
        .collect()
}

/// Every entry of a complete slot (docs/phases.md), but `down`.
const COMPLETE: &[(&str, char)] = &[
    ("type", 'f'),
    ("run", 'f'),
    ("finish", 'f'),
    ("event", 'd'),
    ("supervise", 'd'),
    ("supervise/event", 'd'),
    ("supervise/control", 'p'),
    ("log", 'd'),
    ("log/run", 'f'),
    ("log/event", 'd'),
    ("log/supervise", 'd'),
    ("log/supervise/event", 'd'),
    ("log/supervise/control", 'p'),
];

/// What is wrong with the slot at `dir` as a watcher sees it, if anything:
/// missing, or not complete. An entry that vanishes while it is being looked
/// at (the old tree being removed after a swap) is checked again through
/// the slot's name.
fn slot_problem(dir: &Path, run_prefix: &str) -> Option<String> {
    let md = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) => return Some(format!("{}: {e}", dir.display())),
    };
    if !md.is_dir() {
        return Some(format!("{}: not a directory", dir.display()));
    }
    for (rel, kind) in COMPLETE {
        let p = dir.join(rel);
        let ok = match fs::symlink_metadata(&p) {
            Ok(m) => match kind {
                'f' => m.is_file(),
                'd' => m.is_dir(),
                _ => m.file_type().is_fifo(),
            },
            Err(_) => false,
        };
        if !ok {
            // The name may have been swapped to a newer complete slot
            // between the two lookups: only a slot that is incomplete
            // under the same inode counts.
            let again = fs::symlink_metadata(dir).map(|m| m.ino()).ok();
            if again == Some(md.ino()) {
                return Some(format!("{}: {rel} missing or wrong kind", dir.display()));
            }
        }
    }
    let run = fs::read_to_string(dir.join("run")).unwrap_or_default();
    let again = fs::symlink_metadata(dir).map(|m| m.ino()).ok();
    if !run.starts_with(run_prefix) && again == Some(md.ino()) {
        return Some(format!("{}: run is {run:?}", dir.display()));
    }
    None
}

/// Polls every slot of the scandir until told to stop; returns what it saw
/// wrong and how many passes it made.
fn watch(scandir: PathBuf, stop: Arc<AtomicBool>, passes: Arc<AtomicUsize>) -> Vec<String> {
    let names = slot_names();
    let mut problems = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        for n in &names {
            if let Some(p) = slot_problem(&scandir.join(n), "#!/bin/sh\n# round ") {
                problems.push(p);
            }
        }
        passes.fetch_add(1, Ordering::Relaxed);
    }
    problems
}

fn spawn_apply(root: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .arg("--root")
        .arg(root)
        .args(["--format", "json"])
        .env_remove("HERMES_HOME")
        .env_remove("S6_PROFILE_GATEWAY_SCANDIR")
        .env_remove("GATEWAY_MULTIPLEX_PROFILES")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn reconcile")
}

#[test]
fn two_applies_at_once_never_show_a_missing_or_half_built_slot() {
    let tmp = root_with("");
    let root = tmp.path();
    write_config(root, 0);
    reconcile(root, &[]).assert_ok();
    let scandir = root.join("run/service");

    let stop = Arc::new(AtomicBool::new(false));
    let passes = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (s, st, p) = (scandir.clone(), stop.clone(), passes.clone());
        std::thread::spawn(move || watch(s, st, p))
    };
    let mut failures = Vec::new();
    for round in 1..=ROUNDS {
        write_config(root, round);
        let a = spawn_apply(root);
        let b = spawn_apply(root);
        for (who, child) in [("first", a), ("second", b)] {
            let out = child.wait_with_output().unwrap();
            if out.status.code() != Some(0) {
                failures.push(format!(
                    "round {round}: {who} apply exited {:?}:\n{}{}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        for n in slot_names() {
            let run = fs::read_to_string(scandir.join(&n).join("run")).unwrap_or_default();
            if !run.starts_with(&format!("#!/bin/sh\n# round {round} for")) {
                failures.push(format!("round {round}: {n}/run is {run:?}"));
            }
        }
        // Only the slots: no staging dir is left behind by either run.
        let mut names: Vec<String> = fs::read_dir(&scandir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".s6-svscan")
            .collect();
        names.sort();
        if names != slot_names() {
            failures.push(format!("round {round}: scandir holds {names:?}"));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        seen.is_empty(),
        "the watcher saw {} problems, first: {:#?}",
        seen.len(),
        &seen[..seen.len().min(10)]
    );
    assert!(passes.load(Ordering::Relaxed) > 0, "the watcher never ran");
}

/// Holds the apply lock of `root` the way another apply would: an
/// exclusive flock on the file, as root.
fn hold_lock(root: &Path) -> nix::fcntl::Flock<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = fs::OpenOptions::new()
        .mode(0o600)
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(root.join("run/s6-reconcile.lock"))
        .unwrap();
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .expect("take the lock")
}

#[test]
fn a_waiting_apply_says_so_then_gives_up_with_111_and_changes_nothing() {
    let tmp = root_with("");
    let root = tmp.path();
    let before = tree::dump(root);
    let held = hold_lock(root);
    let before_with_lock = tree::dump(root);

    let start = Instant::now();
    let r = reconcile(root, &["--lock-wait", "1"]);
    let waited = start.elapsed();
    assert_eq!(r.code, Some(111), "{r}");
    assert!(
        r.stderr.contains(
            "reconcile: warn: another apply holds /run/s6-reconcile.lock; waiting up to 1 s for it to finish\n"
        ),
        "{r}"
    );
    assert!(
        r.stderr.contains(
            "reconcile: fatal: another apply still holds the lock /run/s6-reconcile.lock after 1 s; giving up (nothing was changed)\n"
        ),
        "{r}"
    );
    assert!(
        !r.stderr.contains(&root.display().to_string()),
        "container paths only: {r}"
    );
    assert!(waited >= Duration::from_secs(1), "gave up after {waited:?}");
    assert_eq!(tree::dump(root), before_with_lock, "nothing may change");

    // --plan and --check never wait for the lock.
    let plan = reconcile(root, &["--plan", "--lock-wait", "0"]);
    assert_eq!(plan.code, Some(0), "{plan}");
    assert!(
        plan.stdout.contains("publish /run/service/gateway-p00"),
        "{plan}"
    );
    let check = reconcile(root, &["--check", "--lock-wait", "0"]);
    assert_eq!(check.code, Some(3), "{check}");

    // Once it is released, the next apply goes through at once.
    drop(held);
    let r = reconcile(root, &["--lock-wait", "0"]);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(!r.stderr.contains("waiting"), "{r}");
    assert_ne!(tree::dump(root), before);
}

#[test]
fn the_user_can_neither_take_nor_hold_the_lock() {
    let tmp = root_with("");
    let root = tmp.path();
    let lock = root.join("run/s6-reconcile.lock");
    // Before any apply: the user may not create it...
    let r = as_user(&[
        Path::new("/usr/bin/flock"),
        Path::new("-n"),
        &lock,
        Path::new("true"),
    ]);
    assert!(!r.success(), "{r}");
    assert!(!lock.exists(), "the user created the lock file");
    // ...and after one, may not open it (flock needs an open file).
    reconcile(root, &[]).assert_ok();
    let md = fs::symlink_metadata(&lock).unwrap();
    assert_eq!(
        (md.is_file(), md.uid(), md.gid(), md.mode() & 0o7777),
        (true, 0, 0, 0o600)
    );
    let r = as_user(&[
        Path::new("/usr/bin/flock"),
        Path::new("-n"),
        &lock,
        Path::new("true"),
    ]);
    assert!(!r.success(), "{r}");
    assert!(r.stderr.contains("Permission denied"), "{r}");
}

#[test]
fn a_lock_dir_the_user_can_write_is_refused_before_anything_is_done() {
    let tmp = root_with("");
    let root = tmp.path();
    common::s6::set_mode(&root.join("run"), 0o1777);
    let before = tree::dump(root);
    let r = reconcile(root, &[]);
    assert_eq!(r.code, Some(111), "{r}");
    assert!(
        r.stderr.contains(
            "reconcile: fatal: refusing the apply lock /run/s6-reconcile.lock: /run is writable by uid 10000 or gid 10000, who could take or hold it\n"
        ),
        "{r}"
    );
    assert_eq!(tree::dump(root), before);
}

#[test]
fn a_lock_file_others_can_open_is_refused() {
    let tmp = root_with("- {path: run/s6-reconcile.lock, type: file, mode: \"0644\"}\n");
    let root = tmp.path();
    let r = reconcile(root, &[]);
    assert_eq!(r.code, Some(111), "{r}");
    assert!(
        r.stderr.contains(
            "reconcile: fatal: refusing the apply lock /run/s6-reconcile.lock: has mode 0644: others could open and hold it\n"
        ),
        "{r}"
    );
}

#[test]
fn an_apply_that_is_not_root_goes_on_without_the_lock() {
    // After boot (the scandir phase gave the user the scandir), the user
    // re-runs the profiles phase.
    let tmp = root_with("");
    let root = tmp.path();
    let scandir = root.join("run/service");
    reconcile(root, &["--phase", "static", "--phase", "scandir"]).assert_ok();
    let held = hold_lock(root);
    let bin = env!("CARGO_BIN_EXE_reconcile");
    let r = as_user(&[
        bin,
        "--root",
        root.to_str().unwrap(),
        "--phase",
        "profiles",
        "--lock-wait",
        "0",
        "-v",
    ]);
    drop(held);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(
        r.stderr.contains(
            "reconcile: info: not root and not permitted to open /run/s6-reconcile.lock: applying without the lock\n"
        ),
        "{r}"
    );
    for n in slot_names() {
        let problem = slot_problem(&scandir.join(&n), "#!/command/with-contenv sh\n");
        assert_eq!(problem, None, "{r}");
    }
}
