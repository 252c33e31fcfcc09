//! Confidence-based performance estimation (CBPE, NannyML) for binary classification: the performance a model
//! is expected to have on records whose labels have not arrived yet, from its calibrated probabilities.
//!
//! Source re-expressed (formulas, not code): NannyML 0.13.1, `nannyml/performance_estimation/confidence_based/
//! metrics.py` (commit 4c86ee35 of github.com/NannyML/nannyml): `estimate_accuracy`, `estimate_precision`,
//! `estimate_recall`, `estimate_specificity`, `estimate_f1` and `estimate_roc_auc`.
//!
//! With p_i = P(y_i = 1 | x_i) and the model's predicted label ŷ_i, each record is a true positive with
//! probability p_i if ŷ_i = 1, and so on, so the expected confusion counts are
//! E[TP] = Σ_{ŷ=1} p, E[FP] = Σ_{ŷ=1} (1 − p), E[FN] = Σ_{ŷ=0} p, E[TN] = Σ_{ŷ=0} (1 − p), and the metrics are
//! taken from those counts.
//!
//! When the estimate is valid: the probabilities must be calibrated (on labelled reference data, e.g. by
//! isotonic regression as NannyML does, and still calibrated on the shifted inputs), and the shift between
//! reference and production must be covariate shift only: P(x) may change, P(y | x) may not (no concept drift).
//! Under concept drift the estimate silently goes wrong; compare it with realised performance once labels
//! arrive. It is an expectation: its sampling error (NannyML's bands) is not computed here.
//!
//! Rows with a NaN probability are skipped (NannyML drops them too); every function returns `None` for
//! mismatched lengths, no rows left, or a probability outside [0, 1], and never panics.

use crate::monitor::stats::sort::sort_f64;
use crate::monitor::stats::wasserstein::Sum;
use serde::Serialize;

/// Expected confusion counts (fractional).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ExpectedConfusion {
    pub tp: f64,
    pub fp: f64,
    #[serde(rename = "fn")]
    pub fn_: f64,
    pub tn: f64,
}

/// The CBPE estimates for one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CbpeEstimate {
    /// Rows used.
    pub n: usize,
    pub confusion: ExpectedConfusion,
    /// (E[TP] + E[TN]) / n.
    pub accuracy: f64,
    /// E[TP] / (E[TP] + E[FP]), 0 when the denominator is 0 (NannyML).
    pub precision: f64,
    /// E[TP] / (E[TP] + E[FN]), 0 when the denominator is 0.
    pub recall: f64,
    /// E[TN] / (E[TN] + E[FP]), 0 when the denominator is 0.
    pub specificity: f64,
    /// E[TP] / (E[TP] + ½(E[FP] + E[FN])), 0 when the denominator is 0.
    pub f1: f64,
    /// [`estimated_roc_auc`] over the same rows.
    pub roc_auc: Option<f64>,
}

/// The CBPE estimates from calibrated probabilities `prob` and the model's predicted labels `y_pred`.
pub fn estimate(prob: &[f64], y_pred: &[bool]) -> Option<CbpeEstimate> {
    if prob.len() != y_pred.len() {
        return None;
    }
    estimate_rows(prob, prob.iter().copied().zip(y_pred.iter().copied()))
}

/// [`estimate`] with the predicted label ŷ_i = (p_i >= threshold), for a model that thresholds its
/// calibrated probability. (A NaN threshold predicts nothing positive.)
pub fn estimate_at_threshold(prob: &[f64], threshold: f64) -> Option<CbpeEstimate> {
    estimate_rows(prob, prob.iter().map(|&p| (p, p >= threshold)))
}

fn estimate_rows(prob: &[f64], rows: impl Iterator<Item = (f64, bool)>) -> Option<CbpeEstimate> {
    let confusion = expected_confusion(rows)?;
    let ExpectedConfusion { tp, fp, fn_, tn } = confusion;
    let n = prob.iter().filter(|p| !p.is_nan()).count();
    Some(CbpeEstimate {
        n,
        confusion,
        accuracy: (tp + tn) / n as f64,
        precision: ratio(tp, tp + fp),
        recall: ratio(tp, tp + fn_),
        specificity: ratio(tn, tn + fp),
        f1: ratio(tp, tp + 0.5 * (fp + fn_)),
        roc_auc: estimated_roc_auc(prob),
    })
}

/// NannyML's guarded division: 0 when the denominator is 0.
fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// Expected confusion counts over (p, ŷ) rows; NaN p skipped. `None` if no row is left or a p is outside [0, 1].
fn expected_confusion(rows: impl Iterator<Item = (f64, bool)>) -> Option<ExpectedConfusion> {
    let [mut tp, mut fp, mut fn_, mut tn] = std::array::from_fn(|_| Sum::default());
    let mut any = false;
    for (p, predicted) in rows.filter(|(p, _)| !p.is_nan()) {
        if !(0.0..=1.0).contains(&p) {
            return None;
        }
        any = true;
        let (hit, miss) = if predicted { (&mut tp, &mut fp) } else { (&mut fn_, &mut tn) };
        hit.add(p);
        miss.add(1.0 - p);
    }
    any.then(|| ExpectedConfusion { tp: tp.value(), fp: fp.value(), fn_: fn_.value(), tn: tn.value() })
}

/// NannyML's estimated ROC-AUC (`estimate_roc_auc`): the area under the expected ROC curve.
///
/// Rows sorted by probability, descending (p_(1) >= p_(2) >= …): after the top j rows the expected true and
/// false positives are TP_j = Σ_{i<=j} p_(i) and FP_j = j − TP_j (TP_0 = FP_0 = 0). NannyML rounds both to 5
/// decimals (`numpy.round`, half to even), takes TPR_j = TP_j / TP_n and FPR_j = FP_j / FP_n and integrates
/// with the trapezoid rule over all n + 1 points:
///
/// AUC = Σ_{j=1..n} (FPR_j − FPR_{j−1})·(TPR_j + TPR_{j−1}) / 2.
///
/// The rounding is reproduced (it moves the result by up to about 1e-5 / TP_n), and so is the cumulative sum's
/// order. NannyML sorts by the model's uncalibrated score and accumulates the calibrated probability; with
/// its monotone (isotonic) calibration, sorting by the calibrated probability gives the same curve: rows in a
/// different order have equal probabilities, so equal steps. Not an AUC of any labels: it estimates one.
///
/// NaN skipped; `None` when no row is left, a p is outside [0, 1], or TP_n or FP_n rounds to 0 (all p = 0 or
/// all p = 1: NannyML divides by zero and reports nan).
pub fn estimated_roc_auc(prob: &[f64]) -> Option<f64> {
    let mut p: Vec<f64> = prob.iter().copied().filter(|p| !p.is_nan()).collect();
    if p.is_empty() || !p.iter().all(|p| (0.0..=1.0).contains(p)) {
        return None;
    }
    sort_f64(&mut p);
    // Cumulative expected counts after each row, descending, rounded as NannyML rounds them.
    let points = || {
        p.iter().rev().enumerate().scan(0.0f64, |tps, (i, &pi)| {
            *tps += pi;
            Some((round5(*tps), round5((i + 1) as f64 - *tps)))
        })
    };
    let (tp_total, fp_total) = points().last()?;
    if tp_total == 0.0 || fp_total == 0.0 {
        return None;
    }
    let (mut tpr0, mut fpr0) = (0.0, 0.0);
    let mut area = Sum::default();
    for (tps, fps) in points() {
        let (tpr, fpr) = (tps / tp_total, fps / fp_total);
        area.add((fpr - fpr0) * (tpr + tpr0) / 2.0);
        (tpr0, fpr0) = (tpr, fpr);
    }
    Some(area.value())
}

/// `numpy.round(x, 5)`: x·10⁵ rounded half to even, divided by 10⁵ (numpy's own steps, so the same double).
fn round5(x: f64) -> f64 {
    (x * 1e5).round_ties_even() / 1e5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_counts_and_metrics() {
        // p = (0.9, 0.2, 0.6), ŷ = (1, 0, 1): TP = 1.5, FP = 0.5, FN = 0.2, TN = 0.8.
        let e = estimate(&[0.9, 0.2, 0.6], &[true, false, true]).unwrap();
        let c = e.confusion;
        assert!((c.tp - 1.5).abs() < 1e-15 && (c.fp - 0.5).abs() < 1e-15);
        assert!((c.fn_ - 0.2).abs() < 1e-15 && (c.tn - 0.8).abs() < 1e-15);
        assert!((e.accuracy - 2.3 / 3.0).abs() < 1e-15);
        assert!((e.precision - 0.75).abs() < 1e-15);
        assert!((e.f1 - 1.5 / 1.85).abs() < 1e-15);
        assert_eq!(estimate_at_threshold(&[0.9, 0.2, 0.6], 0.5), Some(e));
    }

    #[test]
    fn zero_denominators_give_zero() {
        let e = estimate(&[0.1, 0.3], &[false, false]).unwrap();
        assert_eq!((e.precision, e.f1), (0.0, 0.0));
        let e = estimate(&[0.0, 0.0], &[false, false]).unwrap();
        assert_eq!((e.recall, e.precision, e.f1, e.accuracy), (0.0, 0.0, 0.0, 1.0));
        assert_eq!(e.roc_auc, None);
        let e = estimate(&[1.0, 1.0], &[true, true]).unwrap();
        assert_eq!((e.specificity, e.roc_auc), (0.0, None));
    }

    #[test]
    fn bad_input() {
        assert_eq!(estimate(&[], &[]), None);
        assert_eq!(estimate(&[0.5], &[]), None);
        assert_eq!(estimate(&[1.5], &[true]), None);
        assert_eq!(estimate(&[-0.1], &[true]), None);
        assert_eq!(estimate(&[f64::NAN], &[true]), None);
        assert_eq!(estimated_roc_auc(&[]), None);
        assert_eq!(estimated_roc_auc(&[0.5, f64::INFINITY]), None);
        assert_eq!(estimate_at_threshold(&[0.5], f64::NAN).map(|e| e.confusion.tp), Some(0.0));
    }

    #[test]
    fn nan_rows_are_skipped() {
        let with = estimate(&[0.9, f64::NAN, 0.2], &[true, true, false]).unwrap();
        let without = estimate(&[0.9, 0.2], &[true, false]).unwrap();
        assert_eq!(with, without);
        assert_eq!(with.n, 2);
    }

    #[test]
    fn estimated_auc_values() {
        // One row of each extreme: a perfect expected ranking.
        assert_eq!(estimated_roc_auc(&[1.0, 0.0]), Some(1.0));
        // All tied: the diagonal.
        let auc = estimated_roc_auc(&[0.3; 10]).unwrap();
        assert!((auc - 0.5).abs() < 1e-12, "{auc}");
        // One row: TPR and FPR both go 0 → 1 in one step.
        assert_eq!(estimated_roc_auc(&[0.8]), Some(0.5));
        // Order of the input does not matter.
        assert_eq!(estimated_roc_auc(&[0.2, 0.9, 0.6]), estimated_roc_auc(&[0.9, 0.6, 0.2]));
    }

    #[test]
    fn round5_is_numpys() {
        assert_eq!(round5(0.123455), 0.12346);
        assert_eq!(round5(2.5e-6), 0.0);
        assert_eq!(round5(1.5e-5), 2e-5);
        assert_eq!(round5(7.0), 7.0);
    }
}
