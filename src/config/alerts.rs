//! `[alerts]`: alert rules on the figures vigil computes, and where notifications go.
//!
//! A rule names a *figure*: any gauge on `/metrics` (e.g. `vigil_feature_drift_score`), or one of
//! the windowed figures computed from counters and histograms the way Prometheus would
//! (`error_ratio`, `latency_p99_seconds`, ...; see [`WINDOWED_FIGURES`]). Vocabulary follows
//! Prometheus alerting rules: `alert`, `for`, `keep_firing_for`, `labels`, `annotations`; the
//! receivers take Alertmanager's webhook format or Alertmanager's own API.

use super::{duration, ConfigError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Figures computed over a window from counters and histograms, by version where it applies.
pub const WINDOWED_FIGURES: &[(&str, &str)] = &[
    ("error_ratio", "share of answers with a 5xx status, by version (vigil's own 502/503/504 included)"),
    ("latency_p50_seconds", "median request duration, by version (histogram_quantile over the window)"),
    ("latency_p90_seconds", "90th percentile request duration, by version"),
    ("latency_p99_seconds", "99th percentile request duration, by version"),
    ("latency_p999_seconds", "99.9th percentile request duration, by version"),
    ("request_rate", "requests per second answered to clients, by version"),
    ("captures_dropped_ratio", "share of captures dropped because the analysis queue was full"),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub enabled: bool,
    /// How often every rule is evaluated (Prometheus' `evaluation_interval`).
    #[serde(with = "duration::serde")]
    pub evaluate_every: Duration,
    /// Adds the rules shipped with vigil (the same as `config/prometheus-rules.yml`).
    pub builtin_rules: bool,
    /// Base of the links in notifications (`generatorURL`, `$exportURL`); default
    /// `http://<admin.listen>`.
    pub external_url: Option<String>,
    /// How far back `{{ $exportURL }}` starts its export of labelled traffic.
    #[serde(with = "duration::serde")]
    pub export_since: Duration,
    pub rules: Vec<RuleConfig>,
    pub receivers: Vec<ReceiverConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            enabled: true,
            evaluate_every: Duration::from_secs(15),
            builtin_rules: true,
            external_url: None,
            export_since: Duration::from_secs(7 * 86_400),
            rules: Vec::new(),
            receivers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The alert's name (`alertname`), e.g. "VigilFeatureDrift".
    pub alert: String,
    /// A gauge on /metrics or one of [`WINDOWED_FIGURES`].
    pub figure: String,
    /// Only series with these label values, e.g. `{ version = "v2", feature = "income" }`.
    #[serde(default, rename = "match")]
    pub matchers: BTreeMap<String, String>,
    /// Active while the figure is above this value...
    pub above: Option<f64>,
    /// ... or below this one (exactly one of the two).
    pub below: Option<f64>,
    /// Hysteresis: once firing, resolved only when the figure is back at or past this value
    /// (below it for `above` rules). Default: the threshold itself.
    pub clear: Option<f64>,
    /// Window of the windowed figures.
    #[serde(default = "default_window", with = "duration::serde")]
    pub window: Duration,
    /// How long the condition must hold before the alert fires (pending until then).
    #[serde(default, rename = "for", with = "duration::serde")]
    pub for_: Duration,
    /// How long a firing alert stays firing after its condition cleared.
    #[serde(default, with = "duration::serde")]
    pub keep_firing_for: Duration,
    #[serde(default = "default_severity")]
    pub severity: String,
    /// Extra labels on the alert.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `summary`, `description`, ...; templates may use `{{ $value }}`, `{{ $labels.NAME }}`,
    /// `{{ $externalURL }}` and `{{ $exportURL }}` (the labelled export of the alert's version).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Receivers to notify (by name); default: all.
    pub receivers: Option<Vec<String>>,
}

fn default_window() -> Duration {
    Duration::from_secs(300)
}

fn default_severity() -> String {
    "warning".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    pub name: String,
    /// A URL that takes Alertmanager's webhook payload (any `webhook_config` receiver).
    pub webhook: Option<String>,
    /// An Alertmanager base URL; alerts are posted to `<url>/api/v2/alerts`.
    pub alertmanager: Option<String>,
    /// Also notify when an alert resolves.
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Webhooks: notify again while an alert keeps firing (Alertmanager's `repeat_interval`).
    /// Alertmanager: firing alerts are re-sent every `resend_delay` so it keeps them alive.
    #[serde(default = "default_repeat", with = "duration::serde")]
    pub repeat_interval: Duration,
    #[serde(default = "default_resend", with = "duration::serde")]
    pub resend_delay: Duration,
    /// Name of an environment variable holding a bearer token sent with each notification.
    pub bearer_token_env: Option<String>,
    #[serde(default = "default_timeout", with = "duration::serde")]
    pub timeout: Duration,
}

fn yes() -> bool {
    true
}
fn default_repeat() -> Duration {
    Duration::from_secs(4 * 3600)
}
fn default_resend() -> Duration {
    Duration::from_secs(60)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl RuleConfig {
    /// The threshold and its direction: `(value, true)` for `above`.
    pub fn threshold(&self) -> (f64, bool) {
        match (self.above, self.below) {
            (Some(a), _) => (a, true),
            (_, Some(b)) => (b, false),
            _ => (f64::NAN, true),
        }
    }
}

/// The rules shipped with vigil. `config/prometheus-rules.yml` holds the same rules as PromQL;
/// a test keeps the two in step (names, thresholds, `for`).
pub fn builtin_rules() -> Vec<RuleConfig> {
    let rule = |alert: &str, figure: &str, above: f64, for_s: u64, severity: &str, summary: &str| RuleConfig {
        alert: alert.into(),
        figure: figure.into(),
        matchers: BTreeMap::new(),
        above: Some(above),
        below: None,
        clear: None,
        window: default_window(),
        for_: Duration::from_secs(for_s),
        keep_firing_for: Duration::ZERO,
        severity: severity.into(),
        labels: BTreeMap::new(),
        annotations: [("summary".to_owned(), summary.to_owned())].into(),
        receivers: None,
    };
    vec![
        rule(
            "VigilDatasetDrift",
            "vigil_dataset_drifted",
            0.5,
            300,
            "warning",
            "{{ $labels.version }}: the share of drifted features reached drift.drift_share",
        ),
        rule(
            "VigilFeatureDrift",
            "vigil_feature_drifted",
            0.5,
            900,
            "info",
            "{{ $labels.version }}: feature {{ $labels.feature }} drifted",
        ),
        rule(
            "VigilPredictionDrift",
            "vigil_prediction_drifted",
            0.5,
            300,
            "warning",
            "{{ $labels.version }}: output {{ $labels.output }} drifted",
        ),
        rule(
            "VigilCovariateShift",
            "vigil_covariate_shift_drifted",
            0.5,
            300,
            "warning",
            "{{ $labels.version }}: multivariate covariate shift (PCA reconstruction error above its bound)",
        ),
        rule(
            "VigilModelDegraded",
            "vigil_model_degraded",
            0.5,
            300,
            "critical",
            "{{ $labels.version }}: {{ $labels.metric }} is worse than its baseline by more than performance.margin",
        ),
        rule(
            "VigilHighErrorRate",
            "error_ratio",
            0.05,
            300,
            "critical",
            "{{ $labels.version }}: {{ $value }} of answers are 5xx",
        ),
        rule(
            "VigilHighLatency",
            "latency_p99_seconds",
            1.0,
            300,
            "warning",
            "{{ $labels.version }}: p99 latency is {{ $value }} s",
        ),
        rule(
            "VigilAdversarialFlips",
            "vigil_adversarial_flip_ratio",
            0.5,
            0,
            "info",
            "{{ $labels.version }}: {{ $value }} of attacked inputs flip within epsilon",
        ),
        rule(
            "VigilRolloutRolledBack",
            "vigil_rollout_failed",
            0.5,
            0,
            "critical",
            "the rollout of {{ $labels.candidate }} failed its analysis and was rolled back",
        ),
        rule(
            "VigilCapturesDropped",
            "captures_dropped_ratio",
            0.01,
            600,
            "warning",
            "{{ $value }} of captures are dropped: analysis cannot keep up",
        ),
    ]
}

impl AlertsConfig {
    /// The rules in force: the built-in ones (unless a configured rule has the same name, which
    /// replaces it), then the configured ones.
    pub fn effective_rules(&self) -> Vec<RuleConfig> {
        let mut out: Vec<RuleConfig> = Vec::new();
        if self.builtin_rules {
            out.extend(builtin_rules().into_iter().filter(|b| !self.rules.iter().any(|r| r.alert == b.alert)));
        }
        out.extend(self.rules.iter().cloned());
        out
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.evaluate_every < Duration::from_millis(100) {
            return Err(ConfigError::invalid(
                "alerts.evaluate_every",
                &duration::format(self.evaluate_every),
                "a duration of at least 100ms",
            ));
        }
        if let Some(u) = &self.external_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(ConfigError::invalid("alerts.external_url", u, "an http:// or https:// URL"));
            }
        }
        for (i, r) in self.receivers.iter().enumerate() {
            let key = |f: &str| format!("alerts.receivers[{i}].{f}");
            if r.name.trim().is_empty() || self.receivers[..i].iter().any(|o| o.name == r.name) {
                return Err(ConfigError::invalid(
                    &key("name"),
                    &r.name,
                    "a non-empty name not used by an earlier receiver",
                ));
            }
            match (&r.webhook, &r.alertmanager) {
                (Some(u), None) | (None, Some(u)) => {
                    let field = if r.webhook.is_some() { "webhook" } else { "alertmanager" };
                    if u.parse::<http::Uri>().ok().filter(|x| x.scheme_str() == Some("http")).is_none() {
                        return Err(ConfigError::invalid(&key(field), u, "an http:// URL"));
                    }
                }
                _ => {
                    return Err(ConfigError::invalid(
                        &key("webhook"),
                        &format!("{:?} / alertmanager {:?}", r.webhook, r.alertmanager),
                        "exactly one of webhook (Alertmanager's webhook format) or alertmanager (its base URL)",
                    ))
                }
            }
            if let Some(env) = &r.bearer_token_env {
                if std::env::var(env).map(|v| v.is_empty()).unwrap_or(true) {
                    return Err(ConfigError::invalid(
                        &key("bearer_token_env"),
                        env,
                        "the name of a set, non-empty environment variable",
                    ));
                }
            }
            if r.timeout.is_zero() {
                return Err(ConfigError::invalid(&key("timeout"), "0s", "a positive duration"));
            }
        }
        let gauges = crate::telemetry::gauge_names();
        for (i, r) in self.rules.iter().enumerate() {
            let key = |f: &str| format!("alerts.rules[{i}].{f}");
            if r.alert.is_empty() || !r.alert.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ConfigError::invalid(&key("alert"), &r.alert, "a name of letters, digits and _"));
            }
            if self.rules[..i].iter().any(|o| o.alert == r.alert) {
                return Err(ConfigError::invalid(&key("alert"), &r.alert, "a name not used by an earlier rule"));
            }
            let windowed = WINDOWED_FIGURES.iter().any(|(n, _)| *n == r.figure);
            if !windowed && !gauges.contains(&r.figure.as_str()) {
                return Err(ConfigError::invalid(
                    &key("figure"),
                    &r.figure,
                    format!(
                        "a gauge on /metrics (e.g. vigil_feature_drift_score, vigil_model_accuracy, \
                         vigil_mirror_agreement_ratio) or one of {}",
                        WINDOWED_FIGURES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            match (r.above, r.below) {
                (Some(v), None) | (None, Some(v)) if v.is_finite() => {}
                _ => {
                    return Err(ConfigError::invalid(
                        &key("above"),
                        &format!("above {:?}, below {:?}", r.above, r.below),
                        "exactly one finite threshold: above = X or below = X",
                    ))
                }
            }
            if let Some(c) = r.clear {
                let (t, above) = r.threshold();
                if !c.is_finite() || (above && c > t) || (!above && c < t) {
                    return Err(ConfigError::invalid(
                        &key("clear"),
                        &c.to_string(),
                        format!(
                            "a value on the healthy side of the threshold {t} (at or {} it)",
                            if above { "below" } else { "above" }
                        ),
                    ));
                }
            }
            if windowed && r.window < self.evaluate_every * 2 {
                return Err(ConfigError::invalid(
                    &key("window"),
                    &duration::format(r.window),
                    "a window of at least two evaluations (2 × alerts.evaluate_every)",
                ));
            }
            if r.severity.trim().is_empty() {
                return Err(ConfigError::invalid(
                    &key("severity"),
                    &r.severity,
                    "a severity, e.g. critical, warning, info",
                ));
            }
            if let Some(rs) = &r.receivers {
                for name in rs {
                    if !self.receivers.iter().any(|x| &x.name == name) {
                        return Err(ConfigError::invalid(
                            &key("receivers"),
                            name,
                            "the name of an [[alerts.receivers]] entry",
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
