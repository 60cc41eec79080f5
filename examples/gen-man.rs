//! Writes the `reconcile(8)` man page, generated from the clap definition
//! (`s6_reconcile::cli::args::command()`), so the page and `--help` never disagree.
//!
//! ```text
//! cargo run --example gen-man -- OUT      write the page to OUT (e.g. reconcile.8)
//! cargo run --example gen-man             write it to stdout
//! ```
//! `packaging/build-deb.sh` runs it and installs the gzipped page as
//! `/usr/share/man/man8/reconcile.8.gz`.
//!
//! clap_mangen renders the title, synopsis and options. The long description
//! and the after-help text are laid out by hand in columns and lists, so they
//! are emitted unfilled (`.nf`), one man section per titled paragraph
//! ("Exit codes:" becomes EXIT STATUS), instead of being reflowed.

use std::io::Write;
use std::process::ExitCode;

/// Man section titles for the after-help paragraphs, by their first line.
const SECTION_TITLES: [(&str, &str); 3] = [
    ("Exit codes", "EXIT STATUS"),
    ("Environment", "ENVIRONMENT"),
    ("Examples", "EXAMPLES"),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() > 1 || args.first().is_some_and(|a| a.starts_with('-')) {
        eprintln!("usage: gen-man [OUT]");
        return ExitCode::from(100);
    }
    let page = match render() {
        Ok(page) => page,
        Err(e) => {
            eprintln!("gen-man: fatal: unable to render the man page: {e}");
            return ExitCode::from(111);
        }
    };
    let written = match args.first() {
        Some(out) => std::fs::write(out, &page).map_err(|e| format!("unable to write {out}: {e}")),
        None => std::io::stdout()
            .write_all(&page)
            .map_err(|e| format!("unable to write to stdout: {e}")),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen-man: fatal: {e}");
            ExitCode::from(111)
        }
    }
}

fn render() -> std::io::Result<Vec<u8>> {
    let cmd = s6_reconcile::cli::args::command();
    // Section 8: system administration commands, run by root at boot.
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("System Administration");
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;

    let description = cmd
        .get_long_about()
        .or(cmd.get_about())
        .map(|s| s.to_string())
        .unwrap_or_default();
    // The first paragraph repeats the one-line NAME; skip it.
    let description = match description.split_once("\n\n") {
        Some((first, rest)) if cmd.get_about().is_some_and(|a| a.to_string() == first) => {
            rest.to_string()
        }
        _ => description,
    };
    write_section(&mut page, "DESCRIPTION", &description)?;

    man.render_options_section(&mut page)?;

    if let Some(after) = cmd.get_after_long_help().or(cmd.get_after_help()) {
        for para in after.to_string().split("\n\n") {
            let Some((head, body)) = para.split_once('\n') else {
                write_section(&mut page, "NOTES", para)?;
                continue;
            };
            let head = head.trim_end_matches(':');
            let title = SECTION_TITLES
                .iter()
                .find(|(prefix, _)| head.starts_with(prefix))
                .map(|(_, title)| title.to_string())
                .unwrap_or_else(|| head.to_uppercase());
            write_section(&mut page, &title, body)?;
        }
    }

    write_section(
        &mut page,
        "FILES",
        "/etc/s6-reconcile/config.yaml\n    \
         the configuration (read below --root); built-in defaults when absent\n\
         /usr/share/doc/s6-reconcile/examples/config.yaml\n    \
         every key with its default, documented (Debian package)\n\
         /usr/share/s6-reconcile/\n    \
         the cont-init script and the s6-rc oneshot definition (Debian package)",
    )?;
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// A section whose body keeps its line breaks and indentation.
fn write_section(out: &mut Vec<u8>, title: &str, body: &str) -> std::io::Result<()> {
    writeln!(out, ".SH \"{}\"", title.replace('"', ""))?;
    writeln!(out, ".nf")?;
    for line in body.trim_matches('\n').lines() {
        writeln!(out, "{}", escape_line(line))?;
    }
    writeln!(out, ".fi")
}

/// Escape one line of text for roff: backslashes, hyphens (so they stay
/// ASCII minus signs that can be searched and pasted) and a leading control
/// character.
fn escape_line(line: &str) -> String {
    let mut s = String::with_capacity(line.len() + 8);
    if line.starts_with(['.', '\'']) {
        s.push_str("\\&");
    }
    for c in line.chars() {
        match c {
            '\\' => s.push_str("\\e"),
            '-' => s.push_str("\\-"),
            _ => s.push(c),
        }
    }
    s
}
