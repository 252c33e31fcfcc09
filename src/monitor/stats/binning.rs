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

/// [`bin_counts`] for values sorted ascending in `f64::total_cmp` order (any NaN then sits at the ends,
/// and is skipped as there): identical counts, from one binary search per edge instead of one per value.
///
/// Bin `k` holds the run of values in `(e_{k-1}, e_k]`, so its count is the difference of the run ends
/// `#{x <= e_k}`, each found by `partition_point` in what is left after the previous edge. Edges holding
/// NaN or out of order (outside the contract) fall back to [`bin_counts`].
pub fn bin_counts_sorted(edges: &[f64], sorted: &[f64]) -> Vec<u64> {
    if edges.iter().any(|e| e.is_nan()) || !edges.is_sorted() {
        return bin_counts(edges, sorted);
    }
    // NaNs sorted by total_cmp: negative ones first, positive ones last.
    let start = sorted.iter().position(|x| !x.is_nan()).unwrap_or(sorted.len());
    let end = sorted.iter().rposition(|x| !x.is_nan()).map_or(start, |i| i + 1);
    let values = &sorted[start..end];
    let mut counts = Vec::with_capacity(edges.len() + 1);
    let mut at = 0usize;
    for &e in edges {
        let run = values[at..].partition_point(|&x| x <= e);
        counts.push(run as u64);
        at += run;
    }
    counts.push((values.len() - at) as u64);
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

    fn check_sorted(edges: &[f64], values: &[f64]) {
        let mut sorted = values.to_vec();
        sorted.sort_unstable_by(f64::total_cmp);
        assert_eq!(bin_counts_sorted(edges, &sorted), bin_counts(edges, values), "edges {edges:?}");
    }

    #[test]
    fn sorted_counts_match() {
        let e = [1.0, 2.0];
        check_sorted(&e, &[0.0, 1.0, 1.5, 2.0, 2.5, f64::NAN, -f64::NAN]);
        check_sorted(&[], &[1.0, 2.0]);
        check_sorted(&e, &[]);
        check_sorted(&e, &[f64::NAN, -f64::NAN]);
        check_sorted(&[0.0], &[-0.0, 0.0, -0.0]);
        check_sorted(&[-0.0, 1.0], &[-0.0, 0.0, 1.0, f64::INFINITY, f64::NEG_INFINITY]);
        check_sorted(&[f64::NEG_INFINITY, f64::INFINITY], &[f64::NEG_INFINITY, 0.0, f64::INFINITY]);
        // Outside the contract: unsorted or NaN edges fall back.
        check_sorted(&[2.0, 1.0], &[0.0, 1.5, 3.0]);
        check_sorted(&[f64::NAN, 1.0], &[0.0, 1.5, 3.0]);
        let mut rng = fastrand::Rng::with_seed(0xb1);
        for trial in 0..300 {
            let n = rng.usize(0..3000);
            let values: Vec<f64> = (0..n)
                .map(|_| match trial % 3 {
                    0 => rng.i32(-5..6) as f64,
                    1 => rng.f64() * 10.0 - 5.0,
                    _ => ((rng.f64() * 10.0 - 5.0) * 4.0).round() / 4.0,
                })
                .collect();
            let mut reference: Vec<f64> = (0..1 + rng.usize(0..500)).map(|_| rng.i32(-6..7) as f64 / 2.0).collect();
            reference.sort_unstable_by(f64::total_cmp);
            let edges = quantile_edges(&reference, [2, 5, 10, 20, 100][trial % 5]);
            check_sorted(&edges, &values);
        }
    }
}
