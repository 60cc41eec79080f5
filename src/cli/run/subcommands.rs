//! The `snapshot` and `materialize` subcommands.

use std::io::Write;
use std::path::PathBuf;

use crate::cli::args::{Command, Format, Settings};
use crate::cli::run::{EXIT_FATAL, EXIT_OK, EXIT_USAGE};
use crate::desired::model::{Mode, Phase};
use crate::tree::materialize::{MaterializeError, materialize};
use crate::tree::snapshot::{self, ConfigFile};
use crate::tree::{dump, read_description};

/// Run a subcommand; returns the exit code.
pub fn run(
    cmd: Command,
    env: &crate::desired::config::env::Lookup<'_>,
    out: &mut dyn Write,
) -> i32 {
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
            match materialize(&d, &dir) {
                Ok(()) => EXIT_OK,
                Err(e) => fatal(&e, materialize_exit_code(&e)),
            }
        }
    }
}

/// 100 for what the description or the target directory is, 111 for
/// system errors.
fn materialize_exit_code(e: &MaterializeError) -> i32 {
    match e {
        MaterializeError::Fs { .. } => EXIT_FATAL,
        _ => EXIT_USAGE,
    }
}

fn fatal(e: &dyn std::fmt::Display, code: i32) -> i32 {
    eprintln!(
        "reconcile: fatal: {}",
        crate::report::render::escaped(&e.to_string())
    );
    code
}

fn run_snapshot(
    root: PathBuf,
    config: Option<PathBuf>,
    mut phases: Vec<Phase>,
    env: &crate::desired::config::env::Lookup<'_>,
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
        runtime: false,
    };
    let cfg = match crate::desired::config::file::load_config(
        &settings.root,
        settings.config.as_deref(),
        env,
    ) {
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
        Ok((d, cut)) => {
            for c in &cut {
                eprintln!("reconcile: warning: {c}");
            }
            match out.write_all(dump(&d).as_bytes()) {
                Ok(()) => EXIT_OK,
                Err(e) => fatal(
                    &format!(
                        "unable to write the description to stdout: {}",
                        crate::fs::os_error(&e)
                    ),
                    EXIT_FATAL,
                ),
            }
        }
        Err(errors) => {
            for e in &errors {
                eprintln!(
                    "reconcile: error: {}",
                    crate::report::render::escaped(&e.to_string())
                );
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
