//! Reference-quantile bins: the edges every binned drift metric (PSI, JS, KL, χ², binned W1) shares.
//!
//! Semantics follow numpy: [`quantile_sorted`] is `numpy.quantile(x, q)` with the default
//! `method='linear'` (Hyndman–Fan type 7), reproducing the float operations of numpy's `_quantile`
//! and `_lerp` so that edges agree bit for bit; [`bin_index`] is `numpy.searchsorted(edges, x,
//! side='left')`. Bins are right-closed: `(-inf, e0], (e0, e1], …, (e_last, +inf)`.

use std::cmp::Ordering;

/// `numpy.quantile(sorted, q)` with the default `'linear'` method (type 7) on an ascending-sorted,
/// NaN-free slice.
///
/// The virtual index is `(n-1)·q`; below/above it the neighbours are interpolated with numpy's
/// `_lerp` (`a + (b-a)·t` for `t < 0.5`, `b - (b-a)·(1-t)` otherwise), so results are identical
/// to numpy's. Returns NaN for an empty slice and for `q` outside `[0, 1]` or NaN (numpy raises).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 || !(0.0..=1.0).contains(&q) {
        return f64::NAN;
    }
    let virtual_index = (n - 1) as f64 * q;
    if virtual_index >= (n - 1) as f64 {
        return sorted[n - 1];
    }
    let previous = virtual_index.floor();
    // virtual_index is in [0, n-1), so previous is a valid index and previous+1 <= n-1.
    let i = previous as usize;
    let (a, b) = (sorted[i], sorted[i + 1]);
    let gamma = virtual_index - previous;
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

/// Edges of `bins` reference-quantile bins over an ascending, NaN-free reference: the quantiles at
/// `k/bins` for `k = 1..bins-1` ([`quantile_sorted`]), sorted, with duplicates removed
/// (`numpy.unique`), so strictly increasing.
///
/// The outer edges are implicit (`-inf`, `+inf`), so there are `edges.len() + 1` bins. Ties or a
/// low-cardinality reference give fewer edges than `bins - 1`. An empty reference or `bins < 2`
/// gives no edges (a single bin).
pub fn quantile_edges(sorted_ref: &[f64], bins: usize) -> Vec<f64> {
    if sorted_ref.is_empty() || bins < 2 {
        return Vec::new();
    }
    let mut edges: Vec<f64> =
        (1..bins).map(|k| quantile_sorted(sorted_ref, k as f64 / bins as f64)).filter(|e| !e.is_nan()).collect();
    // Already ascending for sorted input; the stable sort only guards against a caller's unsorted slice.
    edges.sort_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
    edges.dedup();
    edges
}

/// Bin index of `x`: the number of edges strictly below `x` (`numpy.searchsorted(edges, x,
/// side='left')`). A value equal to an edge goes to the lower bin (right-closed bins).
///
/// `edges` must be ascending. NaN goes to the last bin (`edges.len()`), as numpy sorts NaN last.
pub fn bin_index(edges: &[f64], x: f64) -> usize {
    if x.is_nan() {
        return edges.len();
    }
    edges.partition_point(|&e| e < x)
}

/// Counts of `values` per bin, length `edges.len() + 1` ([`bin_index`]). NaN values are skipped.
pub fn bin_counts(edges: &[f64], values: &[f64]) -> Vec<u64> {
    let mut counts = vec![0u64; edges.len() + 1];
    for &x in values {
        if !x.is_nan() {
            counts[bin_index(edges, x)] += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_degenerate_inputs() {
        assert!(quantile_sorted(&[], 0.5).is_nan());
        assert!(quantile_sorted(&[1.0, 2.0], f64::NAN).is_nan());
        assert!(quantile_sorted(&[1.0, 2.0], -0.1).is_nan());
        assert!(quantile_sorted(&[1.0, 2.0], 1.1).is_nan());
        assert_eq!(quantile_sorted(&[7.0], 0.0), 7.0);
        assert_eq!(quantile_sorted(&[7.0], 0.3), 7.0);
        assert_eq!(quantile_sorted(&[7.0], 1.0), 7.0);
    }

    #[test]
    fn quantile_type7_values() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&x, 0.0), 1.0);
        assert_eq!(quantile_sorted(&x, 1.0), 4.0);
        assert_eq!(quantile_sorted(&x, 0.5), 2.5);
        assert_eq!(quantile_sorted(&x, 0.25), 1.75);
        assert_eq!(quantile_sorted(&[1.0, 2.0], 0.5), 1.5);
    }

    #[test]
    fn edges_dedup_and_degenerate() {
        assert!(quantile_edges(&[], 10).is_empty());
        assert!(quantile_edges(&[1.0, 2.0], 1).is_empty());
        assert!(quantile_edges(&[1.0, 2.0], 0).is_empty());
        assert_eq!(quantile_edges(&[3.0; 20], 10), vec![3.0]);
        // numpy: np.unique(np.quantile(x, np.arange(1, 10) / 10)), including its rounding.
        assert_eq!(
            quantile_edges(&[0.0, 0.0, 0.0, 1.0, 1.0], 10),
            vec![0.0, 0.3999999999999999, 0.7999999999999998, 1.0]
        );
        let e = quantile_edges(&(0..100).map(f64::from).collect::<Vec<_>>(), 10);
        assert_eq!(e.len(), 9);
        assert!(e.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn searchsorted_left_semantics() {
        let e = [1.0, 2.0, 3.0];
        assert_eq!(bin_index(&e, 0.5), 0);
        assert_eq!(bin_index(&e, 1.0), 0);
        assert_eq!(bin_index(&e, 1.5), 1);
        assert_eq!(bin_index(&e, 3.0), 2);
        assert_eq!(bin_index(&e, 3.5), 3);
        assert_eq!(bin_index(&e, f64::INFINITY), 3);
        assert_eq!(bin_index(&e, f64::NEG_INFINITY), 0);
        assert_eq!(bin_index(&e, f64::NAN), 3);
        assert_eq!(bin_index(&[], 1.0), 0);
    }

    #[test]
    fn counts_skip_nan() {
        let e = [1.0, 2.0];
        assert_eq!(bin_counts(&e, &[0.0, 1.0, 1.5, 2.0, 2.5, f64::NAN]), vec![2, 2, 1]);
        assert_eq!(bin_counts(&[], &[1.0, 2.0]), vec![2]);
        assert_eq!(bin_counts(&e, &[]), vec![0, 0, 0]);
    }
}
