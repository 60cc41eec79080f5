//! The audited user and why they may do something to an entry. The
//! decision is the kernel's, made once in the fs layer
//! ([`crate::fs::access_as_owner_can`]) for the user with every group they
//! are in: owner bits when they own the entry, else group bits when they
//! are in its group, else the other bits (the classes do not add up). An
//! owner can always `chmod`, so whatever they own counts as theirs to
//! read and write. Root is allowed everything. ACLs are not read (see
//! docs/audit.md).

use std::fmt;

use serde::ser::{Serialize, SerializeStruct, Serializer};

pub use crate::fs::{Class, Want};
use crate::fs::{Ids, Kind, Meta};

/// The audited user: uid, primary gid and every group they are in (the
/// primary one included; sorted), as the fs layer judges them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Who {
    pub ids: Ids,
}

/// The decision, with the entry's owner and mode for the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Why {
    pub class: Class,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub kind: Kind,
}

impl Who {
    /// The user `uid` with primary group `gid`, in every group of `gids`.
    pub fn new(uid: u32, gid: u32, gids: Vec<u32>) -> Who {
        Who {
            ids: Ids {
                uid,
                gid,
                groups: gids,
            },
        }
    }

    pub fn uid(&self) -> u32 {
        self.ids.uid
    }

    /// Every group, sorted.
    pub fn gids(&self) -> &[u32] {
        &self.ids.groups
    }

    /// Whether the user may do `want` to the entry `m`, and why; `None`
    /// when the kernel refuses. The owner may whatever the bits say.
    pub fn may(&self, m: &Meta, want: Want) -> Option<Why> {
        crate::fs::access_as_owner_can(m, &self.ids, want).map(|class| Why {
            class,
            uid: m.uid,
            gid: m.gid,
            mode: m.mode,
            kind: m.kind,
        })
    }

    /// Whether the user can change what the entry `m` holds: a regular
    /// file's bytes, a directory's entries; a symlink's target never
    /// (only its directory can replace it).
    pub fn can_change(&self, m: &Meta) -> Option<Why> {
        match m.kind {
            Kind::Symlink => None,
            Kind::Dir => self.may(m, Want::Modify),
            _ => self.may(m, Want::Write),
        }
    }

    /// Whether the user can replace the existing entries of the directory
    /// `m` (rename or remove them): as [`Who::can_change`], except that a
    /// sticky directory lets only the owners of the entry or directory do it.
    pub fn can_replace_in(&self, m: &Meta, child_uid: u32) -> Option<Why> {
        let why = self.can_change(m)?;
        let sticky = m.mode & 0o1000 != 0;
        (!sticky
            || why.class == Class::Owner
            || why.class == Class::Root
            || child_uid == self.ids.uid)
            .then_some(why)
    }
}

impl Why {
    /// The reason in words; `group` names the entry's group when it is
    /// known (`group ops (2000)`), else its gid alone (`group 2000`).
    pub fn describe(&self, group: Option<&str>) -> String {
        let (u, g, m) = (self.uid, self.gid, self.mode);
        match self.class {
            Class::Root => "the user is root".to_string(),
            Class::Owner => format!("owned by the user ({u}:{g} {m:04o})"),
            Class::Group => {
                let named = group.map_or_else(|| g.to_string(), |n| format!("{n} ({g})"));
                format!("group {named}, which the user is in, may write it ({u}:{g} {m:04o})")
            }
            Class::Other => format!("everyone may write it ({u}:{g} {m:04o})"),
        }
    }
}

impl Serialize for Who {
    /// `{"uid": 10000, "gid": 10000, "gids": [2000, 10000]}`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Who", 3)?;
        st.serialize_field("uid", &self.ids.uid)?;
        st.serialize_field("gid", &self.ids.gid)?;
        st.serialize_field("gids", &self.ids.groups)?;
        st.end()
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: Kind, uid: u32, gid: u32, mode: u32) -> Meta {
        Meta {
            kind,
            dev: 1,
            ino: 1,
            uid,
            gid,
            mode,
            nlink: 1,
            size: 0,
        }
    }

    fn who() -> Who {
        Who::new(10000, 10000, vec![2000, 10000])
    }

    #[test]
    fn owner_then_group_then_other() {
        let w = who();
        // Owner: counted as writable whatever the bits (chmod).
        let m = meta(Kind::File, 10000, 0, 0o444);
        assert_eq!(w.may(&m, Want::Write).unwrap().class, Class::Owner);
        // Group bits decide for a group member, even when other allows more.
        let m = meta(Kind::File, 0, 2000, 0o646);
        assert_eq!(w.may(&m, Want::Write), None);
        let m = meta(Kind::File, 0, 2000, 0o664);
        assert_eq!(w.may(&m, Want::Write).unwrap().class, Class::Group);
        // Not in the group: other bits.
        let m = meta(Kind::File, 0, 3000, 0o664);
        assert_eq!(w.may(&m, Want::Write), None);
        let m = meta(Kind::File, 0, 3000, 0o666);
        assert_eq!(w.may(&m, Want::Write).unwrap().class, Class::Other);
    }

    #[test]
    fn directories_need_write_and_search() {
        let w = who();
        assert_eq!(w.can_change(&meta(Kind::Dir, 0, 2000, 0o760)), None);
        assert!(w.can_change(&meta(Kind::Dir, 0, 2000, 0o770)).is_some());
        assert_eq!(w.can_change(&meta(Kind::Symlink, 10000, 0, 0o777)), None);
    }

    #[test]
    fn sticky_directories_protect_other_owners_entries() {
        let w = who();
        let tmp = meta(Kind::Dir, 0, 0, 0o1777);
        assert_eq!(w.can_replace_in(&tmp, 0), None);
        assert!(w.can_replace_in(&tmp, 10000).is_some());
        assert!(w.can_change(&tmp).is_some());
    }

    #[test]
    fn messages_name_owner_group_and_mode() {
        let w = who();
        let m = meta(Kind::File, 0, 2000, 0o775);
        assert_eq!(
            w.may(&m, Want::Write).unwrap().to_string(),
            "group 2000, which the user is in, may write it (0:2000 0775)"
        );
        assert_eq!(
            w.may(&m, Want::Write).unwrap().describe(Some("ops")),
            "group ops (2000), which the user is in, may write it (0:2000 0775)"
        );
    }
}
