//! `reconcile`: parse the command line, run the library, map the outcome
//! to an exit code.

use std::io::Write;

use clap::Parser;
use s6_reconcile::cli::Args;
use s6_reconcile::run::{self, EXIT_USAGE};

fn main() {
    let mut args = match Args::try_parse() {
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
    if let Some(cmd) = args.command.take() {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let code = s6_reconcile::tree::command::run(cmd, &|k| std::env::var(k).ok(), &mut out);
        let code = match out.flush() {
            Err(e) if code == 0 && e.kind() != std::io::ErrorKind::BrokenPipe => {
                eprintln!("reconcile: fatal: unable to write the description: {e}");
                s6_reconcile::run::EXIT_FATAL
            }
            _ => code,
        };
        std::process::exit(code);
    }
    let settings = match args.validate() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("reconcile: fatal: {e}");
            std::process::exit(EXIT_USAGE);
        }
    };
    // Buffered: the report has a line or two per slot, and a locked stdout
    // alone makes one write(2) per line. The final flush's error is the
    // run's, so a failed write still ends as a fatal output error.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let result = run::run(&settings, &|k| std::env::var(k).ok(), &mut out)
        .and_then(|code| out.flush().map(|()| code).map_err(run::Fatal::Output));
    let code = match result {
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
