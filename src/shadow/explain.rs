//! Black-box explanations (being written).
