//! Opening the configured base directories beneath the root: the only
//! place where symlinks are resolved, and only through directories the
//! unprivileged user cannot write.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use super::dir::Dir;
use super::meta::{Kind, Meta};

/// A configured base directory (servicedirs, scandir, profiles home), opened.
#[derive(Debug)]
pub struct Base {
    pub dir: Dir,
    pub meta: Meta,
    /// Where it really is, as a container path (differs from the configured
    /// path when a trusted parent is a symlink).
    pub resolved: PathBuf,
}

/// Why a base directory could not be opened.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum BaseError {
    #[error("not present")]
    Missing,
    #[error("is a symlink; refusing to follow it")]
    Symlink,
    #[error("is a {0}, not a directory")]
    NotADir(&'static str),
    #[error(
        "path crosses symlink {at} in a directory writable by uid {uid} or gid {gid}; refusing to follow it"
    )]
    UntrustedSymlink { at: PathBuf, uid: u32, gid: u32 },
    #[error("too many levels of symlinks")]
    Loop,
    #[error("resolves to {0}, which is / or a system directory; refusing it")]
    System(PathBuf),
    #[error("{0}")]
    Fs(#[from] super::Error),
}

/// Open the configured base directory `path` (absolute container path)
/// beneath `root`. Symlinks among its parents are resolved as if `root`
/// were `/`, but only where the directory holding the symlink (and the
/// symlink) cannot be changed by `untrusted` ([`controlled_by`]): s6-rc's live
/// directory `/run/s6-rc` is such a root-owned symlink. The last component
/// must be a real directory.
pub fn resolve_base(root: &Dir, path: &Path, untrusted: &Ids) -> Result<Base, BaseError> {
    let mut todo: Vec<OsString> = Vec::new();
    push_components(&mut todo, path);
    let mut cur = root.try_clone()?;
    let mut cur_path = PathBuf::from("/");
    let mut hops = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            // Only from symlink targets: go back up, never above the root.
            cur_path.pop();
            let rel = cur_path
                .strip_prefix("/")
                .unwrap_or(&cur_path)
                .to_path_buf();
            cur = root.open_beneath(&rel)?;
            continue;
        }
        let meta = match cur.stat(&name) {
            Ok(m) => m,
            Err(e) if super::Os::NotFound.is(&e) => return Err(BaseError::Missing),
            Err(e) => return Err(e.into()),
        };
        let last = todo.is_empty();
        match meta.kind {
            Kind::Dir => {
                let next = cur.open_dir(&name)?;
                cur = next;
                cur_path.push(&name);
                if last {
                    // A root-owned symlink among the parents may lead a base
                    // (`/srv/data -> /`) onto what it may never be.
                    if !is_system_dir(path) && is_system_dir(&cur_path) {
                        return Err(BaseError::System(cur_path));
                    }
                    let meta = cur.meta()?;
                    return Ok(Base {
                        dir: cur,
                        meta,
                        resolved: cur_path,
                    });
                }
            }
            Kind::Symlink if last => return Err(BaseError::Symlink),
            Kind::Symlink => {
                let holder = cur.meta()?;
                if controlled_by(&holder, untrusted) || meta.uid != holder.uid {
                    let mut at = cur_path.clone();
                    at.push(&name);
                    return Err(BaseError::UntrustedSymlink {
                        at,
                        uid: untrusted.uid,
                        // The group that gives the user the directory, if any.
                        gid: if untrusted.in_group(holder.gid) {
                            holder.gid
                        } else {
                            untrusted.gid
                        },
                    });
                }
                hops += 1;
                if hops > 40 {
                    return Err(BaseError::Loop);
                }
                let target = cur.read_link(&name)?;
                let target = Path::new(&target);
                if target.is_absolute() {
                    cur = root.try_clone()?;
                    cur_path = PathBuf::from("/");
                }
                push_components(&mut todo, target);
            }
            Kind::File | Kind::Fifo | Kind::Socket | Kind::Other => {
                return Err(BaseError::NotADir(meta.kind.describe()));
            }
        }
    }
    // The path was "/" itself.
    let meta = cur.meta()?;
    Ok(Base {
        dir: cur,
        meta,
        resolved: cur_path,
    })
}

/// Push a path's components on a stack so that the first component pops first.
fn push_components(stack: &mut Vec<OsString>, p: &Path) {
    let mut comps: Vec<OsString> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => comps.push(n.to_os_string()),
            Component::ParentDir => comps.push("..".into()),
            _ => {}
        }
    }
    stack.extend(comps.into_iter().rev());
}

/// The unprivileged user a base, a symlink or a lock is judged against:
/// their uid, primary gid, and the other groups they are in (from
/// `<root>/etc/group`: the caller reads them, this module does not).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Ids {
    /// The user with no supplementary group.
    pub fn new(uid: u32, gid: u32) -> Ids {
        Ids {
            uid,
            gid,
            groups: Vec::new(),
        }
    }

    /// Whether `gid` is the user's primary group or one they are in.
    pub fn in_group(&self, gid: u32) -> bool {
        gid == self.gid || self.groups.contains(&gid)
    }
}

impl From<(u32, u32)> for Ids {
    fn from((uid, gid): (u32, u32)) -> Ids {
        Ids::new(uid, gid)
    }
}

/// What a user wants to do to an entry, as the kernel checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    Read,
    Write,
    /// Search a directory (pass through it).
    Search,
    /// Change a directory's entries: create, rename, remove (write and
    /// search).
    Modify,
}

impl Want {
    fn bits(self) -> u32 {
        match self {
            Want::Read => 0o4,
            Want::Write => 0o2,
            Want::Search => 0o1,
            Want::Modify => 0o3,
        }
    }
}

/// Which class of an entry's mode decides for a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// The user is root: allowed everything (ACLs and capabilities aside).
    Root,
    Owner,
    Group,
    Other,
}

impl Class {
    /// Whether this class's bits of `mode` allow `want` (root: always).
    pub fn allows(self, mode: u32, want: Want) -> bool {
        let shift = match self {
            Class::Root => return true,
            Class::Owner => 6,
            Class::Group => 3,
            Class::Other => 0,
        };
        (mode >> shift) & want.bits() == want.bits()
    }
}

impl Ids {
    /// The class of an entry's mode the kernel reads for this user: the
    /// owner's when they own it, else the group's when they are in its
    /// group (primary or supplementary), else the others'; the classes do
    /// not add up.
    pub fn class_of(&self, meta: &Meta) -> Class {
        if self.uid == 0 {
            Class::Root
        } else if meta.uid == self.uid {
            Class::Owner
        } else if self.in_group(meta.gid) {
            Class::Group
        } else {
            Class::Other
        }
    }
}

/// Whether the user may do `want` to an entry with `meta` as the kernel
/// decides it now ([`Ids::class_of`]), and which class decided; `None`
/// when refused.
pub fn access(meta: &Meta, user: &Ids, want: Want) -> Option<Class> {
    let class = user.class_of(meta);
    class.allows(meta.mode, want).then_some(class)
}

/// As [`access`], except that the owner always may: an owner can `chmod`
/// its entry whatever its bits say, so what they own is theirs to read
/// and write.
pub fn access_as_owner_can(meta: &Meta, user: &Ids, want: Want) -> Option<Class> {
    match user.class_of(meta) {
        Class::Owner => Some(Class::Owner),
        _ => access(meta, user, want),
    }
}

/// Whether the user controls a directory with `meta`: can write in it now
/// or can make itself able to. The owner always can (an owner may `chmod`
/// its directory back whatever its bits say); else a group-writable
/// directory whose group is any of the user's (primary or supplementary),
/// or write for others. Wider than [`access`] on purpose: each class that
/// lets the user write counts, not only the one the kernel reads (trust
/// errs toward the user). What decides trust (a symlink among a base's
/// parents, the lock's directory). Root is never "the user" (gid 0 is
/// not counted either: a root-group directory is the system's).
pub fn controlled_by(meta: &Meta, user: &Ids) -> bool {
    (meta.uid == user.uid && user.uid != 0)
        || (meta.gid != 0 && user.in_group(meta.gid) && Class::Group.allows(meta.mode, Want::Write))
        || Class::Other.allows(meta.mode, Want::Write)
}

/// The directories a base must not be (docs/security.md, "Mistakes and hostile input"): handing one of them to
/// the user hands them the system. `/lib*` covers lib32, lib64, libx32.
pub const SYSTEM_DIRS: &[&str] = &[
    "etc", "usr", "bin", "sbin", "lib*", "boot", "dev", "proc", "sys", "run", "var", "opt", "home",
    "root", "tmp",
];

/// Whether `path` (absolute, no `..`) is `/` or one of [`SYSTEM_DIRS`].
pub fn is_system_dir(path: &Path) -> bool {
    let normal: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    match normal.as_slice() {
        [] => true,
        [one] => {
            let one = one.to_string_lossy();
            SYSTEM_DIRS.iter().any(|d| match d.strip_suffix('*') {
                Some(stem) => one.starts_with(stem),
                None => one == *d,
            })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn dir_meta(uid: u32, gid: u32, mode: u32) -> Meta {
        Meta {
            kind: crate::fs::Kind::Dir,
            dev: 1,
            ino: 1,
            uid,
            gid,
            mode,
            nlink: 2,
            size: 0,
        }
    }

    /// Whether the user may create or append entries in the directory.
    fn modify(meta: &Meta, user: &Ids) -> bool {
        access(meta, user, Want::Modify).is_some()
    }

    /// uid 10000, primary group 10000, also in 2000 and 3000.
    fn user() -> Ids {
        Ids {
            uid: 10000,
            gid: 10000,
            groups: vec![2000, 3000],
        }
    }

    #[test]
    fn control_the_owner_whatever_its_bits() {
        // An owner may chmod its directory back: write bit off still counts.
        assert!(controlled_by(&dir_meta(10000, 0, 0o555), &user()));
        assert!(controlled_by(&dir_meta(10000, 0, 0o000), &user()));
        assert!(!controlled_by(&dir_meta(0, 0, 0o755), &user()));
        // Root "owning" a root directory is not the user.
        assert!(!controlled_by(&dir_meta(0, 0, 0o755), &Ids::new(0, 0)));
    }

    #[test]
    fn control_a_writable_primary_group() {
        assert!(controlled_by(&dir_meta(0, 10000, 0o775), &user()));
        assert!(!controlled_by(&dir_meta(0, 10000, 0o755), &user()));
        assert!(!controlled_by(&dir_meta(0, 20, 0o775), &user()));
    }

    #[test]
    fn control_a_writable_supplementary_group() {
        assert!(controlled_by(&dir_meta(0, 2000, 0o775), &user()));
        assert!(controlled_by(&dir_meta(0, 3000, 0o2770), &user()));
        assert!(!controlled_by(&dir_meta(0, 2000, 0o755), &user()));
        // Without the group list, the same directory is not the user's.
        assert!(!controlled_by(
            &dir_meta(0, 2000, 0o775),
            &Ids::new(10000, 10000)
        ));
    }

    #[test]
    fn control_write_for_others() {
        assert!(controlled_by(&dir_meta(0, 0, 0o757), &user()));
        assert!(controlled_by(&dir_meta(0, 0, 0o1777), &user()));
        assert!(!controlled_by(&dir_meta(0, 0, 0o755), &user()));
    }

    #[test]
    fn access_reads_the_owner_bits_alone_for_the_owner() {
        // Even when the group or others could write.
        assert!(!modify(&dir_meta(10000, 10000, 0o577), &user()));
        assert!(!modify(&dir_meta(10000, 2000, 0o577), &user()));
        assert!(modify(&dir_meta(10000, 0, 0o700), &user()));
        // Write without search is no use in a directory.
        assert!(!modify(&dir_meta(10000, 0, 0o600), &user()));
    }

    #[test]
    fn access_then_the_group_bits_for_any_of_the_users_groups() {
        // Primary.
        assert!(!modify(&dir_meta(0, 10000, 0o757), &user()));
        assert!(modify(&dir_meta(0, 10000, 0o770), &user()));
        // Supplementary: the group's bits decide, not the others'.
        assert!(modify(&dir_meta(0, 2000, 0o770), &user()));
        assert!(!modify(&dir_meta(0, 3000, 0o757), &user()));
        // Not in the group: the others' bits.
        assert!(modify(&dir_meta(0, 2000, 0o757), &Ids::new(10000, 10000)));
    }

    #[test]
    fn access_then_the_other_bits() {
        assert!(modify(&dir_meta(0, 0, 0o703), &user()));
        assert!(!modify(&dir_meta(0, 0, 0o775), &user()));
        assert!(modify(&dir_meta(0, 0, 0o700), &Ids::new(0, 0)));
    }

    #[test]
    fn access_names_the_class_that_decided() {
        let u = user();
        let w = |m: &Meta| access(m, &u, Want::Write);
        assert_eq!(w(&dir_meta(0, 2000, 0o664)), Some(Class::Group));
        // In the group: its bits decide, even when others may do more.
        assert_eq!(w(&dir_meta(0, 2000, 0o646)), None);
        assert_eq!(w(&dir_meta(0, 4000, 0o664)), None);
        assert_eq!(w(&dir_meta(0, 4000, 0o666)), Some(Class::Other));
        assert_eq!(
            access(&dir_meta(10000, 0, 0o000), &Ids::new(0, 0), Want::Read),
            Some(Class::Root)
        );
    }

    #[test]
    fn as_owner_can_the_owner_may_whatever_the_bits() {
        let u = user();
        let m = dir_meta(10000, 0, 0o444);
        assert_eq!(access(&m, &u, Want::Write), None);
        assert_eq!(access_as_owner_can(&m, &u, Want::Write), Some(Class::Owner));
        // Otherwise as the kernel decides.
        let m = dir_meta(0, 2000, 0o646);
        assert_eq!(access_as_owner_can(&m, &u, Want::Write), None);
    }

    fn tmp() -> (tempfile::TempDir, Dir) {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open_path(t.path()).unwrap();
        (t, d)
    }

    #[test]
    fn a_base_led_onto_a_system_directory_is_refused() {
        let (t, root) = tmp();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::create_dir_all(t.path().join("data")).unwrap();
        symlink("/", t.path().join("srv")).unwrap();
        let untrusted = Ids::new(u32::MAX - 1, u32::MAX - 1);
        let e = resolve_base(&root, Path::new("/srv/etc"), &untrusted).unwrap_err();
        assert_eq!(
            e.to_string(),
            "resolves to /etc, which is / or a system directory; refusing it"
        );
        let b = resolve_base(&root, Path::new("/srv/data"), &untrusted).unwrap();
        assert_eq!(b.resolved, Path::new("/data"));
    }

    #[test]
    fn resolve_base_follows_trusted_symlinks_only() {
        let (t, d) = tmp();
        std::fs::create_dir_all(t.path().join("run/s6-rc:init:x/servicedirs")).unwrap();
        symlink("s6-rc:init:x", t.path().join("run/s6-rc")).unwrap();
        let b = resolve_base(
            &d,
            Path::new("/run/s6-rc/servicedirs"),
            &Ids::new(10000, 10000),
        )
        .unwrap();
        assert_eq!(b.resolved, Path::new("/run/s6-rc:init:x/servicedirs"));
        // The last component must not be a symlink.
        symlink("s6-rc:init:x/servicedirs", t.path().join("run/sd")).unwrap();
        assert!(matches!(
            resolve_base(&d, Path::new("/run/sd"), &Ids::new(10000, 10000)),
            Err(BaseError::Symlink)
        ));
        // A world-writable holder makes the symlink untrusted.
        std::fs::set_permissions(
            t.path().join("run"),
            std::fs::Permissions::from_mode(0o1777),
        )
        .unwrap();
        let e = resolve_base(
            &d,
            Path::new("/run/s6-rc/servicedirs"),
            &Ids::new(10000, 10000),
        )
        .unwrap_err();
        assert!(matches!(e, BaseError::UntrustedSymlink { .. }), "{e}");
        assert!(matches!(
            resolve_base(&d, Path::new("/nope"), &Ids::new(10000, 10000)),
            Err(BaseError::Missing)
        ));
    }
}
