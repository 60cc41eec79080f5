//! What a run reports: the plan's findings (items skipped, slots, failures)
//! and, after apply, what was done. The renderers turn it into text or JSON.

use std::collections::HashSet;
use std::io;
use std::path::PathBuf;

use crate::fs::{self, Refusal};
use crate::plan::{Change, Plan};
use crate::state::{Action, PriorExit};
use crate::steps::Effect;

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
    /// An OS error (its errno), printed as s6 tools print it.
    Os(i32),
    /// A refusal of the fd primitives: a symlink, an entry changed since it
    /// was observed, a hard link, another kind of file...
    Refused(Refusal),
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
    /// Met while acting with the user's effective ids: a volume or scandir
    /// that root could write may not be the user's.
    AsUser { uid: u32, cause: Box<Cause> },
    /// Anything else, already worded.
    Text(String),
}

/// A [`Cause`] carried inside an `io::Error` from a step that already knows
/// more than the OS error (apply's staging steps), unwrapped again by
/// `Cause::from(&io::Error)`.
#[derive(Debug)]
pub struct Carried(pub Cause);

impl std::fmt::Display for Carried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Carried {}

impl From<Carried> for io::Error {
    fn from(c: Carried) -> io::Error {
        io::Error::other(c)
    }
}

impl Cause {
    /// Whether the OS refused a permission (EPERM, EACCES), wherever the
    /// step that met it was.
    pub fn permission_denied(&self) -> bool {
        match self {
            Cause::Os(code) => {
                io::Error::from_raw_os_error(*code).kind() == io::ErrorKind::PermissionDenied
            }
            Cause::InStaging { cause, .. } | Cause::AsUser { cause, .. } => {
                cause.permission_denied()
            }
            _ => false,
        }
    }
}

impl From<&io::Error> for Cause {
    fn from(e: &io::Error) -> Cause {
        if let Some(Carried(c)) = e.get_ref().and_then(|i| i.downcast_ref::<Carried>()) {
            return c.clone();
        }
        match (e.raw_os_error(), fs::refusal(e)) {
            (Some(code), _) => Cause::Os(code),
            (None, Some(r)) => Cause::Refused(r.clone()),
            (None, None) => Cause::Text(e.to_string()),
        }
    }
}

impl From<io::Error> for Cause {
    fn from(e: io::Error) -> Cause {
        Cause::from(&e)
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
            Cause::Os(code) => f.write_str(&fs::os_error(&io::Error::from_raw_os_error(*code))),
            Cause::Refused(r) => write!(f, "{r}"),
            Cause::InStaging {
                step,
                staging,
                cause,
            } => write!(f, "{step} in staging dir {staging}: {cause}"),
            Cause::OldTreeLeft { staging, cause } => write!(f, "{staging}: {cause}"),
            Cause::AsUser { uid, cause } => write!(f, "{cause} (as uid {uid})"),
            Cause::Text(s) => f.write_str(s),
        }
    }
}

/// An error met while acting for the user says so: a volume or scandir
/// that root could write may not be the user's (`Permission denied (as uid
/// 10000)`).
pub fn say_who_acted(e: &mut Failure, uid: u32) {
    if uid != 0 {
        let cause = std::mem::replace(&mut e.error, Cause::Os(0));
        e.error = Cause::AsUser {
            uid,
            cause: Box::new(cause),
        };
    }
}

/// What happens to one profile's slot (SPEC 6.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotReport {
    pub profile: String,
    /// `None` when the name is not valid (no slot name is built from it).
    pub slot: Option<String>,
    pub prior_state: Option<String>,
    pub action: Action,
    pub reason: Option<String>,
    pub prior_exit: PriorExit,
    /// The default slot under multiplexing: the named profiles whose state
    /// asked to autostart, folded into it (README, "Multiplexed profiles").
    pub folded: Vec<String>,
}

/// A run effect, planned or done: a rescan request (`write`: `a` or
/// `an`) or a boot log append (`lines`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectReport {
    pub op: &'static str,
    pub path: PathBuf,
    pub write: Option<&'static str>,
    pub lines: Option<usize>,
}

impl EffectReport {
    /// The effect as the plan has it.
    pub fn planned(e: &Effect) -> EffectReport {
        let (write, lines) = match e {
            Effect::Rescan { planned, .. } => (Some(planned.command()), None),
            Effect::BootLog { lines, .. } => (None, Some(*lines)),
        };
        EffectReport {
            op: e.verb(),
            path: e.path().to_path_buf(),
            write,
            lines,
        }
    }
}

/// What a run has to say: the plan (or, in apply, what was done).
#[derive(Debug, Default)]
pub struct Report {
    pub changes: Vec<Change>,
    /// Run effects planned (plan, check) or done (apply); never drift.
    pub effects: Vec<EffectReport>,
    pub slots: Vec<SlotReport>,
    /// Extra stdout lines (the profiles phase's `reconcile: profile=...`).
    pub lines: Vec<String>,
    pub skipped: Vec<Skipped>,
    pub warnings: Vec<String>,
    pub errors: Vec<Failure>,
}

impl Report {
    /// Add what apply did with one plan: the changes whose condition did
    /// not hold first (as skipped), then the plan's findings.
    pub fn add_applied(&mut self, plan: Plan, applied: crate::apply::Applied) {
        self.skipped.extend(applied.skipped);
        self.add_plan(plan, applied.done, applied.errors);
    }

    /// Add one plan's findings (moved, not copied: a slot report per
    /// profile), with the changes done (or planned) and the failures of
    /// executing it.
    pub fn add_plan(&mut self, plan: Plan, changes: Vec<Change>, errors: Vec<Failure>) {
        // Moved whole when the report has none yet (the usual case): no
        // copy of every change and slot.
        append(&mut self.changes, changes);
        append(&mut self.slots, plan.slots);
        // The parts of an apply plan from one observation: what they both
        // report (a name that cannot be used) is said once.
        let mut seen: HashSet<Skipped> = self.skipped.iter().cloned().collect();
        for s in plan.skipped {
            if !seen.contains(&s) {
                seen.insert(s.clone());
                self.skipped.push(s);
            }
        }
        append(&mut self.lines, plan.lines);
        // Repeats are dropped with sets, not `Vec::contains`: there can be a
        // warning or an error per profile, and that would be quadratic.
        let mut seen: HashSet<String> = self.warnings.iter().cloned().collect();
        for w in plan.warnings {
            if !seen.contains(&w) {
                seen.insert(w.clone());
                self.warnings.push(w);
            }
        }
        // Phases observed separately may find the same unusable base.
        let mut seen: HashSet<Failure> = self.errors.iter().cloned().collect();
        for e in plan.errors.into_iter().chain(errors) {
            if seen.insert(e.clone()) {
                self.errors.push(e);
            }
        }
    }
}

/// `to` followed by `more`, reusing `more` when `to` is empty.
fn append<T>(to: &mut Vec<T>, mut more: Vec<T>) {
    if to.is_empty() {
        *to = more;
    } else {
        to.append(&mut more);
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
    fn a_staging_step_keeps_its_os_error_typed_through_io_error() {
        let os = io::Error::from_raw_os_error(nix::libc::EROFS);
        let carried: io::Error = Carried(Cause::InStaging {
            step: "mkdir",
            staging: ".gateway-x.tmp".into(),
            cause: Box::new((&os).into()),
        })
        .into();
        let mut f = failure(Cause::from(&carried));
        let Cause::InStaging { step, cause, .. } = &f.error else {
            panic!("not typed: {:?}", f.error);
        };
        assert_eq!((*step, &**cause), ("mkdir", &Cause::Os(nix::libc::EROFS)));
        say_who_acted(&mut f, 10000);
        assert_eq!(
            f.error.to_string(),
            "mkdir in staging dir .gateway-x.tmp: Read-only file system (as uid 10000)"
        );
    }

    #[test]
    fn root_is_not_named_and_refusals_stay_refusals() {
        let mut f = failure(Cause::OldTreeLeft {
            staging: ".gateway-x.tmp".into(),
            cause: Box::new(Cause::Refused(Refusal::NotAsObserved)),
        });
        say_who_acted(&mut f, 0);
        assert_eq!(
            f.error.to_string(),
            ".gateway-x.tmp: changed since it was observed; left alone"
        );
        let e: io::Error = Refusal::NotAsObserved.into();
        assert_eq!(Cause::from(&e), Cause::Refused(Refusal::NotAsObserved));
    }
}
