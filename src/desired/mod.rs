//! What should be: the configuration, the accounts, the application's
//! settings and profile state, the slot contents rendered from templates,
//! and the model built from them.

pub(crate) mod accounts;
pub mod application;
pub mod config;
pub mod model;
pub mod slot;
pub mod state;
