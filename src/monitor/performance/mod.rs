//! Model performance over labelled records: metrics, estimated performance, fairness.
//! Pure functions (no I/O, no state), each matching a named reference (scikit-learn, NannyML, fairlearn).

pub mod cbpe;
pub mod fairness;
pub mod metrics;
