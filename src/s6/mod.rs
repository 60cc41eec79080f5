//! s6's vocabulary: the servicedir layout and its modes, the supervise
//! skeleton, profile and slot names, and the findings every stage reports.

pub mod findings;
pub mod layout;
pub mod names;
