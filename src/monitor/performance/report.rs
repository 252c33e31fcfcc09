//! One window's performance report: realised metrics over the labelled samples, the estimated
//! (CBPE) figures over all predictions of the same span, the gap to the validation baseline,
//! and the breakdown by segment with the fairness measures.

use super::cbpe::{self, CbpeEstimate};
use super::fairness;
use super::metrics::{self, Averages, ConfusionMatrix, RegressionReport};
use super::target::{Probability, Target};
use super::window::{Sample, Selection, Truth};
use crate::config::{PerformanceConfig, Task, WindowSpec, LOWER_IS_BETTER};
use crate::monitor::drift::ColumnReport;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone, Serialize)]
pub struct PerformanceReport {
    pub window: WindowInfo,
    pub task: Task,
    /// Labelled predictions in the window.
    pub labelled: usize,
    /// Predictions of the same span still waiting for a label (of those vigil still holds).
    pub unlabelled: usize,
    /// "no_labels" or "insufficient_data" (fewer than performance.min_records: no degradation flag).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regression: Option<RegressionReport>,
    /// Confidence-based estimate (NannyML's CBPE) over every prediction of the span, labelled or
    /// not: binary models with a probability output. Valid for calibrated probabilities under
    /// covariate shift (P(y|x) unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated: Option<CbpeEstimate>,
    /// The labels against the reference's target column (`schema.target`), with the drift
    /// machinery: the same test as a feature of that kind would get.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_drift: Option<ColumnReport>,
    pub baseline: Vec<BaselineCheck>,
    /// Some metric is worse than its baseline by more than performance.margin.
    pub degraded: bool,
    pub segments: BTreeMap<String, SegmentReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowInfo {
    /// "count" or "time".
    pub kind: &'static str,
    /// Records, or seconds.
    pub size: f64,
    /// The window as configured ("1000", "1h").
    pub name: String,
    /// Start of the span (RFC 3339), by prediction time.
    pub from: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Classification {
    /// Class labels, in the order of the confusion matrix (sorted, as scikit-learn's unique_labels).
    pub classes: Vec<String>,
    /// Binary: the class precision, recall and F1 are about (scikit-learn's pos_label).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub positive_class: Option<String>,
    /// Labelled records without a predicted class (the response lacked it): not counted.
    pub unscored: usize,
    pub accuracy: f64,
    /// Binary: of the positive class (average='binary'); multi-class: macro averages.
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub per_class: Vec<ClassScores>,
    #[serde(rename = "macro")]
    pub macro_avg: Averages,
    pub weighted: Averages,
    /// Rows = true class, columns = predicted class.
    pub confusion_matrix: Vec<Vec<u64>>,
    pub roc_auc: Option<f64>,
    /// Average precision (scikit-learn's average_precision_score).
    pub pr_auc: Option<f64>,
    pub log_loss: Option<f64>,
    pub brier: Option<f64>,
    /// Expected calibration error (binary; performance.calibration_bins equal-width bins).
    pub ece: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassScores {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BaselineCheck {
    pub metric: String,
    pub baseline: f64,
    pub value: Option<f64>,
    /// value − baseline.
    pub gap: Option<f64>,
    pub degraded: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentReport {
    pub groups: Vec<GroupReport>,
    /// Binary models: disparities across the groups (fairlearn's definitions), favourable
    /// outcome = the positive class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fairness: Option<Fairness>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    pub group: String,
    pub labelled: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f1: Option<f64>,
    /// P(predicted = positive) (binary).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection_rate: Option<f64>,
    /// Recall of the positive class (binary).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub true_positive_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub false_positive_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fairness {
    /// max − min selection rate.
    pub demographic_parity_difference: f64,
    /// min / max selection rate (the disparate impact ratio; 0.8 is the "four-fifths rule").
    pub disparate_impact_ratio: Option<f64>,
    /// max − min true positive rate.
    pub equal_opportunity_difference: Option<f64>,
}

/// The report of one window.
pub fn evaluate(
    target: &Target,
    cfg: &PerformanceConfig,
    spec: WindowSpec,
    sel: &Selection,
    from: Option<String>,
    label_drift: Option<ColumnReport>,
) -> PerformanceReport {
    let labelled = sel.samples.len();
    let (kind, size) = match spec {
        WindowSpec::Count(n) => ("count", n as f64),
        WindowSpec::Time(t) => ("time", t.as_secs_f64()),
    };
    let name = super::window_name(spec);
    let status = if labelled == 0 {
        Some("no_labels")
    } else if labelled < cfg.min_records {
        Some("insufficient_data")
    } else {
        None
    };
    let (classification, regression) = match target.task {
        Task::Regression => (None, regression(&sel.samples)),
        _ => (classification(target, cfg, &sel.samples), None),
    };
    let estimated = match target.probability {
        Probability::Binary(_) => {
            let probs: Vec<f64> = sel.predictions.iter().copied().filter(|p| !p.is_nan()).collect();
            cbpe::estimate_at_threshold(&probs, target.threshold)
        }
        _ => None,
    };
    let unlabelled = sel.predictions.len().saturating_sub(labelled);
    let baseline = baseline(cfg, classification.as_ref(), regression.as_ref(), status.is_none());
    let degraded = baseline.iter().any(|b| b.degraded);
    let segments = segments(target, &sel.samples);
    PerformanceReport {
        window: WindowInfo { kind, size, name, from },
        task: target.task,
        labelled,
        unlabelled,
        status,
        classification,
        regression,
        estimated,
        label_drift,
        baseline,
        degraded,
        segments,
    }
}

/// Class labels sorted as numpy sorts them: numerically when every label is a number, else as
/// strings.
fn sorted_classes<'a>(labels: impl Iterator<Item = &'a Arc<str>>) -> Vec<Arc<str>> {
    let mut classes: Vec<Arc<str>> = labels.cloned().collect();
    classes.sort();
    classes.dedup();
    let numbers: Option<Vec<f64>> = classes.iter().map(|c| c.parse::<f64>().ok()).collect();
    if let Some(numbers) = numbers {
        let mut pairs: Vec<(f64, Arc<str>)> = numbers.into_iter().zip(classes).collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        classes = pairs.into_iter().map(|(_, c)| c).collect();
    }
    classes
}

fn classification(target: &Target, cfg: &PerformanceConfig, samples: &[&Sample]) -> Option<Classification> {
    let mut scored: Vec<(&Arc<str>, &Arc<str>, &[f64])> = Vec::with_capacity(samples.len());
    let mut unscored = 0;
    for s in samples {
        if let Truth::Class { label, predicted, probs } = &s.truth {
            match predicted {
                Some(p) => scored.push((label, p, probs)),
                None => unscored += 1,
            }
        }
    }
    if scored.is_empty() {
        return None;
    }
    let classes = sorted_classes(scored.iter().flat_map(|(l, p, _)| [*l, *p]));
    let index = |c: &Arc<str>| classes.binary_search_by(|x| order(x, c, &classes)).ok();
    let y_true: Vec<usize> = scored.iter().map(|(l, _, _)| index(l).expect("in the union")).collect();
    let y_pred: Vec<usize> = scored.iter().map(|(_, p, _)| index(p).expect("in the union")).collect();
    let report = ConfusionMatrix::from_labels(&y_true, &y_pred, classes.len())?.report()?;
    let positive = classes.iter().position(|c| *c == target.positive);
    let binary = classes.len() <= 2 && (positive.is_some() || classes.len() == 1);
    let (precision, recall, f1) = match (binary, positive) {
        (true, Some(k)) => {
            let s = &report.per_class[k];
            (s.precision, s.recall, s.f1)
        }
        (true, None) => (0.0, 0.0, 0.0),
        _ => (report.macro_avg.precision, report.macro_avg.recall, report.macro_avg.f1),
    };
    let (mut roc_auc, mut pr_auc, mut log_loss, mut brier, mut ece) = (None, None, None, None, None);
    match &target.probability {
        Probability::Binary(_) => {
            let (mut y, mut p) = (Vec::new(), Vec::new());
            for s in samples {
                if let Truth::Class { label, probs, .. } = &s.truth {
                    if let [x] = **probs {
                        y.push(*label == target.positive);
                        p.push(x);
                    }
                }
            }
            roc_auc = metrics::roc_auc(&y, &p);
            pr_auc = metrics::average_precision(&y, &p);
            let yi: Vec<usize> = y.iter().map(|&b| b as usize).collect();
            let rows: Vec<f64> = p.iter().flat_map(|&x| [1.0 - x, x]).collect();
            log_loss = metrics::log_loss(&yi, &rows, 2);
            brier = metrics::brier_score(&yi, &rows, 2);
            ece = metrics::expected_calibration_error(&y, &p, cfg.calibration_bins);
        }
        Probability::Multi(cols) => {
            let k = cols.len();
            let (mut y, mut rows) = (Vec::new(), Vec::new());
            for s in samples {
                if let Truth::Class { label, probs, .. } = &s.truth {
                    if let Some(c) = target.classes.iter().position(|c| c == label) {
                        if probs.len() == k {
                            y.push(c);
                            rows.extend_from_slice(probs);
                        }
                    }
                }
            }
            roc_auc = metrics::roc_auc_ovr(&y, &rows, k);
            pr_auc = metrics::average_precision_ovr(&y, &rows, k);
            log_loss = metrics::log_loss(&y, &rows, k);
            brier = metrics::brier_score(&y, &rows, k);
        }
        Probability::None => {}
    }
    Some(Classification {
        classes: classes.iter().map(|c| c.to_string()).collect(),
        positive_class: binary.then(|| target.positive.to_string()),
        unscored,
        accuracy: report.accuracy,
        precision,
        recall,
        f1,
        per_class: report
            .per_class
            .iter()
            .map(|s| ClassScores {
                class: classes[s.class].to_string(),
                precision: s.precision,
                recall: s.recall,
                f1: s.f1,
                support: s.support,
            })
            .collect(),
        macro_avg: report.macro_avg,
        weighted: report.weighted,
        confusion_matrix: report.confusion_matrix,
        roc_auc,
        pr_auc,
        log_loss,
        brier,
        ece,
    })
}

/// The order of [`sorted_classes`], for binary search in its output.
fn order(a: &Arc<str>, b: &Arc<str>, classes: &[Arc<str>]) -> std::cmp::Ordering {
    let numeric = classes.iter().all(|c| c.parse::<f64>().is_ok());
    match (numeric, a.parse::<f64>(), b.parse::<f64>()) {
        (true, Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => a.cmp(b),
    }
}

fn regression(samples: &[&Sample]) -> Option<RegressionReport> {
    let (mut y, mut p) = (Vec::with_capacity(samples.len()), Vec::with_capacity(samples.len()));
    for s in samples {
        if let Truth::Value { label, predicted } = s.truth {
            y.push(label);
            p.push(predicted);
        }
    }
    metrics::regression_report(&y, &p)
}

/// The headline value of a metric, if the report has it.
fn metric(name: &str, c: Option<&Classification>, r: Option<&RegressionReport>) -> Option<f64> {
    match (name, c, r) {
        ("accuracy", Some(c), _) => Some(c.accuracy),
        ("precision", Some(c), _) => Some(c.precision),
        ("recall", Some(c), _) => Some(c.recall),
        ("f1", Some(c), _) => Some(c.f1),
        ("roc_auc", Some(c), _) => c.roc_auc,
        ("pr_auc", Some(c), _) => c.pr_auc,
        ("log_loss", Some(c), _) => c.log_loss,
        ("brier", Some(c), _) => c.brier,
        ("ece", Some(c), _) => c.ece,
        ("mae", _, Some(r)) => Some(r.mae),
        ("rmse", _, Some(r)) => Some(r.rmse),
        ("r2", _, Some(r)) => r.r2,
        ("mape", _, Some(r)) => Some(r.mape),
        _ => None,
    }
}

fn baseline(
    cfg: &PerformanceConfig,
    c: Option<&Classification>,
    r: Option<&RegressionReport>,
    enough: bool,
) -> Vec<BaselineCheck> {
    cfg.baseline
        .iter()
        .map(|(name, &base)| {
            let value = metric(name, c, r).filter(|v| v.is_finite());
            let gap = value.map(|v| v - base);
            let worse = match gap {
                Some(g) if LOWER_IS_BETTER.contains(&name.as_str()) => g > cfg.margin,
                Some(g) => g < -cfg.margin,
                None => false,
            };
            BaselineCheck { metric: name.clone(), baseline: base, value, gap, degraded: enough && worse }
        })
        .collect()
}

fn segments(target: &Target, samples: &[&Sample]) -> BTreeMap<String, SegmentReport> {
    let mut out = BTreeMap::new();
    for (si, seg) in target.segments.iter().enumerate() {
        // Groups in sorted order; samples without the segment are left out.
        let mut by_group: BTreeMap<Arc<str>, Vec<&Sample>> = BTreeMap::new();
        for s in samples {
            if let Some(Some(g)) = s.segments.get(si) {
                by_group.entry(g.clone()).or_default().push(s);
            }
        }
        let names: Vec<Arc<str>> = by_group.keys().cloned().collect();
        let mut groups = Vec::new();
        let (mut gid, mut y_true, mut y_pred) = (Vec::new(), Vec::new(), Vec::new());
        let binary_task = target.task != Task::Regression;
        for (g, members) in &by_group {
            let mut report = GroupReport {
                group: g.to_string(),
                labelled: members.len(),
                accuracy: None,
                f1: None,
                selection_rate: None,
                true_positive_rate: None,
                false_positive_rate: None,
                mae: None,
                rmse: None,
            };
            match target.task {
                Task::Regression => {
                    if let Some(r) = regression(members) {
                        report.mae = Some(r.mae);
                        report.rmse = Some(r.rmse);
                    }
                }
                _ => {
                    if let Some(c) = classification(target, &PerformanceConfig::default(), members) {
                        report.accuracy = Some(c.accuracy);
                        report.f1 = Some(c.f1);
                    }
                    let gi = names.binary_search(g).expect("a key");
                    for s in members {
                        if let Truth::Class { label, predicted: Some(p), .. } = &s.truth {
                            gid.push(gi);
                            y_true.push(*label == target.positive);
                            y_pred.push(*p == target.positive);
                        }
                    }
                }
            }
            groups.push(report);
        }
        let mut fairness = None;
        let is_binary = binary_task
            && samples.iter().all(|s| match &s.truth {
                Truth::Class { label, predicted, .. } => {
                    let ok = |c: &Arc<str>| *c == target.positive || *c == target.negative;
                    ok(label) && predicted.as_ref().is_none_or(ok)
                }
                Truth::Value { .. } => false,
            });
        if is_binary {
            if let Some(f) = fairness::fairness_report(&gid, &y_true, &y_pred) {
                for r in &f.per_group {
                    let g = &mut groups[r.group];
                    g.selection_rate = Some(r.selection_rate);
                    g.true_positive_rate = r.tpr;
                    g.false_positive_rate = r.fpr;
                }
                fairness = Some(Fairness {
                    demographic_parity_difference: f.demographic_parity_difference,
                    disparate_impact_ratio: f.demographic_parity_ratio,
                    equal_opportunity_difference: f.equal_opportunity_difference,
                });
            }
        }
        out.insert(seg.name.clone(), SegmentReport { groups, fairness });
    }
    out
}
