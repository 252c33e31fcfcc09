//! Distances between two histograms over the same bins: PSI, Jensen–Shannon, Kullback–Leibler.
//!
//! Inputs are counts per bin (reference and current, same length, e.g. from
//! [`super::binning::bin_counts`] on shared edges); proportions are `counts / total`. Every function
//! returns NaN when the two slices differ in length, are empty, or either total is zero.

/// Default proportion floor for [`psi`]: empty bins count as 1e-4 of the sample.
pub const PSI_FLOOR: f64 = 1e-4;

/// Proportions `counts / total`, or `None` if the total is zero.
fn proportions(counts: &[u64]) -> Option<Vec<f64>> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let n = total as f64;
    Some(counts.iter().map(|&c| c as f64 / n).collect())
}

/// Both proportion vectors, or `None` if the inputs are not a valid pair of histograms.
fn pair(ref_counts: &[u64], cur_counts: &[u64]) -> Option<(Vec<f64>, Vec<f64>)> {
    if ref_counts.len() != cur_counts.len() || ref_counts.is_empty() {
        return None;
    }
    Some((proportions(ref_counts)?, proportions(cur_counts)?))
}

/// `scipy.special.rel_entr(x, y)` for `x, y >= 0`: `x·ln(x/y)`, 0 when `x == 0`, +inf when only `y` is 0.
fn rel_entr(x: f64, y: f64) -> f64 {
    if x == 0.0 && y >= 0.0 {
        0.0
    } else if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x > 0.0 && y == 0.0 {
        f64::INFINITY
    } else {
        f64::NAN
    }
}

/// Population stability index, conventional form (drift-reference.md §2 "PSI (conventional)"):
/// proportions are floored, `p = max(count/n, floor)` for each histogram, and
/// `PSI = Σ (cur − ref)·ln(cur/ref)`.
///
/// Use [`PSI_FLOOR`] (1e-4) for `floor`. Flooring is `max`, not "replace zeros", so a non-empty bin
/// with proportion below `floor` is raised too (only possible with more than `1/floor` rows).
/// The floored proportions are not renormalised. With `floor <= 0` an empty bin gives +inf or NaN.
pub fn psi(ref_counts: &[u64], cur_counts: &[u64], floor: f64) -> f64 {
    let Some((r, c)) = pair(ref_counts, cur_counts) else {
        return f64::NAN;
    };
    r.iter()
        .zip(&c)
        .map(|(&r, &c)| {
            let (r, c) = (r.max(floor), c.max(floor));
            (c - r) * (c / r).ln()
        })
        .sum()
}

/// Evidently's zero replacement (legacy `stattests/utils.py` `get_binned_data(feel_zeroes=True)`),
/// per histogram: zeros become `min_nonzero / 1e6` if `min_nonzero <= 1e-4`, else `1e-4`.
fn evidently_fill(p: &mut [f64]) {
    let min_nonzero = p.iter().copied().filter(|&v| v != 0.0).fold(f64::INFINITY, f64::min);
    let fill = if min_nonzero <= 0.0001 { min_nonzero / 1e6 } else { 0.0001 };
    for v in p.iter_mut().filter(|v| **v == 0.0) {
        *v = fill;
    }
}

/// PSI exactly as Evidently's `psi` stat test computes it from bin counts: zero proportions are
/// replaced per histogram by Evidently's rule (`min_nonzero/1e6` if `min_nonzero <= 1e-4`, else
/// `1e-4`; non-zero proportions are untouched), then `Σ (ref − cur)·ln(ref/cur)`.
///
/// Differs from [`psi`] only when a bin is empty (or, for [`psi`], below the floor). Note that
/// Evidently bins numeric columns with `numpy.histogram_bin_edges(concat, bins="sturges")`, not
/// reference quantiles; this function takes whatever counts it is given.
pub fn psi_evidently(ref_counts: &[u64], cur_counts: &[u64]) -> f64 {
    let Some((mut r, mut c)) = pair(ref_counts, cur_counts) else {
        return f64::NAN;
    };
    evidently_fill(&mut r);
    evidently_fill(&mut c);
    r.iter().zip(&c).map(|(&r, &c)| (r - c) * (r / c).ln()).sum()
}

/// Kullback–Leibler divergence `KL(ref ‖ cur)` as Evidently's `kl_div` stat test: Evidently's zero
/// replacement (see [`psi_evidently`]), then `scipy.stats.entropy(ref, cur)`, which renormalises
/// both filled vectors to sum 1 and returns `Σ ref·ln(ref/cur)` (natural log).
pub fn kl_div(ref_counts: &[u64], cur_counts: &[u64]) -> f64 {
    let Some((mut r, mut c)) = pair(ref_counts, cur_counts) else {
        return f64::NAN;
    };
    evidently_fill(&mut r);
    evidently_fill(&mut c);
    let (sr, sc): (f64, f64) = (r.iter().sum(), c.iter().sum());
    r.iter().zip(&c).map(|(&r, &c)| rel_entr(r / sr, c / sc)).sum()
}

/// Jensen–Shannon **distance** with the natural log, as
/// `scipy.spatial.distance.jensenshannon(ref_p, cur_p)`: with `m = (p + q)/2`,
/// `sqrt((KL(p‖m) + KL(q‖m)) / 2)`. No floor (empty bins contribute 0). In `[0, sqrt(ln 2)]`.
///
/// A rounding-level negative divergence (scipy would return NaN from its square root) is clamped to 0.
pub fn jensen_shannon(ref_counts: &[u64], cur_counts: &[u64]) -> f64 {
    let Some((p, q)) = pair(ref_counts, cur_counts) else {
        return f64::NAN;
    };
    let mut left = 0.0;
    let mut right = 0.0;
    for (&p, &q) in p.iter().zip(&q) {
        let m = (p + q) / 2.0;
        left += rel_entr(p, m);
        right += rel_entr(q, m);
    }
    ((left + right) / 2.0).max(0.0).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degenerate_inputs_are_nan() {
        for f in [|r: &[u64], c: &[u64]| psi(r, c, PSI_FLOOR), psi_evidently, kl_div, jensen_shannon] {
            assert!(f(&[], &[]).is_nan());
            assert!(f(&[1, 2], &[1]).is_nan());
            assert!(f(&[0, 0], &[1, 2]).is_nan());
            assert!(f(&[1, 2], &[0, 0]).is_nan());
        }
    }

    #[test]
    fn identical_histograms_are_zero() {
        let h = [5, 0, 7, 1];
        assert_eq!(psi(&h, &h, PSI_FLOOR), 0.0);
        assert_eq!(psi_evidently(&h, &h), 0.0);
        assert_eq!(kl_div(&h, &h), 0.0);
        assert_eq!(jensen_shannon(&h, &h), 0.0);
        // Same proportions, different totals.
        assert!(jensen_shannon(&[1, 2, 3], &[2, 4, 6]).abs() < 1e-15);
    }

    #[test]
    fn psi_floor_on_empty_bin() {
        // ref (0.5, 0.5), cur (1, 0): (1-0.5)·ln 2 + (1e-4 - 0.5)·ln(1e-4/0.5)
        let expected = 0.5 * 2f64.ln() + (1e-4 - 0.5) * (1e-4f64 / 0.5).ln();
        assert!((psi(&[1, 1], &[2, 0], PSI_FLOOR) - expected).abs() < 1e-15);
        assert_eq!(psi(&[1, 1], &[2, 0], 0.0), f64::INFINITY);
    }

    #[test]
    fn js_disjoint_is_sqrt_ln2() {
        assert!((jensen_shannon(&[3, 0], &[0, 5]) - 2f64.ln().sqrt()).abs() < 1e-15);
    }

    #[test]
    fn evidently_fill_rule() {
        let mut p = [0.5, 0.0, 0.5];
        evidently_fill(&mut p);
        assert_eq!(p, [0.5, 1e-4, 0.5]);
        let mut p = [0.99995, 0.00005, 0.0];
        evidently_fill(&mut p);
        assert_eq!(p[2], 0.00005 / 1e6);
    }
}
