//! Fixture scenarios (docs/testing.md): every directory under `fixtures/` is a
//! scenario. Its `tree.yaml` (a tree description, docs/tree-format.md) is materialised
//! in a fresh temp root, `reconcile --root <tmp>` runs against it with the extra
//! arguments of its optional `args` file (one per line), and the output is
//! compared with the goldens next to it:
//!
//! | golden       | what                                                  |
//! |--------------|-------------------------------------------------------|
//! | `plan.txt`   | stdout of `--plan`, then `exit: N`                    |
//! | `plan.json`  | stdout of `--plan --format json` (must parse)         |
//! | `apply.txt`  | stdout of apply (`S6_VERBOSITY=3`), then `exit: N`    |
//! | `after.yaml` | the tree after apply, described (boot log masked)     |
//!
//! An optional `env` file sets environment variables for every run of the
//! scenario (`KEY=VALUE` per line, `#` comments, an empty value allowed);
//! otherwise the container variables the tool reads ([`SCRUBBED_ENV`]) are
//! removed, so a developer's shell never leaks into the goldens.
//!
//! Besides the goldens: `--plan` must leave the tree as it was (no boot log
//! either); a second `--plan --format json` after apply must have
//! `"changes": []`; and a second apply must do nothing: `"changes": []`, the
//! tree as the first apply left it (boot logs aside, which gain a line per
//! profile) and every entry still the same inode.
//!
//! The boot log's lines start with the local time: in every dump the leading
//! timestamp of each line of a file named `container-boot.log*` reads `<ts>`
//! ([`mask_boot_log`]); likewise the time stamped in a state file written
//! for a legacy `gateway run` container reads `<unix>`
//! ([`mask_migrated_state`]). They are the only contents that differ
//! between runs.
//!
//! Goldens are written only when `UPDATE_GOLDENS=1`; the test then still fails,
//! listing what it rewrote, so that nothing is accepted without a look at
//! `git diff fixtures/`. `FIXTURE=<name>` runs one scenario.
//!
//! Owners need root: these tests fail (never skip) when not run as root.

mod common;

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use common::tree;

// The container environment the tool reads: a developer's shell must not
// leak into the goldens.
use common::run::{SCRUBBED_ENV, scrubbed_cmd};

/// Paths that a scenario plants a link to (or that must stay root's) and
/// that must come out of apply exactly as they went in:
/// (scenario, path, uid, gid, mode).
const MUST_KEEP: &[(&str, &str, u32, u32, u32)] = &[
    ("fresh-boot", "run/service/.s6-svscan/SIGTERM", 0, 0, 0o755),
    (
        "fresh-boot",
        "run/service/s6-linux-init-shutdownd/fifo",
        0,
        0,
        0o600,
    ),
    ("symlink-in-supervise", "etc/shadow", 0, 0, 0o600),
    ("symlink-in-supervise", "etc", 0, 0, 0o755),
    ("hardlink-in-supervise", "etc/shadow", 0, 0, 0o600),
    (
        "hardlink-in-supervise",
        "run/s6-rc/servicedirs/nginx/supervise/extra",
        0,
        0,
        0o600,
    ),
    (
        "supervise-is-a-file",
        "run/s6-rc/servicedirs/nginx/supervise",
        0,
        0,
        0o644,
    ),
    ("scandir-real-slot", "etc/shadow", 0, 0, 0o600),
    ("profiles-existing-slots", "etc", 0, 0, 0o755),
    ("profiles-existing-slots", "etc/shadow", 0, 0, 0o600),
    (
        "profiles-multiplex-env",
        "opt/data/gateway.pid",
        10000,
        10000,
        0o644,
    ),
    ("profiles-multiplex-env", "run/service", 0, 0, 0o755),
    (
        "profiles-multiplex-env",
        "run/service/.s6-svscan",
        0,
        0,
        0o700,
    ),
    ("profiles-prune", "etc/shadow", 0, 0, 0o600),
    ("profiles-prune", "run/s6-rc/servicedirs/nginx", 0, 0, 0o755),
    (
        "profiles-prune",
        "run/s6-rc/servicedirs/nginx/run",
        0,
        0,
        0o755,
    ),
    (
        "profiles-templates",
        "run/service/.gateway-x1.tmp/keep",
        2000,
        2001,
        0o644,
    ),
    ("profiles-volume", "etc/shadow", 0, 0, 0o600),
    ("profiles-volume", "etc", 0, 0, 0o755),
    // A dashboard container removes no stale runtime file.
    (
        "parity-dashboard",
        "opt/data/gateway.pid",
        10000,
        10000,
        0o644,
    ),
    // A marker symlink into a root-only directory is never followed as root.
    ("parity-marker-symlinks", "root", 0, 0, 0o700),
    ("parity-marker-symlinks", "root/soul.md", 0, 0, 0o600),
    (
        "parity-profiles-root-is-a-file",
        "opt/data/profiles",
        10000,
        10000,
        0o644,
    ),
    (
        "parity-staging-suffix",
        "run/service/.other.tmp.stale-1",
        10000,
        10000,
        0o755,
    ),
    ("scandir-leftover-staging", "etc", 0, 0, 0o755),
    ("scandir-leftover-staging", "etc/shadow", 0, 0, 0o600),
    ("scandir-leftover-staging", "opt/data", 10000, 10000, 0o755),
    (
        "scandir-leftover-staging",
        "opt/data/SOUL.md",
        10000,
        10000,
        0o644,
    ),
];

/// Entries that the first apply must leave in place, not replace (same
/// inode): slots identical to the wanted ones, or differing only by `down`
/// (docs/plan-format.md, "Why a slot changes"; a live s6-supervise keys on dev/ino). (scenario, path)
const KEEP_INODE: &[(&str, &str)] = &[
    ("already-reconciled", "run/service/gateway-default"),
    (
        "already-reconciled",
        "run/service/gateway-default/supervise",
    ),
    ("profiles-existing-slots", "run/service/gateway-default"),
    (
        "profiles-existing-slots",
        "run/service/gateway-default/supervise",
    ),
    ("profiles-existing-slots", "run/service/gateway-default/run"),
    ("profiles-existing-slots", "run/service/gateway-alice"),
    ("profiles-existing-slots", "run/service/gateway-alice/run"),
    ("profiles-existing-slots", "run/service/gateway-bob"),
    (
        "profiles-existing-slots",
        "run/service/gateway-bob/supervise/control",
    ),
];

/// Host files a tool that follows an absolute symlink planted in a fixture
/// (`-> /etc/shadow`) would reach; the harness checks and restores them.
const HOST_GUARDED: [&str; 3] = ["/etc/shadow", "/etc/passwd", "/etc"];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

struct Output {
    stdout: String,
    stderr: String,
    exit: String,
}

fn run_reconcile(
    root: &Path,
    extra: &[String],
    env: &[(String, String)],
    mode: &[&str],
) -> Result<Output, String> {
    run_with(&["--root".as_ref(), root.as_os_str()], extra, env, mode)
}

/// `reconcile <mode> --tree <file> <extra>`: the plan from a description.
fn run_tree(
    file: &Path,
    extra: &[String],
    env: &[(String, String)],
    mode: &[&str],
) -> Result<Output, String> {
    run_with(&["--tree".as_ref(), file.as_os_str()], extra, env, mode)
}

fn run_with(
    source: &[&std::ffi::OsStr],
    extra: &[String],
    env: &[(String, String)],
    mode: &[&str],
) -> Result<Output, String> {
    let mut cmd = scrubbed_cmd(mode);
    cmd.args(source).args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run reconcile {mode:?}: {e}"))?;
    let exit = match (out.status.code(), out.status.signal()) {
        (Some(code), _) => code.to_string(),
        (None, Some(sig)) => format!("signal {sig}"),
        (None, None) => "unknown".into(),
    };
    let stdout = String::from_utf8(out.stdout)
        .map_err(|e| format!("reconcile {mode:?}: stdout is not UTF-8: {e}"))?;
    Ok(Output {
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        exit,
    })
}

/// The outcome of one scenario: its failures and the goldens it rewrote.
struct Scenario {
    name: String,
    dir: PathBuf,
    update: bool,
    failures: Vec<String>,
    updated: Vec<String>,
}

impl Scenario {
    fn fail(&mut self, msg: impl Into<String>) {
        self.failures.push(msg.into());
    }

    /// Compare `actual` with the golden `file`, or write it under UPDATE_GOLDENS.
    fn golden(&mut self, file: &str, actual: &str, stderr: &str) {
        let path = self.dir.join(file);
        let label = format!("fixtures/{}/{file}", self.name);
        let expected = match fs::read_to_string(&path) {
            Ok(s) => Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                self.fail(format!("{label}: cannot read: {e}"));
                return;
            }
        };
        if expected.as_deref() == Some(actual) {
            return;
        }
        if self.update {
            match fs::write(&path, actual) {
                Ok(()) => self.updated.push(match &expected {
                    None => format!("{label} (new)"),
                    Some(old) => format!("{label}\n{}", diff(old, actual)),
                }),
                Err(e) => self.fail(format!("{label}: cannot write: {e}")),
            }
            return;
        }
        let mut msg = match expected {
            None => format!(
                "{label}: golden missing; generate it with UPDATE_GOLDENS=1 and review it:\n{}",
                indent(actual)
            ),
            Some(old) => format!("{label} differs:\n{}", diff(&old, actual)),
        };
        if !stderr.is_empty() {
            let _ = write!(msg, "\n  stderr of that run:\n{}", indent(stderr));
        }
        self.fail(msg);
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

/// A line diff (longest common subsequence) of `old` (the golden) and `new`
/// (this run), shown as hunks with two lines of context, at most 60 lines.
fn diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // (tag, golden line number, text)
    let mut ops: Vec<(char, usize, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', i + 1, a[i]));
            i += 1;
            j += 1;
        } else if j == m || (i < n && lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', i + 1, a[i]));
            i += 1;
        } else {
            ops.push(('+', i + 1, b[j]));
            j += 1;
        }
    }
    let near_change = |k: usize| {
        let lo = k.saturating_sub(2);
        let hi = (k + 2).min(ops.len() - 1);
        ops[lo..=hi].iter().any(|op| op.0 != ' ')
    };
    let mut out = String::from("    --- golden\n    +++ this run\n");
    let mut shown = 0;
    let mut in_hunk = false;
    for (k, &(tag, line, text)) in ops.iter().enumerate() {
        if !near_change(k) {
            in_hunk = false;
            continue;
        }
        if !in_hunk {
            let _ = writeln!(out, "    @@ golden line {line} @@");
            in_hunk = true;
        }
        if shown == 60 {
            out.push_str("    ... (diff truncated)\n");
            break;
        }
        let _ = writeln!(out, "    {tag}{text}");
        shown += 1;
    }
    if old.ends_with('\n') != new.ends_with('\n') {
        out.push_str("    (the files differ in their final newline)\n");
    }
    out
}

fn read_args(dir: &Path) -> Result<Vec<String>, String> {
    match fs::read_to_string(dir.join("args")) {
        Ok(s) => Ok(s
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("args: {e}")),
    }
}

/// The scenario's `env` file: `KEY=VALUE` lines (the value may be empty).
fn read_env(dir: &Path) -> Result<Vec<(String, String)>, String> {
    let text = match fs::read_to_string(dir.join("env")) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("env: {e}")),
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("env: {l:?} is not KEY=VALUE")),
        })
        .collect()
}

/// Whether `name` is a boot log or one of its rotated copies.
fn is_boot_log(path: &str) -> bool {
    Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("container-boot.log"))
}

/// `%Y-%m-%dT%H:%M:%S%z` at the start of `line` (e.g. `2026-01-31T23:59:59+0100`).
fn leading_timestamp(line: &str) -> Option<usize> {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:dd+dddd";
    let b = line.as_bytes();
    let ok = b.len() >= SHAPE.len()
        && SHAPE.iter().zip(b).all(|(s, c)| match s {
            b'd' => c.is_ascii_digit(),
            b'+' => *c == b'+' || *c == b'-',
            s => s == c,
        });
    ok.then_some(SHAPE.len())
}

/// Replace the leading timestamp of every line of boot logs by `<ts>`.
fn mask_boot_log(entries: &mut [tree::Entry]) {
    for e in entries.iter_mut().filter(|e| is_boot_log(&e.path)) {
        if let tree::Node::File {
            content: tree::Content::Bytes(bytes),
            ..
        } = &mut e.node
            && let Ok(text) = std::str::from_utf8(bytes)
        {
            let masked: String = text
                .split_inclusive('\n')
                .map(|line| match leading_timestamp(line) {
                    Some(n) => format!("<ts>{}", &line[n..]),
                    None => line.to_string(),
                })
                .collect();
            *bytes = masked.into_bytes();
        }
    }
}

/// A state file written for a legacy `gateway run` container carries the
/// time it was written: replace it by `<unix>`, but only when it is the
/// application's exact layout and the time is within the last hour (a
/// wrong or garbage timestamp stays visible and fails the golden).
fn mask_migrated_state(entries: &mut [tree::Entry]) {
    const HEAD: &str =
        "{\"gateway_state\": \"running\", \"desired_state\": \"running\", \"timestamp\": ";
    const TAIL: &str = ", \"migrated_from\": \"legacy-container-cmd\"}\n";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for e in entries
        .iter_mut()
        .filter(|e| e.path.ends_with("gateway_state.json"))
    {
        if let tree::Node::File {
            content: tree::Content::Bytes(bytes),
            ..
        } = &mut e.node
            && let Ok(text) = std::str::from_utf8(bytes)
            && let Some(n) = text.strip_prefix(HEAD).and_then(|r| r.strip_suffix(TAIL))
            && n.parse::<u64>().is_ok_and(|t| t <= now && now - t < 3600)
        {
            *bytes = format!("{HEAD}<unix>{TAIL}").into_bytes();
        }
    }
}

/// Where an apply leaves its lock file (src/apply/lock.rs): `/run`, or `/`
/// without one. Checked on its own by [`check_apply_lock`], not recorded
/// in the goldens: every apply leaves the same file.
const APPLY_LOCKS: [&str; 2] = ["run/s6-reconcile.lock", "s6-reconcile.lock"];

/// After an apply: the lock file is root's, private, empty and regular
/// (the user must not be able to open it, or they could hold it).
fn check_apply_lock(root: &Path) -> Result<(), String> {
    let at = if root.join("run").is_dir() {
        APPLY_LOCKS[0]
    } else {
        APPLY_LOCKS[1]
    };
    let md = fs::symlink_metadata(root.join(at)).map_err(|e| format!("apply lock {at}: {e}"))?;
    let got = (
        md.is_file(),
        md.uid(),
        md.gid(),
        md.mode() & 0o7777,
        md.len(),
    );
    if got != (true, 0, 0, 0o600, 0) {
        return Err(format!(
            "apply lock {at}: want an empty regular file 0:0 0600, got {got:?}"
        ));
    }
    Ok(())
}

/// The tree as the goldens record it: [`tree::dump`] with boot log
/// timestamps masked and without the apply lock; `boot_logs: false`
/// leaves boot logs out.
fn dump(root: &Path, boot_logs: bool) -> String {
    let mut entries = tree::scan(root).unwrap_or_else(|e| panic!("dump {}: {e}", root.display()));
    entries.retain(|e| !APPLY_LOCKS.contains(&e.path.as_str()) && !is_record(&e.path));
    if !boot_logs {
        entries.retain(|e| !is_boot_log(&e.path));
    }
    mask_boot_log(&mut entries);
    mask_migrated_state(&mut entries);
    tree::render(&entries)
}

/// The reports an apply records in `/run/s6-reconcile/` (docs/runtime.md):
/// each apply's own, replaced by every apply, checked by
/// tests/live_runtime.rs and tests/boot.rs rather than by the goldens.
fn is_record(path: &str) -> bool {
    path == "run/s6-reconcile" || path.starts_with("run/s6-reconcile/")
}

/// Inode number of every entry under `root` (not following symlinks).
fn inodes(root: &Path) -> std::collections::BTreeMap<String, u64> {
    fn walk(root: &Path, rel: &Path, out: &mut std::collections::BTreeMap<String, u64>) {
        let dir = root.join(rel);
        for e in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let e = e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            let rel = rel.join(e.file_name());
            let md = fs::symlink_metadata(root.join(&rel))
                .unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
            out.insert(rel.to_string_lossy().into_owned(), md.ino());
            if md.is_dir() {
                walk(root, &rel, out);
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(root, Path::new(""), &mut out);
    out
}

fn parse_json(what: &str, out: &Output) -> Result<serde_json::Value, String> {
    serde_json::from_str(&out.stdout).map_err(|e| {
        format!(
            "{what}: stdout is not JSON ({e}); exit {}:\n{}  stderr:\n{}",
            out.exit,
            indent(&out.stdout),
            indent(&out.stderr)
        )
    })
}

fn run_scenario(s: &mut Scenario) {
    let input = match tree::read(&s.dir.join("tree.yaml")) {
        Ok(d) => d,
        Err(e) => return s.fail(e),
    };
    let extra = match read_args(&s.dir) {
        Ok(a) => a,
        Err(e) => return s.fail(e),
    };
    let env = match read_env(&s.dir) {
        Ok(a) => a,
        Err(e) => return s.fail(e),
    };
    let tmp = tree::temp_root(&format!("fixture-{}-", s.name));
    let root = tmp.path();
    if let Err(e) = tree::materialise(root, &input.entries) {
        return s.fail(format!("tree.yaml: {e}"));
    }
    let keep: Vec<_> = MUST_KEEP.iter().filter(|k| k.0 == s.name).collect();
    for &&(_, path, uid, gid, mode) in &keep {
        if owner_mode(root, path) != Some((uid, gid, mode)) {
            return s.fail(format!(
                "tree.yaml: {path} should be {uid}:{gid} {mode:04o} in the input (MUST_KEEP)"
            ));
        }
    }
    let before = dump(root, true);

    let step = |mode: &[&str]| run_reconcile(root, &extra, &env, mode);
    let plan = match step(&["--plan"]) {
        Ok(o) => o,
        Err(e) => return s.fail(e),
    };
    s.golden(
        "plan.txt",
        &format!("{}exit: {}\n", plan.stdout, plan.exit),
        &plan.stderr,
    );

    let plan_json = match step(&["--plan", "--format", "json"]) {
        Ok(o) => o,
        Err(e) => return s.fail(e),
    };
    if let Err(e) = parse_json("--plan --format json", &plan_json) {
        s.fail(e);
    }
    s.golden("plan.json", &plan_json.stdout, &plan_json.stderr);

    // The same plan from the description alone (docs/tree-format.md): byte for byte.
    let input = s.dir.join("tree.yaml");
    for (mode, want) in [
        (&["--plan"][..], &plan),
        (&["--plan", "--format", "json"][..], &plan_json),
    ] {
        match run_tree(&input, &extra, &env, mode) {
            Err(e) => s.fail(e),
            Ok(got) if (&got.stdout, &got.exit) == (&want.stdout, &want.exit) => {}
            Ok(got) => s.fail(format!(
                "{mode:?} --tree tree.yaml differs from --root (exit {} vs {}):\n{}  stderr:\n{}",
                got.exit,
                want.exit,
                diff(&want.stdout, &got.stdout),
                indent(&got.stderr)
            )),
        }
    }

    let unchanged = dump(root, true);
    if unchanged != before {
        s.fail(format!(
            "--plan changed the tree:\n{}",
            diff(&before, &unchanged)
        ));
    }

    let keep_ino: Vec<(&str, Option<u64>)> = KEEP_INODE
        .iter()
        .filter(|k| k.0 == s.name)
        .map(|k| (k.1, inode(root, k.1)))
        .collect();
    for (path, ino) in &keep_ino {
        if ino.is_none() {
            return s.fail(format!("tree.yaml: {path} is missing (KEEP_INODE)"));
        }
    }

    // The whole report (every line prefixed `reconcile:`), unless the
    // scenario's env file says otherwise: what apply did, change by change.
    let mut apply_env = env.clone();
    if !apply_env.iter().any(|(k, _)| k == "S6_VERBOSITY") {
        apply_env.push(("S6_VERBOSITY".into(), "3".into()));
    }
    let apply = match run_reconcile(root, &extra, &apply_env, &[]) {
        Ok(o) => o,
        Err(e) => return s.fail(e),
    };
    s.golden(
        "apply.txt",
        &format!("{}exit: {}\n", apply.stdout, apply.exit),
        &apply.stderr,
    );
    let after = dump(root, true);
    s.golden("after.yaml", &after, &apply.stderr);
    check_snapshot(s, root, &tmp, &extra, &env);
    if let Err(e) = check_apply_lock(root) {
        s.fail(e);
    }

    for (path, ino) in &keep_ino {
        let now = inode(root, path);
        if now != *ino {
            s.fail(format!(
                "apply replaced {path} (inode {ino:?} → {now:?}); it must be left in place"
            ));
        }
    }
    for &&(_, path, uid, gid, mode) in &keep {
        match owner_mode(root, path) {
            Some(got) if got == (uid, gid, mode) => {}
            Some((u, g, m)) => s.fail(format!(
                "SAFETY: apply changed {path}: want {uid}:{gid} {mode:04o}, got {u}:{g} {m:04o}"
            )),
            None => s.fail(format!("SAFETY: apply removed {path}")),
        }
    }

    match step(&["--plan", "--format", "json"]) {
        Err(e) => s.fail(e),
        Ok(again) => match parse_json("second --plan --format json", &again) {
            Err(e) => s.fail(e),
            Ok(v) => {
                let empty = v["changes"].as_array().is_some_and(|c| c.is_empty());
                if !empty {
                    s.fail(format!(
                        "not idempotent: the plan after apply has changes: {}",
                        serde_json::to_string_pretty(&v["changes"]).unwrap_or_default()
                    ));
                }
            }
        },
    }
    let now = dump(root, true);
    if now != after {
        s.fail(format!(
            "--plan after apply changed the tree:\n{}",
            diff(&after, &now)
        ));
    }

    // A second apply does nothing: same tree (the boot log aside, which
    // gains its lines), same inodes (a live s6-supervise keys on them).
    let after = dump(root, false);
    let ino = inodes(root);
    match step(&["--format", "json"]) {
        Err(e) => s.fail(e),
        Ok(again) => match parse_json("second apply --format json", &again) {
            Err(e) => s.fail(e),
            Ok(v) => {
                let empty = v["changes"].as_array().is_some_and(|c| c.is_empty());
                if !empty {
                    s.fail(format!(
                        "not idempotent: a second apply made changes: {}",
                        serde_json::to_string_pretty(&v["changes"]).unwrap_or_default()
                    ));
                }
            }
        },
    }
    let now = dump(root, false);
    if now != after {
        s.fail(format!(
            "a second apply changed the tree:\n{}",
            diff(&after, &now)
        ));
    }
    let ino2 = inodes(root);
    let moved: Vec<String> = ino
        .iter()
        .filter(|(p, _)| !is_boot_log(p) && !is_record(p))
        .filter_map(|(p, i)| match ino2.get(p) {
            Some(j) if j == i => None,
            Some(j) => Some(format!("{p}: inode {i} → {j}")),
            None => Some(format!("{p}: gone")),
        })
        .collect();
    if !moved.is_empty() {
        s.fail(format!(
            "a second apply replaced entries (new inodes):\n{}",
            indent(&moved.join("\n"))
        ));
    }
}

/// After apply: `reconcile snapshot` of the tree, then `--check --tree`
/// of that snapshot, which must print and exit as `--check --root` does
/// (clean, unless the scenario's apply leaves an error behind).
fn check_snapshot(
    s: &mut Scenario,
    root: &Path,
    tmp: &tempfile::TempDir,
    extra: &[String],
    env: &[(String, String)],
) {
    let mut cmd = scrubbed_cmd(&["snapshot", "--root"]);
    cmd.arg(root).args(extra);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let snap = match cmd.output() {
        Ok(o) if o.status.success() => o.stdout,
        Ok(o) => {
            return s.fail(format!(
                "snapshot after apply failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Err(e) => return s.fail(format!("cannot run snapshot: {e}")),
    };
    let file = tmp.path().with_extension("after-snapshot.yaml");
    if let Err(e) = fs::write(&file, snap) {
        return s.fail(format!("{}: {e}", file.display()));
    }
    let from_tree = run_tree(&file, extra, env, &["--check"]);
    let _ = fs::remove_file(&file);
    let from_root = run_reconcile(root, extra, env, &["--check"]);
    match (from_tree, from_root) {
        (Ok(t), Ok(r)) if t.exit == r.exit && t.stdout == r.stdout && t.exit != "3" => {}
        (Ok(t), Ok(r)) => s.fail(format!(
            "--check --tree <snapshot after apply>: exit {} (--root says {}):\n{}  stderr:\n{}",
            t.exit,
            r.exit,
            diff(&r.stdout, &t.stdout),
            indent(&t.stderr)
        )),
        (Err(e), _) | (_, Err(e)) => s.fail(e),
    }
}

/// uid, gid, permission bits.
type OwnerMode = (u32, u32, u32);

/// Owner and mode of `path` under `root` (not following a symlink), if it exists.
fn owner_mode(root: &Path, path: &str) -> Option<OwnerMode> {
    let md = fs::symlink_metadata(root.join(path)).ok()?;
    Some((md.uid(), md.gid(), md.mode() & 0o7777))
}

/// Inode number of `path` under `root` (not following a symlink), if it exists.
fn inode(root: &Path, path: &str) -> Option<u64> {
    fs::symlink_metadata(root.join(path)).ok().map(|m| m.ino())
}

/// Owner and mode of the host files a planted absolute symlink points to.
fn host_snapshot() -> Vec<(&'static str, Option<OwnerMode>)> {
    HOST_GUARDED
        .iter()
        .map(|p| {
            let st = fs::symlink_metadata(p)
                .ok()
                .map(|m| (m.uid(), m.gid(), m.mode() & 0o7777));
            (*p, st)
        })
        .collect()
}

/// Put back any host file a broken tool changed, and say so loudly.
fn host_restore(before: &[(&'static str, Option<OwnerMode>)]) -> Vec<String> {
    let mut damage = Vec::new();
    for (now, (path, was)) in host_snapshot().iter().zip(before) {
        if now.1 == *was {
            continue;
        }
        damage.push(format!(
            "SAFETY: the HOST's {path} changed from {was:?} to {:?}; restored",
            now.1
        ));
        if let Some((uid, gid, mode)) = was {
            let _ = std::os::unix::fs::lchown(path, Some(*uid), Some(*gid));
            let _ = fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(*mode));
        }
    }
    damage
}

#[test]
fn fixture_scenarios() {
    assert!(
        tree::is_root(),
        "fixture scenarios need root (their trees have owners other than the caller); \
         run `cargo test` as root, as CI does"
    );
    let update = std::env::var("UPDATE_GOLDENS").is_ok_and(|v| v == "1");
    let only = std::env::var("FIXTURE").ok().filter(|v| !v.is_empty());
    let mut names: Vec<String> = fs::read_dir(fixtures_dir())
        .expect("read fixtures/")
        .map(|e| e.expect("read fixtures/"))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().into_string().expect("UTF-8 scenario name"))
        .filter(|n| only.as_ref().is_none_or(|o| o == n))
        .collect();
    names.sort();
    assert!(
        !names.is_empty(),
        "no scenario under fixtures/ (FIXTURE={only:?})"
    );

    let host = host_snapshot();
    let mut report = String::new();
    let mut updated = Vec::new();
    for name in &names {
        let mut s = Scenario {
            dir: fixtures_dir().join(name),
            name: name.clone(),
            update,
            failures: Vec::new(),
            updated: Vec::new(),
        };
        run_scenario(&mut s);
        s.failures.extend(host_restore(&host));
        for f in &s.failures {
            let _ = writeln!(report, "[{name}] {f}");
        }
        updated.append(&mut s.updated);
    }
    if !updated.is_empty() {
        let _ = writeln!(
            report,
            "UPDATE_GOLDENS=1 rewrote {} golden(s); review them (git diff fixtures/) \
             and run again without UPDATE_GOLDENS:",
            updated.len()
        );
        for u in &updated {
            let _ = writeln!(report, "  {u}");
        }
    }
    assert!(
        report.is_empty(),
        "fixture scenarios ({} run):\n{report}",
        names.len()
    );
}

/// The harness's own helpers.
mod harness {
    use super::*;

    #[test]
    fn boot_log_timestamps_are_masked_and_nothing_else() {
        let text = "2026-11-26T04:06:17+0000 profile=default prior_state=None action=registered prior_exit=unknown\n\
                    1999-01-02T03:04:05-0130 profile=a prior_state=running action=started prior_exit=clean\n\
                    not a timestamp 2026-11-26T04:06:17+0000\n\
                    2026-11-26 04:06:17+0000 profile=x\n\
                    2026-11-26T04:06:17+0000";
        let file = |path: &str| tree::Entry {
            path: path.into(),
            node: tree::Node::File {
                perms: tree::Perms {
                    uid: 0,
                    gid: 0,
                    mode: 0o644,
                },
                content: tree::Content::Bytes(text.into()),
                links: None,
            },
        };
        let mut entries = vec![
            file("opt/data/logs/container-boot.log"),
            file("opt/data/logs/container-boot.log.1"),
            file("opt/data/logs/other.log"),
        ];
        mask_boot_log(&mut entries);
        let masked = "<ts> profile=default prior_state=None action=registered prior_exit=unknown\n\
                      <ts> profile=a prior_state=running action=started prior_exit=clean\n\
                      not a timestamp 2026-11-26T04:06:17+0000\n\
                      2026-11-26 04:06:17+0000 profile=x\n\
                      <ts>";
        let content = |e: &tree::Entry| match tree::text(e) {
            Some(t) => t.to_string(),
            None => panic!("{e:?}"),
        };
        assert_eq!(content(&entries[0]), masked);
        assert_eq!(content(&entries[1]), masked);
        assert_eq!(content(&entries[2]), text, "only boot logs are masked");
    }

    #[test]
    fn env_files_allow_empty_values_and_refuse_other_lines() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_env(dir.path()).unwrap(), vec![]);
        fs::write(
            dir.path().join("env"),
            "# comment\nGATEWAY_MULTIPLEX_PROFILES=\n\nHERMES_HOME=/srv/h=1\n",
        )
        .unwrap();
        assert_eq!(
            read_env(dir.path()).unwrap(),
            vec![
                ("GATEWAY_MULTIPLEX_PROFILES".to_string(), String::new()),
                ("HERMES_HOME".to_string(), "/srv/h=1".to_string()),
            ]
        );
        fs::write(dir.path().join("env"), "HERMES_HOME\n").unwrap();
        assert!(read_env(dir.path()).unwrap_err().contains("not KEY=VALUE"));
    }

    /// Every environment variable the configuration reads is scrubbed from
    /// the scenarios' runs, so a developer's shell cannot change a golden.
    #[test]
    fn every_variable_the_tool_reads_is_scrubbed() {
        let src =
            fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/desired/config.rs"))
                .expect("read src/desired/config.rs");
        let read: Vec<&str> = src
            .split("env(\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert!(read.len() >= 3, "found {read:?} in src/desired/config.rs");
        for var in read {
            assert!(SCRUBBED_ENV.contains(&var), "{var} is not in SCRUBBED_ENV");
        }
    }
}
