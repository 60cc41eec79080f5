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
//!   "effects":  [{"op": "rescan", "path": "/run/service/.s6-svscan/control", "write": "a"},
//!                {"op": "append", "path": "/opt/data/logs/container-boot.log", "lines": 3}],
//!   "slots":    [{"profile": "default", "slot": "gateway-default", "prior_state": "running", "action": "started", "reason": null}],
//!   "skipped":  [{"path": "...", "reason": "..."}],
//!   "warnings": ["..."],
//!   "errors":   [{"op": "...", "path": "...", "error": "..."}]
//! }
//! ```
//!
//! `op` is one of `chown`, `chmod`, `mkdir`, `mkfifo`, `publish`, `replace`,
//! `remove`, `unlink`; `chown` and `chmod` carry `from` and `to`
//! (`uid:gid`, 4-digit octal mode). A slot's `publish` and `replace`, and
//! the `create`/`unlink` of its `down`, carry `reason` (why: `new slot`,
//! the files that differ, the owner or mode of which entry, `down only`);
//! with `--diff` also `diff`, the unified diffs (`--- current`,
//! `+++ planned`) of the slot files it creates or rewrites. A change that
//! runs only once every slot change went through (the volume's) carries
//! `"when": "after-slots"`; the changes are listed in the order apply runs
//! them. In apply mode `changes` lists what was done and `errors` what
//! failed.
//!
//! `effects` are what the run does after its changes: `rescan` (the bytes
//! written to s6-svscan's control FIFO, `a` or `an`, when a scanner
//! listens) and `append` (lines added to the boot log). A plan lists them
//! as planned, an apply as done. They are never drift: `--check` counts
//! `changes` only. Paths are container paths.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use crate::desired::application::command::MIGRATED_FROM;
use crate::desired::model::{Mode, Phase};
use crate::plan::Op;
use crate::plan::slot_diff;
pub use crate::report::Report;

/// The JSON report (see the module documentation for its envelope).
pub fn json(mode: Mode, r: &Report, style: Style, out: &mut dyn Write) -> io::Result<()> {
    let envelope = super::json::Envelope::new(mode, r, style.diff);
    serde_json::to_writer_pretty(&mut *out, &envelope)?;
    writeln!(out)
}

/// The JSON report as recorded in `/run/s6-reconcile/` (docs/runtime.md):
/// the same object as `--format json` prints, plus `"exit"` (the run's
/// exit code) and, for a runtime pass, `"sequence"`, as last keys.
pub fn json_recorded(mode: Mode, r: &Report, sequence: Option<u64>, exit: i32, out: &mut Vec<u8>) {
    let envelope = super::json::Envelope::new(mode, r, false).recorded(sequence, exit);
    serde_json::to_writer_pretty(&mut *out, &envelope).expect("writing to memory");
    out.push(b'\n');
}

/// How much of the human report an apply prints on stdout: from `-v`/`-q`,
/// else from `S6_VERBOSITY` as s6-overlay reads it (docs/boot-output.md).
/// `--plan` and `--check` always print the whole plan: it is what they
/// were asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Errors only: a successful apply prints nothing (`S6_VERBOSITY=0`).
    Errors,
    /// The per-profile lines, warnings and errors (`S6_VERBOSITY=1`, `-q`).
    Warnings,
    /// Those and one summary line (`S6_VERBOSITY` 2, s6-overlay's default).
    #[default]
    Summary,
    /// Everything: the changes, the run effects, the skipped items, the
    /// per-profile lines, warnings, errors and the summary
    /// (`S6_VERBOSITY` 3 or more, `-v`).
    Full,
}

/// What starts every human line an apply writes, on stdout and stderr, so
/// that its lines can be told apart from s6-rc's in a container log.
pub const PREFIX: &str = "reconcile: ";

/// How the human report looks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    pub verbosity: Verbosity,
    /// ANSI colours (a terminal, `--color`, `NO_COLOR`).
    pub color: bool,
    /// Unified diffs of the slot files that change (`--diff`).
    pub diff: bool,
}

/// SGR codes, one per kind of text.
const BOLD: &str = "1";
const GREEN: &str = "32";
const YELLOW: &str = "33";
const RED: &str = "31";
const CYAN: &str = "36";
const WARNING: &str = "1;33";
const ERROR: &str = "1;31";

impl Style {
    /// Push `text`, padded with spaces to `width` characters, in colour
    /// `code` when colours are on (the padding inside the colour).
    fn push_painted(&self, buf: &mut String, code: &str, text: &str, width: usize) {
        if self.color {
            buf.push_str("\x1b[");
            buf.push_str(code);
            buf.push('m');
        }
        let start = buf.len();
        push_escaped(buf, text);
        for _ in buf[start..].chars().count()..width {
            buf.push(' ');
        }
        if self.color {
            buf.push_str("\x1b[0m");
        }
    }
}

/// The colour of a verb: green adds, yellow changes, red removes.
fn verb_color(verb: &str) -> &'static str {
    match verb {
        "publish" | "create" | "mkdir" | "mkfifo" => GREEN,
        "remove" | "unlink" => RED,
        _ => YELLOW,
    }
}

/// Whether `c` is printed escaped: control characters (C0, DEL, C1, so
/// ESC, BEL and CR too), the bidirectional overrides and isolates, and
/// the other invisible format characters (zero-width, line and paragraph
/// separators, the byte order mark, tags). Tab is printed as it is.
pub fn hidden(c: char) -> bool {
    matches!(c,
        '\0'..='\x08' | '\x0a'..='\x1f' | '\x7f'..='\u{9f}'
        | '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}'
        | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}'
        | '\u{e0001}' | '\u{e0020}'..='\u{e007f}')
}

/// Push `text` for a terminal: every [`hidden`] character as an escape
/// (`\x1b`, `\u{202e}`), so nothing the user wrote — a name, a path, a
/// state value, a diff line — can move the cursor, set the title, write
/// the clipboard or reorder what the operator reads. The one place user
/// text is escaped for the human report and stderr (JSON is escaped by
/// serde).
pub fn push_escaped(buf: &mut String, text: &str) {
    let mut rest = text;
    loop {
        // Printable ASCII and tab are never hidden: copied a run at a time.
        let plain = rest
            .bytes()
            .position(|b| !matches!(b, b'\t' | b' '..=b'~'))
            .unwrap_or(rest.len());
        buf.push_str(&rest[..plain]);
        rest = &rest[plain..];
        let Some(c) = rest.chars().next() else {
            return;
        };
        if !hidden(c) {
            buf.push(c);
        } else if u32::from(c) < 0x100 {
            let _ = write!(buf, "\\x{:02x}", u32::from(c));
        } else {
            let _ = write!(buf, "\\u{{{:x}}}", u32::from(c));
        }
        rest = &rest[c.len_utf8()..];
    }
}

/// `text` as [`push_escaped`] prints it.
pub fn escaped(text: &str) -> String {
    let mut buf = String::with_capacity(text.len());
    push_escaped(&mut buf, text);
    buf
}

/// Push a path escaped ([`push_escaped`]); a byte that is not UTF-8 as
/// `\xNN`.
pub fn push_path(buf: &mut String, p: &Path) {
    use std::os::unix::ffi::OsStrExt;
    if let Some(text) = p.to_str() {
        return push_escaped(buf, text);
    }
    for chunk in p.as_os_str().as_bytes().utf8_chunks() {
        push_escaped(buf, chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(buf, "\\x{b:02x}");
        }
    }
}

/// A path as [`push_path`] prints it.
pub fn path_text(p: &Path) -> String {
    let mut buf = String::new();
    push_path(&mut buf, p);
    buf
}

/// The human report, built in memory and written with one call (a line
/// or two per slot: formatting each straight to the writer cost more than
/// the rest of the report). An apply's lines all start with [`PREFIX`];
/// a plan's keep their layout.
pub fn human(mode: Mode, r: &Report, style: Style, out: &mut dyn io::Write) -> io::Result<()> {
    let verbosity = match mode {
        Mode::Apply => style.verbosity,
        Mode::Plan | Mode::Check => Verbosity::Full,
    };
    let mut buf = String::with_capacity(64 * (r.changes.len() + r.lines.len() + 8));
    if verbosity == Verbosity::Full {
        changes(mode, r, style, &mut buf);
        effects(mode, r, style, &mut buf);
    }
    if verbosity >= Verbosity::Warnings {
        for l in &r.lines {
            // The per-profile lines carry the prefix already (a plan
            // prints them as the boot does); an apply adds it below.
            let l = match mode {
                Mode::Apply => l.strip_prefix(PREFIX).unwrap_or(l),
                Mode::Plan | Mode::Check => l,
            };
            push_escaped(&mut buf, l);
            buf.push('\n');
        }
    }
    if verbosity == Verbosity::Full && !r.skipped.is_empty() {
        buf.push_str("skipped:\n");
        for s in &r.skipped {
            buf.push_str("  ");
            push_path(&mut buf, &s.path);
            buf.push_str(": ");
            push_escaped(&mut buf, &s.reason);
            buf.push('\n');
        }
    }
    if verbosity >= Verbosity::Warnings {
        for w in &r.warnings {
            style.push_painted(&mut buf, WARNING, "warning:", 0);
            buf.push(' ');
            push_escaped(&mut buf, w);
            buf.push('\n');
        }
    }
    for e in &r.errors {
        style.push_painted(&mut buf, ERROR, "error:", 0);
        let _ = write!(buf, " unable to {} ", e.op);
        push_path(&mut buf, &e.path);
        buf.push_str(": ");
        push_escaped(&mut buf, &e.error.to_string());
        buf.push('\n');
    }
    if verbosity >= Verbosity::Summary {
        style.push_painted(&mut buf, BOLD, &summary(mode, r), 0);
        buf.push('\n');
    }
    if mode == Mode::Apply {
        buf = prefixed(&buf);
    }
    out.write_all(buf.as_bytes())
}

/// Every line of `text` with [`PREFIX`] in front (before any colour).
/// Safe to split at newlines: what the user wrote is escaped, so a newline
/// is always one the renderer put there.
fn prefixed(text: &str) -> String {
    let lines = text.split_terminator('\n');
    let mut buf = String::with_capacity(text.len() + PREFIX.len() * lines.clone().count());
    for line in lines {
        buf.push_str(PREFIX);
        buf.push_str(line);
        buf.push('\n');
    }
    buf
}

/// The run effects after the changes (`then:`): a plan says what it will
/// do, an apply what it did.
fn effects(mode: Mode, r: &Report, style: Style, buf: &mut String) {
    if r.effects.is_empty() {
        return;
    }
    style.push_painted(buf, BOLD, "then:", 0);
    buf.push('\n');
    for e in &r.effects {
        let detail = match (e.write, e.lines, mode) {
            (Some(w), _, Mode::Apply) => format!("wrote {w:?}"),
            (Some(w), _, _) => format!("write {w:?} if s6-svscan listens"),
            (None, Some(1), _) => "1 line".to_string(),
            (None, Some(n), _) => format!("{n} lines"),
            (None, None, _) => String::new(),
        };
        buf.push_str("  ");
        style.push_painted(buf, GREEN, e.op, 7);
        buf.push(' ');
        push_path(buf, &e.path);
        let _ = writeln!(buf, "  ({detail})");
    }
}

/// The changes, grouped by phase, verb first; in a plan, a change's
/// condition after it.
fn changes(mode: Mode, r: &Report, style: Style, buf: &mut String) {
    let mut current: Option<Phase> = None;
    for c in &r.changes {
        if current != Some(c.phase) {
            style.push_painted(buf, BOLD, &format!("{}:", c.phase.as_str()), 0);
            buf.push('\n');
            current = Some(c.phase);
        }
        if let Some(why) = c.why.as_deref() {
            let verb = c.op.verb();
            buf.push_str("  ");
            style.push_painted(buf, verb_color(verb), verb, 7);
            buf.push(' ');
            push_path(buf, &c.path);
            buf.push_str("  (");
            push_escaped(buf, &why.reason);
            buf.push_str(")\n");
            if style.diff {
                diff_lines(&slot_diff::change_diffs(c, why), style, buf);
            }
            continue;
        }
        for (verb, from_to) in c.op.parts() {
            buf.push_str("  ");
            style.push_painted(buf, verb_color(verb), verb, 7);
            buf.push(' ');
            push_path(buf, &c.path);
            if let Some((from, to)) = from_to {
                buf.push_str("  ");
                from.push_to(buf);
                buf.push_str(" → ");
                to.push_to(buf);
                buf.push('\n');
                continue;
            }
            let seed = matches!(c.op, Op::SeedState { .. })
                .then(|| format!("state running, migrated from {MIGRATED_FROM}"));
            let when = c.when.describe().filter(|_| mode != Mode::Apply);
            let notes: Vec<String> = seed.into_iter().chain(when.map(String::from)).collect();
            if !notes.is_empty() {
                buf.push_str("  (");
                buf.push_str(&notes.join("; "));
                buf.push(')');
            }
            buf.push('\n');
        }
    }
}

/// A unified diff, coloured: headers bold, hunks cyan, removals red,
/// additions green.
fn diff_lines(text: &str, style: Style, buf: &mut String) {
    // Split at newlines only: a carriage return is the file's, shown escaped.
    for line in text.split_terminator('\n') {
        let code = if line.starts_with("--- ") || line.starts_with("+++ ") {
            BOLD
        } else if line.starts_with("@@") {
            CYAN
        } else if line.starts_with('-') {
            RED
        } else if line.starts_with('+') {
            GREEN
        } else {
            push_escaped(buf, line);
            buf.push('\n');
            continue;
        };
        style.push_painted(buf, code, line, 0);
        buf.push('\n');
    }
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
    // Counted as printed: a chown and a chmod of one entry are two.
    let count = |p: Option<Phase>| -> usize {
        r.changes
            .iter()
            .filter(|c| p.is_none_or(|p| c.phase == p))
            .map(|c| c.op.part_count())
            .sum()
    };
    let per_phase: Vec<String> = Phase::ALL
        .iter()
        .filter_map(|p| {
            let n = count(Some(*p));
            (n > 0).then(|| format!("{} {}", p.as_str(), n))
        })
        .collect();
    let n = count(None);
    let noun = if n == 1 { "change" } else { "changes" };
    let verb = match mode {
        Mode::Apply => "Applied",
        Mode::Plan | Mode::Check => "Plan:",
    };
    format!("{verb} {n} {noun} ({}){tail}.", per_phase.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_characters_and_bytes_that_are_not_utf8_are_escaped() {
        assert_eq!(escaped("plain text\twith a tab"), "plain text\twith a tab");
        assert_eq!(
            escaped("\x1b]0;T\x07\r\n\x7f\u{9b}"),
            "\\x1b]0;T\\x07\\x0d\\x0a\\x7f\\x9b"
        );
        assert_eq!(
            escaped("a\u{202e}b\u{2066}c\u{200b}d\u{feff}é"),
            "a\\u{202e}b\\u{2066}c\\u{200b}d\\u{feff}é"
        );
        use std::os::unix::ffi::OsStrExt;
        let p = Path::new(std::ffi::OsStr::from_bytes(b"/vol\xe9/\x1b[2J"));
        assert_eq!(path_text(p), "/vol\\xe9/\\x1b[2J");
    }
    /// The recorded report is the object `--format json` prints, with
    /// `sequence` (a runtime pass's) and `exit` added as its last keys.
    #[test]
    fn the_recorded_report_is_the_json_report_and_the_exit() {
        let report = Report {
            warnings: vec!["w".into()],
            skipped: vec![crate::s6::findings::Skipped {
                path: "/run/service/x".into(),
                reason: "r".into(),
            }],
            ..Report::default()
        };
        let mut printed = Vec::new();
        json(Mode::Apply, &report, Style::default(), &mut printed).unwrap();
        let printed = String::from_utf8(printed).unwrap();
        let body = printed.strip_suffix("\n}\n").unwrap();
        for (sequence, tail) in [
            (Some(7), ",\n  \"sequence\": 7,\n  \"exit\": 1\n}\n"),
            (None, ",\n  \"exit\": 1\n}\n"),
        ] {
            let mut recorded = Vec::new();
            json_recorded(Mode::Apply, &report, sequence, 1, &mut recorded);
            assert_eq!(
                String::from_utf8(recorded).unwrap(),
                format!("{body}{tail}")
            );
        }
        assert!(body.contains("\"skipped\": [\n    {\n      \"path\": \"/run/service/x\""));
        assert!(body.contains("\"changes\": [],\n"));
    }
}
