//! Black-box explanations of one prediction by calling the model: Kernel SHAP computed the way `shap` 0.51.0's
//! `KernelExplainer` computes it for a single output, and LIME's tabular linear surrogate (lime 0.2.0.1).
//!
//! The model is only ever called, in batches of rows ([`Model`]), never inspected; each call is meant to become one
//! shadow V2 request. Sources this module re-expresses (algorithms, not code):
//! - [`kernel_shap`]: `Kernel.__init__`, `Kernel.explain`, `varying_groups`, `addsample`, `run` and `solve` in
//!   shap/explainers/_kernel.py (identity link, one output), and `shap.sample` (shap/utils/_general.py) for
//!   [`KernelShapOptions::max_background`];
//! - [`lime`]: `LimeTabularExplainer.explain_instance` and `__data_inverse` (lime/lime_tabular.py) with
//!   `discretize_continuous=False, sample_around_instance=True`, and `LimeBase.explain_instance_with_data`
//!   (lime/lime_base.py) with its default `Ridge(alpha=1)` surrogate and `score` (scikit-learn's weighted R²).
//!
//! What is matched and what is not is listed on each function. Randomness (coalition sampling, background
//! down-sampling, LIME's neighbourhood) comes from a seeded `fastrand` generator, so results are reproducible for a
//! seed but are not numpy's draws; with every coalition enumerated Kernel SHAP draws nothing and equals shap's
//! values to rounding (tests/shap.rs checks 1e-8 against shap itself).
//!
//! Every function is total: no input panics; bad input, a failing model, a wrong number of outputs or a non-finite
//! output is an [`ExplainError`]. Sizes are capped ([`MAX_FEATURES`], [`MAX_SAMPLES`], [`MAX_CELLS`]) so memory is
//! bounded whatever the options say; rows are generated one batch at a time, never all at once.

use serde::Serialize;
use std::collections::HashMap;
use thiserror::Error;

/// A black-box model scored in batches: `rows` is row-major, `rows.len() / width` rows of `width` features; the
/// answer is one output per row (e.g. P(class 1)). An `Err` (the model failed) aborts the explanation.
pub trait Model {
    fn predict(&mut self, rows: &[f64], width: usize) -> Result<Vec<f64>, String>;
}

impl<F> Model for F
where
    F: FnMut(&[f64], usize) -> Result<Vec<f64>, String>,
{
    fn predict(&mut self, rows: &[f64], width: usize) -> Result<Vec<f64>, String> {
        self(rows, width)
    }
}

/// Most features an explanation accepts (the linear algebra is dense, O(M³)).
pub const MAX_FEATURES: usize = 1024;
/// Most coalitions (Kernel SHAP) or perturbed samples (LIME) one explanation may use.
pub const MAX_SAMPLES: usize = 1 << 20;
/// Most `f64`/`bool` cells any one buffer may hold: samples × features, and batch rows × width (the batch size is
/// lowered to fit).
pub const MAX_CELLS: usize = 1 << 25;

/// Why an explanation could not be computed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ExplainError {
    #[error("the background has no rows")]
    EmptyBackground,
    #[error("width must be between 1 and {MAX_FEATURES} features, got {0}")]
    BadWidth(usize),
    #[error("{what} has {len} values, which is not {expected}")]
    WidthMismatch { what: &'static str, len: usize, expected: String },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("model call {call} failed: {message}")]
    Model { call: usize, message: String },
    #[error("model call {call} returned {got} outputs for {expected} rows")]
    OutputLength { call: usize, expected: usize, got: usize },
    #[error("model call {call} returned a non-finite output ({value}) for row {row} of the batch")]
    NonFiniteOutput { call: usize, row: usize, value: f64 },
    /// Finite outputs whose sums overflowed (magnitudes near f64::MAX).
    #[error("the explanation overflowed: {0}")]
    Overflow(String),
}

/// How the final least-squares system was solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Solver {
    /// No regression was needed (Kernel SHAP with at most one varying feature).
    None,
    /// Normal equations by Cholesky (shap: `np.linalg.solve`; scikit-learn Ridge: the 'cholesky' solver).
    Cholesky,
    /// The normal matrix was singular or nearly so (a Cholesky pivot below 1e-10 × its largest diagonal): the
    /// minimum-norm least-squares solution by a one-sided Jacobi SVD, singular values below
    /// `eps · max(rows, cols) · σ_max` dropped (shap's fallback: `np.linalg.lstsq(rcond=None)`).
    LeastSquares,
}

// ---------------------------------------------------------------------------------------------------------------
// Kernel SHAP
// ---------------------------------------------------------------------------------------------------------------

/// Options of [`kernel_shap`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelShapOptions {
    /// Coalitions to evaluate; `None` = shap's `"auto"`, 2·M + 2048 with M the number of varying features. Capped
    /// at 2^M − 2 (every coalition: exact Shapley values), as shap does; must be ≥ 1 and ≤ [`MAX_SAMPLES`].
    pub nsamples: Option<usize>,
    /// Seeds coalition sampling and background down-sampling.
    pub seed: u64,
    /// A larger background is down-sampled to this many rows, without replacement (as `shap.sample(data, K)`;
    /// the rows chosen differ from sklearn's shuffle, and keep their original order). Default 100, the size above
    /// which shap warns. Must be ≥ 1.
    pub max_background: usize,
    /// Most rows per model call (one V2 request). Must be ≥ 1; lowered if rows × width would exceed [`MAX_CELLS`].
    pub max_batch_rows: usize,
}

impl Default for KernelShapOptions {
    fn default() -> Self {
        KernelShapOptions { nsamples: None, seed: 0, max_background: 100, max_batch_rows: 4096 }
    }
}

/// A Kernel SHAP explanation of one prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// shap's `expected_value`: the mean model output over the (down-sampled) background.
    pub base_value: f64,
    /// One SHAP value per feature; `Σ values = prediction − base_value` (to the 1e-10 clean-up below).
    pub values: Vec<f64>,
    /// The model's output for x.
    pub prediction: f64,
    /// Model calls made (batches).
    pub model_calls: usize,
    /// Rows scored over all calls: background + 1 + coalitions × background.
    pub rows_scored: usize,
    /// Distinct coalitions evaluated.
    pub coalitions: usize,
    /// Features that differ from the background (shap's `varyingInds`); the others get exactly 0.
    pub varying: usize,
    /// Every coalition was enumerated (or M ≤ 1): the values are exact Shapley values of the background game.
    pub exact: bool,
    pub solver: Solver,
}

/// Kernel SHAP of `model` at `x` against `background` (row-major, rows × `width`), for one output and the identity
/// link, as shap 0.51.0 `KernelExplainer(model, background).shap_values(x, nsamples=…, l1_reg=False)` computes it:
///
/// 1. base value = mean model output over the background (uniform weights);
/// 2. varying features: j varies unless x_j is `np.allclose` to every background value of column j
///    (|x_j − b| ≤ 1e-8 + 1e-5·|b|, NaN equal to NaN, equal infinities equal); non-varying features get 0 and M
///    counts the varying ones. M = 0: all zeros; M = 1: that feature gets f(x) − base, as shap;
/// 3. coalitions as shap: Shapley kernel weight per subset size s, (M−1)/(s(M−s)), doubled for sizes paired with
///    their complement; sizes from the outside in are enumerated completely (each subset and its complement) while
///    the remaining budget covers them, the rest is sampled: a size drawn by the renormalised remaining weights,
///    a uniformly random subset of it plus its complement, a repeat adding 1 to its earlier weight (at most
///    4 × remaining draws), and the sampled weights rescaled to the kernel weight left;
/// 4. for each coalition z the model scores every background row with the features of z taken from x; the mean is
///    E[f | z];
/// 5. constrained weighted least squares: the last varying feature is eliminated with Σφ = f(x) − base and the
///    normal equations solved ([`Solver`]); |φ_j| < 1e-10 is set to 0 (shap's clean-up).
///
/// Not matched: numpy's random draws (another generator); shap's default `l1_reg="num_features(10)"` LARS feature
/// selection, which for M ≤ 10 keeps every feature (the same values up to rounding, checked by
/// tests/fixtures/gen_shap.py) and for M > 10 keeps only 10 — here every varying feature is always kept (shap's
/// `l1_reg=False`); feature groups, links other than identity, several outputs, sparse data, background weights.
///
/// Model calls stream background, x and then coalition rows in batches of `max_batch_rows`: for M = 8 varying
/// features, 50 background rows and the default options, 254 coalitions (all) → 12,751 rows in 4 calls.
/// Inputs are passed to the model as they are (NaN and infinities included); any model failure, wrong output
/// count or non-finite output is an error, and so is a result that overflowed ([`ExplainError::Overflow`]).
pub fn kernel_shap<M: Model + ?Sized>(
    model: &mut M,
    x: &[f64],
    background: &[f64],
    width: usize,
    opts: KernelShapOptions,
) -> Result<Explanation, ExplainError> {
    check_width(width)?;
    if x.len() != width {
        return Err(ExplainError::WidthMismatch { what: "x", len: x.len(), expected: format!("width {width}") });
    }
    if background.is_empty() {
        return Err(ExplainError::EmptyBackground);
    }
    if background.len() % width != 0 {
        return Err(ExplainError::WidthMismatch {
            what: "background",
            len: background.len(),
            expected: format!("a multiple of width {width}"),
        });
    }
    if opts.max_background == 0 {
        return Err(ExplainError::InvalidOption("max_background must be at least 1".into()));
    }
    if opts.max_batch_rows == 0 {
        return Err(ExplainError::InvalidOption("max_batch_rows must be at least 1".into()));
    }
    if opts.nsamples == Some(0) {
        return Err(ExplainError::InvalidOption("nsamples must be at least 1".into()));
    }
    let mut rng = fastrand::Rng::with_seed(opts.seed);

    // The background, down-sampled like shap.sample when larger than max_background.
    let n_all = background.len() / width;
    let bg: Vec<f64> = if n_all > opts.max_background {
        let mut idx = sample_without_replacement(&mut rng, n_all, opts.max_background);
        idx.sort_unstable();
        idx.iter().flat_map(|&r| background[r * width..(r + 1) * width].iter().copied()).collect()
    } else {
        background.to_vec()
    };
    let n = bg.len() / width;

    let varying: Vec<usize> =
        (0..width).filter(|&j| bg.chunks_exact(width).any(|row| !all_close(x[j], row[j]))).collect();
    let m = varying.len();

    let plan = if m >= 2 {
        let max_samples = if m <= 30 { (1usize << m) - 2 } else { 1 << 30 };
        let nsamples = opts.nsamples.unwrap_or(2 * m + 2048).min(max_samples);
        if nsamples > MAX_SAMPLES || nsamples.saturating_mul(m) > MAX_CELLS {
            return Err(ExplainError::TooLarge(format!(
                "{nsamples} coalitions of {m} features (at most {MAX_SAMPLES} coalitions and {MAX_CELLS} cells)"
            )));
        }
        plan_coalitions(m, nsamples, &mut rng)
    } else {
        Coalitions { m, masks: Vec::new(), weights: Vec::new(), enumerated: true }
    };
    let k = plan.weights.len();
    let total_rows = k
        .checked_mul(n)
        .and_then(|r| r.checked_add(n + 1))
        .ok_or_else(|| ExplainError::TooLarge(format!("{k} coalitions × {n} background rows")))?;

    // Rows: background 0..n, then x, then coalition c over background row b at n + 1 + c·n + b.
    let mut fnull_sum = 0.0;
    let mut fx = 0.0;
    let mut ey_sum = vec![0.0; k];
    let mut scorer = Scorer::new(model, width, opts.max_batch_rows);
    scorer.score(
        total_rows,
        |r, out| {
            if r < n {
                out.copy_from_slice(&bg[r * width..(r + 1) * width]);
            } else if r == n {
                out.copy_from_slice(x);
            } else {
                let (c, b) = ((r - n - 1) / n, (r - n - 1) % n);
                out.copy_from_slice(&bg[b * width..(b + 1) * width]);
                for (&on, &j) in plan.mask(c).iter().zip(&varying) {
                    if on {
                        out[j] = x[j];
                    }
                }
            }
        },
        |r, y| {
            if r < n {
                fnull_sum += y;
            } else if r == n {
                fx = y;
            } else {
                ey_sum[(r - n - 1) / n] += y;
            }
        },
    )?;
    let (model_calls, rows_scored) = (scorer.calls, scorer.rows);

    let fnull = fnull_sum / n as f64;
    let diff = fx - fnull;
    let mut values = vec![0.0; width];
    let solver = match m {
        0 => Solver::None,
        1 => {
            values[varying[0]] = diff;
            Solver::None
        }
        _ => {
            let ey_adj: Vec<f64> = ey_sum.iter().map(|s| s / n as f64 - fnull).collect();
            let (phi, solver) = solve_shap(&plan, &ey_adj, diff);
            for (&j, p) in varying.iter().zip(phi) {
                values[j] = if p.abs() < 1e-10 { 0.0 } else { p };
            }
            solver
        }
    };
    if !(fnull.is_finite() && fx.is_finite() && values.iter().all(|v| v.is_finite())) {
        return Err(ExplainError::Overflow(format!("base value {fnull}, prediction {fx}, values {values:?}")));
    }
    Ok(Explanation {
        base_value: fnull,
        values,
        prediction: fx,
        model_calls,
        rows_scored,
        coalitions: k,
        varying: m,
        exact: plan.enumerated,
        solver,
    })
}

/// `np.allclose(a, b, equal_nan=True)` for two scalars: |a − b| ≤ 1e-8 + 1e-5·|b|, NaN equals NaN, an infinity
/// equals only itself.
fn all_close(a: f64, b: f64) -> bool {
    if a == b || (a.is_nan() && b.is_nan()) {
        return true;
    }
    if !a.is_finite() || !b.is_finite() {
        return false;
    }
    (a - b).abs() <= 1e-8 + 1e-5 * b.abs()
}

/// Coalitions over the M varying features: masks row-major (coalitions × M) and their kernel weights.
struct Coalitions {
    m: usize,
    masks: Vec<bool>,
    weights: Vec<f64>,
    enumerated: bool,
}

impl Coalitions {
    fn mask(&self, c: usize) -> &[bool] {
        &self.masks[c * self.m..(c + 1) * self.m]
    }

    fn push(&mut self, mask: &[bool], w: f64) {
        self.masks.extend_from_slice(mask);
        self.weights.push(w);
    }
}

/// C(n, k) in floating point (scipy.special.binom for integer arguments; exact while it fits 2^53).
fn binom(n: usize, k: usize) -> f64 {
    let k = k.min(n - k);
    (1..=k).fold(1.0, |acc, i| acc * (n - k + i) as f64 / i as f64)
}

/// shap's coalition plan (the part of `Kernel.explain` between `allocate()` and `run()`), for M ≥ 2 varying
/// features and 1 ≤ nsamples ≤ 2^M − 2.
fn plan_coalitions(m: usize, nsamples: usize, rng: &mut fastrand::Rng) -> Coalitions {
    let num_subset_sizes = m / 2; // ceil((M − 1) / 2)
    let num_paired = (m - 1) / 2; // floor((M − 1) / 2)
    let mut weight_vector: Vec<f64> =
        (1..=num_subset_sizes).map(|i| (m as f64 - 1.0) / ((i * (m - i)) as f64)).collect();
    for w in &mut weight_vector[..num_paired] {
        *w *= 2.0;
    }
    let total: f64 = weight_vector.iter().sum();
    for w in &mut weight_vector {
        *w /= total;
    }

    let mut plan = Coalitions {
        m,
        masks: Vec::with_capacity(nsamples * m),
        weights: Vec::with_capacity(nsamples),
        enumerated: false,
    };
    let mut mask = vec![false; m];

    // Enumerate whole subset sizes from the outside in while the budget covers them.
    let mut num_full = 0;
    let mut samples_left = nsamples as f64;
    let mut remaining = weight_vector.clone();
    for size in 1..=num_subset_sizes {
        let paired = size <= num_paired;
        let nsubsets = binom(m, size) * if paired { 2.0 } else { 1.0 };
        if samples_left * remaining[size - 1] / nsubsets < 1.0 - 1e-8 {
            break;
        }
        num_full += 1;
        samples_left -= nsubsets;
        if remaining[size - 1] < 1.0 {
            let scale = 1.0 - remaining[size - 1];
            for w in &mut remaining {
                *w /= scale;
            }
        }
        let mut w = weight_vector[size - 1] / binom(m, size);
        if paired {
            w /= 2.0;
        }
        for_each_combination(m, size, |inds| {
            mask.fill(false);
            for &i in inds {
                mask[i] = true;
            }
            plan.push(&mask, w);
            if paired {
                mask.iter_mut().for_each(|b| *b = !*b);
                plan.push(&mask, w);
            }
        });
    }

    // Sample from what is left of the subset space.
    let nfixed = plan.weights.len();
    let mut left = nsamples.saturating_sub(nfixed);
    if num_full == num_subset_sizes {
        plan.enumerated = true;
        return plan;
    }
    let mut draw_weights: Vec<f64> = weight_vector.clone();
    for w in &mut draw_weights[..num_paired] {
        *w /= 2.0; // two samples are drawn for each paired size
    }
    let draw_weights = &draw_weights[num_full..];
    let draw_total: f64 = draw_weights.iter().sum();
    let mut cdf = Vec::with_capacity(draw_weights.len());
    let mut acc = 0.0;
    for w in draw_weights {
        acc += w / draw_total;
        cdf.push(acc);
    }
    let mut seen: HashMap<Vec<u64>, usize> = HashMap::new();
    let mut perm: Vec<usize> = (0..m).collect();
    let mut draws = left.saturating_mul(4);
    while left > 0 && draws > 0 {
        draws -= 1;
        let u = rng.f64();
        let ind = cdf.iter().position(|&c| u < c).unwrap_or(cdf.len() - 1);
        let size = ind + num_full + 1;
        // The first `size` entries of a uniform random permutation (partial Fisher–Yates).
        for i in 0..size {
            let j = rng.usize(i..m);
            perm.swap(i, j);
        }
        mask.fill(false);
        for &i in &perm[..size] {
            mask[i] = true;
        }
        let key = bits(&mask);
        let paired = size <= num_paired;
        match seen.get(&key) {
            None => {
                seen.insert(key, plan.weights.len());
                left -= 1;
                plan.push(&mask, 1.0);
                if left > 0 && paired {
                    mask.iter_mut().for_each(|b| *b = !*b);
                    left -= 1;
                    plan.push(&mask, 1.0);
                }
            }
            Some(&at) => {
                plan.weights[at] += 1.0;
                // The complement was pushed right after the first draw (always, when it was drawn with
                // budget left); shap adds to index + 1 the same way.
                if left > 0 && paired {
                    if let Some(w) = plan.weights.get_mut(at + 1) {
                        *w += 1.0;
                    }
                }
            }
        }
    }
    let weight_left: f64 = weight_vector[num_full..].iter().sum();
    let sampled: f64 = plan.weights[nfixed..].iter().sum();
    if sampled > 0.0 {
        for w in &mut plan.weights[nfixed..] {
            *w *= weight_left / sampled;
        }
    }
    plan
}

/// Calls `f` with every k-subset of 0..n in lexicographic order (as `itertools.combinations(range(n), k)`).
fn for_each_combination(n: usize, k: usize, mut f: impl FnMut(&[usize])) {
    if k > n {
        return;
    }
    let mut idx: Vec<usize> = (0..k).collect();
    loop {
        f(&idx);
        let Some(i) = (0..k).rev().find(|&i| idx[i] != i + n - k) else { return };
        idx[i] += 1;
        for j in i + 1..k {
            idx[j] = idx[j - 1] + 1;
        }
    }
}

/// A mask as a bit set (the key for "seen before").
fn bits(mask: &[bool]) -> Vec<u64> {
    let mut out = vec![0u64; mask.len().div_ceil(64)];
    for (i, _) in mask.iter().enumerate().filter(|(_, &b)| b) {
        out[i / 64] |= 1 << (i % 64);
    }
    out
}

/// shap's `Kernel.solve` without feature selection: eliminate the last feature with the efficiency constraint,
/// then weighted least squares of `ey_adj − z_last·diff` on `z_j − z_last` (j < M − 1). Returns φ over the
/// varying features.
fn solve_shap(plan: &Coalitions, ey_adj: &[f64], diff: f64) -> (Vec<f64>, Solver) {
    let m = plan.m;
    let p = m - 1;
    let rows = plan.weights.len();
    let mut design = vec![0.0; rows * p];
    let mut target = vec![0.0; rows];
    for c in 0..rows {
        let mask = plan.mask(c);
        let last = f64::from(u8::from(mask[p]));
        for (d, &z) in design[c * p..(c + 1) * p].iter_mut().zip(mask) {
            *d = f64::from(u8::from(z)) - last;
        }
        target[c] = ey_adj[c] - last * diff;
    }
    let (w, solver) = weighted_least_squares(&design, &target, &plan.weights, p, 0.0);
    let mut phi = w;
    let sum: f64 = phi.iter().sum();
    phi.push(diff - sum);
    (phi, solver)
}

// ---------------------------------------------------------------------------------------------------------------
// LIME
// ---------------------------------------------------------------------------------------------------------------

/// Options of [`lime`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimeOptions {
    /// Perturbed samples, the first being x itself (lime's `num_samples`, default 5000). 1 ..= [`MAX_SAMPLES`].
    pub num_samples: usize,
    /// Kernel width σ; `None` = lime's default 0.75·√M. Finite and > 0.
    pub kernel_width: Option<f64>,
    /// Ridge penalty (lime's surrogate is `Ridge(alpha=1)`). Finite and ≥ 0; 0 is ordinary weighted least squares.
    pub alpha: f64,
    /// Seeds the Gaussian perturbations.
    pub seed: u64,
    /// Most rows per model call. Must be ≥ 1; lowered if rows × width would exceed [`MAX_CELLS`].
    pub max_batch_rows: usize,
}

impl Default for LimeOptions {
    fn default() -> Self {
        LimeOptions { num_samples: 5000, kernel_width: None, alpha: 1.0, seed: 0, max_batch_rows: 4096 }
    }
}

/// A LIME explanation of one prediction: the weighted linear surrogate in standardized coordinates
/// z_j = (x'_j − x_j) / scale_j around x.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimeExplanation {
    /// One coefficient per feature, per standard deviation of the feature (lime's `coef_`): for a linear model
    /// w·x + b it approaches w_j·scale_j (shrunk by the ridge penalty).
    pub coefficients: Vec<f64>,
    /// The surrogate's value at z = 0, i.e. at x. lime centres on the training mean instead, so its `intercept_`
    /// differs; its `local_pred` is this value.
    pub intercept: f64,
    /// The surrogate's weighted R² on the neighbourhood (lime's `score`).
    pub score: f64,
    /// The model's output for x (the first sample).
    pub prediction: f64,
    pub model_calls: usize,
    pub rows_scored: usize,
    pub solver: Solver,
}

/// LIME for tabular data with `discretize_continuous=False` and `sample_around_instance=True`, i.e. lime 0.2.0.1
/// `LimeTabularExplainer(train, mode='regression', discretize_continuous=False, sample_around_instance=True,
/// feature_selection='none').explain_instance(x, f, num_samples=…)` with `scale` = the training std:
///
/// - sample 0 is x; samples 1.. are x + scale ∘ ε, ε ~ N(0, I) (`__data_inverse`); a scale below 10·ε_machine is
///   taken as 1, as scikit-learn's StandardScaler does for a constant feature (so such a feature is perturbed by
///   ±1 unit, as in lime);
/// - standardized coordinates z = (x' − x) / scale, distance d = ‖z‖ (lime computes d on (x' − mean) / scale
///   from the first row: the same);
/// - weight sqrt(exp(−d²/σ²)) = exp(−d²/(2σ²)), σ = 0.75·√M by default: lime's default `kernel` takes the square
///   root of exp(−d²/σ²), and so does this;
/// - `Ridge(alpha, fit_intercept=True)` of the outputs on z with those sample weights (weighted centering, then
///   (ZᵀWZ + αI)β = ZᵀWy), and the weighted R² of scikit-learn's `score` (1 when the outputs are constant and fitted
///   exactly, 0 when constant and not).
///
/// Not followed: lime's default `discretize_continuous=True` (quartile bins) — continuous features are used as
/// they are; lime's default `sample_around_instance=False` (sampling around the training mean) — the neighbourhood
/// is around x; feature selection (lime's 'auto' keeps at most `num_features=10` features; here every feature is
/// kept, as `feature_selection='none'`, which is what 'auto' gives for M ≤ 10); categorical features; numpy's
/// random draws. x must be finite and `scale` finite and ≥ 0.
pub fn lime<M: Model + ?Sized>(
    model: &mut M,
    x: &[f64],
    scale: &[f64],
    opts: LimeOptions,
) -> Result<LimeExplanation, ExplainError> {
    let width = x.len();
    check_width(width)?;
    if scale.len() != width {
        return Err(ExplainError::WidthMismatch {
            what: "scale",
            len: scale.len(),
            expected: format!("width {width} (the length of x)"),
        });
    }
    if let Some(j) = x.iter().position(|v| !v.is_finite()) {
        return Err(ExplainError::InvalidInput(format!("x[{j}] = {} is not finite", x[j])));
    }
    if let Some(j) = scale.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
        return Err(ExplainError::InvalidInput(format!("scale[{j}] = {} is not finite and >= 0", scale[j])));
    }
    if opts.num_samples == 0 {
        return Err(ExplainError::InvalidOption("num_samples must be at least 1".into()));
    }
    if opts.max_batch_rows == 0 {
        return Err(ExplainError::InvalidOption("max_batch_rows must be at least 1".into()));
    }
    if !(opts.alpha.is_finite() && opts.alpha >= 0.0) {
        return Err(ExplainError::InvalidOption(format!("alpha = {} must be finite and >= 0", opts.alpha)));
    }
    let kernel_width = opts.kernel_width.unwrap_or(0.75 * (width as f64).sqrt());
    if !(kernel_width.is_finite() && kernel_width > 0.0) {
        return Err(ExplainError::InvalidOption(format!("kernel_width = {kernel_width} must be finite and > 0")));
    }
    let ns = opts.num_samples;
    if ns > MAX_SAMPLES || ns.saturating_mul(width) > MAX_CELLS {
        return Err(ExplainError::TooLarge(format!(
            "{ns} samples of {width} features (at most {MAX_SAMPLES} samples and {MAX_CELLS} cells)"
        )));
    }
    let scale: Vec<f64> = scale.iter().map(|&s| if s < 10.0 * f64::EPSILON { 1.0 } else { s }).collect();

    let mut rng = fastrand::Rng::with_seed(opts.seed);
    let mut gauss = Gaussian::default();
    let mut z = vec![0.0; ns * width]; // row 0 stays 0: x itself
    for v in z.iter_mut().skip(width) {
        *v = gauss.sample(&mut rng);
    }
    let weights: Vec<f64> = z
        .chunks_exact(width)
        .map(|row| {
            let d2: f64 = row.iter().map(|v| v * v).sum();
            (-d2 / (kernel_width * kernel_width)).exp().sqrt()
        })
        .collect();

    let mut y = vec![0.0; ns];
    let mut scorer = Scorer::new(model, width, opts.max_batch_rows);
    scorer.score(
        ns,
        |r, out| {
            for (((o, &xj), &sj), &zj) in out.iter_mut().zip(x).zip(&scale).zip(&z[r * width..(r + 1) * width]) {
                *o = if r == 0 { xj } else { xj + sj * zj };
            }
        },
        |r, v| y[r] = v,
    )?;
    let (model_calls, rows_scored) = (scorer.calls, scorer.rows);

    let fit = ridge(&z, &y, &weights, width, opts.alpha);
    if !(fit.intercept.is_finite() && fit.score.is_finite() && fit.coef.iter().all(|v| v.is_finite())) {
        return Err(ExplainError::Overflow(format!(
            "intercept {}, score {}, coefficients {:?}",
            fit.intercept, fit.score, fit.coef
        )));
    }
    Ok(LimeExplanation {
        intercept: fit.intercept,
        score: fit.score,
        coefficients: fit.coef,
        prediction: y[0],
        model_calls,
        rows_scored,
        solver: fit.solver,
    })
}

/// A standard normal generator (Box–Muller, both values used).
#[derive(Default)]
struct Gaussian {
    spare: Option<f64>,
}

impl Gaussian {
    fn sample(&mut self, rng: &mut fastrand::Rng) -> f64 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        let u1 = 1.0 - rng.f64(); // (0, 1]
        let u2 = rng.f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        self.spare = Some(r * t.sin());
        r * t.cos()
    }
}

struct RidgeFit {
    coef: Vec<f64>,
    intercept: f64,
    score: f64,
    solver: Solver,
}

/// scikit-learn `Ridge(alpha, fit_intercept=True).fit(x, y, sample_weight=w)` then `.score(x, y, sample_weight=w)`
/// (`r2_score` with weights, `force_finite=True`). `x` row-major, rows × p; weights ≥ 0 with a positive sum.
fn ridge(x: &[f64], y: &[f64], w: &[f64], p: usize, alpha: f64) -> RidgeFit {
    let rows = y.len();
    let wsum: f64 = w.iter().sum();
    let mut xmean = vec![0.0; p];
    for (row, &wi) in x.chunks_exact(p).zip(w) {
        for (m, &v) in xmean.iter_mut().zip(row) {
            *m += wi * v;
        }
    }
    xmean.iter_mut().for_each(|m| *m /= wsum);
    let ymean = y.iter().zip(w).map(|(v, wi)| wi * v).sum::<f64>() / wsum;
    let mut xc = Vec::with_capacity(rows * p);
    for row in x.chunks_exact(p) {
        xc.extend(row.iter().zip(&xmean).map(|(v, m)| v - m));
    }
    let yc: Vec<f64> = y.iter().map(|v| v - ymean).collect();
    let (coef, solver) = weighted_least_squares(&xc, &yc, w, p, alpha);
    let intercept = ymean - coef.iter().zip(&xmean).map(|(b, m)| b * m).sum::<f64>();

    let (mut ss_res, mut ss_tot) = (0.0, 0.0);
    for ((row, &yi), &wi) in x.chunks_exact(p).zip(y).zip(w) {
        let pred = intercept + row.iter().zip(&coef).map(|(v, b)| v * b).sum::<f64>();
        ss_res += wi * (yi - pred) * (yi - pred);
        ss_tot += wi * (yi - ymean) * (yi - ymean);
    }
    let score = if ss_tot != 0.0 {
        1.0 - ss_res / ss_tot
    } else if ss_res == 0.0 {
        1.0
    } else {
        0.0
    };
    RidgeFit { coef, intercept, score, solver }
}

// ---------------------------------------------------------------------------------------------------------------
// Batched model calls
// ---------------------------------------------------------------------------------------------------------------

/// Streams generated rows through the model in batches and checks what comes back.
struct Scorer<'a, M: Model + ?Sized> {
    model: &'a mut M,
    width: usize,
    batch_rows: usize,
    calls: usize,
    rows: usize,
}

impl<'a, M: Model + ?Sized> Scorer<'a, M> {
    fn new(model: &'a mut M, width: usize, max_batch_rows: usize) -> Self {
        let batch_rows = max_batch_rows.min((MAX_CELLS / width).max(1)).max(1);
        Scorer { model, width, batch_rows, calls: 0, rows: 0 }
    }

    /// Scores rows `0..total`: `fill(r, row)` writes row r, `sink(r, y)` receives its output.
    fn score(
        &mut self,
        total: usize,
        mut fill: impl FnMut(usize, &mut [f64]),
        mut sink: impl FnMut(usize, f64),
    ) -> Result<(), ExplainError> {
        let width = self.width;
        let mut buf = Vec::new();
        let mut start = 0;
        while start < total {
            let len = self.batch_rows.min(total - start);
            buf.clear();
            buf.resize(len * width, 0.0);
            for (i, row) in buf.chunks_exact_mut(width).enumerate() {
                fill(start + i, row);
            }
            let call = self.calls;
            self.calls += 1;
            self.rows += len;
            let out = self.model.predict(&buf, width).map_err(|message| ExplainError::Model { call, message })?;
            if out.len() != len {
                return Err(ExplainError::OutputLength { call, expected: len, got: out.len() });
            }
            if let Some((row, &value)) = out.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(ExplainError::NonFiniteOutput { call, row, value });
            }
            for (i, &v) in out.iter().enumerate() {
                sink(start + i, v);
            }
            start += len;
        }
        Ok(())
    }
}

fn check_width(width: usize) -> Result<(), ExplainError> {
    if width == 0 || width > MAX_FEATURES {
        return Err(ExplainError::BadWidth(width));
    }
    Ok(())
}

/// Without replacement: `k` distinct indices of 0..n (k ≤ n), by a partial Fisher–Yates shuffle.
fn sample_without_replacement(rng: &mut fastrand::Rng, n: usize, k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..k.min(n) {
        let j = rng.usize(i..n);
        idx.swap(i, j);
    }
    idx.truncate(k);
    idx
}

// ---------------------------------------------------------------------------------------------------------------
// Small dense linear algebra
// ---------------------------------------------------------------------------------------------------------------

/// Relative Cholesky pivot below which the normal matrix counts as singular (condition number beyond ~1e10).
const PIVOT_RTOL: f64 = 1e-10;

/// argmin_β Σ_i w_i (y_i − x_i·β)² + α‖β‖², `x` row-major rows × p, `w` ≥ 0. Normal equations by Cholesky; when
/// singular (or nearly), the minimum-norm least-squares solution of the √w-scaled system (with α > 0 augmented by
/// √α·I rows) through a one-sided Jacobi SVD.
fn weighted_least_squares(x: &[f64], y: &[f64], w: &[f64], p: usize, alpha: f64) -> (Vec<f64>, Solver) {
    if p == 0 {
        return (Vec::new(), Solver::None);
    }
    let mut a = vec![0.0; p * p];
    let mut b = vec![0.0; p];
    for ((row, &yi), &wi) in x.chunks_exact(p).zip(y).zip(w) {
        if wi == 0.0 {
            continue;
        }
        for (i, &ri) in row.iter().enumerate() {
            if ri == 0.0 {
                continue;
            }
            let wri = wi * ri;
            b[i] += wri * yi;
            for (aij, &rj) in a[i * p..i * p + i + 1].iter_mut().zip(row) {
                *aij += wri * rj;
            }
        }
    }
    for i in 0..p {
        a[i * p + i] += alpha;
        for j in 0..i {
            a[j * p + i] = a[i * p + j];
        }
    }
    if let Some(beta) = cholesky_solve(&a, p, &b) {
        return (beta, Solver::Cholesky);
    }
    let extra = if alpha > 0.0 { p } else { 0 };
    let rows = y.len() + extra;
    let mut sa = Vec::with_capacity(rows * p);
    let mut sb = Vec::with_capacity(rows);
    for ((row, &yi), &wi) in x.chunks_exact(p).zip(y).zip(w) {
        let s = wi.sqrt();
        sa.extend(row.iter().map(|v| s * v));
        sb.push(s * yi);
    }
    for i in 0..extra {
        sa.extend((0..p).map(|j| if i == j { alpha.sqrt() } else { 0.0 }));
        sb.push(0.0);
    }
    (lstsq(&sa, rows, p, &sb), Solver::LeastSquares)
}

/// Solves a·x = b for symmetric positive definite `a` (n × n, row-major) by Cholesky. `None` when a pivot is not
/// above [`PIVOT_RTOL`] × the largest diagonal entry, or anything is not finite.
fn cholesky_solve(a: &[f64], n: usize, b: &[f64]) -> Option<Vec<f64>> {
    let max_diag = (0..n).map(|i| a[i * n + i]).fold(0.0f64, f64::max);
    if !(max_diag > 0.0 && max_diag.is_finite()) {
        return None;
    }
    let tol = PIVOT_RTOL * max_diag;
    let mut l = vec![0.0; n * n];
    for j in 0..n {
        let d = a[j * n + j] - l[j * n..j * n + j].iter().map(|v| v * v).sum::<f64>();
        if d.is_nan() || d <= tol {
            return None;
        }
        let djj = d.sqrt();
        l[j * n + j] = djj;
        for i in j + 1..n {
            let dot: f64 = l[i * n..i * n + j].iter().zip(&l[j * n..j * n + j]).map(|(p, q)| p * q).sum();
            l[i * n + j] = (a[i * n + j] - dot) / djj;
        }
    }
    // L·u = b, then Lᵀ·x = u.
    let mut u = vec![0.0; n];
    for i in 0..n {
        let dot: f64 = l[i * n..i * n + i].iter().zip(&u).map(|(p, q)| p * q).sum();
        u[i] = (b[i] - dot) / l[i * n + i];
    }
    let mut out = vec![0.0; n];
    for i in (0..n).rev() {
        let dot: f64 = (i + 1..n).map(|k| l[k * n + i] * out[k]).sum();
        out[i] = (u[i] - dot) / l[i * n + i];
    }
    out.iter().all(|v| v.is_finite()).then_some(out)
}

/// Minimum-norm least squares argmin ‖a·x − b‖ (a: rows × n, row-major) by a one-sided Jacobi SVD (Hestenes):
/// columns are rotated until mutually orthogonal, so a·V = U·Σ; singular values at most
/// `eps · max(rows, n) · σ_max` are dropped (numpy.linalg.lstsq's `rcond=None`).
fn lstsq(a: &[f64], rows: usize, n: usize, b: &[f64]) -> Vec<f64> {
    // Column-major working copy of a, and V = I.
    let mut u = vec![0.0; rows * n];
    for (r, row) in a.chunks_exact(n).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            u[c * rows + r] = v;
        }
    }
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..60 {
        let mut rotated = false;
        for p in 0..n {
            for q in p + 1..n {
                let (cp, cq) = (&u[p * rows..(p + 1) * rows], &u[q * rows..(q + 1) * rows]);
                let alpha: f64 = cp.iter().map(|x| x * x).sum();
                let beta: f64 = cq.iter().map(|x| x * x).sum();
                let gamma: f64 = cp.iter().zip(cq).map(|(x, y)| x * y).sum();
                if gamma == 0.0 || gamma.abs() <= f64::EPSILON * (alpha * beta).sqrt() {
                    continue;
                }
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + zeta.hypot(1.0));
                if !t.is_finite() || t == 0.0 {
                    continue;
                }
                rotated = true;
                let c = 1.0 / t.hypot(1.0);
                let s = c * t;
                rotate(&mut u, rows, p, q, c, s);
                rotate(&mut v, n, p, q, c, s);
            }
        }
        if !rotated {
            break;
        }
    }
    let sigma: Vec<f64> =
        (0..n).map(|c| u[c * rows..(c + 1) * rows].iter().map(|x| x * x).sum::<f64>().sqrt()).collect();
    let smax = sigma.iter().copied().fold(0.0f64, f64::max);
    let cutoff = f64::EPSILON * rows.max(n) as f64 * smax;
    let mut out = vec![0.0; n];
    for (c, &s) in sigma.iter().enumerate() {
        if s.is_nan() || s <= cutoff {
            continue;
        }
        let ub: f64 = u[c * rows..(c + 1) * rows].iter().zip(b).map(|(x, y)| x * y).sum();
        let coef = ub / (s * s);
        for (o, &vk) in out.iter_mut().zip(&v[c * n..(c + 1) * n]) {
            *o += coef * vk;
        }
    }
    out
}

/// Rotates columns p and q (each `len` long, column-major storage) by (c, s): p ← c·p − s·q, q ← s·p + c·q.
fn rotate(m: &mut [f64], len: usize, p: usize, q: usize, c: f64, s: f64) {
    let (lo, hi) = m.split_at_mut(q * len);
    let cp = &mut lo[p * len..(p + 1) * len];
    let cq = &mut hi[..len];
    for (x, y) in cp.iter_mut().zip(cq.iter_mut()) {
        let (a, b) = (*x, *y);
        *x = c * a - s * b;
        *y = s * a + c * b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Closure = Box<dyn FnMut(&[f64], usize) -> Result<Vec<f64>, String>>;

    fn matrix(seed: u64, rows: usize, width: usize) -> Vec<f64> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..rows * width).map(|_| rng.f64() * 4.0 - 2.0).collect()
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn linear(w: Vec<f64>, b: f64) -> Closure {
        Box::new(move |rows: &[f64], width: usize| Ok(rows.chunks_exact(width).map(|r| dot(&w, r) + b).collect()))
    }

    /// A model with interactions and a saturating link, ignoring feature `skip`.
    fn nonlinear(skip: usize) -> Closure {
        Box::new(move |rows: &[f64], width: usize| {
            Ok(rows
                .chunks_exact(width)
                .map(|r| {
                    let mut s = 0.3;
                    for (j, &v) in r.iter().enumerate() {
                        if j != skip {
                            s += (j as f64 + 1.0) * 0.2 * v;
                        }
                    }
                    let inter = if width > 1 && skip > 1 { r[0] * r[1] } else { 0.0 };
                    1.0 / (1.0 + (-s).exp()) + 0.5 * inter
                })
                .collect())
        })
    }

    /// w_i (x_i − mean_bg_i): the exact Shapley values of a linear model against a background.
    fn linear_truth(w: &[f64], x: &[f64], bg: &[f64]) -> Vec<f64> {
        let width = w.len();
        let n = (bg.len() / width) as f64;
        (0..width).map(|j| w[j] * (x[j] - bg.chunks_exact(width).map(|r| r[j]).sum::<f64>() / n)).collect()
    }

    fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
    }

    fn efficiency_gap(e: &Explanation) -> f64 {
        (e.values.iter().sum::<f64>() - (e.prediction - e.base_value)).abs()
    }

    fn opts(nsamples: Option<usize>) -> KernelShapOptions {
        KernelShapOptions { nsamples, ..KernelShapOptions::default() }
    }

    #[test]
    fn linear_model_enumeration_is_exact() {
        for width in [2, 3, 6, 9] {
            let w: Vec<f64> = (0..width).map(|j| j as f64 * 0.7 - 1.3).collect();
            let bg = matrix(1, 20, width);
            let x = matrix(2, 1, width);
            let e = kernel_shap(&mut linear(w.clone(), 0.25), &x, &bg, width, opts(None)).unwrap();
            assert!(e.exact);
            assert_eq!(e.varying, width);
            assert_eq!(e.coalitions, (1 << width) - 2);
            assert!(max_abs_diff(&e.values, &linear_truth(&w, &x, &bg)) <= 1e-9, "{e:?}");
            let base = bg.chunks_exact(width).map(|r| dot(&w, r) + 0.25).sum::<f64>() / 20.0;
            assert!((e.base_value - base).abs() <= 1e-12);
            assert!((e.prediction - (dot(&w, &x) + 0.25)).abs() <= 1e-12);
            assert!(efficiency_gap(&e) <= 1e-9);
            assert_eq!(e.solver, Solver::Cholesky);
        }
    }

    #[test]
    fn linear_model_sampling_recovers_exact_values() {
        let width = 12; // 2^12 − 2 = 4094 coalitions > the default 2·12 + 2048: sampled
        let w: Vec<f64> = (0..width).map(|j| (j as f64 - 5.0) * 0.3).collect();
        let bg = matrix(3, 30, width);
        let x = matrix(4, 1, width);
        let truth = linear_truth(&w, &x, &bg);
        for nsamples in [None, Some(60), Some(1000)] {
            let e = kernel_shap(&mut linear(w.clone(), -1.0), &x, &bg, width, opts(nsamples)).unwrap();
            assert!(!e.exact);
            assert_eq!(e.coalitions, nsamples.unwrap_or(2 * width + 2048));
            println!("linear, sampled {nsamples:?}: max |Δ| = {:.2e}", max_abs_diff(&e.values, &truth));
            assert!(max_abs_diff(&e.values, &truth) <= 1e-6, "{nsamples:?}: {e:?}");
            assert!(efficiency_gap(&e) <= 1e-9);
        }
    }

    #[test]
    fn efficiency_holds_for_nonlinear_models() {
        for width in [2, 3, 4, 5, 8, 11, 13] {
            let bg = matrix(5, 25, width);
            let x = matrix(6, 1, width);
            for nsamples in [None, Some(1), Some(7), Some(40), Some(500)] {
                let e = kernel_shap(&mut nonlinear(usize::MAX), &x, &bg, width, opts(nsamples)).unwrap();
                assert!(efficiency_gap(&e) <= 1e-9, "width {width}, nsamples {nsamples:?}: {e:?}");
                assert!(e.values.iter().all(|v| v.is_finite()));
            }
        }
    }

    #[test]
    fn ignored_feature_gets_exactly_zero() {
        for width in [3, 5, 8] {
            let skip = 2;
            let bg = matrix(7, 30, width);
            let x = matrix(8, 1, width);
            let e = kernel_shap(&mut nonlinear(skip), &x, &bg, width, opts(None)).unwrap();
            assert!(e.exact);
            assert_eq!(e.values[skip], 0.0, "{e:?}");
            assert!(e.values.iter().enumerate().all(|(j, &v)| j == skip || v != 0.0));
        }
    }

    #[test]
    fn non_varying_feature_gets_zero_and_is_not_counted() {
        let width = 5;
        let mut bg = matrix(9, 20, width);
        let mut x = matrix(10, 1, width);
        for row in bg.chunks_exact_mut(width) {
            row[3] = 7.0;
        }
        x[3] = 7.0 + 1e-9; // np.allclose: still the same value
        let e = kernel_shap(&mut nonlinear(usize::MAX), &x, &bg, width, opts(None)).unwrap();
        assert_eq!(e.varying, 4);
        assert_eq!(e.coalitions, 14);
        assert_eq!(e.values[3], 0.0);
        assert!(efficiency_gap(&e) <= 1e-9);
        // A NaN column equal to NaN in x does not vary either (equal_nan=True).
        for row in bg.chunks_exact_mut(width) {
            row[1] = f64::NAN;
        }
        x[1] = f64::NAN;
        let mut model = |rows: &[f64], width: usize| -> Result<Vec<f64>, String> {
            Ok(rows.chunks_exact(width).map(|r| r[0] + 2.0 * r[2] - r[4]).collect())
        };
        let e = kernel_shap(&mut model, &x, &bg, width, opts(None)).unwrap();
        assert_eq!(e.varying, 3);
        assert_eq!((e.values[1], e.values[3]), (0.0, 0.0));
    }

    #[test]
    fn one_or_no_varying_feature() {
        let width = 3;
        let bg = vec![1.0, 2.0, 3.0, 1.0, 2.5, 3.0];
        let x = [1.0, 4.0, 3.0];
        let e = kernel_shap(&mut nonlinear(usize::MAX), &x, &bg, width, opts(None)).unwrap();
        assert_eq!((e.varying, e.coalitions, e.rows_scored, e.solver), (1, 0, 3, Solver::None));
        assert_eq!(e.values[1], e.prediction - e.base_value);
        assert_eq!((e.values[0], e.values[2]), (0.0, 0.0));

        let bg = vec![1.0, 2.0, 3.0];
        let e = kernel_shap(&mut nonlinear(usize::MAX), &bg.clone(), &bg, width, opts(None)).unwrap();
        assert_eq!((e.varying, e.coalitions, e.rows_scored, e.model_calls), (0, 0, 2, 1));
        assert_eq!(e.values, vec![0.0; 3]);
        assert_eq!(e.prediction, e.base_value);
    }

    #[test]
    fn sampling_approaches_exact_values_on_nonlinear_model() {
        let width = 10;
        let bg = matrix(11, 30, width);
        let x = matrix(12, 1, width);
        let exact = kernel_shap(&mut nonlinear(usize::MAX), &x, &bg, width, opts(Some(1 << 20))).unwrap();
        assert!(exact.exact && exact.coalitions == 1022);
        let mut worst: f64 = 0.0;
        for seed in 0..5 {
            let o = KernelShapOptions { nsamples: Some(600), seed, ..KernelShapOptions::default() };
            let e = kernel_shap(&mut nonlinear(usize::MAX), &x, &bg, width, o).unwrap();
            assert!(!e.exact);
            worst = worst.max(max_abs_diff(&e.values, &exact.values));
        }
        let scale = exact.values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        println!("nonlinear, 600 of 1022 coalitions: max |Δ| = {worst:.2e}, largest |φ| = {scale:.2e}");
        assert!(worst <= 0.05 * scale, "worst {worst}, largest value {scale}");
    }

    #[test]
    fn typical_call_counts() {
        let width = 8;
        let bg = matrix(13, 50, width);
        let x = matrix(14, 1, width);
        let e = kernel_shap(&mut nonlinear(usize::MAX), &x, &bg, width, KernelShapOptions::default()).unwrap();
        assert_eq!((e.coalitions, e.rows_scored, e.model_calls), (254, 50 + 1 + 254 * 50, 4));
    }

    #[test]
    fn batching_and_seed() {
        let width = 11;
        let bg = matrix(15, 9, width);
        let x = matrix(16, 1, width);
        let run = |batch: usize, seed: u64| {
            let o = KernelShapOptions { nsamples: Some(300), seed, max_batch_rows: batch, ..Default::default() };
            kernel_shap(&mut nonlinear(usize::MAX), &x, &bg, width, o).unwrap()
        };
        let a = run(4096, 1);
        for batch in [1, 7, 9, 1000] {
            let b = run(batch, 1);
            assert_eq!(a.values, b.values);
            assert_eq!(b.model_calls, b.rows_scored.div_ceil(batch));
        }
        assert_ne!(run(4096, 2).values, a.values);
    }

    #[test]
    fn background_is_down_sampled() {
        let width = 4;
        let bg = matrix(17, 300, width);
        let x = matrix(18, 1, width);
        let e = kernel_shap(&mut nonlinear(usize::MAX), &x, &bg, width, opts(None)).unwrap();
        assert_eq!(e.rows_scored, 101 + 14 * 100);
        let all = KernelShapOptions { max_background: 300, ..Default::default() };
        let f = kernel_shap(&mut nonlinear(usize::MAX), &x, &bg, width, all).unwrap();
        assert_eq!(f.rows_scored, 301 + 14 * 300);
        assert_ne!(e.base_value, f.base_value);
        assert!((e.base_value - f.base_value).abs() < 0.1);
    }

    #[test]
    fn kernel_shap_errors() {
        let ok = || nonlinear(usize::MAX);
        let x = [0.5, 1.0];
        let bg = [0.0, 0.0, 1.0, 2.0];
        let err = |r: Result<Explanation, ExplainError>| r.unwrap_err();
        assert_eq!(err(kernel_shap(&mut ok(), &x, &[], 2, opts(None))), ExplainError::EmptyBackground);
        assert!(matches!(err(kernel_shap(&mut ok(), &x, &bg, 0, opts(None))), ExplainError::BadWidth(0)));
        assert!(matches!(
            err(kernel_shap(&mut ok(), &x, &bg, 3, opts(None))),
            ExplainError::WidthMismatch { what: "x", .. }
        ));
        assert!(matches!(
            err(kernel_shap(&mut ok(), &x, &bg[..3], 2, opts(None))),
            ExplainError::WidthMismatch { what: "background", .. }
        ));
        assert!(matches!(err(kernel_shap(&mut ok(), &x, &bg, 2, opts(Some(0)))), ExplainError::InvalidOption(_)));
        let zero_batch = KernelShapOptions { max_batch_rows: 0, ..Default::default() };
        assert!(matches!(err(kernel_shap(&mut ok(), &x, &bg, 2, zero_batch)), ExplainError::InvalidOption(_)));
        let zero_bg = KernelShapOptions { max_background: 0, ..Default::default() };
        assert!(matches!(err(kernel_shap(&mut ok(), &x, &bg, 2, zero_bg)), ExplainError::InvalidOption(_)));

        let mut failing = |_: &[f64], _: usize| -> Result<Vec<f64>, String> { Err("503 from the model".into()) };
        let e = err(kernel_shap(&mut failing, &x, &bg, 2, opts(None)));
        assert_eq!(e, ExplainError::Model { call: 0, message: "503 from the model".into() });
        assert_eq!(e.to_string(), "model call 0 failed: 503 from the model");

        let mut nan_on_x = |rows: &[f64], w: usize| -> Result<Vec<f64>, String> {
            Ok(rows.chunks_exact(w).map(|r| if r == [0.5, 1.0] { f64::NAN } else { 0.0 }).collect())
        };
        let e = err(kernel_shap(&mut nan_on_x, &x, &bg, 2, opts(None)));
        assert!(matches!(e, ExplainError::NonFiniteOutput { call: 0, row: 2, .. }), "{e}");

        let mut short = |rows: &[f64], w: usize| -> Result<Vec<f64>, String> { Ok(vec![0.0; rows.len() / w - 1]) };
        let e = err(kernel_shap(&mut short, &x, &bg, 2, opts(None)));
        assert_eq!(e, ExplainError::OutputLength { call: 0, expected: 7, got: 6 });

        // A failure in a later batch carries its call index.
        let mut calls = 0;
        let mut late = |rows: &[f64], w: usize| -> Result<Vec<f64>, String> {
            calls += 1;
            if calls == 3 {
                Err("boom".into())
            } else {
                Ok(vec![1.0; rows.len() / w])
            }
        };
        let small = KernelShapOptions { max_batch_rows: 2, ..Default::default() };
        assert_eq!(
            err(kernel_shap(&mut late, &x, &bg, 2, small)),
            ExplainError::Model { call: 2, message: "boom".into() }
        );

        let wide = vec![0.0; MAX_FEATURES + 1];
        assert!(matches!(err(kernel_shap(&mut ok(), &wide, &wide, wide.len(), opts(None))), ExplainError::BadWidth(_)));
        let x40: Vec<f64> = (0..40).map(f64::from).collect();
        let big = KernelShapOptions { nsamples: Some(MAX_SAMPLES + 1), ..Default::default() };
        assert!(matches!(err(kernel_shap(&mut ok(), &x40, &[0.5; 40], 40, big)), ExplainError::TooLarge(_)));
    }

    // ---- LIME ----

    #[test]
    fn lime_recovers_a_linear_model() {
        let width = 6;
        let w: Vec<f64> = (0..width).map(|j| j as f64 * 0.5 - 1.2).collect();
        let x = matrix(20, 1, width);
        let scale = [0.5, 1.0, 2.0, 0.1, 3.0, 1.5];
        let truth: Vec<f64> = w.iter().zip(&scale).map(|(a, s)| a * s).collect();
        let fx = dot(&w, &x) + 0.7;

        // No penalty: the surrogate is the model, exactly.
        let o = LimeOptions { alpha: 0.0, ..Default::default() };
        let e = lime(&mut linear(w.clone(), 0.7), &x, &scale, o).unwrap();
        assert!(max_abs_diff(&e.coefficients, &truth) <= 1e-9, "{e:?}");
        assert!((e.intercept - fx).abs() <= 1e-9);
        assert!((e.score - 1.0).abs() <= 1e-12);
        assert_eq!((e.prediction, e.rows_scored, e.model_calls), (fx, 5000, 2));

        // lime's Ridge(alpha=1): coefficients shrink by about alpha / Σ w·z² (≈ 1/1800 here), and the shrinkage of
        // the large ones leaks into the small ones through the sample's correlations: every coefficient is within
        // 2e-3 × the largest |w_j·scale_j| (observed 5.7e-4 ×, the shrinkage of the largest).
        let e = lime(&mut linear(w.clone(), 0.7), &x, &scale, LimeOptions::default()).unwrap();
        let largest = truth.iter().fold(0.0f64, |m, t| m.max(t.abs()));
        println!("lime alpha=1: max |Δ| / largest = {:.2e}", max_abs_diff(&e.coefficients, &truth) / largest);
        assert!(max_abs_diff(&e.coefficients, &truth) <= 2e-3 * largest, "{e:?}");
        assert!((e.intercept - fx).abs() <= 1e-3);
        assert!(e.score > 0.9999);
    }

    #[test]
    fn lime_kernel_width_and_zero_scale() {
        let mut model = |rows: &[f64], w: usize| -> Result<Vec<f64>, String> {
            Ok(rows.chunks_exact(w).map(|r| r[0] * r[0] + r[1] - 2.0 * r[2]).collect())
        };
        let x = [1.0, 2.0, 3.0];
        // Scale 0 is taken as 1 (scikit-learn's constant feature): the third feature still gets its slope (the
        // quadratic's curvature leaks a little into the linear terms through the sample's correlations).
        let o = LimeOptions { alpha: 0.0, ..Default::default() };
        let e = lime(&mut model, &x, &[0.1, 1.0, 0.0], o).unwrap();
        assert!((e.coefficients[2] + 2.0).abs() <= 1e-3, "{e:?}");
        assert!((e.coefficients[1] - 1.0).abs() <= 1e-3);
        // The quadratic's local slope 2·x0 per unit, ×0.1 per std; a narrow kernel is more local.
        assert!((e.coefficients[0] - 0.2).abs() <= 0.01, "{e:?}");
        let narrow = LimeOptions { kernel_width: Some(0.5), ..o };
        let n = lime(&mut model, &x, &[0.1, 1.0, 0.0], narrow).unwrap();
        assert!(n.score >= 0.99);
        // One sample: x alone, a flat surrogate that fits it exactly.
        let one = LimeOptions { num_samples: 1, ..Default::default() };
        let e = lime(&mut model, &x, &[1.0; 3], one).unwrap();
        assert_eq!((e.coefficients, e.intercept, e.score), (vec![0.0; 3], e.prediction, 1.0));
    }

    #[test]
    fn lime_errors() {
        let mut m = linear(vec![1.0, 2.0], 0.0);
        let d = LimeOptions::default();
        let err = |r: Result<LimeExplanation, ExplainError>| r.unwrap_err();
        assert!(matches!(err(lime(&mut m, &[], &[], d)), ExplainError::BadWidth(0)));
        assert!(matches!(err(lime(&mut m, &[1.0, 2.0], &[1.0], d)), ExplainError::WidthMismatch { what: "scale", .. }));
        assert!(matches!(err(lime(&mut m, &[f64::NAN, 2.0], &[1.0, 1.0], d)), ExplainError::InvalidInput(_)));
        assert!(matches!(err(lime(&mut m, &[1.0, 2.0], &[-1.0, 1.0], d)), ExplainError::InvalidInput(_)));
        assert!(matches!(err(lime(&mut m, &[1.0, 2.0], &[f64::INFINITY, 1.0], d)), ExplainError::InvalidInput(_)));
        for bad in [
            LimeOptions { num_samples: 0, ..d },
            LimeOptions { max_batch_rows: 0, ..d },
            LimeOptions { alpha: -1.0, ..d },
            LimeOptions { alpha: f64::NAN, ..d },
            LimeOptions { kernel_width: Some(0.0), ..d },
            LimeOptions { kernel_width: Some(f64::INFINITY), ..d },
        ] {
            assert!(matches!(err(lime(&mut m, &[1.0, 2.0], &[1.0, 1.0], bad)), ExplainError::InvalidOption(_)));
        }
        let too_many = LimeOptions { num_samples: MAX_SAMPLES + 1, ..d };
        assert!(matches!(err(lime(&mut m, &[1.0, 2.0], &[1.0, 1.0], too_many)), ExplainError::TooLarge(_)));
        let mut inf = |rows: &[f64], w: usize| -> Result<Vec<f64>, String> { Ok(vec![f64::INFINITY; rows.len() / w]) };
        assert!(matches!(err(lime(&mut inf, &[1.0, 2.0], &[1.0, 1.0], d)), ExplainError::NonFiniteOutput { .. }));
    }

    // ---- linear algebra ----

    #[test]
    fn cholesky_and_least_squares_agree_on_a_full_rank_system() {
        let (rows, p) = (40, 5);
        let x = matrix(30, rows, p);
        let w: Vec<f64> = (0..rows).map(|i| 0.1 + (i % 7) as f64).collect();
        let beta = [1.0, -2.0, 0.5, 3.0, -0.25];
        let y: Vec<f64> = x.chunks_exact(p).enumerate().map(|(i, r)| dot(&beta, r) + 0.01 * (i as f64).sin()).collect();
        let (b1, s1) = weighted_least_squares(&x, &y, &w, p, 0.0);
        assert_eq!(s1, Solver::Cholesky);
        let scaled: Vec<f64> =
            x.chunks_exact(p).zip(&w).flat_map(|(r, wi)| r.iter().map(move |v| v * wi.sqrt())).collect();
        let sy: Vec<f64> = y.iter().zip(&w).map(|(v, wi)| v * wi.sqrt()).collect();
        let b2 = lstsq(&scaled, rows, p, &sy);
        assert!(max_abs_diff(&b1, &b2) <= 1e-12, "{b1:?} {b2:?}");
        assert!(max_abs_diff(&b1, &beta) <= 0.05);
    }

    #[test]
    fn singular_system_falls_back_to_minimum_norm() {
        // Two identical columns: y = 2·a has solutions (t, 2 − t); the minimum-norm one is (1, 1).
        let a = [1.0, 2.0, -1.0, 0.5];
        let x: Vec<f64> = a.iter().flat_map(|&v| [v, v]).collect();
        let y: Vec<f64> = a.iter().map(|v| 2.0 * v).collect();
        let (b, s) = weighted_least_squares(&x, &y, &[1.0; 4], 2, 0.0);
        assert_eq!(s, Solver::LeastSquares);
        assert!(max_abs_diff(&b, &[1.0, 1.0]) <= 1e-12, "{b:?}");
        // With a ridge penalty the system is regular again.
        let (b, s) = weighted_least_squares(&x, &y, &[1.0; 4], 2, 1.0);
        assert_eq!(s, Solver::Cholesky);
        assert!((b[0] - b[1]).abs() <= 1e-12);
        // All-zero design: the zero vector.
        let (b, s) = weighted_least_squares(&[0.0; 6], &[1.0, 2.0, 3.0], &[1.0; 3], 2, 0.0);
        assert_eq!((b, s), (vec![0.0, 0.0], Solver::LeastSquares));
    }

    #[test]
    fn underdetermined_kernel_shap_uses_the_fallback() {
        // 3 sampled coalitions for 9 unknowns: singular normal matrix, yet efficiency holds.
        let width = 10;
        let bg = matrix(31, 5, width);
        let x = matrix(32, 1, width);
        let e = kernel_shap(&mut nonlinear(usize::MAX), &x, &bg, width, opts(Some(3))).unwrap();
        assert_eq!(e.solver, Solver::LeastSquares);
        assert!(efficiency_gap(&e) <= 1e-9);
    }

    #[test]
    fn combinations_are_lexicographic() {
        let mut seen = Vec::new();
        for_each_combination(4, 2, |c| seen.push(c.to_vec()));
        assert_eq!(seen, vec![vec![0, 1], vec![0, 2], vec![0, 3], vec![1, 2], vec![1, 3], vec![2, 3]]);
        let mut n = 0;
        for_each_combination(10, 5, |_| n += 1);
        assert_eq!(n, 252);
    }

    #[test]
    fn sampled_plan_weights_sum_to_one() {
        let mut rng = fastrand::Rng::with_seed(5);
        for (m, ns) in [(10, 100), (12, 2072), (7, 20), (31, 500)] {
            let plan = plan_coalitions(m, ns, &mut rng);
            let total: f64 = plan.weights.iter().sum();
            assert!((total - 1.0).abs() <= 1e-12, "{m} {ns}: {total}");
            assert_eq!(plan.weights.len(), ns);
            assert!(plan.masks.chunks_exact(m).all(|z| z.iter().any(|&b| b) && !z.iter().all(|&b| b)));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn never_panics(
            width in 0usize..5,
            x in proptest::collection::vec(prop_oneof![any::<f64>(), -3.0f64..3.0], 0..6),
            bg in proptest::collection::vec(prop_oneof![any::<f64>(), -3.0f64..3.0, Just(0.0)], 0..30),
            nsamples in proptest::option::of(0usize..40),
            batch in 0usize..5,
            behaviour in 0u8..5,
        ) {
            let mut model = |rows: &[f64], w: usize| -> Result<Vec<f64>, String> {
                let n = rows.len() / w.max(1);
                match behaviour {
                    0 => Ok(rows.chunks_exact(w.max(1)).map(|r| r.iter().map(|v| v.tanh()).sum::<f64>()).collect()),
                    1 => Err("down".into()),
                    2 => Ok(vec![0.5; n + 1]),
                    3 => Ok(rows.chunks_exact(w.max(1)).map(|r| r.iter().sum::<f64>()).collect()),
                    _ => Ok(vec![1e300; n]),
                }
            };
            let o = KernelShapOptions { nsamples, max_batch_rows: batch, ..Default::default() };
            if let Ok(e) = kernel_shap(&mut model, &x, &bg, width, o) {
                prop_assert_eq!(e.values.len(), width);
            }
            let scale: Vec<f64> = x.iter().map(|v| v.abs()).collect();
            let lo = LimeOptions { num_samples: nsamples.unwrap_or(50), max_batch_rows: batch, ..Default::default() };
            if let Ok(e) = lime(&mut model, &x, &scale, lo) {
                prop_assert_eq!(e.coefficients.len(), x.len());
            }
        }
    }
}
