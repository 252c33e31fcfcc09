//! Global feature importance per model version, from a stream of local explanations, and how it drifts.
//!
//! Owns: the last `window` explanations of each version (as |value| per feature), the baseline frozen when a
//! version's first window fills, and the `vigil_feature_importance` / `vigil_feature_importance_drift` gauges.
//! May not touch: anything but its own state (no I/O, no clock). Runs on the thread that owns it.
//!
//! - **Global importance** of feature j = mean over the window of |φ_j|, shap's bar summary
//!   (`np.abs(shap_values).mean(0)`).
//! - **Inputs.** Kernel SHAP values as they are. For LIME, [`lime_contributions`] turns the surrogate's
//!   coefficients into contributions `coef_j · (x_j − mean_j) / scale_j`: the coefficients are per reference
//!   standard deviation around x, so this is the surrogate slope times x's offset from the reference mean, which
//!   for a linear model w·x + b is w_j·(x_j − E[x_j]), exactly its SHAP value. Raw coefficients would be local
//!   slopes, not contributions: a feature that is at its mean would look important. Do not mix methods in one
//!   [`Importance`] (their scales differ); feed it the sampled explanations of one method.
//! - **Drift.** When a version's window first holds `window` explanations, its global importance is frozen as
//!   the version's baseline. Drift compares the baseline with the current window: the L1 distance between the two
//!   vectors normalised to sum 1 (0 = the same weights, 2 = disjoint support), and Spearman's rank correlation
//!   (ties get average ranks, as `scipy.stats.spearmanr`; undefined when either vector is constant).
//! - **Bounds.** `window` explanations × features per version, at most [`MAX_VERSIONS`] versions (the least
//!   recently updated is forgotten). An explanation of the wrong width or with a non-finite value is ignored and
//!   counted ([`Importance::ignored`]); nothing panics.

use crate::telemetry;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

/// Versions tracked at most; adding a new one beyond this forgets the least recently updated.
pub const MAX_VERSIONS: usize = 64;

/// Global importance of every version seen.
#[derive(Debug, Clone)]
pub struct Importance {
    features: Vec<String>,
    window: usize,
    versions: BTreeMap<String, Series>,
    tick: u64,
    ignored: u64,
}

#[derive(Debug, Clone)]
struct Series {
    /// |value| per feature of the last `window` explanations, oldest first.
    recent: VecDeque<Vec<f64>>,
    added: u64,
    baseline: Option<Vec<f64>>,
    touched: u64,
}

/// How far a version's current importance has moved from its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Drift {
    /// L1 distance between the normalised baseline and current vectors, 0 to 2. None when either sums to 0.
    pub l1: Option<f64>,
    /// Spearman's rank correlation between them, −1 to 1. None when either is constant or there are < 2 features.
    pub spearman: Option<f64>,
}

/// One feature's line of an [`ImportanceReport`].
#[derive(Debug, Clone, Serialize)]
pub struct FeatureImportance {
    pub feature: String,
    /// Mean |value| over the window.
    pub importance: f64,
    /// `importance` over the sum of all features' (0 when the sum is 0).
    pub share: f64,
    /// The baseline's importance of this feature, once frozen.
    pub baseline: Option<f64>,
}

/// A version's global importance, as served by GET /admin/robustness.
#[derive(Debug, Clone, Serialize)]
pub struct ImportanceReport {
    pub version: String,
    /// Explanations added since start (or since the features changed).
    pub explanations: u64,
    /// Explanations in the current window (at most `window_size`).
    pub window: usize,
    pub window_size: usize,
    /// Features by decreasing importance (ties by name).
    pub features: Vec<FeatureImportance>,
    /// Present once the first full window has been frozen as the baseline.
    pub drift: Option<Drift>,
}

impl Importance {
    /// `features` names the values of each explanation, in order; `window` (at least 1) explanations per version
    /// make the global importance.
    pub fn new(features: Vec<String>, window: usize) -> Importance {
        Importance { features, window: window.max(1), versions: BTreeMap::new(), tick: 0, ignored: 0 }
    }

    pub fn features(&self) -> &[String] {
        &self.features
    }

    pub fn window(&self) -> usize {
        self.window
    }

    /// Explanations ignored so far: wrong width or a non-finite value.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// Versions with at least one explanation, by name.
    pub fn versions(&self) -> impl Iterator<Item = &str> {
        self.versions.keys().map(String::as_str)
    }

    /// Adds one explanation of `version`: one value per feature (SHAP values, or [`lime_contributions`]).
    /// Returns false, and counts it, when it was ignored (wrong width, non-finite value, no features).
    pub fn add(&mut self, version: &str, values: &[f64]) -> bool {
        if self.features.is_empty() || values.len() != self.features.len() || !values.iter().all(|v| v.is_finite()) {
            self.ignored += 1;
            return false;
        }
        self.tick += 1;
        if !self.versions.contains_key(version) && self.versions.len() >= MAX_VERSIONS {
            if let Some(oldest) = self.versions.iter().min_by_key(|(_, s)| s.touched).map(|(k, _)| k.clone()) {
                self.versions.remove(&oldest);
            }
        }
        let window = self.window;
        let s = self.versions.entry(version.to_owned()).or_insert_with(|| Series {
            recent: VecDeque::with_capacity(window),
            added: 0,
            baseline: None,
            touched: 0,
        });
        s.touched = self.tick;
        if s.recent.len() == window {
            s.recent.pop_front();
        }
        s.recent.push_back(values.iter().map(|v| v.abs()).collect());
        s.added += 1;
        if s.baseline.is_none() && s.recent.len() == window {
            s.baseline = Some(mean_abs(&s.recent, self.features.len()));
        }
        true
    }

    /// Mean |value| per feature over `version`'s window, in feature order; None before its first explanation.
    pub fn global(&self, version: &str) -> Option<Vec<f64>> {
        let s = self.versions.get(version)?;
        (!s.recent.is_empty()).then(|| mean_abs(&s.recent, self.features.len()))
    }

    /// The importance frozen when `version`'s first window filled.
    pub fn baseline(&self, version: &str) -> Option<&[f64]> {
        self.versions.get(version)?.baseline.as_deref()
    }

    /// Baseline against the current window; None until the baseline is frozen.
    pub fn drift(&self, version: &str) -> Option<Drift> {
        let base = self.baseline(version)?;
        let now = self.global(version)?;
        Some(Drift { l1: l1_normalised(base, &now), spearman: spearman(base, &now) })
    }

    /// Forgets a version (deleted from the routes).
    pub fn remove(&mut self, version: &str) {
        self.versions.remove(version);
    }

    /// One version's report; None before its first explanation.
    pub fn report(&self, version: &str) -> Option<ImportanceReport> {
        let s = self.versions.get(version)?;
        let global = self.global(version)?;
        let total: f64 = global.iter().sum();
        let mut features: Vec<FeatureImportance> = self
            .features
            .iter()
            .zip(&global)
            .enumerate()
            .map(|(j, (name, &imp))| FeatureImportance {
                feature: name.clone(),
                importance: imp,
                share: if total > 0.0 { imp / total } else { 0.0 },
                baseline: s.baseline.as_ref().map(|b| b[j]),
            })
            .collect();
        features.sort_by(|a, b| b.importance.total_cmp(&a.importance).then_with(|| a.feature.cmp(&b.feature)));
        Some(ImportanceReport {
            version: version.to_owned(),
            explanations: s.added,
            window: s.recent.len(),
            window_size: self.window,
            features,
            drift: self.drift(version),
        })
    }

    /// Every version's report, by version name.
    pub fn reports(&self) -> Vec<ImportanceReport> {
        self.versions.keys().filter_map(|v| self.report(v)).collect()
    }

    /// Sets `vigil_feature_importance{version,feature}` and, once a baseline exists,
    /// `vigil_feature_importance_drift{version}` (the L1 distance).
    pub fn publish(&self) {
        for version in self.versions.keys() {
            let Some(global) = self.global(version) else { continue };
            for (name, imp) in self.features.iter().zip(global) {
                metrics::gauge!(telemetry::FEATURE_IMPORTANCE, "version" => version.clone(), "feature" => name.clone())
                    .set(imp);
            }
            if let Some(Drift { l1: Some(l1), .. }) = self.drift(version) {
                metrics::gauge!(telemetry::IMPORTANCE_DRIFT, "version" => version.clone()).set(l1);
            }
        }
    }
}

fn mean_abs(rows: &VecDeque<Vec<f64>>, width: usize) -> Vec<f64> {
    let mut sum = vec![0.0; width];
    for r in rows {
        for (s, v) in sum.iter_mut().zip(r) {
            *s += v;
        }
    }
    let n = rows.len().max(1) as f64;
    sum.iter().map(|s| s / n).collect()
}

/// LIME's analogue of SHAP values: `coef_j · (x_j − mean_j) / scale_j`, where the coefficients are
/// [`super::explain::LimeExplanation::coefficients`] (per reference standard deviation), `x` the explained row
/// and `mean`, `scale` the reference's per-feature mean and standard deviation. A scale below 10·ε is taken as
/// 1, as [`super::explain::lime`] does. None when the widths differ or any input is not finite.
pub fn lime_contributions(coefficients: &[f64], x: &[f64], mean: &[f64], scale: &[f64]) -> Option<Vec<f64>> {
    let m = coefficients.len();
    if x.len() != m || mean.len() != m || scale.len() != m {
        return None;
    }
    let mut out = Vec::with_capacity(m);
    for j in 0..m {
        let (c, xj, mj, sj) = (coefficients[j], x[j], mean[j], scale[j]);
        if !(c.is_finite() && xj.is_finite() && mj.is_finite() && sj.is_finite()) {
            return None;
        }
        let s = if sj.abs() < 10.0 * f64::EPSILON { 1.0 } else { sj.abs() };
        let v = c * (xj - mj) / s;
        if !v.is_finite() {
            return None;
        }
        out.push(v);
    }
    Some(out)
}

/// L1 distance between `a` and `b` each normalised to sum 1, in [0, 2]. None when the widths differ, either sums
/// to 0 (or not to a finite positive number), or a value is negative or not finite.
pub fn l1_normalised(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.iter().chain(b).any(|v| !v.is_finite() || *v < 0.0) {
        return None;
    }
    let (sa, sb): (f64, f64) = (a.iter().sum(), b.iter().sum());
    if !(sa > 0.0 && sb > 0.0 && sa.is_finite() && sb.is_finite()) {
        return None;
    }
    Some(a.iter().zip(b).map(|(x, y)| (x / sa - y / sb).abs()).sum::<f64>().min(2.0))
}

/// Spearman's rank correlation, ties ranked by their average rank (`scipy.stats.spearmanr`). None when the
/// widths differ, there are fewer than 2 values, a value is not finite, or either vector is constant.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 2 || a.iter().chain(b).any(|v| !v.is_finite()) {
        return None;
    }
    let (ra, rb) = (average_ranks(a), average_ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa <= 0.0 || sbb <= 0.0 {
        return None;
    }
    Some((sab / (saa * sbb).sqrt()).clamp(-1.0, 1.0))
}

/// 1-based ranks, ties sharing their average rank (`scipy.stats.rankdata(method="average")`).
fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i + 1;
        while j < idx.len() && v[idx[j]] == v[idx[i]] {
            j += 1;
        }
        // Positions i..j (0-based) share ranks i+1..=j: their mean is (i + 1 + j) / 2.
        let r = (i + 1 + j) as f64 / 2.0;
        for &k in &idx[i..j] {
            ranks[k] = r;
        }
        i = j;
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("f{i}")).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn global_is_the_mean_absolute_value_over_the_window() {
        let mut imp = Importance::new(names(3), 3);
        assert!(imp.global("v1").is_none());
        assert!(imp.add("v1", &[1.0, -2.0, 0.5]));
        assert!(imp.add("v1", &[-3.0, 2.0, 0.0]));
        // (|1| + |−3|) / 2 = 2, (2 + 2) / 2 = 2, (0.5 + 0) / 2 = 0.25
        assert_eq!(imp.global("v1").unwrap(), vec![2.0, 2.0, 0.25]);
        assert!(imp.baseline("v1").is_none());
        assert!(imp.drift("v1").is_none());
        assert!(imp.add("v1", &[2.0, 0.5, -1.0]));
        // Window full: (1 + 3 + 2) / 3 = 2, (2 + 2 + 0.5) / 3 = 1.5, (0.5 + 0 + 1) / 3 = 0.5; frozen as baseline.
        assert_eq!(imp.global("v1").unwrap(), vec![2.0, 1.5, 0.5]);
        assert_eq!(imp.baseline("v1").unwrap(), &[2.0, 1.5, 0.5]);
        let d = imp.drift("v1").unwrap();
        assert_eq!(d.l1, Some(0.0));
        assert!(close(d.spearman.unwrap(), 1.0));
        // The window slides: the first explanation leaves. (3 + 2 + 6) / 3, (2 + 0.5 + 0) / 3, (0 + 1 + 0) / 3.
        assert!(imp.add("v1", &[6.0, 0.0, 0.0]));
        let g = imp.global("v1").unwrap();
        assert!(close(g[0], 11.0 / 3.0) && close(g[1], 2.5 / 3.0) && close(g[2], 1.0 / 3.0));
        // The baseline stays frozen.
        assert_eq!(imp.baseline("v1").unwrap(), &[2.0, 1.5, 0.5]);
        // Versions are separate.
        assert!(imp.global("v2").is_none());
        imp.add("v2", &[1.0, 1.0, 1.0]);
        assert_eq!(imp.global("v2").unwrap(), vec![1.0, 1.0, 1.0]);
        assert_eq!(imp.versions().collect::<Vec<_>>(), vec!["v1", "v2"]);
    }

    #[test]
    fn drift_of_a_permuted_vector() {
        let mut imp = Importance::new(names(4), 1);
        imp.add("v", &[4.0, 3.0, -2.0, 1.0]);
        assert_eq!(imp.baseline("v").unwrap(), &[4.0, 3.0, 2.0, 1.0]);
        imp.add("v", &[1.0, 2.0, 3.0, -4.0]);
        // Normalised: [.4 .3 .2 .1] vs [.1 .2 .3 .4] → L1 = .3 + .1 + .1 + .3 = 0.8; ranks reversed → ρ = −1.
        let d = imp.drift("v").unwrap();
        assert!(close(d.l1.unwrap(), 0.8), "{d:?}");
        assert!(close(d.spearman.unwrap(), -1.0));
        // A scaled copy of the baseline has no drift at all.
        imp.add("v", &[8.0, 6.0, 4.0, 2.0]);
        let d = imp.drift("v").unwrap();
        assert!(close(d.l1.unwrap(), 0.0) && close(d.spearman.unwrap(), 1.0));
        // Disjoint support: L1 = 2.
        let mut imp = Importance::new(names(2), 1);
        imp.add("v", &[1.0, 0.0]);
        imp.add("v", &[0.0, 5.0]);
        assert!(close(imp.drift("v").unwrap().l1.unwrap(), 2.0));
    }

    #[test]
    fn spearman_matches_scipy_with_ties() {
        // scipy.stats.spearmanr([1, 2, 2, 3, 5], [2, 1, 4, 4, 9]).statistic = 0.7631578947368421 (scipy 1.17.1)
        let r = spearman(&[1.0, 2.0, 2.0, 3.0, 5.0], &[2.0, 1.0, 4.0, 4.0, 9.0]).unwrap();
        assert!((r - 0.7631578947368421).abs() < 1e-12, "{r}");
        assert_eq!(average_ranks(&[10.0, 20.0, 20.0, 5.0]), vec![2.0, 3.5, 3.5, 1.0]);
        assert!(spearman(&[1.0, 1.0], &[1.0, 2.0]).is_none());
        assert!(spearman(&[1.0], &[1.0]).is_none());
        assert!(spearman(&[1.0, f64::NAN], &[1.0, 2.0]).is_none());
        assert!(l1_normalised(&[0.0, 0.0], &[1.0, 2.0]).is_none());
        assert!(l1_normalised(&[1.0], &[1.0, 2.0]).is_none());
    }

    #[test]
    fn bad_explanations_are_ignored_and_counted() {
        let mut imp = Importance::new(names(2), 2);
        assert!(!imp.add("v", &[1.0]));
        assert!(!imp.add("v", &[1.0, f64::NAN]));
        assert!(!imp.add("v", &[f64::INFINITY, 1.0]));
        assert!(!imp.add("v", &[]));
        assert_eq!(imp.ignored(), 4);
        assert!(imp.global("v").is_none());
        let mut none = Importance::new(Vec::new(), 0);
        assert!(!none.add("v", &[]));
        assert_eq!(none.window(), 1);
        assert!(none.reports().is_empty());
    }

    #[test]
    fn report_sorts_by_importance_and_versions_are_bounded() {
        let mut imp = Importance::new(vec!["a".into(), "b".into(), "c".into()], 1);
        imp.add("v", &[0.5, -3.0, 1.5]);
        let r = imp.report("v").unwrap();
        let order: Vec<_> = r.features.iter().map(|f| f.feature.as_str()).collect();
        assert_eq!(order, ["b", "c", "a"]);
        assert!(close(r.features[0].share, 0.6));
        assert_eq!(r.features[0].baseline, Some(3.0));
        assert_eq!((r.explanations, r.window, r.window_size), (1, 1, 1));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["drift"]["l1"], 0.0);
        for i in 0..MAX_VERSIONS + 10 {
            imp.add(&format!("v{i}"), &[1.0, 2.0, 3.0]);
        }
        assert_eq!(imp.versions().count(), MAX_VERSIONS);
        // The least recently updated went first ("v" and v0..v9).
        assert!(imp.global("v").is_none() && imp.global("v9").is_none() && imp.global("v10").is_some());
        imp.remove("v10");
        assert!(imp.global("v10").is_none());
        imp.publish();
    }

    #[test]
    fn lime_contributions_are_shap_values_for_a_linear_model() {
        // f(x) = 2·x0 − 3·x1 + 1, reference mean (1, 2), std (0.5, 4). LIME's coefficient per std: w·scale.
        let coef = [2.0 * 0.5, -3.0 * 4.0];
        let x = [3.0, 1.0];
        let c = lime_contributions(&coef, &x, &[1.0, 2.0], &[0.5, 4.0]).unwrap();
        // SHAP of a linear model with independent features: w_j (x_j − E[x_j]) = 2·2 = 4, −3·(−1) = 3.
        assert!(close(c[0], 4.0) && close(c[1], 3.0), "{c:?}");
        // Constant feature: scale taken as 1.
        assert_eq!(lime_contributions(&[2.0], &[3.0], &[1.0], &[0.0]).unwrap(), vec![4.0]);
        assert!(lime_contributions(&[1.0], &[1.0, 2.0], &[0.0], &[1.0]).is_none());
        assert!(lime_contributions(&[1.0], &[f64::NAN], &[0.0], &[1.0]).is_none());
    }
}
