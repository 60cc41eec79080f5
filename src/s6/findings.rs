//! Findings every stage reports: an item skipped on purpose, a failure and
//! its typed cause. The observation, the plan and apply make them; the
//! report renders them.

use std::path::PathBuf;

use crate::fs;

/// An item deliberately left alone, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// A failure: observation errors in the plan, execution errors in apply.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Failure {
    pub op: String,
    pub path: PathBuf,
    pub error: Cause,
}

/// Why an operation failed, kept typed until a renderer prints it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// An error of the fd primitives: an OS error (printed as s6 tools
    /// print it), or a refusal (a symlink, an entry changed since it was
    /// observed, a hard link, another kind of file...).
    Fs(fs::Error),
    /// A configured base directory that could not be opened at apply
    /// time. Never taken for a permission only root has, and counted as
    /// the owner's doing, whatever the OS said (as before it was typed).
    Base(fs::BaseError),
    /// A step inside a slot's staging dir failed; the failure is reported on
    /// the slot (`mkdir in staging dir .gateway-x.tmp: ...`).
    InStaging {
        step: &'static str,
        staging: String,
        cause: Box<Cause>,
    },
    /// A slot was replaced but its old tree, now under the staging name,
    /// could not be removed (the next run removes it).
    OldTreeLeft { staging: String, cause: Box<Cause> },
    /// A tree to remove that a supervisor still holds (its `supervise/lock`
    /// is locked): removing it would leave s6-supervise writing into a
    /// removed directory, so it is left for a later run.
    Supervised,
    /// Met while acting with the user's effective ids: a volume or scandir
    /// that root could write may not be the user's.
    AsUser { uid: u32, cause: Box<Cause> },
    /// Anything else, already worded.
    Text(String),
}

impl Cause {
    /// Whether the OS refused a permission (EPERM, EACCES), wherever the
    /// step that met it was.
    pub fn permission_denied(&self) -> bool {
        match self {
            Cause::Fs(e) => e.permission_denied(),
            Cause::InStaging { cause, .. } | Cause::AsUser { cause, .. } => {
                cause.permission_denied()
            }
            _ => false,
        }
    }
}

impl Cause {
    /// Whether a supervisor holding the tree is all that stopped the step
    /// (whoever acted).
    pub fn supervised(&self) -> bool {
        match self {
            Cause::Supervised => true,
            Cause::AsUser { cause, .. } => cause.supervised(),
            _ => false,
        }
    }

    /// Whether the owner of the directory it happened in could have caused
    /// it alone, by what they put there or the modes they set: a refusal
    /// of a planted file, a permission, a kind, a full volume. Not a
    /// failing disk, a read-only mount or the process's resources (README
    /// "Exit codes").
    pub fn owner_can_cause(&self) -> bool {
        match self {
            Cause::Fs(e) => !e.system_fault(),
            // In compat the user can run a supervisor of their own on a dot
            // name of the scandir.
            Cause::Base(_) | Cause::Text(_) | Cause::Supervised => true,
            Cause::InStaging { cause, .. }
            | Cause::OldTreeLeft { cause, .. }
            | Cause::AsUser { cause, .. } => cause.owner_can_cause(),
        }
    }
}

impl From<fs::Error> for Cause {
    fn from(e: fs::Error) -> Cause {
        Cause::Fs(e)
    }
}

impl From<&fs::Error> for Cause {
    fn from(e: &fs::Error) -> Cause {
        Cause::Fs(e.clone())
    }
}

impl From<fs::BaseError> for Cause {
    fn from(e: fs::BaseError) -> Cause {
        Cause::Base(e)
    }
}

impl From<fs::Refusal> for Cause {
    fn from(r: fs::Refusal) -> Cause {
        Cause::Fs(r.into())
    }
}

impl From<String> for Cause {
    fn from(s: String) -> Cause {
        Cause::Text(s)
    }
}

impl From<&str> for Cause {
    fn from(s: &str) -> Cause {
        Cause::Text(s.to_string())
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Fs(e) => write!(f, "{e}"),
            Cause::Base(e) => write!(f, "{e}"),
            Cause::InStaging {
                step,
                staging,
                cause,
            } => write!(f, "{step} in staging dir {staging}: {cause}"),
            Cause::OldTreeLeft { staging, cause } => write!(f, "{staging}: {cause}"),
            Cause::AsUser { uid, cause } => write!(f, "{cause} (as uid {uid})"),
            Cause::Supervised => f.write_str(
                "a supervisor still holds its supervise/lock; left for a later run to remove",
            ),
            Cause::Text(s) => f.write_str(s),
        }
    }
}

/// An error met while acting for the user says so: a volume or scandir
/// that root could write may not be the user's (`Permission denied (as uid
/// 10000)`).
pub fn say_who_acted(e: &mut Failure, uid: u32) {
    if uid != 0 {
        let cause = std::mem::replace(&mut e.error, Cause::Text(String::new()));
        e.error = Cause::AsUser {
            uid,
            cause: Box::new(cause),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(error: Cause) -> Failure {
        Failure {
            op: "publish".into(),
            path: "/run/service/gateway-x".into(),
            error,
        }
    }

    #[test]
    fn a_staging_step_keeps_its_os_error_typed() {
        let os = fs::Os::Access.at("mkdirat");
        let mut f = failure(Cause::InStaging {
            step: "mkdir",
            staging: ".gateway-x.tmp".into(),
            cause: Box::new(os.clone().into()),
        });
        let Cause::InStaging { step, cause, .. } = &f.error else {
            panic!("not typed: {:?}", f.error);
        };
        assert_eq!((*step, &**cause), ("mkdir", &Cause::Fs(os)));
        say_who_acted(&mut f, 10000);
        assert_eq!(
            f.error.to_string(),
            "mkdir in staging dir .gateway-x.tmp: Permission denied (as uid 10000)"
        );
    }

    #[test]
    fn root_is_not_named_and_refusals_stay_refusals() {
        let mut f = failure(Cause::OldTreeLeft {
            staging: ".gateway-x.tmp".into(),
            cause: Box::new(fs::Refusal::NotAsObserved.into()),
        });
        say_who_acted(&mut f, 0);
        assert_eq!(
            f.error.to_string(),
            ".gateway-x.tmp: changed since it was observed; left alone"
        );
    }
}
