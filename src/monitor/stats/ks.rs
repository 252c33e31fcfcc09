//! Two-sample Kolmogorov–Smirnov test, two-sided, computed the way `scipy.stats.ks_2samp` (scipy 1.17.1)
//! computes it, plus a binned variant over shared bin edges.
//!
//! Sources this module ports (algorithms re-expressed, not copied):
//! - statistic and `method='auto'` selection: `ks_2samp` in scipy/stats/_stats_py.py;
//! - exact p-value, equal sizes: `_compute_prob_outside_square` (same file), an alternating Horner form of
//!   Pr(D_{n,n} >= h/n) = 2 Σ_k (−1)^(k−1) C(2n, n−kh) / C(2n, n);
//! - exact p-value, unequal sizes: `_compute_outer_prob_inside_method` in scipy/stats/_stats_pythran.py, Hodges'
//!   (1958) lattice-path "inside" method rewritten to carry 1 − p directly (Viehmann 2021, arXiv:2102.08037);
//! - asymptotic p-value: `kstwo.sf(D, round(m·n/(m+n)))`, i.e. the exact one-sample Kolmogorov distribution,
//!   `_kolmogn` in scipy/stats/_ksstats.py with the selection rules of Simard & L'Ecuyer (2011): Ruben–Gambino
//!   closed forms, Durbin's matrix (Marsaglia, Tsang & Wang 2003), Pomeranz (1974), Pelz & Good (1976), and the
//!   one-sided Smirnov distribution `scipy.special.smirnov` (xsf `cephes/kolmogorov.h`, van Mulbregt 2018,
//!   arXiv:1802.06966), which needs double-double arithmetic (Dekker 1971 / Hida–Li–Bailey `qd`).
//!
//! Every function is total: no input panics; empty or meaningless input gives NaN.

use serde::Serialize;

/// Which p-value computation produced a result (scipy's `method` after any fallback).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KsMethod {
    /// Exact null distribution of the two-sample statistic (lattice-path counting).
    Exact,
    /// `kstwo.sf(D, round(m·n/(m+n)))`: the exact one-sample Kolmogorov distribution at the effective size.
    Asymp,
}

/// Outcome of a two-sided two-sample KS test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsResult {
    /// D = sup |F1 − F2|. On the exact branch scipy reports D snapped to h/lcm(n1, n2); so does this.
    pub statistic: f64,
    /// Two-sided p-value, clipped to [0, 1] (NaN for empty input).
    pub p_value: f64,
    /// The method that produced `p_value` (after scipy's exact → asymp fallback).
    pub method: KsMethod,
}

/// scipy's `MAX_AUTO_N`: `method='auto'` is exact when both sizes are at most this.
pub const MAX_AUTO_N: usize = 10_000;

/// Two-sided two-sample KS test with scipy's `method='auto'`.
///
/// Both slices sorted ascending, no NaN (caller guarantees). Empty input -> statistic NaN, p NaN (method then
/// follows the auto rule on the sizes).
pub fn ks_2samp(a_sorted: &[f64], b_sorted: &[f64]) -> KsResult {
    ks_2samp_with_method(a_sorted, b_sorted, None)
}

/// Two-sided two-sample KS test with an explicit scipy `method`: `None` = 'auto', `Some(Exact)` = 'exact',
/// `Some(Asymp)` = 'asymp'. Same input contract as [`ks_2samp`]. A forced exact computation costs
/// O(n1·n2·D) time, so keep it for sizes where that is affordable.
pub fn ks_2samp_with_method(a_sorted: &[f64], b_sorted: &[f64], method: Option<KsMethod>) -> KsResult {
    let d = ks_statistic(a_sorted, b_sorted);
    ks_test_from_statistic(d, a_sorted.len(), b_sorted.len(), method)
}

/// D only (same tie rule as scipy: ECDFs evaluated with searchsorted side='right' on pooled values), by an
/// O(n+m) merge. Each difference is computed as `k1/n1 − k2/n2` in f64, exactly as scipy does, so the value is
/// bit-identical to scipy's. Empty input -> NaN.
pub fn ks_statistic(a_sorted: &[f64], b_sorted: &[f64]) -> f64 {
    let (n1, n2) = (a_sorted.len(), b_sorted.len());
    if n1 == 0 || n2 == 0 {
        return f64::NAN;
    }
    let (f1, f2) = (n1 as f64, n2 as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut max_s = f64::NEG_INFINITY;
    let mut min_s = f64::INFINITY;
    while i < n1 || j < n2 {
        let (x, from_a) = match (a_sorted.get(i), b_sorted.get(j)) {
            (Some(&u), Some(&v)) => {
                if u <= v {
                    (u, true)
                } else {
                    (v, false)
                }
            }
            (Some(&u), None) => (u, true),
            (None, Some(&v)) => (v, false),
            (None, None) => break,
        };
        let (i0, j0) = (i, j);
        while i < n1 && a_sorted[i] <= x {
            i += 1;
        }
        while j < n2 && b_sorted[j] <= x {
            j += 1;
        }
        if i == i0 && j == j0 {
            // Only reachable with NaN or unsorted input (outside the contract): still make progress.
            if from_a {
                i += 1;
            } else {
                j += 1;
            }
        }
        let diff = i as f64 / f1 - j as f64 / f2;
        max_s = max_s.max(diff);
        min_s = min_s.min(diff);
    }
    let min_s = (-min_s).clamp(0.0, 1.0);
    if min_s > max_s {
        min_s
    } else {
        max_s
    }
}

/// scipy's p-value for a given D and sizes with method='auto' (exact when max(n1,n2) <= 10_000, else asymptotic;
/// exact falls back to asymp as scipy does). NaN `d` or a zero size gives NaN; `d` outside [0, 1] is clamped.
pub fn ks_p_value(d: f64, n1: usize, n2: usize) -> (f64, KsMethod) {
    let r = ks_test_from_statistic(d, n1, n2, None);
    (r.p_value, r.method)
}

/// The tail of `scipy.stats.ks_2samp` after D is known: method selection (`None` = 'auto'), the exact
/// computation with its snapping of D to h/lcm and its fallback to 'asymp', and the final clip.
/// `statistic` in the result is the D scipy reports (snapped on the exact branch).
pub fn ks_test_from_statistic(d: f64, n1: usize, n2: usize, method: Option<KsMethod>) -> KsResult {
    let auto = if n1.max(n2) <= MAX_AUTO_N { KsMethod::Exact } else { KsMethod::Asymp };
    let mut mode = match method {
        None => auto,
        Some(KsMethod::Asymp) => KsMethod::Asymp,
        Some(KsMethod::Exact) => {
            // scipy: if lcm would not fit an int32, 'exact' is switched to 'asymp' (with a warning).
            let (g, _) = gcd_lcm(n1, n2);
            if g == 0 || (n1 / g) as f64 >= i32::MAX as f64 / (n2 / g) as f64 {
                KsMethod::Asymp
            } else {
                KsMethod::Exact
            }
        }
    };
    if n1 == 0 || n2 == 0 || d.is_nan() {
        return KsResult { statistic: f64::NAN, p_value: f64::NAN, method: mode };
    }
    let mut d = d.clamp(0.0, 1.0);
    let mut prob = f64::NAN;
    if mode == KsMethod::Exact {
        let (ok, snapped, p) = attempt_exact(n1, n2, d);
        d = snapped;
        if ok {
            prob = p;
        } else {
            mode = KsMethod::Asymp;
        }
    }
    if mode == KsMethod::Asymp {
        let (m, n) = if n1 >= n2 { (n1 as f64, n2 as f64) } else { (n2 as f64, n1 as f64) };
        let en = m * n / (m + n);
        let big_n = en.round_ties_even();
        // round(en) is a non-negative integer-valued f64; `as` saturates, never panics.
        prob = kstwo_sf(d, big_n as u64);
    }
    KsResult { statistic: d, p_value: prob.clamp(0.0, 1.0), method: mode }
}

/// gcd and lcm of two sizes (lcm in u128 so it cannot overflow). gcd(0, 0) = 0.
fn gcd_lcm(a: usize, b: usize) -> (usize, u128) {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    if x == 0 {
        return (0, 0);
    }
    (x, (a / x) as u128 * b as u128)
}

/// scipy `_attempt_exact_2kssamp` (two-sided): returns (success, snapped d, p).
fn attempt_exact(n1: usize, n2: usize, d: f64) -> (bool, f64, f64) {
    let (g, lcm) = gcd_lcm(n1, n2);
    let lcm_f = lcm as f64;
    let h = (d * lcm_f).round_ties_even();
    let d = h / lcm_f;
    if h == 0.0 {
        return (true, d, 1.0);
    }
    let h = h as u128;
    let prob = if n1 == n2 {
        prob_outside_square(n1 as u128, h)
    } else {
        outer_prob_inside_method(n1 as u128, n2 as u128, g as u128, h)
    };
    if !(0.0..=1.0).contains(&prob) {
        return (false, d, prob);
    }
    (true, d, prob)
}

/// Pr(D_{n,n} >= h/n), scipy `_compute_prob_outside_square`: 2·A0·(1 − A1·(1 − A2·(1 − …))) where each A_k is a
/// ratio of h simple factors, evaluated innermost first. O(n/h · h) = O(n + h).
fn prob_outside_square(n: u128, h: u128) -> f64 {
    let n = n as i128;
    let h = h as i128;
    let mut p = 0.0f64;
    let mut k = (n as f64 / h as f64).floor() as i128;
    while k >= 0 {
        let mut p1 = 1.0f64;
        for j in 0..h {
            p1 = (n - k * h - j) as f64 * p1 / (n + k * h + j + 1) as f64;
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// 1 − (share of lattice paths from (0,0) to (m,n) staying strictly inside |x/m − y/n| < h/lcm), scipy
/// `_compute_outer_prob_inside_method` (Hodges 1958 inside method carrying 1 − p, Viehmann 2021). One column
/// buffer, a sliding window of rows per column; every cell is a convex combination, so the result stays in
/// [0, 1].
fn outer_prob_inside_method(m: u128, n: u128, g: u128, h: u128) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (m, n, g, h) = (m as i128, n as i128, g as i128, h as i128);
    let mg = m / g;
    let ng = n / g;
    let mut minj: i128 = 0;
    let mut maxj: i128 = ceil_div(h, mg).min(n + 1);
    let mut curlen = maxj - minj;
    // scipy sizes the buffer min(2·maxj + 2, n + 1) and never touches more; n + 1 is the proven upper bound on
    // every index used below (each is < maxj <= n + 1), and cells past the window hold 1 in both layouts.
    let mut a = vec![1.0f64; (n + 1) as usize];
    a[..maxj as usize].fill(0.0);
    for i in 1..=m {
        let lastminj = minj;
        let lastlen = curlen;
        minj = (floor_div(ng * i - h, mg) + 1).max(0).min(n);
        maxj = ceil_div(ng * i + h, mg).min(n + 1);
        if maxj <= minj {
            return 1.0;
        }
        let fi = i as f64;
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        let off = (minj - lastminj) as usize;
        let len = (maxj - minj) as usize;
        let mut jf = minj as f64;
        for jj in 0..len {
            val = (a[jj + off] * fi + val * jf) / (fi + jf);
            a[jj] = val;
            jf += 1.0;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            a[curlen as usize..lastlen as usize].fill(1.0);
        }
    }
    a[(maxj - minj - 1) as usize]
}

fn floor_div(a: i128, b: i128) -> i128 {
    a.div_euclid(b)
}

fn ceil_div(a: i128, b: i128) -> i128 {
    -((-a).div_euclid(b))
}

// ---------------------------------------------------------------------------------------------------------------
// kstwo: the exact one-sample two-sided Kolmogorov distribution (scipy/stats/_ksstats.py)
// ---------------------------------------------------------------------------------------------------------------

/// The one-sample Kolmogorov distribution survival function for sample size n: `scipy.stats.kstwo.sf(d, n)`,
/// i.e. Pr(D_n >= d). n = 0 or NaN d gives NaN; d <= 0.5/n gives 1; d >= 1 gives 0.
///
/// Deviation: for n > i32::MAX scipy's `smirnov` ufunc returns NaN, so `kstwo.sf` is NaN wherever it would
/// call it; here the large-n branch of `smirnov` (valid for any n > 10^6) is used instead.
pub fn kstwo_sf(d: f64, n: u64) -> f64 {
    if n == 0 || d.is_nan() {
        return f64::NAN;
    }
    // rv_continuous.sf: support is (0.5/n, 1); at or below its left end sf = 1, at or above the right end 0.
    if d <= 0.5 / n as f64 {
        return 1.0;
    }
    if d >= 1.0 {
        return 0.0;
    }
    kolmogn_sf(n, d)
}

fn clip_prob(p: f64) -> f64 {
    p.clamp(0.0, 1.0)
}

/// `_kolmogn(n, x, cdf=False)`: Simard & L'Ecuyer's choice of algorithm for Pr(D_n >= x).
fn kolmogn_sf(n: u64, x: f64) -> f64 {
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let nf = n as f64;
    let t = nf * x;
    if t <= 1.0 {
        // Ruben–Gambino: for 1/2n <= x <= 1/n, Pr(D_n <= x) = n!/n^n · (2t − 1)^n.
        if t <= 0.5 {
            return 1.0;
        }
        let prob = if n <= 140 {
            let c = 2.0 * t - 1.0;
            let inv_n = 1.0 / nf;
            let mut prod = 1.0;
            for i in 1..=n {
                prod *= i as f64 * inv_n * c;
            }
            prod
        } else {
            (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return clip_prob(1.0 - prob);
    }
    if t >= (n - 1) as f64 {
        // Ruben–Gambino: for x >= 1 − 1/n, Pr(D_n >= x) = 2(1 − x)^n.
        return clip_prob(2.0 * (1.0 - x).powf(nf));
    }
    if x >= 0.5 {
        // D_n+ >= x and D_n- >= x cannot both hold: exactly twice the one-sided tail.
        return clip_prob(2.0 * smirnov_sf(n, x));
    }
    let nxsquared = t * x;
    if n <= 140 {
        if nxsquared <= 0.754693 {
            return clip_prob(1.0 - kolmogn_dmtw_cdf(n, x));
        }
        if nxsquared <= 4.0 {
            return clip_prob(1.0 - kolmogn_pomeranz_cdf(n, x));
        }
        return clip_prob(2.0 * smirnov_sf(n, x));
    }
    if nxsquared >= 370.0 {
        return 0.0;
    }
    if nxsquared >= 2.2 {
        return clip_prob(2.0 * smirnov_sf(n, x));
    }
    let cdf = if nxsquared >= 18.0 {
        1.0
    } else if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        kolmogn_dmtw_cdf(n, x)
    } else {
        kolmogn_pelz_good_cdf(nf, x)
    };
    clip_prob(1.0 - cdf)
}

/// log(n!/n^n) by Stirling's series with n·log(n) removed analytically (scipy `_log_nfactorial_div_n_pow_n`).
fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    // B_{2j}/(2j)/(2j−1) for j = 8..1, highest power first.
    const STIRLING: [f64; 8] = [
        -0.029550653594771242,
        0.00641025641025641,
        -0.0019175269175269176,
        0.0008417508417508417,
        -0.0005952380952380953,
        0.0007936507936507937,
        -0.002777777777777778,
        0.08333333333333333,
    ];
    let rn = 1.0 / n;
    let z = rn / n;
    let poly = STIRLING.iter().fold(0.0, |acc, &c| acc * z + c);
    let log_2pi = (2.0 * std::f64::consts::PI).ln();
    n.ln() / 2.0 - n + log_2pi / 2.0 + rn * poly
}

const E128: i64 = 128;
const EP128: f64 = 3.402_823_669_209_385e38; // 2^128
const EM128: f64 = 2.938_735_877_055_719e-39; // 2^-128

/// Pr(D_n <= d) by Durbin's matrix method in the form of Marsaglia, Tsang & Wang (2003): write d = (k − h)/n,
/// build the (2k−1)×(2k−1) matrix H, take the centre element of H^n · n!/n^n with exponent bookkeeping
/// (scipy `_kolmogn_DMTW`).
fn kolmogn_dmtw_cdf(n: u64, d: f64) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let nd = nf * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;

    let mut v: Vec<f64> = (1..=m).map(|j| 1.0 - h.powf(j as f64)).collect();
    let mut w = vec![0.0f64; m];
    let mut fac = 1.0f64;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] *= fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powf(m as f64) - 2.0 * h.powf(m as f64);
    v[m - 1] = (1.0 + tt) * fac;

    let mut hm = vec![0.0f64; m * m];
    for i in 1..m {
        for r in (i - 1)..m {
            hm[r * m + i] = w[r - (i - 1)];
        }
    }
    for r in 0..m {
        hm[r * m] = v[r];
    }
    for c in 0..m {
        hm[(m - 1) * m + c] = v[m - 1 - c];
    }

    let mut hpwr = vec![0.0f64; m * m];
    for r in 0..m {
        hpwr[r * m + r] = 1.0;
    }
    let mut nn = n;
    let mut expnt: i64 = 0;
    let mut h_expnt: i64 = 0;
    while nn > 0 {
        if nn % 2 == 1 {
            hpwr = matmul(&hpwr, &hm, m);
            expnt += h_expnt;
        }
        if nn == 1 {
            break; // scipy squares once more here, but the result is never used
        }
        hm = matmul(&hm, &hm, m);
        h_expnt *= 2;
        if hm[(k - 1) * m + (k - 1)].abs() > EP128 {
            for e in hm.iter_mut() {
                *e /= EP128;
            }
            h_expnt += E128;
        }
        nn /= 2;
    }

    let mut p = hpwr[(k - 1) * m + (k - 1)];
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < EM128 {
            p *= EP128;
            expnt -= E128;
        }
    }
    if expnt != 0 {
        p = ldexp(p, expnt);
    }
    clip_prob(p)
}

/// Dense row-major m×m product.
fn matmul(a: &[f64], b: &[f64], m: usize) -> Vec<f64> {
    let mut c = vec![0.0f64; m * m];
    for i in 0..m {
        let crow = &mut c[i * m..(i + 1) * m];
        for k in 0..m {
            let aik = a[i * m + k];
            if aik == 0.0 {
                continue;
            }
            let brow = &b[k * m..(k + 1) * m];
            for (cj, &bj) in crow.iter_mut().zip(brow) {
                *cj += aik * bj;
            }
        }
    }
    c
}

/// Row interval of the Pomeranz recursion (scipy `_pomeranz_compute_j1j2`).
fn pomeranz_j1j2(i: i64, n: i64, ll: i64, ceilf: i64, roundf: i64) -> (i64, i64) {
    let (j1, j2) = if i == 0 {
        (-ll - ceilf - 1, ll + ceilf - 1)
    } else {
        let (half, odd) = ((i + 1) / 2, (i + 1) % 2);
        if odd == 0 {
            if half == n + 1 {
                (n - ll - ceilf - 1, n + ll + ceilf - 1)
            } else {
                (half - 1 - ll - roundf - 1, half + ll - 1 + ceilf - 1)
            }
        } else {
            (half - 1 - ll - 1, half + ll + roundf - 1)
        }
    };
    ((j1 + 2).max(0), j2.min(n))
}

/// Pr(D_n <= x) by the Pomeranz (1974) recursion: 2n+1 rows, each the convolution of the previous row with
/// (almost-)Poisson weights, only the non-zero band kept, with power-of-two rescaling (scipy `_kolmogn_Pomeranz`).
/// Only used for n <= 140.
fn kolmogn_pomeranz_cdf(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    let n = n as i64;
    let t = nf * x;
    let ll = t.floor() as i64;
    let f = t - ll as f64;
    let g = f.min(1.0 - f);
    let ceilf = i64::from(f > 0.0);
    let roundf = i64::from(f > 0.5);
    let npwrs = (2 * (ll + 1)) as usize;
    let mut gpower = vec![0.0f64; npwrs];
    let mut twogpower = vec![0.0f64; npwrs];
    let mut onem2gpower = vec![0.0f64; npwrs];
    gpower[0] = 1.0;
    twogpower[0] = 1.0;
    onem2gpower[0] = 1.0;
    let mut expnt: i64 = 0;
    let (g_over_n, two_g_over_n, one_minus_two_g_over_n) = (g / nf, 2.0 * g / nf, (1.0 - 2.0 * g) / nf);
    for m in 1..npwrs {
        let mf = m as f64;
        gpower[m] = gpower[m - 1] * g_over_n / mf;
        twogpower[m] = twogpower[m - 1] * two_g_over_n / mf;
        onem2gpower[m] = onem2gpower[m - 1] * one_minus_two_g_over_n / mf;
    }

    let mut v0 = vec![0.0f64; npwrs];
    let mut v1 = vec![0.0f64; npwrs];
    v1[0] = 1.0;
    let (mut v0s, mut v1s) = (0i64, 0i64);
    let (mut j1, _) = pomeranz_j1j2(0, n, ll, ceilf, roundf);
    for i in 1..(2 * n + 2) {
        let k1 = j1;
        std::mem::swap(&mut v0, &mut v1);
        std::mem::swap(&mut v0s, &mut v1s);
        v1.fill(0.0);
        let (nj1, nj2) = pomeranz_j1j2(i, n, ll, ceilf, roundf);
        j1 = nj1;
        let pwrs = if i == 1 || i == 2 * n + 1 {
            &gpower
        } else if i % 2 == 1 {
            &twogpower
        } else {
            &onem2gpower
        };
        let ln2 = nj2 - k1 + 1;
        if ln2 > 0 {
            // numpy slicing clips at the array end; mirror that.
            let start = (k1 - v0s).clamp(0, npwrs as i64) as usize;
            let end = (k1 - v0s + ln2).clamp(start as i64, npwrs as i64) as usize;
            let sig = &v0[start..end];
            let ker = &pwrs[..(ln2 as usize).min(npwrs)];
            if sig.is_empty() || ker.is_empty() {
                continue; // numpy would raise; unreachable for valid rows
            }
            let conv_start = j1 - k1;
            let conv_len = nj2 - j1 + 1;
            let full_len = (sig.len() + ker.len()) as i64 - 1;
            for out in 0..conv_len.max(0) {
                let idx = conv_start + out;
                if idx < 0 || idx >= full_len || out as usize >= npwrs {
                    continue;
                }
                let idx = idx as usize;
                // full convolution: conv[idx] = Σ_i sig[i]·ker[idx − i]
                let lo = idx.saturating_sub(ker.len() - 1);
                let hi = idx.min(sig.len() - 1);
                let mut s = 0.0;
                for (ii, &sv) in sig.iter().enumerate().take(hi + 1).skip(lo) {
                    s += sv * ker[idx - ii];
                }
                v1[out as usize] = s;
            }
            let vmax = v1.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if 0.0 < vmax && vmax < EM128 {
                for e in v1.iter_mut() {
                    *e *= EP128;
                }
                expnt -= E128;
            }
            v1s = v0s + j1 - k1;
        }
    }
    let mut ans = usize::try_from(n - v1s).ok().and_then(|ix| v1.get(ix).copied()).unwrap_or(0.0);
    for m in 1..=n {
        if ans.abs() > EP128 {
            ans *= EM128;
            expnt += E128;
        }
        ans *= m as f64;
    }
    if expnt != 0 {
        ans = ldexp(ans, expnt);
    }
    clip_prob(ans)
}

/// Pelz & Good (1976) approximation of Pr(D_n <= x): the Li-Chien/Korolyuk expansion
/// K0 + K1/√n + K2/n + K3/n^1.5 in z = x√n, each term transformed by the Jacobi theta functional equation into a
/// series fast for small z (scipy `_kolmogn_PelzGood`).
fn kolmogn_pelz_good_cdf(n: f64, x: f64) -> f64 {
    use std::f64::consts::PI;
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let pi_squared = PI.powf(2.0);
    let pi_four = PI.powf(4.0);
    let pi_six = PI.powf(6.0);
    let sqrt2pi = (2.0 * PI).sqrt();
    let z = n.sqrt() * x;
    let (zsquared, zthree, zfour, zsix) = (z.powf(2.0), z.powf(3.0), z.powf(4.0), z.powf(6.0));

    let qlog = -pi_squared / 8.0 / zsquared;
    if qlog < -708.0 {
        return 0.0;
    }
    let q = qlog.exp();

    let k1a = -zsquared;
    let k1b = pi_squared / 4.0;
    let k2a = 6.0 * zsix + 2.0 * zfour;
    let k2b = (2.0 * zfour - 5.0 * zsquared) * pi_squared / 4.0;
    let k2c = pi_four * (1.0 - 2.0 * zsquared) / 16.0;
    let k3d = pi_six * (5.0 - 30.0 * zsquared) / 64.0;
    let k3c = pi_four * (-60.0 * zsquared + 212.0 * zfour) / 16.0;
    let k3b = pi_squared * (135.0 * zfour - 96.0 * zsix) / 4.0;
    let k3a = -30.0 * zsix - 90.0 * z.powf(8.0);

    // Horner scheme over the odd integers m = 2k − 1 of Σ c_k q^(m²).
    let mut kk = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for k in (1..=maxk).rev() {
        let m = (2 * k - 1) as f64;
        let (msquared, mfour, msix) = (m * m, m * m * m * m, m * m * m * m * m * m);
        let qpower = q.powf((8 * k) as f64);
        let coeffs = [
            1.0,
            k1a + k1b * msquared,
            k2a + k2b * msquared + k2c * mfour,
            k3a + k3b * msquared + k3c * mfour + k3d * msix,
        ];
        for (acc, c) in kk.iter_mut().zip(coeffs) {
            *acc = *acc * qpower + c;
        }
    }
    let denoms = [z, 6.0 * zfour, 72.0 * z.powf(7.0), 6480.0 * z.powf(10.0)];
    for (acc, den) in kk.iter_mut().zip(denoms) {
        *acc *= q;
        *acc *= sqrt2pi;
        *acc /= den;
    }

    // The remaining sums over all integers k in K2 and K3.
    let q = (-pi_squared / 2.0 / zsquared).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let mut k2sum = 0.0;
    let mut k3sum = 0.0;
    for k in (1..=maxk).rev() {
        let ksquared = (k * k) as f64;
        let kspi = PI * k as f64;
        let qp = q.powf(ksquared);
        k2sum += ksquared * qp;
        k3sum += (sqrt3z + kspi) * (sqrt3z - kspi) * ksquared * qp;
    }
    kk[2] += k2sum * (pi_squared * sqrt2pi / (-36.0 * zthree));
    kk[3] += k3sum * (pi_squared * sqrt2pi / (216.0 * zsix));
    for (i, acc) in kk.iter_mut().enumerate() {
        *acc /= n.powf(i as f64 / 2.0);
    }
    kk[0] + kk[1] + kk[2] + kk[3]
}

// ---------------------------------------------------------------------------------------------------------------
// ldexp / frexp (std has neither)
// ---------------------------------------------------------------------------------------------------------------

/// x · 2^e with a single rounding (same stepping as musl/glibc `scalbn`).
fn ldexp(x: f64, e: i64) -> f64 {
    let mut x = x;
    let mut e = e.clamp(-3000, 3000) as i32;
    let p1023 = f64::from_bits(0x7fe0_0000_0000_0000); // 2^1023
    let pm969 = f64::from_bits(0x0360_0000_0000_0000); // 2^-1022 · 2^53
    if e > 1023 {
        x *= p1023;
        e -= 1023;
        if e > 1023 {
            x *= p1023;
            e -= 1023;
            e = e.min(1023);
        }
    } else if e < -1022 {
        x *= pm969;
        e += 1022 - 53;
        if e < -1022 {
            x *= pm969;
            e += 1022 - 53;
            e = e.max(-1022);
        }
    }
    x * f64::from_bits(((0x3ff + e) as u64) << 52)
}

/// (mantissa in [0.5, 1), exponent) with x = mantissa · 2^exponent; 0, inf and NaN come back unchanged with 0.
fn frexp(x: f64) -> (f64, i64) {
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64;
    if exp == 0 {
        let (m, e) = frexp(x * f64::from_bits(0x4350_0000_0000_0000)); // 2^54
        return (m, e - 54);
    }
    let m = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (m, exp - 1022)
}

// ---------------------------------------------------------------------------------------------------------------
// Double-double arithmetic (Dekker 1971; operator set as in the `qd` package used by xsf's dd_real.h)
// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Dd {
    hi: f64,
    lo: f64,
}

impl Dd {
    fn new(hi: f64) -> Dd {
        Dd { hi, lo: 0.0 }
    }
    fn is_zero(self) -> bool {
        self.hi == 0.0 && self.lo == 0.0
    }
    fn floor(self) -> Dd {
        let hi = self.hi.floor();
        if hi == self.hi {
            let (h, l) = quick_two_sum(hi, self.lo.floor());
            Dd { hi: h, lo: l }
        } else {
            Dd { hi, lo: 0.0 }
        }
    }
}

/// fl(a+b) and its error, assuming |a| >= |b|.
fn quick_two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    (s, b - (s - a))
}

/// fl(a+b) and its error (Knuth).
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let c = s - a;
    let d = b - c;
    let e = s - c;
    (s, (a - e) + d)
}

/// fl(a·b) and its error via fused multiply-add.
fn two_prod(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    (p, a.mul_add(b, -p))
}

impl std::ops::Neg for Dd {
    type Output = Dd;
    fn neg(self) -> Dd {
        Dd { hi: -self.hi, lo: -self.lo }
    }
}

impl std::ops::Add for Dd {
    type Output = Dd;
    fn add(self, rhs: Dd) -> Dd {
        let (s1, s2) = two_sum(self.hi, rhs.hi);
        let (t1, t2) = two_sum(self.lo, rhs.lo);
        let (s1, s2) = quick_two_sum(s1, s2 + t1);
        let (s1, s2) = quick_two_sum(s1, s2 + t2);
        Dd { hi: s1, lo: s2 }
    }
}

impl std::ops::Add<f64> for Dd {
    type Output = Dd;
    fn add(self, rhs: f64) -> Dd {
        let (s1, s2) = two_sum(self.hi, rhs);
        let (s1, s2) = quick_two_sum(s1, s2 + self.lo);
        Dd { hi: s1, lo: s2 }
    }
}

impl std::ops::Sub for Dd {
    type Output = Dd;
    fn sub(self, rhs: Dd) -> Dd {
        self + (-rhs)
    }
}

impl std::ops::Sub<f64> for Dd {
    type Output = Dd;
    fn sub(self, rhs: f64) -> Dd {
        let (s1, s2) = two_sum(self.hi, -rhs);
        let (s1, s2) = quick_two_sum(s1, s2 + self.lo);
        Dd { hi: s1, lo: s2 }
    }
}

impl std::ops::Mul for Dd {
    type Output = Dd;
    fn mul(self, rhs: Dd) -> Dd {
        let (p1, p2) = two_prod(self.hi, rhs.hi);
        let p2 = p2 + (self.hi * rhs.lo + self.lo * rhs.hi);
        let (p1, p2) = quick_two_sum(p1, p2);
        Dd { hi: p1, lo: p2 }
    }
}

impl std::ops::Mul<Dd> for f64 {
    type Output = Dd;
    fn mul(self, rhs: Dd) -> Dd {
        let (p1, e1) = two_prod(self, rhs.hi);
        let (p2, e2) = two_prod(self, rhs.lo);
        let (p1, e1) = quick_two_sum(p1, e2 + p2 + e1);
        Dd { hi: p1, lo: e1 }
    }
}

impl std::ops::Div for Dd {
    type Output = Dd;
    fn div(self, rhs: Dd) -> Dd {
        let q1 = self.hi / rhs.hi;
        let r = self - q1 * rhs;
        let q2 = r.hi / rhs.hi;
        let r = r - q2 * rhs;
        let q3 = r.hi / rhs.hi;
        let (q1, q2) = quick_two_sum(q1, q2);
        Dd { hi: q1, lo: q2 } + q3
    }
}

impl std::ops::Div<f64> for Dd {
    type Output = Dd;
    fn div(self, rhs: f64) -> Dd {
        self / Dd::new(rhs)
    }
}

impl std::ops::Div<Dd> for f64 {
    type Output = Dd;
    fn div(self, rhs: Dd) -> Dd {
        Dd::new(self) / rhs
    }
}

fn dd_ldexp(a: Dd, e: i64) -> Dd {
    Dd { hi: ldexp(a.hi, e), lo: ldexp(a.lo, e) }
}

/// Normalise so that 0.5 <= |hi| < 1 (or |hi| == 1 with a low part of opposite sign).
fn dd_frexp(a: Dd) -> (Dd, i64) {
    let (mut man, mut e) = frexp(a.hi);
    let mut b1 = ldexp(a.lo, -e);
    if man.abs() == 0.5 && man * b1 < 0.0 {
        man *= 2.0;
        b1 *= 2.0;
        e -= 1;
    }
    (Dd { hi: man, lo: b1 }, e)
}

// ---------------------------------------------------------------------------------------------------------------
// smirnov: one-sided Pr(D_n+ >= x), port of xsf cephes/kolmogorov.h `_smirnov` (survival part only)
// ---------------------------------------------------------------------------------------------------------------

const SMIRNOV_MAX_COMPUTE_N: i64 = 1_000_000;
const SM_UPPER_MAX_TERMS: i64 = 3;
const SM_UPPERSUM_MIN_N: i64 = 10;
const SM_MAX_EXPONENT: i64 = 960;
/// log(2^-1075): exp() of anything below underflows.
const MINLOG: f64 = -7.451_332_191_019_412e2;

/// a^m in double-double, trading accuracy for speed as xsf does (pow of the high part, first-order
/// correction for the low part).
fn pow_dd(a: Dd, m: i64) -> Dd {
    if m <= 0 {
        if m == 0 {
            return Dd::new(1.0);
        }
        return 1.0 / pow_dd(a, -m);
    }
    if a.is_zero() {
        return Dd::new(0.0);
    }
    let mf = m as f64;
    let ans = a.hi.powf(mf);
    let r = a.lo / a.hi;
    let mut adj = mf * r;
    if adj.abs() > 1e-8 {
        if adj.abs() < 1e-4 {
            adj += (mf * r) * ((m - 1) as f64 / 2.0 * r);
        } else {
            adj = (mf * r.ln_1p()).exp_m1();
        }
    }
    Dd::new(ans) + ans * adj
}

/// (a + b)^m rounded to f64.
fn pow2(a: f64, b: f64, m: i64) -> f64 {
    pow_dd(Dd::new(a) + b, m).hi
}

/// ((a + b)/(c + d))^m in double-double.
fn pow4_dd(a: f64, b: f64, c: f64, d: f64, m: i64) -> Dd {
    if m <= 0 {
        if m == 0 {
            return Dd::new(1.0);
        }
        return pow4_dd(c, d, a, b, -m);
    }
    let aa = Dd::new(a) + b;
    let cc = Dd::new(c) + d;
    if aa.is_zero() {
        return if cc.is_zero() { Dd::new(f64::NAN) } else { Dd::new(0.0) };
    }
    if cc.is_zero() {
        let inf = if aa.hi < 0.0 || (aa.hi == 0.0 && aa.lo < 0.0) { f64::NEG_INFINITY } else { f64::INFINITY };
        return Dd { hi: inf, lo: inf };
    }
    pow_dd(aa / cc, m)
}

/// xsf `nextPowerOf2` (despite the name: x nudged up by one ulp-ish step, snapped to an integer if it is one).
fn next_power_of2(x: f64) -> f64 {
    let q = ldexp(x, 1 - 53);
    let l = (q + x).abs();
    if l == 0.0 {
        return x.abs();
    }
    let lint = l as i64;
    if lint as f64 == l {
        lint as f64
    } else {
        l
    }
}

/// a^m as (significand, binary exponent), splitting the power so intermediate results stay normal.
fn pow2_scaled_dd(a: Dd, m: i64) -> (Dd, i64) {
    if m <= 0 {
        if m == 0 {
            return (Dd::new(1.0), 0);
        }
        let (ans, e1) = pow2_scaled_dd(a, -m);
        let (ans, e2) = dd_frexp(1.0 / ans);
        return (ans, -e1 + e2);
    }
    let (y, ye) = dd_frexp(a);
    if m == 1 {
        return (y, ye);
    }
    let mut max_expt = SM_MAX_EXPONENT;
    if m as f64 * (y.hi - 1.0) / y.hi < -(SM_MAX_EXPONENT as f64) * std::f64::consts::LN_2 {
        let lg2y = y.hi.ln() / std::f64::consts::LN_2;
        let lg_ans = m as f64 * lg2y;
        if lg_ans <= -(SM_MAX_EXPONENT as f64) {
            max_expt = (next_power_of2(-(SM_MAX_EXPONENT as f64) / lg2y + 1.0) / 2.0) as i64;
        }
    }
    // y is normalised so max_expt >= 480; guard anyway so a degenerate input cannot divide by zero.
    let max_expt = max_expt.max(1);
    if m <= max_expt {
        let (ans, e) = dd_frexp(pow_dd(y, m));
        return (ans, e + m * ye);
    }
    let q = m / max_expt;
    let r = m % max_expt;
    let (y2r, y2r_e) = pow2_scaled_dd(y, r);
    let (y2m, y2m_e) = pow2_scaled_dd(y, max_expt);
    let (y2mq, y2mq_e) = pow2_scaled_dd(y2m, q);
    let (ans, ans_e) = dd_frexp(y2r * y2mq);
    let y2mq_e = y2mq_e + y2m_e * q;
    (ans, ans_e + y2mq_e + y2r_e + m * ye)
}

/// floor(n·x) and n·x − floor(n·x), computed exactly in double-double (xsf `modNX`).
fn mod_nx(n: i64, x: f64) -> (f64, i64) {
    let nxd = (n as f64) * Dd::new(x);
    let nxfloord = nxd.floor();
    let alphad = nxd - nxfloord;
    let mut alpha = alphad.hi;
    let mut nxfloor = nxfloord.hi as i64;
    if alpha == 1.0 {
        nxfloor += 1;
        alpha = 0.0;
    }
    (alpha, nxfloor)
}

/// C(n, j) → C(n, j+1) on a (double-double significand, exponent) pair.
fn update_binomial(cman: &mut Dd, cexpt: &mut i64, n: i64, j: i64) {
    let rat = Dd::new((n - j) as f64) / (j as f64 + 1.0);
    let (man2, e) = dd_frexp(*cman * rat);
    *cexpt += e;
    *cman = man2;
}

/// A_v(n, x) = C(n, v) · (1 − x − v/n)^(n−v) · (x + v/n)^(v−1).
fn compute_av(n: i64, x: f64, v: i64, cman: Dd, cexpt: i64) -> Dd {
    let nf = n as f64;
    let t2x = Dd::new((n - v) as f64) / nf - x;
    let (t2, t2e) = pow2_scaled_dd(t2x, n - v);
    let t1x = Dd::new(v as f64) / nf + x;
    let (t1, t1e) = pow2_scaled_dd(t1x, v - 1);
    let ans = t1 * t2 * cman;
    dd_ldexp(ans, cexpt + t1e + t2e)
}

/// `scipy.special.smirnov(n, x)`: Pr(D_n+ >= x), the one-sided one-sample KS survival function, by the
/// Birnbaum–Tingey sum (or its complementary upper sum) in double-double with early termination.
fn smirnov_sf(n: u64, x: f64) -> f64 {
    // Beyond 2^62 only the closed-form and large-n branches can be reached; clamping keeps integer arithmetic
    // overflow-free without changing any value that matters.
    let n = n.min(1 << 62) as i64;
    if !(n > 0 && (0.0..=1.0).contains(&x)) {
        return f64::NAN;
    }
    if n == 1 {
        return 1.0 - x;
    }
    if x == 0.0 {
        return 1.0;
    }
    if x == 1.0 {
        return 0.0;
    }
    let nf = n as f64;
    let (alpha, nxfl) = mod_nx(n, x);
    let mut n1mxfl = n - nxfl - if alpha == 0.0 { 0 } else { 1 };
    let mut n1mxceil = n - nxfl;
    if alpha == 0.0 {
        n1mxfl -= 1;
        n1mxceil += 1;
    }
    // x <= 1/n: closed form.
    if nxfl == 0 || (nxfl == 1 && alpha == 0.0) {
        let t = pow2(1.0, x, n - 1);
        return 1.0 - x * t;
    }
    // sf underflows.
    if -2.0 * nf * x * x < MINLOG {
        return 0.0;
    }
    // x >= 1 − 1/n: closed form.
    if nxfl >= n - 1 {
        return pow2(1.0, -x, n);
    }
    // Large n: p ≈ exp(−(6nx + 1)² / 18n).
    if n > SMIRNOV_MAX_COMPUTE_N {
        let logp = -(6.0 * nf * x + 1.0).powf(2.0) / 18.0 / nf;
        return if logp < -std::f64::consts::LN_2 { logp.exp() } else { 1.0 - (-logp.exp_m1()) };
    }
    let n_upper_terms = n - n1mxceil + 1;
    let use_upper_sum = (n_upper_terms <= 1 && x < 0.5)
        || (n >= SM_UPPERSUM_MIN_N && n_upper_terms <= SM_UPPER_MAX_TERMS && x <= 0.5 / nf.sqrt());

    let (start, step, n_terms) = if use_upper_sum { (n, -1i64, n - n1mxceil + 1) } else { (0, 1i64, n1mxfl + 1) };
    let vmid = n / 2;
    let mut cman = Dd::new(1.0);
    let mut cexpt: i64 = 0;
    let first = if use_upper_sum { pow4_dd(1.0, x, 1.0, 0.0, n - 1) } else { pow4_dd(1.0, -x, 1.0, 0.0, n) / x };
    let mut aj_sum = Dd::new(0.0) + first;
    update_binomial(&mut cman, &mut cexpt, n, 0);
    for j in 1..n_terms {
        let v = start + j * step;
        let aj = compute_av(n, x, v, cman, cexpt);
        let aj_nonzero = !aj.is_zero();
        if aj.hi.is_finite() && aj_nonzero {
            aj_sum = aj_sum + aj;
        }
        if aj_nonzero {
            if (4 * (n_terms - j)) as f64 * aj.hi.abs() < f64::EPSILON * aj_sum.hi && j != n_terms - 1 {
                break;
            }
        } else if j > vmid {
            break;
        }
        update_binomial(&mut cman, &mut cexpt, n, j);
    }
    let prob = (x * aj_sum).hi;
    let sf = if step < 0 { 1.0 - prob } else { prob };
    sf.clamp(0.0, 1.0)
}

// ---------------------------------------------------------------------------------------------------------------
// Binned KS
// ---------------------------------------------------------------------------------------------------------------

/// KS over counts on shared bins (B bins, same edges for both): D_binned = max over bin boundaries
/// |F_ref − F_cur|, and the bound on |D_true − D_binned|: max over bins of max(ref_mass_b, cur_mass_b).
/// Returns (d_binned, bound). D_binned <= D_true <= D_binned + bound, because inside one bin each ECDF rises by
/// at most that bin's mass. Mismatched lengths, no bins or an all-zero side give (NaN, NaN).
pub fn ks_binned(ref_counts: &[u64], cur_counts: &[u64]) -> (f64, f64) {
    if ref_counts.is_empty() || ref_counts.len() != cur_counts.len() {
        return (f64::NAN, f64::NAN);
    }
    let total_ref: u128 = ref_counts.iter().map(|&c| c as u128).sum();
    let total_cur: u128 = cur_counts.iter().map(|&c| c as u128).sum();
    if total_ref == 0 || total_cur == 0 {
        return (f64::NAN, f64::NAN);
    }
    let (tr, tc) = (total_ref as f64, total_cur as f64);
    let (mut cum_ref, mut cum_cur) = (0u128, 0u128);
    let (mut d, mut bound) = (0.0f64, 0.0f64);
    for (&r, &c) in ref_counts.iter().zip(cur_counts) {
        bound = bound.max((r as f64 / tr).max(c as f64 / tc));
        cum_ref += r as u128;
        cum_cur += c as u128;
        d = d.max((cum_ref as f64 / tr - cum_cur as f64 / tc).abs());
    }
    (d, bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_inputs_are_nan() {
        for (a, b) in [(&[][..], &[1.0][..]), (&[1.0][..], &[][..]), (&[][..], &[][..])] {
            let r = ks_2samp(a, b);
            assert!(r.statistic.is_nan() && r.p_value.is_nan(), "{r:?}");
            assert!(ks_statistic(a, b).is_nan());
        }
        assert!(ks_p_value(0.5, 0, 3).0.is_nan());
        assert!(ks_p_value(f64::NAN, 3, 3).0.is_nan());
    }

    #[test]
    fn single_observations() {
        // scipy: ks_2samp([1], [2]) -> D = 1, p = 1 (exact, n = m = 1).
        let r = ks_2samp(&[1.0], &[2.0]);
        assert_eq!(r.statistic, 1.0);
        assert_eq!(r.p_value, 1.0);
        assert_eq!(r.method, KsMethod::Exact);
        // identical singletons
        let r = ks_2samp(&[1.0], &[1.0]);
        assert_eq!((r.statistic, r.p_value), (0.0, 1.0));
    }

    #[test]
    fn all_equal_values() {
        let a = [3.0; 40];
        let r = ks_2samp(&a, &a[..17]);
        assert_eq!((r.statistic, r.p_value, r.method), (0.0, 1.0, KsMethod::Exact));
        let b = [4.0; 25];
        let r = ks_2samp(&a, &b);
        assert_eq!(r.statistic, 1.0);
        assert!(r.p_value > 0.0 && r.p_value < 1e-10, "{r:?}");
    }

    #[test]
    fn statistic_never_hangs_on_bad_input() {
        let d = ks_statistic(&[f64::NAN, 1.0, f64::NAN], &[0.5, f64::NAN]);
        assert!(d.is_finite());
        let d = ks_statistic(&[3.0, 1.0, 2.0], &[2.0, 0.0]);
        assert!((0.0..=1.0).contains(&d));
    }

    #[test]
    fn p_value_handles_out_of_range_d() {
        assert_eq!(ks_p_value(-0.3, 5, 7).0, 1.0);
        assert_eq!(ks_p_value(0.0, 20_000, 30_000).0, 1.0);
        let (p, _) = ks_p_value(1.7, 5, 7);
        assert!((0.0..1e-2).contains(&p));
        let (p, m) = ks_p_value(2.0, 20_000, 30_000);
        assert_eq!((p, m), (0.0, KsMethod::Asymp));
        for (d, n1, n2) in [(0.5, usize::MAX, usize::MAX), (1e-3, usize::MAX, 1), (1e-9, usize::MAX, usize::MAX / 3)] {
            let (p, m) = ks_p_value(d, n1, n2);
            assert!((0.0..=1.0).contains(&p) && m == KsMethod::Asymp, "{d} {n1} {n2}: {p}");
        }
    }

    #[test]
    fn kstwo_sf_degenerate_arguments() {
        assert!(kstwo_sf(0.3, 0).is_nan());
        assert!(kstwo_sf(f64::NAN, 10).is_nan());
        assert_eq!(kstwo_sf(0.0, 10), 1.0);
        assert_eq!(kstwo_sf(-1.0, 10), 1.0);
        assert_eq!(kstwo_sf(1.0, 10), 0.0);
        assert_eq!(kstwo_sf(5.0, 10), 0.0);
        assert_eq!(kstwo_sf(f64::INFINITY, 10), 0.0);
        assert_eq!(kstwo_sf(f64::NEG_INFINITY, 10), 1.0);
        // n = 1: D_1 is uniform on [1/2, 1]: sf(d) = 2(1 − d).
        assert!((kstwo_sf(0.75, 1) - 0.5).abs() < 1e-15);
        for n in [u64::MAX, u64::MAX / 2, 1 << 62, (1 << 53) + 1, i32::MAX as u64 + 7] {
            for d in [1e-300, 1e-19, 1e-12, 1e-9, 1e-6, 0.01, 0.3, 0.5, 0.6, 0.999_999, 1.0 - 1e-16] {
                let p = kstwo_sf(d, n);
                assert!((0.0..=1.0).contains(&p), "n={n} d={d} p={p}");
            }
        }
    }

    #[test]
    fn kstwo_sf_is_monotone_in_d() {
        for n in [1u64, 2, 3, 7, 50, 140, 141, 1000, 100_000, 2_000_000] {
            let mut last = 1.0;
            for i in 0..=400 {
                let d = i as f64 / 400.0;
                let p = kstwo_sf(d, n);
                assert!(p <= last + 1e-9, "n={n} d={d} p={p} last={last}");
                last = p;
            }
        }
    }

    #[test]
    fn ldexp_frexp_round_trip() {
        for &x in &[1.0, -3.5, 1e-310, 5e-324, 1.7e308, 0.1] {
            let (m, e) = frexp(x);
            assert!((0.5..1.0).contains(&m.abs()), "{x} {m}");
            assert_eq!(ldexp(m, e), x);
        }
        assert_eq!(ldexp(1.0, -1074), 5e-324);
        assert_eq!(ldexp(1.0, -1080), 0.0);
        assert_eq!(ldexp(1.0, 1024), f64::INFINITY);
        assert_eq!(ldexp(3.0, i64::MIN), 0.0);
    }

    #[test]
    fn binned_degenerate() {
        assert!(ks_binned(&[], &[]).0.is_nan());
        assert!(ks_binned(&[1, 2], &[1]).0.is_nan());
        assert!(ks_binned(&[0, 0], &[1, 1]).1.is_nan());
        assert_eq!(ks_binned(&[5], &[9]), (0.0, 1.0));
        assert_eq!(ks_binned(&[u64::MAX, u64::MAX], &[1, 0]), (0.5, 1.0));
    }

    /// numpy `np.quantile(..., method='linear')` on sorted data.
    fn quantile_linear(sorted: &[f64], q: f64) -> f64 {
        let pos = q * (sorted.len() - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(sorted.len() - 1);
        sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
    }

    fn counts(sorted: &[f64], edges: &[f64]) -> Vec<u64> {
        // bin index = number of edges strictly below x (searchsorted 'left'): a value equal to an edge goes to the
        // lower bin, so bins are right-closed and cumulative counts are ECDF values at the edges.
        let mut c = vec![0u64; edges.len() + 1];
        for &x in sorted {
            c[edges.partition_point(|&e| e < x)] += 1;
        }
        c
    }

    #[test]
    fn binned_bound_holds_on_random_data() {
        let mut rng = fastrand::Rng::with_seed(7);
        for trial in 0..200 {
            let n_ref = 1 + rng.usize(..2000);
            let n_cur = 1 + rng.usize(..2000);
            let shift = rng.f64() - 0.5;
            let ties = trial % 3 == 0;
            let gen = |rng: &mut fastrand::Rng, n: usize, s: f64| -> Vec<f64> {
                let mut v: Vec<f64> = (0..n)
                    .map(|_| {
                        // sum of uniforms: roughly normal
                        let z: f64 = (0..4).map(|_| rng.f64()).sum::<f64>() + s;
                        if ties {
                            (z * 3.0).round()
                        } else {
                            z
                        }
                    })
                    .collect();
                v.sort_by(f64::total_cmp);
                v
            };
            let a = gen(&mut rng, n_ref, 0.0);
            let b = gen(&mut rng, n_cur, shift);
            let bins = 1 + rng.usize(..64);
            let mut edges: Vec<f64> = (1..bins).map(|k| quantile_linear(&a, k as f64 / bins as f64)).collect();
            edges.dedup();
            let (d_binned, bound) = ks_binned(&counts(&a, &edges), &counts(&b, &edges));
            let d_true = ks_statistic(&a, &b);
            assert!(d_binned <= d_true + 1e-12, "trial {trial}: {d_binned} > {d_true}");
            assert!(d_true <= d_binned + bound + 1e-12, "trial {trial}: {d_true} > {d_binned} + {bound}");
        }
    }
}
