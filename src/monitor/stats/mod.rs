//! Statistics: pure functions over samples and bin counts, matching scipy / scikit-learn / Evidently
//! on the same data (../shared/drift-reference.md; tolerances in tests/stats_*.rs).
//!
//! Owns: the numbers. May not touch: anything stateful (windows, metrics, config). Every function
//! is total: empty or degenerate inputs give NaN or a documented value, never a panic.

pub mod binning;
pub mod chi2;
pub mod correction;
pub mod distance;
pub mod ks;
pub mod merge;
pub mod sort;
pub mod wasserstein;
pub mod ztest;
