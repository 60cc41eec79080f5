//! User and group names, resolved from `<root>/etc/passwd` and
//! `<root>/etc/group` (no NSS), so the static binary behaves the same in
//! every image and on a copy of a root.

use std::path::Path;

use crate::desired::config::{MAX_ID, Principal};
use crate::fs::input::{self, Follow};

/// The unprivileged user the trees are opened to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
    /// The name as configured, or the number as text; used in slot scripts.
    pub user_name: String,
    /// The other groups the user is in (`<root>/etc/group`'s member
    /// lists, by the user's name): a directory of any of them is theirs.
    pub groups: Vec<u32>,
}

impl Account {
    /// The ids a directory is judged against (the user's control of it).
    pub fn ids(&self) -> crate::fs::Ids {
        crate::fs::Ids {
            uid: self.uid,
            gid: self.gid,
            groups: self.groups.clone(),
        }
    }
}

/// Why the configured user or group could not be resolved (exit 100).
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("unable to read {file}: {reason}")]
    Read { file: &'static str, reason: String },
    #[error("unknown user {name:?}: not found in {file}")]
    UnknownUser { name: String, file: &'static str },
    #[error("unknown group {name:?}: not found in {file}")]
    UnknownGroup { name: String, file: &'static str },
    #[error("{file}:{line}: malformed entry for {name:?}")]
    Malformed {
        file: &'static str,
        line: usize,
        name: String,
    },
    #[error(
        "{file}:{line}: the id of {name:?} is {MAX_ID_PLUS_ONE}, which chown(2) reads as \
         \"no change\"; expected 0..{MAX_ID}"
    )]
    NoChangeId {
        file: &'static str,
        line: usize,
        name: String,
    },
}

impl AccountError {
    /// The configuration key whose value led here: `user` or `group`.
    pub fn key(&self) -> &'static str {
        let file = match self {
            AccountError::Read { file, .. }
            | AccountError::UnknownUser { file, .. }
            | AccountError::UnknownGroup { file, .. }
            | AccountError::Malformed { file, .. }
            | AccountError::NoChangeId { file, .. } => *file,
        };
        if file == PASSWD { "user" } else { "group" }
    }
}

const MAX_ID_PLUS_ONE: u64 = MAX_ID as u64 + 1;

pub const PASSWD: &str = "/etc/passwd";
pub const GROUP: &str = "/etc/group";

/// The largest passwd or group file read.
pub const DB_LIMIT: u64 = 16 << 20;

/// Read `<root>/etc/passwd` or `<root>/etc/group`: a regular file itself
/// (a symlink is not followed: an absolute target would leave `--root`),
/// at most [`DB_LIMIT`] bytes.
fn read(root: &Path, file: &'static str) -> Result<Vec<u8>, AccountError> {
    let p = root.join(file.trim_start_matches('/'));
    input::read_regular(&p, DB_LIMIT, Follow::No).map_err(|e| AccountError::Read {
        file,
        reason: e.to_string(),
    })
}

/// Find `name` in a colon-separated database; returns `fields` numbers
/// from the third field on.
fn lookup(
    text: &str,
    name: &str,
    file: &'static str,
    fields: usize,
) -> Result<Option<Vec<u32>>, AccountError> {
    for (i, line) in text.lines().enumerate() {
        let parts: Vec<&str> = line.split(':').collect();
        if parts.first() != Some(&name) {
            continue;
        }
        let nums: Option<Vec<u32>> = parts
            .get(2..2 + fields)
            .map(|f| {
                f.iter()
                    .map(|s| s.parse().ok())
                    .collect::<Option<Vec<u32>>>()
            })
            .unwrap_or(None);
        return match nums {
            Some(n) if n.iter().any(|id| *id > MAX_ID) => Err(AccountError::NoChangeId {
                file,
                line: i + 1,
                name: name.into(),
            }),
            Some(n) => Ok(Some(n)),
            None => Err(AccountError::Malformed {
                file,
                line: i + 1,
                name: name.into(),
            }),
        };
    }
    Ok(None)
}

/// The most supplementary groups counted (the kernel's `NGROUPS_MAX`).
pub const MAX_GROUPS: usize = 65536;

/// The groups whose member list (the fourth field of a group line) names
/// `user`, in file order, without repeats, at most [`MAX_GROUPS`]. A line
/// that is not `name:password:gid:members` with a gid in range is skipped:
/// it makes no one a member.
pub fn user_groups(group_db: &[u8], user: &str) -> Vec<u32> {
    let text = String::from_utf8_lossy(group_db);
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for line in text.lines() {
        let mut f = line.split(':');
        let (Some(_), Some(_), Some(gid), Some(members), None) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let Ok(gid) = gid.parse::<u32>() else {
            continue;
        };
        if gid > MAX_ID || !members.split(',').any(|m| m == user) || !seen.insert(gid) {
            continue;
        }
        out.push(gid);
        if out.len() == MAX_GROUPS {
            break;
        }
    }
    out
}

/// Resolve the configured user and group under `root`, reading passwd and
/// group only when a name needs them (a user's name: their other groups;
/// a missing group file: none). A missing group means the user's
/// primary group (the same number for a numeric user).
pub fn resolve(
    root: &Path,
    user: &Principal,
    group: Option<&Principal>,
) -> Result<Account, AccountError> {
    let passwd = match user {
        Principal::Name(_) => read(root, PASSWD)?,
        Principal::Id(_) => Vec::new(),
    };
    let groups = match (user, group) {
        (_, Some(Principal::Name(_))) => read(root, GROUP)?,
        (Principal::Name(_), _)
            if std::fs::symlink_metadata(root.join(GROUP.trim_start_matches('/')))
                .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) =>
        {
            Vec::new()
        }
        (Principal::Name(_), _) => read(root, GROUP)?,
        _ => Vec::new(),
    };
    resolve_from(&passwd, &groups, user, group)
}

/// Resolve from the texts of passwd and group (a pure function: the tree
/// descriptions hand their own texts here).
pub fn resolve_from(
    passwd: &[u8],
    group_db: &[u8],
    user: &Principal,
    group: Option<&Principal>,
) -> Result<Account, AccountError> {
    let (uid, primary_gid, user_name) = match user {
        Principal::Id(n) => (*n, *n, n.to_string()),
        Principal::Name(name) => {
            let text = String::from_utf8_lossy(passwd);
            match lookup(&text, name, PASSWD, 2)? {
                Some(v) => (v[0], v[1], name.clone()),
                None => {
                    return Err(AccountError::UnknownUser {
                        name: name.clone(),
                        file: PASSWD,
                    });
                }
            }
        }
    };
    let gid = match group {
        None => primary_gid,
        Some(Principal::Id(n)) => *n,
        Some(Principal::Name(name)) => {
            let text = String::from_utf8_lossy(group_db);
            match lookup(&text, name, GROUP, 1)? {
                Some(v) => v[0],
                None => {
                    return Err(AccountError::UnknownGroup {
                        name: name.clone(),
                        file: GROUP,
                    });
                }
            }
        }
    };
    let groups = match user {
        Principal::Name(name) => user_groups(group_db, name),
        Principal::Id(_) => Vec::new(),
    };
    Ok(Account {
        uid,
        gid,
        user_name,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(
            t.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nhermes:x:10000:10001::/opt/data:/bin/sh\nbroken:x:zz\n",
        )
        .unwrap();
        std::fs::write(t.path().join("etc/group"), "root:x:0:\nops:x:2000:hermes\n").unwrap();
        t
    }

    #[test]
    fn the_users_other_groups_come_from_the_member_lists() {
        let t = root();
        let a = resolve(t.path(), &Principal::Name("hermes".into()), None).unwrap();
        assert_eq!(a.groups, vec![2000]);
        assert_eq!(a.ids().groups, vec![2000]);
        // A number names no member: no other group.
        let a = resolve(t.path(), &Principal::Id(10000), None).unwrap();
        assert!(a.groups.is_empty());
        // No group file: no other group, not an error.
        std::fs::remove_file(t.path().join("etc/group")).unwrap();
        let a = resolve(t.path(), &Principal::Name("hermes".into()), None).unwrap();
        assert!(a.groups.is_empty());
    }

    #[test]
    fn user_groups_skips_malformed_lines_and_repeats() {
        let db = b"ok:x:2000:a,hermes,b\n\
                   short:x:2001\n\
                   extra:x:2002:hermes:more\n\
                   nonum:x:zz:hermes\n\
                   nochange:x:4294967295:hermes\n\
                   prefix:x:2003:hermes2,xhermes\n\
                   again:x:2000:hermes\n\
                   last:x:2004:hermes\n\
                   \xff\xfe:x:2005:hermes";
        assert_eq!(user_groups(db, "hermes"), vec![2000, 2004, 2005]);
        assert!(user_groups(b"", "hermes").is_empty());
    }

    #[test]
    fn user_groups_is_bounded() {
        let mut db = String::new();
        for g in 0..MAX_GROUPS + 10 {
            db.push_str(&format!("g{g}:x:{g}:hermes\n"));
        }
        assert_eq!(user_groups(db.as_bytes(), "hermes").len(), MAX_GROUPS);
    }

    #[test]
    fn names_and_primary_group() {
        let t = root();
        let a = resolve(t.path(), &Principal::Name("hermes".into()), None).unwrap();
        assert_eq!((a.uid, a.gid), (10000, 10001));
        let a = resolve(
            t.path(),
            &Principal::Name("hermes".into()),
            Some(&Principal::Name("ops".into())),
        )
        .unwrap();
        assert_eq!((a.uid, a.gid), (10000, 2000));
        let a = resolve(t.path(), &Principal::Id(42), None).unwrap();
        assert_eq!((a.uid, a.gid), (42, 42));
    }

    #[test]
    fn unknown_names_name_the_file() {
        let t = root();
        let e = resolve(t.path(), &Principal::Name("nobody2".into()), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown user \"nobody2\": not found in /etc/passwd"
        );
        let e = resolve(
            t.path(),
            &Principal::Id(1),
            Some(&Principal::Name("wheel".into())),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown group \"wheel\": not found in /etc/group"
        );
        std::fs::write(t.path().join("etc/group"), "root:x:0:\nbig:x:4294967295:\n").unwrap();
        let e = resolve(
            t.path(),
            &Principal::Id(1),
            Some(&Principal::Name("big".into())),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/group:2: the id of \"big\" is 4294967295, which chown(2) reads as \
             \"no change\"; expected 0..4294967294"
        );
        let e = resolve(t.path(), &Principal::Name("broken".into()), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/passwd:3: malformed entry for \"broken\""
        );
    }
}
