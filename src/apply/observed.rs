//! Keeping an observation true after apply: what apply did is written
//! into the observation, so a later phase plans from it without observing
//! the tree again.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::fs::Meta;
use crate::observe::{BaseObs, Observed, ScandirObs};
use crate::plan::{Anchor, Change, Op};

impl Observed {
    /// Record the changes apply made (`done`). Only the scandir is planned
    /// again within a run (by the profiles phase), so only it is updated.
    pub fn applied(&mut self, done: &[Change]) {
        let Some(BaseObs::Present(s)) = &mut self.scandir else {
            return;
        };
        let mut index = Index::default();
        for c in done.iter().filter(|c| c.target.anchor == Anchor::Scandir) {
            s.applied(c, &mut index);
        }
    }
}

/// The entries of the slot changed last, by path relative to it: built
/// once for all the changes in one slot (the plan's order keeps them
/// together), so that a slot with many changed entries costs no search
/// through its entries for each.
#[derive(Default)]
struct Index {
    /// The slot's place in `ScandirObs::entries`.
    slot: Option<usize>,
    by_rel: HashMap<PathBuf, usize>,
}

/// Bring an entry's attributes to what `op` made of them.
fn set(meta: &mut Meta, op: &Op) {
    if let Op::Perms { to, .. } = op {
        meta.uid = to.uid.unwrap_or(meta.uid);
        meta.gid = to.gid.unwrap_or(meta.gid);
        meta.mode = to.mode.unwrap_or(meta.mode);
    }
}

impl ScandirObs {
    fn applied(&mut self, c: &Change, index: &mut Index) {
        let rel = c.target.rel.as_path();
        let removed = matches!(c.op, Op::Remove | Op::Unlink);
        if rel.as_os_str().is_empty() {
            return set(&mut self.base.meta, &c.op);
        }
        if removed {
            self.staging.retain(|n| n.rel != rel);
        }
        let first = rel.iter().next().and_then(|f| f.to_str()).unwrap_or("");
        if first == crate::s6::layout::SVSCAN_DIR {
            let nodes = self.svscan.iter_mut().chain(self.svscan_files.iter_mut());
            nodes
                .filter(|n| n.rel == rel)
                .for_each(|n| set(&mut n.meta, &c.op));
            return;
        }
        let Ok(at) = self.position(first) else {
            return;
        };
        let e = &mut self.entries[at];
        if e.node.rel == rel {
            if removed {
                self.entries.remove(at);
                index.slot = None;
            } else {
                set(&mut e.node.meta, &c.op);
            }
            return;
        }
        if index.slot != Some(at) {
            let rels = e.below.rels().into_iter().enumerate();
            index.by_rel = rels.map(|(i, rel)| (rel, i)).collect();
            index.slot = Some(at);
        }
        let below = rel.strip_prefix(&e.node.rel).ok();
        let Some(&i) = below.and_then(|b| index.by_rel.get(b)) else {
            return;
        };
        if removed {
            e.below.remove(i);
            index.slot = None;
        } else {
            let mut m = e.below.meta(i);
            set(&mut m, &c.op);
            e.below.set_meta(i, m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::model::Perms;
    use crate::desired::model::Phase;
    use crate::fs::{Kind, Meta};
    use crate::observe::{Content, Node, SlotObs};
    use crate::plan::Target;
    use std::path::{Path, PathBuf};

    fn node(rel: &str, kind: Kind) -> Node {
        Node {
            path: Path::new("/run/service").join(rel),
            rel: rel.into(),
            meta: Meta {
                kind,
                dev: 1,
                ino: 2,
                uid: 0,
                gid: 0,
                mode: 0o755,
                nlink: 1,
                size: 0,
            },
        }
    }

    fn change(rel: &str, op: Op) -> Change {
        let n = node(rel, Kind::Dir);
        Change {
            phase: Phase::Scandir,
            path: n.path.clone(),
            op,
            when: crate::plan::steps::When::Always,
            target: Target {
                anchor: Anchor::Scandir,
                rel: PathBuf::from(rel),
                expect: n.meta,
            },
            why: None,
        }
    }

    #[test]
    fn chown_chmod_and_removal_are_recorded() {
        let mut s = ScandirObs {
            base: node("", Kind::Dir),
            svscan: None,
            svscan_files: Vec::new(),
            entries: Vec::new(),
            staging: vec![node(".gateway-x.tmp", Kind::Dir)],
            bad_names: Vec::new(),
            unlisted: false,
        };
        let mut slot = SlotObs {
            node: node("gateway-a", Kind::Dir),
            below: Default::default(),
            unobserved: Vec::new(),
        };
        for (rel, kind) in [
            ("log", Kind::Dir),
            ("log/run", Kind::File),
            ("run", Kind::File),
        ] {
            slot.below
                .insert(rel, node(rel, kind).meta, Content::NotRead);
        }
        s.entries.push(slot);
        let mut o = Observed {
            scandir: Some(BaseObs::Present(s)),
            ..Observed::default()
        };
        o.applied(&[
            change(
                "gateway-a/run",
                Op::Perms {
                    from: Perms {
                        uid: Some(0),
                        gid: Some(0),
                        mode: None,
                    },
                    to: Perms {
                        uid: Some(7),
                        gid: Some(8),
                        mode: None,
                    },
                },
            ),
            change(
                "gateway-a",
                Op::Perms {
                    from: Perms {
                        mode: Some(0o755),
                        ..Perms::default()
                    },
                    to: Perms {
                        mode: Some(0o700),
                        ..Perms::default()
                    },
                },
            ),
            change("gateway-a/log", Op::Remove),
            change(".gateway-x.tmp", Op::Remove),
        ]);
        let Some(BaseObs::Present(s)) = &o.scandir else {
            panic!()
        };
        let a = s.entry("gateway-a").unwrap();
        assert_eq!(a.node.meta.mode, 0o700);
        assert_eq!(a.below.rels(), [Path::new("run")]);
        assert_eq!((a.below.meta(0).uid, a.below.meta(0).gid), (7, 8));
        assert!(s.staging.is_empty());
    }
}
