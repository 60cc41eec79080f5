//! The real s6-overlay boot: `/init` as PID 1 of its own PID namespace,
//! `reconcile` installed as `packaging/` says (the s6-rc oneshot, the
//! cont-init script, the `.deb`), a volume with a running profile, a stopped
//! one and a directory that is not a profile, and checks run from inside
//! the container by its command (helpers: tests/common/overlay.rs).
//!
//! Needs root and the s6-overlay release tarballs (see
//! `common::overlay::dist`); it fails, never skips, without them.

mod common;

use common::overlay::{Boot, Form, Image};

/// The volume of every test: `alice` running, `bob` stopped, `notes` a
/// directory without `SOUL.md`.
fn image(form: Form) -> Image {
    let img = Image::new(form);
    img.profile("alice", Some("running"));
    img.profile("bob", Some("stopped"));
    img.user_dir("opt/data/profiles/notes");
    img.user_file("opt/data/profiles/notes/README", "not a profile\n");
    img
}

/// What the user can and cannot do, and which slots are up, once booted.
const USER_CHECKS: &str = r#"
S=/run/service
wait_for alice_up s6-svwait -u -t 100 $S/gateway-alice
wait_for cron_up s6-svwait -u -t 100 $S/cron
check bob_down_file test -f $S/gateway-bob/down
check bob_is_down sh -c "[ \"\$(s6-svstat -o up $S/gateway-bob)\" = false ]"
check default_slot test -d $S/gateway-default
check no_notes_slot test ! -e $S/gateway-notes
# The user and the image's static service.
check user_svstat_cron user s6-svstat $S/cron
check user_svc_down_cron user s6-svc -d $S/cron
check user_svwait_down_cron user s6-svwait -D -t 10000 $S/cron
check user_svc_up_cron user s6-svc -u $S/cron
check user_svwait_up_cron user s6-svwait -u -t 10000 $S/cron
# The user and the slots.
check user_svstat_alice user s6-svstat $S/gateway-alice
check user_svc_up_bob user s6-svc -u $S/gateway-bob
check user_svwait_up_bob user s6-svwait -u -t 10000 $S/gateway-bob
check user_svc_down_bob user s6-svc -d $S/gateway-bob
check user_svwait_down_bob user s6-svwait -D -t 10000 $S/gateway-bob
# s6-overlay's internals stay root's.
check user_svstat_fdholder user s6-svstat $S/s6rc-fdholder
check user_svc_oneshot_runner user s6-svc -d $S/s6rc-oneshot-runner
check user_svwait_shutdownd user s6-svwait -u -t 1000 $S/s6-linux-init-shutdownd
check user_svstat_internal_dir user s6-svstat /run/s6-rc/servicedirs/s6rc-fdholder
check internals_still_up s6-svstat $S/s6rc-oneshot-runner
# compat: the user reaches the scanner.
check user_svscanctl user s6-svscanctl -a $S
# Converged: nothing left to do.
check root_check reconcile --check
"#;

#[track_caller]
fn assert_user_checks(boot: &Boot) {
    assert_eq!(boot.code, 0, "the container's command failed\n{boot}");
    boot.assert_codes(
        &[
            "alice_up",
            "cron_up",
            "bob_down_file",
            "bob_is_down",
            "default_slot",
            "no_notes_slot",
            "user_svstat_cron",
            "user_svc_down_cron",
            "user_svwait_down_cron",
            "user_svc_up_cron",
            "user_svwait_up_cron",
            "user_svstat_alice",
            "user_svc_up_bob",
            "user_svwait_up_bob",
            "user_svc_down_bob",
            "user_svwait_down_bob",
            "internals_still_up",
            "user_svscanctl",
            "root_check",
        ],
        0,
    );
    // 111: the s6 tools' "system call failed" (here: permission denied).
    boot.assert_codes(
        &[
            "user_svstat_fdholder",
            "user_svc_oneshot_runner",
            "user_svwait_shutdownd",
            "user_svstat_internal_dir",
        ],
        111,
    );
    boot.assert_logged("reconcile: profile=alice prior_state=running action=started");
    boot.assert_reconcile_lines_prefixed();
}

#[test]
fn boot_s6rc_oneshot_user_controls_services_and_slots() {
    let img = image(Form::S6Rc);
    let boot = img.boot(&[], USER_CHECKS, false);
    assert_user_checks(&boot);
    boot.assert_logged("service s6-reconcile successfully started");
}

#[test]
fn boot_cont_init_form_user_controls_services_and_slots() {
    let img = image(Form::ContInit);
    let boot = img.boot(&[], USER_CHECKS, false);
    assert_user_checks(&boot);
}

/// The `.deb`'s binary and oneshot, on a read-only root.
#[test]
fn boot_deb_form_on_a_read_only_root() {
    let img = image(Form::Deb);
    let boot = img.boot(&[], USER_CHECKS, true);
    assert_user_checks(&boot);
    boot.assert_logged("service s6-reconcile successfully started");
}

/// A converged container: `--check` as the user, with the container's
/// environment, finds nothing to do.
#[test]
fn boot_nonroot_check_is_clean() {
    let img = image(Form::S6Rc);
    let boot = img.boot(&[], "check user_check user reconcile --check\n", false);
    boot.assert_code("user_check", 0);
}

/// Replacing a running slot: the old supervisor is let go before its tree
/// is removed, so it never writes into a removed directory, and the
/// replaced service's `finish` runs.
#[test]
fn boot_replace_retires_old_supervisor() {
    let img = image(Form::S6Rc);
    img.config(
        "profiles:\n  templates:\n    finish: |\n      #!/bin/sh\n      \
         echo \"$1\" >>/run/finished-{profile}\n      exit 0\n",
    );
    let script = r#"
S=/run/service
wait_for alice_up s6-svwait -u -t 100 $S/gateway-alice
chmod 0775 $S/gateway-alice/run
check replace with-contenv reconcile -q
wait_for old_finish_ran test -s /run/finished-alice
wait_for new_alice_up s6-svwait -u -t 100 $S/gateway-alice
check mode_restored sh -c "[ \"\$(stat -c %a $S/gateway-alice/run)\" = 755 ]"
check converged reconcile --check
"#;
    let boot = img.boot(&[], script, false);
    boot.assert_codes(
        &[
            "alice_up",
            "replace",
            "old_finish_ran",
            "new_alice_up",
            "mode_restored",
            "converged",
        ],
        0,
    );
    for bad in ["unable to write status file", "death_tally"] {
        assert!(
            !boot.log.contains(bad),
            "an old supervisor wrote into a removed tree ({bad:?})\n{boot}"
        );
    }
}

/// Booting twice on the same volume: the second boot restores the same
/// slots in a fresh `/run` and is converged.
#[test]
fn boot_restart_converges() {
    let img = image(Form::S6Rc);
    let script = r#"
wait_for alice_up s6-svwait -u -t 100 /run/service/gateway-alice
check bob_down_file test -f /run/service/gateway-bob/down
check root_check reconcile --check
"#;
    for n in ["first", "second"] {
        let boot = img.boot(&[], script, false);
        assert_eq!(boot.code, 0, "{n} boot\n{boot}");
        boot.assert_codes(&["alice_up", "bob_down_file", "root_check"], 0);
    }
    let log = std::fs::read_to_string(img.root().join("opt/data/logs/container-boot.log"))
        .expect("boot log");
    assert_eq!(
        log.lines().filter(|l| l.contains("profile=alice")).count(),
        2,
        "one boot-log line for alice per boot:\n{log}"
    );
}

/// A profile deleted while everything runs, `prune: true`: the next apply
/// removes its slot and leaves the rest running.
#[test]
fn boot_removal_while_running() {
    let img = image(Form::S6Rc);
    img.config("profiles:\n  prune: true\n");
    let script = r#"
S=/run/service
wait_for alice_up s6-svwait -u -t 100 $S/gateway-alice
pid=$(s6-svstat -o pid $S/gateway-alice)
check user_deletes user rm -rf /opt/data/profiles/alice
check apply with-contenv reconcile
check slot_gone test ! -e $S/gateway-alice
wait_for gateway_stopped sh -c "! kill -0 $pid 2>/dev/null"
check bob_kept test -f $S/gateway-bob/down
check cron_still_up s6-svwait -u -t 1000 $S/cron
check converged reconcile --check
"#;
    let boot = img.boot(&[], script, false);
    assert_eq!(boot.code, 0, "{boot}");
    boot.assert_codes(
        &[
            "alice_up",
            "user_deletes",
            "apply",
            "slot_gone",
            "gateway_stopped",
            "bob_kept",
            "cron_still_up",
            "converged",
        ],
        0,
    );
}

/// A broken configuration with `S6_BEHAVIOUR_IF_STAGE2_FAILS=2`: the boot
/// stops before the command runs, and the log says why.
#[test]
fn boot_broken_config_stops_the_boot() {
    let img = image(Form::S6Rc);
    img.config("profiles:\n  prnue: true\n");
    let boot = img.boot(&[], "check cmd_ran true\n", false);
    assert_ne!(boot.code, 0, "the boot went on\n{boot}");
    assert!(boot.codes.is_empty(), "the command ran\n{boot}");
    assert!(
        boot.log.contains("prnue") && boot.log.contains("/etc/s6-reconcile/config.yaml"),
        "the log names the bad key and the file\n{boot}"
    );
    boot.assert_logged("unable to start service s6-reconcile: command exited 100")
        .assert_logged("rc.init: fatal: stopping the container.");
}

/// s6-overlay v3 gives the container's command a clean environment: the
/// container's variables reach it only through `with-contenv`, so the
/// command's `reconcile --check` looks at the default volume and finds
/// drift where `with-contenv reconcile --check` finds none.
#[test]
fn boot_cmd_sees_the_container_env_only_with_contenv() {
    let img = Image::new(Form::S6Rc);
    img.user_dir("srv/hermes");
    img.user_file("srv/hermes/SOUL.md", "# default\n");
    let script = r#"
check plain_env sh -c 'test -n "${HERMES_HOME:-}"'
check contenv_env with-contenv sh -c 'test "$HERMES_HOME" = /srv/hermes'
check plain_check reconcile --check
check contenv_check with-contenv reconcile --check
"#;
    let boot = img.boot(&[("HERMES_HOME", "/srv/hermes")], script, false);
    assert_eq!(boot.code, 0, "{boot}");
    boot.assert_code("plain_env", 1)
        .assert_code("contenv_env", 0)
        .assert_code("plain_check", 3)
        .assert_code("contenv_check", 0);
    assert!(
        img.root()
            .join("srv/hermes/logs/container-boot.log")
            .is_file(),
        "the boot's reconcile (with-contenv) used HERMES_HOME\n{boot}"
    );
}

/// The layout of s6-overlay before 3.2.3.1 (the `user` entry in
/// `s6-rc.d/user/contents.d/`) on 3.2.3.2: a deprecation warning, a write
/// into `/etc` at every boot, and the services listed in `user-bundles.d`
/// (here `cron`) are never started. (On a read-only root that write fails
/// and the boot hangs; not run here, it would take the whole deadline.)
#[test]
fn boot_old_bundle_layout_writes_etc_and_drops_user_bundles() {
    let img = image(Form::OldLayout);
    let script = r#"
wait_for alice_up s6-svwait -u -t 100 /run/service/gateway-alice
check cron_never_up sh -c '[ "$(s6-svstat -o up /run/service/cron)" = false ]'
"#;
    let boot = img.boot(&[], script, false);
    assert_eq!(boot.code, 0, "{boot}");
    boot.assert_code("alice_up", 0)
        .assert_code("cron_never_up", 0);
    boot.assert_logged("defining user bundles in /etc/s6-overlay/s6-rc.d is deprecated");
    assert!(
        img.root()
            .join("etc/s6-overlay/s6-rc.d/user/type")
            .is_file(),
        "s6-overlay wrote s6-rc.d/user/type into /etc\n{boot}"
    );
}

/// `policy: strict`: the user observes and controls the static service and
/// the slots, but cannot define services (no write in the scandir) nor
/// drive the scanner; a converged `--check` as root exits 0.
#[test]
fn boot_strict_policy_user_controls_but_cannot_define() {
    let img = image(Form::S6Rc);
    img.config("policy: strict\n");
    let script = r#"
S=/run/service
wait_for alice_up s6-svwait -u -t 100 $S/gateway-alice
check user_svstat_cron user s6-svstat $S/cron
check user_svc_down_cron user s6-svc -d $S/cron
check user_svwait_down_cron user s6-svwait -D -t 10000 $S/cron
check user_svc_up_bob user s6-svc -u $S/gateway-bob
check user_svwait_up_bob user s6-svwait -u -t 10000 $S/gateway-bob
check user_svstat_fdholder user s6-svstat $S/s6rc-fdholder
check user_defines user mkdir $S/gateway-mallory
check no_new_slot test ! -e $S/gateway-mallory
check user_edits_slot user sh -c "echo exit 0 > $S/gateway-alice/run"
check slot_run_kept grep -q gateway $S/gateway-alice/run
check user_svscanctl user s6-svscanctl -a $S
check root_check reconcile --check
"#;
    let boot = img.boot(&[], script, false);
    assert_eq!(boot.code, 0, "{boot}");
    boot.assert_codes(
        &[
            "alice_up",
            "user_svstat_cron",
            "user_svc_down_cron",
            "user_svwait_down_cron",
            "user_svc_up_bob",
            "user_svwait_up_bob",
            "root_check",
        ],
        0,
    );
    boot.assert_codes(&["no_new_slot", "slot_run_kept"], 0);
    for refused in ["user_defines", "user_edits_slot"] {
        boot.assert_failed(refused);
    }
    boot.assert_codes(&["user_svstat_fdholder", "user_svscanctl"], 111);
}

/// The packaged runtime longrun (docs/runtime.md), in strict policy: the
/// user cannot define a slot, but asks the runtime service for one after
/// creating a profile, and for its removal after deleting one. Each pass's
/// report is in /run/s6-reconcile/last.json with its sequence; the boot's
/// is in boot.json.
#[test]
fn boot_runtime_service_publishes_and_retires_on_the_users_request() {
    let img = image(Form::S6Rc);
    img.config("policy: strict\n");
    let script = r#"
S=/run/service
R=/run/s6-reconcile
wait_for alice_up s6-svwait -u -t 100 $S/gateway-alice
wait_for runtime_ready s6-svwait -U -t 100 $S/s6-reconcile-runtime
check boot_json grep -q '"mode": "apply"' $R/boot.json
check first_pass grep -q '"sequence": 1,' $R/last.json
check user_defines user mkdir $S/gateway-carol
check user_creates_profile user sh -c "mkdir /opt/data/profiles/carol && echo '# carol' > /opt/data/profiles/carol/SOUL.md && echo '{\"desired_state\": \"running\"}' > /opt/data/profiles/carol/gateway_state.json"
check user_pass user s6-svc -ru -wR -T 30000 $S/s6-reconcile-runtime
check second_pass grep -q '"sequence": 2,' $R/last.json
wait_for carol_up s6-svwait -u -t 100 $S/gateway-carol
check user_controls_carol user s6-svc -d $S/gateway-carol
check user_deletes_profile user rm -rf /opt/data/profiles/bob
check user_pass_again user s6-svc -ru -wR -T 30000 $S/s6-reconcile-runtime
check third_pass grep -q '"sequence": 3,' $R/last.json
check bob_retired test ! -e $S/gateway-bob
check no_leftover test ! -e $S/.gateway-bob.retired
check records_root_only sh -c "[ \"\$(stat -c %u:%a $R $R/last.json)\" = \"$(printf '0:755\n0:644')\" ]"
check user_cannot_write_records user sh -c "echo x > $R/last.json"
"#;
    let boot = img.boot(&[], script, false);
    assert_eq!(boot.code, 0, "{boot}");
    boot.assert_codes(
        &[
            "alice_up",
            "runtime_ready",
            "boot_json",
            "first_pass",
            "user_creates_profile",
            "user_pass",
            "second_pass",
            "carol_up",
            "user_controls_carol",
            "user_deletes_profile",
            "user_pass_again",
            "third_pass",
            "bob_retired",
            "no_leftover",
            "records_root_only",
        ],
        0,
    );
    for refused in ["user_defines", "user_cannot_write_records"] {
        boot.assert_failed(refused);
    }
    boot.assert_logged("service s6-reconcile-runtime successfully started");
}
