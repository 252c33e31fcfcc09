//! Multivariate covariate shift by PCA reconstruction error, as NannyML's "data reconstruction"
//! drift: standardize, project onto the principal components that keep a share of the reference's
//! variance, map back, and measure how far each record lands from where it was. A live window whose
//! mean error rises above the reference's has moved off the reference's correlation structure,
//! which no single feature's test can see (ARCHITECTURE.md: "Covariate shift").

#![allow(clippy::needless_range_loop)] // matrix code reads better with indices

/// A fitted PCA over numeric features.
#[derive(Debug, Clone)]
pub struct Pca {
    mean: Vec<f64>,
    scale: Vec<f64>,
    /// Components as rows (k × d), orthonormal.
    components: Vec<Vec<f64>>,
    /// Share of the standardized variance the components keep.
    pub explained: f64,
    /// Reconstruction error of held-out reference rows: mean and standard deviation.
    pub error_mean: f64,
    pub error_std: f64,
}

impl Pca {
    /// Fits on `rows` (each of width d, NaN = missing, imputed by the column mean). The first half
    /// (every other row) fits the components; the other half calibrates the error, so the
    /// threshold is not biased low by in-sample fit. None when d < 2 or fewer than 20 rows.
    pub fn fit(rows: &[Vec<f64>], variance: f64) -> Option<Pca> {
        let d = rows.first()?.len();
        if d < 2 || rows.len() < 20 {
            return None;
        }
        let mut mean = vec![0.0; d];
        let mut count = vec![0usize; d];
        for r in rows {
            for (j, &x) in r.iter().enumerate() {
                if x.is_finite() {
                    mean[j] += x;
                    count[j] += 1;
                }
            }
        }
        for j in 0..d {
            mean[j] = if count[j] > 0 { mean[j] / count[j] as f64 } else { 0.0 };
        }
        let mut scale = vec![0.0; d];
        for r in rows {
            for (j, &x) in r.iter().enumerate() {
                let x = if x.is_finite() { x } else { mean[j] };
                scale[j] += (x - mean[j]) * (x - mean[j]);
            }
        }
        for s in scale.iter_mut() {
            let sd = (*s / rows.len() as f64).sqrt();
            *s = if sd > 1e-12 { sd } else { 1.0 };
        }
        let mut pca = Pca { mean, scale, components: Vec::new(), explained: 0.0, error_mean: 0.0, error_std: 0.0 };
        let fit: Vec<Vec<f64>> = rows.iter().step_by(2).map(|r| pca.standardize(r)).collect();
        let mut cov = vec![vec![0.0; d]; d];
        let n = fit.len() as f64;
        let mut mu = vec![0.0; d];
        for z in &fit {
            for j in 0..d {
                mu[j] += z[j] / n;
            }
        }
        for z in &fit {
            for a in 0..d {
                for b in a..d {
                    cov[a][b] += (z[a] - mu[a]) * (z[b] - mu[b]) / n;
                }
            }
        }
        for a in 0..d {
            for b in 0..a {
                cov[a][b] = cov[b][a];
            }
        }
        let (values, vectors) = symmetric_eigen(cov);
        let total: f64 = values.iter().map(|v| v.max(0.0)).sum();
        if total <= 0.0 {
            return None;
        }
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
        let mut kept = 0.0;
        for &i in &order {
            pca.components.push((0..d).map(|j| vectors[j][i]).collect());
            kept += values[i].max(0.0);
            if kept / total >= variance - 1e-12 {
                break;
            }
        }
        pca.explained = kept / total;
        let errors: Vec<f64> = rows.iter().skip(1).step_by(2).map(|r| pca.error(r)).collect();
        let m = errors.len() as f64;
        pca.error_mean = errors.iter().sum::<f64>() / m;
        pca.error_std = (errors.iter().map(|e| (e - pca.error_mean).powi(2)).sum::<f64>() / m).sqrt();
        Some(pca)
    }

    pub fn width(&self) -> usize {
        self.mean.len()
    }

    pub fn components(&self) -> usize {
        self.components.len()
    }

    fn standardize(&self, row: &[f64]) -> Vec<f64> {
        row.iter()
            .enumerate()
            .map(|(j, &x)| if x.is_finite() { (x - self.mean[j]) / self.scale[j] } else { 0.0 })
            .collect()
    }

    /// Euclidean distance between a standardized row and its reconstruction.
    pub fn error(&self, row: &[f64]) -> f64 {
        let z = self.standardize(row);
        let mut residual = z.clone();
        for c in &self.components {
            let t: f64 = c.iter().zip(&z).map(|(a, b)| a * b).sum();
            for (r, a) in residual.iter_mut().zip(c) {
                *r -= t * a;
            }
        }
        residual.iter().map(|r| r * r).sum::<f64>().sqrt()
    }

    /// Upper alert bound for the mean error of `n` live records: reference mean plus three
    /// standard errors.
    pub fn threshold(&self, n: usize) -> f64 {
        self.error_mean + 3.0 * self.error_std / (n.max(1) as f64).sqrt()
    }
}

/// Eigenvalues and eigenvectors (as columns) of a symmetric matrix, by cyclic Jacobi rotations.
fn symmetric_eigen(mut a: Vec<Vec<f64>>) -> (Vec<f64>, Vec<Vec<f64>>) {
    let d = a.len();
    let mut v = vec![vec![0.0; d]; d];
    for (i, row) in v.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..d).flat_map(|p| ((p + 1)..d).map(move |q| (p, q))).map(|(p, q)| a[p][q] * a[p][q]).sum();
        if off < 1e-22 {
            break;
        }
        for p in 0..d {
            for q in (p + 1)..d {
                if a[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k][p], a[k][q]);
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p][k], a[q][k]);
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for row in v.iter_mut() {
                    let (vkp, vkq) = (row[p], row[q]);
                    row[p] = c * vkp - s * vkq;
                    row[q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i][i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(rng: &mut fastrand::Rng) -> f64 {
        // Box-Muller.
        let (u, v) = (rng.f64().max(1e-300), rng.f64());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    fn correlated(n: usize, rho: f64, seed: u64) -> Vec<Vec<f64>> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..n)
            .map(|_| {
                let a = normal(&mut rng);
                let b = rho * a + (1.0 - rho * rho).sqrt() * normal(&mut rng);
                vec![a, b, normal(&mut rng)]
            })
            .collect()
    }

    #[test]
    fn eigen_of_a_known_matrix() {
        let (vals, vecs) = symmetric_eigen(vec![vec![2.0, 1.0], vec![1.0, 2.0]]);
        let mut sorted = vals.clone();
        sorted.sort_by(f64::total_cmp);
        assert!((sorted[0] - 1.0).abs() < 1e-12 && (sorted[1] - 3.0).abs() < 1e-12);
        let i = if vals[0] > vals[1] { 0 } else { 1 };
        assert!((vecs[0][i].abs() - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12);
    }

    #[test]
    fn correlation_flip_raises_error_that_marginals_do_not_show() {
        let reference = correlated(4000, 0.9, 1);
        let pca = Pca::fit(&reference, 0.65).unwrap();
        let same = correlated(1000, 0.9, 2);
        let flipped = correlated(1000, -0.9, 3);
        let mean = |rows: &[Vec<f64>]| rows.iter().map(|r| pca.error(r)).sum::<f64>() / rows.len() as f64;
        assert!(mean(&same) < pca.threshold(1000), "{} vs {}", mean(&same), pca.threshold(1000));
        assert!(mean(&flipped) > pca.threshold(1000) * 1.5, "{} vs {}", mean(&flipped), pca.threshold(1000));
    }

    #[test]
    fn degenerate_inputs_give_none() {
        assert!(Pca::fit(&[], 0.65).is_none());
        assert!(Pca::fit(&vec![vec![1.0]; 100], 0.65).is_none());
        assert!(Pca::fit(&vec![vec![1.0, 1.0]; 100], 0.65).is_none());
    }
}
