//! Telemetry: every metric name in one place, the Prometheus recorder, per-version handles for the
//! hot path, and the resource usage of vigil and of the model server (`process`, `resources`).
//!
//! Owns: metric names, help texts and buckets. May not touch: routes, sockets, the capture queue.
//! Names follow Prometheus conventions: `_total` counters, base units (`_seconds`, `_bytes`).

mod process;
mod resources;
pub mod scrape;

pub use process::{parse_stat, ProcessStats, ReadError, Scale};
pub use resources::{
    find_by_name, read_pid_file, CgroupReading, CgroupStats, ModelReading, PidSource, Readings, Resources,
    RESOURCE_READ_ERRORS,
};

use metrics::{describe_counter, describe_gauge, describe_histogram, Counter, Gauge, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

pub const REQUESTS_TOTAL: &str = "vigil_requests_total";
pub const REQUEST_DURATION: &str = "vigil_request_duration_seconds";
pub const UPSTREAM_DURATION: &str = "vigil_upstream_duration_seconds";
pub const IN_FLIGHT: &str = "vigil_in_flight_requests";
pub const UPSTREAM_ERRORS: &str = "vigil_upstream_errors_total";
pub const REQUESTS_SHED: &str = "vigil_requests_shed_total";
pub const CAPTURES_TOTAL: &str = "vigil_captures_total";
pub const CAPTURES_DROPPED: &str = "vigil_captures_dropped_total";
pub const CAPTURES_TRUNCATED: &str = "vigil_captures_truncated_total";
pub const ACTIVE_VERSION: &str = "vigil_active_version_info";
pub const TRAFFIC_SHARE: &str = "vigil_version_traffic_share_ratio";
pub const STATE_WRITE_ERRORS: &str = "vigil_state_write_errors_total";
pub const READY: &str = "vigil_ready";
// Ground truth: feedback and model performance (the first performance window, per version).
pub const FEEDBACK_TOTAL: &str = "vigil_feedback_total";
pub const PERFORMANCE_LABELLED: &str = "vigil_performance_window_labelled";
pub const MODEL_ACCURACY: &str = "vigil_model_accuracy";
pub const MODEL_PRECISION: &str = "vigil_model_precision";
pub const MODEL_RECALL: &str = "vigil_model_recall";
pub const MODEL_F1: &str = "vigil_model_f1";
pub const MODEL_ROC_AUC: &str = "vigil_model_roc_auc";
pub const MODEL_PR_AUC: &str = "vigil_model_pr_auc";
pub const MODEL_LOG_LOSS: &str = "vigil_model_log_loss";
pub const MODEL_BRIER: &str = "vigil_model_brier_score";
pub const MODEL_MAE: &str = "vigil_model_mae";
// Shadow traffic.
pub const SHADOW_REQUESTS: &str = "vigil_shadow_requests_total";
pub const SHADOW_ROWS: &str = "vigil_shadow_rows_total";
pub const SHADOW_PAUSED: &str = "vigil_shadow_paused";
pub const SHADOW_BUDGET_RATE: &str = "vigil_shadow_budget_rows_per_second";
pub const SHADOW_DURATION: &str = "vigil_shadow_request_duration_seconds";
pub const MIRROR_AGREEMENT: &str = "vigil_mirror_agreement_ratio";
pub const MIRROR_NOISE_AGREEMENT: &str = "vigil_mirror_noise_agreement_ratio";
pub const MIRROR_SCORE_DIFF: &str = "vigil_mirror_score_abs_diff_mean";
pub const MIRROR_ERROR_RATIO: &str = "vigil_mirror_error_ratio";
pub const FEATURE_SENSITIVITY: &str = "vigil_feature_sensitivity";
pub const SENSITIVITY_FLIP_RATIO: &str = "vigil_sensitivity_flip_ratio";
pub const STRESS_INVALID_OUTPUTS: &str = "vigil_stress_invalid_outputs_total";
pub const ADVERSARIAL_FLIP_RATIO: &str = "vigil_adversarial_flip_ratio";
pub const ADVERSARIAL_EPSILON_MEDIAN: &str = "vigil_adversarial_epsilon_median";
pub const FEATURE_IMPORTANCE: &str = "vigil_feature_importance";
pub const IMPORTANCE_DRIFT: &str = "vigil_feature_importance_drift";
pub const PROBING_FLAGS: &str = "vigil_probing_clients_flagged_total";
pub const PROBING_SUSPECTS: &str = "vigil_probing_clients";
pub const MODEL_RMSE: &str = "vigil_model_rmse";
pub const MODEL_R2: &str = "vigil_model_r2";
pub const MODEL_ESTIMATED_ACCURACY: &str = "vigil_model_estimated_accuracy";
pub const MODEL_ESTIMATED_ROC_AUC: &str = "vigil_model_estimated_roc_auc";
pub const MODEL_PERFORMANCE_GAP: &str = "vigil_model_performance_gap";
pub const MODEL_DEGRADED: &str = "vigil_model_degraded";
pub const SEGMENT_ACCURACY: &str = "vigil_segment_accuracy";
pub const SEGMENT_SELECTION_RATE: &str = "vigil_segment_selection_rate";
pub const FAIRNESS_DEMOGRAPHIC_PARITY_DIFFERENCE: &str = "vigil_fairness_demographic_parity_difference";
pub const FAIRNESS_DISPARATE_IMPACT_RATIO: &str = "vigil_fairness_disparate_impact_ratio";
pub const FAIRNESS_EQUAL_OPPORTUNITY_DIFFERENCE: &str = "vigil_fairness_equal_opportunity_difference";
pub const RECORDS_TOTAL: &str = "vigil_records_total";
pub const DECODE_FAILURES: &str = "vigil_decode_failures_total";
pub const FEATURE_DRIFT_SCORE: &str = "vigil_feature_drift_score";
pub const FEATURE_DRIFT_P_VALUE: &str = "vigil_feature_drift_p_value";
pub const FEATURE_DRIFTED: &str = "vigil_feature_drifted";
pub const PREDICTION_DRIFT_SCORE: &str = "vigil_prediction_drift_score";
pub const PREDICTION_DRIFT_P_VALUE: &str = "vigil_prediction_drift_p_value";
pub const PREDICTION_DRIFTED: &str = "vigil_prediction_drifted";
pub const DATASET_DRIFT_SHARE: &str = "vigil_dataset_drift_share";
pub const DATASET_DRIFTED: &str = "vigil_dataset_drifted";
pub const COVARIATE_SHIFT_SCORE: &str = "vigil_covariate_shift_score";
pub const COVARIATE_SHIFT_THRESHOLD: &str = "vigil_covariate_shift_threshold";
pub const COVARIATE_SHIFT_DRIFTED: &str = "vigil_covariate_shift_drifted";
pub const ALERTS_FIRING: &str = "vigil_alerts_firing";
pub const ALERTS_PENDING: &str = "vigil_alerts_pending";
pub const ALERT_NOTIFICATIONS: &str = "vigil_alert_notifications_total";
pub const ROLLOUT_FAILED: &str = "vigil_rollout_failed";
pub const ROLLOUT_PHASE: &str = "vigil_rollout_phase";
pub const ROLLOUT_WEIGHT: &str = "vigil_rollout_weight";
pub const DRIFT_WINDOW_RECORDS: &str = "vigil_drift_window_records";
pub const DRIFT_EVALUATION_DURATION: &str = "vigil_drift_evaluation_duration_seconds";
pub const REFERENCE_ROWS: &str = "vigil_reference_rows";
/// Live records written to the prediction log (`predictions.db`).
pub const PREDICTION_LOG_ROWS_TOTAL: &str = "vigil_prediction_log_rows_total";
/// Live records the prediction log dropped: its queue was full or their write failed.
pub const PREDICTION_LOG_DROPPED: &str = "vigil_prediction_log_dropped_total";
/// Failed prediction log operations, by `op` (open, write, label, retention, read).
pub const PREDICTION_LOG_ERRORS: &str = "vigil_prediction_log_errors_total";
/// Rows in the prediction log after the last write or retention step.
pub const PREDICTION_LOG_ROWS: &str = "vigil_prediction_log_rows";
/// Time one prediction log batch took to write and commit.
pub const PREDICTION_LOG_FLUSH_DURATION: &str = "vigil_prediction_log_flush_duration_seconds";
/// Values redacted before storage, by `action` (drop, hash, mask, generalize) and `source` (rule,
/// email, phone, card).
pub const REDACTIONS_TOTAL: &str = "vigil_redactions_total";

/// Buckets for latency histograms, in seconds: 100 µs to 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Installs the global Prometheus recorder (once per process) and describes every metric.
/// Every gauge vigil puts on /metrics: the figures an alert rule (`[alerts]`) may name as is.
pub fn gauge_names() -> &'static [&'static str] {
    &[
        ACTIVE_VERSION,
        ADVERSARIAL_EPSILON_MEDIAN,
        ADVERSARIAL_FLIP_RATIO,
        COVARIATE_SHIFT_DRIFTED,
        COVARIATE_SHIFT_SCORE,
        COVARIATE_SHIFT_THRESHOLD,
        DATASET_DRIFTED,
        DATASET_DRIFT_SHARE,
        DRIFT_WINDOW_RECORDS,
        FAIRNESS_DEMOGRAPHIC_PARITY_DIFFERENCE,
        FAIRNESS_DISPARATE_IMPACT_RATIO,
        FAIRNESS_EQUAL_OPPORTUNITY_DIFFERENCE,
        FEATURE_DRIFTED,
        FEATURE_DRIFT_P_VALUE,
        FEATURE_DRIFT_SCORE,
        FEATURE_IMPORTANCE,
        FEATURE_SENSITIVITY,
        IMPORTANCE_DRIFT,
        IN_FLIGHT,
        MIRROR_AGREEMENT,
        MIRROR_ERROR_RATIO,
        MIRROR_NOISE_AGREEMENT,
        MIRROR_SCORE_DIFF,
        MODEL_ACCURACY,
        MODEL_BRIER,
        MODEL_DEGRADED,
        MODEL_ESTIMATED_ACCURACY,
        MODEL_ESTIMATED_ROC_AUC,
        MODEL_F1,
        MODEL_LOG_LOSS,
        MODEL_MAE,
        MODEL_PERFORMANCE_GAP,
        MODEL_PRECISION,
        MODEL_PR_AUC,
        MODEL_R2,
        MODEL_RECALL,
        MODEL_RMSE,
        MODEL_ROC_AUC,
        PERFORMANCE_LABELLED,
        PREDICTION_DRIFTED,
        PREDICTION_DRIFT_P_VALUE,
        PREDICTION_DRIFT_SCORE,
        PREDICTION_LOG_ROWS,
        PROBING_SUSPECTS,
        READY,
        REFERENCE_ROWS,
        SEGMENT_ACCURACY,
        SEGMENT_SELECTION_RATE,
        SENSITIVITY_FLIP_RATIO,
        SHADOW_BUDGET_RATE,
        SHADOW_PAUSED,
        TRAFFIC_SHARE,
        ALERTS_FIRING,
        ROLLOUT_FAILED,
        ROLLOUT_PHASE,
        ROLLOUT_WEIGHT,
        "vigil_model_cgroup_memory_anon_bytes",
        "vigil_model_cgroup_memory_bytes",
        "vigil_model_cgroup_memory_file_bytes",
        "vigil_model_cgroup_memory_limit_bytes",
        "vigil_model_cgroup_pids",
        "vigil_model_process_open_fds",
        "vigil_model_process_resident_memory_bytes",
        "vigil_model_process_threads",
        "vigil_process_threads",
        "process_resident_memory_bytes",
        "process_open_fds",
    ]
}

pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("static buckets are valid")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(REQUESTS_TOTAL, "Requests answered to clients, by version and HTTP status code.");
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time from request headers received to the last response byte sent, by version."
    );
    describe_histogram!(
        UPSTREAM_DURATION,
        Unit::Seconds,
        "Time from the request sent upstream to the upstream's response headers, by version."
    );
    describe_gauge!(IN_FLIGHT, "Requests whose response has not finished yet.");
    describe_counter!(
        UPSTREAM_ERRORS,
        "Exchanges vigil answered itself because the upstream failed, by version and kind."
    );
    describe_counter!(REQUESTS_SHED, "Requests refused with 503 because max_in_flight was reached.");
    describe_counter!(
        SHADOW_REQUESTS,
        "Shadow requests by kind, target version and result (ok, error, timeout: sent; shed, paused, dropped: not sent)."
    );
    describe_counter!(SHADOW_ROWS, "Rows sent to the model as shadow traffic, by kind and version.");
    describe_gauge!(
        SHADOW_PAUSED,
        "1 while shadow traffic of this kind is paused because the live upstream is under pressure."
    );
    describe_gauge!(
        SHADOW_BUDGET_RATE,
        "Rows per second this shadow kind may currently send (share of the live row rate)."
    );
    describe_histogram!(SHADOW_DURATION, Unit::Seconds, "Shadow request latency by kind and version.");
    describe_gauge!(
        MIRROR_AGREEMENT,
        "Share of mirrored rows where the candidate's predicted class equals the live one."
    );
    describe_gauge!(
        MIRROR_NOISE_AGREEMENT,
        "Share of rows where the active version agreed with itself when asked again (the noise floor)."
    );
    describe_gauge!(MIRROR_SCORE_DIFF, "Mean absolute difference between the candidate's and the live scores.");
    describe_gauge!(
        MIRROR_ERROR_RATIO,
        "Share of mirrored requests the candidate failed (non-2xx, timeout, unreadable)."
    );
    describe_gauge!(FEATURE_SENSITIVITY, "Mean |change of the score| per reference standard deviation of the feature (per category swap for categoricals).");
    describe_gauge!(SENSITIVITY_FLIP_RATIO, "Share of one-feature perturbations that changed the predicted class.");
    describe_counter!(
        STRESS_INVALID_OUTPUTS,
        "Invalid outputs (NaN, probabilities outside [0, 1]) seen in stress tests, by version and case."
    );
    describe_gauge!(
        ADVERSARIAL_FLIP_RATIO,
        "Share of attacked inputs whose decision flipped within shadow.adversarial.epsilon."
    );
    describe_gauge!(
        ADVERSARIAL_EPSILON_MEDIAN,
        "Median distance (in reference standard deviations) that flipped an attacked input."
    );
    describe_gauge!(FEATURE_IMPORTANCE, "Global feature importance: mean |SHAP value| over the recent explanations.");
    describe_gauge!(
        IMPORTANCE_DRIFT,
        "Change of the normalised global importance since the first full window (L1 distance, 0-2)."
    );
    describe_counter!(
        REDACTIONS_TOTAL,
        "Values redacted before storage, by action and source (rule, email, phone, card)."
    );
    describe_counter!(PROBING_FLAGS, "Clients flagged for probing the decision boundary.");
    describe_gauge!(PROBING_SUSPECTS, "Clients currently flagged for probing.");
    describe_counter!(CAPTURES_TOTAL, "Captures handed to analysis.");
    describe_counter!(
        CAPTURES_DROPPED,
        "Captures dropped because the analysis queue was full (the client was not delayed)."
    );
    describe_counter!(CAPTURES_TRUNCATED, "Captures whose request or response body exceeded capture.max_body_bytes.");
    describe_gauge!(ACTIVE_VERSION, "1 for the active model version, 0 for the others.");
    describe_gauge!(TRAFFIC_SHARE, "Share of live traffic (0 to 1) each version receives.");
    describe_counter!(STATE_WRITE_ERRORS, "Failed writes to the state dir (state file, audit log).");
    describe_counter!(
        RESOURCE_READ_ERRORS,
        "Resource readings that failed (the metric is left out), by source: vigil, model_process, model_cgroup."
    );
    describe_gauge!(READY, "1 once an upstream has answered, 0 before and while draining.");
    describe_counter!(
        FEEDBACK_TOTAL,
        "Labels received on POST /feedback, by result: joined, replaced (a label sent again), unknown (no such logged prediction, or expired), invalid (does not fit the task)."
    );
    describe_gauge!(PERFORMANCE_LABELLED, "Labelled predictions in the first performance window, by version.");
    describe_gauge!(
        MODEL_ACCURACY,
        "Accuracy over the labelled predictions of the first performance window, by version."
    );
    describe_gauge!(
        MODEL_PRECISION,
        "Precision of each class over the first performance window, by version and class."
    );
    describe_gauge!(MODEL_RECALL, "Recall of each class over the first performance window, by version and class.");
    describe_gauge!(MODEL_F1, "F1 of each class over the first performance window, by version and class.");
    describe_gauge!(MODEL_ROC_AUC, "ROC-AUC (exact, ties as scikit-learn) over the first performance window.");
    describe_gauge!(MODEL_PR_AUC, "Average precision (PR-AUC) over the first performance window.");
    describe_gauge!(MODEL_LOG_LOSS, "Log loss over the first performance window.");
    describe_gauge!(MODEL_BRIER, "Brier score over the first performance window.");
    describe_gauge!(MODEL_MAE, "Mean absolute error (regression) over the first performance window.");
    describe_gauge!(MODEL_RMSE, "Root mean squared error (regression) over the first performance window.");
    describe_gauge!(MODEL_R2, "R² (regression) over the first performance window.");
    describe_gauge!(
        MODEL_ESTIMATED_ACCURACY,
        "Accuracy estimated from predicted probabilities (CBPE) over every prediction of the window, labelled or not."
    );
    describe_gauge!(MODEL_ESTIMATED_ROC_AUC, "ROC-AUC estimated from predicted probabilities (CBPE).");
    describe_gauge!(
        MODEL_PERFORMANCE_GAP,
        "Live metric minus its validation baseline (performance.baseline), by metric."
    );
    describe_gauge!(
        MODEL_DEGRADED,
        "1 when a live metric is worse than its baseline by more than performance.margin, by metric."
    );
    describe_gauge!(SEGMENT_ACCURACY, "Accuracy per segment group, by version, segment and group.");
    describe_gauge!(SEGMENT_SELECTION_RATE, "Share of positive predictions per segment group (binary models).");
    describe_gauge!(
        FAIRNESS_DEMOGRAPHIC_PARITY_DIFFERENCE,
        "Largest minus smallest selection rate across a segment's groups."
    );
    describe_gauge!(FAIRNESS_DISPARATE_IMPACT_RATIO, "Smallest over largest selection rate across a segment's groups.");
    describe_gauge!(
        FAIRNESS_EQUAL_OPPORTUNITY_DIFFERENCE,
        "Largest minus smallest true positive rate across a segment's groups."
    );
    describe_counter!(RECORDS_TOTAL, "Live records (batch rows) decoded and fed to the drift monitors, by version.");
    describe_counter!(
        DECODE_FAILURES,
        "Captured inference exchanges that could not be turned into records, by reason (the client was not affected)."
    );
    describe_gauge!(
        FEATURE_DRIFT_SCORE,
        "Drift statistic of a feature's live window against the reference, by version, feature and method."
    );
    describe_gauge!(FEATURE_DRIFT_P_VALUE, "p-value of a feature's drift test (p-value methods only).");
    describe_gauge!(FEATURE_DRIFTED, "1 when a feature's drift test says it drifted, else 0.");
    describe_gauge!(
        PREDICTION_DRIFT_SCORE,
        "Drift statistic of a model output's live window, by version, output and method."
    );
    describe_gauge!(PREDICTION_DRIFT_P_VALUE, "p-value of a model output's drift test (p-value methods only).");
    describe_gauge!(PREDICTION_DRIFTED, "1 when a model output's distribution drifted, else 0.");
    describe_gauge!(DATASET_DRIFT_SHARE, "Share of features that drifted, by version.");
    describe_gauge!(DATASET_DRIFTED, "1 when the share of drifted features reaches drift.drift_share.");
    describe_gauge!(
        COVARIATE_SHIFT_SCORE,
        "Mean PCA reconstruction error of the window (multivariate covariate shift)."
    );
    describe_gauge!(COVARIATE_SHIFT_THRESHOLD, "Alert bound of the covariate shift score for the window's size.");
    describe_gauge!(
        ROLLOUT_FAILED,
        "1 after the last rollout of this candidate was rolled back by its analysis; 0 when a new one starts."
    );
    describe_gauge!(ROLLOUT_PHASE, "1 for the phase the last rollout of this candidate is in, by candidate and phase.");
    describe_gauge!(ROLLOUT_WEIGHT, "Traffic percentage the rollout gives its candidate.");
    describe_gauge!(ALERTS_FIRING, "Alert instances firing, by rule.");
    describe_gauge!(ALERTS_PENDING, "Alert instances pending (condition true, `for` not yet elapsed), by rule.");
    describe_counter!(ALERT_NOTIFICATIONS, "Alert notifications sent, by receiver and result (ok, error).");
    describe_gauge!(COVARIATE_SHIFT_DRIFTED, "1 when the covariate shift score is above its threshold, else 0.");
    describe_gauge!(DRIFT_WINDOW_RECORDS, "Records in the live drift window, by version.");
    describe_histogram!(DRIFT_EVALUATION_DURATION, Unit::Seconds, "Time one drift evaluation of every window took.");
    describe_gauge!(REFERENCE_ROWS, "Rows of the reference data set in use.");
    describe_counter!(PREDICTION_LOG_ROWS_TOTAL, "Live records written to the prediction log.");
    describe_counter!(
        PREDICTION_LOG_DROPPED,
        "Live records the prediction log dropped (queue full or failed write; the client was not affected)."
    );
    describe_counter!(
        PREDICTION_LOG_ERRORS,
        "Failed prediction log operations, by op (open, write, label, retention, read)."
    );
    describe_gauge!(PREDICTION_LOG_ROWS, "Rows in the prediction log.");
    describe_histogram!(
        PREDICTION_LOG_FLUSH_DURATION,
        Unit::Seconds,
        "Time one batch of the prediction log took to write and commit."
    );
}

/// `kind` of an upstream whose response body stalled for `proxy.body_idle_timeout`.
pub const BODY_TIMEOUT: &str = "upstream_body_timeout";
/// `kind` of an upstream whose response body failed after the headers (reset, closed early).
pub const BODY_ERROR: &str = "upstream_body_error";

/// Upstream failure kinds, the `kind` label of `vigil_upstream_errors_total`. The first four
/// are answered by vigil with a JSON error (`proxy::error::ErrorKind`); the last two happen
/// after the upstream's headers went to the client, which then sees a truncated body.
pub const ERROR_KINDS: [&str; 6] =
    ["upstream_unavailable", "upstream_timeout", "upstream_reset", "bad_gateway", BODY_TIMEOUT, BODY_ERROR];

/// Pre-registered handles for one version, so the hot path increments an atomic instead of
/// hashing labels into the registry on every request.
#[derive(Debug)]
pub struct VersionMetrics {
    name: String,
    /// `vigil_requests_total{version, code}` for codes 100..=599, registered on first use.
    codes: Box<[OnceLock<Counter>]>,
    errors: [Counter; 6],
}

impl VersionMetrics {
    /// The handles for `name`, shared by every routing snapshot that has this version.
    pub fn for_version(name: &str) -> Arc<VersionMetrics> {
        static ALL: OnceLock<Mutex<HashMap<String, Arc<VersionMetrics>>>> = OnceLock::new();
        let mut all = ALL.get_or_init(Default::default).lock().unwrap();
        all.entry(name.to_owned())
            .or_insert_with(|| {
                let v = name.to_owned();
                Arc::new(VersionMetrics {
                    codes: (100..600).map(|_| OnceLock::new()).collect(),
                    errors: ERROR_KINDS
                        .map(|k| metrics::counter!(UPSTREAM_ERRORS, "version" => v.clone(), "kind" => k)),
                    name: v,
                })
            })
            .clone()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    pub fn request(&self, status: u16) {
        let i = status.clamp(100, 599) as usize - 100;
        self.codes[i]
            .get_or_init(|| {
                metrics::counter!(REQUESTS_TOTAL, "version" => self.name.clone(), "code" => status.clamp(100, 599).to_string())
            })
            .increment(1);
    }

    /// `kind` is one of [`ERROR_KINDS`].
    pub fn upstream_error(&self, kind: &str) {
        if let Some(i) = ERROR_KINDS.iter().position(|k| *k == kind) {
            self.errors[i].increment(1);
        }
    }

    pub fn active_gauge(&self) -> Gauge {
        metrics::gauge!(ACTIVE_VERSION, "version" => self.name.clone())
    }

    pub fn share_gauge(&self) -> Gauge {
        metrics::gauge!(TRAFFIC_SHARE, "version" => self.name.clone())
    }
}

/// Counters used on the hot path without labels.
pub struct HotCounters {
    pub captures_dropped: Counter,
    pub captures_total: Counter,
    pub shed: Counter,
    pub in_flight: Gauge,
}

impl HotCounters {
    pub fn new() -> HotCounters {
        HotCounters {
            captures_dropped: metrics::counter!(CAPTURES_DROPPED),
            captures_total: metrics::counter!(CAPTURES_TOTAL),
            shed: metrics::counter!(REQUESTS_SHED),
            in_flight: metrics::gauge!(IN_FLIGHT),
        }
    }
}

impl Default for HotCounters {
    fn default() -> Self {
        Self::new()
    }
}
