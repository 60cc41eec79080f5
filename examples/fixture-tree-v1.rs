//! Convert fixture trees written in the test harness's earlier list format
//! (a bare YAML list of `{path, type, mode, uid, gid, ...}`) into tree
//! descriptions, `format: s6-reconcile-tree`, `version: 1`.
//!
//! ```sh
//! cargo run --example fixture-tree-v1 -- fixtures/*/tree.yaml fixtures/*/after.yaml
//! ```
//!
//! Files rewritten in place. Re-runnable: a file that already is a
//! description is left alone, so it can be run over fixtures added later.
//! Leading `#` comment lines are kept. s6-supervise's runtime files become
//! type-only entries, as `reconcile snapshot` describes them.

use std::path::Path;

use s6_reconcile::tree::{self, Content, Description, Entry, Node, Perms};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OldEntry {
    path: String,
    #[serde(rename = "type")]
    kind: String,
    mode: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
    content: Option<String>,
    target: Option<String>,
    links: Option<u64>,
    sha256: Option<String>,
    size: Option<u64>,
}

fn convert(old: OldEntry) -> Result<Entry, String> {
    let default_mode = if old.kind == "dir" { 0o755 } else { 0o644 };
    let mode = match &old.mode {
        Some(m) => u32::from_str_radix(m, 8).map_err(|e| format!("{}: mode {m}: {e}", old.path))?,
        None => default_mode,
    };
    let perms = Perms {
        uid: old.uid.unwrap_or(0),
        gid: old.gid.unwrap_or(0),
        mode,
    };
    let node = match old.kind.as_str() {
        "dir" => Node::Dir {
            perms,
            mount: false,
        },
        "file" if tree::is_runtime_path(&old.path) => Node::Runtime,
        "file" => Node::File {
            perms,
            content: match (old.content, old.sha256, old.size) {
                (Some(text), None, None) => Content::Bytes(text.into_bytes()),
                (None, Some(sha256), Some(size)) => Content::Digest { size, sha256 },
                (None, None, None) => Content::Bytes(Vec::new()),
                _ => return Err(format!("{}: content and digest both given", old.path)),
            },
            links: old.links,
        },
        "fifo" => Node::Fifo { perms },
        "socket" => Node::Socket { perms },
        "chardev" => Node::CharDevice { perms },
        "blockdev" => Node::BlockDevice { perms },
        "symlink" => Node::Symlink {
            uid: perms.uid,
            gid: perms.gid,
            target: old
                .target
                .ok_or(format!("{}: symlink without target", old.path))?,
        },
        "hardlink" => Node::Hardlink {
            target: old
                .target
                .ok_or(format!("{}: hardlink without target", old.path))?,
        },
        other => return Err(format!("{}: unknown type {other}", old.path)),
    };
    Ok(Entry {
        path: old.path,
        node,
    })
}

fn convert_file(path: &Path) -> Result<bool, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let body_start = text
        .lines()
        .position(|l| !l.starts_with('#'))
        .unwrap_or(text.lines().count());
    let comments: String = text
        .lines()
        .take(body_start)
        .map(|l| {
            l.replace(
                "(tests/common/tree.rs:",
                "(as `reconcile snapshot` writes it:",
            ) + "\n"
        })
        .collect();
    let body: String = text
        .lines()
        .skip(body_start)
        .map(|l| format!("{l}\n"))
        .collect();
    if body.trim_start().starts_with("format:") {
        return Ok(false);
    }
    let old: Vec<OldEntry> = serde_yaml::from_str(&body).map_err(|e| e.to_string())?;
    let mut d = Description {
        entries: old.into_iter().map(convert).collect::<Result<_, _>>()?,
    };
    d.sort();
    let new = comments + &tree::dump(&d);
    // What is written must read back as the same tree.
    let back = tree::parse(&new, path).map_err(|e| e.to_string())?;
    if back != d {
        return Err("the converted description does not read back the same".into());
    }
    std::fs::write(path, new).map_err(|e| e.to_string())?;
    Ok(true)
}

fn main() {
    let mut failed = false;
    for arg in std::env::args_os().skip(1) {
        let path = Path::new(&arg);
        match convert_file(path) {
            Ok(true) => println!("converted {}", path.display()),
            Ok(false) => println!("already a description: {}", path.display()),
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                failed = true;
            }
        }
    }
    std::process::exit(i32::from(failed));
}
