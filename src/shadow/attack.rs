//! Black-box adversarial search (being written).
