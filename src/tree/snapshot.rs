//! `reconcile snapshot`: describe what reconcile observes under a root.
//!
//! That is: the configured bases and the directories (and trusted
//! symlinks, such as s6-rc's `/run/s6-rc`) on the way to them; the whole
//! trees of the servicedirs and of the scandir; in the profiles home only
//! what reconcile reads there (the home, `<root>/` and its entries, each
//! profile's marker, state file, lifecycle file and stale runtime files),
//! never the rest of the volume; the image's definition trees
//! (`etc/s6-overlay/s6-rc.d`, `etc/services.d`, `etc/cont-init.d`...,
//! which `reconcile audit` judges; a file others cannot read there by its
//! digest only) and s6-overlay's live copies of the legacy services
//! (`run/s6/legacy-services`); `etc/passwd`, `etc/group` and the
//! configuration, which is described at its default container path
//! whatever file it was read from, so that `--tree` finds it there.

use std::path::{Component, Path};

use super::disk::{DescribeError, Describer};
use super::{Description, Node, Perms};
use crate::desired::config::Config;
use crate::desired::model::Phase;
use crate::fs::Kind;

/// The configuration file's container path in a description.
pub const CONFIG_PATH: &str = "etc/s6-reconcile/config.yaml";

/// The configuration as snapshot read it: its bytes and owner/mode, when it
/// was given outside the root (`--config FILE`).
pub struct ConfigFile {
    pub bytes: Vec<u8>,
    pub perms: Perms,
}

/// Describe what reconcile observes under `root` for `phases` with `cfg`;
/// with it, what to say about each tree described only up to the walk's
/// bound.
pub fn snapshot(
    root: &Path,
    cfg: &Config,
    given_config: Option<ConfigFile>,
    phases: &[Phase],
) -> Result<(Description, Vec<String>), Vec<DescribeError>> {
    let mut d = Describer::new(root);
    for f in ["etc/passwd", "etc/group"] {
        d.entry(f);
    }
    // What `reconcile audit` judges (docs/audit.md): owners and modes.
    d.private_by_digest = true;
    for rel in crate::s6::layout::DEFINITION_TREES {
        d.subtree(rel);
    }
    d.private_by_digest = false;
    d.subtree(crate::s6::layout::LEGACY_LIVE.trim_start_matches('/'));
    match given_config {
        Some(c) => d.insert(
            CONFIG_PATH,
            Node::File {
                perms: c.perms,
                content: super::disk::content_of(&c.bytes),
                links: None,
            },
        ),
        None => {
            d.entry(CONFIG_PATH);
        }
    }
    if phases.contains(&Phase::Static)
        && let Some(rel) = resolve(&mut d, &cfg.static_.servicedirs.0)
    {
        d.subtree(&rel);
    }
    if (phases.contains(&Phase::Scandir) || phases.contains(&Phase::Profiles))
        && let Some(rel) = resolve(&mut d, &cfg.scandir.path.0)
    {
        d.subtree(&rel);
    }
    if phases.contains(&Phase::Profiles) {
        // The volume is observed with the user's ids, its links followed as
        // the user: described the same way, or (the user unknown) described
        // without following a link.
        let user = crate::desired::accounts::resolve(root, &cfg.user, cfg.group.as_ref())
            .ok()
            .map(|a| (a.uid, a.gid));
        let describe = |d: &mut Describer| {
            if let Some(home) = resolve(d, &cfg.profiles.home.0) {
                volume(d, &home, cfg, user.is_some());
            }
        };
        match user {
            Some(ids) => d.as_user(ids, describe),
            None => describe(&mut d),
        }
        container_command(&mut d, cfg);
    }
    if d.errors.is_empty() {
        let cut = std::mem::take(&mut d.cut);
        Ok((d.finish(), cut))
    } else {
        Err(d.errors)
    }
}

/// What reconcile reads in the profiles home.
fn volume(d: &mut Describer, home: &str, cfg: &Config, follow_links: bool) {
    let p = &cfg.profiles;
    let join = |a: &str, b: &str| {
        if a.is_empty() {
            b.to_string()
        } else {
            format!("{a}/{b}")
        }
    };
    let follow = |d: &mut Describer, rel: &str| {
        if follow_links {
            follow(d, rel);
        } else {
            d.entry(rel);
        }
    };
    let profile_files = |d: &mut Describer, dir: &str| {
        follow(d, &join(dir, &p.marker.0));
        // Both are followed when they are symlinks (as the user, inside the root).
        follow(d, &join(dir, &p.state_file.0));
        follow(d, &join(dir, "state/gateway.lifecycle.json"));
        for f in &p.stale_runtime_files {
            d.entry(&join(dir, &f.0));
        }
    };
    profile_files(d, home);
    // The application's own files, which decide multiplexing; read as the
    // user, a symlink followed.
    for f in [
        crate::desired::application::GATEWAY_JSON,
        crate::desired::application::CONFIG_YAML,
    ] {
        follow(d, &join(home, f));
    }
    let proot = join(home, &p.root.0.to_string_lossy());
    let Some(md) = d.entry(&proot) else { return };
    if md.kind != Kind::Dir {
        return;
    }
    let names = match d.open_dir(&proot).and_then(|dir| dir.entries()) {
        Ok(names) => names
            .into_iter()
            .filter_map(|n| n.to_str().map(str::to_string))
            .collect::<Vec<_>>(),
        Err(_) => Vec::new(),
    };
    for name in names {
        let dir = join(&proot, &name);
        if d.entry(&dir).is_some_and(|m| m.kind == Kind::Dir) {
            profile_files(d, &dir);
        }
    }
    for decl in &p.declared {
        let dir = join(&proot, &decl.name);
        if crate::s6::names::validate_profile_name(&decl.name, &p.slot_prefix).is_ok()
            && d.entry(&dir).is_some_and(|m| m.kind == Kind::Dir)
        {
            profile_files(d, &dir);
        }
    }
}

/// Describe `rel` and, when it is a symlink, what it leads to, resolved
/// as the container resolves it: an absolute target from the root, `..`
/// never above it, links on the way followed, at most 40 (the observation
/// follows the marker and the application's files, with the user's ids).
fn follow(d: &mut Describer, rel: &str) {
    let Some(md) = d.entry(rel) else { return };
    if md.kind != Kind::Symlink {
        return;
    }
    let mut cur: Vec<String> = rel.split('/').map(str::to_string).collect();
    let mut todo: Vec<String> = Vec::new();
    for _ in 0..40 {
        // `cur` names a symlink: go on from its target.
        let Ok(target) = d.read_link(&cur.join("/")) else {
            return;
        };
        cur.pop();
        if target.is_absolute() {
            cur.clear();
        }
        push(&mut todo, &target);
        loop {
            let Some(c) = todo.pop() else { return };
            if c == ".." {
                cur.pop();
                continue;
            }
            cur.push(c);
            let Some(md) = d.entry(&cur.join("/")) else {
                return;
            };
            if md.kind == Kind::Symlink {
                break;
            }
            if todo.is_empty() || md.kind != Kind::Dir {
                return;
            }
        }
    }
}

/// The container's command line, as the profiles phase finds it: only the
/// process it picks (`proc/<pid>/cmdline`), never the rest of `/proc`.
fn container_command(d: &mut Describer, cfg: &Config) {
    let Ok(root) = crate::fs::Dir::open_path(d.root()) else {
        return;
    };
    let disk = crate::observe::Disk {
        root: &root,
        untrusted: crate::fs::Ids::new(0, 0),
    };
    let Some((pid, _, bytes)) =
        crate::observe::application::container_process(&disk, &cfg.container.wrapper)
    else {
        return;
    };
    let dir = |mode| Node::Dir {
        perms: Perms {
            uid: 0,
            gid: 0,
            mode,
        },
        mount: false,
    };
    // Of its status, only the line the choice reads (who it runs as).
    let status = root
        .open_beneath(Path::new(&format!("proc/{pid}")))
        .and_then(|p| p.read_file_meta(std::ffi::OsStr::new("status"), 1 << 16));
    let uid_line = match &status {
        Ok((_, Some(s))) => crate::observe::application::status_uid_line(s).map(<[u8]>::to_vec),
        _ => None,
    };
    d.insert("proc", dir(0o555));
    d.insert(&format!("proc/{pid}"), dir(0o555));
    if let Some(line) = uid_line {
        d.insert(
            &format!("proc/{pid}/status"),
            Node::File {
                perms: Perms {
                    uid: 0,
                    gid: 0,
                    mode: 0o444,
                },
                content: super::disk::content_of(&line),
                links: None,
            },
        );
    }
    d.insert(
        &format!("proc/{pid}/cmdline"),
        Node::File {
            perms: Perms {
                uid: 0,
                gid: 0,
                mode: 0o444,
            },
            content: super::disk::content_of(&bytes),
            links: None,
        },
    );
}

/// Follow a configured base path as reconcile does (symlinks on the way are
/// described and followed, never above the root), describing every entry
/// met; the base's path relative to the root when it is a directory.
fn resolve(d: &mut Describer, path: &Path) -> Option<String> {
    let mut todo: Vec<String> = Vec::new();
    push(&mut todo, path);
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            cur.pop();
            continue;
        }
        cur.push(name);
        let rel = cur.join("/");
        let md = d.entry(&rel)?;
        if md.kind == Kind::Dir {
            continue;
        }
        if md.kind != Kind::Symlink || todo.is_empty() {
            return None;
        }
        hops += 1;
        if hops > 40 {
            return None;
        }
        cur.pop();
        let target = d.read_link(&rel).ok()?;
        if target.is_absolute() {
            cur.clear();
        }
        push(&mut todo, &target);
    }
    (!cur.is_empty()).then(|| cur.join("/"))
}

fn push(stack: &mut Vec<String>, p: &Path) {
    let comps: Vec<String> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => n.to_str().map(str::to_string),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    stack.extend(comps.into_iter().rev());
}

/// Owner and mode of a configuration file read outside the root.
pub fn perms_of(md: &std::fs::Metadata) -> Perms {
    use std::os::unix::fs::MetadataExt;
    Perms {
        uid: md.uid(),
        gid: md.gid(),
        mode: md.mode() & 0o7777,
    }
}
