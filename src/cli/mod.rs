//! The command line, on top of every stage: [`args`] (what `reconcile`
//! accepts, its `--help`), [`run`] (a reconcile run: settings → observe →
//! plan → render or apply → exit code, and the tree-description
//! subcommands) and [`audit`] (`reconcile audit`: what the user can do to
//! each service). Nothing below the command line uses it.

pub mod args;
pub mod audit;
pub mod run;
