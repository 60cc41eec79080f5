//! The JSON report (`--format json`): the envelope the renderer's module
//! documentation describes, as `Serialize` types borrowed from the report.
//! Each list is serialized item by item as it is written, not collected
//! first: at 10,000 profiles the report has tens of thousands of items.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::path::Path;

use serde::{Serialize, Serializer};

use crate::desired::application::command::MIGRATED_FROM;
use crate::desired::model::Mode;
use crate::plan::steps::{EffectReport, When};
use crate::plan::{Change, Op, SlotReport};
use crate::report::Report;
use crate::s6::findings::{Failure, Skipped};

/// The whole report: one object on stdout.
#[derive(Serialize)]
pub(crate) struct Envelope<'a> {
    format: &'static str,
    version: u32,
    mode: &'static str,
    changes: Changes<'a>,
    effects: Each<'a, EffectReport, EffectJson<'a>>,
    slots: Each<'a, SlotReport, SlotJson<'a>>,
    skipped: Each<'a, Skipped, SkippedJson<'a>>,
    warnings: &'a [String],
    errors: Each<'a, Failure, ErrorJson<'a>>,
    /// Only in the recorded report (docs/runtime.md): a runtime pass's
    /// sequence number, then the run's exit code, as last keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit: Option<i32>,
}

impl<'a> Envelope<'a> {
    /// The report of a run in `mode`; with `diff`, a slot change carries
    /// the unified diffs of its files.
    pub(crate) fn new(mode: Mode, r: &'a Report, diff: bool) -> Envelope<'a> {
        Envelope {
            format: "s6-reconcile",
            version: 1,
            mode: mode.as_str(),
            changes: Changes {
                all: &r.changes,
                diff,
            },
            effects: Each(&r.effects, PhantomData),
            slots: Each(&r.slots, PhantomData),
            skipped: Each(&r.skipped, PhantomData),
            warnings: &r.warnings,
            errors: Each(&r.errors, PhantomData),
            sequence: None,
            exit: None,
        }
    }

    /// The report as recorded: with the run's exit code and, for a
    /// runtime pass, its sequence number.
    pub(crate) fn recorded(mut self, sequence: Option<u64>, exit: i32) -> Envelope<'a> {
        self.sequence = sequence;
        self.exit = Some(exit);
        self
    }
}

/// The report's items `T`, each serialized as its JSON form `J`.
struct Each<'a, T, J>(&'a [T], PhantomData<J>);

impl<'a, T, J: From<&'a T> + Serialize> Serialize for Each<'a, T, J> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(J::from))
    }
}

/// The changes, each as its printed parts ([`ChangeJson::parts`]).
struct Changes<'a> {
    all: &'a [Change],
    diff: bool,
}

impl Serialize for Changes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.all
                .iter()
                .flat_map(|c| ChangeJson::parts(c, self.diff)),
        )
    }
}

/// One printed part of a change (a permissions change of owner and mode is
/// a `chown` and a `chmod` object, as the calls go).
#[derive(Serialize)]
struct ChangeJson<'a> {
    phase: &'static str,
    op: &'static str,
    path: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    /// A seeded state file: what it says and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    migrated_from: Option<&'static str>,
    /// Only when the change runs after the slots.
    #[serde(skip_serializing_if = "Option::is_none")]
    when: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    diff: Option<String>,
}

impl<'a> ChangeJson<'a> {
    fn parts(c: &'a Change, diff: bool) -> impl Iterator<Item = ChangeJson<'a>> + 'a {
        c.op.parts().map(move |(op, from_to)| {
            let seeded = matches!(c.op, Op::SeedState { .. });
            ChangeJson {
                phase: c.phase.as_str(),
                op,
                path: text(&c.path),
                from: from_to.as_ref().map(|(from, _)| from.to_string()),
                to: from_to.as_ref().map(|(_, to)| to.to_string()),
                state: seeded.then_some("running"),
                migrated_from: seeded.then_some(MIGRATED_FROM),
                when: (c.when != When::Always).then(|| c.when.as_str()),
                reason: c.why.as_ref().map(|why| why.reason.as_ref()),
                diff: c
                    .why
                    .as_ref()
                    .filter(|_| diff)
                    .map(|why| crate::plan::slot_diff::change_diffs(c, why)),
            }
        })
    }
}

/// A run effect: `rescan` with the bytes it writes, or `append` with the
/// number of boot log lines.
#[derive(Serialize)]
struct EffectJson<'a> {
    op: &'static str,
    path: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    write: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lines: Option<usize>,
}

impl<'a> From<&'a EffectReport> for EffectJson<'a> {
    fn from(e: &'a EffectReport) -> Self {
        EffectJson {
            op: e.op,
            path: text(&e.path),
            write: e.write,
            lines: e.lines,
        }
    }
}

/// A slot's entry; `folded` only on the default slot that named profiles'
/// intent was folded into (docs/reference-image.md, "One gateway per container").
#[derive(Serialize)]
struct SlotJson<'a> {
    profile: &'a str,
    slot: Option<&'a str>,
    prior_state: Option<&'a str>,
    action: &'static str,
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    folded: &'a [String],
}

impl<'a> From<&'a SlotReport> for SlotJson<'a> {
    fn from(s: &'a SlotReport) -> Self {
        SlotJson {
            profile: &s.profile,
            slot: s.slot.as_deref(),
            prior_state: s.prior_state.as_deref(),
            action: s.action.as_str(),
            reason: s.reason.as_deref(),
            folded: &s.folded,
        }
    }
}

#[derive(Serialize)]
struct SkippedJson<'a> {
    path: Cow<'a, str>,
    reason: &'a str,
}

impl<'a> From<&'a Skipped> for SkippedJson<'a> {
    fn from(s: &'a Skipped) -> Self {
        SkippedJson {
            path: text(&s.path),
            reason: &s.reason,
        }
    }
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    op: &'a str,
    path: Cow<'a, str>,
    error: String,
}

impl<'a> From<&'a Failure> for ErrorJson<'a> {
    fn from(e: &'a Failure) -> Self {
        ErrorJson {
            op: &e.op,
            path: text(&e.path),
            error: e.error.to_string(),
        }
    }
}

/// A path as JSON text: as `Path::display` shows it (a byte sequence that
/// is not UTF-8 as U+FFFD), borrowed when it is UTF-8.
fn text(p: &Path) -> Cow<'_, str> {
    p.to_string_lossy()
}
