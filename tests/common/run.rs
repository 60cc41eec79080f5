//! Running the built `reconcile` and reading what it left: the one copy of
//! these helpers for every test file (the environment scrubbed of the
//! container variables, the finished run with its assertions, owners and
//! modes on disk).

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The container environment the tool reads; a developer's shell must not
/// change what a test sees.
pub const SCRUBBED_ENV: [&str; 6] = [
    "HERMES_HOME",
    "S6_PROFILE_GATEWAY_SCANDIR",
    "GATEWAY_MULTIPLEX_PROFILES",
    "HERMES_GATEWAY_NO_SUPERVISE",
    "RUST_LOG",
    "S6_VERBOSITY",
];

/// A finished command, with its output as text.
#[derive(Debug)]
pub struct Run {
    pub cmd: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with the whole run unless it exited 0.
    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert!(self.success(), "expected exit 0:\n{self}");
        self
    }

    /// Everything, for assertion messages.
    pub fn show(&self) -> String {
        self.to_string()
    }

    #[track_caller]
    pub fn assert_exit(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "{self}");
        self
    }

    /// stdout has a line equal to `line`.
    #[track_caller]
    pub fn assert_line(&self, line: &str) -> &Self {
        assert!(
            self.stdout.lines().any(|l| l == line),
            "no line {line:?} on stdout:\n{self}"
        );
        self
    }

    /// Whether this run was an apply (no `--plan`, `--check`): its human
    /// lines all start with `reconcile: ` (docs/boot-output.md).
    pub fn is_apply(&self) -> bool {
        !self.cmd.split(' ').any(|w| w == "--plan" || w == "--check")
    }

    /// stdout has the report line `line`: as written for a plan, with
    /// `reconcile: ` in front for an apply. For loops over both.
    #[track_caller]
    pub fn assert_report_line(&self, line: &str) -> &Self {
        if self.is_apply() {
            self.assert_line(&format!("reconcile: {line}"))
        } else {
            self.assert_line(line)
        }
    }

    /// stdout has a line containing every one of `parts`.
    #[track_caller]
    pub fn assert_line_with(&self, parts: &[&str]) -> &Self {
        assert!(
            self.stdout
                .lines()
                .any(|l| parts.iter().all(|p| l.contains(p))),
            "no line with {parts:?} on stdout:\n{self}"
        );
        self
    }

    #[track_caller]
    pub fn assert_no_line_with(&self, part: &str) -> &Self {
        assert!(
            !self.stdout.lines().any(|l| l.contains(part)),
            "unexpected {part:?} on stdout:\n{self}"
        );
        self
    }

    /// The one `reconcile: profile=<name> ...` line.
    #[track_caller]
    pub fn profile_line(&self, name: &str) -> &str {
        let prefix = format!("reconcile: profile={name} ");
        let lines: Vec<&str> = self
            .stdout
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .collect();
        assert_eq!(lines.len(), 1, "profile {name}:\n{self}");
        lines[0]
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {}\nexit: {:?}\n--- stdout\n{}--- stderr\n{}",
            self.cmd, self.code, self.stdout, self.stderr
        )
    }
}

/// Run `cmd` (stdin closed) to its end.
pub fn run(mut cmd: Command) -> Run {
    let desc = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(shell_word)
        .collect::<Vec<_>>()
        .join(" ");
    let Output {
        status,
        stdout,
        stderr,
    } = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    Run {
        cmd: desc,
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// `arg` as it would be typed in a shell, so a failing command can be rerun.
pub fn shell_word(arg: &OsStr) -> String {
    let text = arg.to_string_lossy();
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-_./=:,+@".contains(&b);
    if !text.is_empty() && text.bytes().all(plain) {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The built `reconcile` with `args`, in the caller's environment less
/// the container variables ([`SCRUBBED_ENV`]), with `TZ=UTC` and `/` as its
/// working directory, not yet run.
pub fn scrubbed_cmd<S: AsRef<OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reconcile"));
    cmd.args(args).env("TZ", "UTC").current_dir("/");
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// The built `reconcile` with `--root <root>`, `args` and `env`, in a
/// scrubbed environment ([`scrubbed_cmd`]), not yet run.
pub fn reconcile_cmd<S: AsRef<OsStr>>(root: &Path, args: &[S], env: &[(&str, &str)]) -> Command {
    let mut cmd = scrubbed_cmd(&[OsStr::new("--root"), root.as_os_str()]);
    cmd.args(args).envs(env.iter().copied());
    cmd
}

/// The built `reconcile ARGS --root ROOT` with nothing of the caller's
/// environment but `env` (the operator's variables: `S6_VERBOSITY`,
/// `NO_COLOR`, `TERM`...), run to its end.
pub fn reconcile_bare(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = bare_cmd(args);
    cmd.arg("--root").arg(root).envs(env.iter().copied());
    run(cmd)
}

/// The built `reconcile` with `args` and an empty environment, not yet run.
pub fn bare_cmd<S: AsRef<OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reconcile"));
    cmd.args(args).env_clear();
    cmd
}

/// [`reconcile`] under a shell's resource limits (`limits`: `ulimit -s
/// 1024 && ulimit -n 1024`, say), as a small container would run it.
pub fn reconcile_limited(root: &Path, limits: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{limits} && exec \"$0\" --root \"$@\""))
        .arg(env!("CARGO_BIN_EXE_reconcile"))
        .arg(root)
        .args(args)
        .env("TZ", "UTC")
        .current_dir("/");
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    run(cmd)
}

/// Run the built `reconcile` on `root` with `args`.
pub fn reconcile(root: &Path, args: &[&str]) -> Run {
    run(reconcile_cmd(root, args, &[]))
}

/// [`reconcile`] with extra environment variables.
pub fn reconcile_env(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    run(reconcile_cmd(root, args, env))
}

/// Owner, group and permission bits (incl. setgid/sticky) of `path`,
/// without following a symlink.
pub fn owner_mode(path: &Path) -> (u32, u32, u32) {
    let m = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

/// `path` has this owner, group and mode (printed in octal on failure).
#[track_caller]
pub fn assert_owner_mode(path: &Path, uid: u32, gid: u32, mode: u32) {
    let (u, g, m) = owner_mode(path);
    assert_eq!(
        (u, g, format!("{m:04o}")),
        (uid, gid, format!("{mode:04o}")),
        "owner:group and mode of {}",
        path.display()
    );
}
