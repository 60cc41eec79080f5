//! Observing a directory whose content s6 decides (a slot's `supervise/`
//! and `log/`, [`layout::probe_names`]) without listing it: on tmpfs its
//! size says how many entries it holds ([`Source::entries_by_size`]); when
//! that is no more than the entries s6 puts there, those are looked up by
//! name, as what they should be. A probe that does not account for every
//! entry, or finds one of another kind, is undone and the directory is
//! listed and walked as any other: what is observed is the same either
//! way, one `getdents64` fewer when it is as s6 left it.

use super::walk::{Frame, Names, Walk, known_only, node_of};
use super::{Node, Scanner, Source};
use crate::fs::Kind;
use crate::s6::findings::Skipped;
use crate::s6::layout;

/// A directory observed by looking up the names s6 puts there instead of
/// listing it ([`layout::probe_names`]), because its size says it holds
/// no more entries than those. When the names found do not account for
/// every entry, what the probes observed is undone and it is listed.
pub(super) struct Probe {
    /// Entries its size says it holds.
    count: u64,
    /// Entries the probes found as what they were looked up as.
    found: u64,
    /// A probe found something else (a directory where a file was looked
    /// up...): listed instead, as anything unusual is.
    odd: bool,
    /// Where the output and the errors stood before the probes.
    out_len: usize,
    errors_len: usize,
}

impl Probe {
    pub(super) fn new(count: u64, out_len: usize, errors_len: usize) -> Probe {
        Probe {
            count,
            found: 0,
            odd: false,
            out_len,
            errors_len,
        }
    }

    /// An entry looked up as `wanted` was found, as `kind`.
    pub(super) fn saw(&mut self, wanted: Option<Kind>, kind: Kind) {
        match wanted == Some(kind) {
            true => self.found += 1,
            false => self.odd = true,
        }
    }

    /// Whether the probes account for every entry.
    pub(super) fn complete(&self) -> bool {
        !self.odd && self.found == self.count
    }
}

impl<S: Source> Scanner<'_, S> {
    /// The names to observe in the directory `node` (opened as `sub`, an
    /// entry of `parent`): its listing or, where s6 decides what it holds
    /// and its size says it holds no more than that, the names s6 puts
    /// there, to be looked up one by one (with how many entries it holds):
    /// the listing is saved. In the reserve of the path budget, only the
    /// entries s6 knows.
    pub(super) fn names_of(
        &mut self,
        parent: &S::Dir,
        sub: &S::Dir,
        node: &Node,
        how: &Walk<'_>,
        bad: &mut Vec<Skipped>,
        reserve: bool,
    ) -> (Names, Option<u64>) {
        let probe = node.rel_below(how.servicedir).and_then(layout::probe_names);
        if let Some(probe) = probe.filter(|_| !reserve)
            && let Some(count) = self.src.entries_by_size(parent, &node.meta)
            && count <= probe.len() as u64
        {
            let names: Vec<_> = probe
                .iter()
                .map(|(n, k)| (n.to_string(), Some(*k)))
                .collect();
            return (names.into_iter(), Some(count));
        }
        let names = self.list_names(sub, node, bad).into_iter();
        match reserve {
            true => (known_only(node, names, how), None),
            false => (names, None),
        }
    }

    /// The probes of `f` did not find every entry its size counts: undo
    /// what they observed and list the directory instead. (The path budget
    /// keeps what they spent: a few bytes, on a directory that changed
    /// while being observed.)
    pub(super) fn unprobe(
        &mut self,
        f: &mut Frame<S::Dir>,
        p: Probe,
        top: &Node,
        out: &mut Vec<Node>,
        bad: &mut Vec<Skipped>,
    ) {
        out.truncate(p.out_len);
        self.errors.truncate(p.errors_len);
        if let Some(d) = f.dir.as_ref() {
            f.pending = self.list_names(d, node_of(f.at, top, out), bad).into_iter();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::path::Path;

    use crate::fs::Dir;
    use crate::observe::source::OnList;
    use crate::observe::{BaseObs, Disk, Scanner};

    /// On tmpfs a slot's `supervise/` holding only what s6 puts there is
    /// observed by name, without a listing; one holding anything else is
    /// listed, and either way every entry is observed, in order.
    #[test]
    fn supervise_dirs_are_probed_or_listed_and_wholly_observed() {
        let t = tempfile::tempdir_in("/dev/shm").expect("/dev/shm (tmpfs) for this test");
        let root = Dir::open_path(t.path()).unwrap();
        let scandir = t.path().join("run/service");
        let cases: [(&str, &[&str]); 6] = [
            ("gateway-a", &["control", "event/"]),
            ("gateway-b", &["control"]),
            ("gateway-c", &["a", "control"]),
            ("gateway-d", &["control", "event/", "zz"]),
            ("gateway-e", &["event/", "event/x"]),
            ("gateway-f", &["control"]),
        ];
        for (slot, entries) in cases {
            let sup = scandir.join(slot).join("log/supervise");
            std::fs::create_dir_all(&sup).unwrap();
            for e in entries {
                match e.strip_suffix('/') {
                    Some(d) => std::fs::create_dir(sup.join(d)).unwrap(),
                    None if *e == "control" => {
                        let mode = nix::sys::stat::Mode::from_bits_truncate(0o660);
                        nix::unistd::mkfifo(&sup.join(e), mode).unwrap()
                    }
                    None => std::fs::write(sup.join(e), b"").unwrap(),
                }
            }
        }
        // log/run a directory, not the script: looked up as a file, found
        // otherwise, so log/ is listed and walked as it is.
        std::fs::create_dir_all(scandir.join("gateway-f/log/run")).unwrap();
        std::fs::write(scandir.join("gateway-f/log/run/x"), b"").unwrap();
        let lists = Cell::new(0);
        let disk = OnList {
            disk: Disk {
                root: &root,
                untrusted: (10000, 10000),
            },
            hook: |_: &Dir| {
                lists.set(lists.get() + 1);
                Ok(())
            },
        };
        let mut sc = Scanner::new(&disk);
        let BaseObs::Present(s) = sc.scandir(
            Path::new("/run/service"),
            "gateway-",
            Some("gateway-"),
            true,
        ) else {
            panic!("scandir present")
        };
        // The scandir and each slot (7); then only c's and d's supervise/
        // (c: an entry besides control; d: more than s6 puts there), e's
        // non-empty supervise/event/, f's log/ and its run/ (5).
        assert_eq!(lists.get(), 12);
        for (slot, entries) in cases {
            let got: Vec<String> = s.entries[slot]
                .nodes
                .iter()
                .map(|n| n.rel.strip_prefix(slot).unwrap().display().to_string())
                .collect();
            let mut want = vec!["log".to_string()];
            if slot == "gateway-f" {
                want.extend(["log/run".into(), "log/run/x".into()]);
            }
            want.push("log/supervise".into());
            want.extend(
                entries
                    .iter()
                    .map(|e| format!("log/supervise/{}", e.trim_end_matches('/'))),
            );
            assert_eq!(got, want, "{slot}");
        }
        assert!(sc.errors.is_empty(), "{:?}", sc.errors);
    }
}
