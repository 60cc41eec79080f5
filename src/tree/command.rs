//! The `snapshot` and `materialize` subcommands, and reading a description
//! file for `--tree`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::parse::ParseError;
use super::snapshot::{self, ConfigFile};
use super::{Description, dump, parse};
use crate::cli::{Command, Format, Settings};
use crate::model::{Mode, Phase};
use crate::run::{EXIT_FATAL, EXIT_OK, EXIT_USAGE};

/// Largest description read: far above a snapshot of ten thousand slots.
pub const DESCRIPTION_LIMIT: u64 = 256 << 20;

/// Why a description file could not be read (exit 100).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("unable to read {path}: {error}")]
    Read { path: PathBuf, error: String },
    #[error("{0}")]
    Parse(#[from] ParseError),
}

/// Read and parse the description in `path`: a regular file of sane size.
pub fn read_description(path: &Path) -> Result<Description, ReadError> {
    let fail = |error: String| ReadError::Read {
        path: path.to_path_buf(),
        error,
    };
    let f = std::fs::File::open(path).map_err(|e| fail(crate::fs::os_error(&e)))?;
    let md = f.metadata().map_err(|e| fail(crate::fs::os_error(&e)))?;
    if !md.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if md.len() > DESCRIPTION_LIMIT {
        return Err(fail(format!(
            "{} bytes; a description is at most {DESCRIPTION_LIMIT}",
            md.len()
        )));
    }
    let mut bytes = Vec::new();
    f.take(DESCRIPTION_LIMIT)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(crate::fs::os_error(&e)))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let before = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before.len()
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1)
            + 1;
        ParseError {
            file: path.to_path_buf(),
            line,
            column,
            message: "not valid UTF-8".into(),
        }
    })?;
    Ok(parse(&text, path)?)
}

/// Run a subcommand; returns the exit code.
pub fn run(cmd: Command, env: &dyn Fn(&str) -> Option<String>, out: &mut dyn Write) -> i32 {
    match cmd {
        Command::Snapshot {
            root,
            config,
            phases,
        } => run_snapshot(root, config, phases, env, out),
        // Not a tree-description command: `main.rs` runs it.
        Command::Audit(_) => fatal(&"audit is run by the binary, not here", EXIT_USAGE),
        Command::Materialize { file, dir } => {
            let d = match read_description(&file) {
                Ok(d) => d,
                Err(e) => return fatal(&e, EXIT_USAGE),
            };
            match super::materialize::materialize(&d, &dir) {
                Ok(()) => EXIT_OK,
                Err(e) => fatal(&e, e.exit_code()),
            }
        }
    }
}

fn fatal(e: &dyn std::fmt::Display, code: i32) -> i32 {
    eprintln!("reconcile: fatal: {e}");
    code
}

fn run_snapshot(
    root: PathBuf,
    config: Option<PathBuf>,
    mut phases: Vec<Phase>,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
) -> i32 {
    if !root.is_dir() {
        return fatal(
            &format!("--root {}: not a directory", root.display()),
            EXIT_USAGE,
        );
    }
    if phases.is_empty() {
        phases = Phase::ALL.to_vec();
    }
    phases.sort();
    phases.dedup();
    let settings = Settings {
        mode: Mode::Plan,
        root: root.clone(),
        config: config.clone(),
        format: Format::Human,
        phases: phases.clone(),
        tree: None,
        lock_wait: std::time::Duration::ZERO,
        style: Default::default(),
        print_config: false,
    };
    let cfg = match crate::run::load_config(&settings, env) {
        Ok(c) => c,
        Err(e) => return fatal(&e, EXIT_USAGE),
    };
    let given = match &config {
        None => None,
        Some(p) => match std::fs::read(p).and_then(|b| Ok((b, std::fs::metadata(p)?))) {
            Ok((bytes, md)) => Some(ConfigFile {
                bytes,
                perms: snapshot::perms_of(&md),
            }),
            Err(e) => {
                let msg = format!(
                    "unable to read {}: {}",
                    p.display(),
                    crate::fs::os_error(&e)
                );
                return fatal(&msg, EXIT_USAGE);
            }
        },
    };
    match snapshot::snapshot(&root, &cfg, given, &phases) {
        // A description that did not reach its reader (a closed pipe, a
        // full disk) is a failed snapshot: CI must not compare half a tree.
        Ok(d) => match out.write_all(dump(&d).as_bytes()) {
            Ok(()) => EXIT_OK,
            Err(e) => fatal(
                &format!(
                    "unable to write the description to stdout: {}",
                    crate::fs::os_error(&e)
                ),
                EXIT_FATAL,
            ),
        },
        Err(errors) => {
            for e in &errors {
                eprintln!("reconcile: error: {e}");
            }
            fatal(
                &format!(
                    "{} entries could not be described; no description printed",
                    errors.len()
                ),
                EXIT_FATAL,
            )
        }
    }
}
