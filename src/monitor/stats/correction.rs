//! Multiple-testing corrections across features, as Alibi Detect applies them to per-feature
//! p-values (`BaseUnivariateDrift.predict`, `alibi_detect/utils/statstest.py` `fdr`), plus
//! statsmodels-style Benjamini–Hochberg adjusted p-values for reporting.

use std::cmp::Ordering;

/// How per-feature p-values are combined into drift decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// Each feature against `alpha` (Alibi's `drift_type='feature'`).
    None,
    /// Each feature against `alpha/d` (Alibi's `correction='bonferroni'`).
    Bonferroni,
    /// False discovery rate, Benjamini–Hochberg step-up (Alibi's `correction='fdr'`).
    BenjaminiHochberg,
}

/// Per-feature decisions and the batch verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Corrected {
    /// The p-value threshold used: feature `i` drifted iff `p_i < threshold`.
    pub threshold: f64,
    /// One flag per input p-value (false for NaN).
    pub drifted: Vec<bool>,
    /// Batch (dataset) verdict: any feature drifted.
    pub any: bool,
}

fn ascending(a: &f64, b: &f64) -> Ordering {
    a.partial_cmp(b).unwrap_or(Ordering::Equal)
}

/// Per-feature decisions `p_i < threshold` and the batch verdict, as Alibi Detect's `KSDrift` /
/// `ChiSquareDrift` / `TabularDrift` compute them. `d` is the number of non-NaN p-values; NaN
/// p-values are ignored (never drifted, not counted in `d`).
///
/// * `None`: threshold `alpha` (Alibi's feature-level decision).
/// * `Bonferroni`: threshold `alpha / d`.
/// * `BenjaminiHochberg`: Alibi's `fdr(p, q_val=alpha)`: sort p ascending, candidate thresholds
///   `alpha·i/d` (i = 1..d), strict `p_(i) < alpha·i/d`; the threshold is `alpha·i*/d` for the
///   largest such `i*`, and the drifted features are exactly those with `p < alpha·i*/d` (the
///   standard BH rejection set). When no p-value is below its candidate, Alibi returns the whole
///   candidate array; we report the smallest candidate, `alpha/d`, under which nothing is flagged.
///
/// With no (non-NaN) p-values the threshold is `alpha`, nothing drifted and `any` is false.
pub fn correct(p_values: &[f64], alpha: f64, how: Correction) -> Corrected {
    let mut finite: Vec<f64> = p_values.iter().copied().filter(|p| !p.is_nan()).collect();
    let d = finite.len();
    let threshold = if d == 0 {
        alpha
    } else {
        match how {
            Correction::None => alpha,
            Correction::Bonferroni => alpha / d as f64,
            Correction::BenjaminiHochberg => {
                finite.sort_by(ascending);
                let n = d as f64;
                // Same float operations as numpy's `q_val * i / n`.
                let candidate = |i: usize| alpha * i as f64 / n;
                finite
                    .iter()
                    .enumerate()
                    .rev()
                    .find(|&(k, &p)| p < candidate(k + 1))
                    .map_or_else(|| candidate(1), |(k, _)| candidate(k + 1))
            }
        }
    };
    let drifted: Vec<bool> = p_values.iter().map(|&p| p < threshold).collect();
    let any = drifted.iter().any(|&f| f);
    Corrected { threshold, drifted, any }
}

/// Benjamini–Hochberg adjusted p-values, as statsmodels `multipletests(p, method='fdr_bh')[1]`:
/// with `p` sorted ascending, `adj_(i) = min_{j >= i} p_(j)·d/j`, capped at 1, returned in input
/// order. (`adj_i < alpha` reproduces the BH rejections up to ties at the threshold.) NaN inputs
/// stay NaN and are not counted in `d`.
pub fn bh_adjusted(p: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    order.sort_by(|&a, &b| ascending(&p[a], &p[b]));
    let n = order.len() as f64;
    let mut out = vec![f64::NAN; p.len()];
    let mut running = f64::INFINITY;
    for (k, &i) in order.iter().enumerate().rev() {
        // statsmodels: pvals_sorted / (arange(1, n+1) / n), then a reversed running minimum.
        let ecdf = (k + 1) as f64 / n;
        running = running.min(p[i] / ecdf);
        out[i] = running.min(1.0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_nan() {
        for how in [Correction::None, Correction::Bonferroni, Correction::BenjaminiHochberg] {
            let c = correct(&[], 0.05, how);
            assert_eq!(c, Corrected { threshold: 0.05, drifted: vec![], any: false });
            let c = correct(&[f64::NAN, 0.001], 0.05, how);
            assert_eq!(c.drifted, vec![false, true]);
            assert!(c.any);
        }
        assert_eq!(correct(&[f64::NAN, 0.001, 0.5], 0.05, Correction::Bonferroni).threshold, 0.025);
        assert!(bh_adjusted(&[]).is_empty());
        let adj = bh_adjusted(&[f64::NAN, 0.01, 0.04]);
        assert!(adj[0].is_nan());
        assert_eq!(&adj[1..], &[0.02, 0.04]);
    }

    #[test]
    fn strict_inequality() {
        // p exactly at alpha/d is not drift.
        let c = correct(&[0.025, 0.9], 0.05, Correction::Bonferroni);
        assert_eq!((c.threshold, c.any), (0.025, false));
        let c = correct(&[0.05], 0.05, Correction::None);
        assert!(!c.any);
    }

    #[test]
    fn bh_step_up() {
        // Sorted: 0.01 < .0125, 0.03 >= .025, 0.035 < .0375, 0.9 >= .05: largest i* = 3, and the
        // step-up also rejects 0.03 although it missed its own candidate.
        let c = correct(&[0.9, 0.03, 0.01, 0.035], 0.05, Correction::BenjaminiHochberg);
        assert!((c.threshold - 0.0375).abs() < 1e-17);
        assert_eq!(c.drifted, vec![false, true, true, true]);
        assert!(c.any);
        let c = correct(&[0.5, 0.9], 0.05, Correction::BenjaminiHochberg);
        assert_eq!((c.threshold, c.any), (0.025, false));
    }

    #[test]
    fn adjusted_is_monotone_and_capped() {
        let adj = bh_adjusted(&[0.9, 0.03, 0.004, 0.02, 1.0]);
        assert_eq!(adj[4], 1.0);
        assert!(adj.iter().all(|&a| a <= 1.0));
        assert!(adj[2] <= adj[3] && adj[3] <= adj[1] && adj[1] <= adj[0]);
    }

    #[test]
    fn serde_names() {
        assert_eq!(serde_json::to_string(&Correction::BenjaminiHochberg).unwrap(), "\"benjamini_hochberg\"");
        assert_eq!(serde_json::from_str::<Correction>("\"none\"").unwrap(), Correction::None);
    }
}
