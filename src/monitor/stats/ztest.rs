//! Two-proportion z-test (pooled), as Evidently's `z` stat test for binary columns.

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// A z-test result: the z statistic and its two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZTest {
    pub statistic: f64,
    pub p_value: f64,
}

/// Evidently's `z_stat_test` (legacy `z_stattest.py`, `proportions_diff_z_stat_ind` and
/// `proportions_diff_z_test`): with `p1 = ref_successes/ref_n`, `p2 = cur_successes/cur_n` and the
/// pooled `P = (p1·n1 + p2·n2)/(n1 + n2)`, `z = (p1 − p2)/sqrt(P(1−P)(1/n1 + 1/n2))` and the
/// two-sided `p = 2(1 − Φ(|z|))`.
///
/// Which category is the "success": Evidently sorts the values seen in reference ∪ current and
/// codes the first (smallest) as 0, everything else as 1, so its proportion is the share of rows
/// *not* equal to the smallest category. Pass that count to reproduce Evidently's sign of `z`; the
/// other choice only flips the sign (the p-value is the same).
///
/// Edge cases:
/// * `P ∈ {0, 1}` (no successes, or only successes, on both sides): Evidently's "both columns hold
///   the same single value" branch; we return `statistic 0`, `p_value 1`.
/// * `ref_n == 0`, `cur_n == 0`, or successes greater than n: NaN, NaN.
///
/// Deviation: the p-value is computed as `2·Φ(−|z|) = erfc(|z|/√2)`, mathematically equal to
/// Evidently's `2·(1 − Φ(|z|))` but without its cancellation, which rounds p to 0 for `|z| > 8.3`
/// (tiny p-values stay meaningful; agreement is ~1e-15 absolute). It is evaluated as the χ²(1)
/// upper tail at `z²` (statrs' regularised incomplete gamma `Q(1/2, z²/2)`, ~1e-14 relative) rather
/// than through `statrs::distribution::Normal`, whose `erfc` in statrs 0.18 is only accurate to
/// ~1e-10 relative (truncated interval constants; fixed upstream in statrs-dev/statrs#412).
pub fn two_proportion_z(ref_successes: u64, ref_n: u64, cur_successes: u64, cur_n: u64) -> ZTest {
    if ref_n == 0 || cur_n == 0 || ref_successes > ref_n || cur_successes > cur_n {
        return ZTest { statistic: f64::NAN, p_value: f64::NAN };
    }
    let successes = ref_successes as u128 + cur_successes as u128;
    if successes == 0 || successes == ref_n as u128 + cur_n as u128 {
        return ZTest { statistic: 0.0, p_value: 1.0 };
    }
    let (n1, n2) = (ref_n as f64, cur_n as f64);
    let p1 = ref_successes as f64 / n1;
    let p2 = cur_successes as f64 / n2;
    // Same operation order as Evidently, so the statistic agrees to the last bits.
    let pooled = (p1 * n1 + p2 * n2) / (n1 + n2);
    let statistic = (p1 - p2) / (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    let p_value = match ChiSquared::new(1.0) {
        Ok(chi2_1) => chi2_1.sf(statistic * statistic),
        Err(_) => f64::NAN,
    };
    ZTest { statistic, p_value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degenerate_inputs() {
        assert!(two_proportion_z(0, 0, 1, 2).p_value.is_nan());
        assert!(two_proportion_z(1, 2, 0, 0).statistic.is_nan());
        assert!(two_proportion_z(3, 2, 1, 2).p_value.is_nan());
        assert_eq!(two_proportion_z(0, 10, 0, 5), ZTest { statistic: 0.0, p_value: 1.0 });
        assert_eq!(two_proportion_z(10, 10, 5, 5), ZTest { statistic: 0.0, p_value: 1.0 });
    }

    #[test]
    fn equal_proportions_and_symmetry() {
        let z = two_proportion_z(50, 100, 50, 100);
        assert_eq!((z.statistic, z.p_value), (0.0, 1.0));
        let a = two_proportion_z(40, 100, 55, 100);
        let b = two_proportion_z(60, 100, 45, 100);
        assert!((a.statistic + b.statistic).abs() < 1e-12);
        assert!((a.p_value - b.p_value).abs() < 1e-15);
        // Opposite single values: all failures vs all successes is a finite, extreme z.
        let z = two_proportion_z(0, 20, 30, 30);
        assert!(z.statistic.is_finite() && z.statistic < 0.0 && z.p_value < 1e-9);
    }

    #[test]
    fn tiny_p_does_not_underflow_early() {
        let z = two_proportion_z(500, 5000, 900, 5000);
        assert!(z.p_value > 0.0 && z.p_value < 1e-29);
    }
}
