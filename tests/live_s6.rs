//! Live s6 end-to-end (SPEC section 10): a real `s6-svscan` supervises a temp
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
