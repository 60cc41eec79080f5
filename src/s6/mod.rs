//! s6's vocabulary: the servicedir layout and its modes, the supervise
//! skeleton, profile and slot names.

pub mod layout;
pub mod names;
