//! Live s6 end-to-end of what the profiles phase learns from the
//! application (docs/reference-image.md, "The application's own settings"): the container's command line in `<root>/proc`
//! and the application's own configuration in the volume. A real
//! `s6-svscan` supervises what `reconcile` publishes, and uid 10000 drives
//! it with the real s6 clients.
//!
//! As in `tests/live_profiles.rs`, `profiles.templates` gives the slots a
//! real long-running `run` (the default one execs `hermes`, absent here).
//! Needs root and the `s6` package: these tests fail, never skip, without them.

mod common;

use std::fs;
use std::os::unix::fs::lchown;
use std::path::Path;

use common::s6::*;

/// The configuration: slots that sleep, loggers that discard.
const CONFIG: &str = "profiles:\n  templates:\n    run: |\n      #!/bin/sh\n      \
                      exec sleep 3600\n    log_run: |\n      #!/bin/sh\n      \
                      exec cat > /dev/null\n";

/// `<root>/proc/<pid>/cmdline` holding `argv`.
fn process(root: &Path, pid: u32, argv: &[&str]) {
    let dir = root.join("proc").join(pid.to_string());
    fs::create_dir_all(&dir).unwrap();
    let mut bytes = Vec::new();
    for a in argv {
        bytes.extend_from_slice(a.as_bytes());
        bytes.push(0);
    }
    fs::write(dir.join("cmdline"), bytes).unwrap();
}

/// The volume at `/opt/data`, owned by the user: the default profile (no
/// state file), the application's `config.yaml`, and `alice` (`running`).
fn volume(root: &Path, config_yaml: &str) {
    let home = root.join("opt/data");
    mkdir(&root.join("opt"), 0o755);
    mkdir(&home, 0o755);
    write_file(&home.join("config.yaml"), config_yaml, 0o644);
    mkdir(&home.join("profiles"), 0o755);
    mkdir(&home.join("profiles/alice"), 0o755);
    write_file(&home.join("profiles/alice/SOUL.md"), "# alice\n", 0o644);
    write_file(
        &home.join("profiles/alice/gateway_state.json"),
        "{\"desired_state\": \"running\"}\n",
        0o644,
    );
    for rel in [
        "",
        "config.yaml",
        "profiles",
        "profiles/alice",
        "profiles/alice/SOUL.md",
        "profiles/alice/gateway_state.json",
    ] {
        lchown(home.join(rel), Some(USER_UID), Some(USER_GID)).unwrap();
    }
    mkdir(&root.join("etc/s6-reconcile"), 0o755);
    write_file(&root.join("etc/s6-reconcile/config.yaml"), CONFIG, 0o644);
}

fn shutdown(live: LiveS6) {
    let tmp = live.tmp().to_path_buf();
    let how = live.shutdown();
    assert_eq!(processes_under(&tmp), Vec::<i32>::new());
    assert!(
        how.clean,
        "s6-svscanctl -t did not take the tree down: {how:?}"
    );
}

#[test]
fn a_legacy_gateway_run_container_starts_the_default_gateway_and_multiplexes() {
    require_root_and_s6();
    let mut live = LiveS6::start();
    let root = live.root().to_path_buf();
    // s6-overlay v3: PID 1 is the scanner, the container's command another process.
    process(&root, 1, &["s6-svscan", "-d4", "--", "/run/service"]);
    process(
        &root,
        23,
        &[
            "/package/admin/s6-overlay/libexec/rc.init",
            "top",
            "/opt/hermes/docker/main-wrapper.sh",
            "gateway",
            "run",
        ],
    );
    volume(&root, "gateway:\n  multiplex_profiles: true\n");

    let run = reconcile(&root, &[] as &[&str]);
    run.assert_ok();
    let lines: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("reconcile: profile"))
        .collect();
    assert_eq!(
        lines,
        [
            "reconcile: profile gateway(s) alice asked to autostart; one gateway per container \
             serves every profile, so the ROOT slot (gateway-default) was started instead and \
             multiplexes them.",
            "reconcile: profile=default prior_state=running action=started",
            "reconcile: profile=alice prior_state=running action=registered",
        ],
        "{}",
        run.stdout
    );
    // The migrated state, written as the user, in the application's layout.
    let state = root.join("opt/data/gateway_state.json");
    assert_eq!(owner_mode(&state), (USER_UID, USER_GID, 0o644));
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&state).unwrap()).unwrap();
    assert_eq!(v["gateway_state"], "running");
    assert_eq!(v["desired_state"], "running");
    assert_eq!(v["migrated_from"], "legacy-container-cmd");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t = v["timestamp"].as_u64().expect("a numeric timestamp");
    assert!(t <= now && now - t < 600, "timestamp {t}, now {now}");

    // The default gateway runs; alice is supervised but left down: the
    // default gateway serves her (multiplex from the volume's config.yaml).
    let default = live.slot("gateway-default");
    let alice = live.slot("gateway-alice");
    live.wait_until("gateway-default supervised and up", || {
        is_supervised(&default) && is_up(&default)
    });
    live.wait_until("gateway-alice supervised, normally down", || {
        is_supervised(&alice) && svstat(&alice, "normallyup").as_deref() == Some("false")
    });
    assert_eq!(svstat(&alice, "up").as_deref(), Some("false"));
    // The user may still start it by hand.
    s6_as_user("s6-svc", &[&"-u", &alice]).assert_ok();
    live.wait_until("gateway-alice up after s6-svc -u", || is_up(&alice));

    // The next boot reads the migrated file like any other state file.
    let again = reconcile(&root, &["--plan"]);
    again.assert_ok();
    assert!(
        again
            .stdout
            .contains("reconcile: profile=default prior_state=running action=started"),
        "{}",
        again.stdout
    );
    assert!(!again.stdout.contains("migrated"), "{}", again.stdout);
    shutdown(live);
}

#[test]
fn a_dashboard_container_publishes_no_gateway_but_opens_the_static_services() {
    require_root_and_s6();
    let mut live = LiveS6::start();
    let root = live.root().to_path_buf();
    process(
        &root,
        1,
        &[
            "/init",
            "/opt/hermes/docker/main-wrapper.sh",
            "/opt/hermes/docker/entrypoint-dispatch.sh",
            "hermes",
            "dashboard",
        ],
    );
    volume(&root, "multiplex_profiles: false\n");
    write_file(
        &root.join("opt/data/gateway_state.json"),
        "{\"desired_state\": \"running\"}\n",
        0o644,
    );

    let run = reconcile(&root, &[] as &[&str]);
    run.assert_ok();
    assert!(
        run.stdout.lines().any(|l| l
            == "reconcile: skipping (dashboard container — does not need per-profile gateways)"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("reconcile: profile="),
        "{}",
        run.stdout
    );
    let slots: Vec<String> = fs::read_dir(live.scandir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("gateway-"))
        .collect();
    assert_eq!(
        slots,
        Vec::<String>::new(),
        "no gateway slot, staged or not"
    );
    assert!(!root.join("opt/data/logs").exists(), "no boot log");
    // The static phase still ran: the user controls nginx.
    let nginx = live.servicedir("nginx");
    live.wait_until("nginx up", || is_up(&nginx));
    s6_as_user("s6-svc", &[&"-d", &nginx]).assert_ok();
    live.wait_until("nginx down after s6-svc -d as the user", || {
        svstat(&nginx, "up").as_deref() == Some("false")
    });
    shutdown(live);
}
