//! Writing a tree description canonically: the header, then one flow
//! mapping per entry and per line, in path order, every owner and mode
//! spelled out. The same description always gives the same bytes, so two
//! snapshots compare with `diff`.

use std::fmt::Write as _;

use base64::Engine as _;

use super::{Content, Description, FORMAT, Node, Perms, VERSION};

/// The canonical text of `d` (entries are written in the order given;
/// [`Description::sort`] puts them in canonical order).
pub fn dump(d: &Description) -> String {
    let mut s = format!("format: {FORMAT}\nversion: {VERSION}\nentries:\n");
    if d.entries.is_empty() {
        s.truncate(s.len() - 1);
        s.push_str(" []\n");
    }
    for e in &d.entries {
        let _ = write!(
            s,
            "- {{path: {}, type: {}",
            quote(&e.path),
            e.node.kind_name()
        );
        match &e.node {
            Node::Dir { perms, mount } => {
                write_perms(&mut s, perms);
                if *mount {
                    s.push_str(", mount: true");
                }
            }
            Node::File {
                perms,
                content,
                links,
            } => {
                write_perms(&mut s, perms);
                if let Some(n) = links {
                    let _ = write!(s, ", links: {n}");
                }
                match content {
                    Content::Bytes(b) => match std::str::from_utf8(b) {
                        Ok(text) => {
                            let _ = write!(s, ", content: {}", quote(text));
                        }
                        Err(_) => {
                            let b64 = base64::engine::general_purpose::STANDARD.encode(b);
                            let _ = write!(s, ", base64: \"{b64}\"");
                        }
                    },
                    Content::Digest { size, sha256 } => {
                        let _ = write!(s, ", size: {size}, sha256: \"{sha256}\"");
                    }
                }
            }
            Node::Fifo { perms }
            | Node::Socket { perms }
            | Node::CharDevice { perms }
            | Node::BlockDevice { perms } => write_perms(&mut s, perms),
            Node::Symlink { uid, gid, target } => {
                let _ = write!(s, ", uid: {uid}, gid: {gid}, target: {}", quote(target));
            }
            Node::Hardlink { target } => {
                let _ = write!(s, ", target: {}", quote(target));
            }
            Node::Runtime => {}
        }
        s.push_str("}\n");
    }
    s
}

fn write_perms(s: &mut String, p: &Perms) {
    let _ = write!(
        s,
        ", mode: \"{:04o}\", uid: {}, gid: {}",
        p.mode, p.uid, p.gid
    );
}

/// A YAML double-quoted scalar. Everything that is not printable (controls,
/// YAML's extra line breaks, the BOM) is escaped, so one entry stays one line.
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            '\r' => q.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                let _ = write!(q, "\\u{:04x}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}
