//! Executing the plan's run effects ([`crate::plan::steps::Effect`]) after its
//! changes: the rescan request to s6-svscan and the boot log append. What
//! to do was planned; what the changes did (their typed outcomes) decides
//! only what the plan said it would: `a` or `an`, or no rescan at all.

use std::ffi::OsStr;
use std::path::Path;

use crate::apply::Anchors;
use crate::apply::bootlog;
use crate::fs;
use crate::plan::SlotReport;
use crate::plan::steps::EffectReport;
use crate::plan::steps::{self, Effect};
use crate::plan::{Anchor, Change};
use crate::s6::findings::{Cause, Failure, say_who_acted};
use crate::s6::layout;

/// What the effects did.
#[derive(Debug, Default)]
pub struct EffectsDone {
    pub done: Vec<EffectReport>,
    pub warnings: Vec<String>,
    pub errors: Vec<Failure>,
}

/// Run `effects` in order, after the changes `done` went through; `slots`
/// as settled by the changes' outcomes (the boot log's lines).
pub fn run(
    effects: &[Effect],
    done: &[Change],
    slots: &[SlotReport],
    anchors: &mut dyn Anchors,
) -> EffectsDone {
    let mut out = EffectsDone::default();
    for e in effects {
        match e {
            Effect::Rescan { control, .. } => rescan(control, done, anchors, &mut out),
            Effect::BootLog {
                path,
                rel,
                rotate_bytes,
                ids,
                ..
            } => {
                // The volume is the user's: when still root (strict
                // policy), write with the user's effective ids so the log
                // stays theirs.
                let writer = if fs::euid() == 0 { ids.0 } else { fs::euid() };
                // The home not opened is not the log's failure: it is
                // said at the home (README "Exit codes").
                let home = match anchors.anchor(Anchor::Home) {
                    Ok(home) => home,
                    Err(err) => {
                        let depth = rel.components().count();
                        out.errors.push(Failure {
                            op: "open".into(),
                            path: path.ancestors().nth(depth).unwrap_or(path).to_path_buf(),
                            error: err.into(),
                        });
                        continue;
                    }
                };
                let lines = boot_log_lines(slots);
                let append = || bootlog::append(home, rel, &lines, *rotate_bytes);
                let r = if fs::euid() == 0 {
                    fs::with_effective_ids(ids.0, ids.1, append)
                } else {
                    append()
                };
                match r {
                    Ok(()) => out.done.push(EffectReport {
                        op: e.verb(),
                        path: path.clone(),
                        write: None,
                        lines: Some(slots.len()),
                    }),
                    Err(err) => {
                        let mut failure = Failure {
                            op: "append to".into(),
                            path: path.clone(),
                            error: err,
                        };
                        say_who_acted(&mut failure, writer);
                        out.errors.push(failure);
                    }
                }
            }
        }
    }
    out
}

/// One line per profile, one timestamp for the run.
fn boot_log_lines(slots: &[SlotReport]) -> String {
    let ts = bootlog::timestamp_now();
    let mut lines = String::with_capacity(slots.len() * (ts.len() + 80));
    for s in slots {
        bootlog::push_log_line(
            &mut lines,
            &ts,
            &s.profile,
            s.prior_state.as_deref(),
            s.action,
            s.prior_exit,
        );
        bootlog::push_folded(&mut lines, &s.folded);
        lines.push('\n');
    }
    lines
}

/// Ask a running s6-svscan to rescan (what `s6-svscanctl -a` or `-an`
/// does), as the slot changes that went through call for.
fn rescan(control: &Path, done: &[Change], anchors: &mut dyn Anchors, out: &mut EffectsDone) {
    let Some(want) = steps::rescan_for(done.iter()) else {
        log::info!("no slot change went through; no rescan");
        return;
    };
    let command = want.command();
    let r = match anchors.anchor(Anchor::Scandir) {
        Ok(d) => d
            .open_dir(OsStr::new(layout::SVSCAN_DIR))
            .and_then(|c| c.write_fifo(OsStr::new(layout::CONTROL), command.as_bytes()))
            .map_err(Cause::Fs),
        Err(e) => Err(Cause::Base(e)),
    };
    match r {
        Ok(true) => {
            log::info!("wrote {command:?} to {}", control.display());
            out.done.push(EffectReport {
                op: "rescan",
                path: control.to_path_buf(),
                write: Some(command),
                lines: None,
            });
        }
        Ok(false) => log::info!("no s6-svscan listens on {}; no rescan", control.display()),
        Err(Cause::Fs(e)) if fs::Os::NotFound.is(&e) => {
            log::info!("no {}; no rescan", control.display())
        }
        Err(e) => out.warnings.push(format!(
            "unable to request a rescan through {}: {e}",
            control.display(),
        )),
    }
}
