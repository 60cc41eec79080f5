//! Live s6 end-to-end (docs/testing.md): a real `s6-svscan` supervises a temp
//! root laid out as s6-rc-init leaves it; `reconcile` runs on it as root, then
//! uid 10000 uses the real s6 clients. Needs root and the `s6` package: these
//! tests fail, never skip, without them.

mod common;

use std::path::Path;
use std::time::Duration;

use common::s6::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The harness itself: every service supervised and up, and nothing of the
/// tree left running after a clean shutdown.
#[test]
fn harness_supervises_every_service_and_cleans_up() {
    let live = LiveS6::start();
    let tmp = live.tmp().to_path_buf();
    let scanner = live.scanner_pid().expect("scanner running");
    for dir in live.all_servicedirs() {
        let stat = as_root(&[s6_tool("s6-svstat").as_os_str(), dir.as_os_str()]);
        stat.assert_ok();
        assert!(stat.stdout.starts_with("up "), "expected up:\n{stat}");
    }
    assert!(
        !processes_under(&tmp).is_empty(),
        "supervisors and services should run under {}",
        tmp.display()
    );
    assert_eq!(
        live.shutdown(),
        Shutdown {
            clean: true,
            killed: 0
        }
    );
    assert_eq!(
        processes_under(&tmp),
        Vec::<i32>::new(),
        "processes left after shutdown"
    );
    assert!(
        !Path::new(&format!("/proc/{scanner}")).exists(),
        "s6-svscan (pid {scanner}) still exists after drop"
    );
    assert!(!tmp.exists(), "temp dir {} not removed", tmp.display());
}

/// The guard still takes the tree down when the scanner does not obey
/// `s6-svscanctl -t` (here: stopped), and when the test panics.
#[test]
fn harness_kills_the_tree_when_the_scanner_hangs_and_the_test_panics() {
    let mut live = LiveS6::start();
    live.set_shutdown_grace(Duration::from_millis(500));
    let tmp = live.tmp().to_path_buf();
    let scanner = live.scanner_pid().expect("scanner running");
    assert!(processes_under(&tmp).len() >= live.all_servicedirs().len());
    kill(Pid::from_raw(scanner as i32), Signal::SIGSTOP).expect("SIGSTOP s6-svscan");

    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _live = live;
        panic!("test failure while the tree is live");
    }));
    assert!(panicked.is_err());
    assert_eq!(
        processes_under(&tmp),
        Vec::<i32>::new(),
        "processes left after the guard"
    );
    assert!(
        !Path::new(&format!("/proc/{scanner}")).exists(),
        "s6-svscan (pid {scanner}) still exists (not reaped?)"
    );
    assert!(!tmp.exists(), "temp dir {} not removed", tmp.display());
}

/// The static and scandir phases only (the profiles phase: live_profiles.rs).
const PHASES: [&str; 4] = ["--phase", "static", "--phase", "scandir"];

/// `reconcile` (apply) on the live tree; must exit 0.
fn apply(live: &LiveS6, extra: &[&str]) -> Run {
    let mut args: Vec<&str> = PHASES.to_vec();
    args.extend_from_slice(extra);
    let run = reconcile(live.root(), &args);
    run.assert_ok();
    run
}

fn service_pid(dir: &Path) -> String {
    let run = s6_as_root("s6-svstat", &[&"-o", &"pid", &dir]);
    run.assert_ok();
    run.stdout.trim().to_owned()
}

/// Asserts the owner, group and mode bits (setgid/sticky included) of `path`.

#[test]
fn before_reconcile_the_user_cannot_control_any_service() {
    let live = LiveS6::start();
    for svc in live.services() {
        let slot = live.slot(svc.name);
        let down = s6_as_user("s6-svc", &[&"-d", &slot]);
        assert!(
            !down.success(),
            "s6-svc -d as uid {USER_UID} should fail before reconcile:\n{down}"
        );
        assert!(
            down.stderr.contains("Permission denied"),
            "expected a permission-denied message:\n{down}"
        );
        let stat = s6_as_root("s6-svstat", &[&slot]);
        stat.assert_ok();
        assert!(
            stat.stdout.starts_with("up "),
            "{} must still be up:\n{stat}",
            svc.name
        );
    }
    let scan = s6_as_user("s6-svscanctl", &[&"-a", &live.scandir()]);
    assert!(
        !scan.success(),
        "s6-svscanctl -a as uid {USER_UID} should fail before reconcile:\n{scan}"
    );
}

#[test]
fn after_apply_the_user_can_stat_static_services_but_not_internal_ones() {
    let live = LiveS6::start();
    let pids_before: Vec<String> = live
        .all_servicedirs()
        .iter()
        .map(|d| service_pid(d))
        .collect();
    apply(&live, &[]);

    for svc in live.services() {
        let slot = live.slot(svc.name);
        let dir = live.servicedir(svc.name);
        let mut clients = vec![(slot.clone(), dir.clone())];
        if svc.has_log {
            clients.push((slot.join("log"), dir.join("log")));
        }
        for (slot, dir) in clients {
            let stat = s6_as_user("s6-svstat", &[&slot]);
            if svc.is_internal() {
                assert!(!stat.success(), "{} must stay root-only:\n{stat}", svc.name);
                assert!(
                    stat.stderr.contains("Permission denied"),
                    "expected a permission-denied message:\n{stat}"
                );
                assert_owner_mode(&dir.join("supervise"), 0, 0, 0o700);
                assert_owner_mode(&dir.join("supervise/control"), 0, 0, 0o600);
                assert_owner_mode(&dir.join("event"), 0, 0, 0o3730);
            } else {
                stat.assert_ok();
                assert!(stat.stdout.starts_with("up "), "expected up:\n{stat}");
                assert_owner_mode(&dir.join("supervise"), USER_UID, USER_GID, 0o710);
                assert!(is_fifo(&dir.join("supervise/control")));
                assert_owner_mode(&dir.join("supervise/control"), USER_UID, USER_GID, 0o660);
                assert_owner_mode(&dir.join("event"), USER_UID, USER_GID, 0o3730);
            }
        }
    }
    // Reconciling does not restart anything.
    let pids_after: Vec<String> = live
        .all_servicedirs()
        .iter()
        .map(|d| service_pid(d))
        .collect();
    assert_eq!(
        pids_before, pids_after,
        "service pids changed across reconcile"
    );
}

#[test]
fn after_apply_the_user_can_bring_a_service_down_and_up() {
    let live = LiveS6::start();
    apply(&live, &[]);
    let slot = live.slot("app-worker");

    s6_as_user("s6-svc", &[&"-d", &slot]).assert_ok();
    s6_as_user("s6-svwait", &[&"-D", &"-t", &"5000", &slot]).assert_ok();
    let stat = s6_as_user("s6-svstat", &[&slot]);
    stat.assert_ok();
    assert!(stat.stdout.starts_with("down "), "expected down:\n{stat}");

    s6_as_user("s6-svc", &[&"-u", &slot]).assert_ok();
    s6_as_user("s6-svwait", &[&"-u", &"-t", &"5000", &slot]).assert_ok();
    let stat = s6_as_user("s6-svstat", &[&slot]);
    stat.assert_ok();
    assert!(stat.stdout.starts_with("up "), "expected up:\n{stat}");
}

#[test]
fn after_apply_the_user_can_make_the_scanner_rescan() {
    let mut live = LiveS6::start();
    apply(&live, &[]);
    // A service the scanner has not seen yet: only a rescan supervises it
    // (s6-svscan does no periodic scan by default).
    live.add_service(StaticService {
        name: "late",
        has_log: false,
    });
    let late = live.servicedir("late");
    assert!(!is_supervised(&late));

    s6_as_user("s6-svscanctl", &[&"-a", &live.scandir()]).assert_ok();
    live.wait_until("the rescan to supervise late", || is_supervised(&late));
}

#[test]
fn a_second_plan_after_apply_is_empty() {
    let live = LiveS6::start();
    let check = reconcile(live.root(), &[&PHASES[..], &["--check"]].concat());
    assert_eq!(
        check.code,
        Some(3),
        "--check before apply must find drift:\n{check}"
    );

    let applied = apply(&live, &["--format", "json"]);
    let applied: serde_json::Value = serde_json::from_str(&applied.stdout)
        .unwrap_or_else(|e| panic!("apply --format json is not JSON ({e}):\n{applied}"));
    let done = applied["changes"]
        .as_array()
        .expect("apply JSON has a changes array");
    assert!(
        !done.is_empty(),
        "apply on a fresh tree did nothing: {applied:#}"
    );

    let plan = reconcile(
        live.root(),
        &[&PHASES[..], &["--plan", "--format", "json"]].concat(),
    );
    plan.assert_ok();
    let plan_json: serde_json::Value = serde_json::from_str(&plan.stdout)
        .unwrap_or_else(|e| panic!("--plan --format json is not JSON ({e}):\n{plan}"));
    assert_eq!(plan_json["mode"], "plan", "{plan}");
    let changes = plan_json["changes"]
        .as_array()
        .expect("plan JSON has a changes array");
    assert!(
        changes.is_empty(),
        "second plan after apply is not empty:\n{plan_json:#}"
    );

    let check = reconcile(live.root(), &[&PHASES[..], &["--check"]].concat());
    assert_eq!(
        check.code,
        Some(0),
        "--check after apply must find no drift:\n{check}"
    );
}
