//! Reports for the model's owners: one [`Report`] (plain data, gathered by `control::report`)
//! rendered as JSON (the source of truth: [`json`]), a self-contained HTML page with inline SVG
//! charts ([`html`]) or GitHub markdown tables ([`md`]), plus the sentences that say what changed
//! since the previous report ([`what_changed`]).
//!
//! Owns: the report's shape and every way of writing it. May not touch: anything of vigil's
//! running state (no routes, snapshots, files, sockets, clocks): every function here is a pure
//! function of its arguments, so the renderers are tested on hand-built reports.
//!
//! Reading a report: traffic and latency figures are cumulative since vigil started (they come
//! from the same books as `GET /admin/latency` and `/metrics`); drift, performance and robustness
//! are the last evaluation at `generated_at` (as `GET /admin/drift`, `/admin/performance`,
//! `/admin/robustness`); incidents, version changes and feedback are the ones in the span
//! `since..until`, read from the audit trail and the prediction log.

pub mod html;
pub mod md;
pub mod svg;

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The format version of [`Report`]'s JSON; a reader can refuse what it does not know.
pub const SCHEMA: u32 = 1;

/// Everything one report says. Serialized as is by [`json`]; read back by [`from_json`] (the
/// previous report, for [`what_changed`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: u32,
    /// RFC 3339, UTC.
    pub generated_at: String,
    /// The span of incidents, version changes and feedback: `since <= time <= until`.
    pub since: String,
    pub until: String,
    /// When the report this one is compared with was made; None for the first.
    pub previous: Option<String>,
    pub active_version: String,
    /// Registered versions, with their share of live traffic in percent.
    pub versions: Vec<VersionShare>,
    /// Per version, since vigil started.
    pub traffic: Vec<Traffic>,
    /// None when drift monitoring is off.
    pub drift: Option<Drift>,
    /// None when performance monitoring is off.
    pub performance: Option<Performance>,
    /// None when shadow traffic is off.
    pub robustness: Option<Robustness>,
    /// Alerts that fired, oldest first: resolved in the span, fired in it, or still firing.
    pub incidents: Vec<Incident>,
    /// `version.*`, `rollout.*` and `reference.*` entries of the audit trail in the span.
    pub changes: Vec<Change>,
    /// None when the prediction log is off (feedback cannot be stored).
    pub feedback: Option<FeedbackSummary>,
    /// Sentences comparing this report with the previous one ([`what_changed`]).
    pub what_changed: Vec<String>,
    /// Sections left out or incomplete, and why (a source that is off or could not be read).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionShare {
    pub name: String,
    pub active: bool,
    /// Percent of live traffic routed to it now.
    pub traffic_share: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Traffic {
    pub version: String,
    /// Answers sent to clients (`vigil_requests_total{version}`).
    pub requests: u64,
    /// Of those, with a 5xx status (the model's or vigil's: 502, 504).
    pub errors: u64,
    /// errors / requests; None without requests.
    pub error_rate: Option<f64>,
    /// Total time per request, as `GET /admin/latency` `total`; None before the first capture.
    pub latency: Option<Latency>,
}

/// Milliseconds, over the analysed requests (`count`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub evaluated_at: Option<String>,
    /// "ok", "no_reference" or "learning".
    pub status: String,
    pub versions: Vec<VersionDrift>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionDrift {
    pub version: String,
    /// Records in the window evaluated.
    pub records: usize,
    pub features: Vec<ColumnDrift>,
    /// Drift of the model's outputs (prediction drift).
    pub predictions: Vec<ColumnDrift>,
    pub dataset: DatasetDrift,
    pub covariate_shift: Option<CovariateShift>,
}

/// How a column's score is compared with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    /// A test's p-value: drift when the score is below the threshold.
    PValue,
    /// A distance: drift when the score is at or above the threshold.
    Distance,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDrift {
    pub name: String,
    /// The method, as `/admin/drift` names it (ks, wasserstein, psi, ...).
    pub method: String,
    /// The value compared with `threshold`: the p-value or the distance. None without a verdict.
    pub score: Option<f64>,
    pub test: Test,
    pub threshold: f64,
    pub drift: bool,
    /// Why there is no verdict ("window_filling", "insufficient_data").
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetDrift {
    pub evaluated: usize,
    pub drifted: usize,
    /// drifted / evaluated.
    pub share: Option<f64>,
    /// The share at or above which the dataset drifts (`drift.drift_share`).
    pub drift_share: f64,
    pub drift: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CovariateShift {
    /// Mean PCA reconstruction error of the window.
    pub score: Option<f64>,
    pub threshold: f64,
    pub drift: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Performance {
    pub evaluated_at: Option<String>,
    pub status: String,
    pub versions: Vec<VersionPerformance>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionPerformance {
    pub version: String,
    pub windows: Vec<WindowPerformance>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowPerformance {
    /// As configured: "1000" (records) or "1h".
    pub window: String,
    pub labelled: usize,
    /// "no_labels" or "insufficient_data" when the figures are not judged.
    pub status: Option<String>,
    /// accuracy, precision, recall, f1, roc_auc, ... or mae, rmse, r2, ...
    pub metrics: BTreeMap<String, f64>,
    pub baseline: Vec<BaselineGap>,
    pub degraded: bool,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineGap {
    pub metric: String,
    pub baseline: f64,
    pub value: Option<f64>,
    /// value − baseline.
    pub gap: Option<f64>,
    pub degraded: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub name: String,
    pub groups: Vec<Group>,
    /// demographic_parity_difference, disparate_impact_ratio, equal_opportunity_difference.
    pub fairness: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub group: String,
    pub labelled: usize,
    /// accuracy, f1, selection_rate, true_positive_rate, false_positive_rate, mae, rmse.
    pub figures: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Robustness {
    pub versions: Vec<VersionRobustness>,
    /// Mirror comparisons: candidate vs live answers.
    pub mirrors: Vec<Mirror>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRobustness {
    pub version: String,
    /// Share of sensitivity probes whose predicted class flipped.
    pub sensitivity_flip_ratio: Option<f64>,
    /// Share of adversarial samples flipped within the budget.
    pub adversarial_flip_ratio: Option<f64>,
    pub adversarial_samples: u64,
    pub stress: Vec<StressTotal>,
    /// The most important features (mean |attribution|), at most [`TOP_FEATURES`].
    pub top_features: Vec<FeatureImportance>,
    pub explanations: u64,
}

/// Features listed per version in [`VersionRobustness::top_features`].
pub const TOP_FEATURES: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StressTotal {
    pub case: String,
    pub runs: u64,
    pub invalid: u64,
    /// Outcome ("ok", "error", "timeout", ...) → runs.
    pub outcomes: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureImportance {
    pub feature: String,
    pub importance: f64,
    /// Of the sum of all features' importance.
    pub share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mirror {
    pub candidate: String,
    pub fraction: f64,
    pub rows: u64,
    pub agreement_ratio: Option<f64>,
    pub error_ratio: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub alert: String,
    pub severity: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub summary: Option<String>,
    /// When it fired (the audit entry's time).
    pub fired_at: String,
    /// None while it still fires.
    pub resolved_at: Option<String>,
    /// Firing to resolution, or to `until` while it still fires.
    pub duration_seconds: f64,
    /// The figure that fired it.
    pub value: Option<f64>,
}

impl Incident {
    /// The alert and its labels other than alertname / severity: "VigilFeatureDrift {feature=income}".
    pub fn key(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .filter(|(k, _)| *k != "alertname" && *k != "severity")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if labels.is_empty() {
            self.alert.clone()
        } else {
            format!("{} {{{}}}", self.alert, labels.join(", "))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub time: String,
    pub action: String,
    pub actor: String,
    pub target: Option<String>,
    /// One sentence, e.g. "admin activated v2 (v1 was active)".
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackSummary {
    /// Feedback rows (a comment, a score or both) that arrived in the span.
    pub count: u64,
    pub scored: u64,
    pub mean_score: Option<f64>,
    pub histogram: Vec<ScoreBin>,
    /// The latest comments, newest first, at most [`LAST_COMMENTS`] (stored redacted).
    pub comments: Vec<FeedbackComment>,
}

/// Comments listed in [`FeedbackSummary::comments`].
pub const LAST_COMMENTS: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreBin {
    /// "4" for a whole-number score, "[1.5, 2)" for a range.
    pub label: String,
    pub from: f64,
    pub to: f64,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackComment {
    pub time: String,
    pub request_id: String,
    pub row: u32,
    pub comment: Option<String>,
    pub score: Option<f64>,
}

/// The report as pretty JSON, newline-terminated.
pub fn json(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

/// Reads a report written by [`json`]. Errors say why (not JSON, another schema).
pub fn from_json(bytes: &[u8]) -> Result<Report, String> {
    let r: Report = serde_json::from_slice(bytes).map_err(|e| format!("not a vigil report: {e}"))?;
    if r.schema != SCHEMA {
        return Err(format!("report schema {} (this vigil reads {SCHEMA})", r.schema));
    }
    Ok(r)
}

/// Score histogram: one bin per value when every score is a whole number and they span at most
/// 20 values (a 1-5 rating); else 10 equal-width bins from the lowest to the highest score.
pub fn histogram(scores: &[f64]) -> Vec<ScoreBin> {
    let scores: Vec<f64> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    let (Some(lo), Some(hi)) = (scores.iter().copied().reduce(f64::min), scores.iter().copied().reduce(f64::max))
    else {
        return Vec::new();
    };
    if scores.iter().all(|s| s.fract() == 0.0) && hi - lo < 20.0 {
        return (0..=(hi - lo) as i64)
            .map(|i| {
                let v = lo + i as f64;
                ScoreBin { label: num(v), from: v, to: v, count: scores.iter().filter(|&&s| s == v).count() as u64 }
            })
            .collect();
    }
    const BINS: usize = 10;
    let width = (hi - lo) / BINS as f64;
    let mut counts = [0u64; BINS];
    for s in &scores {
        let i = if width > 0.0 { (((s - lo) / width) as usize).min(BINS - 1) } else { 0 };
        counts[i] += 1;
    }
    (0..BINS)
        .map(|i| {
            let (from, to) = (lo + width * i as f64, if i == BINS - 1 { hi } else { lo + width * (i + 1) as f64 });
            let close = if i == BINS - 1 { "]" } else { ")" };
            ScoreBin { label: format!("[{}, {}{close}", num(from), num(to)), from, to, count: counts[i] }
        })
        .collect()
}

/// A number as a reader wants it: whole numbers without decimals, others with up to four
/// significant decimals (trailing zeros dropped).
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let decimals = if v.abs() >= 100.0 {
        1
    } else if v.abs() >= 1.0 {
        3
    } else {
        4
    };
    let s = format!("{v:.decimals$}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_owned()
    }
}

/// `num`, or "—" when there is no value.
pub fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), num)
}

/// A share as a percentage: 0.0123 → "1.23%".
pub fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |x| format!("{}%", num((x * 10_000.0).round() / 100.0)))
}

/// A duration in seconds as "3h 5m", "4m 10s" or "12s".
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// What changed since `previous`, in sentences: the active version, version changes recorded in
/// the span, alerts that started or stopped firing, features that started or stopped drifting,
/// and the performance figures that moved (per version, window and metric).
pub fn what_changed(previous: Option<&Report>, current: &Report) -> Vec<String> {
    let mut out = Vec::new();
    let Some(prev) = previous else {
        out.push("This is the first report: there is no earlier one to compare with.".to_owned());
        if !current.changes.is_empty() {
            out.push(changes_sentence(&current.changes));
        }
        return out;
    };
    if prev.active_version != current.active_version {
        out.push(format!("The active version changed from {} to {}.", prev.active_version, current.active_version));
    } else {
        out.push(format!("{} is still the active version.", current.active_version));
    }
    if !current.changes.is_empty() {
        out.push(changes_sentence(&current.changes));
    }
    let registered = |r: &Report| r.versions.iter().map(|v| v.name.clone()).collect::<BTreeSet<_>>();
    let (before, now) = (registered(prev), registered(current));
    let added: Vec<&String> = now.difference(&before).collect();
    let removed: Vec<&String> = before.difference(&now).collect();
    if !added.is_empty() {
        out.push(format!("New version{}: {}.", plural(added.len()), join(&added)));
    }
    if !removed.is_empty() {
        out.push(format!("Removed version{}: {}.", plural(removed.len()), join(&removed)));
    }

    // Alerts: what fires now against what fired then.
    let firing = |r: &Report| -> BTreeSet<String> {
        r.incidents.iter().filter(|i| i.resolved_at.is_none()).map(Incident::key).collect()
    };
    let (then, now) = (firing(prev), firing(current));
    let started: Vec<&String> = now.difference(&then).collect();
    let stopped: Vec<&String> = then.difference(&now).collect();
    if !started.is_empty() {
        out.push(format!("Now firing: {}.", join(&started)));
    }
    if !stopped.is_empty() {
        out.push(format!("Resolved since the last report: {}.", join(&stopped)));
    }
    let resolved_within: Vec<String> = current
        .incidents
        .iter()
        .filter(|i| i.resolved_at.is_some() && !then.contains(&i.key()))
        .map(Incident::key)
        .collect();
    if !resolved_within.is_empty() {
        out.push(format!(
            "{} alert{} fired and resolved in between: {}.",
            resolved_within.len(),
            plural(resolved_within.len()),
            resolved_within.join("; ")
        ));
    }
    if started.is_empty() && stopped.is_empty() && resolved_within.is_empty() {
        out.push(if now.is_empty() {
            "No alert fired.".to_owned()
        } else {
            format!("Still firing: {}.", now.into_iter().collect::<Vec<_>>().join("; "))
        });
    }

    // Drift: features whose verdict flipped, per version seen in both.
    if let (Some(a), Some(b)) = (&prev.drift, &current.drift) {
        let mut any = false;
        for v in &b.versions {
            let Some(old) = a.versions.iter().find(|o| o.version == v.version) else { continue };
            let drifting = |d: &VersionDrift| -> BTreeSet<String> {
                d.features.iter().chain(&d.predictions).filter(|c| c.drift).map(|c| c.name.clone()).collect()
            };
            let (then, now) = (drifting(old), drifting(v));
            let started: Vec<&String> = now.difference(&then).collect();
            let stopped: Vec<&String> = then.difference(&now).collect();
            if !started.is_empty() {
                any = true;
                out.push(format!("{}: started drifting: {}.", v.version, join(&started)));
            }
            if !stopped.is_empty() {
                any = true;
                out.push(format!("{}: no longer drifting: {}.", v.version, join(&stopped)));
            }
        }
        if !any {
            out.push("No feature started or stopped drifting.".to_owned());
        }
    }

    // Performance: each (version, window, metric) present in both with a different value.
    if let (Some(a), Some(b)) = (&prev.performance, &current.performance) {
        let mut moved = Vec::new();
        for v in &b.versions {
            let Some(old_v) = a.versions.iter().find(|o| o.version == v.version) else { continue };
            for w in &v.windows {
                let Some(old_w) = old_v.windows.iter().find(|o| o.window == w.window) else { continue };
                for (metric, value) in &w.metrics {
                    let Some(old) = old_w.metrics.get(metric) else { continue };
                    let delta = value - old;
                    if delta.abs() > 1e-9 {
                        let sign = if delta > 0.0 { "+" } else { "" };
                        moved.push(format!(
                            "{metric} of {} (window {}) went from {} to {} ({sign}{})",
                            v.version,
                            w.window,
                            num(*old),
                            num(*value),
                            num(delta)
                        ));
                    }
                }
                if w.degraded && !old_w.degraded {
                    moved.push(format!("window {} of {} is now worse than its baseline", w.window, v.version));
                } else if !w.degraded && old_w.degraded {
                    moved.push(format!("window {} of {} is back within its baseline", w.window, v.version));
                }
            }
        }
        if moved.is_empty() {
            out.push("Performance figures are unchanged.".to_owned());
        } else {
            for m in moved {
                let mut chars = m.chars();
                let first: String = chars.next().map(|c| c.to_uppercase().collect()).unwrap_or_default();
                out.push(format!("{first}{}.", chars.as_str()));
            }
        }
    }
    out
}

fn changes_sentence(changes: &[Change]) -> String {
    let n = changes.len();
    let listed: Vec<&str> = changes.iter().map(|c| c.summary.as_str()).collect();
    format!("{n} version change{} recorded: {}.", plural(n), listed.join("; "))
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn join(items: &[&String]) -> String {
    items.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
pub(crate) mod tests;
