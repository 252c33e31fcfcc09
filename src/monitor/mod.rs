//! Monitoring: the reference profile, the live windows and the drift tests over them.

pub mod reference;
pub mod stats;
