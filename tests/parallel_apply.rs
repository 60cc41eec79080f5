//! Slots built on several threads (`RECONCILE_THREADS`, two by default on
//! a machine with two CPUs): the same tree, the same report and the same
//! exit code as on one thread, one failing slot never stopping the others;
//! a value out of range refused with exit 100.
//!
//! Trees have owners other than the caller: these tests need root and fail
//! (never skip) without it.

mod common;

use std::path::Path;

use common::roots::{config, root_with};
use common::run::{Run, assert_owner_mode, reconcile_env};
use common::tree;

/// Profiles `p00`..: every third registered down, the rest running.
fn profiles(n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        let state = if i % 3 == 0 { "stopped" } else { "running" };
        let dir = format!("opt/data/profiles/p{i:02}");
        out += &format!(
            "- {{path: {dir}, type: dir, uid: 10000, gid: 10000}}\n\
             - {{path: {dir}/SOUL.md, type: file, uid: 10000, gid: 10000, content: \"# p\\n\"}}\n\
             - {{path: {dir}/gateway_state.json, type: file, uid: 10000, gid: 10000, \
                content: \"{{\\\"desired_state\\\": \\\"{state}\\\"}}\\n\"}}\n"
        );
    }
    out
}

/// The tree without the boot log (its lines carry the time of the run).
fn dump_without_log(root: &Path) -> String {
    let log = root.join("opt/data/logs/container-boot.log");
    std::fs::remove_file(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    tree::dump(root)
}

fn apply(root: &Path, args: &[&str], threads: &str) -> Run {
    reconcile_env(root, args, &[("RECONCILE_THREADS", threads)])
}

#[test]
fn threads_build_the_same_slots_in_the_same_order() {
    same_on_any_thread_count("", (10000, 10000, 0o755));
}

/// In strict, root builds root's slots with the user's group on the
/// skeleton (each entry chowned after it is made), on every thread.
#[test]
fn threads_build_the_same_strict_slots() {
    same_on_any_thread_count(&config("policy: strict\n"), (0, 0, 0o755));
}

/// Apply on 1, 2 and 7 threads: the same report, the same tree, and
/// `--check` clean after each. `slot`: the slot dir's owner and mode.
fn same_on_any_thread_count(extra: &str, slot_perms: (u32, u32, u32)) {
    let n = 40;
    let mut runs = Vec::new();
    for threads in ["1", "2", "7"] {
        let root = root_with(&format!("{extra}{}", profiles(n)));
        let r = apply(root.path(), &[], threads);
        r.assert_ok();
        assert_eq!(
            reconcile_env(root.path(), &["--check"], &[]).code,
            Some(0),
            "--check after an apply on {threads} threads"
        );
        // A setgid skeleton dir, and its parents without setgid, whatever
        // thread built them.
        let slot = root.path().join("run/service/gateway-p39");
        let (uid, gid, mode) = slot_perms;
        assert_owner_mode(&slot, uid, gid, mode);
        assert_owner_mode(&slot.join("log"), uid, gid, mode);
        let (_, group, _) = tree::owner_mode(&slot, "log/supervise/event");
        assert_eq!(group, 10000);
        assert_eq!(tree::owner_mode(&slot, "log/supervise/event").2, 0o3730);
        runs.push((threads, r.stdout, dump_without_log(root.path())));
    }
    // `default`, `good`, then p00..p39: the report in plan order.
    assert_eq!(runs[0].1.matches("action=").count(), n + 2, "{}", runs[0].1);
    for (threads, stdout, dump) in &runs[1..] {
        assert_eq!(*stdout, runs[0].1, "report on {threads} threads vs one");
        assert_eq!(*dump, runs[0].2, "tree on {threads} threads vs one");
    }
}

/// A leftover staging dir the user cannot remove (root's, with root's
/// files below it) makes that one slot fail; every other slot is published
/// and the report and exit code are the same on one thread and on two.
#[test]
fn one_failing_slot_never_stops_the_others() {
    let mut runs = Vec::new();
    for threads in ["1", "2"] {
        let root = root_with(&profiles(12));
        // The scandir opened to the user first (that phase, as root,
        // would remove the leftover); then the leftover planted.
        apply(
            root.path(),
            &["--phase", "static", "--phase", "scandir"],
            threads,
        )
        .assert_ok();
        let leftover = root.path().join("run/service/.gateway-p05.tmp/sub");
        std::fs::create_dir_all(&leftover).unwrap();
        std::fs::write(leftover.join("f"), "x\n").unwrap();
        let r = apply(root.path(), &["--phase", "profiles"], threads);
        r.assert_exit(1);
        r.assert_line(
            "error: unable to publish /run/service/gateway-p05: remove leftover in staging dir \
             .gateway-p05.tmp: Permission denied (as uid 10000)",
        );
        let scandir = root.path().join("run/service");
        assert!(!scandir.join("gateway-p05").exists());
        for i in (0..12).filter(|&i| i != 5) {
            assert!(
                scandir.join(format!("gateway-p{i:02}/run")).exists(),
                "gateway-p{i:02} not published on {threads} threads"
            );
        }
        runs.push(r.stdout);
    }
    assert_eq!(runs[1], runs[0], "report on two threads vs one");
}

#[test]
fn a_thread_count_out_of_range_is_refused() {
    let root = root_with("");
    for bad in ["0", "65", "two", "-1", " 2"] {
        let r = apply(root.path(), &[], bad);
        r.assert_exit(100);
        assert!(
            r.stderr.contains(&format!(
                "environment variable RECONCILE_THREADS={bad:?}: must be a number of threads from 1 to 64"
            )),
            "{}",
            r.show()
        );
    }
    // Empty is unset.
    apply(root.path(), &[], "").assert_ok();
}

/// A leftover staging dir the user can remove: the plan removes it, then
/// publishes its slot; on two threads as on one (its slot is not built
/// ahead of the removal, which would then find another directory there).
#[test]
fn a_leftover_is_removed_before_its_slot_is_built() {
    let mut runs = Vec::new();
    for threads in ["1", "2"] {
        let root = root_with(&profiles(12));
        apply(
            root.path(),
            &["--phase", "static", "--phase", "scandir"],
            threads,
        )
        .assert_ok();
        let leftover = root.path().join("run/service/.gateway-p00.tmp");
        std::fs::create_dir_all(leftover.join("supervise")).unwrap();
        std::fs::write(leftover.join("run"), "old\n").unwrap();
        for p in [
            leftover.clone(),
            leftover.join("supervise"),
            leftover.join("run"),
        ] {
            std::os::unix::fs::chown(&p, Some(10000), Some(10000)).unwrap();
        }
        let r = apply(root.path(), &["--phase", "profiles"], threads);
        r.assert_ok();
        r.assert_line("  remove  /run/service/.gateway-p00.tmp");
        assert!(!leftover.exists(), "on {threads} threads");
        let run = root.path().join("run/service/gateway-p00/run");
        assert_ne!(std::fs::read_to_string(&run).unwrap(), "old\n");
        runs.push(r.stdout);
    }
    assert_eq!(runs[1], runs[0], "report on two threads vs one");
}
