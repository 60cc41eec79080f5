//! The order of a plan's changes, which is the order apply runs them.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::Change;

/// The plan's order, which is the order apply runs it: by phase, then
/// condition (the volume after the slots), then path, then operation.
/// Paths are in [`Path`]'s order (component by component). A stable sort:
/// the same as sorting by the whole key at once, done cheaply for the
/// usual plan, whose changes are made in path order within each phase
/// and condition.
pub fn sort_changes(changes: &mut [Change]) {
    let key = |c: &Change| (c.phase, c.when);
    if !changes.iter().all(|c| is_normal(&c.path)) {
        changes.sort_by(|a, b| (key(a), &a.path, a.op.rank()).cmp(&(key(b), &b.path, b.op.rank())));
        return;
    }
    if !changes.is_sorted_by_key(key) {
        changes.sort_by_key(key);
    }
    let in_group =
        |a: &Change, b: &Change| cmp_normal(&a.path, &b.path).then(a.op.rank().cmp(&b.op.rank()));
    for group in changes.chunk_by_mut(|a, b| key(a) == key(b)) {
        if !group.is_sorted_by(|a, b| in_group(a, b).is_le()) {
            group.sort_by(in_group);
        }
    }
}

/// Whether `p` is absolute and written the way its components read back:
/// no empty, `.` or `..` component, no trailing `/`. Such paths compare as
/// [`Path`] does by [`cmp_normal`], without splitting them into components.
fn is_normal(p: &Path) -> bool {
    let b = p.as_os_str().as_bytes();
    let Some((b'/', rest)) = b.split_first() else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    // One pass: each component (between slashes, and the last one) is
    // neither empty nor `.` nor `..`.
    let odd = |len: usize, dots: usize| len == 0 || (len == dots && len <= 2);
    let (mut len, mut dots) = (0, 0);
    for &c in rest {
        if c == b'/' {
            if odd(len, dots) {
                return false;
            }
            (len, dots) = (0, 0);
        } else {
            len += 1;
            dots += usize::from(c == b'.');
        }
    }
    !odd(len, dots)
}

/// [`Path`]'s order of two [`is_normal`] paths: bytewise, with `/` below
/// every other byte (a component that is a prefix of another sorts first,
/// and so does a path that ends where another goes on).
fn cmp_normal(a: &Path, b: &Path) -> std::cmp::Ordering {
    let (a, b) = (a.as_os_str().as_bytes(), b.as_os_str().as_bytes());
    let at = a.iter().zip(b).position(|(x, y)| x != y);
    match at {
        None => a.len().cmp(&b.len()),
        Some(i) => {
            let rank = |c: u8| if c == b'/' { 0 } else { u16::from(c) + 1 };
            rank(a[i]).cmp(&rank(b[i]))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::desired::model::Phase;
    use crate::fs::Kind;
    use crate::plan::steps::When;
    use crate::plan::{Anchor, Op, Target};

    #[test]
    fn paths_sort_as_path_orders_them() {
        let names = [
            "/",
            "/a",
            "/a/b",
            "/a-b",
            "/a.b",
            "/a/b/c",
            "/ab",
            "/a b",
            "/run/service",
            "/run/service/gateway-a",
            "/run/service/gateway-a/down",
            "/run/service/gateway-a-b",
            "/run/service/gateway-a.tmp",
            "/run/service/.gateway-a.tmp",
            "/run/s6-rc",
            "/run/service/gateway-",
            "/opt/data/profiles/x/gateway.pid",
            "/opt/data",
            "/a/...",
            "/.a",
            "/a/.b",
            "/a/..b",
        ];
        for a in names {
            for b in names {
                let (pa, pb) = (Path::new(a), Path::new(b));
                assert!(is_normal(pa) && is_normal(pb));
                assert_eq!(cmp_normal(pa, pb), pa.cmp(pb), "{a} vs {b}");
            }
        }
        for odd in [
            "/a/", "/a//b", "/a/./b", "./a", "/a/.", "/a/..", "/../a", "a/b", "",
        ] {
            assert!(!is_normal(Path::new(odd)), "{odd}");
        }
    }

    #[test]
    fn sorting_changes_is_one_stable_sort_by_phase_condition_path_and_op() {
        let meta = crate::fs::Meta {
            kind: Kind::Dir,
            dev: 1,
            ino: 1,
            uid: 0,
            gid: 0,
            mode: 0o755,
            nlink: 1,
            size: 0,
        };
        let change = |i: u32, phase, when, path: &str, op| Change {
            phase,
            path: PathBuf::from(path),
            op,
            when,
            target: Target {
                anchor: Anchor::Scandir,
                rel: PathBuf::new(),
                expect: crate::fs::Meta {
                    ino: u64::from(i),
                    ..meta
                },
            },
            why: None,
        };
        let paths = [
            "/r/s/a",
            "/r/s/a/b",
            "/r/s/a-b",
            "/r/s",
            "/r/s/.a.tmp",
            "/r/s/a/b",
        ];
        let phases = [Phase::Profiles, Phase::Static, Phase::Scandir];
        let whens = [When::Always, When::AfterSlots];
        let ops = || [Op::Unlink, Op::Create { mode: 0o644 }, Op::Remove];
        let mut all = Vec::new();
        // Made in an order that is sorted in some groups and not in others,
        // with equal keys to show the sort is stable.
        for i in 0..90u32 {
            let k = i as usize;
            let op = ops()[(k * 7) % 3].clone();
            let path = paths[(k * 5 + k / 7) % paths.len()];
            all.push(change(
                i,
                phases[(k / 30) % 3],
                whens[(k / 3) % 2],
                path,
                op,
            ));
        }
        for take in [0, 1, 2, 12, 45, 90] {
            let mut fast = all[..take].to_vec();
            let mut want = fast.clone();
            want.sort_by(|a, b| {
                (a.phase, a.when, &a.path, a.op.rank()).cmp(&(
                    b.phase,
                    b.when,
                    &b.path,
                    b.op.rank(),
                ))
            });
            sort_changes(&mut fast);
            let ids = |v: &[Change]| v.iter().map(|c| c.target.expect.ino).collect::<Vec<_>>();
            assert_eq!(ids(&fast), ids(&want), "first {take}");
            // Already in order: left as it is.
            sort_changes(&mut fast);
            assert_eq!(ids(&fast), ids(&want));
        }
    }
}
