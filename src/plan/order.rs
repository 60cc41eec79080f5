//! The order of a plan's changes, which is the order apply runs them.

use super::Change;

/// The plan's order, which is the order apply runs it: by phase, then
/// condition (the volume after the slots), then path (in [`std::path::Path`]'s order,
/// component by component: a directory before what it holds), then
/// operation. A stable sort.
pub fn sort_changes(changes: &mut [Change]) {
    changes.sort_by(|a, b| {
        (a.phase, a.when, &a.path, a.op.rank()).cmp(&(b.phase, b.when, &b.path, b.op.rank()))
    });
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
