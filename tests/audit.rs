//! `reconcile audit`: images built as a user would build them, audited on
//! the disk (`--root`) and from the same tree description (`--tree`),
//! which must give the same answer; the paths to root it names compared
//! with what uid 10000 can really write; and a live s6 tree, where
//! "control ✓" must match `s6-svc` working as uid 10000.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use common::run::{Run, run, scrubbed_cmd};
use common::s6::{self, LiveS6, USER_UID};
use common::tree;

/// Accounts (hermes is in `ops`, gid 2000), `cron`'s s6-rc source, and
/// the scandir with its scanner's control FIFO.
const ACCOUNTS_AND_SCANDIR: &str = r##"
- {path: etc, type: dir}
- {path: etc/passwd, type: file, content: "root:x:0:0:root:/root:/bin/sh\nhermes:x:10000:10000::/opt/data:/bin/sh\n"}
- {path: etc/group, type: file, content: "root:x:0:\nops:x:2000:alice,hermes\nstaff:x:5000:alice\nhermes:x:10000:\n"}
- {path: etc/s6-overlay, type: dir}
- {path: etc/s6-overlay/s6-rc.d, type: dir}
- {path: etc/s6-overlay/s6-rc.d/cron, type: dir}
- {path: etc/s6-overlay/s6-rc.d/cron/type, type: file, content: "longrun\n"}
- {path: etc/s6-overlay/s6-rc.d/cron/run, type: file, mode: "0755", content: "#!/bin/sh\nexec cron -f\n"}
- {path: run, type: dir}
- {path: run/service, type: dir}
- {path: run/service/.s6-svscan, type: dir, mode: "0700"}
- {path: run/service/.s6-svscan/control, type: fifo, mode: "0600"}
"##;

/// [`ACCOUNTS_AND_SCANDIR`] and the static service `cron` as s6-rc-init
/// leaves it ([`common::roots::CRON`]).
fn base_image() -> String {
    format!(
        "{ACCOUNTS_AND_SCANDIR}{}",
        common::roots::CRON.trim_start_matches('\n')
    )
}

const STRICT: &str = "- {path: etc/s6-reconcile, type: dir}\n\
    - {path: etc/s6-reconcile/config.yaml, type: file, content: \"policy: strict\\n\"}\n";

/// The built `reconcile audit` with `args`.
fn audit_cmd<S: AsRef<OsStr>>(args: &[S]) -> Run {
    let mut all: Vec<&OsStr> = vec![OsStr::new("audit")];
    all.extend(args.iter().map(AsRef::as_ref));
    run(scrubbed_cmd(&all))
}

/// `reconcile audit --root <root> <extra...> --format json`, and the one
/// JSON object it prints whatever its exit.
fn audit_json(root: &Path, extra: &[&str]) -> (Run, serde_json::Value) {
    let mut args = vec![OsStr::new("--root"), root.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    args.extend([OsStr::new("--format"), OsStr::new("json")]);
    let r = audit_cmd(&args);
    let v = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("not one JSON object ({e}):\n{r}"));
    (r, v)
}

/// [`base_image`] plus `extra` built under a temp root.
fn image(extra: &str) -> tempfile::TempDir {
    assert!(tree::is_root(), "the audit tests build images as root");
    let dir = tree::temp_root("audit-");
    tree::materialise_yaml(dir.path(), &format!("{}{extra}", base_image()))
        .unwrap_or_else(|e| panic!("tree: {e}"));
    dir
}

/// Audit [`base_image`] plus `extra` on the disk (`--root`) and from the same
/// description (`--tree`), in both formats: the answers must be the same.
/// Returns the human audit of the disk.
fn audit(extra: &str) -> Run {
    let root = image(extra);
    let desc = root.path().with_extension("tree.yaml");
    let text = format!(
        "format: s6-reconcile-tree\nversion: 1\nentries:\n{}{extra}",
        base_image()
    );
    std::fs::write(&desc, text).unwrap();
    let on_disk = audit_cmd(&[OsStr::new("--root"), root.path().as_os_str()]);
    let described = audit_cmd(&[OsStr::new("--tree"), desc.as_os_str()]);
    assert_eq!(
        (on_disk.code, &on_disk.stdout),
        (described.code, &described.stdout),
        "--root and --tree differ:\n{on_disk}\n{described}"
    );
    let json = |at: &OsStr, p: &Path| {
        audit_cmd(&[
            at,
            p.as_os_str(),
            OsStr::new("--format"),
            OsStr::new("json"),
        ])
    };
    let (j1, j2) = (
        json(OsStr::new("--root"), root.path()),
        json(OsStr::new("--tree"), &desc),
    );
    assert_eq!(j1.stdout, j2.stdout, "JSON differs:\n{j1}\n{j2}");
    // And from `reconcile snapshot` of the same root: it describes what
    // the audit judges.
    let snap = run({
        let mut c = scrubbed_cmd(&[OsStr::new("snapshot"), OsStr::new("--root")]);
        c.arg(root.path());
        c
    });
    snap.assert_ok();
    std::fs::write(&desc, &snap.stdout).unwrap();
    let j3 = json(OsStr::new("--tree"), &desc);
    assert_eq!(
        j1.stdout, j3.stdout,
        "JSON from the snapshot differs:\n{j1}\n{j3}"
    );
    assert_eq!(j1.code, on_disk.code, "{j1}");
    let v: serde_json::Value = serde_json::from_str(&j1.stdout).expect("one JSON object");
    assert_eq!(v["format"], "s6-reconcile-audit");
    assert_eq!(v["version"], 1);
    let _ = std::fs::remove_file(&desc);
    // What the audit names is what uid 10000, with its groups, can write,
    // and nothing it can write below /etc and /run goes unnamed.
    let named = paths_to_root(&v);
    for path in &named {
        let rel = path.trim_start_matches('/');
        assert!(
            writable_as_user(&root.path().join(rel)),
            "{path} named as a path to root, but uid 10000 cannot write it:\n{on_disk}"
        );
    }
    // Or below a directory said to be too deep to audit.
    let deep = v["notes"].as_array().unwrap().iter().filter_map(|n| {
        let n = n.as_str()?;
        n.strip_suffix(": deeper than 16 levels; not audited")
            .map(str::to_string)
    });
    let covered_by: Vec<String> = named.iter().cloned().chain(deep).collect();
    for path in writable_definitions(root.path()) {
        let covered = covered_by
            .iter()
            .any(|n| path == *n || path.starts_with(&format!("{n}/")));
        assert!(covered, "uid 10000 can write {path}, not named:\n{on_disk}");
    }
    on_disk
}

/// Every entry below `<root>/etc` and `<root>/run` that uid 10000 can
/// write, as container paths; what s6 hands the user to use (`supervise/`,
/// `event/`, `.s6-svscan/`) and symlinks (never followed) left out.
fn writable_definitions(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for top in ["etc", "run"] {
        let walk = walkdir::WalkDir::new(root.join(top))
            .follow_links(false)
            .into_iter()
            .filter_entry(|e| {
                let n = e.file_name();
                n != "supervise" && n != "event" && n != ".s6-svscan"
            });
        for e in walk.flatten() {
            if e.path_is_symlink() || !writable_as_user(e.path()) {
                continue;
            }
            let rel = e.path().strip_prefix(root).unwrap();
            out.push(format!("/{}", rel.display()));
        }
    }
    out
}

fn paths_to_root(v: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for s in v["services"].as_array().unwrap() {
        for p in s["paths_to_root"].as_array().unwrap() {
            out.push(p["path"].as_str().unwrap().to_string());
        }
    }
    out
}

/// Whether uid 10000 with the groups /etc/group gives it (10000 and ops)
/// can write `path` (a directory: change its entries), or owns it.
fn writable_as_user(path: &Path) -> bool {
    let test = "[ -O \"$1\" ] || { [ -w \"$1\" ] && { [ ! -d \"$1\" ] || [ -x \"$1\" ]; }; }";
    let r = run({
        let mut c = Command::new("/bin/s6-applyuidgid");
        c.args([
            "-u",
            "10000",
            "-g",
            "10000",
            "-G",
            "10000,2000",
            "sh",
            "-c",
            test,
            "sh",
        ])
        .arg(path)
        .current_dir("/");
        c
    });
    r.success()
}

#[test]
fn a_root_owned_service_has_no_path_to_root() {
    let r = audit(STRICT);
    r.assert_exit(0)
        .assert_line_with(&["cron ", "observe ✗ control ✗ define ✗"])
        .assert_line_with(&[
            "audit: uid 10000 (groups 2000,10000), policy strict:",
            "no path to root",
        ])
        .assert_no_line_with("path to root:");
}

#[test]
fn a_run_writable_by_the_users_group_is_a_path_to_root() {
    let r = audit(&format!(
        "{STRICT}\
         - {{path: etc/s6-overlay/s6-rc.d/web, type: dir}}\n\
         - {{path: etc/s6-overlay/s6-rc.d/web/run, type: file, gid: 2000, mode: \"0775\", content: \"#!/bin/sh\\n\"}}\n\
         - {{path: etc/s6-overlay/s6-rc.d/db, type: dir}}\n\
         - {{path: etc/s6-overlay/s6-rc.d/db/run, type: file, gid: 5000, mode: \"0775\", content: \"#!/bin/sh\\n\"}}\n\
         - {{path: run/s6-rc/servicedirs/cron/finish, type: file, gid: 2000, mode: \"0664\", content: \"#!/bin/sh\\n\"}}\n"
    ));
    r.assert_exit(3)
        .assert_line_with(&["web ", "define ✓"])
        .assert_line(
            "    path to root: /etc/s6-overlay/s6-rc.d/web/run: group ops (2000), which the user is in, \
             may write it (0:2000 0775)",
        )
        .assert_line(
            "    path to root: /run/s6-rc/servicedirs/cron/finish: group ops (2000), which the user is in, \
             may write it (0:2000 0664)",
        )
        // Group-writable by a group the user is not in: not theirs.
        .assert_line_with(&["db ", "define ✗"])
        .assert_no_line_with("s6-rc.d/db/run")
        .assert_line_with(&["policy strict:", "2 paths to root"]);
}

/// The JSON names the group a path to root goes through, from
/// `<root>/etc/group`; a path everyone may write has no group to name.
#[test]
fn json_names_the_group_of_a_group_writable_path() {
    let root = image(&format!(
        "{STRICT}\
         - {{path: etc/s6-overlay/s6-rc.d/web, type: dir}}\n\
         - {{path: etc/s6-overlay/s6-rc.d/web/run, type: file, gid: 2000, mode: \"0775\", content: \"#!/bin/sh\\n\"}}\n\
         - {{path: etc/cont-init.d, type: dir, mode: \"0777\"}}\n"
    ));
    let (r, v) = audit_json(root.path(), &[]);
    r.assert_exit(3);
    let finding = |path: &str| {
        v["services"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["paths_to_root"].as_array().unwrap())
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("no finding {path}:\n{r}"))
            .clone()
    };
    let web = finding("/etc/s6-overlay/s6-rc.d/web/run");
    assert_eq!(web["group_name"], "ops", "{r}");
    assert_eq!(
        web["why"],
        "group ops (2000), which the user is in, may write it (0:2000 0775)"
    );
    let init = finding("/etc/cont-init.d");
    assert!(init.get("group_name").is_none(), "{r}");
}

#[test]
fn a_writable_directory_above_the_live_trees_defines_every_service_below() {
    let img = base_image().replace(
        "- {path: run, type: dir}\n",
        "- {path: run, type: dir, mode: \"0777\"}\n",
    );
    assert_ne!(img, base_image());
    let root = tree::temp_root("audit-");
    tree::materialise_yaml(root.path(), &format!("{img}{STRICT}")).unwrap();
    let r = audit_cmd(&[OsStr::new("--root"), root.path().as_os_str()]);
    r.assert_exit(3)
        .assert_line_with(&["/run ", "define ✓"])
        .assert_line("    path to root: /run: everyone may write it (0:0 0777)")
        .assert_line_with(&["cron ", "define ✓"])
        .assert_line("    path to root via /run/s6-rc/servicedirs (its line)")
        .assert_line_with(&["policy strict:", "1 path to root"]);
}

#[test]
fn a_services_d_script_the_user_owns_is_a_path_to_root() {
    let r = audit(&format!(
        "{STRICT}\
         - {{path: etc/services.d, type: dir}}\n\
         - {{path: etc/services.d/legacy, type: dir}}\n\
         - {{path: etc/services.d/legacy/run, type: file, uid: 10000, gid: 10000, mode: \"0755\", content: \"#!/bin/sh\\n\"}}\n\
         - {{path: run/s6, type: dir}}\n\
         - {{path: run/s6/legacy-services, type: dir}}\n\
         - {{path: run/s6/legacy-services/legacy, type: dir}}\n\
         - {{path: run/s6/legacy-services/legacy/run, type: file, mode: \"0755\", content: \"#!/bin/sh\\n\"}}\n\
         - {{path: run/s6/legacy-services/legacy/event, type: dir, mode: \"3730\", gid: 10000}}\n\
         - {{path: run/s6/legacy-services/legacy/supervise, type: dir, mode: \"0710\", gid: 10000}}\n\
         - {{path: run/s6/legacy-services/legacy/supervise/control, type: fifo, mode: \"0620\", gid: 10000}}\n\
         - {{path: run/s6/legacy-services/legacy/supervise/lock, type: file}}\n\
         - {{path: run/service/legacy, type: symlink, target: /run/s6/legacy-services/legacy}}\n"
    ));
    // s6-overlay's live copy is observed (the scandir's link to it is
    // known, not followed): the user's group may observe and control it.
    r.assert_exit(3)
        .assert_line_with(&["legacy ", "observe ✓ control ✓ define ✓"])
        .assert_no_line_with("not followed")
        .assert_line(
            "    path to root: /etc/services.d/legacy/run: owned by the user (10000:10000 0755)",
        );
}

#[test]
fn a_writable_cont_init_d_is_a_finding_and_not_entered() {
    let r = audit(&format!(
        "{STRICT}\
         - {{path: etc/cont-init.d, type: dir, mode: \"0777\"}}\n\
         - {{path: etc/cont-init.d/10-setup, type: file, mode: \"0666\", content: \"#!/bin/sh\\n\"}}\n"
    ));
    r.assert_exit(3)
        .assert_line_with(&["/etc/cont-init.d ", "define ✓"])
        .assert_line("    path to root: /etc/cont-init.d: everyone may write it (0:0 0777)")
        .assert_no_line_with("10-setup");
}

/// A writable definition directory is refused without being listed: the
/// user who planted 50,000 names in it costs the audit nothing. strace
/// (`-y` names each call's directory) counts the `getdents64` calls made
/// on it: none.
#[test]
fn a_writable_definition_directory_is_never_listed() {
    let root = image(&format!(
        "{STRICT}- {{path: etc/cont-init.d, type: dir, mode: \"0777\"}}\n"
    ));
    let planted = root.path().join("etc/cont-init.d");
    for i in 0..50_000 {
        std::fs::File::create(planted.join(format!("n{i:05}"))).unwrap();
    }
    let trace = root.path().with_extension("strace");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-y", "-e", "trace=getdents64", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_reconcile"))
        .args(["audit", "--root"])
        .arg(root.path())
        .env("TZ", "UTC")
        .current_dir("/");
    let r = run(cmd);
    r.assert_exit(3)
        .assert_line("    path to root: /etc/cont-init.d: everyone may write it (0:0 0777)")
        .assert_no_line_with("n00000");
    let calls = std::fs::read_to_string(&trace).unwrap();
    let _ = std::fs::remove_file(&trace);
    assert!(
        calls.lines().any(|l| l.contains("getdents64(")),
        "strace saw no getdents64 at all:\n{calls}"
    );
    let listed: Vec<&str> = calls
        .lines()
        .filter(|l| l.contains("getdents64(") && l.contains("/etc/cont-init.d>"))
        .collect();
    assert!(
        listed.is_empty(),
        "the writable directory was listed {} times:\n{}",
        listed.len(),
        listed.join("\n")
    );
}

/// The scandir and a slot handed to the user, as compat leaves them.
const COMPAT_SCANDIR: &str = r##"
- {path: run/service/gateway-default, type: dir, uid: 10000, gid: 10000}
- {path: run/service/gateway-default/run, type: file, uid: 10000, gid: 10000, mode: "0755", content: "#!/bin/sh\n"}
"##;

fn compat_base_image() -> String {
    // The scandir itself owned by the user: a changed image entry.
    base_image().replace(
        "- {path: run/service, type: dir}",
        "- {path: run/service, type: dir, uid: 10000, gid: 10000}",
    )
}

#[test]
fn compat_accepts_the_scandir_and_slots_and_says_so_once() {
    let img = compat_base_image();
    let root = tree::temp_root("audit-");
    tree::materialise_yaml(root.path(), &format!("{img}{COMPAT_SCANDIR}")).unwrap();
    let r = audit_cmd(&[OsStr::new("--root"), root.path().as_os_str()]);
    r.assert_exit(0)
        .assert_line_with(&["gateway-default ", "define ✓"])
        .assert_line(
            "    path to root: /run/service: owned by the user (10000:10000 0755) [accepted by the policy]",
        )
        .assert_line_with(&["policy compat:", "no path to root, and 2 accepted by policy compat"])
        // The user's slot is theirs whole: not listed file by file.
        .assert_no_line_with("gateway-default/run");
    let notes = r
        .stdout
        .matches("policy compat accepts 2 paths to root")
        .count();
    assert_eq!(notes, 1, "{r}");
    // The same tree in strict: nothing accepted, exit 3.
    let strict = tree::temp_root("audit-");
    tree::materialise_yaml(strict.path(), &format!("{img}{COMPAT_SCANDIR}{STRICT}")).unwrap();
    let r = audit_cmd(&[OsStr::new("--root"), strict.path().as_os_str()]);
    r.assert_exit(3)
        .assert_no_line_with("accepted")
        .assert_line_with(&["policy strict:", "2 paths to root"]);
}

/// Compat hands the scandir and its slots to the configured user: what
/// everyone may write there, or what another user may, is beyond it.
#[test]
fn compat_accepts_only_what_it_hands_to_the_configured_user() {
    let img = compat_base_image();
    let root = tree::temp_root("audit-");
    let open_slot = "- {path: run/service/gateway-open, type: dir, mode: \"0777\"}\n";
    tree::materialise_yaml(root.path(), &format!("{img}{COMPAT_SCANDIR}{open_slot}")).unwrap();
    let as_user = |user: Option<&str>| {
        let mut args = vec![OsStr::new("--root"), root.path().as_os_str()];
        if let Some(u) = user {
            args.extend([OsStr::new("--user"), OsStr::new(u)]);
        }
        audit_cmd(&args)
    };
    let r = as_user(None);
    r.assert_exit(3)
        .assert_line("    path to root: /run/service/gateway-open: everyone may write it (0:0 0777)")
        .assert_line(
            "    path to root: /run/service: owned by the user (10000:10000 0755) [accepted by the policy]",
        )
        .assert_line_with(&["policy compat:", "1 path to root, and 2 accepted by policy compat"]);
    // The configured user named by uid is still the configured user.
    let by_uid = as_user(Some("10000"));
    assert_eq!(
        (r.code, &r.stdout),
        (by_uid.code, &by_uid.stdout),
        "{r}\n{by_uid}"
    );
    // Another user given the scandir is not what compat accepts.
    let passwd = root.path().join("etc/passwd");
    let mut text = std::fs::read_to_string(&passwd).unwrap();
    text.push_str("alice:x:4242:4242::/:/bin/sh\n");
    std::fs::write(&passwd, text).unwrap();
    std::os::unix::fs::chown(root.path().join("run/service"), Some(4242), None).unwrap();
    as_user(Some("alice"))
        .assert_exit(3)
        .assert_no_line_with("accepted")
        .assert_line("    path to root: /run/service: owned by the user (4242:10000 0755)");
}

#[test]
fn scandir_links_to_the_resolved_live_dir_are_the_static_services() {
    // As s6-rc-init leaves it: /run/s6-rc is a link to its live directory.
    // The scandir's link names the resolved path.
    let img = base_image()
        .replace("run/s6-rc/servicedirs", "run/s6-rc:init:x/servicedirs")
        .replace(
            "- {path: run/s6-rc, type: dir}\n",
            "- {path: run/s6-rc:init:x, type: dir}\n- {path: run/s6-rc, type: symlink, target: s6-rc:init:x}\n",
        );
    assert!(img.contains("target: /run/s6-rc:init:x/servicedirs/cron"));
    let root = tree::temp_root("audit-");
    tree::materialise_yaml(root.path(), &format!("{img}{STRICT}")).unwrap();
    let r = audit_cmd(&[OsStr::new("--root"), root.path().as_os_str()]);
    r.assert_exit(0)
        .assert_line_with(&["cron ", "observe ✗ control ✗ define ✗"])
        .assert_no_line_with("not followed");
}

#[test]
fn links_in_definition_trees_are_never_followed() {
    let r = audit(&format!(
        "{STRICT}\
         - {{path: opt, type: dir}}\n\
         - {{path: opt/data, type: dir, uid: 10000, gid: 10000}}\n\
         - {{path: etc/services.d, type: dir}}\n\
         - {{path: etc/services.d/evil, type: symlink, target: /opt/data}}\n\
         - {{path: etc/cont-finish.d, type: symlink, target: /opt/data}}\n"
    ));
    r.assert_exit(0)
        .assert_line(
            "note: /etc/services.d/evil: a symlink, not followed; what it points to is not audited",
        )
        .assert_line(
            "note: /etc/cont-finish.d: a symlink, not followed; what it points to is not audited",
        )
        .assert_no_line_with("/opt/data");
}

/// A mount below a definition tree (a volume over a `cont-init.d`
/// directory) is judged as a directory but not entered, and said; the
/// entries after it are still judged.
#[test]
fn mounts_in_definition_trees_are_not_crossed() {
    let root = image(&format!(
        "{STRICT}\
         - {{path: etc/cont-init.d, type: dir}}\n\
         - {{path: etc/cont-init.d/vol, type: dir}}\n\
         - {{path: etc/cont-init.d/open, type: dir}}\n\
         - {{path: etc/cont-init.d/zz-user, type: file, uid: 10000, mode: \"0755\", content: \"#!/bin/sh\\n\"}}\n"
    ));
    // In a mount namespace of its own: the mounts go with it.
    let script = "set -e\n\
        mount -t tmpfs -o mode=0755 tmpfs \"$1/etc/cont-init.d/vol\"\n\
        mount -t tmpfs -o mode=0777 tmpfs \"$1/etc/cont-init.d/open\"\n\
        printf '#!/bin/sh\\n' > \"$1/etc/cont-init.d/vol/10-user\"\n\
        chown 10000:10000 \"$1/etc/cont-init.d/vol/10-user\"\n\
        exec \"$2\" audit --root \"$1\"\n";
    let mut c = Command::new("unshare");
    c.args(["--mount", "sh", "-c", script, "sh"])
        .arg(root.path())
        .arg(env!("CARGO_BIN_EXE_reconcile"))
        .env("TZ", "UTC")
        .current_dir("/");
    for var in common::run::SCRUBBED_ENV {
        c.env_remove(var);
    }
    let r = run(c);
    r.assert_exit(3)
        .assert_line(
            "note: /etc/cont-init.d/vol: a mount, not crossed; what it holds is not audited",
        )
        .assert_line(
            "note: /etc/cont-init.d/open: a mount, not crossed; what it holds is not audited",
        )
        .assert_line("    path to root: /etc/cont-init.d/open: everyone may write it (0:0 0777)")
        .assert_line("    path to root: /etc/cont-init.d/zz-user: owned by the user (10000:0 0755)")
        .assert_no_line_with("10-user");
}

#[test]
fn a_fifo_is_judged_and_never_opened() {
    let r = audit(&format!(
        "{STRICT}\
         - {{path: etc/cont-init.d, type: dir}}\n\
         - {{path: etc/cont-init.d/pipe, type: fifo, mode: \"0666\"}}\n\
         - {{path: etc/cont-init.d/quiet, type: fifo, mode: \"0600\"}}\n"
    ));
    r.assert_exit(3)
        .assert_line("    path to root: /etc/cont-init.d/pipe: everyone may write it (0:0 0666)")
        .assert_no_line_with("quiet");
}

#[test]
fn deep_nesting_is_bounded_and_said() {
    let mut extra = format!("{STRICT}- {{path: etc/services.d, type: dir}}\n");
    let mut p = String::from("etc/services.d/deep");
    for _ in 0..20 {
        extra.push_str(&format!("- {{path: {p}, type: dir}}\n"));
        p.push_str("/d");
    }
    extra.push_str(&format!("- {{path: {p}, type: file, mode: \"0666\"}}\n"));
    let r = audit(&extra);
    let at16 = format!("/etc/services.d/deep{}", "/d".repeat(15));
    r.assert_exit(0)
        .assert_line(&format!("note: {at16}: deeper than 16 levels; not audited"))
        .assert_no_line_with("path to root:");
}

#[test]
fn non_utf8_names_are_escaped() {
    let root = image(STRICT);
    let dir = root.path().join("etc/cont-init.d");
    s6::mkdir(&dir, 0o755);
    let bad = dir.join(OsStr::from_bytes(b"10-bad\xff\n"));
    std::fs::write(&bad, "#!/bin/sh\n").unwrap();
    s6::set_mode(&bad, 0o666);
    let r = audit_cmd(&[OsStr::new("--root"), root.path().as_os_str()]);
    r.assert_exit(3).assert_line(
        "    path to root: /etc/cont-init.d/10-bad\\xff\\x0a: everyone may write it (0:0 0666)",
    );
}

#[test]
fn unreadable_directories_are_not_observable_never_no_access() {
    let root = image(&format!(
        "{STRICT}\
         - {{path: etc/services.d, type: dir}}\n\
         - {{path: etc/services.d/secret, type: dir, mode: \"0700\"}}\n\
         - {{path: etc/services.d/secret/run, type: file, mode: \"0755\"}}\n"
    ));
    // Audited by uid 10000 itself: it cannot read what root keeps to itself.
    let r = s6::as_user(&[
        OsStr::new(env!("CARGO_BIN_EXE_reconcile")),
        OsStr::new("audit"),
        OsStr::new("--root"),
        root.path().as_os_str(),
    ]);
    r.assert_exit(0)
        .assert_line("note: not observable: /etc/services.d/secret: Permission denied")
        .assert_line_with(&["cron ", "observe ✗ control ✗ define ✗"])
        .assert_line("    cannot search /run/s6-rc/servicedirs/cron/supervise (0:0 0700)");
    assert!(!r.stdout.contains("no access"), "{r}");
}

#[test]
fn a_user_in_dozens_of_groups_has_all_of_them() {
    let mut group = String::from("root:x:0:\\n");
    for i in 0..40 {
        group.push_str(&format!("g{i}:x:{}:hermes\\n", 3000 + i));
    }
    group.push_str("other:x:6000:alice\\n");
    let img = base_image().replace(
        "content: \"root:x:0:\\nops:x:2000:alice,hermes\\nstaff:x:5000:alice\\nhermes:x:10000:\\n\"",
        &format!("content: \"{group}\""),
    );
    assert_ne!(img, base_image());
    let root = tree::temp_root("audit-");
    tree::materialise_yaml(
        root.path(),
        &format!(
            "{img}{STRICT}\
             - {{path: etc/services.d, type: dir}}\n\
             - {{path: etc/services.d/a, type: dir, gid: 3039, mode: \"0775\"}}\n\
             - {{path: etc/services.d/b, type: dir, gid: 6000, mode: \"0775\"}}\n"
        ),
    )
    .unwrap();
    let r = audit_cmd(&[OsStr::new("--root"), root.path().as_os_str()]);
    r.assert_exit(3)
        .assert_line(
            "    path to root: /etc/services.d/a: group g39 (3039), which the user is in, may write it (0:3039 0775)",
        )
        .assert_no_line_with("/etc/services.d/b");
    assert!(r.stdout.contains("(groups 3000,3001,"), "{r}");
}

#[test]
fn malformed_group_lines_are_skipped_with_a_warning() {
    let img = base_image().replace(
        "content: \"root:x:0:\\nops:x:2000:alice,hermes\\n",
        "content: \"root:x:0:\\nthis is not a group\\nweb:x:notanumber:hermes\\nops:x:2000:alice,hermes\\n",
    );
    assert_ne!(img, base_image());
    let root = tree::temp_root("audit-");
    tree::materialise_yaml(
        root.path(),
        &format!(
            "{img}{STRICT}\
             - {{path: etc/services.d, type: dir}}\n\
             - {{path: etc/services.d/a, type: dir, gid: 2000, mode: \"0775\"}}\n"
        ),
    )
    .unwrap();
    let r = audit_cmd(&[OsStr::new("--root"), root.path().as_os_str()]);
    // The lines after the malformed ones still count: hermes is in ops.
    r.assert_exit(3)
        .assert_line(
            "warning: /etc/group:2: malformed line skipped (expected name:password:gid:members)",
        )
        .assert_line(
            "warning: /etc/group:3: malformed line skipped (expected name:password:gid:members)",
        )
        .assert_line_with(&["path to root: /etc/services.d/a: group ops (2000)"]);
}

#[test]
fn another_user_by_name_or_uid() {
    let root = image(&format!(
        "{STRICT}\
         - {{path: etc/cont-init.d, type: dir, uid: 4242, mode: \"0755\"}}\n"
    ));
    let by_uid = audit_cmd(&[
        OsStr::new("--root"),
        root.path().as_os_str(),
        OsStr::new("--user"),
        OsStr::new("4242"),
    ]);
    by_uid
        .assert_exit(3)
        .assert_line("    path to root: /etc/cont-init.d: owned by the user (4242:0 0755)");
    let unknown = audit_cmd(&[
        OsStr::new("--root"),
        root.path().as_os_str(),
        OsStr::new("--user"),
        OsStr::new("nobody2"),
    ]);
    unknown.assert_exit(100);
    assert!(
        unknown
            .stderr
            .contains("--user: unknown user \"nobody2\": not found in /etc/passwd"),
        "{unknown}"
    );
    // With --format json, a refused command line is still one audit object.
    let bad = audit_cmd(&["--format", "json", "--bogus"]);
    bad.assert_exit(100);
    let v: serde_json::Value = serde_json::from_str(&bad.stdout).expect("one JSON object");
    assert_eq!(v["format"], "s6-reconcile-audit", "{bad}");
    assert!(
        v["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("--bogus"),
        "{bad}"
    );
    let (json, v) = audit_json(root.path(), &["--user", "nobody2"]);
    json.assert_exit(100);
    assert_eq!(
        v["errors"][0]["error"],
        "--user: unknown user \"nobody2\": not found in /etc/passwd"
    );
    // Nothing of the configured user's.
    audit_cmd(&[OsStr::new("--root"), root.path().as_os_str()]).assert_exit(0);
}

/// `--user NAME` and `--user UID` of a user in `/etc/passwd` are the same
/// user, with every group `/etc/group` gives it.
#[test]
fn a_user_by_name_is_its_uid_with_its_groups() {
    let root = image(&format!(
        "{STRICT}\
         - {{path: etc/services.d, type: dir}}\n\
         - {{path: etc/services.d/web, type: dir}}\n\
         - {{path: etc/services.d/web/run, type: file, gid: 5000, mode: \"0775\", content: \"#!/bin/sh\\n\"}}\n"
    ));
    let passwd = root.path().join("etc/passwd");
    let mut text = std::fs::read_to_string(&passwd).unwrap();
    text.push_str("alice:x:4242:4242::/:/bin/sh\n");
    std::fs::write(&passwd, text).unwrap();
    let as_user = |user: &str| {
        audit_cmd(&[
            OsStr::new("--root"),
            root.path().as_os_str(),
            OsStr::new("--user"),
            OsStr::new(user),
        ])
    };
    let by_name = as_user("alice");
    by_name
        .assert_exit(3)
        .assert_line_with(&["web ", "define ✓"])
        .assert_line(
            "    path to root: /etc/services.d/web/run: group staff (5000), which the user is in, may write it (0:5000 0775)",
        )
        .assert_line_with(&["audit: uid 4242 (groups 2000,4242,5000), policy strict"]);
    let by_uid = as_user("4242");
    assert_eq!(
        (by_name.code, &by_name.stdout),
        (by_uid.code, &by_uid.stdout),
        "--user alice and --user 4242 differ:\n{by_name}\n{by_uid}"
    );
    // hermes is not in staff (5000): nothing of its own.
    audit_cmd(&[OsStr::new("--root"), root.path().as_os_str()])
        .assert_exit(0)
        .assert_line_with(&["web ", "define ✗"]);
}

/// "control ✓" is `s6-svc` working as uid 10000, "✗" is it failing;
/// "observe ✓" is `s6-svstat` working. Before and after an apply.
#[test]
fn live_marks_match_what_s6_lets_the_user_do() {
    let live = LiveS6::start();
    let check = |live: &LiveS6| {
        let r = audit_cmd(&[OsStr::new("--root"), live.root().as_os_str()]);
        r.assert_exit(0);
        for svc in live.services() {
            let line = r
                .stdout
                .lines()
                .find(|l| l.starts_with(&format!("{} ", svc.name)))
                .unwrap_or_else(|| panic!("no line for {}:\n{r}", svc.name));
            let dir = live.servicedir(svc.name);
            let svc_ok = s6::s6_as_user("s6-svc", &[&"-u", &dir]).success();
            // s6-svwait makes its FIFO in event/ before it looks at the
            // status: on a service that is up it returns at once.
            let stat_ok = s6::s6_as_user("s6-svstat", &[&dir]).success()
                && s6::s6_as_user("s6-svwait", &[&"-u", &"-t", &"5000", &dir]).success();
            let want = format!(
                "observe {} control {}",
                if stat_ok { "✓" } else { "✗" },
                if svc_ok { "✓" } else { "✗" }
            );
            assert!(
                line.contains(&want),
                "{}: {line:?} but s6 says {want:?}\n{r}",
                svc.name
            );
        }
        r
    };
    let before = check(&live);
    before.assert_line_with(&["app-worker ", "observe ✗ control ✗"]);
    s6::reconcile(live.root(), &[]).assert_ok();
    let after = check(&live);
    after
        .assert_line_with(&["app-worker ", "observe ✓ control ✓"])
        .assert_line_with(&["s6rc-fdholder ", "control ✗"]);
    let scandir = after
        .stdout
        .lines()
        .find(|l| l.starts_with("/run/service "))
        .unwrap_or_else(|| panic!("no scandir line:\n{after}"));
    let rescan = s6::s6_as_user("s6-svscanctl", &[&"-a", &live.scandir()]).success();
    assert_eq!(scandir.contains("control ✓"), rescan, "{scandir}\n{after}");
    assert_eq!(USER_UID, 10000);
}

/// After a strict apply the user observes and controls the services but
/// defines none: no path to root, exit 0, nothing accepted.
#[test]
fn a_strict_apply_leaves_no_path_to_root() {
    let live = LiveS6::start();
    let cfg = live.root().join("etc/s6-reconcile");
    s6::mkdir(&cfg, 0o755);
    s6::write_file(&cfg.join("config.yaml"), "policy: strict\n", 0o644);
    s6::reconcile(live.root(), &[]).assert_ok();
    let r = audit_cmd(&[OsStr::new("--root"), live.root().as_os_str()]);
    r.assert_exit(0)
        .assert_line_with(&["app-worker ", "observe ✓ control ✓ define ✗"])
        .assert_line_with(&["nginx ", "observe ✓ control ✓ define ✗"])
        .assert_line_with(&["s6rc-fdholder ", "observe ✗ control ✗ define ✗"])
        .assert_line_with(&["/run/service ", "define ✗"])
        .assert_line_with(&["policy strict:", "no path to root"])
        .assert_no_line_with("accepted");
    let dir = live.servicedir("app-worker");
    s6::s6_as_user("s6-svc", &[&"-u", &dir]).assert_ok();
    let scandir = r
        .stdout
        .lines()
        .find(|l| l.starts_with("/run/service "))
        .unwrap();
    let rescan = s6::s6_as_user("s6-svscanctl", &[&"-a", &live.scandir()]).success();
    assert_eq!(scandir.contains("control ✓"), rescan, "{scandir}\n{r}");
}

/// A --root that cannot be opened stops the audit before it looks, as it
/// stops a run: exit 111, the path and the reason on stderr, and with
/// `--format json` one object naming the error.
#[test]
fn an_unopenable_root_is_fatal_and_says_which() {
    let dir = tree::temp_root("audit-noroot-");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    for (root, why) in [
        (dir.path().join("missing"), "No such file or directory"),
        (file, "Not a directory"),
    ] {
        let r = audit_cmd(&[OsStr::new("--root"), root.as_os_str()]);
        r.assert_exit(111);
        let said = format!(
            "reconcile: fatal: unable to open root {}: {why}",
            root.display()
        );
        assert!(r.stderr.contains(&said), "{said}\n{r}");
        let (r, v) = audit_json(&root, &[]);
        r.assert_exit(111);
        let error = v["errors"][0]["error"].as_str().unwrap_or_default();
        assert!(error.contains(why), "{v:#}");
    }
}
