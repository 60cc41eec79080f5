//! s6-reconcile: a boot-time oneshot for s6-overlay containers.
//!
//! The shape is observe → plan → render or apply: [`config`] and [`accounts`]
//! give the desired state, [`scan`] observes the tree, [`plan::plan`] is a pure
//! function of both, [`render`] prints it and [`apply`] executes it through
//! the fd-based primitives in [`fs`].

#![forbid(unsafe_code)]

pub mod accounts;
pub mod app;
pub mod apply;
pub mod audit;
pub mod bootlog;
pub mod cli;
pub mod config;
pub mod effects;
pub mod fs;
pub mod layout;
pub mod lock;
pub mod model;
pub mod names;
pub mod plan;
pub mod print_config;
pub mod render;
pub mod report;
pub mod run;
pub mod scan;
pub mod slot;
pub mod slot_diff;
pub mod state;
pub mod steps;
pub mod tree;
