//! Hostile input and operator mistakes (docs/security.md, "Mistakes and hostile input"): each case runs
//! the real binary under a deadline (no hang) on a temp root with one thing
//! wrong, and checks what an operator notices: the exact message, the exit
//! code, and what must not change (the whole tree, including the owners
//! and modes of `/`, `/etc` and `/etc/shadow` in the temp root, the boot log
//! and existing slots).
//!
//! Trees have owners other than the caller: these tests need root and fail
//! (never skip) without it.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;

use common::roots::{BASE, config, root_with};
use common::timed::{self, Out};
use common::tree;

fn run(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    timed::run(common::run::reconcile_cmd(root, args, env), None)
}

/// Owner and mode of the temp root's `/`, `/etc`, `/etc/shadow`, `/run`
/// and `/opt`: what a base path mistake would hand to the user.
fn system_facts(root: &Path) -> Vec<(u32, u32, u32)> {
    ["", "etc", "etc/shadow", "etc/passwd", "run", "opt"]
        .iter()
        .map(|p| {
            let m = std::fs::symlink_metadata(root.join(p)).expect("lstat");
            (m.uid(), m.gid(), m.mode() & 0o7777)
        })
        .collect()
}

/// A run refused before doing anything: exit 100, nothing on stdout, the
/// message on stderr (returned), and the tree exactly as it was.
fn refused(extra: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = root_with(extra);
    let root = dir.path();
    let (before, facts) = (tree::dump(root), system_facts(root));
    let out = run(root, args, env);
    out.assert_exit(100);
    assert_eq!(out.stdout, "", "{}", out.show());
    assert_eq!(system_facts(root), facts, "{}", out.show());
    assert_eq!(tree::dump(root), before, "a refused run changed the tree");
    out.stderr
}

const SYSTEM: &str = "/etc, /usr, /bin, /sbin, /lib*, /boot, /dev, /proc, /sys, /run, \
                      /var, /opt, /home, /root, /tmp";

fn system_dir_message(prefix: &str, path: &str) -> String {
    format!(
        "reconcile: fatal: {prefix}\"{path}\" is / or a system directory ({SYSTEM}); \
         a base directory must be a directory of its own below one, e.g. /opt/data\n"
    )
}

// ---------------------------------------------------------------------------
// 1. Base paths

#[test]
fn a_scandir_variable_of_slash_or_a_system_dir_is_refused_and_nothing_touched() {
    for value in ["/", "/etc", "/run", "/opt/"] {
        let err = refused("", &[], &[("S6_PROFILE_GATEWAY_SCANDIR", value)]);
        let shown = value.trim_end_matches('/');
        let shown = if shown.is_empty() { "/" } else { value };
        assert_eq!(
            err,
            system_dir_message(
                &format!(
                    "environment variable S6_PROFILE_GATEWAY_SCANDIR={value:?}: (overrides scandir.path) "
                ),
                shown
            ),
            "{value}"
        );
    }
    let err = refused("", &[], &[("HERMES_HOME", "/etc")]);
    assert_eq!(
        err,
        system_dir_message(
            "environment variable HERMES_HOME=\"/etc\": (overrides profiles.home) ",
            "/etc"
        )
    );
    let err = refused("", &["--plan"], &[("HERMES_HOME", "opt/data")]);
    assert_eq!(
        err,
        "reconcile: fatal: environment variable HERMES_HOME=\"opt/data\": (overrides \
         profiles.home) expected an absolute path, found \"opt/data\"\n"
    );
}

#[test]
fn a_configured_base_that_is_a_system_dir_is_refused_at_its_value() {
    let err = refused(&config("profiles:\n  home: /\n"), &[], &[]);
    assert_eq!(
        err,
        system_dir_message("/etc/s6-reconcile/config.yaml:2:9: profiles.home: ", "/")
    );
    let err = refused(&config("static:\n  servicedirs: /lib64\n"), &[], &[]);
    assert_eq!(
        err,
        system_dir_message(
            "/etc/s6-reconcile/config.yaml:2:16: static.servicedirs: ",
            "/lib64"
        )
    );
}

#[test]
fn bases_that_contain_one_another_are_refused_naming_key_or_variable() {
    let err = refused(&config("scandir:\n  path: /opt/data/service\n"), &[], &[]);
    assert_eq!(
        err,
        "reconcile: fatal: /etc/s6-reconcile/config.yaml: profiles.home: \"/opt/data\" \
         contains scandir.path \"/opt/data/service\"; the base directories \
         (static.servicedirs, scandir.path, profiles.home) must not contain one another\n"
    );
    let err = refused("", &["--plan"], &[("HERMES_HOME", "/run/service")]);
    assert_eq!(
        err,
        "reconcile: fatal: environment variable HERMES_HOME=\"/run/service\": is the same \
         directory as scandir.path \"/run/service\"; the base directories \
         (static.servicedirs, scandir.path, profiles.home) must not contain one another\n"
    );
    let err = refused("", &[], &[("S6_PROFILE_GATEWAY_SCANDIR", "/run/s6-rc")]);
    assert_eq!(
        err,
        "reconcile: fatal: environment variable S6_PROFILE_GATEWAY_SCANDIR=\"/run/s6-rc\": \
         contains static.servicedirs \"/run/s6-rc/servicedirs\"; the base directories \
         (static.servicedirs, scandir.path, profiles.home) must not contain one another\n"
    );
}

// ---------------------------------------------------------------------------
// 2. Root-owned inputs that never end

#[test]
fn a_config_that_is_a_fifo_or_a_device_is_refused_at_once() {
    let fifo = "- {path: etc/s6-reconcile, type: dir}\n\
                - {path: etc/s6-reconcile/config.yaml, type: fifo}\n";
    let err = refused(fifo, &[], &[]);
    assert_eq!(
        err,
        "reconcile: fatal: unable to read /etc/s6-reconcile/config.yaml: is a FIFO, not a \
         regular file\n"
    );
    // The configuration may be a symlink (a mounted ConfigMap is one), but
    // what it leads to must be a regular file.
    let zero = "- {path: etc/s6-reconcile, type: dir}\n\
                - {path: etc/s6-reconcile/config.yaml, type: symlink, target: /dev/zero}\n";
    let err = refused(zero, &[], &[]);
    assert_eq!(
        err,
        "reconcile: fatal: unable to read /etc/s6-reconcile/config.yaml: is a device or \
         other special file, not a regular file\n"
    );
    // --config names a host path, shown as given.
    let dir = root_with("");
    let out = run(dir.path(), &["--plan", "--config", "/dev/zero"], &[]);
    out.assert_exit(100).assert_stderr(
        "reconcile: fatal: unable to read /dev/zero: is a device or other special file, \
         not a regular file\n",
    );
}

#[test]
fn a_config_over_one_mebibyte_is_refused() {
    let big = format!("# {}\n", "x".repeat(1 << 20));
    let err = refused(&config(&big), &["--plan"], &[]);
    assert_eq!(
        err,
        "reconcile: fatal: unable to read /etc/s6-reconcile/config.yaml: is larger than \
         1048576 bytes\n"
    );
}

#[test]
fn yaml_nested_100000_levels_fails_fast_at_its_line_and_column() {
    let n = 100_000;
    let deep = format!(
        "user: hermes\nstatic:\n  skip: {}{}\n",
        "[".repeat(n),
        "]".repeat(n)
    );
    let err = refused(&config(&deep), &["--plan"], &[]);
    assert_eq!(
        err,
        "reconcile: fatal: /etc/s6-reconcile/config.yaml:3:41: (file): nested deeper than \
         32 levels (a configuration needs 4 at most)\n"
    );
    let dashes = format!("profiles:\n  autostart:\n{}x\n", "- ".repeat(n));
    let err = refused(&config(&dashes), &["--plan"], &[]);
    assert!(
        err.starts_with("reconcile: fatal: /etc/s6-reconcile/config.yaml:3:65: (file): nested"),
        "{err}"
    );
}

#[test]
fn passwd_or_group_that_is_not_a_regular_file_is_refused_naming_it() {
    let swap = |file: &str, how: &str| {
        BASE.lines()
            .filter(|l| !l.contains(&format!("path: etc/{file},")))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            + &format!("- {{path: etc/{file}, {how}}}\n")
    };
    for (file, key, how, what) in [
        (
            "passwd",
            "user",
            "type: fifo",
            "is a FIFO, not a regular file",
        ),
        (
            "passwd",
            "user",
            "type: symlink, target: /dev/zero",
            "is a symlink (not followed; it must be a regular file)",
        ),
        (
            "group",
            "group",
            "type: fifo",
            "is a FIFO, not a regular file",
        ),
    ] {
        let dir = tree::temp_root("hostile-");
        let root = dir.path();
        tree::materialise_yaml(root, &(swap(file, how) + &config("group: hermes\n"))).unwrap();
        let before = tree::dump(root);
        let out = run(root, &[], &[]);
        out.assert_exit(100);
        let col = if key == "user" { "(default)" } else { "" };
        let at = if key == "user" {
            format!("/etc/s6-reconcile/config.yaml: user {col}")
        } else {
            "/etc/s6-reconcile/config.yaml:1:8: group".to_string()
        };
        assert_eq!(
            out.stderr,
            format!("reconcile: fatal: {at}: unable to read /etc/{file}: {what}\n"),
            "{file} {how}"
        );
        assert_eq!(tree::dump(root), before);
    }
}

#[test]
fn a_state_file_that_is_a_fifo_never_hangs_the_boot() {
    let dir = root_with(
        "- {path: opt/data/profiles/piped, type: dir, uid: 10000, gid: 10000}\n\
         - {path: opt/data/profiles/piped/SOUL.md, type: file, uid: 10000, gid: 10000}\n\
         - {path: opt/data/profiles/piped/gateway_state.json, type: fifo, uid: 10000, gid: 10000}\n",
    );
    let out = run(dir.path(), &[], &[]);
    out.assert_exit(0);
    assert!(
        out.stdout
            .lines()
            .any(|l| l == "reconcile: profile=good prior_state=running action=started"),
        "{}",
        out.show()
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("reconcile: profile=piped ")),
        "{}",
        out.show()
    );
}

// ---------------------------------------------------------------------------
// 3. A report that cannot be written keeps the run's exit code

/// A pipe whose reading end is already closed.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Stdio::from(writer)
}

fn dev_full() -> Stdio {
    Stdio::from(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("open /dev/full"),
    )
}

#[test]
fn check_with_drift_into_a_closed_pipe_still_exits_3() {
    let dir = root_with("");
    let before = tree::dump(dir.path());
    let out = timed::run(
        common::run::reconcile_cmd(dir.path(), &["--check"], &[]),
        Some(closed_pipe()),
    );
    out.assert_exit(3).assert_stderr(
        "reconcile: warning: unable to write the report to stdout: Broken pipe (exit 3)\n",
    );
    assert_eq!(tree::dump(dir.path()), before);
}

#[test]
fn check_without_drift_into_dev_full_is_a_fatal_output_error() {
    let dir = root_with("");
    run(dir.path(), &[], &[]).assert_exit(0);
    let out = timed::run(
        common::run::reconcile_cmd(dir.path(), &["--check"], &[]),
        Some(dev_full()),
    );
    out.assert_exit(111).assert_stderr(
        "reconcile: fatal: unable to write the report to stdout: No space left on device \
         (exit 111)\n",
    );
}

#[test]
fn a_failing_apply_into_a_closed_pipe_still_exits_1_and_does_its_work() {
    // A root-only staging dir in a scandir that is already the user's:
    // the user cannot empty it, so that one slot fails.
    let dir = root_with(
        "- {path: run/service/.gateway-bad.tmp, type: dir, mode: \"0700\"}\n\
         - {path: run/service/.gateway-bad.tmp/run, type: file, mode: \"0600\"}\n\
         - {path: opt/data/profiles/bad, type: dir, uid: 10000, gid: 10000}\n\
         - {path: opt/data/profiles/bad/SOUL.md, type: file, uid: 10000, gid: 10000}\n",
    );
    std::os::unix::fs::chown(dir.path().join("run/service"), Some(10000), Some(10000)).unwrap();
    let out = timed::run(
        common::run::reconcile_cmd(dir.path(), &["--phase", "profiles"], &[]),
        Some(closed_pipe()),
    );
    out.assert_exit(1);
    assert!(
        out.stderr.ends_with(
            "reconcile: warning: unable to write the report to stdout: Broken pipe (exit 1)\n"
        ),
        "{}",
        out.show()
    );
    // The rest was still done, and the boot log says so.
    let log = std::fs::read_to_string(dir.path().join("opt/data/logs/container-boot.log"))
        .expect("boot log");
    assert!(
        log.contains("profile=good prior_state=running action=started"),
        "{log}"
    );
}

#[test]
fn an_apply_into_dev_full_keeps_exit_0_and_its_changes() {
    let dir = root_with("");
    let out = timed::run(
        common::run::reconcile_cmd::<&str>(dir.path(), &[], &[]),
        Some(dev_full()),
    );
    out.assert_exit(0).assert_stderr(
        "reconcile: warning: unable to write the report to stdout: No space left on device \
         (exit 0)\n",
    );
    assert!(dir.path().join("run/service/gateway-good/run").exists());
    run(dir.path(), &["--check"], &[]).assert_exit(0);
}

// ---------------------------------------------------------------------------
// 4. JSON on fatal errors

fn json_of(out: &Out) -> serde_json::Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{}", out.show()))
}

#[test]
fn with_format_json_a_fatal_error_prints_one_object() {
    let dir = root_with(&config("user: nosuch\n"));
    let before = tree::dump(dir.path());
    let out = run(dir.path(), &["--check", "--format", "json"], &[]);
    out.assert_exit(100);
    let v = json_of(&out);
    assert_eq!(v["mode"], "check");
    assert_eq!(v["changes"], serde_json::json!([]));
    assert_eq!(
        v["errors"],
        serde_json::json!([{
            "op": "resolve",
            "path": "/etc/passwd",
            "error": "/etc/s6-reconcile/config.yaml:1:7: user: unknown user \"nosuch\": not found in /etc/passwd",
        }])
    );
    assert_eq!(tree::dump(dir.path()), before);

    let dir = root_with(&config("policy: lax\n"));
    let out = run(dir.path(), &["--format", "json"], &[]);
    out.assert_exit(100);
    let v = json_of(&out);
    assert_eq!(v["mode"], "apply");
    assert_eq!(v["errors"][0]["op"], "load configuration");
    assert_eq!(v["errors"][0]["path"], "/etc/s6-reconcile/config.yaml");

    let out = run(dir.path(), &["--format", "json", "--phase", "nope"], &[]);
    out.assert_exit(100);
    let v = json_of(&out);
    assert_eq!(v["errors"][0]["op"], "parse the command line");
    assert_eq!(v["changes"], serde_json::json!([]));

    let missing = dir.path().join("nope");
    let out = timed::run(
        common::run::reconcile_cmd(&missing, &["--plan", "--format", "json"], &[]),
        None,
    );
    out.assert_exit(100);
    assert_eq!(json_of(&out)["errors"][0]["op"], "check the command line");
}

// ---------------------------------------------------------------------------
// 5. Ids that chown(2) reads as "no change"

#[test]
fn the_no_change_id_is_refused_in_the_config_and_in_passwd() {
    let err = refused(&config("user: 4294967295\n"), &["--plan"], &[]);
    assert_eq!(
        err,
        "reconcile: fatal: /etc/s6-reconcile/config.yaml:1:7: user: 4294967295 is refused: \
         chown(2) reads it as \"no change\"; expected a number 0..4294967294\n"
    );
    let err = refused(&config("group: \"4294967295\"\n"), &[], &[]);
    assert!(err.contains(":1:8: group: 4294967295 is refused"), "{err}");
    let passwd = "- {path: etc/passwd2, type: file}\n";
    let dir = root_with(passwd);
    std::fs::write(
        dir.path().join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nhermes:x:4294967295:10000::/opt/data:/bin/sh\n",
    )
    .unwrap();
    let out = run(dir.path(), &[], &[]);
    out.assert_exit(100).assert_stderr(
        "reconcile: fatal: user (default; no configuration file): /etc/passwd:2: the id of \
         \"hermes\" is 4294967295, which chown(2) reads as \"no change\"; expected \
         0..4294967294\n",
    );
}

// ---------------------------------------------------------------------------
// 8. Configuration messages in the configuration's own words

#[test]
fn configuration_messages_say_what_is_expected_at_the_value() {
    let file = "/etc/s6-reconcile/config.yaml";
    let user = "expected a user name or a number 0..4294967294";
    for (yaml, message) in [
        ("user: -1\n", format!("{file}:1:7: user: {user}, found -1")),
        (
            "user: 1.5\n",
            format!("{file}:1:7: user: {user}, found 1.5"),
        ),
        (
            "user: 99999999999\n",
            format!("{file}:1:7: user: {user}, found 99999999999"),
        ),
        (
            "group: true\n",
            format!(
                "{file}:1:8: group: expected a group name or a number 0..4294967294, found true"
            ),
        ),
        (
            "~\n",
            format!(
                "{file}:1:1: (top level): expected a mapping of configuration keys (user, \
                 group, policy, static, scandir, profiles, boot_log, container); an empty file means all \
                 defaults, found nothing (null)"
            ),
        ),
        (
            "static: ~\n",
            format!(
                "{file}:1:9: static: expected a mapping with the keys servicedirs, skip \
                 (leave the key out for the defaults), found nothing (null)"
            ),
        ),
        (
            "boot_log:\n  rotate_bytes: \"256k\"\n",
            format!(
                "{file}:2:17: boot_log.rotate_bytes: expected a whole number (0 or more, \
                 without a unit), found the string \"256k\""
            ),
        ),
        (
            "user: a\npolicy: strict\nuser: b\n",
            format!("{file}:3:1: user: duplicate key (given twice)"),
        ),
        (
            "profiles:\n  prune: true\n  multiplex: false\n  prune: false\n",
            format!("{file}:4:3: profiles.prune: duplicate key (given twice)"),
        ),
        (
            "profiles:\n  slot_prefix: \"a/b\"\n",
            format!(
                "{file}:2:16: profiles.slot_prefix: expected 1 to 200 bytes, not starting \
                 with '.', with no '/' and no control characters, found \"a/b\""
            ),
        ),
        (
            "profiles:\n  slot_prefix: \"gw\\u0007-\"\n",
            format!(
                "{file}:2:16: profiles.slot_prefix: expected 1 to 200 bytes, not starting \
                 with '.', with no '/' and no control characters, found \"gw\\u{{7}}-\""
            ),
        ),
        (
            "profiles:\n  templates:\n    run: \"#!/bin/sh\\r\\nexec x\\n\"\n",
            format!(
                "{file}:3:10: profiles.templates.run: control character '\\r' on line 1 of \
                 the template (only newlines and tabs are allowed)"
            ),
        ),
        (
            "user: nosuch\n",
            format!("{file}:1:7: user: unknown user \"nosuch\": not found in /etc/passwd"),
        ),
    ] {
        let err = refused(&config(yaml), &["--plan"], &[]);
        assert_eq!(err, format!("reconcile: fatal: {message}\n"), "{yaml:?}");
    }
}

#[test]
fn a_template_over_64_kib_is_refused() {
    let big = format!(
        "profiles:\n  templates:\n    finish: \"{}\"\n",
        "#".repeat(64 * 1024 + 1)
    );
    let err = refused(&config(&big), &["--plan"], &[]);
    assert_eq!(
        err,
        "reconcile: fatal: /etc/s6-reconcile/config.yaml:3:13: profiles.templates.finish: a \
         template is at most 65536 bytes (64 KiB), this one is 65537\n"
    );
    let ok = format!(
        "profiles:\n  templates:\n    finish: \"{}\"\n",
        "#".repeat(64 * 1024)
    );
    let dir = root_with(&config(&ok));
    run(dir.path(), &["--plan"], &[]).assert_exit(0);
}

/// `reconcile snapshot` as a fresh command (its `--root` is its own).
fn snapshot_cmd(root: &Path) -> std::process::Command {
    let mut cmd = common::run::scrubbed_cmd(&["snapshot", "--root"]);
    cmd.arg(root);
    cmd
}

#[test]
fn a_snapshot_that_cannot_reach_its_reader_fails() {
    // `reconcile snapshot | head` in image CI must not pass for a whole
    // description: a closed pipe or a full disk is exit 111, said on stderr.
    let dir = root_with("");
    let whole = timed::run(snapshot_cmd(dir.path()), None);
    whole.assert_exit(0);
    assert!(
        whole.stdout.starts_with("format: s6-reconcile-tree\n"),
        "{}",
        whole.show()
    );
    for (stdout, why) in [
        (closed_pipe(), "Broken pipe"),
        (dev_full(), "No space left on device"),
    ] {
        let out = timed::run(snapshot_cmd(dir.path()), Some(stdout));
        out.assert_exit(111).assert_stderr(&format!(
            "reconcile: fatal: unable to write the description to stdout: {why}\n"
        ));
    }
}
