//! Tree descriptions (docs/tree-format.md) through the real
//! binary: `snapshot`, `materialize`, `--plan`/`--check --tree`.
//!
//! - Bad descriptions: exit 100 naming file, line and column, nothing built.
//! - `snapshot(materialize(d)) == d` for every entry type and for the example.
//! - A live tree with a running `s6-svscan`: its snapshot plans byte for byte
//!   like `--plan --root` on it, as root and as uid 10000; after apply a new
//!   snapshot checks clean and the old one drifts (exit 3).
//!
//! Materializing sets owners and the live test runs s6: these tests need
//! root and fail (never skip) without it; the bad-input ones do not.

mod common;

use common::run::{Run, run, scrubbed_cmd};
use std::fs;
use std::path::{Path, PathBuf};

use common::s6::{self, LiveS6};
use common::tree;

fn reconcile(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Run {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    run(scrubbed_cmd(&args))
}

fn need_root() {
    assert!(
        tree::is_root(),
        "these tests set owners and run s6: run the suite as root, as CI does"
    );
}

const HEAD: &str = "format: s6-reconcile-tree\nversion: 1\nentries:\n";
const GOOD: &str = "- {path: etc, type: dir}\n- {path: etc/passwd, type: file, content: \"root:x:0:0::/:/bin/sh\\n\"}\n";

#[test]
fn bad_descriptions_exit_100_naming_file_line_and_column() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "escapes",
            "- {path: etc/../../x, type: dir}\n",
            ":6:3: entries[2]: etc/../../x: path escapes the root (`..`)",
        ),
        (
            "absolute",
            "- {path: /etc/x, type: dir}\n",
            ":6:3: entries[2]: /etc/x: absolute path",
        ),
        (
            "duplicate",
            "- {path: etc, type: dir}\n",
            ":6:3: entries[2]: etc: duplicate entry",
        ),
        (
            "under-file",
            "- {path: etc/passwd/x, type: file}\n",
            ":6:3: entries[2]: etc/passwd/x: entry under a non-directory: etc/passwd is a file",
        ),
        (
            "unknown-type",
            "- {path: etc/x, type: door}\n",
            ":6:3: entries[2]: etc/x: unknown type \"door\"",
        ),
        (
            "mode",
            "- {path: etc/x, type: dir, mode: \"17777\"}\n",
            ":6:3: entries[2]: etc/x: mode \"17777\" is over 07777",
        ),
        (
            "broken",
            "- {path: etc/x, type: dir\n",
            ":7:1: did not find expected ',' or '}'",
        ),
    ];
    let tmp = tree::temp_root("tree-bad-");
    for (name, bad, want) in cases {
        let file = tmp.path().join(format!("{name}.yaml"));
        fs::write(&file, format!("{HEAD}{GOOD}{bad}")).unwrap();
        let want = format!("reconcile: fatal: {}{want}", file.display());
        let plan = reconcile(&[&"--plan", &"--tree", &file]);
        assert_eq!(plan.code, Some(100), "{name}: {}", plan.stderr);
        assert!(
            plan.stderr.starts_with(&want),
            "{name}:\n{}\nwant: {want}",
            plan.stderr
        );
        assert_eq!(plan.stdout, "", "{name}");
        let dir = tmp.path().join(format!("{name}.root"));
        let m = reconcile(&[&"materialize", &file, &dir]);
        assert_eq!(m.code, Some(100), "{name}: {}", m.stderr);
        assert!(m.stderr.starts_with(&want), "{name}: {}", m.stderr);
        assert!(!dir.exists(), "{name}: materialize built something");
    }
    let file = tmp.path().join("v2.yaml");
    fs::write(
        &file,
        "format: s6-reconcile-tree\nversion: 2\nentries: []\n",
    )
    .unwrap();
    let out = reconcile(&[&"--check", &"--tree", &file]);
    assert_eq!(out.code, Some(100));
    assert_eq!(
        out.stderr,
        format!(
            "reconcile: fatal: {}:2:1: unknown version 2 (this reconcile reads version 1)\n",
            file.display()
        )
    );
    // A description is planned, never applied.
    let ok = tmp.path().join("ok.yaml");
    fs::write(&ok, format!("{HEAD}{GOOD}")).unwrap();
    let out = reconcile(&[&"--tree", &ok]);
    assert_eq!(out.code, Some(100), "{}", out.stderr);
    assert!(
        out.stderr.contains("--tree needs --plan or --check"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_description_whose_aliases_replay_gigabytes_is_refused_at_once() {
    let keys: Vec<String> = (0..1000).map(|i| format!("k{i}: {i}")).collect();
    let bombs = [
        format!(
            "a: &a {{{}}}\nx: [{}]\n",
            keys.join(", "),
            vec!["*a"; 100_000].join(", ")
        ),
        format!(
            "m: &s \"{}\"\nx: [{}]\n",
            "A".repeat(600_000),
            vec!["*s"; 100_000].join(", ")
        ),
    ];
    let tmp = tree::temp_root("tree-bomb-");
    for (i, bomb) in bombs.iter().enumerate() {
        let file = tmp.path().join(format!("bomb{i}.yaml"));
        let text = format!("format: s6-reconcile-tree\nversion: 1\n{bomb}entries: []\n");
        fs::write(&file, &text).unwrap();
        // Under 1 GiB of address space: a regression fails as an
        // allocation failure instead of taking the machine's memory.
        let mut cmd = std::process::Command::new("prlimit");
        cmd.arg("--as=1073741824")
            .arg(env!("CARGO_BIN_EXE_reconcile"))
            .args(["--plan", "--tree"])
            .arg(&file)
            .env_clear();
        let out = run(cmd);
        assert_eq!(out.code, Some(100), "{}", out.show());
        let want = format!(
            ": its aliases replay more than {} nodes and scalar bytes (4 per byte of the \
             file, at least 65536); each alias replays in full the node it names\n",
            4 * text.len()
        );
        assert!(
            out.stderr
                .starts_with(&format!("reconcile: fatal: {}:3:", file.display()))
                && out.stderr.ends_with(&want),
            "{}",
            out.show()
        );
    }
}

const EVERY_TYPE: &str = r#"
- {path: etc, type: dir}
- {path: etc/shadow, type: file, mode: "0600", links: 2, content: "root:*:19000::::::\n"}
- {path: etc/quoted, type: file, mode: "4755", uid: 7, gid: 8, content: "tab\there \"q\" back\\slash\r\u0001 é\u2028end"}
- {path: etc/bin, type: file, base64: "//4A"}
- {path: srv, type: dir, mode: "0750", uid: 10000, gid: 10000}
- {path: srv/event, type: dir, mode: "3730", uid: 10000, gid: 10000}
- {path: srv/supervise, type: dir, mode: "0700"}
- {path: srv/supervise/control, type: fifo, mode: "0660", uid: 10000, gid: 10000}
- {path: srv/supervise/lock, type: file}
- {path: srv/supervise/status, type: file}
- {path: srv/s, type: socket, mode: "0777"}
- {path: srv/evil, type: symlink, target: /etc/shadow, uid: 10000, gid: 10000}
- {path: srv/rel, type: symlink, target: "../etc"}
- {path: srv/also-shadow, type: hardlink, target: etc/shadow}
- {path: srv/setgid-file, type: file, mode: "2750", gid: 10000, content: "x"}
- {path: "run:s6-rc-init:abc", type: dir, mode: "1777"}
"#;

#[test]
fn materialize_then_snapshot_gives_every_type_back() {
    need_root();
    let want = tree::parse(EVERY_TYPE).expect("parse");
    let tmp = tree::temp_root("tree-rt-");
    let file = tmp.path().join("d.yaml");
    fs::write(&file, tree::render(&want.entries)).unwrap();
    let root = tmp.path().join("root");
    let out = reconcile(&[&"materialize", &file, &root]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(tree::scan(&root).unwrap(), want.entries);
    // What the description says is what is on disk.
    assert_eq!(tree::owner_mode(&root, "etc/quoted"), (7, 8, 0o4755));
    assert_eq!(tree::owner_mode(&root, "srv/event"), (10000, 10000, 0o3730));
    assert_eq!(
        tree::owner_mode(&root, "srv/setgid-file"),
        (0, 10000, 0o2750)
    );
    assert_eq!(tree::owner_mode(&root, "srv/evil").0, 10000);
    assert_eq!(tree::owner_mode(&root, "srv/supervise/lock"), (0, 0, 0o644));
    assert_eq!(
        fs::read_link(root.join("srv/evil")).unwrap(),
        Path::new("/etc/shadow")
    );
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let md = fs::symlink_metadata(root.join("srv/s")).unwrap();
    assert!(md.file_type().is_socket());
    assert_eq!(
        fs::symlink_metadata(root.join("srv/also-shadow"))
            .unwrap()
            .ino(),
        fs::symlink_metadata(root.join("etc/shadow")).unwrap().ino()
    );
    // Not into a directory that holds anything.
    let again = reconcile(&[&"materialize", &file, &root]);
    assert_eq!(again.code, Some(100), "{}", again.stderr);
    assert!(
        again
            .stderr
            .contains("not empty; materialize builds into an empty directory only"),
        "{}",
        again.stderr
    );
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tree.yaml")
}

/// The description part of a file (its leading comments left out).
fn body(text: &str) -> String {
    text.lines()
        .skip_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn the_example_is_canonical_and_snapshot_gives_it_back() {
    need_root();
    let tmp = tree::temp_root("tree-example-");
    let root = tmp.path().join("root");
    let out = reconcile(&[&"materialize", &example(), &root]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let snap = reconcile(&[&"snapshot", &"--root", &root]);
    assert_eq!(snap.code, Some(0), "{}", snap.stderr);
    let text = fs::read_to_string(example()).unwrap();
    assert_eq!(snap.stdout, body(&text));
}

/// A tree anyone may read, with owners other than the reader.
const READABLE: &str = r##"
- {path: etc, type: dir}
- {path: etc/passwd, type: file, content: "root:x:0:0::/:/bin/sh\nhermes:x:10000:10000::/opt/data:/bin/sh\n"}
- {path: etc/group, type: file, content: "root:x:0:\nhermes:x:10000:\n"}
- {path: opt, type: dir}
- {path: opt/data, type: dir, uid: 10000, gid: 10000}
- {path: opt/data/SOUL.md, type: file, uid: 10000, gid: 10000, content: "x"}
- {path: opt/data/private, type: file, mode: "0600", uid: 10000, gid: 10000, content: "not observed"}
- {path: run, type: dir}
- {path: run/s6-rc, type: dir}
- {path: run/s6-rc/servicedirs, type: dir}
- {path: run/s6-rc/servicedirs/web, type: dir, mode: "2755", uid: 1, gid: 2}
- {path: run/s6-rc/servicedirs/web/run, type: file, mode: "0755", content: "#!/bin/sh\n"}
- {path: run/s6-rc/servicedirs/web/supervise, type: dir, mode: "0755"}
- {path: run/s6-rc/servicedirs/web/supervise/control, type: fifo, mode: "0600"}
- {path: run/s6-rc/servicedirs/web/supervise/lock, type: file}
- {path: run/service, type: dir}
- {path: run/service/web, type: symlink, target: /run/s6-rc/servicedirs/web}
"##;

#[test]
fn snapshot_is_deterministic_and_the_same_for_any_user_who_can_read_the_tree() {
    need_root();
    let tmp = tree::temp_root("tree-user-");
    let root = tmp.path().join("root");
    tree::materialise_yaml(&root, READABLE).expect("materialise");
    let snap = reconcile(&[&"snapshot", &"--root", &root]);
    assert_eq!(snap.code, Some(0), "{}", snap.stderr);
    assert_eq!(
        reconcile(&[&"snapshot", &"--root", &root]).stdout,
        snap.stdout
    );
    // The user's data in the volume is not what reconcile observes.
    assert!(!snap.stdout.contains("private"), "{}", snap.stdout);
    assert!(
        snap.stdout
            .contains("- {path: \"run/s6-rc/servicedirs/web/supervise/lock\", type: file}\n")
    );
    let user = s6::as_user(&[
        Path::new(env!("CARGO_BIN_EXE_reconcile")).as_os_str(),
        "snapshot".as_ref(),
        "--root".as_ref(),
        root.as_os_str(),
    ]);
    assert_eq!(user.code, Some(0), "{user}");
    assert_eq!(user.stdout, snap.stdout);
    // Someone who cannot read it gets told what, and no description.
    s6::set_mode(&root.join("run/s6-rc/servicedirs/web/supervise"), 0o700);
    let denied = s6::as_user(&[
        Path::new(env!("CARGO_BIN_EXE_reconcile")).as_os_str(),
        "snapshot".as_ref(),
        "--root".as_ref(),
        root.as_os_str(),
    ]);
    assert_eq!(denied.code, Some(111), "{denied}");
    assert_eq!(denied.stdout, "");
    assert!(
        denied
            .stderr
            .contains("/run/s6-rc/servicedirs/web/supervise: Permission denied"),
        "{denied}"
    );
}

/// The user's links into root-only files and across the volume, planted in
/// [`READABLE`]: bob's marker names alice's by its container path.
const LINKS: &str = r##"
- {path: etc/secretdir, type: dir, mode: "0700"}
- {path: etc/secretdir/key, type: file, mode: "0600", content: "TOPSECRET-KEY"}
- {path: etc/shadow-like, type: file, mode: "0640", gid: 42, content: "root:SHADOW-HASH:19000"}
- {path: opt/data/gateway.json, type: symlink, uid: 10000, gid: 10000, target: /etc/shadow-like}
- {path: opt/data/profiles, type: dir, uid: 10000, gid: 10000}
- {path: opt/data/profiles/alice, type: dir, uid: 10000, gid: 10000}
- {path: opt/data/profiles/alice/SOUL.md, type: file, uid: 10000, gid: 10000, content: "# alice"}
- {path: opt/data/profiles/bob, type: dir, uid: 10000, gid: 10000}
- {path: opt/data/profiles/bob/SOUL.md, type: symlink, uid: 10000, gid: 10000, target: /opt/data/profiles/alice/SOUL.md}
- {path: opt/data/profiles/carol, type: dir, uid: 10000, gid: 10000}
- {path: opt/data/profiles/carol/SOUL.md, type: symlink, uid: 10000, gid: 10000, target: ../../../../etc/secretdir/key}
"##;

#[test]
fn snapshot_follows_the_users_links_as_the_user_inside_the_root_and_plans_like_the_disk() {
    need_root();
    let tmp = tree::temp_root("tree-links-");
    let root = tmp.path().join("root");
    tree::materialise_yaml(&root, &format!("{READABLE}{LINKS}")).expect("materialise");
    // A profile directory that is a link to a host directory outside the
    // root, readable by the user: inside the container it leads nowhere.
    let host = tmp.path().join("hostdir");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("SOUL.md"), "HOST-SOUL").unwrap();
    s6::set_mode(&host, 0o755);
    s6::set_mode(&host.join("SOUL.md"), 0o644);
    std::os::unix::fs::symlink(&host, root.join("opt/data/profiles/dave")).unwrap();
    let snap = reconcile(&[&"snapshot", &"--root", &root]);
    assert_eq!(snap.code, Some(0), "{}", snap.show());
    for secret in ["TOPSECRET", "SHADOW-HASH", "HOST-SOUL"] {
        assert!(!snap.stdout.contains(secret), "{secret}:\n{}", snap.stdout);
    }
    // Where the user cannot look, nothing; what the user cannot read, by
    // owner and mode only.
    assert!(
        snap.stdout.contains(
            "- {path: \"etc/shadow-like\", type: file, mode: \"0640\", uid: 0, gid: 42, content: \"\"}\n"
        ),
        "{}",
        snap.stdout
    );
    assert!(
        !snap.stdout.contains("path: \"etc/secretdir/key\""),
        "{}",
        snap.stdout
    );
    let desc = save(tmp.path(), "links.yaml", &snap.stdout);
    for format in ["human", "json"] {
        let disk = reconcile(&[&"--plan", &"--root", &root, &"--format", &format]);
        assert_eq!(disk.code, Some(0), "{}", disk.show());
        // bob's marker resolves inside the root, to alice's.
        assert!(disk.stdout.contains("gateway-bob"), "{}", disk.stdout);
        assert!(!disk.stdout.contains("gateway-carol"), "{}", disk.stdout);
        assert!(!disk.stdout.contains("gateway-dave"), "{}", disk.stdout);
        let tree = reconcile(&[&"--plan", &"--tree", &desc, &"--format", &format]);
        assert_eq!(tree.code, Some(0), "{}", tree.show());
        assert_eq!(
            tree.stdout, disk.stdout,
            "--plan --tree vs --plan --root ({format})"
        );
    }
}

/// Give the live root a volume: the default profile (stopped) and alice
/// (running), owned by the user, as a persistent volume is.
fn add_volume(root: &Path) {
    let yaml = r##"
- {path: opt, type: dir}
- {path: opt/data, type: dir, uid: 10000, gid: 10000}
- {path: opt/data/SOUL.md, type: file, uid: 10000, gid: 10000, content: "# default\n"}
- {path: opt/data/gateway_state.json, type: file, uid: 10000, gid: 10000, content: "{\"gateway_state\": \"stopped\"}\n"}
- {path: opt/data/profiles, type: dir, uid: 10000, gid: 10000}
- {path: opt/data/profiles/alice, type: dir, uid: 10000, gid: 10000}
- {path: opt/data/profiles/alice/SOUL.md, type: file, uid: 10000, gid: 10000, content: "# alice\n"}
- {path: opt/data/profiles/alice/gateway_state.json, type: file, uid: 10000, gid: 10000, content: "{\"desired_state\": \"running\"}\n"}
"##;
    let d = tree::parse(yaml).expect("volume");
    let staging = root.parent().unwrap().join("volume");
    tree::materialise(&staging, &d.entries).expect("materialise the volume");
    fs::rename(staging.join("opt"), root.join("opt")).expect("move the volume in");
}

/// `reconcile ARGS` as uid 10000 (s6-applyuidgid), output as text.
fn reconcile_as_user(args: &[&dyn AsRef<std::ffi::OsStr>]) -> s6::Run {
    let mut argv = vec![
        Path::new(env!("CARGO_BIN_EXE_reconcile"))
            .as_os_str()
            .to_os_string(),
    ];
    argv.extend(args.iter().map(|a| a.as_ref().to_os_string()));
    s6::as_user(&argv)
}

/// Write `text` where uid 10000 can read it.
fn save(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    s6::set_mode(&p, 0o644);
    p
}

#[test]
fn a_live_tree_plans_the_same_from_its_snapshot_as_root_and_as_the_user() {
    need_root();
    let live = LiveS6::start();
    let root = live.root().to_path_buf();
    add_volume(&root);

    let snap = reconcile(&[&"snapshot", &"--root", &root]);
    assert_eq!(snap.code, Some(0), "{}", snap.stderr);
    assert!(
        snap.stdout
            .contains("- {path: \"run/service/.s6-svscan/control\", type: fifo, mode: \"0600\", uid: 0, gid: 0}\n"),
        "the scanner's FIFO:\n{}",
        snap.stdout
    );
    let before = save(live.tmp(), "before.yaml", &snap.stdout);

    for format in ["human", "json"] {
        let disk = reconcile(&[&"--plan", &"--root", &root, &"--format", &format]);
        assert_eq!(disk.code, Some(0), "{}", disk.stderr);
        assert!(disk.stdout.contains("gateway-alice"), "{}", disk.stdout);
        let desc = reconcile(&[&"--plan", &"--tree", &before, &"--format", &format]);
        assert_eq!(desc.code, Some(0), "{}", desc.stderr);
        assert_eq!(
            desc.stdout, disk.stdout,
            "--plan --tree vs --plan --root ({format})"
        );
        let user = reconcile_as_user(&[&"--plan", &"--tree", &before, &"--format", &format]);
        assert_eq!(user.code, Some(0), "{user}");
        assert_eq!(
            user.stdout, disk.stdout,
            "--plan --tree as uid 10000 ({format})"
        );
        let check = reconcile(&[&"--check", &"--tree", &before, &"--format", &format]);
        assert_eq!(check.code, Some(3), "drift before apply: {}", check.stderr);
    }

    let apply = reconcile(&[&"--root", &root]);
    assert_eq!(apply.code, Some(0), "{}\n{}", apply.stdout, apply.stderr);
    let slot = live.slot("gateway-alice");
    let mut live = live;
    live.wait_until("gateway-alice supervised", || s6::is_supervised(&slot));

    let snap = reconcile(&[&"snapshot", &"--root", &root]);
    assert_eq!(snap.code, Some(0), "{}", snap.stderr);
    let after = save(live.tmp(), "after.yaml", &snap.stdout);
    let check = reconcile(&[&"--check", &"--tree", &after]);
    assert_eq!(
        check.code,
        Some(0),
        "clean after apply:\n{}{}",
        check.stdout,
        check.stderr
    );
    let disk = reconcile(&[&"--check", &"--root", &root]);
    assert_eq!(check.stdout, disk.stdout);
    let user = reconcile_as_user(&[&"--check", &"--tree", &after, &"--format", &"json"]);
    assert_eq!(user.code, Some(0), "{user}");
    let old = reconcile(&[&"--check", &"--tree", &before]);
    assert_eq!(old.code, Some(3), "the old snapshot still drifts");

    // The applied tree, rebuilt from its description, describes the same.
    let copy = live.tmp().join("copy");
    let m = reconcile(&[&"materialize", &after, &copy]);
    assert_eq!(m.code, Some(0), "{}", m.stderr);
    let again = reconcile(&[&"snapshot", &"--root", &copy]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(again.stdout, snap.stdout, "snapshot(materialize(d)) == d");
}

/// `snapshot --config FILE` (a file outside the root) and the environment:
/// the description holds that configuration at its default path and the
/// bases it names, so `--tree` plans what `--root --config FILE` plans.
#[test]
fn snapshot_carries_a_configuration_given_outside_the_root() {
    need_root();
    let tmp = tree::temp_root("tree-config-");
    let root = tmp.path().join("root");
    tree::materialise_yaml(&root, READABLE).expect("materialise");
    let config = save(
        tmp.path(),
        "config.yaml",
        "user: 10000\nprofiles:\n  home: /srv/volume\nstatic:\n  skip: [\"web\"]\n",
    );
    fs::create_dir_all(root.join("srv/volume/profiles/bob")).unwrap();
    fs::write(root.join("srv/volume/profiles/bob/SOUL.md"), "b").unwrap();
    let snap = reconcile(&[&"snapshot", &"--root", &root, &"--config", &config]);
    assert_eq!(snap.code, Some(0), "{}", snap.stderr);
    assert!(
        snap.stdout.contains(
            "- {path: \"etc/s6-reconcile/config.yaml\", type: file, mode: \"0644\", uid: 0, gid: 0, content: \"user: 10000\\nprofiles:\\n  home: /srv/volume\\nstatic:\\n  skip: [\\\"web\\\"]\\n\"}\n"
        ),
        "{}",
        snap.stdout
    );
    assert!(snap.stdout.contains("\"srv/volume/profiles/bob/SOUL.md\""));
    let file = save(tmp.path(), "snap.yaml", &snap.stdout);
    for format in ["human", "json"] {
        let disk = reconcile(&[
            &"--plan",
            &"--root",
            &root,
            &"--config",
            &config,
            &"--format",
            &format,
        ]);
        let desc = reconcile(&[&"--plan", &"--tree", &file, &"--format", &format]);
        assert_eq!(disk.code, Some(0), "{}", disk.stderr);
        assert!(disk.stdout.contains("gateway-bob"), "{}", disk.stdout);
        assert_eq!(desc.stdout, disk.stdout, "{format}");
        assert_eq!(desc.code, disk.code);
        // Whoever runs it, the plan is root's (here: a root-owned volume
        // that uid 10000 could not write, which root's plan warns about).
        let other = s6::as_root(&[
            "/bin/s6-applyuidgid".as_ref(),
            "-u".as_ref(),
            "20000".as_ref(),
            "-g".as_ref(),
            "20000".as_ref(),
            "-G".as_ref(),
            "".as_ref(),
            Path::new(env!("CARGO_BIN_EXE_reconcile")).as_os_str(),
            "--plan".as_ref(),
            "--tree".as_ref(),
            file.as_os_str(),
            "--format".as_ref(),
            format.as_ref(),
        ]);
        assert_eq!(
            other.stdout, disk.stdout,
            "as uid 20000 ({format}): {other}"
        );
    }
}
