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
    Read {
        file: &'static str,
        reason: input::InputError,
    },
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
    input::read_regular(&p, DB_LIMIT, Follow::No)
        .map_err(|reason| AccountError::Read { file, reason })
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
        // The user's other groups, when there is a group file.
        (Principal::Name(_), _) => match read(root, GROUP) {
            Err(AccountError::Read { reason, .. }) if reason.is_not_found() => Vec::new(),
            r => r?,
        },
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
        // Supplementary groups from the group file's member lists (the
        // primary group is `gid`); malformed lines make no one a member.
        Principal::Name(name) => user_groups(group_db, Some(name), gid)
            .gids
            .into_iter()
            .filter(|&g| g != gid)
            .collect(),
        Principal::Id(_) => Vec::new(),
    };
    Ok(Account {
        uid,
        gid,
        user_name,
        groups,
    })
}

/// The most groups one user is counted in: Linux's `NGROUPS_MAX`, past
/// which `initgroups(3)` would not give them either.
pub const MAX_GROUPS: usize = 65536;

/// The most malformed group lines said one by one; the rest are counted.
const MAX_LINE_WARNINGS: usize = 10;

/// Every group a user is in: the primary group, then each group whose
/// member list names them, from the group file's text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Groups {
    /// Sorted, deduplicated, at most [`MAX_GROUPS`].
    pub gids: Vec<u32>,
    /// Lines skipped (malformed) and groups not counted, one message each.
    pub warnings: Vec<String>,
}

/// The groups of `user` (its name, when known) whose primary group is
/// `primary`, as `initgroups(3)` would give them from `group_db` (the
/// text of `/etc/group`). A malformed line is skipped with a warning
/// naming it; it never hides the lines after it.
pub fn user_groups(group_db: &[u8], user: Option<&str>, primary: u32) -> Groups {
    let text = String::from_utf8_lossy(group_db);
    let mut gids = std::collections::BTreeSet::from([primary]);
    let (mut warnings, mut bad) = (Vec::new(), 0usize);
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((gid, members)) = group_line(line) else {
            bad += 1;
            if bad <= MAX_LINE_WARNINGS {
                warnings.push(format!(
                    "{GROUP}:{}: malformed line skipped (expected name:password:gid:members)",
                    i + 1
                ));
            }
            continue;
        };
        if user.is_some_and(|u| members.split(',').any(|m| m == u)) {
            if gids.len() == MAX_GROUPS && !gids.contains(&gid) {
                warnings.push(format!(
                    "{GROUP}:{}: {} is in more than {MAX_GROUPS} groups; the others are not counted",
                    i + 1,
                    user.unwrap_or_default()
                ));
                break;
            }
            gids.insert(gid);
        }
    }
    if bad > MAX_LINE_WARNINGS {
        warnings.push(format!(
            "{GROUP}: {} more malformed lines skipped",
            bad - MAX_LINE_WARNINGS
        ));
    }
    Groups {
        gids: gids.into_iter().collect(),
        warnings,
    }
}

/// The names of the groups `gids` in `group_db` (the text of
/// `/etc/group`), the first well-formed line of each; a gid with no line
/// has no name. Only what [`user_groups`] would accept is read.
pub fn group_names(group_db: &[u8], gids: &[u32]) -> std::collections::BTreeMap<u32, String> {
    let text = String::from_utf8_lossy(group_db);
    let mut names = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let (Some((gid, _)), Some((name, _))) = (group_line(line), line.split_once(':'))
            && gids.contains(&gid)
        {
            names.entry(gid).or_insert_with(|| name.to_string());
        }
    }
    names
}

/// The gid and member list of one group line; `None` when malformed.
fn group_line(line: &str) -> Option<(u32, &str)> {
    let parts: Vec<&str> = line.split(':').collect();
    match parts.as_slice() {
        [name, _, gid, members] if !name.is_empty() => {
            let gid: u32 = gid.parse().ok()?;
            (gid <= MAX_ID).then_some((gid, *members))
        }
        _ => None,
    }
}

/// The name and primary gid of the passwd entry with `uid` (the first).
pub fn user_by_uid(passwd: &[u8], uid: u32) -> Option<(String, u32)> {
    let text = String::from_utf8_lossy(passwd);
    text.lines().find_map(|line| {
        let parts: Vec<&str> = line.split(':').collect();
        let (name, id, gid) = (parts.first()?, parts.get(2)?, parts.get(3)?);
        (id.parse::<u32>().ok()? == uid).then(|| Some((name.to_string(), gid.parse().ok()?)))?
    })
}

/// Read `<root>/etc/passwd` or `<root>/etc/group` as [`resolve`] does.
pub fn read_db(root: &Path, file: &'static str) -> Result<Vec<u8>, AccountError> {
    read(root, file)
}

#[cfg(test)]
mod tests {
    #[test]
    fn group_names_are_the_first_well_formed_line_of_each_gid() {
        let db = b"#ops:x:2000:\nbad line\nops:x:2000:hermes\nops2:x:2000:\nstaff:x:5000:\n";
        let names = super::group_names(db, &[2000, 10000]);
        assert_eq!(names.get(&2000).map(String::as_str), Some("ops"));
        assert_eq!(names.get(&10000), None);
        assert_eq!(names.len(), 1);
    }

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

    #[test]
    fn user_groups_counts_members_and_skips_malformed_lines() {
        let db = b"root:x:0:\nops:x:2000:alice,hermes\nbroken line\nweb:x:zz:hermes\n\
                   # comment\nlogs:x:3000:hermes\nother:x:4000:alice\n";
        let g = user_groups(db, Some("hermes"), 10000);
        assert_eq!(g.gids, vec![2000, 3000, 10000]);
        assert_eq!(
            g.warnings,
            vec![
                "/etc/group:3: malformed line skipped (expected name:password:gid:members)",
                "/etc/group:4: malformed line skipped (expected name:password:gid:members)",
            ]
        );
        assert_eq!(user_groups(db, None, 7).gids, vec![7]);
    }

    #[test]
    fn user_groups_is_bounded() {
        let mut db = String::new();
        for i in 0..(MAX_GROUPS as u32 + 5) {
            db.push_str(&format!("g{i}:x:{}:hermes\n", i + 1));
        }
        for _ in 0..15 {
            db.push_str("::\n");
        }
        let g = user_groups(db.as_bytes(), Some("hermes"), 0);
        assert_eq!(g.gids.len(), MAX_GROUPS);
        assert!(
            g.warnings[0]
                .ends_with("hermes is in more than 65536 groups; the others are not counted"),
            "{:?}",
            g.warnings
        );
    }

    #[test]
    fn user_by_uid_finds_the_first_entry() {
        let passwd = b"root:x:0:0::/:/bin/sh\nhermes:x:10000:10001::/:/bin/sh\nbad:x:1\n";
        assert_eq!(user_by_uid(passwd, 10000), Some(("hermes".into(), 10001)));
        assert_eq!(user_by_uid(passwd, 1), None);
        assert_eq!(user_by_uid(passwd, 42), None);
    }
}
