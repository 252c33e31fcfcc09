//! Pearson χ² tests on category (or bin) counts: Evidently's goodness-of-fit form and scipy's
//! contingency-table form. p-values are `chi2.sf(statistic, dof)` (statrs' regularised upper
//! incomplete gamma, as scipy's `chdtrc`).

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// A χ² test result. `dof` is the degrees of freedom the p-value was computed with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChiSquare {
    pub statistic: f64,
    pub p_value: f64,
    pub dof: usize,
}

impl ChiSquare {
    const INVALID: ChiSquare = ChiSquare { statistic: f64::NAN, p_value: f64::NAN, dof: 0 };
}

/// Upper tail `P(χ²_dof >= statistic)`; NaN for `dof == 0` or a NaN statistic, 0 for +inf.
fn chi2_sf(statistic: f64, dof: usize) -> f64 {
    if dof == 0 || statistic.is_nan() {
        return f64::NAN;
    }
    match ChiSquared::new(dof as f64) {
        Ok(d) => d.sf(statistic),
        Err(_) => f64::NAN,
    }
}

/// Evidently's `chisquare` stat test (legacy `chisquare_stattest.py`):
/// `scipy.stats.chisquare(f_obs=cur_counts, f_exp=ref_counts·(n_cur/n_ref))` over the categories
/// present in reference ∪ current (categories with zero count on both sides are dropped first, as
/// Evidently only sees observed values). `dof` = categories − 1.
///
/// * A category absent from the reference but present in current has expected frequency 0: like
///   scipy we return `statistic = +inf`, `p_value = 0` (a new category is maximal drift).
/// * One category (`dof == 0`): statistic 0 (up to rounding), `p_value` NaN: there is nothing to
///   test. (scipy gives NaN when the rounded statistic is exactly 0 and 0 otherwise.)
/// * Mismatched lengths, or an empty reference or current (zero total): all NaN, `dof` 0.
pub fn chisquare_goodness_of_fit(ref_counts: &[u64], cur_counts: &[u64]) -> ChiSquare {
    if ref_counts.len() != cur_counts.len() {
        return ChiSquare::INVALID;
    }
    let (n_ref, n_cur): (u64, u64) = (ref_counts.iter().sum(), cur_counts.iter().sum());
    if n_ref == 0 || n_cur == 0 {
        return ChiSquare::INVALID;
    }
    let k_norm = n_cur as f64 / n_ref as f64;
    let mut statistic = 0.0;
    let mut categories = 0usize;
    for (&r, &c) in ref_counts.iter().zip(cur_counts) {
        if r == 0 && c == 0 {
            continue;
        }
        categories += 1;
        let expected = r as f64 * k_norm;
        let diff = c as f64 - expected;
        statistic += diff * diff / expected; // +inf when expected == 0 (r == 0, c > 0)
    }
    let dof = categories - 1; // categories >= 1 since n_cur > 0
    ChiSquare { statistic, p_value: chi2_sf(statistic, dof), dof }
}

/// `scipy.stats.chi2_contingency` on the 2×k table `[ref_counts; cur_counts]`, after dropping the
/// categories with zero total (scipy would raise on their zero expected frequency).
///
/// Expected `E = row·col/N`; statistic `Σ (O − E)²/E`; `dof = k − 1`. With `yates` (scipy's default
/// `correction=True`) and `dof == 1` only, each `|O − E|` is first reduced by `min(0.5, |O − E|)`.
/// One remaining category (`dof == 0`): statistic 0, `p_value` 1 (as scipy). An empty row (zero
/// total on either side; scipy raises) or mismatched lengths: all NaN, `dof` 0.
pub fn chi2_contingency(ref_counts: &[u64], cur_counts: &[u64], yates: bool) -> ChiSquare {
    if ref_counts.len() != cur_counts.len() {
        return ChiSquare::INVALID;
    }
    let (n_ref, n_cur): (u64, u64) = (ref_counts.iter().sum(), cur_counts.iter().sum());
    if n_ref == 0 || n_cur == 0 {
        return ChiSquare::INVALID;
    }
    let columns: Vec<(u64, u64)> =
        ref_counts.iter().zip(cur_counts).map(|(&r, &c)| (r, c)).filter(|&(r, c)| r + c > 0).collect();
    let dof = columns.len() - 1; // at least one column since n_ref > 0
    if dof == 0 {
        return ChiSquare { statistic: 0.0, p_value: 1.0, dof };
    }
    let total = (n_ref + n_cur) as f64;
    let correct = yates && dof == 1;
    let term = |observed: u64, row: u64, col: u64| {
        let expected = (row as f64 * col as f64) / total;
        let mut observed = observed as f64;
        if correct {
            let diff = expected - observed;
            observed += diff.abs().min(0.5) * diff.signum();
        }
        (observed - expected) * (observed - expected) / expected
    };
    // Row-major order, as scipy sums the flattened table.
    let mut statistic = 0.0;
    for &(r, c) in &columns {
        statistic += term(r, n_ref, r + c);
    }
    for &(r, c) in &columns {
        statistic += term(c, n_cur, r + c);
    }
    ChiSquare { statistic, p_value: chi2_sf(statistic, dof), dof }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degenerate_inputs() {
        for f in [chisquare_goodness_of_fit, |r: &[u64], c: &[u64]| chi2_contingency(r, c, true)] {
            assert!(f(&[], &[]).statistic.is_nan());
            assert!(f(&[1, 2], &[1]).p_value.is_nan());
            assert!(f(&[0, 0], &[1, 2]).p_value.is_nan());
            assert!(f(&[1, 2], &[0, 0]).p_value.is_nan());
        }
        let gof = chisquare_goodness_of_fit(&[10, 0], &[4, 0]);
        assert_eq!((gof.statistic, gof.dof), (0.0, 0));
        assert!(gof.p_value.is_nan());
        assert_eq!(chi2_contingency(&[10, 0], &[4, 0], true), ChiSquare { statistic: 0.0, p_value: 1.0, dof: 0 });
    }

    #[test]
    fn unseen_category_is_infinite() {
        let r = chisquare_goodness_of_fit(&[5, 5, 0], &[4, 4, 2]);
        assert_eq!((r.statistic, r.p_value, r.dof), (f64::INFINITY, 0.0, 2));
        // The contingency form has no such problem.
        assert!(chi2_contingency(&[5, 5, 0], &[4, 4, 2], true).statistic.is_finite());
    }

    #[test]
    fn identical_tables() {
        let r = chi2_contingency(&[30, 70], &[30, 70], true);
        assert_eq!((r.statistic, r.p_value, r.dof), (0.0, 1.0, 1));
        let r = chisquare_goodness_of_fit(&[3, 6, 9], &[1, 2, 3]);
        assert!(r.statistic.abs() < 1e-15);
        assert!((r.p_value - 1.0).abs() < 1e-15);
    }

    #[test]
    fn yates_reduces_2x2_only() {
        let with = chi2_contingency(&[60, 40], &[45, 55], true);
        let without = chi2_contingency(&[60, 40], &[45, 55], false);
        assert!(with.statistic < without.statistic);
        let with = chi2_contingency(&[60, 40, 5], &[45, 55, 5], true);
        let without = chi2_contingency(&[60, 40, 5], &[45, 55, 5], false);
        assert_eq!(with, without);
    }
}
