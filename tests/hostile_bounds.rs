//! What the volume's owner writes and the operator feeds in, bounded or
//! refused: escapes never reach the terminal raw, `--diff` stays bounded,
//! FIFOs and huge globs are refused at once, non-UTF-8 overrides are
//! named, `materialize` holds a description to what it can build, and
//! the messages say what the rest of the tool says. Each run is under a
//! deadline (a hang fails the test instead of the suite).
//!
//! Trees have owners other than the caller: these tests need root.

mod common;

use std::path::Path;

use common::roots::{config, root_with};
use common::timed::{self, Out};
use common::tree;

fn run(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    timed::run(common::run::reconcile_cmd(root, args, env), None)
}

/// No byte that moves the cursor, sets a title or writes the clipboard.
#[track_caller]
fn assert_no_raw_escapes(text: &str, what: &str) {
    for (c, name) in [
        ('\x1b', "ESC"),
        ('\x07', "BEL"),
        ('\r', "CR"),
        ('\u{202e}', "U+202E"),
    ] {
        assert!(!text.contains(c), "{what} holds a raw {name}:\n{text}");
    }
}

// ---------------------------------------------------------------------------
// Terminal escapes

const FORGED: &str = "#!/bin/sh\n\x1b]0;PWNED\x07\x1b[2K\rreconcile: profile=root prior_state=running action=started\n\x1b]52;c;cm0gLXJmIC8K\x07\nexec true\n";

#[test]
fn escapes_in_a_slot_file_are_printed_escaped_by_plan_diff() {
    let slot = format!(
        "- {{path: run/service/gateway-good, type: dir, uid: 10000, gid: 10000}}\n\
         - {{path: run/service/gateway-good/run, type: file, mode: \"0755\", uid: 10000, gid: 10000, content: {}}}\n",
        tree::quote(FORGED)
    );
    let dir = root_with(&format!("{}{slot}", config("policy: compat\n")));
    let out = run(dir.path(), &["--plan", "--diff"], &[]);
    out.assert_exit(0);
    assert_no_raw_escapes(&out.stdout, "stdout");
    assert_no_raw_escapes(&out.stderr, "stderr");
    // The diff library ends a line at a CR too: the forged text follows
    // as a removed line of its own, on the same terminal line.
    assert!(
        out.stdout.lines().any(|l| l
            == "-\\x1b]0;PWNED\\x07\\x1b[2K\\x0d-reconcile: profile=root prior_state=running action=started"),
        "{}",
        out.show()
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l == "-\\x1b]52;c;cm0gLXJmIC8K\\x07"),
        "{}",
        out.show()
    );
    // JSON stays JSON: the same bytes, escaped by the JSON encoder.
    let json = run(dir.path(), &["--plan", "--diff", "--format", "json"], &[]);
    json.assert_exit(0);
    assert_no_raw_escapes(&json.stdout, "JSON");
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("one JSON object");
    let diff = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|c| c["diff"].as_str().filter(|d| d.contains("PWNED")))
        .unwrap_or_else(|| panic!("no diff with the forged line: {}", json.stdout));
    assert!(diff.contains("-\x1b]0;PWNED\x07"), "{diff}");
}

#[test]
fn a_skipped_path_with_a_bidi_override_is_printed_escaped() {
    let dir = root_with(
        "- {path: \"opt/data/profiles/evil\u{202e}txt.md\", type: dir, uid: 10000, gid: 10000}\n\
         - {path: \"opt/data/profiles/evil\u{202e}txt.md/SOUL.md\", type: file, uid: 10000, gid: 10000}\n",
    );
    let out = run(dir.path(), &["--plan"], &[]);
    assert_no_raw_escapes(&out.stdout, "stdout");
    assert_no_raw_escapes(&out.stderr, "stderr");
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("evil\\u{202e}txt.md"), "{}", out.show());
}

// ---------------------------------------------------------------------------
// --diff is bounded

#[test]
fn diff_of_a_huge_all_different_slot_file_says_it_differs_and_how_large() {
    let content: String = (0..150_000).map(|i| format!("{i}\n")).collect();
    let size = content.len();
    let slot = format!(
        "- {{path: run/service/gateway-good, type: dir, uid: 10000, gid: 10000}}\n\
         - {{path: run/service/gateway-good/run, type: file, mode: \"0755\", uid: 10000, gid: 10000, content: {}}}\n",
        tree::quote(&content)
    );
    let dir = root_with(&format!("{}{slot}", config("policy: compat\n")));
    for args in [&["--plan", "--diff"][..], &["-v", "--diff"][..]] {
        let out = run(dir.path(), args, &[]);
        out.assert_exit(0);
        // An apply's lines start with `reconcile: `, a plan's do not.
        let prefix = if args[0] == "--plan" {
            ""
        } else {
            "reconcile: "
        };
        let want = format!(
            "{prefix}@@ not compared line by line: the current file is {size} bytes (150000 lines), \
             the planned file "
        );
        assert!(
            out.stdout.lines().any(|l| l.starts_with(&want)
                && l.ends_with("--diff compares files of at most 65536 bytes and 4096 lines @@")),
            "{args:?}: {}",
            out.show()
        );
    }
}

// ---------------------------------------------------------------------------
// A FIFO given as a description is refused at once

#[test]
fn a_fifo_as_a_description_is_refused_at_once_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("tree.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
    let f = fifo.to_str().unwrap();
    let target = dir.path().join("out");
    let t = target.to_str().unwrap();
    for args in [
        &["--plan", "--tree", f][..],
        &["--print-config", "--tree", f][..],
        &["materialize", f, t][..],
    ] {
        // The deadline turns a blocking open into a failure, not a hang.
        let out = timed::run(common::run::bare_cmd(args), None);
        out.assert_exit(100);
        assert_eq!(
            out.stderr,
            format!("reconcile: fatal: unable to read {f}: is a FIFO, not a regular file\n"),
            "{args:?}: {}",
            out.show()
        );
    }
    assert!(!target.exists(), "materialize built something");
}

// ---------------------------------------------------------------------------
// A huge glob is a configuration error, never a panic

#[test]
fn a_huge_skip_glob_is_refused_at_its_line_and_column() {
    let file = "/etc/s6-reconcile/config.yaml";
    let huge = "a*".repeat(50_000);
    let yaml = format!("static:\n  skip: [\"s6rc-*\", \"{huge}\"]\n");
    let dir = root_with(&config(&yaml));
    let out = run(dir.path(), &["--plan"], &[]);
    out.assert_exit(100).assert_stderr(&format!(
        "reconcile: fatal: {file}:2:20: static.skip[1]: bad glob: is 100000 bytes long; \
         a glob is at most 1024\n"
    ));
    // Under the cap, a glob that does not parse is refused at its value.
    let yaml = "static:\n  skip: [\"a[b\"]\n";
    let dir = root_with(&config(yaml));
    let out = run(dir.path(), &["--plan"], &[]);
    out.assert_exit(100);
    assert!(
        out.stderr.starts_with(&format!(
            "reconcile: fatal: {file}:2:10: static.skip[0]: bad glob \"a[b\": "
        )),
        "{}",
        out.show()
    );
}

// ---------------------------------------------------------------------------
// Non-UTF-8 environment overrides are refused naming the variable

#[test]
fn a_non_utf8_environment_override_is_refused_naming_it() {
    use std::os::unix::ffi::OsStrExt;
    let value = std::ffi::OsStr::from_bytes(b"/srv/vol\xe9");
    let dir = root_with("");
    let before = tree::dump(dir.path());
    for var in [
        "HERMES_HOME",
        "S6_PROFILE_GATEWAY_SCANDIR",
        "GATEWAY_MULTIPLEX_PROFILES",
        "S6_VERBOSITY",
    ] {
        for args in [&[][..], &["--plan"][..]] {
            let mut cmd = common::run::reconcile_cmd(dir.path(), args, &[]);
            cmd.env(var, value);
            let out = timed::run(cmd, None);
            out.assert_exit(100).assert_stderr(&format!(
                "reconcile: fatal: environment variable {var} is not valid UTF-8 \
                 (/srv/vol\\xe9); it must be text, or unset\n"
            ));
        }
        let root = dir.path().to_str().unwrap();
        let mut cmd = common::run::bare_cmd(&["snapshot", "--root", root]);
        cmd.env(var, value);
        let out = timed::run(cmd, None);
        out.assert_exit(100);
        assert_eq!(out.stdout, "", "{}", out.show());
    }
    assert_eq!(
        tree::dump(dir.path()),
        before,
        "a refused run changed the tree"
    );
}

/// The legacy-migration opt-out under another name (`container.no_supervise_env`)
/// is held to the same rule: not text is refused naming it, not read as unset.
#[test]
fn a_non_utf8_opt_out_under_a_configured_name_is_refused_naming_it() {
    use std::os::unix::ffi::OsStrExt;
    let value = std::ffi::OsStr::from_bytes(b"yes\xe9");
    let dir = root_with(&config("container:\n  no_supervise_env: APP_FG\n"));
    let before = tree::dump(dir.path());
    let want = "reconcile: fatal: environment variable APP_FG is not valid UTF-8 \
                (yes\\xe9); it must be text, or unset\n";
    for args in [&[][..], &["--plan"][..], &["--print-config"][..]] {
        let mut cmd = common::run::reconcile_cmd(dir.path(), args, &[]);
        cmd.env("APP_FG", value);
        timed::run(cmd, None).assert_exit(100).assert_stderr(want);
    }
    let root = dir.path().to_str().unwrap();
    let mut cmd = common::run::bare_cmd(&["snapshot", "--root", root]);
    cmd.env("APP_FG", value);
    let out = timed::run(cmd, None);
    out.assert_exit(100);
    assert_eq!(out.stdout, "", "{}", out.show());
    assert!(
        out.stderr.contains("APP_FG is not valid UTF-8"),
        "{}",
        out.show()
    );
    assert_eq!(
        tree::dump(dir.path()),
        before,
        "a refused run changed the tree"
    );
}

// ---------------------------------------------------------------------------
// materialize builds what it describes, or refuses at the line

/// `materialize` of the description holding `entries` into a new
/// directory: what it says, and the directory.
fn materialize(entries: &str) -> (Out, tempfile::TempDir) {
    let dir = tree::temp_root("materialize-");
    let file = dir.path().join("tree.yaml");
    std::fs::write(
        &file,
        format!("format: s6-reconcile-tree\nversion: 1\nentries:\n{entries}"),
    )
    .expect("write the description");
    let out = timed::run(
        common::run::bare_cmd(&[
            "materialize".as_ref(),
            file.as_os_str(),
            dir.path().join("out").as_os_str(),
        ]),
        None,
    );
    (out, dir)
}

#[test]
fn materialize_refuses_the_no_change_id_at_the_line_and_a_wrong_link_count() {
    for (entries, message) in [
        (
            "- {path: a, type: file, uid: 4294967295}\n",
            ":4:3: entries[0]: a: uid: 4294967295 is chown's \"no change\", not an id (0..4294967294)",
        ),
        (
            "- {path: d, type: dir}\n- {path: d/l, type: symlink, target: x, gid: 4294967295}\n",
            ":5:3: entries[1]: d/l: gid: 4294967295 is chown's \"no change\", not an id (0..4294967294)",
        ),
        (
            "- {path: a, type: file, links: 5}\n- {path: b, type: hardlink, target: a}\n",
            "/a: links: 5, but the description gives it 2 names (the file and its hardlink \
             entries); materialize builds only the names described",
        ),
    ] {
        let (out, dir) = materialize(entries);
        out.assert_exit(100);
        let file = dir.path().join("tree.yaml");
        let want = match message.strip_prefix(':') {
            Some(_) => format!("reconcile: fatal: {}{message}\n", file.display()),
            None => format!("reconcile: fatal: {message}\n"),
        };
        assert_eq!(out.stderr, want, "{entries}: {}", out.show());
        assert!(
            !dir.path().join("out").exists(),
            "{entries}: built something"
        );
    }
}

#[test]
fn materialize_builds_a_5000_level_description() {
    let mut entries = String::new();
    let mut path = String::from("d");
    for _ in 0..5000 {
        entries.push_str(&format!(
            "- {{path: {path}, type: dir, uid: 10000, mode: \"0750\"}}\n"
        ));
        path.push_str("/d");
    }
    entries.push_str(&format!("- {{path: {path}, type: file, content: deep}}\n"));
    let (out, dir) = materialize(&entries);
    out.assert_exit(0);
    // Owners and modes are set on the way back up, through the held
    // directories: the top one is as described.
    use std::os::unix::fs::MetadataExt;
    let top = std::fs::symlink_metadata(dir.path().join("out/d")).expect("lstat d");
    assert_eq!((top.uid(), top.mode() & 0o7777), (10000, 0o750));
}

// ---------------------------------------------------------------------------
// Messages in the words the rest of the tool uses

#[test]
fn a_socket_state_file_is_said_to_be_not_a_regular_file() {
    let dir = root_with(
        "- {path: opt/data/profiles/sock, type: dir, uid: 10000, gid: 10000}\n\
         - {path: opt/data/profiles/sock/SOUL.md, type: file, uid: 10000, gid: 10000}\n\
         - {path: opt/data/profiles/sock/gateway_state.json, type: socket, uid: 10000, gid: 10000}\n",
    );
    let out = run(dir.path(), &["--plan"], &[]);
    out.assert_exit(0);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("is a socket, not a regular file"),
        "{}",
        out.show()
    );
    assert!(!all.contains("No such device or address"), "{}", out.show());
}

#[test]
fn a_symlinked_lock_is_said_to_be_a_symlink_not_followed() {
    let dir = root_with("- {path: run/s6-reconcile.lock, type: symlink, target: /etc/shadow}\n");
    let out = run(dir.path(), &[], &[]);
    out.assert_exit(111);
    assert_eq!(
        out.stderr,
        "reconcile: fatal: refusing the apply lock /run/s6-reconcile.lock: is a symlink; not followed\n",
        "{}",
        out.show()
    );
}

/// The boot log's failures name the file and say why in the tool's words
/// (whether they count as warnings or errors is the exit-code table's).
#[test]
fn boot_log_failures_say_why_in_the_tools_words() {
    let logs = "- {path: opt/data/logs, type: dir, uid: 10000, gid: 10000}\n";
    let log = "/opt/data/logs/container-boot.log";
    for (extra, why) in [
        (
            format!(
                "{logs}- {{path: opt/data/logs/container-boot.log, type: symlink, target: /etc/shadow, uid: 10000, gid: 10000}}\n"
            ),
            "is a symlink; not followed",
        ),
        (
            format!(
                "{}{logs}\
                 - {{path: opt/data/logs/container-boot.log, type: file, uid: 10000, gid: 10000, content: full}}\n\
                 - {{path: opt/data/logs/container-boot.log.1, type: dir, uid: 10000, gid: 10000}}\n\
                 - {{path: opt/data/logs/container-boot.log.1/x, type: file, uid: 10000, gid: 10000}}\n",
                config("boot_log:\n  rotate_bytes: 1\n")
            ),
            "rotation to container-boot.log.1 failed: Is a directory",
        ),
    ] {
        let dir = root_with(&extra);
        let out = run(dir.path(), &[], &[]);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(
            all.contains(&format!("unable to append to {log}: {why}")),
            "{}",
            out.show()
        );
    }
}
