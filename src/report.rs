//! What a run reports: the plan's findings (items skipped, slots, failures)
//! and, after apply, what was done. The renderers turn it into text or JSON.

use std::collections::HashSet;

pub mod config;
mod json;
pub mod render;

use crate::plan::SlotReport;
use crate::plan::steps::EffectReport;
use crate::plan::{Change, Plan};
use crate::s6::findings::{Failure, Skipped};

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
