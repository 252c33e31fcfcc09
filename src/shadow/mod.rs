//! Shadow traffic: requests vigil itself sends to model versions, never seen by a client and never
//! fed to the live monitors (mirroring, what-if perturbations, adversarial search, explanations).
//!
//! Owns: the algorithms that decide what to ask the model (`attack`, `explain`, `sensitivity`,
//! `stress`), the translation between rows and request bodies (`rows`, `encode`, `answers`), the
//! shadow client behind tower layers and its budget. May not touch: the data path, the routes
//! table, the live windows.
//! Architecture invariant: every shadow request carries `x-vigil-shadow: <kind>` and costs the
//! model at most its configured budget.

pub mod answers;
pub mod attack;
pub mod budget;
pub mod client;
pub mod encode;
mod engine;
pub mod explain;
pub mod importance;
pub mod mirror;
pub mod ondemand;
pub mod probing;
pub mod robustness;
pub mod rows;
pub mod sensitivity;
pub mod stress;
mod whatif;

pub use engine::{Shadow, ShadowHandle, ShadowTap, ShadowView};

use serde::Serialize;

/// A kind of shadow traffic: the value of the `x-vigil-shadow` header and the `kind` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Mirror,
    Sensitivity,
    Stress,
    Adversarial,
    Explain,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Mirror, Kind::Sensitivity, Kind::Stress, Kind::Adversarial, Kind::Explain];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Mirror => "mirror",
            Kind::Sensitivity => "sensitivity",
            Kind::Stress => "stress",
            Kind::Adversarial => "adversarial",
            Kind::Explain => "explain",
        }
    }
}

/// What the model answered for each row of one what-if call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answers {
    /// One score per row: the positive class's probability (binary classifier with a
    /// probability output), the regression value, else the predicted class's index as a number.
    /// NaN where the row's answer is missing or invalid.
    pub scores: Vec<f64>,
    /// One decision per row for a classifier: an index into the model's classes, stable for the
    /// life of one oracle. None for a regression model.
    pub classes: Option<Vec<u32>>,
    /// Rows whose answer was invalid: NaN or infinite, a probability outside [0, 1], missing.
    pub invalid: usize,
}

/// The model, as what-if algorithms see it: rows in, one answer per row out. `rows` is
/// row-major, `rows.len() / width` rows in the feature space of [`rows::Codebook`] (numeric
/// features as numbers, categorical ones as category codes, NaN for missing). One `ask` may
/// become several HTTP requests (`shadow.max_batch_rows`); each is budgeted.
pub trait Oracle {
    fn ask(&mut self, rows: &[f64], width: usize) -> Result<Answers, String>;
}
