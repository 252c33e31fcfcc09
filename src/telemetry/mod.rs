//! Telemetry: every metric name in one place, the Prometheus recorder, per-version handles for the
//! hot path, and the process's own CPU and memory.
//!
//! Owns: metric names, help texts and buckets. May not touch: routes, sockets, the capture queue.
//! Names follow Prometheus conventions: `_total` counters, base units (`_seconds`, `_bytes`).

mod process;

pub use process::ProcessStats;

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

/// Buckets for latency histograms, in seconds: 100 µs to 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Installs the global Prometheus recorder (once per process) and describes every metric.
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
    describe_counter!(CAPTURES_TOTAL, "Captures handed to analysis.");
    describe_counter!(
        CAPTURES_DROPPED,
        "Captures dropped because the analysis queue was full (the client was not delayed)."
    );
    describe_counter!(CAPTURES_TRUNCATED, "Captures whose request or response body exceeded capture.max_body_bytes.");
    describe_gauge!(ACTIVE_VERSION, "1 for the active model version, 0 for the others.");
    describe_gauge!(TRAFFIC_SHARE, "Share of live traffic (0 to 1) each version receives.");
    describe_counter!(STATE_WRITE_ERRORS, "Failed writes to the state dir (state file, audit log).");
    describe_gauge!(READY, "1 once an upstream has answered, 0 before and while draining.");
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

/// Upstream failure kinds, the `kind` label of `vigil_upstream_errors_total`.
pub const ERROR_KINDS: [&str; 4] = ["upstream_unavailable", "upstream_timeout", "upstream_reset", "bad_gateway"];

/// Pre-registered handles for one version, so the hot path increments an atomic instead of
/// hashing labels into the registry on every request.
#[derive(Debug)]
pub struct VersionMetrics {
    name: String,
    /// `vigil_requests_total{version, code}` for codes 100..=599, registered on first use.
    codes: Box<[OnceLock<Counter>]>,
    errors: [Counter; 4],
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
