//! Shadow traffic: requests vigil itself sends to model versions, never seen by a client and never
//! fed to the live monitors (mirroring, what-if perturbations, adversarial search, explanations).
//!
//! Owns: the algorithms that decide what to ask the model (`attack`, `explain`), and (next) the
//! shadow client behind tower layers and its budget. May not touch: the data path, the routes
//! table, the live windows.
//! Architecture invariant: every shadow request carries `x-vigil-shadow: <kind>` and costs the
//! model at most its configured budget.

pub mod attack;
pub mod explain;
