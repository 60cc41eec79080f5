//! The description as an observation source (`--tree`) answers the
//! scanner's questions exactly as the disk does for the materialized tree:
//! listings, `lstat`s, opening directories (symlinks refused with the same
//! message), reading files, link targets, opening configured bases through
//! trusted and untrusted symlinks, following links as the user, and
//! permission errors inside `as_user`. Identity is compared as the planner
//! uses it: two names are the same file on one source iff on the other.
//!
//! Needs root (owners, and `as_user` switches the effective ids).

mod common;

use std::ffi::{OsStr, OsString};
use std::path::Path;

use common::tree;
use s6_reconcile::fs::{Dir, Meta};
use s6_reconcile::observe::{Disk, Source};
use s6_reconcile::tree::source::TreeSource;

const TREE: &str = r##"
- {path: etc, type: dir}
- {path: etc/passwd, type: file, content: "root:x:0:0::/:/bin/sh\nhermes:x:10000:10000::/opt/data:/bin/sh\n"}
- {path: etc/shadow, type: file, mode: "0600", links: 2, content: "secret\n"}
- {path: opt, type: dir}
- {path: opt/data, type: dir, uid: 10000, gid: 10000}
- {path: opt/data/SOUL.md, type: symlink, uid: 10000, gid: 10000, target: "profiles/alice/SOUL.md"}
- {path: opt/data/config.yaml, type: symlink, uid: 10000, gid: 10000, target: "/etc/shadow"}
- {path: opt/data/gateway.json, type: symlink, uid: 10000, gid: 10000, target: "loop"}
- {path: opt/data/loop, type: symlink, uid: 10000, gid: 10000, target: "gateway.json"}
- {path: opt/data/private, type: dir, mode: "0700"}
- {path: opt/data/private/x, type: file, content: "x"}
- {path: opt/data/profiles, type: dir, uid: 10000, gid: 10000}
- {path: opt/data/profiles/alice, type: dir, uid: 10000, gid: 10000}
- {path: opt/data/profiles/alice/SOUL.md, type: file, uid: 10000, gid: 10000, content: "# alice\n"}
- {path: opt/data/profiles/alice/gateway_state.json, type: file, mode: "0600", content: "{}"}
- {path: run, type: dir}
- {path: run/s6-rc, type: symlink, target: "s6-rc:init:x"}
- {path: "run/s6-rc:init:x", type: dir}
- {path: "run/s6-rc:init:x/servicedirs", type: dir}
- {path: "run/s6-rc:init:x/servicedirs/web", type: dir}
- {path: "run/s6-rc:init:x/servicedirs/web/run", type: file, mode: "0755", content: "#!/bin/sh\n"}
- {path: "run/s6-rc:init:x/servicedirs/web/event", type: dir, mode: "3730"}
- {path: "run/s6-rc:init:x/servicedirs/web/supervise", type: dir, mode: "0700"}
- {path: "run/s6-rc:init:x/servicedirs/web/supervise/control", type: fifo, mode: "0600"}
- {path: "run/s6-rc:init:x/servicedirs/web/supervise/lock", type: file}
- {path: "run/s6-rc:init:x/servicedirs/web/supervise/extra", type: hardlink, target: etc/shadow}
- {path: "run/s6-rc:init:x/servicedirs/web/s", type: socket, mode: "0777"}
- {path: run/service, type: dir}
- {path: run/service/web, type: symlink, target: /run/s6-rc/servicedirs/web}
- {path: run/service/big, type: file, content: "0123456789"}
- {path: tmp, type: dir, mode: "1777"}
- {path: tmp/evil, type: symlink, uid: 10000, gid: 10000, target: /etc}
"##;

/// What both sources must agree on about an entry (dev and ino are
/// compared as identity, not as numbers; a directory's size is the file
/// system's business).
fn shape(m: &Meta) -> (String, u32, u32, u32, u64, Option<u64>) {
    let size = (m.kind != s6_reconcile::fs::Kind::Dir).then_some(m.size);
    (format!("{:?}", m.kind), m.uid, m.gid, m.mode, m.nlink, size)
}

/// An answer as both sources must agree on it: the OS error as it is
/// printed (not the call named, which a description does not make), or
/// the refusal.
fn err<T>(r: s6_reconcile::fs::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

/// (dev, ino) on the disk, (dev, ino) in the description, the path.
type Identity = ((u64, u64), (u64, u64), String);

/// Walk both sources in step from `(a, b)`, comparing every answer.
fn compare<A: Source, B: Source>(
    a: &A,
    b: &B,
    da: &A::Dir,
    db: &B::Dir,
    path: &str,
    ids: &mut Vec<Identity>,
) {
    let la = a.list(da);
    let lb = b.list(db);
    assert_eq!(
        err(la.as_ref().map(drop).map_err(Clone::clone)),
        err(lb.as_ref().map(drop).map_err(Clone::clone)),
        "list {path}"
    );
    let (Ok(la), Ok(lb)) = (la, lb) else { return };
    let names = |l: &[s6_reconcile::fs::DirEntry]| {
        l.iter().map(|e| e.name.clone()).collect::<Vec<OsString>>()
    };
    assert_eq!(names(&la), names(&lb), "names in {path}");
    for e in &la {
        let name: &OsStr = &e.name;
        let p = format!("{path}/{}", name.to_string_lossy());
        let (ma, mb) = (a.stat(da, name).unwrap(), b.stat(db, name).unwrap());
        assert_eq!(shape(&ma), shape(&mb), "stat {p}");
        ids.push(((ma.dev, ma.ino), (mb.dev, mb.ino), p.clone()));
        let fa = a.read_file(da, name, 8);
        let fb = b.read_file(db, name, 8);
        match (&fa, &fb) {
            (Ok((x, cx)), Ok((y, cy))) => {
                assert_eq!(shape(x), shape(y), "read_file meta {p}");
                assert_eq!(cx, cy, "read_file {p}");
            }
            _ => assert_eq!(err(fa), err(fb), "read_file {p}"),
        }
        assert_eq!(
            err(a.read_link(da, name).map(|t| t.to_os_string())),
            err(b.read_link(db, name).map(|t| t.to_os_string())),
            "read_link {p}"
        );
        if let (Ok(x), Ok(y)) = (a.read_link(da, name), b.read_link(db, name)) {
            assert_eq!(x, y, "link target {p}");
        }
        match (a.open_dir(da, name), b.open_dir(db, name)) {
            (Ok((ca, _)), Ok((cb, _))) => compare(a, b, &ca, &cb, &p, ids),
            (ra, rb) => assert_eq!(err(ra), err(rb), "open_dir {p}"),
        }
    }
}

#[test]
fn a_description_answers_as_the_disk_does() {
    assert!(
        tree::is_root(),
        "needs root: run the suite as root, as CI does"
    );
    let d = tree::parse(TREE).unwrap();
    let tmp = tree::temp_root("tree-source-");
    let root_path = tmp.path().join("root");
    tree::materialise(&root_path, &d.entries).unwrap();
    let root = Dir::open_path(&root_path).unwrap();
    let user = (10000, 10000);
    let disk = Disk {
        root: &root,
        untrusted: user.into(),
    };
    let desc = TreeSource::new(&d, user.into());

    let (rd, rt) = (
        disk.open_base(Path::new("/")).unwrap(),
        desc.open_base(Path::new("/")).unwrap(),
    );
    let mut ids = Vec::new();
    compare(&disk, &desc, &rd.dir, &rt.dir, "", &mut ids);
    // Same file on one source iff on the other (hard links).
    for (i, x) in ids.iter().enumerate() {
        for y in &ids[i + 1..] {
            assert_eq!(x.0 == y.0, x.1 == y.1, "identity of {} and {}", x.2, y.2);
        }
    }

    for base in [
        "/run/s6-rc/servicedirs",
        "/run/s6-rc/servicedirs/web",
        "/run/service/web",
        "/run/missing",
        "/etc/passwd",
        "/tmp/evil/x",
        "/opt/data",
        "/run/s6-rc/../s6-rc:init:x",
    ] {
        let a = disk.open_base(Path::new(base));
        let b = desc.open_base(Path::new(base));
        match (a, b) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.resolved, b.resolved, "{base}");
                assert_eq!(shape(&a.meta), shape(&b.meta), "{base}");
            }
            (a, b) => assert_eq!(
                a.map(|_| ()).map_err(|e| e.to_string()),
                b.map(|_| ()).map_err(|e| e.to_string()),
                "open_base {base}"
            ),
        }
    }

    // As the user: permission bits count, and links are followed.
    let (hd, ht) = (
        disk.open_base(Path::new("/opt/data")).unwrap(),
        desc.open_base(Path::new("/opt/data")).unwrap(),
    );
    let as_user = |name: &str| {
        let name = OsStr::new(name);
        let a = disk
            .as_user(user, || {
                (
                    err(disk.list(
                        &disk
                            .open_dir(&hd.dir, name)
                            .map(|x| x.0)
                            .unwrap_or_else(|_| hd.dir.try_clone().unwrap()),
                    )),
                    err(disk.stat_following(&hd.dir, name).map(|m| shape(&m))),
                    format!(
                        "{:?}",
                        disk.read_file_following(&hd.dir, name, 100)
                            .map(|(m, c)| (shape(&m), c))
                            .map_err(|e| err::<()>(Err(e)))
                    ),
                )
            })
            .unwrap();
        let b = desc
            .as_user(user, || {
                (
                    err(desc.list(&desc.open_dir(&ht.dir, name).map(|x| x.0).unwrap_or(ht.dir))),
                    err(desc.stat_following(&ht.dir, name).map(|m| shape(&m))),
                    format!(
                        "{:?}",
                        desc.read_file_following(&ht.dir, name, 100)
                            .map(|(m, c)| (shape(&m), c))
                            .map_err(|e| err::<()>(Err(e)))
                    ),
                )
            })
            .unwrap();
        assert_eq!(a, b, "as the user: {name:?}");
    };
    for name in [
        "private",
        "SOUL.md",
        "config.yaml",
        "gateway.json",
        "profiles",
        "nope",
    ] {
        as_user(name);
    }
}
