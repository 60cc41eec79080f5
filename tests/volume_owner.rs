//! What only the volume's owner can break does not fail a boot (docs/security.md,
//! "What the volume's owner can break"):
//! each case plants, as uid 10000 in its own volume, one thing that makes a
//! write there fail (the boot log, its rotation, `logs`, the home's or
//! `profiles`' mode, a stale runtime file it cannot remove). The apply
//! warns naming the file and the reason, exits 0, and still publishes the
//! slots.
//!
//! Trees have owners other than the caller: these tests need root and fail
//! (never skip) without it.

mod common;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use common::roots::root_with;
use common::timed::{self, Out};

const USER: u32 = 10000;

/// An apply with its whole report (`-v`: the skipped list too), its
/// lines prefixed `reconcile: ` as every apply's are.
fn run(root: &Path) -> Out {
    timed::run(common::run::reconcile_cmd::<&str>(root, &["-v"], &[]), None)
}

/// stdout's lines with the apply's `reconcile: ` prefix taken off.
fn lines(out: &Out) -> impl Iterator<Item = &str> {
    out.stdout
        .lines()
        .map(|l| l.strip_prefix("reconcile: ").unwrap_or(l))
}

fn chown(p: &Path) {
    std::os::unix::fs::lchown(p, Some(USER), Some(USER)).unwrap();
}

fn mkdir(p: &Path) {
    std::fs::create_dir(p).unwrap();
    chown(p);
}

fn write(p: &Path, text: &str) {
    std::fs::write(p, text).unwrap();
    chown(p);
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// One plant: its name, what it does to the volume, the words the warning
/// must hold (besides the warning itself).
struct Case {
    name: &'static str,
    plant: fn(&Path),
    says: &'static [&'static str],
    /// The slots that must be there after the run.
    slots: &'static [&'static str],
}

/// The default profile's slot and the named profile's.
const BOTH: &[&str] = &["gateway-default", "gateway-good"];

const CASES: &[Case] = &[
    Case {
        name: "log is a symlink",
        plant: |v| {
            mkdir(&v.join("logs"));
            symlink("/etc/shadow", v.join("logs/container-boot.log")).unwrap();
            std::os::unix::fs::lchown(v.join("logs/container-boot.log"), Some(USER), Some(USER))
                .unwrap();
        },
        says: &["container-boot.log", "is a symlink; not followed"],
        slots: BOTH,
    },
    Case {
        name: "log is a FIFO",
        plant: |v| {
            mkdir(&v.join("logs"));
            let log = v.join("logs/container-boot.log");
            nix::unistd::mkfifo(&log, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
            chown(&log);
        },
        says: &["container-boot.log", "is a FIFO, not a regular file"],
        slots: BOTH,
    },
    Case {
        name: "log is a directory",
        plant: |v| {
            mkdir(&v.join("logs"));
            mkdir(&v.join("logs/container-boot.log"));
        },
        says: &["container-boot.log", "is a directory, not a regular file"],
        slots: BOTH,
    },
    Case {
        name: "log is hard-linked",
        plant: |v| {
            mkdir(&v.join("logs"));
            write(&v.join("other"), "keep\n");
            std::fs::hard_link(v.join("other"), v.join("logs/container-boot.log")).unwrap();
        },
        says: &["container-boot.log", "hard-linked"],
        slots: BOTH,
    },
    Case {
        name: "log is read-only",
        plant: |v| {
            mkdir(&v.join("logs"));
            write(&v.join("logs/container-boot.log"), "old\n");
            chmod(&v.join("logs/container-boot.log"), 0o444);
        },
        says: &["container-boot.log", "Permission denied"],
        slots: BOTH,
    },
    Case {
        name: "logs is a file",
        plant: |v| write(&v.join("logs"), "not a dir\n"),
        says: &["container-boot.log: logs is a regular file, not a directory"],
        slots: BOTH,
    },
    Case {
        name: "logs is a symlink",
        plant: |v| {
            symlink("/etc", v.join("logs")).unwrap();
            std::os::unix::fs::lchown(v.join("logs"), Some(USER), Some(USER)).unwrap();
        },
        says: &["logs is a symlink; refusing to follow it"],
        slots: BOTH,
    },
    Case {
        name: "logs at mode 0",
        plant: |v| {
            mkdir(&v.join("logs"));
            chmod(&v.join("logs"), 0);
        },
        says: &["container-boot.log", "Permission denied"],
        slots: BOTH,
    },
    Case {
        name: "full log whose .1 is a directory",
        plant: |v| {
            mkdir(&v.join("logs"));
            write(&v.join("logs/container-boot.log"), &"x".repeat(300_000));
            mkdir(&v.join("logs/container-boot.log.1"));
            write(&v.join("logs/container-boot.log.1/keep"), "");
        },
        says: &[
            "container-boot.log",
            "rotation to container-boot.log.1 failed: Is a directory",
        ],
        slots: BOTH,
    },
    Case {
        name: "home at 0555",
        plant: |v| chmod(v, 0o555),
        says: &["opt/data", "Permission denied"],
        slots: BOTH,
    },
    Case {
        name: "profiles at mode 0",
        plant: |v| chmod(&v.join("profiles"), 0),
        says: &["opt/data/profiles", "Permission denied"],
        // The profiles cannot be listed: only the default profile's slot
        // can be published.
        slots: &["gateway-default"],
    },
    Case {
        name: "gateway.pid in a 0555 profile",
        plant: |v| {
            write(&v.join("profiles/good/gateway.pid"), "42\n");
            chmod(&v.join("profiles/good"), 0o555);
        },
        says: &["profiles/good/gateway.pid", "Permission denied"],
        slots: BOTH,
    },
    Case {
        name: "gateway.pid a non-empty directory",
        plant: |v| {
            mkdir(&v.join("gateway.pid"));
            write(&v.join("gateway.pid/x"), "");
        },
        says: &["opt/data/gateway.pid", "directory"],
        slots: BOTH,
    },
];

/// The notices of a run that are not errors: `warning:` lines and the
/// `skipped:` list's.
fn notices(out: &Out) -> Vec<&str> {
    out.stderr
        .lines()
        .map(|l| l.strip_prefix("reconcile: ").unwrap_or(l))
        .chain(lines(out))
        .filter(|l| l.starts_with("warning: ") || l.starts_with("  /"))
        .collect()
}

fn check(case: &Case) -> Result<(), String> {
    let dir = root_with("");
    let root = dir.path();
    (case.plant)(&root.join("opt/data"));
    let out = run(root);
    let mut wrong = Vec::new();
    if out.code != 0 {
        wrong.push(format!("exit {}, not 0", out.code));
    }
    let warned = notices(&out);
    if !warned
        .iter()
        .any(|l| case.says.iter().all(|w| l.contains(w)))
    {
        wrong.push(format!("no warning with {:?}", case.says));
    }
    for slot in case.slots {
        let p = root.join("run/service").join(slot);
        if !p.join("run").is_file() {
            wrong.push(format!("{slot} not published"));
        }
    }
    // The test's own plants must not stop the temp dir's removal.
    for p in [root.join("opt/data"), root.join("opt/data/profiles")] {
        chmod(&p, 0o755);
    }
    for p in ["opt/data/logs", "opt/data/profiles/good"] {
        let p = root.join(p);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            chmod(&p, 0o755);
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}\n{}",
            case.name,
            wrong.join("; "),
            out.show()
        ))
    }
}

#[test]
fn what_only_the_volume_owner_breaks_is_a_warning_and_the_boot_goes_on() {
    assert!(common::tree::is_root(), "these tests need root");
    let failed: Vec<String> = CASES.iter().filter_map(|c| check(c).err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failed.len(),
        CASES.len(),
        failed.join("\n\n")
    );
}

/// What the volume's owner cannot cause still counts. A home that is not
/// the user's (a volume created as root): the boot log cannot be written
/// there, and that is an error (exit 1), though the slots are published.
#[test]
fn a_volume_root_left_unwritable_still_fails_the_run() {
    let dir = root_with("");
    let home = dir.path().join("opt/data");
    std::os::unix::fs::lchown(&home, Some(0), Some(0)).unwrap();
    let out = run(dir.path());
    assert_eq!(out.code, 1, "{}", out.show());
    assert!(
        lines(&out).any(|l| l
            == "error: unable to append to /opt/data/logs/container-boot.log: \
                Permission denied (as uid 10000)"),
        "{}",
        out.show()
    );
    assert!(dir.path().join("run/service/gateway-good/run").is_file());
}

/// A failure outside the volume (a scandir that is not there) still
/// counts, with the volume's own plant beside it a warning.
#[test]
fn a_failure_outside_the_volume_still_fails_the_run() {
    let dir = root_with(
        "- {path: opt/data/logs, type: dir, uid: 10000, gid: 10000}\n\
         - {path: opt/data/logs/container-boot.log, type: fifo, uid: 10000, gid: 10000}\n",
    );
    let cmd = common::run::reconcile_cmd::<&str>(
        dir.path(),
        &[],
        &[("S6_PROFILE_GATEWAY_SCANDIR", "/run/nosuch")],
    );
    let out = timed::run(cmd, None);
    assert_eq!(out.code, 1, "{}", out.show());
    assert!(
        lines(&out).any(|l| l
            == "error: unable to open /run/nosuch: scandir not present; no slot can be published"),
        "{}",
        out.show()
    );
    assert!(
        lines(&out).any(|l| l.starts_with("warning: ")
            && l.contains("container-boot.log: is a FIFO, not a regular file")),
        "{}",
        out.show()
    );
}
