//! `reconcile`: parse the command line, run the library, map the outcome
//! to an exit code.

use std::io::Write;

use clap::Parser;
use s6_reconcile::cli::Args;
use s6_reconcile::run::{self, EXIT_USAGE};

fn main() {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            std::process::exit(if usage { EXIT_USAGE } else { 0 });
        }
    };
    env_logger::Builder::new()
        .filter_level(args.log_level())
        .parse_default_env()
        .format(|buf, record| {
            writeln!(
                buf,
                "reconcile: {}: {}",
                record.level().as_str().to_lowercase(),
                record.args()
            )
        })
        .init();
    let settings = match args.validate() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("reconcile: fatal: {e}");
            std::process::exit(EXIT_USAGE);
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let code = match run::run(&settings, &|k| std::env::var(k).ok(), &mut out) {
        Ok(code) => code,
        // A closed stdout (`reconcile --plan | head`) is not worth a message.
        Err(run::Fatal::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            let _ = out.flush();
            eprintln!("reconcile: fatal: {e}");
            e.exit_code()
        }
    };
    let _ = out.flush();
    std::process::exit(code);
}
