//! The modules are layered by stage (docs/architecture.md): each
//! top-level module uses only the ones before it in [`STAGES`], and no file
//! imports its way back to itself through other files.
//!
//! An import is any `crate::a::b` path (use lines, inline paths, and
//! `crate::{a, b}` groups) or `super::a` path in a file's code; comments and
//! string literals are skipped, and a file is read up to its first
//! `#[cfg(test)]`, so unit tests at the end of a file add none. A file is a
//! module (`src/a/b.rs` and `src/a/b/mod.rs` are `a::b`); a module's use of
//! its own parent or child is no import between files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules in pipeline order. `crate` is `lib.rs`, which only
/// declares them.
const STAGES: &[&str] = &[
    "fs", "s6", "desired", "observe", "plan", "apply", "report", "tree", "cli", "crate",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/a/b.rs`, `src/a/b/mod.rs` -> `["a", "b"]`; `lib.rs`, `main.rs` -> `[]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The code of a file: up to its first `#[cfg(test)]`, with comments,
/// string and char literals blanked out.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap();
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'r' if matches!(b.get(i + 1), Some(b'#' | b'"'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                i += 2 + hashes;
                while i < b.len() && !b[i..].starts_with(&close) {
                    i += 1;
                }
                i += close.len();
                out.push_str("\"\"");
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            // A char literal ('"', '\'', 'x'), not a lifetime ('a).
            b'\'' if b.get(i + 2) == Some(&b'\'') && b.get(i + 1) != Some(&b'\\') => {
                i += 3;
                out.push_str("' '");
            }
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            }
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Every path after `prefix::` in `code`, as its segments; a
/// `prefix::{a, b::c}` group gives one path per item.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(prefix) {
        let start = from + at;
        from = start + prefix.len();
        if start > 0 && (is_ident(b[start - 1]) || b[start - 1] == b':') {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let item = item.trim();
                if !item.is_empty() && item != "self" {
                    out.push(segments(item));
                }
            }
        } else {
            out.push(segments(rest));
        }
    }
    out
}

/// The leading `a::b::c` of `s`.
fn segments(s: &str) -> Vec<String> {
    let mut segs = Vec::new();
    let mut rest = s;
    loop {
        let n = rest.bytes().take_while(|&c| is_ident(c)).count();
        if n == 0 {
            break;
        }
        segs.push(rest[..n].to_string());
        match rest[n..].strip_prefix("::") {
            Some(r) if !r.starts_with('{') => rest = r,
            _ => break,
        }
    }
    segs
}

/// The module graph at `depth` (1: top-level modules only): module -> the
/// modules it imports, each with a file that does.
fn graph(depth: usize) -> BTreeMap<String, BTreeMap<String, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let name = |m: &[String]| -> String {
        let m = &m[..m.len().min(depth)];
        if m.is_empty() {
            "crate".into()
        } else {
            m.join("::")
        }
    };
    let mods: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(&src, f)).collect();
    let names: BTreeSet<String> = mods.iter().map(|m| name(m)).collect();
    // The longest prefix of `path` that is a module.
    let resolve = |path: &[String]| -> Option<String> {
        (1..=path.len().min(depth))
            .rev()
            .map(|n| path[..n].join("::"))
            .find(|c| names.contains(c))
    };
    let mut edges: BTreeMap<String, BTreeMap<String, String>> =
        names.iter().map(|n| (n.clone(), BTreeMap::new())).collect();
    for f in &files {
        let m = module_of(&src, f);
        let from = name(&m);
        let text = std::fs::read_to_string(f).unwrap();
        let code = code_of(&text);
        let mut targets: Vec<Vec<String>> = paths_after(&code, "crate::");
        // `super::` is the parent of a file's module (`a` for `a/b.rs`).
        let parent = &m[..m.len().saturating_sub(1)];
        for p in paths_after(&code, "super::") {
            if p.first().is_some_and(|s| s == "super") {
                continue;
            }
            targets.push(parent.iter().cloned().chain(p).collect());
        }
        for t in targets {
            let Some(to) = resolve(&t) else { continue };
            let related = to == from
                || to.starts_with(&format!("{from}::"))
                || from.starts_with(&format!("{to}::"))
                || to == "crate"
                || from == "crate";
            if !related {
                let file = f.strip_prefix(&src).unwrap().display().to_string();
                edges.get_mut(&from).unwrap().entry(to).or_insert(file);
            }
        }
    }
    edges
}

/// The edges that close a cycle, found by a depth-first search.
fn cycles(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<String> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeMap<String, String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
        found: &mut Vec<String>,
    ) {
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for (to, file) in &edges[n] {
            match state.get(to.as_str()).copied().unwrap_or(0) {
                0 => visit(to, edges, state, path, found),
                1 => {
                    let at = path.iter().position(|p| p == to).unwrap();
                    found.push(format!(
                        "{} -> {to} (closed in {file})",
                        path[at..].join(" -> ")
                    ));
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
    }
    let mut state = BTreeMap::new();
    let mut found = Vec::new();
    for n in edges.keys() {
        if !state.contains_key(n.as_str()) {
            visit(n, edges, &mut state, &mut Vec::new(), &mut found);
        }
    }
    found
}

#[test]
fn each_stage_uses_only_the_stages_before_it() {
    let edges = graph(1);
    let mut wrong = Vec::new();
    for (from, tos) in &edges {
        let Some(rank) = STAGES.iter().position(|s| s == from) else {
            wrong.push(format!("{from}: a top-level module not in STAGES"));
            continue;
        };
        for (to, file) in tos {
            if STAGES
                .iter()
                .position(|s| s == to)
                .is_none_or(|r| r >= rank)
            {
                wrong.push(format!("{from} -> {to} (src/{file})"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the stage order:\n{}",
        wrong.join("\n")
    );
    // The nine stages and `crate`: a new top-level module is a design change.
    assert!(
        edges.len() <= STAGES.len(),
        "{} top-level modules",
        edges.len()
    );
}

#[test]
fn no_file_imports_its_way_back() {
    let edges = graph(usize::MAX);
    let found = cycles(&edges);
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_check_sees_imports_and_cycles() {
    let code = code_of(
        "use crate::a::b; // crate::c\nlet s = \"crate::d\"; let c = '\"'; crate::{e, f::g};\n#[cfg(test)] crate::h",
    );
    let got = paths_after(&code, "crate::");
    assert_eq!(got, [vec!["a", "b"], vec!["e"], vec!["f", "g"]]);
    let two: BTreeMap<String, BTreeMap<String, String>> = [
        (
            "x".to_string(),
            [("y".to_string(), "x.rs".to_string())].into(),
        ),
        (
            "y".to_string(),
            [("x".to_string(), "y.rs".to_string())].into(),
        ),
    ]
    .into();
    assert_eq!(cycles(&two).len(), 1);
}
