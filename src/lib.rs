//! s6-reconcile: a boot-time oneshot for s6-overlay containers.
//!
//! The shape is observe → plan → render or apply, and the modules follow it,
//! each using only the ones listed before it: [`fs`] (fd-based primitives),
//! [`s6`] (s6's vocabulary), [`desired`] (what should be), [`observe`] (what
//! is), `plan` (a pure function of both), `apply` (executes a plan through
//! `fs`), [`report`] (what a run reports, rendered as text or JSON), [`tree`]
//! (tree descriptions), then the command line: [`cli`] (its arguments, a
//! run, and the `audit` command).

#![forbid(unsafe_code)]

pub mod apply;
pub mod cli;
pub mod desired;
pub mod fs;
pub mod observe;
pub(crate) mod plan;
pub mod report;
pub mod s6;
pub mod tree;
