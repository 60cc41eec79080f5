//! The audit's human and JSON renderings.
//!
//! JSON (`--format json`), one object on stdout:
//!
//! ```json
//! {
//!   "format": "s6-reconcile-audit", "version": 1,
//!   "user": {"uid": 10000, "gids": [10000]}, "policy": "compat",
//!   "services": [{"name": "cron", "kind": "s6-rc",
//!                 "observe": {"can": true, "reason": null},
//!                 "control": {"can": false, "reason": "cannot write ..."},
//!                 "define": true,
//!                 "paths_to_root": [{"path": "/run/...", "why": "...", "accepted": false,
//!                                    "group_name": "ops"}],
//!                 "via": ["/run/service"]}],
//!   "policy_note": null,
//!   "notes": ["not observable: ..."], "warnings": ["/etc/group:3: ..."],
//!   "summary": {"services": 1, "paths_to_root": 1, "accepted": 0},
//!   "errors": []
//! }
//! ```
//! `can` is `null` when the audit could not tell (the reason says why)
//! or the question does not apply to the line (no reason).

use std::io::Write;

use serde::Serialize;

use super::access::Who;
use super::{Audit, Can, Finding, Kind, Line};

pub const FORMAT: &str = "s6-reconcile-audit";
pub const VERSION: u32 = 1;

#[derive(Serialize)]
pub struct Json<'a> {
    pub format: &'static str,
    pub version: u32,
    pub user: Option<&'a Who>,
    pub policy: Option<&'a str>,
    pub services: Vec<LineJson<'a>>,
    pub policy_note: Option<String>,
    pub notes: &'a [String],
    pub warnings: &'a [String],
    pub summary: Summary,
    pub errors: Vec<ErrorJson>,
}

#[derive(Serialize)]
pub struct LineJson<'a> {
    name: &'a str,
    kind: Kind,
    observe: CanJson<'a>,
    control: CanJson<'a>,
    define: bool,
    paths_to_root: &'a [Finding],
    via: &'a [String],
}

#[derive(Serialize)]
struct CanJson<'a> {
    can: Option<bool>,
    reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
pub struct Summary {
    pub services: usize,
    pub paths_to_root: usize,
    pub accepted: usize,
}

#[derive(Serialize)]
pub struct ErrorJson {
    pub op: String,
    pub path: String,
    pub error: String,
}

fn can_json(c: &Can) -> CanJson<'_> {
    match c {
        Can::Yes => CanJson {
            can: Some(true),
            reason: None,
        },
        Can::No(r) => CanJson {
            can: Some(false),
            reason: Some(r),
        },
        Can::Unknown(r) => CanJson {
            can: None,
            reason: Some(r),
        },
        Can::NotApplicable => CanJson {
            can: None,
            reason: None,
        },
    }
}

/// The summary of `a`.
pub fn summary(a: &Audit) -> Summary {
    Summary {
        services: a.lines.len(),
        paths_to_root: a.unaccepted(),
        accepted: a.accepted(),
    }
}

/// What the policy accepts, said once: `None` when it accepts nothing found.
pub fn policy_note(a: &Audit, who: &Who, policy: &str) -> Option<String> {
    let n = a.accepted();
    (n > 0).then(|| {
        format!(
            "policy {policy} accepts {n} {} to root: uid {} may define the scandir and \
             its slots, which root's s6-supervise runs, so it is effectively root \
             (policy strict does not accept them)",
            if n == 1 { "path" } else { "paths" },
            who.uid()
        )
    })
}

pub fn json(a: &Audit, who: &Who, policy: &str, out: &mut dyn Write) -> std::io::Result<()> {
    let doc = Json {
        format: FORMAT,
        version: VERSION,
        user: Some(who),
        policy: Some(policy),
        services: a
            .lines
            .values()
            .map(|l| LineJson {
                name: &l.name,
                kind: l.kind,
                observe: can_json(&l.observe),
                control: can_json(&l.control),
                define: l.define(),
                paths_to_root: &l.paths,
                via: &l.via,
            })
            .collect(),
        policy_note: policy_note(a, who, policy),
        notes: &a.notes,
        warnings: &a.warnings,
        summary: summary(a),
        errors: Vec::new(),
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

/// The JSON object of an audit stopped before it could look (exit 100/111).
pub fn fatal_json(error: ErrorJson, out: &mut dyn Write) -> std::io::Result<()> {
    let doc = Json {
        format: FORMAT,
        version: VERSION,
        user: None,
        policy: None,
        services: Vec::new(),
        policy_note: None,
        notes: &[],
        warnings: &[],
        summary: Summary::default(),
        errors: vec![error],
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

fn mark(c: &Can) -> &'static str {
    match c {
        Can::Yes => "✓",
        Can::No(_) => "✗",
        Can::Unknown(_) => "?",
        Can::NotApplicable => "-",
    }
}

fn line(l: &Line, width: usize, out: &mut dyn Write) -> std::io::Result<()> {
    let define = if l.define() { "✓" } else { "✗" };
    writeln!(
        out,
        "{:width$}  observe {} control {} define {define}",
        l.name,
        mark(&l.observe),
        mark(&l.control)
    )?;
    let reason = |c: &'_ Can| match c {
        Can::No(r) | Can::Unknown(r) => Some(r.clone()),
        _ => None,
    };
    match (reason(&l.observe), reason(&l.control)) {
        (Some(o), Some(c)) if o == c => writeln!(out, "    {o}")?,
        (o, c) => {
            if let Some(o) = o {
                writeln!(out, "    observe: {o}")?;
            }
            if let Some(c) = c {
                writeln!(out, "    control: {c}")?;
            }
        }
    }
    for f in &l.paths {
        let accepted = if f.accepted {
            " [accepted by the policy]"
        } else {
            ""
        };
        writeln!(out, "    path to root: {}: {}{accepted}", f.path, f.why)?;
    }
    for v in &l.via {
        writeln!(out, "    path to root via {v} (its line)")?;
    }
    Ok(())
}

pub fn human(a: &Audit, who: &Who, policy: &str, out: &mut dyn Write) -> std::io::Result<()> {
    let width = a
        .lines
        .values()
        .map(|l| l.name.chars().count())
        .max()
        .unwrap_or(0);
    for l in a.lines.values() {
        line(l, width, out)?;
    }
    for w in &a.warnings {
        writeln!(out, "warning: {w}")?;
    }
    for n in &a.notes {
        writeln!(out, "note: {n}")?;
    }
    if let Some(p) = policy_note(a, who, policy) {
        writeln!(out, "{p}")?;
    }
    let s = summary(a);
    let gids: Vec<String> = who.gids().iter().map(u32::to_string).collect();
    let paths = match s.paths_to_root {
        0 => "no path to root".to_string(),
        1 => "1 path to root".to_string(),
        n => format!("{n} paths to root"),
    };
    let accepted = if s.accepted > 0 {
        format!(", and {} accepted by policy {policy}", s.accepted)
    } else {
        String::new()
    };
    writeln!(
        out,
        "audit: uid {} (groups {}), policy {policy}: {} lines, {paths}{accepted}",
        who.uid(),
        gids.join(","),
        s.services
    )
}
