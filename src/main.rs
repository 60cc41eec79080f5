//! `reconcile`: parse the command line, run the library, map the outcome
//! to an exit code.
//!
//! The exit code is the run's whatever happens to stdout: a report that
//! cannot be written (a closed pipe, a full disk) is said on stderr and
//! never turns 1 or 3 into 0. With `--format json` a run stopped before
//! anything could be done (bad usage, configuration or accounts) still
//! prints one JSON object, with the error in `errors`.
//!
//! The library's errors are typed; the exit code and the JSON error object
//! are decided from them. `anyhow` is used only here, after that, for the
//! steps of this file that can still fail (writing stdout), each with its
//! context.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use s6_reconcile::cli::args::{Args, Format};
use s6_reconcile::cli::run::{self, EXIT_FATAL, EXIT_USAGE};
use s6_reconcile::desired::model::Mode;
use s6_reconcile::report::render::escaped;
use s6_reconcile::s6::findings::Failure;

fn main() {
    let raw: Vec<OsString> = std::env::args_os().collect();
    let mut args = parse(&raw);
    let (mode, format) = (mode_of(&args), args.format);
    if let Err(e) = s6_reconcile::cli::args::check_env(|k| std::env::var_os(k)) {
        say(&format!("reconcile: fatal: {e}"));
        if format == Format::Json {
            usage_json(mode, "read the environment", e.to_string());
        }
        std::process::exit(EXIT_USAGE);
    }
    init_logging(&args);
    if let Some(cmd) = args.command.take() {
        std::process::exit(match cmd {
            s6_reconcile::cli::args::Command::Audit(a) => audit_command(a),
            cmd => tree_command(cmd),
        });
    }
    let settings = match args.validate() {
        Ok(s) => s,
        Err(e) => {
            say(&format!("reconcile: fatal: {e}"));
            if format == Format::Json {
                usage_json(mode, "check the command line", e.to_string());
            }
            std::process::exit(EXIT_USAGE);
        }
    };
    std::process::exit(reconcile(&settings, mode, format));
}

/// The command line, or the process ends: `--help`/`--version` exit 0, a
/// usage error exits 100 (with one JSON object when JSON was asked for).
fn parse(raw: &[OsString]) -> Args {
    match Args::try_parse_from(raw) {
        Ok(a) => a,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            if usage && wants_json(raw) {
                let error = e.to_string();
                let first = error.lines().next().unwrap_or_default();
                let error = first.strip_prefix("error: ").unwrap_or(first).to_string();
                if raw.get(1).is_some_and(|a| a == "audit") {
                    audit_usage_json(error);
                } else {
                    usage_json(raw_mode(raw), "parse the command line", error);
                }
            }
            std::process::exit(if usage { EXIT_USAGE } else { 0 });
        }
    }
}

/// Log lines as `reconcile: <level>: <message>` on stderr.
fn init_logging(args: &Args) {
    env_logger::Builder::new()
        .filter_level(args.log_level())
        .parse_default_env()
        .format(|buf, record| {
            writeln!(
                buf,
                "reconcile: {}: {}",
                record.level().as_str().to_lowercase(),
                escaped(&record.args().to_string())
            )
        })
        .init();
}

/// A tree-description command (`snapshot`, `materialize`...): its exit code.
fn tree_command(cmd: s6_reconcile::cli::args::Command) -> i32 {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let code = s6_reconcile::cli::run::subcommands::run(
        cmd,
        &s6_reconcile::desired::config::env::process,
        &mut out,
    );
    // A closed pipe is a failure too (`snapshot | head` must not pass
    // for a whole description); an earlier failure already said so.
    let flushed = out
        .flush()
        .map_err(os)
        .context("unable to write the description to stdout");
    match flushed {
        Err(e) if code == 0 => {
            say(&format!("reconcile: fatal: {e:#}"));
            EXIT_FATAL
        }
        _ => code,
    }
}

/// `reconcile audit` (docs/audit.md): its exit code; it says itself when
/// its report could not be written.
fn audit_command(args: s6_reconcile::cli::args::AuditArgs) -> i32 {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    s6_reconcile::cli::audit::run(args, &s6_reconcile::desired::config::env::process, &mut out)
}

/// Plan, check or apply: the run's exit code, whatever happens to stdout.
fn reconcile(settings: &s6_reconcile::cli::args::Settings, mode: Mode, format: Format) -> i32 {
    // Buffered: the report has a line or two per slot, and a locked stdout
    // alone makes one write(2) per line.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match run::run(
        settings,
        &s6_reconcile::desired::config::env::process,
        &mut out,
    ) {
        Ok(ran) => {
            let written = ran
                .output
                .and_then(|()| out.flush())
                .map_err(os)
                .context("unable to write the report to stdout");
            match written {
                Ok(()) => ran.code,
                Err(e) => {
                    let code = ran.code_if_unwritten;
                    let level = if code == EXIT_FATAL {
                        "fatal"
                    } else {
                        "warning"
                    };
                    say(&format!("reconcile: {level}: {e:#} (exit {code})"));
                    code
                }
            }
        }
        Err(e) => {
            say(&format!("reconcile: fatal: {e}"));
            // Decided from the typed error: the code and the JSON object.
            let code = e.exit_code();
            if format == Format::Json {
                let written = run::fatal_json(mode, e.failure(), &mut out)
                    .and_then(|()| out.flush())
                    .map_err(os)
                    .context("unable to write the report to stdout");
                if let Err(we) = written {
                    say(&format!("reconcile: warning: {we:#}"));
                }
            }
            code
        }
    }
}

/// An OS error as s6 tools word it (`Broken pipe`), for a context chain.
fn os(e: std::io::Error) -> anyhow::Error {
    anyhow::Error::msg(s6_reconcile::fs::os_error(&e))
}

/// A line on stderr, escaped (it may carry the user's bytes); a closed
/// stderr is not worth a panic.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{}", escaped(line));
}

fn mode_of(args: &Args) -> Mode {
    if args.check {
        Mode::Check
    } else if args.plan {
        Mode::Plan
    } else {
        Mode::Apply
    }
}

/// `--format json` asked for on a command line clap refused.
fn wants_json(raw: &[OsString]) -> bool {
    raw.windows(2).any(|w| w[0] == "--format" && w[1] == "json")
        || raw.iter().any(|a| a == "--format=json")
}

fn raw_mode(raw: &[OsString]) -> Mode {
    if raw.iter().any(|a| a == "--check") {
        Mode::Check
    } else if raw.iter().any(|a| a == "--plan") {
        Mode::Plan
    } else {
        Mode::Apply
    }
}

/// The JSON object for a usage error (exit 100).
fn usage_json(mode: Mode, op: &str, error: String) {
    let failure = Failure {
        op: op.into(),
        path: PathBuf::new(),
        error: error.into(),
    };
    let mut out = std::io::stdout().lock();
    let _ = run::fatal_json(mode, failure, &mut out).and_then(|()| out.flush());
}

/// The audit's JSON object for a usage error (exit 100).
fn audit_usage_json(error: String) {
    let error = s6_reconcile::cli::audit::render::ErrorJson {
        op: "parse the command line".into(),
        path: String::new(),
        error,
    };
    let mut out = std::io::stdout().lock();
    let _ =
        s6_reconcile::cli::audit::render::fatal_json(error, &mut out).and_then(|()| out.flush());
}
