//! Realised performance once labels are known, computed the way scikit-learn 1.9.1 computes it.
//!
//! Classification: classes are indices `0..k` (the caller maps its labels), probabilities are row-major
//! `n × k` slices (a binary caller passes k = 2 with rows `[1 − p, p]`). Regression: paired `f64` slices.
//! Reference functions (sklearn/metrics/_classification.py, _ranking.py, _regression.py, sklearn/calibration.py):
//! - [`ConfusionMatrix`], [`ClassificationReport`]: `confusion_matrix(labels=range(k))`, `accuracy_score`,
//!   `precision_recall_fscore_support(labels=range(k), zero_division=0)`, average `None`/`'macro'`/`'weighted'`;
//! - [`roc_auc`], [`roc_auc_ovr`]: `roc_auc_score` (binary; `multi_class='ovr', average='macro'`);
//! - [`average_precision`], [`average_precision_ovr`]: `average_precision_score` (binary; macro one-vs-rest);
//! - [`log_loss`], [`brier_score`]: `log_loss(labels=range(k))`, `brier_score_loss(labels=range(k))`;
//! - [`expected_calibration_error`]: over `calibration_curve(strategy='uniform')`'s bins;
//! - [`regression_report`]: `mean_absolute_error`, `root_mean_squared_error`, `r2_score`,
//!   `mean_absolute_percentage_error`.
//!
//! Where scikit-learn raises, these return `None`; where it returns a value, so do they (deviations are named in
//! each function's doc). NaN never raises here: a row whose score or probability is NaN is skipped (the caller
//! counts such rows if it wants to report them). Every function is O(n log n) or better, allocates per call,
//! never per row, and does not panic on any input.

use crate::monitor::stats::sort::sort_f64_with;
use crate::monitor::stats::wasserstein::Sum;
use serde::Serialize;

// ---------------------------------------------------------------------------------------------------------------
// Confusion matrix and what derives from it
// ---------------------------------------------------------------------------------------------------------------

/// A k×k confusion matrix: rows are the true class, columns the predicted one (scikit-learn's orientation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    k: usize,
    /// Row-major k×k counts.
    counts: Vec<u64>,
}

/// Precision, recall and F1 of one class, and its support (the number of true members).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassScores {
    pub class: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

/// An average over classes of precision, recall and F1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Averages {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// Everything [`ConfusionMatrix::report`] derives; serialises with scikit-learn's names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationReport {
    /// Labelled records counted.
    pub n: u64,
    pub accuracy: f64,
    pub per_class: Vec<ClassScores>,
    /// Unweighted mean over the k classes (`average='macro'`).
    #[serde(rename = "macro")]
    pub macro_avg: Averages,
    /// Mean weighted by support (`average='weighted'`).
    pub weighted: Averages,
    /// Rows = true class, columns = predicted class.
    pub confusion_matrix: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// An empty k×k matrix; `None` if k² counts cannot be allocated (k² overflows, or the allocator refuses).
    pub fn new(k: usize) -> Option<ConfusionMatrix> {
        let cells = k.checked_mul(k)?;
        let mut counts = Vec::new();
        counts.try_reserve_exact(cells).ok()?;
        counts.resize(cells, 0);
        Some(ConfusionMatrix { k, counts })
    }

    /// `sklearn.metrics.confusion_matrix(y_true, y_pred, labels=range(k))`. `None` if the lengths differ, a
    /// label is `>= k` (the caller's label mapping is wrong; scikit-learn would silently drop such rows), or the
    /// matrix cannot be allocated.
    pub fn from_labels(y_true: &[usize], y_pred: &[usize], k: usize) -> Option<ConfusionMatrix> {
        if y_true.len() != y_pred.len() || y_true.iter().chain(y_pred).any(|&c| c >= k) {
            return None;
        }
        let mut m = ConfusionMatrix::new(k)?;
        for (&t, &p) in y_true.iter().zip(y_pred) {
            m.add(t, p);
        }
        Some(m)
    }

    /// Counts one record; `false` (and nothing counted) if either class is `>= k`.
    pub fn add(&mut self, y_true: usize, y_pred: usize) -> bool {
        if y_true >= self.k || y_pred >= self.k {
            return false;
        }
        self.counts[y_true * self.k + y_pred] += 1;
        true
    }

    /// The number of classes k.
    pub fn classes(&self) -> usize {
        self.k
    }

    /// Records of true class `y_true` predicted as `y_pred` (0 outside the matrix).
    pub fn get(&self, y_true: usize, y_pred: usize) -> u64 {
        if y_true >= self.k || y_pred >= self.k {
            return 0;
        }
        self.counts[y_true * self.k + y_pred]
    }

    /// All records counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `accuracy_score`: trace / total. `None` when empty.
    pub fn accuracy(&self) -> Option<f64> {
        let total = self.total();
        let correct: u64 = (0..self.k).map(|c| self.get(c, c)).sum();
        (total > 0).then(|| correct as f64 / total as f64)
    }

    /// The matrix as rows (true class) of counts per predicted class.
    pub fn to_rows(&self) -> Vec<Vec<u64>> {
        if self.k == 0 {
            return Vec::new();
        }
        self.counts.chunks_exact(self.k).map(<[u64]>::to_vec).collect()
    }

    /// Per-class scores as `precision_recall_fscore_support(labels=range(k), average=None, zero_division=0)`:
    /// precision = tp / predicted, recall = tp / support, F1 = 2·tp / (support + predicted), each 0 when its
    /// denominator is 0 (so F1 = 0 when precision + recall = 0).
    pub fn class_scores(&self) -> Vec<ClassScores> {
        (0..self.k)
            .map(|c| {
                let tp = self.get(c, c);
                let support: u64 = (0..self.k).map(|p| self.get(c, p)).sum();
                let predicted: u64 = (0..self.k).map(|t| self.get(t, c)).sum();
                ClassScores {
                    class: c,
                    precision: ratio(tp, predicted),
                    recall: ratio(tp, support),
                    f1: ratio(2 * tp, support + predicted),
                    support,
                }
            })
            .collect()
    }

    /// Accuracy, per-class scores, macro and weighted averages, the matrix. `None` when empty.
    ///
    /// The macro average is over all k classes, as scikit-learn with `labels=range(k)`: a class absent from
    /// both y_true and y_pred counts with precision = recall = F1 = 0. The weighted average weighs by support,
    /// so such a class does not move it.
    pub fn report(&self) -> Option<ClassificationReport> {
        let accuracy = self.accuracy()?;
        let per_class = self.class_scores();
        let k = self.k as f64;
        let n = self.total();
        let mean = |f: fn(&ClassScores) -> f64| per_class.iter().map(f).sum::<f64>() / k;
        let weighted =
            |f: fn(&ClassScores) -> f64| per_class.iter().map(|c| c.support as f64 * f(c)).sum::<f64>() / n as f64;
        Some(ClassificationReport {
            n,
            accuracy,
            macro_avg: Averages { precision: mean(|c| c.precision), recall: mean(|c| c.recall), f1: mean(|c| c.f1) },
            weighted: Averages {
                precision: weighted(|c| c.precision),
                recall: weighted(|c| c.recall),
                f1: weighted(|c| c.f1),
            },
            confusion_matrix: self.to_rows(),
            per_class,
        })
    }
}

/// `num / den`, or 0 when `den` is 0 (scikit-learn's `zero_division=0`).
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// [`ConfusionMatrix::from_labels`] then [`ConfusionMatrix::report`]: `None` for mismatched lengths, a label
/// `>= k`, or no records.
pub fn classification_report(y_true: &[usize], y_pred: &[usize], k: usize) -> Option<ClassificationReport> {
    ConfusionMatrix::from_labels(y_true, y_pred, k)?.report()
}

// ---------------------------------------------------------------------------------------------------------------
// Ranking metrics: ROC-AUC and average precision
// ---------------------------------------------------------------------------------------------------------------

/// The scores of the positive and of the negative rows, each sorted ascending, NaN dropped. Buffers are reused
/// across classes by the one-vs-rest functions.
#[derive(Default)]
struct Ranked {
    pos: Vec<f64>,
    neg: Vec<f64>,
    scratch: Vec<u64>,
}

impl Ranked {
    fn fill(&mut self, rows: impl Iterator<Item = (bool, f64)>) {
        self.pos.clear();
        self.neg.clear();
        for (positive, s) in rows.filter(|(_, s)| !s.is_nan()) {
            if positive {
                self.pos.push(s);
            } else {
                self.neg.push(s);
            }
        }
        sort_f64_with(&mut self.pos, &mut self.scratch);
        sort_f64_with(&mut self.neg, &mut self.scratch);
    }

    /// Calls `f(positives, negatives)` for each distinct score, ascending. Needs NaN-free input (`fill`
    /// guarantees it): then each round consumes at least one value.
    fn for_each_tie(&self, mut f: impl FnMut(u64, u64)) {
        let (pos, neg) = (&self.pos, &self.neg);
        let (mut i, mut j) = (0, 0);
        loop {
            let x = match (pos.get(i), neg.get(j)) {
                (Some(&a), Some(&b)) => a.min(b),
                (Some(&a), None) => a,
                (None, Some(&b)) => b,
                (None, None) => break,
            };
            let (i0, j0) = (i, j);
            while i < pos.len() && pos[i] == x {
                i += 1;
            }
            while j < neg.len() && neg[j] == x {
                j += 1;
            }
            f((i - i0) as u64, (j - j0) as u64);
        }
    }

    /// Mann–Whitney U with midranks over P·N: each (positive, negative) pair scores 1 if the positive ranks
    /// higher, ½ if tied. Counted exactly as 2U in integers, then one division. `None` without both classes.
    fn auc(&self) -> Option<f64> {
        let (p, n) = (self.pos.len() as u128, self.neg.len() as u128);
        if p == 0 || n == 0 {
            return None;
        }
        let (mut twice_u, mut neg_below) = (0u128, 0u128);
        self.for_each_tie(|tp, tn| {
            twice_u += tp as u128 * (2 * neg_below + tn as u128);
            neg_below += tn as u128;
        });
        Some(twice_u as f64 / (2 * p * n) as f64)
    }

    /// Σ over distinct thresholds t (rows with score >= t predicted positive) of ΔRecall(t)·Precision(t).
    /// `None` without positives.
    fn average_precision(&self) -> Option<f64> {
        let p = self.pos.len() as u64;
        if p == 0 {
            return None;
        }
        let (mut pos_at_or_above, mut neg_at_or_above) = (p, self.neg.len() as u64);
        let mut sum = Sum::default();
        self.for_each_tie(|tp, tn| {
            if tp > 0 {
                let precision = pos_at_or_above as f64 / (pos_at_or_above + neg_at_or_above) as f64;
                sum.add(tp as f64 * precision);
            }
            pos_at_or_above -= tp;
            neg_at_or_above -= tn;
        });
        Some(sum.value() / p as f64)
    }
}

/// Binary ROC-AUC, `sklearn.metrics.roc_auc_score(y_true, scores)`: the trapezoidal area under the ROC curve
/// over distinct thresholds, which equals the Mann–Whitney U statistic with midranks / (P·N) (a tie between a
/// positive and a negative counts ½). Computed by sorting each class's scores and merging: O(n log n).
///
/// Rows with a NaN score are skipped (±inf are ordinary scores). `None` for mismatched lengths or when the
/// remaining rows hold one class only (scikit-learn warns and returns nan).
pub fn roc_auc(y_true: &[bool], scores: &[f64]) -> Option<f64> {
    ranked_binary(y_true, scores)?.auc()
}

/// Binary average precision, `sklearn.metrics.average_precision_score(y_true, scores)`: the step-wise sum
/// AP = Σ_t (R_t − R_{t−1})·P_t over distinct score thresholds t, descending (no interpolation, not the
/// trapezoid). Ties form one threshold. O(n log n).
///
/// Rows with a NaN score are skipped. `None` for mismatched lengths or no positive row. Deviation: without
/// positives scikit-learn warns and returns 0.0; an undefined AP is reported as `None` here instead.
pub fn average_precision(y_true: &[bool], scores: &[f64]) -> Option<f64> {
    ranked_binary(y_true, scores)?.average_precision()
}

fn ranked_binary(y_true: &[bool], scores: &[f64]) -> Option<Ranked> {
    if y_true.len() != scores.len() {
        return None;
    }
    let mut r = Ranked::default();
    r.fill(y_true.iter().copied().zip(scores.iter().copied()));
    Some(r)
}

/// One-vs-rest macro ROC-AUC, `roc_auc_score(y_true, probs, multi_class='ovr', average='macro')`: the mean over
/// classes c of the binary AUC of (y == c) against column c.
///
/// `probs` is row-major n×k. Rows holding a NaN are skipped. `None` when the input is malformed (k < 2,
/// `probs.len() != n·k`, a label `>= k`), when nothing remains, and where scikit-learn raises or returns nan:
/// a class absent from y_true (without `labels` it raises; with `labels=range(k)` the class's AUC is nan, and
/// so is the mean), or for k >= 3 a row that does not sum to 1 (`np.allclose(1, s)`: |1 − s| <= 1e-8 + 1e-5·|s|). For k = 2 this is the binary AUC of class 1 on column 1: scikit-learn rejects a two-column score
/// for a binary target ("y should be a 1d array"), and `roc_auc_score(y_true == 1, probs[:, 1])` is what it
/// computes from one column.
pub fn roc_auc_ovr(y_true: &[usize], probs: &[f64], k: usize) -> Option<f64> {
    let rows = ProbRows::new(y_true, probs, k)?;
    if k > 2 && !rows.iter().all(|(_, row)| sums_to_one(row)) {
        return None;
    }
    rows.macro_over_classes(Ranked::auc)
}

/// One-vs-rest macro average precision, `average_precision_score(y_true, probs)` for a multi-class y_true:
/// the mean over classes c of the binary AP of (y == c) against column c. For k = 2, the binary AP of class 1
/// on column 1 (scikit-learn rejects two columns for a binary target).
///
/// Rows holding a NaN are skipped. `None` when the input is malformed (as [`roc_auc_ovr`]), when nothing remains,
/// or when a class is absent from y_true (scikit-learn raises: its one-hot y_true then has fewer columns than
/// `probs`). No row-sum check: scikit-learn has none here.
pub fn average_precision_ovr(y_true: &[usize], probs: &[f64], k: usize) -> Option<f64> {
    ProbRows::new(y_true, probs, k)?.macro_over_classes(Ranked::average_precision)
}

/// `np.allclose(1, s)`: |1 − s| <= 1e-8 + 1e-5·|s|.
fn sums_to_one(row: &[f64]) -> bool {
    let s: f64 = row.iter().sum();
    (1.0 - s).abs() <= 1e-8 + 1e-5 * s.abs()
}

// ---------------------------------------------------------------------------------------------------------------
// Probabilistic metrics: log loss, Brier score, calibration
// ---------------------------------------------------------------------------------------------------------------

/// Validated labelled probability rows: k >= 2, `probs.len() == y_true.len()·k`, every label `< k`. Iterating
/// skips rows holding a NaN.
struct ProbRows<'a> {
    y_true: &'a [usize],
    probs: &'a [f64],
    k: usize,
}

impl<'a> ProbRows<'a> {
    fn new(y_true: &'a [usize], probs: &'a [f64], k: usize) -> Option<ProbRows<'a>> {
        let valid = k >= 2 && Some(probs.len()) == y_true.len().checked_mul(k) && y_true.iter().all(|&y| y < k);
        valid.then_some(ProbRows { y_true, probs, k })
    }

    fn iter(&self) -> impl Iterator<Item = (usize, &'a [f64])> + '_ {
        self.y_true
            .iter()
            .copied()
            .zip(self.probs.chunks_exact(self.k))
            .filter(|(_, row)| !row.iter().any(|p| p.is_nan()))
    }

    /// Every remaining probability in [0, 1] (scikit-learn raises otherwise), and at least one row.
    fn are_probabilities(&self) -> bool {
        let mut any = false;
        for (_, row) in self.iter() {
            any = true;
            if !row.iter().all(|p| (0.0..=1.0).contains(p)) {
                return false;
            }
        }
        any
    }

    /// The mean over rows of `f(label, row)`, compensated; `None` unless [`Self::are_probabilities`].
    fn mean(&self, f: impl Fn(usize, &[f64]) -> f64) -> Option<f64> {
        if !self.are_probabilities() {
            return None;
        }
        let (mut sum, mut n) = (Sum::default(), 0usize);
        for (y, row) in self.iter() {
            sum.add(f(y, row));
            n += 1;
        }
        Some(sum.value() / n as f64)
    }

    /// k = 2: `metric` on (y == 1, column 1). k >= 3: the mean over classes of `metric` on (y == c, column c),
    /// `None` if it is `None` for any class.
    fn macro_over_classes(&self, metric: fn(&Ranked) -> Option<f64>) -> Option<f64> {
        let mut ranked = Ranked::default();
        if self.k == 2 {
            ranked.fill(self.iter().map(|(y, row)| (y == 1, row[1])));
            return metric(&ranked);
        }
        let mut total = 0.0;
        for c in 0..self.k {
            ranked.fill(self.iter().map(|(y, row)| (y == c, row[c])));
            total += metric(&ranked)?;
        }
        Some(total / self.k as f64)
    }
}

/// `sklearn.metrics.log_loss(y_true, probs, labels=range(k))` (natural log, mean over rows): each probability
/// is clipped to [ε, 1 − ε] with ε = `f64::EPSILON` (2.22e-16, the machine epsilon of float64), then the loss
/// is the mean of −ln(p[y]). Rows are not renormalised: a row that does not sum to 1 is used as given
/// (scikit-learn only warns). Binary callers pass k = 2 with rows `[1 − p, p]`.
///
/// Rows holding a NaN are skipped. `None` when malformed (k < 2, `probs.len() != n·k`, a label `>= k`), when
/// nothing remains, or when a probability is outside [0, 1] (scikit-learn raises).
pub fn log_loss(y_true: &[usize], probs: &[f64], k: usize) -> Option<f64> {
    let eps = f64::EPSILON;
    ProbRows::new(y_true, probs, k)?.mean(|y, row| -row[y].clamp(eps, 1.0 - eps).ln())
}

/// `sklearn.metrics.brier_score_loss(y_true, probs, labels=range(k))` with its default `scale_by_half='auto'`:
/// the mean over rows of Σ_c (1[y = c] − p_c)², halved when k = 2 (so binary rows `[1 − p, p]` give the usual
/// mean of (p − y)², in [0, 1]) and not halved for k >= 3 (range [0, 2]).
///
/// Rows holding a NaN are skipped. `None` as [`log_loss`] (malformed, nothing left, a value outside [0, 1]).
pub fn brier_score(y_true: &[usize], probs: &[f64], k: usize) -> Option<f64> {
    let scale = if k == 2 { 0.5 } else { 1.0 };
    let squares = |y: usize, row: &[f64]| -> f64 {
        row.iter().enumerate().map(|(c, &p)| if c == y { (1.0 - p) * (1.0 - p) } else { p * p }).sum()
    };
    Some(ProbRows::new(y_true, probs, k)?.mean(squares)? * scale)
}

/// Expected calibration error of binary probabilities over `bins` equal-width bins on [0, 1]:
///
/// ECE = Σ_b (n_b / n)·|mean(y in b) − mean(p in b)|, over the non-empty bins b,
///
/// with the bins of `sklearn.calibration.calibration_curve(y_true, prob, n_bins=bins, strategy='uniform')`:
/// edges `numpy.linspace(0, 1, bins + 1)` (edge i is `i · (1/bins)` in floating point, so 3·0.1 =
/// 0.30000000000000004) and `searchsorted(inner edges, p, 'left')`: bins are right-closed, (e_i, e_{i+1}], the
/// first also holds 0. `mean(y in b)` and `mean(p in b)` are calibration_curve's `prob_true` and `prob_pred`.
///
/// Rows with a NaN probability are skipped. `None` for mismatched lengths, `bins == 0`, no rows left, or a
/// probability outside [0, 1] (scikit-learn raises).
pub fn expected_calibration_error(y_true: &[bool], prob: &[f64], bins: usize) -> Option<f64> {
    if y_true.len() != prob.len() || bins == 0 {
        return None;
    }
    let rows = || y_true.iter().zip(prob).filter(|(_, p)| !p.is_nan());
    if !rows().all(|(_, p)| (0.0..=1.0).contains(p)) {
        return None;
    }
    // Per bin: (rows, positives, Σ p).
    let mut acc = vec![(0u64, 0u64, 0.0f64); bins];
    let step = 1.0 / bins as f64;
    let mut n = 0u64;
    for (&y, &p) in rows() {
        let b = &mut acc[uniform_bin(p, bins, step)];
        b.0 += 1;
        b.1 += y as u64;
        b.2 += p;
        n += 1;
    }
    if n == 0 {
        return None;
    }
    let mut ece = Sum::default();
    for &(count, positives, sum_p) in acc.iter().filter(|b| b.0 > 0) {
        let gap = (positives as f64 / count as f64 - sum_p / count as f64).abs();
        ece.add(count as f64 / n as f64 * gap);
    }
    Some(ece.value())
}

/// The bin of `p` in [0, 1] among `bins` equal-width bins: `#{i in 1..bins : i·step < p}`, numpy's
/// `searchsorted(linspace(0, 1, bins + 1)[1:-1], p, 'left')` without building the edges.
fn uniform_bin(p: f64, bins: usize, step: f64) -> usize {
    let edge = |i: usize| i as f64 * step;
    // A guess within one of the answer, then exact comparisons with the edges as numpy computes them.
    let mut b = ((p * bins as f64) as usize).min(bins - 1);
    while b > 0 && edge(b) >= p {
        b -= 1;
    }
    while b + 1 < bins && edge(b + 1) < p {
        b += 1;
    }
    b
}

// ---------------------------------------------------------------------------------------------------------------
// Regression
// ---------------------------------------------------------------------------------------------------------------

/// Regression errors over the pairs used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RegressionReport {
    /// `mean_absolute_error`: mean |y − ŷ|.
    pub mae: f64,
    /// `root_mean_squared_error`: sqrt(mean (y − ŷ)²).
    pub rmse: f64,
    /// `r2_score` (force_finite=True); `None` below two pairs (scikit-learn warns and returns nan).
    pub r2: Option<f64>,
    /// `mean_absolute_percentage_error`: mean |y − ŷ| / max(|y|, ε), ε = `f64::EPSILON` (a fraction, not %).
    pub mape: f64,
    /// Pairs used.
    pub n: usize,
}

/// MAE, RMSE, R² and MAPE as scikit-learn 1.9.1 computes them (single output, no weights).
///
/// R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)² with scikit-learn's `force_finite` rule when y_true is constant (the
/// denominator is 0): 1.0 if the predictions are perfect too, else 0.0. MAPE divides by max(|y|, 2.22e-16), so a
/// zero y_true with a wrong prediction makes it huge (about 4.5e15 × the error), as scikit-learn's does.
///
/// Pairs where either value is NaN or infinite are skipped (scikit-learn raises on them); `n` counts the pairs
/// used. `None` for mismatched lengths or no pair left. Deviation: a constant y_true is detected exactly here;
/// scikit-learn subtracts a float mean that can miss the constant by an ulp (0.1 three times: its mean is
/// 0.10000000000000002), leaving a denominator of ~1e-33 and an R² of about −5e31 instead of 0.
pub fn regression_report(y_true: &[f64], y_pred: &[f64]) -> Option<RegressionReport> {
    if y_true.len() != y_pred.len() {
        return None;
    }
    let pairs = || y_true.iter().zip(y_pred).filter(|(t, p)| t.is_finite() && p.is_finite()).map(|(&t, &p)| (t, p));
    let (mut abs, mut sq, mut pct, mut sum_y) = (Sum::default(), Sum::default(), Sum::default(), Sum::default());
    let mut n = 0usize;
    let first = pairs().next()?.0;
    let mut constant = true;
    for (t, p) in pairs() {
        let e = t - p;
        abs.add(e.abs());
        sq.add(e * e);
        pct.add(e.abs() / t.abs().max(f64::EPSILON));
        sum_y.add(t);
        constant &= t == first;
        n += 1;
    }
    let nf = n as f64;
    let r2 = (n >= 2).then(|| {
        let numerator = sq.value();
        let denominator = if constant {
            0.0
        } else {
            let mean = sum_y.value() / nf;
            let mut d = Sum::default();
            pairs().for_each(|(t, _)| d.add((t - mean) * (t - mean)));
            d.value()
        };
        match (numerator == 0.0, denominator == 0.0) {
            (true, _) => 1.0,
            (false, true) => 0.0,
            (false, false) => 1.0 - numerator / denominator,
        }
    });
    Some(RegressionReport { mae: abs.value() / nf, rmse: (sq.value() / nf).sqrt(), r2, mape: pct.value() / nf, n })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn confusion_matrix_orientation_and_scores() {
        // sklearn: confusion_matrix([0,1,2,2,1], [0,2,2,1,1]) = [[1,0,0],[0,1,1],[0,1,1]]
        let m = ConfusionMatrix::from_labels(&[0, 1, 2, 2, 1], &[0, 2, 2, 1, 1], 3).unwrap();
        assert_eq!(m.to_rows(), vec![vec![1, 0, 0], vec![0, 1, 1], vec![0, 1, 1]]);
        let r = m.report().unwrap();
        assert_eq!(r.n, 5);
        assert!(close(r.accuracy, 0.6));
        assert_eq!(r.per_class[1], ClassScores { class: 1, precision: 0.5, recall: 0.5, f1: 0.5, support: 2 });
        // Asymmetric: row = truth. One true 0 predicted as 1.
        let m = ConfusionMatrix::from_labels(&[0], &[1], 2).unwrap();
        assert_eq!((m.get(0, 1), m.get(1, 0)), (1, 0));
    }

    #[test]
    fn zero_division_is_zero() {
        // Class 2 never predicted and never true; class 1 never predicted.
        let r = classification_report(&[0, 1, 0], &[0, 0, 0], 3).unwrap();
        assert_eq!(r.per_class[1], ClassScores { class: 1, precision: 0.0, recall: 0.0, f1: 0.0, support: 1 });
        assert_eq!(r.per_class[2], ClassScores { class: 2, precision: 0.0, recall: 0.0, f1: 0.0, support: 0 });
        // Class 0: precision 2/3, recall 1, F1 0.8; macro over the 3 classes.
        assert!(close(r.macro_avg.f1, 0.8 / 3.0));
        assert!(close(r.weighted.recall, 2.0 / 3.0));
    }

    #[test]
    fn confusion_matrix_rejects_bad_input() {
        assert!(ConfusionMatrix::from_labels(&[0, 1], &[0], 2).is_none());
        assert!(ConfusionMatrix::from_labels(&[0, 2], &[0, 1], 2).is_none());
        assert!(classification_report(&[], &[], 2).is_none());
        assert!(classification_report(&[], &[], 0).is_none());
        assert!(classification_report(&[0], &[0], 0).is_none());
        assert!(classification_report(&[0], &[0], usize::MAX).is_none());
        assert!(ConfusionMatrix::new(usize::MAX).is_none());
        let mut m = ConfusionMatrix::new(2).unwrap();
        assert!(!m.add(2, 0));
        assert_eq!((m.total(), m.accuracy(), m.get(5, 5)), (0, None, 0));
        assert!(m.to_rows().iter().all(|r| r.iter().all(|&c| c == 0)));
        assert!(ConfusionMatrix::new(0).unwrap().to_rows().is_empty());
        // One class: everything right.
        let r = classification_report(&[0, 0], &[0, 0], 1).unwrap();
        assert_eq!((r.accuracy, r.macro_avg.f1), (1.0, 1.0));
    }

    #[test]
    fn auc_counts_ties_as_half() {
        // sklearn: roc_auc_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.75
        assert_eq!(roc_auc(&[false, false, true, true], &[0.1, 0.4, 0.35, 0.8]), Some(0.75));
        // All scores tied: 0.5 whatever the labels.
        assert_eq!(roc_auc(&[true, false, false, true, false], &[0.3; 5]), Some(0.5));
        // -0.0 and 0.0 are the same score.
        assert_eq!(roc_auc(&[true, false], &[0.0, -0.0]), Some(0.5));
        assert_eq!(roc_auc(&[true, false], &[f64::INFINITY, f64::NEG_INFINITY]), Some(1.0));
    }

    #[test]
    fn auc_and_ap_degenerate_inputs() {
        assert_eq!(roc_auc(&[], &[]), None);
        assert_eq!(roc_auc(&[true, true], &[0.1, 0.2]), None);
        assert_eq!(roc_auc(&[false, false], &[0.1, 0.2]), None);
        assert_eq!(roc_auc(&[true], &[0.1, 0.2]), None);
        assert_eq!(average_precision(&[false, false], &[0.1, 0.2]), None);
        assert_eq!(average_precision(&[], &[]), None);
        assert_eq!(average_precision(&[true, true], &[0.1, 0.2]), Some(1.0));
        assert_eq!(average_precision(&[true, false], &[0.5]), None);
    }

    #[test]
    fn nan_scores_are_skipped() {
        let y = [true, false, true, false, true];
        let s = [0.9, f64::NAN, 0.2, 0.4, f64::NAN];
        assert_eq!(roc_auc(&y, &s), roc_auc(&[true, true, false], &[0.9, 0.2, 0.4]));
        assert_eq!(average_precision(&y, &s), average_precision(&[true, true, false], &[0.9, 0.2, 0.4]));
        assert_eq!(roc_auc(&[true, false], &[f64::NAN, f64::NAN]), None);
    }

    #[test]
    fn average_precision_is_stepwise() {
        // sklearn: average_precision_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.8333…
        let ap = average_precision(&[false, false, true, true], &[0.1, 0.4, 0.35, 0.8]).unwrap();
        assert!(close(ap, 5.0 / 6.0), "{ap}");
        // A tie of one positive and one negative at the top: one threshold, precision 1/2.
        assert_eq!(average_precision(&[true, false], &[0.7, 0.7]), Some(0.5));
    }

    #[test]
    fn ovr_rules() {
        let probs = [0.5, 0.3, 0.2, 0.2, 0.5, 0.3, 0.1, 0.1, 0.8, 0.6, 0.2, 0.2];
        let y = [0, 1, 2, 0];
        assert_eq!(roc_auc_ovr(&y, &probs, 3), Some(1.0));
        assert_eq!(average_precision_ovr(&y, &probs, 3), Some(1.0));
        // A class absent from y_true.
        assert_eq!(roc_auc_ovr(&[0, 1, 1, 0], &probs, 3), None);
        assert_eq!(average_precision_ovr(&[0, 1, 1, 0], &probs, 3), None);
        // A row not summing to 1 (AUC only).
        let mut bad = probs;
        bad[0] = 0.6;
        assert_eq!(roc_auc_ovr(&y, &bad, 3), None);
        assert_eq!(average_precision_ovr(&y, &bad, 3), Some(1.0));
        // Malformed.
        assert_eq!(roc_auc_ovr(&y, &probs[..11], 3), None);
        assert_eq!(roc_auc_ovr(&[0, 1, 3, 0], &probs, 3), None);
        assert_eq!(roc_auc_ovr(&[], &[], 3), None);
        assert_eq!(roc_auc_ovr(&[0; 12], &probs, 1), None);
        assert_eq!(roc_auc_ovr(&[0, 1, 2, 0], &probs, usize::MAX), None);
        // k = 2: the binary AUC on column 1; a NaN row is skipped.
        let two = [0.9, 0.1, 0.2, 0.8, f64::NAN, 0.5, 0.6, 0.4];
        assert_eq!(roc_auc_ovr(&[0, 1, 1, 1], &two, 2), Some(1.0));
        assert_eq!(roc_auc_ovr(&[1, 0, 1, 1], &two, 2), Some(0.0));
    }

    #[test]
    fn log_loss_clips_and_checks() {
        // One-hot right: −ln(1 − ε) per row; one-hot wrong: −ln(ε).
        let ll = log_loss(&[0, 1], &[1.0, 0.0, 0.0, 1.0], 2).unwrap();
        assert_eq!(ll, -(1.0 - f64::EPSILON).ln());
        let ll = log_loss(&[1], &[1.0, 0.0], 2).unwrap();
        assert_eq!(ll, -f64::EPSILON.ln());
        // sklearn: log_loss([0,1], [[.8,.2],[.3,.7]]) = (−ln .8 − ln .7)/2
        let ll = log_loss(&[0, 1], &[0.8, 0.2, 0.3, 0.7], 2).unwrap();
        assert!(close(ll, -(0.8f64.ln() + 0.7f64.ln()) / 2.0));
        // Not renormalised.
        let ll = log_loss(&[0], &[0.4, 0.4], 2).unwrap();
        assert!(close(ll, -(0.4f64.ln())));
        assert_eq!(log_loss(&[0], &[1.2, -0.2], 2), None);
        assert_eq!(log_loss(&[0], &[0.5, 0.5], 1), None);
        assert_eq!(log_loss(&[], &[], 2), None);
        assert_eq!(log_loss(&[0], &[f64::NAN, 0.5], 2), None);
        let ll = log_loss(&[0, 1], &[f64::NAN, 0.5, 0.3, 0.7], 2).unwrap();
        assert!(close(ll, -(0.7f64.ln())));
    }

    #[test]
    fn brier_scales() {
        // Binary: mean (p − y)² = ((0.2)² + (0.3)²)/2.
        let b = brier_score(&[0, 1], &[0.8, 0.2, 0.3, 0.7], 2).unwrap();
        assert!(close(b, (0.04 + 0.09) / 2.0), "{b}");
        // k = 3: unscaled Σ_c, e.g. a confident wrong row scores 2.
        assert_eq!(brier_score(&[0], &[0.0, 1.0, 0.0], 3), Some(2.0));
        assert_eq!(brier_score(&[0], &[0.0, 1.5, 0.0], 3), None);
        assert_eq!(brier_score(&[], &[], 3), None);
    }

    #[test]
    fn ece_bins_like_calibration_curve() {
        assert_eq!(uniform_bin(0.0, 10, 0.1), 0);
        assert_eq!(uniform_bin(0.1, 10, 0.1), 0); // on an edge: the lower bin
        assert_eq!(uniform_bin(0.3, 10, 0.1), 2); // 0.3 < 3·0.1 = 0.30000000000000004
        assert_eq!(uniform_bin(0.30000000000000004, 10, 0.1), 2);
        assert_eq!(uniform_bin(0.3000000000000001, 10, 0.1), 3);
        assert_eq!(uniform_bin(1.0, 10, 0.1), 9);
        assert_eq!(uniform_bin(0.5, 1, 1.0), 0);
        for bins in 1..40 {
            let step = 1.0 / bins as f64;
            for i in 0..=1000 {
                let p = i as f64 / 1000.0;
                let want = (1..bins).filter(|&e| (e as f64) * step < p).count();
                assert_eq!(uniform_bin(p, bins, step), want, "p={p} bins={bins}");
            }
        }
        // Perfectly calibrated bins: 0; one bin, mean p 0.5 vs rate 1.
        assert_eq!(expected_calibration_error(&[true, false], &[0.5, 0.5], 10), Some(0.0));
        assert_eq!(expected_calibration_error(&[true, true], &[0.5, 0.5], 1), Some(0.5));
        assert_eq!(expected_calibration_error(&[], &[], 10), None);
        assert_eq!(expected_calibration_error(&[true], &[0.5], 0), None);
        assert_eq!(expected_calibration_error(&[true], &[1.5], 10), None);
        assert_eq!(expected_calibration_error(&[true], &[f64::NAN], 10), None);
        assert_eq!(expected_calibration_error(&[true, false], &[f64::NAN, 0.2], 10), Some(0.2));
    }

    #[test]
    fn regression_rules() {
        let r = regression_report(&[3.0, 3.0, 3.0], &[3.0, 3.0, 3.0]).unwrap();
        assert_eq!((r.r2, r.mae, r.rmse, r.n), (Some(1.0), 0.0, 0.0, 3));
        let r = regression_report(&[3.0, 3.0, 3.0], &[2.0, 3.0, 3.0]).unwrap();
        assert_eq!(r.r2, Some(0.0));
        // The constant whose float mean is inexact (scikit-learn gives about −5.2e31 here).
        let r = regression_report(&[0.1, 0.1, 0.1], &[0.2, 0.2, 0.2]).unwrap();
        assert_eq!(r.r2, Some(0.0));
        // One pair: no R².
        assert_eq!(regression_report(&[1.0], &[2.0]).unwrap().r2, None);
        // A zero target: |error| / ε.
        let r = regression_report(&[0.0], &[1.0]).unwrap();
        assert_eq!(r.mape, 1.0 / f64::EPSILON);
        // Non-finite pairs skipped.
        let r = regression_report(&[1.0, f64::NAN, 2.0, 5.0], &[1.0, 4.0, f64::INFINITY, 5.0]).unwrap();
        assert_eq!((r.n, r.mae, r.r2), (2, 0.0, Some(1.0)));
        assert_eq!(regression_report(&[f64::NAN], &[1.0]), None);
        assert_eq!(regression_report(&[], &[]), None);
        assert_eq!(regression_report(&[1.0], &[]), None);
        // sklearn: r2_score([3,-0.5,2,7], [2.5,0,2,8]) = 0.9486081370449679
        let r = regression_report(&[3.0, -0.5, 2.0, 7.0], &[2.5, 0.0, 2.0, 8.0]).unwrap();
        assert!(close(r.r2.unwrap(), 0.9486081370449679));
        assert!(close(r.mae, 0.5));
    }

    #[test]
    fn large_inputs_do_not_overflow() {
        // 2U and 2PN in u128: fine for any slice length.
        let n = 200_000;
        let y: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let s: Vec<f64> = (0..n).map(|i| (i % 7) as f64).collect();
        let auc = roc_auc(&y, &s).unwrap();
        assert!((0.0..=1.0).contains(&auc));
    }
}
