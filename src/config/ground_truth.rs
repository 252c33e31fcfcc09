//! The ground-truth half of the schema: the prediction log (`[prediction_log]`), label feedback
//! (`[feedback]`) and the performance monitors over labelled records (`[performance]`).

use super::{duration, ConfigError, WindowSpec};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PredictionLogConfig {
    /// Write every live record (request id, row, version, time, features, predictions) to
    /// `predictions.db` (SQLite, WAL) in the state dir. Feedback needs it: labels join there.
    pub enabled: bool,
    /// A batch is written at the latest this long after its first row arrived. After a SIGKILL,
    /// at most this much is lost; SIGTERM loses nothing.
    #[serde(with = "duration::serde")]
    pub flush_interval: Duration,
    /// ... or as soon as this many rows are waiting. Small transactions keep each write short,
    /// so the writer never holds a core for long while the data path wants it.
    pub flush_rows: usize,
    /// Rows waiting for the writer; beyond this they are dropped and counted
    /// (`vigil_prediction_log_dropped_total`): the log never slows analysis or the data path.
    pub queue_rows: usize,
    /// Rows older than this (by prediction time) are deleted. "0s": no age limit.
    #[serde(with = "duration::serde")]
    pub max_age: Duration,
    /// At most this many rows are kept; the oldest go first. 0: no limit.
    pub max_rows: u64,
}

impl Default for PredictionLogConfig {
    fn default() -> Self {
        PredictionLogConfig {
            enabled: true,
            flush_interval: Duration::from_millis(200),
            flush_rows: 256,
            queue_rows: 100_000,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_rows: 10_000_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedbackConfig {
    /// File holding the bearer token `POST /feedback` requires (trailing newline ignored).
    /// `VIGIL_FEEDBACK_TOKEN` wins. Neither: feedback is open. Separate from the admin token, so
    /// a labelling job cannot change versions.
    pub token_file: Option<PathBuf>,
    /// Largest `POST /feedback` body.
    pub max_body_bytes: usize,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        FeedbackConfig { token_file: None, max_body_bytes: 16 * 1024 * 1024 }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Classification when the prediction column holds classes (categorical or integer values in
    /// the reference) or `probability` is set; regression otherwise.
    #[default]
    Auto,
    Classification,
    Regression,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerformanceConfig {
    /// Track performance over labelled records (needs the prediction log and a reference).
    pub enabled: bool,
    pub task: Task,
    /// The prediction column (a name from `schema.predictions`) holding the predicted class, or
    /// the predicted value for regression. Default: the first prediction column that is not a
    /// probability.
    pub prediction: Option<String>,
    /// Binary: the prediction column holding P(positive class). Multi-class: the output whose
    /// columns `name[k]` hold the probability of `classes[k]`. Enables ROC-AUC, PR-AUC, log loss,
    /// Brier, calibration and the estimated (CBPE) figures. Without `prediction`, the predicted
    /// class is `probability >= threshold` (binary) or the most probable class.
    pub probability: Option<String>,
    /// Class labels of the probability columns, in order. Default: "0", "1", ... (binary: "0", "1").
    pub classes: Vec<String>,
    /// The positive class of a binary model (precision, recall, F1, AUC, fairness are about it).
    pub positive_class: String,
    /// Decision threshold on `probability` for a binary model.
    pub threshold: f64,
    /// Windows of labelled records, each a count ("1000": the latest 1,000 predictions that have
    /// a label) or a duration ("1h": predictions of the last hour that have a label).
    /// `GET /admin/performance?window=` picks one; metrics are exported for the first.
    pub windows: Vec<WindowSpec>,
    /// Records kept per version and window at most (bounds a time window's memory).
    pub max_records: usize,
    /// Equal-width bins of the expected calibration error.
    pub calibration_bins: usize,
    /// Fewer labelled records than this in a window: figures are reported, no degradation flag.
    pub min_records: usize,
    /// Validation metrics of the model (accuracy, precision, recall, f1, roc_auc, pr_auc,
    /// log_loss, brier, mae, rmse, r2, mape). The gap (live − baseline) is exported.
    pub baseline: BTreeMap<String, f64>,
    /// A live metric worse than its baseline by more than this (absolute) raises the
    /// degradation flag (`vigil_model_degraded`): the overfitting check.
    pub margin: f64,
    /// Groups to break every metric down by (fairness).
    pub segments: Vec<SegmentConfig>,
}

impl Default for PerformanceConfig {
    fn default() -> Self {
        PerformanceConfig {
            enabled: true,
            task: Task::Auto,
            prediction: None,
            probability: None,
            classes: Vec::new(),
            positive_class: "1".into(),
            threshold: 0.5,
            windows: vec![WindowSpec::Count(1000), WindowSpec::Time(Duration::from_secs(3600))],
            max_records: 100_000,
            calibration_bins: 10,
            min_records: 30,
            baseline: BTreeMap::new(),
            margin: 0.05,
            segments: Vec::new(),
        }
    }
}

/// One way to split records into groups.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentConfig {
    /// The segment's name in reports and metrics.
    pub name: String,
    /// A feature column: its value is the group.
    #[serde(default)]
    pub feature: Option<String>,
    /// Or a JSON pointer into the request body, for a field the model does not use (e.g.
    /// `/parameters/region`); an array as long as the batch gives one group per row.
    #[serde(default)]
    pub pointer: Option<String>,
    /// For a numeric value: bucket edges, e.g. [30, 50] gives "(-inf, 30]", "(30, 50]", "(50, inf)".
    #[serde(default)]
    pub edges: Vec<f64>,
}

/// Metrics where lower is better (the others: higher is better).
pub const LOWER_IS_BETTER: [&str; 6] = ["log_loss", "brier", "mae", "rmse", "mape", "ece"];
/// Names `performance.baseline` accepts.
pub const BASELINE_METRICS: [&str; 13] = [
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "ece",
    "mae",
    "rmse",
    "r2",
    "mape",
];

impl PredictionLogConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.flush_interval.is_zero() {
            return Err(ConfigError::invalid(
                "prediction_log.flush_interval",
                "0s",
                "a positive duration such as \"200ms\"",
            ));
        }
        for (key, v) in [("prediction_log.flush_rows", self.flush_rows), ("prediction_log.queue_rows", self.queue_rows)]
        {
            if v == 0 {
                return Err(ConfigError::invalid(key, "0", "a positive number"));
            }
        }
        Ok(())
    }
}

impl PerformanceConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return Err(ConfigError::invalid(
                "performance.threshold",
                &self.threshold.to_string(),
                "a probability in (0, 1)",
            ));
        }
        if self.windows.is_empty() {
            return Err(ConfigError::invalid(
                "performance.windows",
                "[]",
                "at least one window, e.g. [\"1000\", \"1h\"]",
            ));
        }
        for (key, v) in
            [("performance.max_records", self.max_records), ("performance.calibration_bins", self.calibration_bins)]
        {
            if v == 0 {
                return Err(ConfigError::invalid(key, "0", "a positive number"));
            }
        }
        if !(self.margin.is_finite() && self.margin >= 0.0) {
            return Err(ConfigError::invalid("performance.margin", &self.margin.to_string(), "a number >= 0"));
        }
        for (name, v) in &self.baseline {
            if !BASELINE_METRICS.contains(&name.as_str()) {
                return Err(ConfigError::invalid(
                    &format!("performance.baseline.{name}"),
                    &v.to_string(),
                    format!("one of the metrics {}", BASELINE_METRICS.join(", ")),
                ));
            }
            if !v.is_finite() {
                return Err(ConfigError::invalid(
                    &format!("performance.baseline.{name}"),
                    &v.to_string(),
                    "a finite number",
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, s) in self.segments.iter().enumerate() {
            let key = |f: &str| format!("performance.segments[{i}].{f}");
            if s.name.is_empty() || !names.insert(s.name.as_str()) {
                return Err(ConfigError::invalid(&key("name"), &s.name, "a non-empty name, unique among segments"));
            }
            match (&s.feature, &s.pointer) {
                (Some(_), None) => {}
                (None, Some(p)) => {
                    if crate::codec::check_pointer(p).is_err() {
                        return Err(ConfigError::invalid(
                            &key("pointer"),
                            p,
                            "a JSON pointer (RFC 6901) such as \"/parameters/region\"",
                        ));
                    }
                }
                _ => {
                    return Err(ConfigError::invalid(
                        &key("feature"),
                        s.feature.as_deref().unwrap_or("(none)"),
                        "exactly one of feature = \"COLUMN\" or pointer = \"/json/pointer\"",
                    ))
                }
            }
            if s.edges.iter().any(|e| !e.is_finite()) || s.edges.windows(2).any(|w| w[0] >= w[1]) {
                let shown = format!("{:?}", s.edges);
                return Err(ConfigError::invalid(&key("edges"), &shown, "finite numbers in increasing order"));
            }
        }
        Ok(())
    }
}
