//! Model performance over labelled records: metrics, estimated performance, fairness.
//! Owns: the labelled windows and their evaluation. Runs on the analysis thread only.

pub mod target;
pub mod window;
