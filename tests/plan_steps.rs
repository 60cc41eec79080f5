//! The plan is everything an apply does (docs/plan-format.md, "The plan is everything the run does"): the volume's changes
//! wait for the slots and say so, the rescan and the boot log append are
//! shown by `--plan` and are not drift, and what a failed slot leaves in
//! place is reported.
//!
//! The trees have owners other than the caller and the profiles phase drops
//! to uid 10000: these tests need root and fail (never skip) without it.

mod common;

use std::path::Path;

use common::s6::reconcile;
use common::tree;

/// Accounts, a volume with the default profile (running, with a stale
/// `gateway.pid`) and one named profile, and an empty scandir.
const TREE: &str = r##"
- {path: etc, type: dir}
- {path: etc/passwd, type: file, content: "root:x:0:0:root:/root:/bin/sh\nhermes:x:10000:10000::/opt/data:/bin/sh\n"}
- {path: etc/group, type: file, content: "root:x:0:\nhermes:x:10000:\n"}
- {path: opt, type: dir}
- {path: opt/data, type: dir, uid: 10000, gid: 10000}
- {path: opt/data/SOUL.md, type: file, uid: 10000, gid: 10000, content: "# default\n"}
- {path: opt/data/gateway_state.json, type: file, uid: 10000, gid: 10000, content: "{\"desired_state\": \"running\"}"}
- {path: opt/data/gateway.pid, type: file, uid: 10000, gid: 10000, content: "4242\n"}
- {path: opt/data/profiles, type: dir, uid: 10000, gid: 10000}
- {path: opt/data/profiles/work, type: dir, uid: 10000, gid: 10000}
- {path: opt/data/profiles/work/SOUL.md, type: file, uid: 10000, gid: 10000}
- {path: run, type: dir}
- {path: run/service, type: dir}
- {path: run/service/.s6-svscan, type: dir, mode: "0700"}
- {path: run/service/.s6-svscan/lock, type: file, mode: "0600"}
"##;

fn root() -> tempfile::TempDir {
    assert!(tree::is_root(), "these tests need root (owners, uid 10000)");
    let dir = tree::temp_root("plan-steps-");
    tree::materialise_yaml(dir.path(), TREE).unwrap_or_else(|e| panic!("tree: {e}"));
    dir
}

fn exists(root: &Path, rel: &str) -> bool {
    std::fs::symlink_metadata(root.join(rel)).is_ok()
}

#[test]
fn the_plan_shows_the_volume_after_the_slots_then_the_rescan_and_the_boot_log() {
    let tmp = root();
    let root = tmp.path();
    let plan = reconcile(root, &["--plan", "--phase", "profiles"]);
    assert_eq!(plan.code, Some(0), "{plan}");
    assert!(
        plan.stdout.starts_with(
            "profiles:\n\
             \x20 publish /run/service/gateway-default  (new slot)\n\
             \x20 publish /run/service/gateway-work  (new slot)\n\
             \x20 unlink  /opt/data/gateway.pid  (after the slots)\n\
             then:\n\
             \x20 rescan  /run/service/.s6-svscan/control  (write \"a\" if s6-svscan listens)\n\
             \x20 append  /opt/data/logs/container-boot.log  (2 lines)\n\
             reconcile: profile=default prior_state=running action=started\n"
        ),
        "{plan}"
    );
    assert!(
        plan.stdout.ends_with("Plan: 3 changes (profiles 3).\n"),
        "{plan}"
    );
}

#[test]
fn a_slot_that_cannot_be_published_leaves_the_volume_as_it_was() {
    // Without the scandir phase, the scandir stays root's: uid 10000
    // cannot publish, so the stale PID file must stay.
    let tmp = root();
    let root = tmp.path();
    // The whole report (-v): the skipped items and the run effects.
    let r = reconcile(root, &["-v", "--phase", "profiles"]);
    assert_eq!(r.code, Some(1), "{r}");
    assert!(exists(root, "opt/data/gateway.pid"), "{r}");
    assert!(
        r.stdout.contains(
            "reconcile: skipped:\n\
             reconcile:   /opt/data/gateway.pid: left in place: publishing the slots failed\n"
        ),
        "{r}"
    );
    assert!(
        r.stdout
            .contains("reconcile: profile=default prior_state=running action=skipped\n"),
        "{r}"
    );
    // Nothing went through: no rescan; the boot log still says what happened.
    assert!(!r.stdout.contains("rescan"), "{r}");
    assert!(
        r.stdout.contains(
            "reconcile: then:\nreconcile:   append  /opt/data/logs/container-boot.log  (2 lines)\n"
        ),
        "{r}"
    );
    let log = std::fs::read_to_string(root.join("opt/data/logs/container-boot.log")).unwrap();
    assert!(
        log.contains(" profile=default prior_state=running action=skipped prior_exit=unknown\n"),
        "{log}"
    );
}

#[test]
fn the_boot_log_is_shown_but_is_not_drift() {
    let tmp = root();
    let root = tmp.path();
    reconcile(root, &[]).assert_ok();
    assert!(!exists(root, "opt/data/gateway.pid"));
    let check = reconcile(root, &["--check", "--format", "json"]);
    assert_eq!(check.code, Some(0), "{check}");
    let v: serde_json::Value = serde_json::from_str(&check.stdout).unwrap();
    assert_eq!(v["changes"], serde_json::json!([]), "{check}");
    assert_eq!(
        v["effects"],
        serde_json::json!([{
            "op": "append",
            "path": "/opt/data/logs/container-boot.log",
            "lines": 2
        }]),
        "{check}"
    );
}
