//! Trees for tests, through the tool's own tree descriptions
//! (`s6_reconcile::tree`, documented in docs/tree-format.md): this module
//! only adds what tests need around them (a temp root, a bare list of
//! entries accepted as a description, owner and mode of one path). There is
//! no second parser or dumper here.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[allow(unused_imports)]
pub use s6_reconcile::tree::dump::quote;
use s6_reconcile::tree::{self as lib, FORMAT, VERSION};
#[allow(unused_imports)]
pub use s6_reconcile::tree::{Content, Description, Entry, Node, Perms};

/// `yaml` as a description: a whole one, or a bare list of entries (tests
/// write those inline), given the header.
pub fn parse(yaml: &str) -> Result<Description, String> {
    let text = if yaml.trim_start().starts_with("format:") || yaml.contains("\nformat:") {
        yaml.to_string()
    } else {
        format!("format: {FORMAT}\nversion: {VERSION}\nentries:\n{yaml}")
    };
    lib::parse(&text, Path::new("(test tree)")).map_err(|e| e.to_string())
}

/// Read a description file as `reconcile --tree` and `materialize` do.
pub fn read(path: &Path) -> Result<Description, String> {
    lib::read_description(path).map_err(|e| e.to_string())
}

/// Build `entries` under `root` (an existing, empty directory), as
/// `reconcile materialize` does.
pub fn materialise(root: &Path, entries: &[Entry]) -> Result<(), String> {
    let d = Description {
        entries: entries.to_vec(),
    };
    lib::materialize::materialize(&d, root).map_err(|e| e.to_string())
}

/// Parse `yaml` (see [`parse`]) and build it under `root`.
pub fn materialise_yaml(root: &Path, yaml: &str) -> Result<(), String> {
    materialise(root, &parse(yaml)?.entries)
}

/// The entries below `root` (not `root` itself), canonically.
pub fn scan(root: &Path) -> Result<Vec<Entry>, String> {
    let (d, errors) = lib::disk::describe_all(root);
    match errors.first() {
        Some(e) => Err(e.to_string()),
        None => Ok(d.entries),
    }
}

/// The canonical text of `entries`.
pub fn render(entries: &[Entry]) -> String {
    lib::dump(&Description {
        entries: entries.to_vec(),
    })
}

/// The canonical description of the tree under `root`.
pub fn dump(root: &Path) -> String {
    match scan(root) {
        Ok(entries) => render(&entries),
        Err(e) => panic!("describe {}: {e}", root.display()),
    }
}

/// The text of a regular file entry described with its content.
pub fn text(e: &Entry) -> Option<&str> {
    match &e.node {
        Node::File {
            content: Content::Bytes(b),
            ..
        } => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

/// Owner and mode of one path of a real tree, without following a symlink.
pub fn owner_mode(root: &Path, path: &str) -> (u32, u32, u32) {
    super::run::owner_mode(&root.join(path))
}

/// A fresh root for a tree: a temp dir made searchable (mktemp gives 0700),
/// so that the unprivileged user can reach what the tool opens to it.
pub fn temp_root(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod temp root");
    dir
}

/// Whether this process can build trees with arbitrary owners.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
