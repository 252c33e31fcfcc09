//! Progressive rollouts: a candidate version takes more and more of the traffic in steps, each
//! step held for `step_duration` and passed by an analysis of the candidate's figures; a failed
//! analysis rolls it back at once.
//!
//! Owns: the rollout spec (as `POST /admin/rollouts` takes it), its state machine and the
//! analysis checks. May not touch: the routes table (it returns [`Action`]s; the control plane
//! applies them through `control::versions::mutate`), sockets, files.
//!
//! The vocabulary is Argo Rollouts' and Flagger's: `steps` are `setWeight` percentages, the
//! analysis runs every `interval` and counts failed checks up to `threshold` (Flagger; Argo's
//! `failureLimit`), metrics have `min`/`max` bounds (Flagger's `thresholdRange`), phases are
//! Progressing / Paused / Succeeded / RolledBack / Aborted, and `abort`, `pause`, `resume`,
//! `promote` do what they do in `kubectl argo rollouts`.
//!
//! ```text
//!   start ─► step 0 (weight 5) ─► [every interval: analysis] ─► held step_duration with a pass ─► step 1 ...
//!              │ failed checks reach threshold ─► RolledBack (weight 0, alert)
//!              └ after the last step, or at a step of 100 ─► promote (activate) ─► Succeeded
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// How the control plane gets figures for an analysis.
pub trait Figures {
    /// One value per series of `figure` matching `matchers` (see `alerts::figures::values`).
    fn values(&self, figure: &str, matchers: &BTreeMap<String, String>, window: Duration) -> Vec<f64>;
    /// Requests `version` answered within `window`.
    fn requests(&self, version: &str, window: Duration) -> f64;
    /// Firing alerts whose labels include `matchers`.
    fn firing_alerts(&self, matchers: &BTreeMap<String, String>) -> usize;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub candidate: String,
    /// Traffic percentages, rising, each 1..=100.
    #[serde(default = "default_steps")]
    pub steps: Vec<u32>,
    #[serde(default = "default_step_duration", with = "crate::config::duration::serde")]
    pub step_duration: Duration,
    #[serde(default)]
    pub analysis: Analysis,
}

fn default_steps() -> Vec<u32> {
    vec![5, 25, 50, 100]
}
fn default_step_duration() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Analysis {
    /// How often the checks run.
    #[serde(with = "crate::config::duration::serde")]
    pub interval: Duration,
    /// Failed checks (over the whole rollout) that roll it back.
    pub threshold: u32,
    /// Window of the windowed figures (error rate, latency).
    #[serde(with = "crate::config::duration::serde")]
    pub window: Duration,
    /// Below this many candidate requests in the window, traffic figures are inconclusive.
    pub min_requests: u64,
    pub metrics: Vec<Metric>,
}

impl Default for Analysis {
    fn default() -> Self {
        Analysis {
            interval: Duration::from_secs(10),
            threshold: 2,
            window: Duration::from_secs(60),
            min_requests: 20,
            metrics: vec![
                Metric::bound("error_rate", None, Some(0.05)),
                Metric::bound("latency_p99_seconds", None, Some(1.0)),
                Metric::bound("alerts", None, Some(0.0)),
            ],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    /// error_rate, latency_p50/p90/p99/p999_seconds, mirror_agreement, drift_share,
    /// covariate_shift, accuracy, precision, recall, f1, roc_auc, mae, rmse, estimated_accuracy,
    /// performance_gap, alerts (firing alerts of the candidate), or any gauge on /metrics.
    pub name: String,
    /// Extra label matchers, e.g. `{"window": "1000"}`.
    #[serde(default, rename = "match", skip_serializing_if = "BTreeMap::is_empty")]
    pub matchers: BTreeMap<String, String>,
    /// Compare the candidate minus the stable version instead of the candidate alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vs_stable: bool,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Metric {
    fn bound(name: &str, min: Option<f64>, max: Option<f64>) -> Metric {
        Metric { name: name.into(), matchers: BTreeMap::new(), vs_stable: false, min, max }
    }

    /// The figure it reads and whether it needs traffic to be conclusive.
    fn figure(&self) -> (String, bool) {
        match self.name.as_str() {
            "error_rate" => ("error_ratio".into(), true),
            n if n.starts_with("latency_p") => (n.into(), true),
            "mirror_agreement" => ("vigil_mirror_agreement_ratio".into(), false),
            "drift_share" => ("vigil_dataset_drift_share".into(), false),
            "covariate_shift" => ("vigil_covariate_shift_drifted".into(), false),
            "accuracy" | "precision" | "recall" | "f1" | "roc_auc" | "mae" | "rmse" | "estimated_accuracy"
            | "performance_gap" => (format!("vigil_model_{}", self.name), false),
            other => (other.into(), false),
        }
    }
}

/// The names a metric may take besides a gauge.
pub const METRIC_NAMES: &[&str] = &[
    "error_rate",
    "latency_p50_seconds",
    "latency_p90_seconds",
    "latency_p99_seconds",
    "latency_p999_seconds",
    "mirror_agreement",
    "drift_share",
    "covariate_shift",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "mae",
    "rmse",
    "estimated_accuracy",
    "performance_gap",
    "alerts",
];

impl Spec {
    /// Checks what the routes cannot: the steps and the analysis. The answer names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.steps.is_empty() || self.steps.len() > 20 {
            return Err(format!("steps {:?}: expected 1 to 20 traffic percentages", self.steps));
        }
        let mut last = 0;
        for &s in &self.steps {
            if s == 0 || s > 100 || s <= last {
                return Err(format!("steps {:?}: expected rising percentages from 1 to 100", self.steps));
            }
            last = s;
        }
        if self.step_duration.is_zero() {
            return Err("step_duration \"0s\": expected a positive duration such as \"1m\"".into());
        }
        let a = &self.analysis;
        if a.interval < Duration::from_millis(100) {
            return Err("analysis.interval: expected at least 100ms".into());
        }
        if a.threshold == 0 {
            return Err("analysis.threshold 0: expected at least 1 failed check before a rollback".into());
        }
        if a.window < Duration::from_secs(1) || a.window > MAX_WINDOW {
            return Err(format!("analysis.window: expected 1s to {}", crate::config::duration::format(MAX_WINDOW)));
        }
        let gauges = crate::telemetry::gauge_names();
        for (i, m) in a.metrics.iter().enumerate() {
            if !METRIC_NAMES.contains(&m.name.as_str()) && !gauges.contains(&m.name.as_str()) {
                return Err(format!(
                    "analysis.metrics[{i}].name {:?}: expected one of {} or a gauge on /metrics",
                    m.name,
                    METRIC_NAMES.join(", ")
                ));
            }
            let finite = |v: Option<f64>| v.is_none_or(f64::is_finite);
            if (m.min.is_none() && m.max.is_none()) || !finite(m.min) || !finite(m.max) {
                return Err(format!("analysis.metrics[{i}] ({}): expected a finite min, max or both", m.name));
            }
        }
        Ok(())
    }
}

/// The longest analysis window: vigil keeps this much of its own scrapes.
pub const MAX_WINDOW: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Progressing,
    Paused,
    Succeeded,
    RolledBack,
    Aborted,
}

impl Phase {
    pub fn finished(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::RolledBack | Phase::Aborted)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Inconclusive,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub metric: String,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub vs_stable: bool,
    pub value: Option<f64>,
    pub threshold: BTreeMap<String, f64>,
    pub result: Outcome,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub note: Option<String>,
}

/// One rollout, as `GET /admin/rollouts` shows it and `rollouts.json` keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rollout {
    pub id: String,
    pub candidate: String,
    pub stable: String,
    pub phase: Phase,
    /// Index into `steps` of the step in force.
    pub step: usize,
    pub steps: Vec<u32>,
    pub weight: u32,
    #[serde(with = "crate::config::duration::serde")]
    pub step_duration: Duration,
    pub started_at: String,
    pub step_started_at: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub finished_at: Option<String>,
    pub message: String,
    pub failed_checks: u32,
    pub analysis: Vec<Check>,
    pub spec: Analysis,
    #[serde(skip)]
    step_started: Option<SystemTime>,
    #[serde(skip)]
    last_check: Option<SystemTime>,
    #[serde(skip)]
    passed_in_step: u32,
}

/// What the control plane must do to the routes.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Give the candidate this canary weight (`rollout.step`).
    SetWeight(u32),
    /// Activate the candidate (`rollout.promote`).
    Promote,
    /// Take all traffic off the candidate (`rollout.rollback`): weight 0, or back to the stable
    /// version if it had been promoted.
    Rollback(String),
}

impl Rollout {
    /// A new rollout of `spec.candidate` against the active version `stable`. The first action
    /// is the first step's weight (or a promotion when the first step is 100).
    pub fn start(spec: Spec, stable: String, now: SystemTime) -> (Rollout, Action) {
        let t = rfc3339(now);
        let id = format!("r-{}", humantime::format_rfc3339_seconds(now).to_string().replace([':', '-'], ""));
        let weight = spec.steps[0];
        let mut r = Rollout {
            id,
            candidate: spec.candidate,
            stable,
            phase: Phase::Progressing,
            step: 0,
            steps: spec.steps,
            weight,
            step_duration: spec.step_duration,
            started_at: t.clone(),
            step_started_at: t,
            finished_at: None,
            message: format!("step 1: weight {weight}"),
            failed_checks: 0,
            analysis: Vec::new(),
            spec: spec.analysis,
            step_started: Some(now),
            last_check: None,
            passed_in_step: 0,
        };
        let action = if weight >= 100 {
            // A single step of 100 is a promotion: done as soon as it is applied.
            r.finish(Phase::Succeeded, now, format!("promoted: {} is the active version", r.candidate));
            Action::Promote
        } else {
            Action::SetWeight(weight)
        };
        (r, action)
    }

    /// After a restart: the step's clock starts again (state files keep no monotonic time).
    pub fn resumed(mut self, now: SystemTime) -> Rollout {
        self.step_started = Some(now);
        self.step_started_at = rfc3339(now);
        self.passed_in_step = 0;
        self.last_check = None;
        self
    }

    /// Runs the analysis when it is due and decides. Returns the action to apply, if any.
    pub fn tick(&mut self, now: SystemTime, figures: &dyn Figures) -> Option<Action> {
        if self.phase != Phase::Progressing {
            return None;
        }
        let due = self.last_check.is_none_or(|t| elapsed(t, now) >= self.spec.interval);
        if due {
            self.last_check = Some(now);
            self.analysis = self.spec.metrics.iter().map(|m| self.check(m, figures)).collect();
            let failed: Vec<&Check> = self.analysis.iter().filter(|c| c.result == Outcome::Fail).collect();
            if !failed.is_empty() {
                self.failed_checks += 1;
                let what = failed.iter().map(|c| describe(c)).collect::<Vec<_>>().join("; ");
                if self.failed_checks >= self.spec.threshold {
                    let reason = format!("analysis failed {} time(s): {what}", self.failed_checks);
                    self.finish(Phase::RolledBack, now, format!("rolled back: {reason}"));
                    self.weight = 0;
                    return Some(Action::Rollback(reason));
                }
                self.message = format!(
                    "step {}: failed check {} of {}: {what}",
                    self.step + 1,
                    self.failed_checks,
                    self.spec.threshold
                );
            } else if self.analysis.iter().all(|c| c.result == Outcome::Pass) {
                self.passed_in_step += 1;
                self.message = format!("step {}: weight {}, analysis passed", self.step + 1, self.weight);
            } else {
                let waiting: Vec<&str> = self
                    .analysis
                    .iter()
                    .filter(|c| c.result == Outcome::Inconclusive)
                    .map(|c| c.metric.as_str())
                    .collect();
                self.message = format!(
                    "step {}: weight {}, waiting for data ({})",
                    self.step + 1,
                    self.weight,
                    waiting.join(", ")
                );
            }
        }
        let held = self.step_started.is_some_and(|t| elapsed(t, now) >= self.step_duration);
        if held && self.passed_in_step > 0 {
            return Some(self.advance(now));
        }
        None
    }

    fn advance(&mut self, now: SystemTime) -> Action {
        self.step += 1;
        self.passed_in_step = 0;
        self.step_started = Some(now);
        self.step_started_at = rfc3339(now);
        match self.steps.get(self.step) {
            Some(&w) if w < 100 => {
                self.weight = w;
                self.message = format!("step {}: weight {w}", self.step + 1);
                Action::SetWeight(w)
            }
            _ => {
                self.step = self.step.min(self.steps.len() - 1);
                self.weight = 100;
                self.finish(Phase::Succeeded, now, format!("promoted: {} is the active version", self.candidate));
                Action::Promote
            }
        }
    }

    /// An operator's `promote`: skip the remaining steps.
    pub fn promote(&mut self, now: SystemTime, actor: &str) -> Result<Action, String> {
        self.live()?;
        self.weight = 100;
        self.finish(Phase::Succeeded, now, format!("promoted by {actor}"));
        Ok(Action::Promote)
    }

    pub fn abort(&mut self, now: SystemTime, actor: &str) -> Result<Action, String> {
        self.live()?;
        self.weight = 0;
        self.finish(Phase::Aborted, now, format!("aborted by {actor}"));
        Ok(Action::Rollback(format!("aborted by {actor}")))
    }

    pub fn pause(&mut self, actor: &str) -> Result<(), String> {
        if self.phase != Phase::Progressing {
            return Err(format!("rollout {} is {:?}, not Progressing", self.id, self.phase));
        }
        self.phase = Phase::Paused;
        self.message = format!("paused by {actor} at step {} (weight {})", self.step + 1, self.weight);
        Ok(())
    }

    pub fn resume(&mut self, now: SystemTime, actor: &str) -> Result<(), String> {
        if self.phase != Phase::Paused {
            return Err(format!("rollout {} is {:?}, not Paused", self.id, self.phase));
        }
        self.phase = Phase::Progressing;
        self.step_started = Some(now);
        self.step_started_at = rfc3339(now);
        self.passed_in_step = 0;
        self.message = format!("resumed by {actor}: step {} starts again", self.step + 1);
        Ok(())
    }

    fn live(&self) -> Result<(), String> {
        if self.phase.finished() {
            return Err(format!("rollout {} has already finished ({:?})", self.id, self.phase));
        }
        Ok(())
    }

    fn finish(&mut self, phase: Phase, now: SystemTime, message: String) {
        self.phase = phase;
        self.finished_at = Some(rfc3339(now));
        self.message = message;
    }

    fn check(&self, m: &Metric, f: &dyn Figures) -> Check {
        let window = self.spec.window;
        let mut threshold = BTreeMap::new();
        if let Some(v) = m.min {
            threshold.insert("min".to_owned(), v);
        }
        if let Some(v) = m.max {
            threshold.insert("max".to_owned(), v);
        }
        let mut out = Check {
            metric: m.name.clone(),
            vs_stable: m.vs_stable,
            value: None,
            threshold,
            result: Outcome::Inconclusive,
            note: None,
        };
        let of = |version: &str| -> Result<f64, String> {
            let mut matchers = m.matchers.clone();
            if m.name == "alerts" {
                matchers.insert("version".into(), version.into());
                return Ok(f.firing_alerts(&matchers) as f64);
            }
            let (figure, needs_traffic) = m.figure();
            if needs_traffic {
                let n = f.requests(version, window);
                if n < self.spec.min_requests as f64 {
                    return Err(format!(
                        "{version} answered {n} requests in the window, fewer than {}",
                        self.spec.min_requests
                    ));
                }
            }
            let label = if figure == "vigil_mirror_agreement_ratio" { "candidate" } else { "version" };
            matchers.insert(label.into(), version.into());
            let values = f.values(&figure, &matchers, window);
            // Several series (windows, metrics): the worst one decides.
            let worst = if m.min.is_some() {
                values.iter().copied().fold(f64::INFINITY, f64::min)
            } else {
                values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            };
            if values.is_empty() {
                Err(format!("no value of {figure} for {version} yet"))
            } else {
                Ok(worst)
            }
        };
        let value = match of(&self.candidate) {
            Ok(c) if m.vs_stable => of(&self.stable).map(|s| c - s),
            other => other,
        };
        match value {
            Err(why) => out.note = Some(why),
            Ok(v) => {
                out.value = Some(v);
                let ok = m.min.is_none_or(|lo| v >= lo) && m.max.is_none_or(|hi| v <= hi);
                out.result = if ok { Outcome::Pass } else { Outcome::Fail };
            }
        }
        out
    }
}

fn describe(c: &Check) -> String {
    let v = c.value.map(crate::alerts::format_value).unwrap_or_default();
    let bounds: Vec<String> =
        c.threshold.iter().map(|(k, t)| format!("{k} {}", crate::alerts::format_value(*t))).collect();
    let name = if c.vs_stable { format!("{} (vs stable)", c.metric) } else { c.metric.clone() };
    format!("{name} = {v} outside {}", bounds.join(", "))
}

fn elapsed(since: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(since).unwrap_or_default()
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests;
