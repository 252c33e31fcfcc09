//! Wasserstein-1 (earth mover's) distance between two one-dimensional samples: exact from sorted
//! samples, Evidently's normalised form, and a bounded approximation from shared-bin counts.

/// Compensated (Neumaier) running sum, so long sums stay within a few ulps of exact.
#[derive(Default)]
pub(crate) struct Sum {
    sum: f64,
    carry: f64,
}

impl Sum {
    pub(crate) fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.carry += (self.sum - t) + x;
        } else {
            self.carry += (x - t) + self.sum;
        }
        self.sum = t;
    }

    pub(crate) fn value(&self) -> f64 {
        self.sum + self.carry
    }
}

/// Population standard deviation, `numpy.std(values)` (`ddof=0`): `sqrt(mean((x − mean)²))`.
/// Empty input gives NaN. This is the `ref_std` Evidently divides by in [`wasserstein_normed`].
pub fn population_std(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let n = values.len() as f64;
    let mut s = Sum::default();
    values.iter().for_each(|&x| s.add(x));
    let mean = s.value() / n;
    let mut ss = Sum::default();
    values.iter().for_each(|&x| ss.add((x - mean) * (x - mean)));
    (ss.value() / n).sqrt()
}

/// `scipy.stats.wasserstein_distance(u, v)` (W1, unweighted) on two ascending-sorted samples.
///
/// Same integral as scipy's `_cdf_distance(1, …)`: over the merged sorted values, `Σ |U(x_k) −
/// V(x_k)|·(x_{k+1} − x_k)` with the empirical CDFs `U(x) = #{u ≤ x}/n` (`searchsorted 'right'`),
/// computed in one O(n+m) merge instead of scipy's sort and binary searches, and summed with
/// compensation. Returns NaN if either sample is empty (scipy raises) or contains NaN.
pub fn wasserstein_sorted(u_sorted: &[f64], v_sorted: &[f64]) -> f64 {
    let (n, m) = (u_sorted.len(), v_sorted.len());
    if n == 0 || m == 0 || u_sorted.iter().chain(v_sorted).any(|x| x.is_nan()) {
        return f64::NAN;
    }
    let (nf, mf) = (n as f64, m as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut total = Sum::default();
    // Walk the distinct merged values x; after advancing, i = #{u <= x}, j = #{v <= x}.
    let mut x = u_sorted[0].min(v_sorted[0]);
    loop {
        while i < n && u_sorted[i] <= x {
            i += 1;
        }
        while j < m && v_sorted[j] <= x {
            j += 1;
        }
        let next = match (u_sorted.get(i), v_sorted.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => break,
        };
        total.add((i as f64 / nf - j as f64 / mf).abs() * (next - x));
        x = next;
    }
    total.value()
}

/// Evidently's `wasserstein` stat test ("Wasserstein distance (normed)"):
/// `W1(u, v) / max(ref_std, 0.001)`, where `ref_std` is `numpy.std(reference)` with `ddof=0`
/// ([`population_std`]). NaN if W1 is NaN or `ref_std` is NaN.
pub fn wasserstein_normed(u_sorted: &[f64], v_sorted: &[f64], ref_std: f64) -> f64 {
    normed(wasserstein_sorted(u_sorted, v_sorted), ref_std)
}

/// Evidently's norming of a W1 already computed: `w1 / max(ref_std, 0.001)`, NaN if `ref_std` is NaN.
pub fn normed(w1: f64, ref_std: f64) -> f64 {
    if ref_std.is_nan() {
        return f64::NAN;
    }
    w1 / ref_std.max(0.001)
}

/// Approximate W1 from counts over shared bins: returns `(estimate, bound)` with
/// `|estimate − W1| <= bound` for the samples the counts came from.
///
/// `edges` are the finite, strictly increasing interior edges of right-closed bins
/// ([`super::binning::bin_counts`]); `ref_counts`/`cur_counts` have `edges.len() + 1` entries;
/// `lo`/`hi` must bound both samples (`lo <= min`, `hi >= max`), so the outer bins become
/// `[lo, e_0]` and `[e_last, hi]` and W1 = ∫_lo^hi |F_ref − F_cur|.
///
/// At every edge both ECDFs are known exactly (`F(e_j)` = cumulative count through bin `j` / n);
/// inside a segment `[a, b]` each is monotone between its endpoint values. The estimate assumes
/// each bin's mass is spread uniformly (both CDFs linear inside the segment) and integrates
/// `|F_ref − F_cur|` exactly under that assumption.
///
/// The bound: inside a segment of width `w`, `F_ref ∈ [r_a, r_b]` and `F_cur ∈ [c_a, c_b]`, so the
/// segment's true contribution lies in `[L, U]` with `L = w·max(0, r_a − c_b, c_a − r_b)` and
/// `U = w·max(r_b − c_a, c_b − r_a)`; the linear estimate lies in the same interval, and the bound
/// is `Σ max(est − L, U − est) <= Σ (U − L)`. Roughly, it is the width-weighted mass of the bins, so
/// it shrinks with finer bins but is large for wide outer bins (heavy tails) and coarse grids.
///
/// Returns `(NaN, NaN)` if either total is zero, the lengths disagree, an edge or `lo`/`hi` is not
/// finite, edges are not strictly increasing, or `lo > hi`.
pub fn wasserstein_binned(edges: &[f64], ref_counts: &[u64], cur_counts: &[u64], lo: f64, hi: f64) -> (f64, f64) {
    let nan = (f64::NAN, f64::NAN);
    let bins = edges.len() + 1;
    if ref_counts.len() != bins || cur_counts.len() != bins || !lo.is_finite() || !hi.is_finite() || lo > hi {
        return nan;
    }
    if edges.iter().any(|e| !e.is_finite()) || edges.windows(2).any(|w| w[0] >= w[1]) {
        return nan;
    }
    let (nr, nc): (u64, u64) = (ref_counts.iter().sum(), cur_counts.iter().sum());
    if nr == 0 || nc == 0 {
        return nan;
    }
    let (nr, nc) = (nr as f64, nc as f64);
    let mut estimate = Sum::default();
    let mut bound = Sum::default();
    // Segment b spans [left, right] and holds bin b; CDF values at its ends are (ra, ca) and (rb, cb).
    let (mut cum_r, mut cum_c) = (0u64, 0u64);
    let (mut ra, mut ca) = (0.0, 0.0);
    for b in 0..bins {
        cum_r += ref_counts[b];
        cum_c += cur_counts[b];
        let (rb, cb) = if b + 1 == bins { (1.0, 1.0) } else { (cum_r as f64 / nr, cum_c as f64 / nc) };
        let left = if b == 0 { lo } else { edges[b - 1].max(lo) };
        let right = if b + 1 == bins { hi } else { edges[b].min(hi) };
        let w = (right - left).max(0.0);
        if w > 0.0 {
            let (d0, d1): (f64, f64) = (ra - ca, rb - cb);
            let est = if d0 * d1 >= 0.0 {
                w * (d0.abs() + d1.abs()) / 2.0
            } else {
                w * (d0 * d0 + d1 * d1) / (2.0 * (d0.abs() + d1.abs()))
            };
            let lower = w * (ra - cb).max(ca - rb).max(0.0);
            let upper = w * (rb - ca).max(cb - ra);
            estimate.add(est);
            bound.add((est - lower).max(upper - est).max(0.0));
        }
        (ra, ca) = (rb, cb);
    }
    (estimate.value(), bound.value())
}

#[cfg(test)]
mod tests {
    use super::super::binning::{bin_counts, quantile_edges};
    use super::*;

    #[test]
    fn exact_degenerate_inputs() {
        assert!(wasserstein_sorted(&[], &[1.0]).is_nan());
        assert!(wasserstein_sorted(&[1.0], &[]).is_nan());
        assert!(wasserstein_sorted(&[1.0, f64::NAN], &[1.0]).is_nan());
        assert_eq!(wasserstein_sorted(&[2.0], &[2.0]), 0.0);
        assert_eq!(wasserstein_sorted(&[0.0], &[3.0]), 3.0);
        assert_eq!(wasserstein_sorted(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]), 5.0);
        assert!(wasserstein_normed(&[0.0], &[1.0], f64::NAN).is_nan());
        // Constant reference: normaliser floored at 0.001.
        assert_eq!(wasserstein_normed(&[1.0, 1.0], &[1.0, 1.5], 0.0), 0.25 / 0.001);
        assert!(population_std(&[]).is_nan());
        assert_eq!(population_std(&[4.0]), 0.0);
        assert_eq!(population_std(&[1.0, 3.0]), 1.0);
    }

    #[test]
    fn binned_degenerate_inputs() {
        assert!(wasserstein_binned(&[], &[0], &[1], 0.0, 1.0).0.is_nan());
        assert!(wasserstein_binned(&[0.5], &[1], &[1, 1], 0.0, 1.0).0.is_nan());
        assert!(wasserstein_binned(&[0.5, 0.5], &[1, 1, 1], &[1, 1, 1], 0.0, 1.0).0.is_nan());
        assert!(wasserstein_binned(&[f64::INFINITY], &[1, 1], &[1, 1], 0.0, 1.0).0.is_nan());
        assert!(wasserstein_binned(&[0.5], &[1, 1], &[1, 1], 1.0, 0.0).0.is_nan());
        // One bin: nothing known inside [lo, hi]; estimate 0, bound = hi - lo.
        assert_eq!(wasserstein_binned(&[], &[3], &[4], 1.0, 3.0), (0.0, 2.0));
        // Identical histograms: estimate 0 but the bound stays positive.
        let (est, bound) = wasserstein_binned(&[1.0, 2.0], &[1, 1, 1], &[2, 2, 2], 0.0, 3.0);
        assert_eq!(est, 0.0);
        assert!(bound > 0.0);
    }

    fn sample(rng: &mut fastrand::Rng, n: usize, shift: f64, scale: f64, kind: u32) -> Vec<f64> {
        let mut v: Vec<f64> = (0..n)
            .map(|_| {
                let u = rng.f64();
                let x = match kind {
                    // Sum of uniforms ≈ normal.
                    0 => (0..12).map(|_| rng.f64()).sum::<f64>() - 6.0,
                    // Exponential (heavy right tail).
                    1 => -(1.0 - u).ln(),
                    // Small integers (ties on edges).
                    2 => (u * 6.0).floor(),
                    _ => u,
                };
                shift + scale * x
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    #[test]
    fn binned_bound_holds_on_random_data() {
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        let mut checked = 0;
        for trial in 0..300 {
            let kind = trial % 4;
            let nr = 1 + rng.usize(0..2000);
            let nc = 1 + rng.usize(0..2000);
            let r = sample(&mut rng, nr, 0.0, 1.0, kind);
            let (shift, scale) = (rng.f64() - 0.5, 0.5 + rng.f64());
            let c = sample(&mut rng, nc, shift, scale, kind);
            let bins = [2, 5, 10, 20, 100, 1000][trial as usize % 6];
            let edges = quantile_edges(&r, bins);
            let (rc, cc) = (bin_counts(&edges, &r), bin_counts(&edges, &c));
            let lo = r[0].min(c[0]);
            let hi = r[nr - 1].max(c[nc - 1]);
            let exact = wasserstein_sorted(&r, &c);
            let (est, bound) = wasserstein_binned(&edges, &rc, &cc, lo, hi);
            assert!(est.is_finite() && bound.is_finite(), "trial {trial}");
            let slack = 1e-12 * (1.0 + exact.abs() + (hi - lo).abs());
            assert!((est - exact).abs() <= bound + slack, "trial {trial}: est {est} exact {exact} bound {bound}");
            assert!(bound <= hi - lo + slack, "trial {trial}: bound {bound} wider than the range");
            checked += 1;
        }
        assert_eq!(checked, 300);
    }

    #[test]
    fn binned_is_close_with_fine_bins() {
        let mut rng = fastrand::Rng::with_seed(7);
        let r = sample(&mut rng, 20_000, 0.0, 1.0, 0);
        let c = sample(&mut rng, 20_000, 0.25, 1.2, 0);
        let edges = quantile_edges(&r, 1000);
        let (rc, cc) = (bin_counts(&edges, &r), bin_counts(&edges, &c));
        let lo = r[0].min(c[0]);
        let hi = r[r.len() - 1].max(c[c.len() - 1]);
        let exact = wasserstein_sorted(&r, &c);
        let (est, bound) = wasserstein_binned(&edges, &rc, &cc, lo, hi);
        assert!((est - exact).abs() <= bound);
        // Most of the residual comes from the outer bins, where the wider current sample's tail is
        // far from uniform; the interior bins are nearly exact.
        assert!((est - exact).abs() < 0.02 * exact, "est {est} exact {exact} bound {bound}");
        assert!(bound < 0.1 * exact, "est {est} exact {exact} bound {bound}");
    }
}
