//! User and group names, resolved from `<root>/etc/passwd` and
//! `<root>/etc/group` (no NSS), so the static binary behaves the same in
//! every image and on a copy of a root.

use std::path::Path;

use crate::config::Principal;

/// The unprivileged user the trees are opened to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
    /// The name as configured, or the number as text; used in slot scripts.
    pub user_name: String,
}

/// Why the configured user or group could not be resolved (exit 100).
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("unable to read {file}: {err}")]
    Read {
        file: &'static str,
        #[source]
        err: std::io::Error,
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
}

const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

fn read(root: &Path, file: &'static str) -> Result<String, AccountError> {
    let p = root.join(file.trim_start_matches('/'));
    std::fs::read(&p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|err| AccountError::Read { file, err })
}

/// Find `name` in a colon-separated database; returns (field 2, field 3) parsed.
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

/// Resolve the configured user and group under `root`. A missing group
/// means the user's primary group (the same number for a numeric user).
pub fn resolve(
    root: &Path,
    user: &Principal,
    group: Option<&Principal>,
) -> Result<Account, AccountError> {
    resolve_with(&|file| read(root, file), user, group)
}

/// [`resolve`] with the files' text from `read` (`/etc/passwd`,
/// `/etc/group`): a tree description gives them without a disk.
pub fn resolve_with(
    read: &dyn Fn(&'static str) -> Result<String, AccountError>,
    user: &Principal,
    group: Option<&Principal>,
) -> Result<Account, AccountError> {
    let (uid, primary_gid, user_name) = match user {
        Principal::Id(n) => (*n, *n, n.to_string()),
        Principal::Name(name) => {
            let text = read(PASSWD)?;
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
            let text = read(GROUP)?;
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
    Ok(Account {
        uid,
        gid,
        user_name,
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
        let e = resolve(t.path(), &Principal::Name("broken".into()), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/passwd:3: malformed entry for \"broken\""
        );
    }
}
