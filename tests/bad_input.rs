//! Bad input (docs/security.md, "Mistakes and hostile input"): each test builds a root with
//! one thing wrong, runs the real binary against it and checks what an
//! operator notices: the message, the exit code, and that nothing else was
//! lost (the other profiles' slots, owners and modes, files left untouched).
//!
//! Trees have owners other than the caller, the profiles phase drops to uid
//! 10000, and some tests mount a tmpfs or set the immutable flag: these tests
//! need root and fail (never skip) without it.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::roots::{BASE, CRON, SVSCAN_LOCK};
use common::run::{Run, reconcile, reconcile_env, reconcile_limited};
use common::tree::{self, owner_mode};

/// A second static service besides [`CRON`], linked into the scandir.
const NGINX: &str = r##"
- {path: run/s6-rc/servicedirs/nginx, type: dir}
- {path: run/s6-rc/servicedirs/nginx/run, type: file, mode: "0755", content: "#!/bin/sh\nexec nginx\n"}
- {path: run/s6-rc/servicedirs/nginx/event, type: dir, mode: "3730"}
- {path: run/s6-rc/servicedirs/nginx/supervise, type: dir, mode: "0700"}
- {path: run/s6-rc/servicedirs/nginx/supervise/control, type: fifo, mode: "0600"}
- {path: run/s6-rc/servicedirs/nginx/supervise/lock, type: file}
- {path: run/service/nginx, type: symlink, target: /run/s6-rc/servicedirs/nginx}
"##;

fn need_root() {
    assert!(
        tree::is_root(),
        "bad-input tests need root (owners, the privilege drop, mounts); \
         run the suite as root, as CI does"
    );
}

/// A fresh root holding `BASE` and `extra` (tree description lines).
fn root_with(extra: &str) -> tempfile::TempDir {
    need_root();
    let dir = tree::temp_root("bad-input-");
    tree::materialise_yaml(dir.path(), &format!("{BASE}{SVSCAN_LOCK}{extra}"))
        .unwrap_or_else(|e| panic!("tree: {e}"));
    dir
}

/// Tree lines for a named profile directory with a marker and, optionally,
/// a state file.
fn profile(name: &str, state: Option<&str>) -> String {
    let dir = format!("opt/data/profiles/{name}");
    let mut s = format!(
        "- {{path: {}, type: dir, uid: 10000, gid: 10000}}\n\
         - {{path: {}, type: file, uid: 10000, gid: 10000}}\n",
        tree::quote(&dir),
        tree::quote(&format!("{dir}/SOUL.md")),
    );
    if let Some(state) = state {
        s += &format!(
            "- {{path: {}, type: file, uid: 10000, gid: 10000, content: {}}}\n",
            tree::quote(&format!("{dir}/gateway_state.json")),
            tree::quote(state)
        );
    }
    s
}

/// A configuration file in the tree.
fn config(yaml: &str) -> String {
    format!(
        "- {{path: etc/s6-reconcile, type: dir}}\n\
         - {{path: etc/s6-reconcile/config.yaml, type: file, content: {}}}\n",
        tree::quote(yaml)
    )
}

fn exists(root: &Path, rel: &str) -> bool {
    fs::symlink_metadata(root.join(rel)).is_ok()
}

/// The volume as a tree description, the boot logs left out (they gain a
/// line per profile on every apply, as they should).
fn volume(root: &Path) -> String {
    tree::dump(&root.join("opt/data"))
        .lines()
        .filter(|l| !l.starts_with("- {path: \"logs"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn boot_log(root: &Path) -> String {
    fs::read_to_string(root.join("opt/data/logs/container-boot.log")).unwrap_or_default()
}

/// The slot `gateway-<name>` is published complete, owned by hermes, and
/// started (no `down`) or registered (`down`).
#[track_caller]
fn assert_slot(root: &Path, name: &str, started: bool) {
    let slot = format!("run/service/gateway-{name}");
    assert_eq!(owner_mode(root, &slot), (10000, 10000, 0o755), "{slot}");
    for (rel, mode) in [
        ("type", 0o644),
        ("run", 0o755),
        ("finish", 0o755),
        ("log/run", 0o755),
        ("supervise", 0o755),
        ("supervise/control", 0o660),
        ("event", 0o3730),
        ("log/supervise/control", 0o660),
    ] {
        assert_eq!(
            owner_mode(root, &format!("{slot}/{rel}")),
            (10000, 10000, mode),
            "{slot}/{rel}"
        );
    }
    assert_eq!(
        exists(root, &format!("{slot}/down")),
        !started,
        "{slot}/down (started: {started})"
    );
}

/// The good profile and the default one came through (nothing else lost).
#[track_caller]
fn assert_others_done(root: &Path, run: &Run) {
    assert_eq!(
        run.profile_line("good"),
        "reconcile: profile=good prior_state=running action=started"
    );
    assert_slot(root, "good", true);
    assert_slot(root, "default", false);
}

/// Names of the scandir's entries, sorted.
fn scandir_names(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(root.join("run/service"))
        .expect("read scandir")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------
// Profile names (docs/phases.md)

#[test]
fn invalid_profile_directory_names_are_skipped_with_the_rule() {
    let mut extra = String::new();
    for name in ["Bad", "a.b", "-x"] {
        extra += &profile(name, Some("{\"desired_state\": \"running\"}"));
    }
    let root = root_with(&extra);
    let root = root.path();
    let run = reconcile(root, &["-v"]);
    run.assert_exit(0);
    let rule = "must match ^[a-z0-9][a-z0-9_-]*$";
    for (name, why) in [
        (
            "Bad",
            "(it starts with 'B'; the first character must be a lowercase letter or digit)",
        ),
        ("a.b", "('.' at byte 1 is not allowed)"),
        (
            "-x",
            "(it starts with '-'; the first character must be a lowercase letter or digit)",
        ),
    ] {
        assert_eq!(
            run.profile_line(name),
            format!("reconcile: profile={name} prior_state=None action=skipped")
        );
        run.assert_line(&format!(
            "reconcile:   /opt/data/profiles/{name}: invalid profile name \"{name}\": {rule} {why}"
        ));
        assert!(!exists(root, &format!("run/service/gateway-{name}")));
        assert!(!exists(root, &format!("run/service/.gateway-{name}.tmp")));
    }
    assert_eq!(
        scandir_names(root),
        [".s6-svscan", "gateway-default", "gateway-good"]
    );
    assert_others_done(root, &run);
    let log = boot_log(root);
    assert!(
        log.contains(" profile=Bad prior_state=None action=skipped prior_exit=unknown\n"),
        "{log}"
    );
}

#[test]
fn invalid_declared_names_are_skipped_and_never_become_paths() {
    let long = "a".repeat(300);
    let root = root_with(&config(&format!(
        "profiles:\n  declared:\n    - {{name: Bad, start: always}}\n    - {{name: a.b, start: always}}\n    - {{name: \"-x\", start: always}}\n    - {{name: \"{long}\", start: always}}\n    - {{name: \"../../../etc\", start: always}}\n"
    )));
    let root = root.path();
    let shadow = owner_mode(root, "etc/shadow");
    let run = reconcile(root, &["-v"]);
    run.assert_exit(0);
    for name in ["Bad", "a.b", "-x"] {
        assert_eq!(
            run.profile_line(name),
            format!("reconcile: profile={name} prior_state=None action=skipped")
        );
        run.assert_line_with(&[
            &format!("reconcile:   profile \"{name}\": invalid profile name \"{name}\""),
            "must match ^[a-z0-9][a-z0-9_-]*$",
        ]);
    }
    run.profile_line(&long);
    run.assert_line(&format!(
        "reconcile:   profile \"{long}\": profile name of 300 bytes makes slot name \"gateway-aaaaaaaaaaaaaaaa…\" \
         308 bytes: s6-svscan skips names longer than 251 bytes (at most 242 bytes with prefix \"gateway-\")"
    ));
    run.profile_line("\"../../../etc\"");
    run.assert_line_with(&[
        "invalid profile name \"../../../etc\"",
        "it starts with '.'",
    ]);
    assert_eq!(owner_mode(root, "etc/shadow"), shadow);
    assert_eq!(
        scandir_names(root),
        [".s6-svscan", "gateway-default", "gateway-good"]
    );
    assert_others_done(root, &run);
}

#[test]
fn a_242_byte_name_is_accepted_and_243_bytes_are_refused_naming_the_limit() {
    let ok = "a".repeat(242);
    let long = "b".repeat(243);
    let root = root_with(&format!(
        "{}{}",
        profile(&ok, Some("{\"desired_state\": \"running\"}")),
        profile(&long, Some("{\"desired_state\": \"running\"}"))
    ));
    let root = root.path();
    let run = reconcile(root, &["-v"]);
    run.assert_exit(0);
    assert_eq!(
        run.profile_line(&ok),
        format!("reconcile: profile={ok} prior_state=running action=started")
    );
    // 8 + 242 = 250 bytes: s6-svscan's limit is 251, the staging name
    // `.gateway-<242>.tmp` is exactly 255.
    assert_slot(root, &ok, true);
    assert_eq!(
        run.profile_line(&long),
        format!("reconcile: profile={long} prior_state=None action=skipped")
    );
    run.assert_line(&format!(
        "reconcile:   /opt/data/profiles/{long}: profile name of 243 bytes makes staging dir name \
         \".gateway-bbbbbbbbbbbbbbb…\" 256 bytes: file names are limited to 255 bytes \
         (at most 242 bytes with prefix \"gateway-\")"
    ));
    assert!(!exists(root, &format!("run/service/gateway-{long}")));
    assert_others_done(root, &run);
}

#[test]
fn a_profiles_default_directory_is_skipped_with_a_warning() {
    // Its state says running; the default profile (the home) has none.
    let root = root_with(&profile(
        "default",
        Some("{\"desired_state\": \"running\"}"),
    ));
    let root = root.path();
    let before = volume(root);
    let run = reconcile(root, &["-v"]);
    run.assert_exit(0);
    run.assert_line(
        "reconcile: warning: /opt/data/profiles/default: profiles/default/ collides with the reserved \
         default slot; skipped",
    );
    // The default slot is the home's, registered: profiles/default/ was not read.
    assert_eq!(
        run.profile_line("default"),
        "reconcile: profile=default prior_state=None action=registered"
    );
    assert_others_done(root, &run);
    assert_eq!(volume(root), before, "the volume changed");
}

#[test]
fn a_profile_directory_that_is_a_symlink_is_not_followed() {
    // The link points outside the volume at a directory that looks like a
    // running profile with a stale gateway.pid.
    let root = root_with(
        r##"
- {path: srv, type: dir}
- {path: srv/elsewhere, type: dir}
- {path: srv/elsewhere/SOUL.md, type: file}
- {path: srv/elsewhere/gateway_state.json, type: file, content: "{\"desired_state\": \"running\"}"}
- {path: srv/elsewhere/gateway.pid, type: file, mode: "0600", content: "1\n"}
- {path: opt/data/profiles/linked, type: symlink, uid: 10000, gid: 10000, target: "../../../srv/elsewhere"}
"##,
    );
    let root = root.path();
    let outside = tree::dump(&root.join("srv"));
    let run = reconcile(root, &["-v"]);
    run.assert_exit(0);
    assert_eq!(
        run.profile_line("linked"),
        "reconcile: profile=linked prior_state=None action=skipped"
    );
    run.assert_line(
        "reconcile:   profile \"linked\": profile directory /opt/data/profiles/linked is a symlink; not followed",
    );
    assert!(!exists(root, "run/service/gateway-linked"));
    assert_eq!(tree::dump(&root.join("srv")), outside, "srv/ changed");
    assert!(exists(root, "opt/data/profiles/linked"), "the link is kept");
    assert_others_done(root, &run);
}

// ---------------------------------------------------------------------------
// State files (docs/phases.md): never fatal, a warning naming the file, `registered`

#[test]
fn a_state_file_symlink_is_followed_as_the_user_and_inside_the_root() {
    // Every target says running. `secret` is root-only (0600): the user
    // cannot read it, so neither does reconcile. `public` is the user's to
    // read: followed, started. `host` names, by its absolute path, a
    // world-readable file outside the root: resolved inside the root it
    // names nothing (a link followed on the host would start the slot).
    let host = outside_dir(0);
    let host_file = host.path().join("running.json");
    fs::write(&host_file, "{\"desired_state\": \"running\"}\n").unwrap();
    fs::set_permissions(&host_file, fs::Permissions::from_mode(0o644)).unwrap();
    let root = root_with(&format!(
        r##"
- {{path: etc/running.json, type: file, mode: "0600", content: "{{\"desired_state\": \"running\"}}\n"}}
- {{path: etc/public.json, type: file, mode: "0644", content: "{{\"desired_state\": \"running\"}}\n"}}
{}- {{path: opt/data/profiles/secret/gateway_state.json, type: symlink, uid: 10000, gid: 10000, target: "../../../../etc/running.json"}}
{}- {{path: opt/data/profiles/public/gateway_state.json, type: symlink, uid: 10000, gid: 10000, target: "../../../../../../../../etc/public.json"}}
{}- {{path: opt/data/profiles/host/gateway_state.json, type: symlink, uid: 10000, gid: 10000, target: "{}"}}
"##,
        profile("secret", None),
        profile("public", None),
        profile("host", None),
        host_file.display()
    ));
    let root = root.path();
    let secret = fs::symlink_metadata(root.join("etc/running.json")).unwrap();
    let run = reconcile(root, &["-v"]);
    run.assert_exit(0);
    assert_eq!(
        run.profile_line("public"),
        "reconcile: profile=public prior_state=running action=started"
    );
    assert_slot(root, "public", true);
    for (name, why) in [
        ("secret", "Permission denied"),
        ("host", "is a symlink to nothing (dangling)"),
    ] {
        assert_eq!(
            run.profile_line(name),
            format!("reconcile: profile={name} prior_state=None action=registered")
        );
        run.assert_line(&format!(
            "reconcile: warning: /opt/data/profiles/{name}/gateway_state.json: {why}; \
             treating the profile as having no state"
        ));
        assert_slot(root, name, false);
    }
    let after = fs::symlink_metadata(root.join("etc/running.json")).unwrap();
    assert_eq!(
        (after.uid(), after.gid(), after.mode() & 0o7777, after.ino()),
        (
            secret.uid(),
            secret.gid(),
            secret.mode() & 0o7777,
            secret.ino()
        )
    );
    assert_others_done(root, &run);
}

/// A profile `odd` whose state file is `state_lines` (tree lines) or has
/// `content`; returns the run, after checking that nothing else was lost.
fn state_case(content: Option<&str>, state_lines: &str) -> (tempfile::TempDir, Run) {
    let mut extra = profile("odd", content);
    extra += state_lines;
    let dir = root_with(&extra);
    let root = dir.path();
    let before = volume(root);
    let run = reconcile(root, &["-v"]);
    run.assert_exit(0);
    assert_others_done(root, &run);
    assert_eq!(volume(root), before, "the volume changed");
    (dir, run)
}

#[test]
fn a_state_file_that_is_a_directory_is_no_state_with_a_warning() {
    let (root, run) = state_case(
        None,
        "- {path: opt/data/profiles/odd/gateway_state.json, type: dir, uid: 10000, gid: 10000}\n",
    );
    assert_eq!(
        run.profile_line("odd"),
        "reconcile: profile=odd prior_state=None action=registered"
    );
    run.assert_line(
        "reconcile: warning: /opt/data/profiles/odd/gateway_state.json: is a directory, not a regular file; \
         treating the profile as having no state",
    );
    assert_slot(root.path(), "odd", false);
}

#[test]
fn corrupt_state_json_is_no_state_with_a_warning_naming_line_and_column() {
    let (root, run) = state_case(Some("{\"desired_state\": \"running\",\n"), "");
    assert_eq!(
        run.profile_line("odd"),
        "reconcile: profile=odd prior_state=None action=registered"
    );
    run.assert_line(
        "reconcile: warning: /opt/data/profiles/odd/gateway_state.json: not valid JSON: EOF while parsing \
         a value at line 2 column 1; treating the profile as having no state",
    );
    assert_slot(root.path(), "odd", false);
}

#[test]
fn a_state_file_holding_an_array_is_no_state_with_a_warning() {
    let (root, run) = state_case(Some("[]\n"), "");
    assert_eq!(
        run.profile_line("odd"),
        "reconcile: profile=odd prior_state=None action=registered"
    );
    run.assert_line(
        "reconcile: warning: /opt/data/profiles/odd/gateway_state.json: not a JSON object (found an array); \
         treating the profile as having no state",
    );
    assert_slot(root.path(), "odd", false);
}

#[test]
fn a_null_desired_state_falls_back_to_a_transient_gateway_state() {
    let (root, run) = state_case(
        Some("{\"desired_state\": null, \"gateway_state\": \"draining\"}\n"),
        "",
    );
    assert_eq!(
        run.profile_line("odd"),
        "reconcile: profile=odd prior_state=running action=started"
    );
    run.assert_no_line_with("odd/gateway_state.json");
    assert_slot(root.path(), "odd", true);
}

#[test]
fn a_state_file_with_a_utf8_bom_is_read() {
    let (root, run) = state_case(Some("\u{feff}{\"desired_state\": \"running\"}\n"), "");
    assert_eq!(
        run.profile_line("odd"),
        "reconcile: profile=odd prior_state=running action=started"
    );
    run.assert_no_line_with("odd/gateway_state.json");
    assert_slot(root.path(), "odd", true);
}

// ---------------------------------------------------------------------------
// Staging dirs (docs/phases.md; docs/security.md, "Safety")

const ROOT_STAGING: &str = r##"
- {path: run/service/.gateway-good.tmp, type: dir, mode: "0700"}
- {path: run/service/.gateway-good.tmp/run, type: file, mode: "0600", content: "half-built\n"}
- {path: run/service/.gateway-good.tmp/log, type: dir, mode: "0700"}
"##;

#[test]
fn a_root_owned_0700_staging_dir_is_removed_as_root_and_the_slot_published() {
    let root = root_with(ROOT_STAGING);
    let root = root.path();
    let run = reconcile(root, &["-v"]);
    run.assert_exit(0);
    run.assert_line("reconcile:   remove  /run/service/.gateway-good.tmp");
    run.assert_line("reconcile:   publish /run/service/gateway-good  (new slot)");
    assert!(!exists(root, "run/service/.gateway-good.tmp"));
    assert_others_done(root, &run);
    assert_eq!(
        scandir_names(root),
        [".s6-svscan", "gateway-default", "gateway-good"]
    );
}

#[test]
fn without_the_scandir_phase_a_root_staging_dir_fails_that_slot_only() {
    // The scandir already belongs to hermes, but hermes cannot empty a
    // root-only staging dir: that slot fails, with the path and the error;
    // the default slot is still published and the staging dir left as it is.
    let root = root_with(ROOT_STAGING);
    let root = root.path();
    std::os::unix::fs::chown(root.join("run/service"), Some(10000), Some(10000)).unwrap();
    let run = reconcile(root, &["-v", "--phase", "profiles"]);
    run.assert_exit(1);
    run.assert_line(
        "reconcile: error: unable to remove /run/service/.gateway-good.tmp: Permission denied (as uid 10000)",
    );
    assert_eq!(
        run.profile_line("good"),
        "reconcile: profile=good prior_state=running action=skipped"
    );
    assert!(!exists(root, "run/service/gateway-good"));
    assert_eq!(
        owner_mode(root, "run/service/.gateway-good.tmp"),
        (0, 0, 0o700)
    );
    assert_eq!(
        owner_mode(root, "run/service/.gateway-good.tmp/run"),
        (0, 0, 0o600)
    );
    assert_slot(root, "default", false);
}

/// A directory outside the temp root: what a planted staging symlink points at.
fn outside_dir(owner: u32) -> tempfile::TempDir {
    let dir = tree::temp_root("bad-input-outside-");
    tree::materialise_yaml(
        dir.path(),
        &format!(
            "- {{path: victim, type: dir, mode: \"0755\", uid: {owner}, gid: {owner}}}\n\
             - {{path: victim/keep, type: file, mode: \"0644\", uid: {owner}, gid: {owner}, content: \"precious\\n\"}}\n\
             - {{path: victim/sub, type: dir, mode: \"0700\", uid: 0, gid: 0}}\n\
             - {{path: victim/sub/secret, type: file, mode: \"0600\", content: \"root's\\n\"}}\n"
        ),
    )
    .unwrap();
    dir
}

#[test]
fn a_staging_symlink_to_a_directory_outside_is_removed_itself_by_the_scandir_phase() {
    let outside = outside_dir(0);
    let target = outside.path().join("victim");
    let root = root_with(&format!(
        "- {{path: run/service/.gateway-good.tmp, type: symlink, uid: 10000, gid: 10000, target: {}}}\n",
        tree::quote(target.to_str().unwrap())
    ));
    let root = root.path();
    let before = tree::dump(outside.path());
    let run = reconcile(root, &["-v"]);
    run.assert_exit(0);
    run.assert_line("reconcile:   unlink  /run/service/.gateway-good.tmp");
    assert!(!exists(root, "run/service/.gateway-good.tmp"));
    assert_eq!(
        tree::dump(outside.path()),
        before,
        "outside the tree changed"
    );
    assert_others_done(root, &run);
}

#[test]
fn a_staging_symlink_to_a_users_directory_outside_is_removed_itself_by_the_profiles_phase() {
    // Profiles phase alone, as hermes, in a scandir hermes owns; the target
    // is hermes's own directory, so following the link would succeed.
    let outside = outside_dir(10000);
    let target = outside.path().join("victim");
    let root = root_with(&format!(
        "- {{path: run/service/.gateway-good.tmp, type: symlink, uid: 10000, gid: 10000, target: {}}}\n",
        tree::quote(target.to_str().unwrap())
    ));
    let root = root.path();
    std::os::unix::fs::chown(root.join("run/service"), Some(10000), Some(10000)).unwrap();
    let before = tree::dump(outside.path());
    let run = reconcile(root, &["-v", "--phase", "profiles"]);
    run.assert_exit(0);
    run.assert_line("reconcile:   unlink  /run/service/.gateway-good.tmp");
    assert!(!exists(root, "run/service/.gateway-good.tmp"));
    assert_eq!(
        tree::dump(outside.path()),
        before,
        "outside the tree changed"
    );
    assert_others_done(root, &run);
}

// ---------------------------------------------------------------------------
// A read-only scandir (docs/security.md, "Safety", "Mistakes and hostile input")

/// A mount that is taken down when dropped, also when the test fails.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path) -> Mount {
        sh(
            &["mount", "-t", "tmpfs", "-o", "mode=0755,size=1m", "tmpfs"],
            at,
        );
        Mount(at.to_path_buf())
    }

    fn remount_ro(&self) {
        sh(&["mount", "-o", "remount,ro"], &self.0);
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

fn sh(cmd: &[&str], path: &Path) {
    let st = Command::new(cmd[0])
        .args(&cmd[1..])
        .arg(path)
        .status()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(st.success(), "{cmd:?} {}: {st}", path.display());
}

#[test]
fn a_read_only_scandir_fails_every_slot_cleanly_and_loses_nothing() {
    let root = root_with(&profile("other", None));
    let root = root.path();
    let scandir = root.join("run/service");
    let mount = Mount::tmpfs(&scandir);
    fs::create_dir(scandir.join(".s6-svscan")).unwrap();
    fs::set_permissions(
        scandir.join(".s6-svscan"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    nix::unistd::mkfifo(
        &scandir.join(".s6-svscan/control"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    mount.remount_ro();
    let volume_before = volume(root);
    let scandir_before = tree::dump(&scandir);

    let run = reconcile(root, &["-v"]);
    run.assert_exit(1);
    for slot in ["gateway-default", "gateway-good", "gateway-other"] {
        run.assert_line(&format!(
            "reconcile: error: unable to publish /run/service/{slot}: \
             mkdir in staging dir .{slot}.tmp: Read-only file system (as uid 10000)"
        ));
    }
    run.assert_line("reconcile: error: unable to chown /run/service: Read-only file system");
    // Not published: reported as such on stdout and in the boot log.
    for (name, state) in [("default", "None"), ("good", "running"), ("other", "None")] {
        assert_eq!(
            run.profile_line(name),
            format!("reconcile: profile={name} prior_state={state} action=skipped")
        );
        let log = boot_log(root);
        assert!(
            log.contains(&format!(
                " profile={name} prior_state={state} action=skipped prior_exit=unknown\n"
            )),
            "{log}"
        );
    }
    assert_eq!(tree::dump(&scandir), scandir_before, "the scandir changed");
    assert_eq!(volume(root), volume_before, "the volume changed");
}

// ---------------------------------------------------------------------------
// Configuration and command line (README "Exit codes"): exit 100, nothing touched

/// Run with `config_yaml` as the tree's config file: exit 100, the message
/// on stderr, and the tree exactly as it was.
fn config_error(config_yaml: &str, env: &[(&str, &str)]) -> String {
    let dir = root_with(&config(config_yaml));
    let root = dir.path();
    let before = tree::dump(root);
    let run = reconcile_env(root, &[], env);
    run.assert_exit(100);
    assert_eq!(run.stdout, "", "{}", run.show());
    assert_eq!(
        tree::dump(root),
        before,
        "a bad configuration changed the tree"
    );
    run.stderr
}

#[test]
fn invalid_yaml_is_refused_with_file_line_and_column() {
    // An unterminated quoted scalar: the parser reaches the end of the file.
    let err = config_error("user: hermes\nprofiles:\n  home: \"/opt/data\n", &[]);
    assert!(
        err.starts_with(
            "reconcile: fatal: /etc/s6-reconcile/config.yaml:4:1: profiles.home: found unexpected end of stream"
        ),
        "{err}"
    );
    // A tab where YAML wants spaces.
    let err = config_error("user: hermes\n\tpolicy: compat\n", &[]);
    assert!(
        err.starts_with("reconcile: fatal: /etc/s6-reconcile/config.yaml:2:1: ")
            && err.contains("found a tab character that violates indentation"),
        "{err}"
    );
}

/// The two alias bombs: a 1,000-key mapping replayed by 100,000 aliases
/// (300 KB standing for 100 million nodes), and a 600 KB string replayed
/// by 100,000 aliases (60 GB).
fn alias_bombs() -> [String; 2] {
    let keys: Vec<String> = (0..1000).map(|i| format!("k{i}: {i}")).collect();
    let mapping = format!(
        "a: &a {{{}}}\nx: [{}]\n",
        keys.join(", "),
        vec!["*a"; 100_000].join(", ")
    );
    let string = format!(
        "m: &s \"{}\"\nx: [{}]\n",
        "A".repeat(600_000),
        vec!["*s"; 100_000].join(", ")
    );
    [mapping, string]
}

/// Under 1 GiB of address space, so that a regression fails as an
/// allocation failure instead of taking the machine's memory.
const ONE_GIB: &str = "ulimit -v 1048576";

#[test]
fn a_configuration_whose_aliases_replay_gigabytes_is_refused_at_once() {
    for bomb in alias_bombs() {
        let dir = root_with(&config("user: hermes\n"));
        let root = dir.path();
        fs::write(root.join("etc/s6-reconcile/config.yaml"), &bomb).unwrap();
        let run = reconcile_limited(root, ONE_GIB, &["--plan"]);
        run.assert_exit(100);
        let budget = 4 * bomb.len();
        // Located in the anchored node (line 1) that was being replayed.
        let (at, message) = run
            .stderr
            .split_once(": (file): ")
            .unwrap_or_else(|| panic!("{}", run.show()));
        assert!(
            at.starts_with("reconcile: fatal: /etc/s6-reconcile/config.yaml:1:"),
            "{}",
            run.show()
        );
        assert_eq!(
            message,
            format!(
                "its aliases replay more than {budget} nodes and scalar bytes (4 per byte of \
                 the file, at least 65536); each alias replays in full the node it names\n"
            )
        );
    }
}

#[test]
fn an_application_config_yaml_alias_bomb_costs_nothing_and_the_boot_goes_on() {
    for bomb in alias_bombs() {
        let dir = root_with(&profile("alice", None));
        let root = dir.path();
        let yaml = root.join("opt/data/config.yaml");
        fs::write(&yaml, &bomb).unwrap();
        std::os::unix::fs::chown(&yaml, Some(10000), Some(10000)).unwrap();
        let run = reconcile_limited(root, ONE_GIB, &[]);
        run.assert_ok();
        // Read as PyYAML reads it: aliases shared, nothing replayed, and
        // nothing in it to warn about (no deciding key is set).
        assert!(!run.stdout.contains("config.yaml"), "{}", run.show());
        assert_slot(root, "alice", false);
    }
}

#[test]
fn an_unknown_key_is_refused_with_file_line_column_and_key() {
    let err = config_error(
        "user: hermes\nprofiles:\n  multiplex: true\n  prnue: true\n",
        &[],
    );
    assert!(
        err.starts_with(
            "reconcile: fatal: /etc/s6-reconcile/config.yaml:4:3: profiles.prnue: unknown field `prnue`, expected one of"
        ),
        "{err}"
    );
}

#[test]
fn a_glob_that_does_not_parse_is_refused_with_its_line_and_key() {
    // The bad glob is the second item, on line 4, column 7.
    let err = config_error("static:\n  skip:\n    - \"s6rc-*\"\n    - \"a[b\"\n", &[]);
    assert!(
        err.starts_with(
            "reconcile: fatal: /etc/s6-reconcile/config.yaml:4:7: static.skip[1]: bad glob \"a[b\": \
             error parsing glob 'a[b': unclosed character class; missing ']'"
        ),
        "{err}"
    );
}

#[test]
fn an_unknown_user_is_refused_naming_etc_passwd() {
    let err = config_error("user: nosuch\n", &[]);
    assert_eq!(
        err,
        "reconcile: fatal: /etc/s6-reconcile/config.yaml:1:7: user: unknown user \"nosuch\": \
         not found in /etc/passwd\n"
    );
}

#[test]
fn an_unknown_group_is_refused_naming_etc_group() {
    let err = config_error("group: nosuch\n", &[]);
    assert_eq!(
        err,
        "reconcile: fatal: /etc/s6-reconcile/config.yaml:1:8: group: unknown group \
         \"nosuch\": not found in /etc/group\n"
    );
}

#[test]
fn an_unrecognized_multiplex_value_is_a_warning_and_the_volume_decides() {
    // The volume's own configuration multiplexes; the variable is not a
    // boolean word: the boot goes on, as the application's does.
    let dir = root_with(
        "- {path: opt/data/config.yaml, type: file, uid: 10000, gid: 10000, content: \"gateway:\\n  multiplex_profiles: true\\n\"}\n",
    );
    let root = dir.path();
    let run = reconcile_env(root, &["-v"], &[("GATEWAY_MULTIPLEX_PROFILES", "maybe")]);
    run.assert_exit(0);
    run.assert_line(
        "reconcile: warning: GATEWAY_MULTIPLEX_PROFILES=\"maybe\" is not recognized (accepted: 1, true, \
         yes, on, or 0, false, no, off; blank means unset); ignored, multiplexing follows the \
         configuration",
    );
    // good's intent is folded into the default slot (one gateway per container).
    run.assert_line(
        "reconcile: profile gateway(s) good asked to autostart; one gateway per container serves \
         every profile, so the ROOT slot (gateway-default) was started instead and multiplexes them.",
    );
    run.assert_line("reconcile: profile=default prior_state=None action=started");
    run.assert_line("reconcile: profile=good prior_state=running action=registered");
    assert_slot(root, "default", true);
    assert_slot(root, "good", false);
    assert!(
        boot_log(root).contains("profile=good prior_state=running action=registered"),
        "{}",
        boot_log(root)
    );
}

#[test]
fn a_missing_root_is_bad_usage() {
    need_root();
    let tmp = tree::temp_root("bad-input-noroot-");
    let missing = tmp.path().join("nope");
    let run = reconcile(&missing, &["--plan"]);
    run.assert_exit(100);
    assert_eq!(
        run.stderr,
        format!(
            "reconcile: fatal: --root {}: No such file or directory (os error 2)\n",
            missing.display()
        )
    );
    let file = tmp.path().join("file");
    fs::write(&file, "").unwrap();
    let run = reconcile(&file, &["--plan"]);
    run.assert_exit(100);
    assert_eq!(
        run.stderr,
        format!(
            "reconcile: fatal: --root {}: not a directory\n",
            file.display()
        )
    );
    // `--root` given without its value.
    let out = Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .args(["--plan", "--root"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(100));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a value is required for '--root <DIR>'"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Static servicedirs that cannot be used, one service that cannot be changed

/// The scandir and profiles phases were done despite a static failure.
#[track_caller]
fn assert_other_phases_done(root: &Path, run: &Run) {
    assert_eq!(owner_mode(root, "run/service"), (10000, 10000, 0o755));
    assert_eq!(owner_mode(root, "run/service/.s6-svscan/control").0, 10000);
    assert_others_done(root, run);
}

#[test]
fn servicedirs_that_is_a_symlink_fails_clearly_and_the_other_phases_run() {
    let root = root_with(
        r##"
- {path: run/real, type: dir}
- {path: run/real/nginx, type: dir}
- {path: run/real/nginx/supervise, type: dir, mode: "0700"}
- {path: run/real/nginx/supervise/control, type: fifo, mode: "0600"}
- {path: run/s6-rc, type: dir}
- {path: run/s6-rc/servicedirs, type: symlink, target: /run/real}
"##,
    );
    let root = root.path();
    let run = reconcile(root, &["-v"]);
    run.assert_exit(1);
    run.assert_line(
        "reconcile: error: unable to open /run/s6-rc/servicedirs: is a symlink; refusing to follow it",
    );
    assert_eq!(owner_mode(root, "run/real/nginx/supervise"), (0, 0, 0o700));
    assert_eq!(
        owner_mode(root, "run/real/nginx/supervise/control"),
        (0, 0, 0o600)
    );
    assert_other_phases_done(root, &run);
}

#[test]
fn servicedirs_that_is_a_file_fails_clearly_and_the_other_phases_run() {
    let root = root_with(
        r##"
- {path: run/s6-rc, type: dir}
- {path: run/s6-rc/servicedirs, type: file, content: "not a directory\n"}
"##,
    );
    let root = root.path();
    let run = reconcile(root, &["-v"]);
    run.assert_exit(1);
    run.assert_line(
        "reconcile: error: unable to open /run/s6-rc/servicedirs: is a regular file, not a directory",
    );
    assert_other_phases_done(root, &run);
}

/// Makes one directory unchangeable for the test's duration: the immutable
/// flag, or where the file system has none a read-only bind mount.
enum Frozen {
    Immutable(PathBuf),
    /// Unmounted when dropped.
    Bind {
        _mount: Mount,
    },
}

impl Frozen {
    fn new(path: &Path) -> Frozen {
        let chattr = Command::new("chattr").arg("+i").arg(path).status();
        if chattr.is_ok_and(|s| s.success()) {
            return Frozen::Immutable(path.to_path_buf());
        }
        sh(&["mount", "--bind", path.to_str().unwrap()], path);
        let m = Mount(path.to_path_buf());
        sh(&["mount", "-o", "remount,bind,ro"], path);
        Frozen::Bind { _mount: m }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Frozen::Immutable(p) = self {
            let _ = Command::new("chattr").arg("-i").arg(&*p).status();
        }
    }
}

#[test]
fn a_permission_error_on_one_service_leaves_the_others_reconciled() {
    let root = root_with(&format!("{CRON}{NGINX}"));
    let root = root.path();
    let frozen = Frozen::new(&root.join("run/s6-rc/servicedirs/cron/supervise"));
    let run = reconcile(root, &["-v"]);
    drop(frozen);
    run.assert_exit(1);
    // EPERM (immutable) or EROFS (the bind-mount fallback).
    assert!(
        run.stdout.contains(
            "reconcile: error: unable to chown /run/s6-rc/servicedirs/cron/supervise: Operation not permitted"
        ) || run.stdout.contains(
            "reconcile: error: unable to chown /run/s6-rc/servicedirs/cron/supervise: Read-only file system"
        ),
        "{}",
        run.show()
    );
    assert_eq!(
        owner_mode(root, "run/s6-rc/servicedirs/cron/supervise"),
        (0, 0, 0o700)
    );
    // Everything else of cron, and nginx, was done.
    assert_eq!(
        owner_mode(root, "run/s6-rc/servicedirs/cron/event"),
        (10000, 10000, 0o3730)
    );
    assert_eq!(
        owner_mode(root, "run/s6-rc/servicedirs/nginx/supervise"),
        (10000, 10000, 0o710)
    );
    assert_eq!(
        owner_mode(root, "run/s6-rc/servicedirs/nginx/supervise/control"),
        (10000, 10000, 0o660)
    );
    assert_eq!(
        owner_mode(root, "run/s6-rc/servicedirs/nginx/event"),
        (10000, 10000, 0o3730)
    );
    assert_eq!(
        owner_mode(root, "run/s6-rc/servicedirs/nginx/supervise/lock"),
        (0, 0, 0o644),
        "runtime files are left alone"
    );
    assert_other_phases_done(root, &run);
}

/// `config.yaml` documents PyYAML reads in no time because it shares
/// aliases: a billion laughs with 100,000 aliases, and 30,000 merge keys
/// stacked one on the other. Both multiplex (the layer counts), and the run
/// stays within 256 MiB of address space (a reader that expanded them would
/// fail fast there instead of eating the machine's memory).
#[test]
fn yaml_bombs_in_the_volume_config_are_read_without_expanding_them() {
    let mut laughs = String::from("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        laughs += &format!(
            "l{i}: &l{i} [{}]\n",
            vec![format!("*l{}", i - 1); 10].join(", ")
        );
    }
    laughs += &format!("big: [{}]\n", vec!["*l9"; 100_000].join(", "));
    laughs += "multiplex_profiles: *l9\n";
    let mut merges = String::from("m0: &m0 {multiplex_profiles: yes}\n");
    for i in 1..30_000 {
        merges += &format!("m{i}: &m{i} {{<<: *m{}}}\n", i - 1);
    }
    merges += "gateway: {<<: *m29999}\n";
    for yaml in [laughs, merges] {
        assert!(yaml.len() < 1 << 20, "{} bytes", yaml.len());
        let dir = root_with("");
        let root = dir.path();
        let path = root.join("opt/data/config.yaml");
        fs::write(&path, &yaml).unwrap();
        std::os::unix::fs::chown(&path, Some(10000), Some(10000)).unwrap();
        let run = common::run::reconcile_limited(root, "ulimit -v 262144", &[]);
        run.assert_exit(0);
        run.assert_line("reconcile: profile=good prior_state=running action=registered");
        run.assert_line("reconcile: profile=default prior_state=None action=started");
        assert!(
            !run.stdout.contains("config.yaml"),
            "a warning about config.yaml:\n{}",
            run.stdout
        );
    }
}
