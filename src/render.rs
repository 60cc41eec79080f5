//! Renderers for the plan and the apply report: human text and JSON.
//!
//! # JSON envelope (`--format json`, every mode)
//!
//! One object on stdout:
//!
//! ```json
//! {
//!   "format": "s6-reconcile", "version": 1, "mode": "plan|check|apply",
//!   "changes":  [{"phase": "static", "op": "chown", "path": "/run/...", "from": "0:0", "to": "10000:10000"}],
//!   "slots":    [{"profile": "default", "slot": "gateway-default", "prior_state": "running", "action": "started", "reason": null}],
//!   "skipped":  [{"path": "...", "reason": "..."}],
//!   "warnings": ["..."],
//!   "errors":   [{"op": "...", "path": "...", "error": "..."}]
//! }
//! ```
//!
//! `op` is one of `chown`, `chmod`, `mkdir`, `mkfifo`, `publish`, `replace`,
//! `remove`, `unlink`; `chown` and `chmod` carry `from` and `to`
//! (`uid:gid`, 4-digit octal mode). In apply mode `changes` lists what was
//! done and `errors` what failed. Paths are container paths.

use std::io::{self, Write};

use serde_json::{Value, json};

use crate::app::command::MIGRATED_FROM;
use crate::model::{Mode, Phase};
use crate::plan::{Change, Op};
pub use crate::report::Report;
use crate::report::SlotReport;

pub fn slot_json(s: &SlotReport) -> Value {
    json!({
        "profile": s.profile,
        "slot": s.slot,
        "prior_state": s.prior_state,
        "action": s.action.as_str(),
        "reason": s.reason,
    })
}

pub fn change_json(c: &Change) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("phase".into(), json!(c.phase.as_str()));
    m.insert("op".into(), json!(c.op.verb()));
    m.insert("path".into(), json!(c.path.display().to_string()));
    if let Some((from, to)) = c.op.from_to() {
        m.insert("from".into(), json!(from));
        m.insert("to".into(), json!(to));
    }
    if let Op::SeedState { .. } = c.op {
        m.insert("state".into(), json!("running"));
        m.insert("migrated_from".into(), json!(MIGRATED_FROM));
    }
    Value::Object(m)
}

pub fn json(mode: Mode, r: &Report, out: &mut dyn Write) -> io::Result<()> {
    let v = json!({
        "format": "s6-reconcile",
        "version": 1,
        "mode": mode.as_str(),
        "changes": r.changes.iter().map(change_json).collect::<Vec<_>>(),
        "slots": r.slots.iter().map(slot_json).collect::<Vec<_>>(),
        "skipped": r.skipped.iter().map(|s| json!({
            "path": s.path.display().to_string(),
            "reason": s.reason,
        })).collect::<Vec<_>>(),
        "warnings": r.warnings,
        "errors": r.errors.iter().map(|e| json!({
            "op": e.op,
            "path": e.path.display().to_string(),
            "error": e.error,
        })).collect::<Vec<_>>(),
    });
    serde_json::to_writer_pretty(&mut *out, &v)?;
    writeln!(out)
}

pub fn human(mode: Mode, r: &Report, out: &mut dyn Write) -> io::Result<()> {
    let mut current: Option<Phase> = None;
    for c in &r.changes {
        if current != Some(c.phase) {
            writeln!(out, "{}:", c.phase.as_str())?;
            current = Some(c.phase);
        }
        match c.op.from_to() {
            Some((from, to)) => writeln!(
                out,
                "  {:<7} {}  {} → {}",
                c.op.verb(),
                c.path.display(),
                from,
                to
            )?,
            None if matches!(c.op, Op::SeedState { .. }) => writeln!(
                out,
                "  {:<7} {}  (state running, migrated from {MIGRATED_FROM})",
                c.op.verb(),
                c.path.display()
            )?,
            None => writeln!(out, "  {:<7} {}", c.op.verb(), c.path.display())?,
        }
    }
    for l in &r.lines {
        writeln!(out, "{l}")?;
    }
    if !r.skipped.is_empty() {
        writeln!(out, "skipped:")?;
        for s in &r.skipped {
            writeln!(out, "  {}: {}", s.path.display(), s.reason)?;
        }
    }
    for w in &r.warnings {
        writeln!(out, "warning: {w}")?;
    }
    for e in &r.errors {
        writeln!(
            out,
            "error: unable to {} {}: {}",
            e.op,
            e.path.display(),
            e.error
        )?;
    }
    writeln!(out, "{}", summary(mode, r))
}

fn summary(mode: Mode, r: &Report) -> String {
    let mut tail = String::new();
    if !r.skipped.is_empty() {
        tail.push_str(&format!("; {} skipped", r.skipped.len()));
    }
    if !r.errors.is_empty() {
        tail.push_str(&format!("; {} failed", r.errors.len()));
    }
    if r.changes.is_empty() {
        return format!("No changes{tail}.");
    }
    let per_phase: Vec<String> = Phase::ALL
        .iter()
        .filter_map(|p| {
            let n = r.changes.iter().filter(|c| c.phase == *p).count();
            (n > 0).then(|| format!("{} {}", p.as_str(), n))
        })
        .collect();
    let n = r.changes.len();
    let noun = if n == 1 { "change" } else { "changes" };
    let verb = match mode {
        Mode::Apply => "Applied",
        Mode::Plan | Mode::Check => "Plan:",
    };
    format!("{verb} {n} {noun} ({}){tail}.", per_phase.join(", "))
}
