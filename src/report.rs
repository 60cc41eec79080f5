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
    /// Anything else, already worded.
    Text(String),
}

impl From<&io::Error> for Cause {
    fn from(e: &io::Error) -> Cause {
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
            Cause::Text(s) => f.write_str(s),
        }
    }
}

/// An error met while acting for the user says so: a volume or scandir
/// that root could write may not be the user's (`Permission denied (as uid
/// 10000)`).
pub fn say_who_acted(e: &mut Failure, uid: u32) {
    if uid != 0 {
        e.error = format!("{} (as uid {uid})", e.error).into();
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
    pub fn add_applied(&mut self, plan: &Plan, applied: crate::apply::Applied) {
        self.skipped.extend(applied.skipped);
        self.add_plan(plan, applied.done, applied.errors);
    }

    /// Add one plan's findings, with the changes done (or planned) and the
    /// failures of executing it.
    pub fn add_plan(&mut self, plan: &Plan, changes: Vec<Change>, errors: Vec<Failure>) {
        self.changes.extend(changes);
        self.slots.extend(plan.slots.iter().cloned());
        // The parts of an apply plan from one observation: what they both
        // report (a name that cannot be used) is said once.
        let mut seen: HashSet<Skipped> = self.skipped.iter().cloned().collect();
        for s in &plan.skipped {
            if seen.insert(s.clone()) {
                self.skipped.push(s.clone());
            }
        }
        self.lines.extend(plan.lines.iter().cloned());
        // Repeats are dropped with sets, not `Vec::contains`: there can be a
        // warning or an error per profile, and that would be quadratic.
        let mut seen: HashSet<String> = self.warnings.iter().cloned().collect();
        for w in &plan.warnings {
            if seen.insert(w.clone()) {
                self.warnings.push(w.clone());
            }
        }
        // Phases observed separately may find the same unusable base.
        let mut seen: HashSet<Failure> = self.errors.iter().cloned().collect();
        for e in plan.errors.iter().cloned().chain(errors) {
            if seen.insert(e.clone()) {
                self.errors.push(e);
            }
        }
    }
}
