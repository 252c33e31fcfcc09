//! Black-box adversarial search: how small a change of one input flips the model's decision, found by asking
//! the model only for its decisions (class indices), under a hard budget of rows scored.
//!
//! Two searches, both untargeted (a flip is any decision different from the decision at `x`):
//! - [`random_search`]: for ε = ε₁ < ε₂ < …, sample uniformly in the ε-ball around `x` until some sample flips;
//!   reports the first ε that flipped. Cheap, batched, embarrassingly parallel; an upper bound on the minimal
//!   flipping distance, and a weak one in many dimensions (a random direction is nearly orthogonal to the one
//!   that matters).
//! - [`boundary_attack`]: HopSkipJumpAttack (Chen, Jordan & Wainwright 2020, arXiv:1904.02144), re-expressed from
//!   the paper's description: from an adversarial point, binary search to the decision boundary on the way to
//!   `x`; estimate the boundary's normal from the signs of the decisions at random points around the boundary
//!   point (one batched model call); step along it with a geometrically shrinking step until the step stays
//!   adversarial; project back to the boundary by binary search; repeat until the budget is spent.
//!
//! Geometry. Distances are measured in *scaled* space: feature i is divided by `scale[i]` (the reference's
//! standard deviation), so a distance of 1 is "one standard deviation" whatever the feature's unit. A feature is
//! *active* (may be perturbed) iff its scale is finite and > 0 and its value in `x` is finite; every other
//! feature keeps its value from `x` in every row sent to the model. The norm ([`Norm`]) is taken over the active
//! features' scaled offsets. Optional per-feature bounds `[lo, hi]` clip every candidate (in original units, so
//! a sent value never leaves the interval by a rounding error); a bound side that is NaN or infinite means "no
//! bound on that side", and a bound that excludes `x`'s own value is widened to include it (`x` is the centre
//! of every search, and clipping toward it then only ever shortens a perturbation).
//!
//! Accounting. A *query* is one row scored by the model; a *call* is one [`Classifier::decide`] (one V2
//! request). The decision at `x` itself costs one query. Neither search ever sends more rows than its budget,
//! whatever happens; an error from the model ends the search with [`AttackError::Model`], which reports what
//! was spent.
//!
//! Guarantees. Every example reported was itself scored by the model and decided differently from `x` (so for
//! a deterministic model it really flips, and its distance is an upper bound on the true minimal flipping
//! distance). The reported distance is the norm of the example actually sent, not of an intermediate value.
//! For a given seed, classifier behaviour and input, a search is fully deterministic (fastrand's seeded
//! generator, no clock, no threads). No input panics.

use serde::{Deserialize, Serialize};

/// A black-box classifier, called in batches.
pub trait Classifier {
    /// Decides `rows` (row-major, `rows.len() / width` rows of `width` features each): the predicted class of
    /// each row, in order. An `Err` is passed on to the caller of the search as [`AttackError::Model`].
    fn decide(&mut self, rows: &[f64], width: usize) -> Result<Vec<u32>, String>;
}

impl<F> Classifier for F
where
    F: FnMut(&[f64], usize) -> Result<Vec<u32>, String>,
{
    fn decide(&mut self, rows: &[f64], width: usize) -> Result<Vec<u32>, String> {
        self(rows, width)
    }
}

/// The norm distances are measured in (over the active features' scaled offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Euclidean: sqrt(Σ zᵢ²).
    L2,
    /// Chebyshev: max |zᵢ|.
    Linf,
}

impl Norm {
    /// The norm of `z`; 0 for an empty slice.
    pub fn of(self, z: &[f64]) -> f64 {
        match self {
            Norm::L2 => z.iter().map(|v| v * v).sum::<f64>().sqrt(),
            Norm::Linf => z.iter().fold(0.0, |m, v| m.max(v.abs())),
        }
    }
}

/// Why a search could not run, or stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AttackError {
    /// `x` has no features.
    #[error("the input has no features")]
    EmptyInput,
    /// A per-feature argument (`scale`, `bounds`, `init`) does not have `x`'s width.
    #[error("{what} has {got} entries, the input has {expected} features")]
    WidthMismatch { what: &'static str, expected: usize, got: usize },
    /// A bound with `lo > hi` (after NaN sides are read as unbounded).
    #[error("feature {feature}: lower bound {lo} is above upper bound {hi}")]
    InvalidBounds { feature: usize, lo: f64, hi: f64 },
    /// An option outside its domain (the message names it).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The classifier returned an error; `queries` rows in `calls` calls had been sent, this call included.
    #[error("model error after {queries} queries in {calls} calls: {message}")]
    Model { message: String, queries: usize, calls: usize },
    /// The classifier returned a number of decisions different from the number of rows sent.
    #[error("model returned {got} decisions for {expected} rows (after {queries} queries in {calls} calls)")]
    ModelOutput { expected: usize, got: usize, queries: usize, calls: usize },
}

/// What a search found and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttackResult {
    /// The norm distances are measured in.
    pub norm: Norm,
    /// The model's decision at `x`; `None` only when nothing was queried (budget 0, or no active feature).
    pub original_class: Option<u32>,
    /// Whether an example decided differently from `x` was found.
    pub flipped: bool,
    /// [`random_search`]: the radius of the ball in which the flip was found (the smallest ε of the list that
    /// flipped). `None` when nothing flipped, and always for [`boundary_attack`].
    pub epsilon: Option<f64>,
    /// The scaled-space norm of `example − x` (at most `epsilon`, up to rounding, when that is set).
    pub distance: Option<f64>,
    /// The adversarial example in original units, full width (inactive features equal to `x`'s).
    pub example: Option<Vec<f64>>,
    /// The model's decision at `example`.
    pub adversarial_class: Option<u32>,
    /// Rows scored, the decision at `x` included. Never more than the budget.
    pub queries: usize,
    /// Model calls made.
    pub calls: usize,
    /// [`random_search`]: ε levels tried (fully or partly); [`boundary_attack`]: gradient-step iterations run.
    pub iterations: usize,
}

/// Options of [`random_search`].
#[derive(Debug, Clone, PartialEq)]
pub struct RandomSearchOptions {
    pub norm: Norm,
    /// Ball radii in scaled units: finite, > 0, strictly ascending, at least one.
    pub epsilons: Vec<f64>,
    /// Samples drawn per ε (≥ 1), fewer if the budget runs out.
    pub samples_per_eps: usize,
    /// Rows per model call (≥ 1); the first call also carries `x` within this limit.
    pub batch: usize,
    pub seed: u64,
    /// Maximum rows scored, the decision at `x` included.
    pub budget: usize,
    /// Per-feature `(lo, hi)` in original units, or `None` for no bounds.
    pub bounds: Option<Vec<(f64, f64)>>,
}

impl Default for RandomSearchOptions {
    fn default() -> Self {
        RandomSearchOptions {
            norm: Norm::L2,
            epsilons: vec![0.05, 0.1, 0.25, 0.5, 1.0],
            samples_per_eps: 100,
            batch: 100,
            seed: 0,
            budget: 1000,
            bounds: None,
        }
    }
}

/// Options of [`boundary_attack`].
#[derive(Debug, Clone, PartialEq)]
pub struct BoundaryOptions {
    pub norm: Norm,
    /// Maximum rows scored, the decision at `x` and the search for a starting point included.
    pub budget: usize,
    pub seed: u64,
    /// Per-feature `(lo, hi)` in original units, or `None` for no bounds.
    pub bounds: Option<Vec<(f64, f64)>>,
    /// A starting point believed adversarial (full width, original units). It is clipped to the bounds, its
    /// inactive features are reset to `x`'s, and it is scored; if it does not flip, the start is searched for
    /// as if it were absent.
    pub init: Option<Vec<f64>>,
    /// Radii (scaled units; finite, > 0, ascending) of the random search for a starting point.
    pub init_epsilons: Vec<f64>,
    /// Samples per radius of that search (≥ 1), one model call per radius.
    pub init_samples: usize,
    /// B₀: rows of the first gradient-direction estimate; iteration t uses B₀·√t rows (≥ 1).
    pub init_evals: usize,
    /// Cap on the rows of one gradient-direction estimate (≥ 1); also the largest model call made.
    pub max_evals: usize,
    /// γ of the paper: θ = γ/d^(3/2) (L2) or γ/d² (L∞) with d the number of active features; the probe radius
    /// around a boundary point is δ = γ·dist/d (the paper's √d·θ·dist, resp. d·θ·dist). Finite, > 0.
    pub gamma: f64,
    /// Relative precision of every binary search to the boundary: it stops when the bracket is below
    /// min(θ, tolerance) times the starting distance. In (0, 1).
    pub tolerance: f64,
}

impl Default for BoundaryOptions {
    fn default() -> Self {
        BoundaryOptions {
            norm: Norm::L2,
            budget: 2000,
            seed: 0,
            bounds: None,
            init: None,
            init_epsilons: vec![0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0],
            init_samples: 32,
            init_evals: 50,
            max_evals: 500,
            gamma: 1.0,
            tolerance: 1e-3,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Shared machinery: the search space, the budgeted oracle, sampling
// ---------------------------------------------------------------------------------------------------------------

/// The search space around `x`: the active features and their boxes, in scaled coordinates z (z = 0 is `x`,
/// feature `active[k]` of a candidate is `x + scale·z[k]`, clamped to its bound).
struct Space<'a> {
    x: &'a [f64],
    active: Vec<usize>,
    /// Scale of each active feature.
    scale: Vec<f64>,
    /// Bounds of each active feature in original units, widened to contain x (±inf when unbounded).
    lo: Vec<f64>,
    hi: Vec<f64>,
    /// The same bounds in scaled coordinates (zlo ≤ 0 ≤ zhi).
    zlo: Vec<f64>,
    zhi: Vec<f64>,
}

impl<'a> Space<'a> {
    fn new(x: &'a [f64], scale: &[f64], bounds: Option<&[(f64, f64)]>) -> Result<Space<'a>, AttackError> {
        if x.is_empty() {
            return Err(AttackError::EmptyInput);
        }
        if scale.len() != x.len() {
            return Err(AttackError::WidthMismatch { what: "scale", expected: x.len(), got: scale.len() });
        }
        if let Some(b) = bounds {
            if b.len() != x.len() {
                return Err(AttackError::WidthMismatch { what: "bounds", expected: x.len(), got: b.len() });
            }
        }
        let mut space = Space {
            x,
            active: Vec::new(),
            scale: Vec::new(),
            lo: Vec::new(),
            hi: Vec::new(),
            zlo: Vec::new(),
            zhi: Vec::new(),
        };
        for (i, (&xi, &si)) in x.iter().zip(scale).enumerate() {
            let (lo, hi) = match bounds {
                Some(b) => {
                    let (lo, hi) = b[i];
                    let lo = if lo.is_nan() { f64::NEG_INFINITY } else { lo };
                    let hi = if hi.is_nan() { f64::INFINITY } else { hi };
                    if lo > hi {
                        return Err(AttackError::InvalidBounds { feature: i, lo, hi });
                    }
                    (lo, hi)
                }
                None => (f64::NEG_INFINITY, f64::INFINITY),
            };
            if !(si.is_finite() && si > 0.0 && xi.is_finite()) {
                continue;
            }
            let (lo, hi) = (lo.min(xi), hi.max(xi));
            space.active.push(i);
            space.scale.push(si);
            space.lo.push(lo);
            space.hi.push(hi);
            space.zlo.push(((lo - xi) / si).min(0.0));
            space.zhi.push(((hi - xi) / si).max(0.0));
        }
        Ok(space)
    }

    /// Number of active features (the dimension d of the search).
    fn dim(&self) -> usize {
        self.active.len()
    }

    /// Clips `z` to the box in scaled coordinates.
    fn clip(&self, z: &mut [f64]) {
        for ((v, &lo), &hi) in z.iter_mut().zip(&self.zlo).zip(&self.zhi) {
            *v = v.clamp(lo, hi);
        }
    }

    /// Appends the full-width row of the candidate `z` to `out` (inactive features copied from x, active ones
    /// mapped to original units and clamped to their bounds there).
    fn push_row(&self, z: &[f64], out: &mut Vec<f64>) {
        let start = out.len();
        out.extend_from_slice(self.x);
        let row = &mut out[start..];
        for (k, &i) in self.active.iter().enumerate() {
            let v = self.x[i] + self.scale[k] * z[k];
            // NaN (only from a non-finite z, which the searches never build) is sent as x's value.
            row[i] = if v.is_nan() { self.x[i] } else { v.clamp(self.lo[k], self.hi[k]) };
        }
    }

    /// Scaled coordinates of a full-width row (inactive features ignored), clipped to the box; a non-finite
    /// value maps to 0 (x's own value).
    fn z_of_row(&self, row: &[f64]) -> Vec<f64> {
        let mut z: Vec<f64> = self
            .active
            .iter()
            .zip(&self.scale)
            .map(|(&i, &s)| {
                let v = (row[i] - self.x[i]) / s;
                if v.is_finite() {
                    v
                } else {
                    0.0
                }
            })
            .collect();
        self.clip(&mut z);
        z
    }

    /// The scaled-space norm of `row − x` over the active features (what the result reports).
    fn distance(&self, row: &[f64], norm: Norm) -> f64 {
        let z: Vec<f64> = self.active.iter().zip(&self.scale).map(|(&i, &s)| (row[i] - self.x[i]) / s).collect();
        norm.of(&z)
    }
}

/// The classifier behind a hard row budget, counting queries and calls.
struct Oracle<'c, C: ?Sized> {
    clf: &'c mut C,
    width: usize,
    budget: usize,
    queries: usize,
    calls: usize,
}

impl<C: Classifier + ?Sized> Oracle<'_, C> {
    fn remaining(&self) -> usize {
        self.budget - self.queries
    }

    /// Scores the rows of `rows` (a whole number of rows, at least one, at most `remaining()`: the searches
    /// check this before building a batch; a violation is refused without calling the model).
    fn decide(&mut self, rows: &[f64]) -> Result<Vec<u32>, AttackError> {
        let n = rows.len() / self.width;
        if n == 0 || n > self.remaining() || rows.len() % self.width != 0 {
            debug_assert!(false, "oracle asked for {n} rows with {} left", self.remaining());
            return Err(AttackError::InvalidOption(format!(
                "internal: {n} rows asked with {} left in the budget",
                self.remaining()
            )));
        }
        self.queries += n;
        self.calls += 1;
        let out = self.clf.decide(rows, self.width).map_err(|message| AttackError::Model {
            message,
            queries: self.queries,
            calls: self.calls,
        })?;
        if out.len() != n {
            return Err(AttackError::ModelOutput {
                expected: n,
                got: out.len(),
                queries: self.queries,
                calls: self.calls,
            });
        }
        Ok(out)
    }
}

/// A standard normal variate (Box–Muller; 1 − U keeps the logarithm's argument in (0, 1]).
fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A direction uniform on the unit L2 sphere of dimension `d` (normalised Gaussian; a zero draw, probability
/// 0, is replaced by the first axis).
fn unit_direction(rng: &mut fastrand::Rng, d: usize) -> Vec<f64> {
    let mut u: Vec<f64> = (0..d).map(|_| normal(rng)).collect();
    let n = Norm::L2.of(&u);
    if n > 0.0 && n.is_finite() {
        u.iter_mut().for_each(|v| *v /= n);
    } else {
        u.iter_mut().enumerate().for_each(|(i, v)| *v = if i == 0 { 1.0 } else { 0.0 });
    }
    u
}

/// A point uniform in the ε-ball of dimension `d`: L∞, each coordinate uniform on [−ε, ε); L2, a uniform
/// direction times the radius ε·U^(1/d).
fn sample_ball(rng: &mut fastrand::Rng, norm: Norm, eps: f64, d: usize) -> Vec<f64> {
    match norm {
        Norm::Linf => (0..d).map(|_| eps * (2.0 * rng.f64() - 1.0)).collect(),
        Norm::L2 => {
            let r = eps * rng.f64().powf(1.0 / d as f64);
            let mut u = unit_direction(rng, d);
            u.iter_mut().for_each(|v| *v *= r);
            u
        }
    }
}

fn check_epsilons(name: &str, eps: &[f64]) -> Result<(), AttackError> {
    let ok = !eps.is_empty() && eps.iter().all(|e| e.is_finite() && *e > 0.0) && eps.windows(2).all(|w| w[0] < w[1]);
    if ok {
        Ok(())
    } else {
        Err(AttackError::InvalidOption(format!("{name} must be finite, > 0, strictly ascending and not empty")))
    }
}

/// The best adversarial example seen so far (smallest distance; ties keep the first).
struct Best {
    row: Vec<f64>,
    class: u32,
    distance: f64,
}

fn offer(best: &mut Option<Best>, space: &Space, norm: Norm, row: &[f64], class: u32) {
    let distance = space.distance(row, norm);
    if best.as_ref().is_none_or(|b| distance < b.distance) {
        *best = Some(Best { row: row.to_vec(), class, distance });
    }
}

/// Outcome of a ladder search: the ε that flipped and the closest flipping sample of the batch that flipped
/// first (its scaled coordinates, row and class), and how many levels were tried.
struct Ladder {
    found: Option<(f64, Vec<f64>, Best)>,
    levels: usize,
}

/// For each ε in order, `per_eps` samples from the ε-ball in calls of at most `batch` rows, until a batch
/// contains a flip (then the closest flip of that batch is returned) or the budget is spent. If `original` is
/// unknown, `x` is the first row of the first call and `original` is set from it.
#[allow(clippy::too_many_arguments)]
fn ladder<C: Classifier + ?Sized>(
    oracle: &mut Oracle<C>,
    space: &Space,
    norm: Norm,
    epsilons: &[f64],
    per_eps: usize,
    batch: usize,
    rng: &mut fastrand::Rng,
    original: &mut Option<u32>,
) -> Result<Ladder, AttackError> {
    let d = space.dim();
    let mut levels = 0;
    let mut rows = Vec::new();
    for &eps in epsilons {
        let mut left = per_eps;
        let mut tried = false;
        while left > 0 {
            let with_x = usize::from(original.is_none());
            let room = oracle.remaining().saturating_sub(with_x).min(batch.saturating_sub(with_x));
            let n = left.min(room);
            if n + with_x == 0 || oracle.remaining() < n + with_x {
                return Ok(Ladder { found: None, levels });
            }
            rows.clear();
            if with_x == 1 {
                rows.extend_from_slice(space.x);
            }
            let mut zs = Vec::with_capacity(n);
            for _ in 0..n {
                let mut z = sample_ball(rng, norm, eps, d);
                space.clip(&mut z);
                space.push_row(&z, &mut rows);
                zs.push(z);
            }
            let decided = oracle.decide(&rows)?;
            if with_x == 1 {
                *original = Some(decided[0]);
            }
            if n > 0 && !tried {
                tried = true;
                levels += 1;
            }
            left -= n;
            let Some(orig) = *original else { continue };
            let w = space.x.len();
            let mut closest: Option<(usize, f64)> = None;
            for (k, &class) in decided[with_x..].iter().enumerate() {
                if class != orig {
                    let dist = space.distance(&rows[(with_x + k) * w..(with_x + k + 1) * w], norm);
                    if closest.is_none_or(|(_, c)| dist < c) {
                        closest = Some((k, dist));
                    }
                }
            }
            if let Some((k, distance)) = closest {
                let row = rows[(with_x + k) * w..(with_x + k + 1) * w].to_vec();
                let best = Best { row, class: decided[with_x + k], distance };
                return Ok(Ladder { found: Some((eps, zs.swap_remove(k), best)), levels });
            }
        }
    }
    Ok(Ladder { found: None, levels })
}

// ---------------------------------------------------------------------------------------------------------------
// Random search
// ---------------------------------------------------------------------------------------------------------------

/// Random search over growing balls: for each ε of `opts.epsilons` in order, draws `samples_per_eps` points
/// uniformly in the ε-ball around `x` (scaled space; L∞: each active coordinate uniform on [−ε, ε); L2:
/// Gaussian direction normalised, radius ε·U^(1/d), d = number of active features), clips them to the bounds,
/// and scores them in calls of at most `batch` rows. It stops at the first call containing a flip and reports
/// that ε (`epsilon`), the closest flipping sample of that call (`example`, `distance` ≤ ε) and the cost.
///
/// The decision at `x` rides in the first call (one query). Nothing flips → `flipped = false` with every
/// ε tried or the budget spent. Budget 0 or no active feature → nothing is queried (`original_class = None`).
/// Errors: empty `x`, a `scale`/`bounds` width different from `x`'s, `lo > hi`, invalid options (see
/// [`RandomSearchOptions`]), or a failing model.
pub fn random_search<C: Classifier + ?Sized>(
    clf: &mut C,
    x: &[f64],
    scale: &[f64],
    opts: &RandomSearchOptions,
) -> Result<AttackResult, AttackError> {
    let space = Space::new(x, scale, opts.bounds.as_deref())?;
    check_epsilons("epsilons", &opts.epsilons)?;
    if opts.samples_per_eps == 0 || opts.batch == 0 {
        return Err(AttackError::InvalidOption("samples_per_eps and batch must be at least 1".into()));
    }
    let mut result = empty_result(opts.norm);
    if space.dim() == 0 || opts.budget == 0 {
        return Ok(result);
    }
    let mut oracle = Oracle { clf, width: x.len(), budget: opts.budget, queries: 0, calls: 0 };
    let mut rng = fastrand::Rng::with_seed(opts.seed);
    let mut original = None;
    let ladder = ladder(
        &mut oracle,
        &space,
        opts.norm,
        &opts.epsilons,
        opts.samples_per_eps,
        opts.batch,
        &mut rng,
        &mut original,
    )?;
    result.original_class = original;
    result.iterations = ladder.levels;
    if let Some((eps, _, best)) = ladder.found {
        result.epsilon = Some(eps);
        fill(&mut result, best);
    }
    result.queries = oracle.queries;
    result.calls = oracle.calls;
    Ok(result)
}

fn empty_result(norm: Norm) -> AttackResult {
    AttackResult {
        norm,
        original_class: None,
        flipped: false,
        epsilon: None,
        distance: None,
        example: None,
        adversarial_class: None,
        queries: 0,
        calls: 0,
        iterations: 0,
    }
}

fn fill(result: &mut AttackResult, best: Best) {
    result.flipped = true;
    result.distance = Some(best.distance);
    result.adversarial_class = Some(best.class);
    result.example = Some(best.row);
}

// ---------------------------------------------------------------------------------------------------------------
// Boundary attack (HopSkipJumpAttack)
// ---------------------------------------------------------------------------------------------------------------

/// Decision-based minimal-perturbation search, HopSkipJumpAttack (Chen, Jordan & Wainwright 2020), untargeted,
/// in scaled space over the active features (d of them).
///
/// 1. Start: the decision at `x` (one query), then `opts.init` if given and it flips, else a random search
///    over `init_epsilons` (`init_samples` rows per radius, one call each; the closest flip of the first radius
///    that flips is the start). Nothing flips → `flipped = false`.
/// 2. Boundary search from an adversarial point z̃ toward x: L2, bisection of α ∈ [0, 1] on the segment α·z̃;
///    L∞, bisection of the radius r ∈ [0, ‖z̃‖∞] of the projection clip(z̃, −r, r) (the paper's ℓ∞
///    projection). It stops when the bracket is below min(θ, `tolerance`) of its start and returns the
///    adversarial end, which was scored.
/// 3. Iteration t = 1, 2, …, at the boundary point z_t (distance D_t = ‖z_t‖):
///    gradient-direction estimate from B_t = min(B₀·√t, `max_evals`) probes z_t + δ·u_b in one call, u_b
///    uniform on the unit sphere, δ = γ·D_t/d, clipped to the bounds (u_b is then the clipped offset / δ);
///    with φ_b = +1 if the probe flips and −1 otherwise, the estimate is Σ (φ_b − φ̄)·u_b / B (the paper's
///    baseline-corrected estimate; when all φ_b agree, φ̄·mean(u_b)); the update direction v is it normalised
///    (L2) or its sign (L∞);
///    geometric step: ξ = D_t/√t, halved until z_t + ξ·v (clipped) flips (at most as many halvings as a
///    boundary search has steps, plus five; if none flips the iteration leaves z_t unchanged);
///    z_{t+1} = boundary search from that point.
/// 4. Repeat until the budget cannot pay for a gradient probe plus a boundary search.
///
/// Every row the model decides differently from `x` (probes, steps, bisection points) is a candidate; the
/// closest one is reported. Budget 0 or no active feature → nothing is queried (`original_class = None`).
/// Errors: empty `x`; `scale`, `bounds` or `init` of another width than `x`; `lo > hi`; invalid options (see
/// [`BoundaryOptions`]); a failing model.
pub fn boundary_attack<C: Classifier + ?Sized>(
    clf: &mut C,
    x: &[f64],
    scale: &[f64],
    opts: &BoundaryOptions,
) -> Result<AttackResult, AttackError> {
    let space = Space::new(x, scale, opts.bounds.as_deref())?;
    if let Some(init) = &opts.init {
        if init.len() != x.len() {
            return Err(AttackError::WidthMismatch { what: "init", expected: x.len(), got: init.len() });
        }
    }
    check_epsilons("init_epsilons", &opts.init_epsilons)?;
    if opts.init_samples == 0 || opts.init_evals == 0 || opts.max_evals == 0 {
        return Err(AttackError::InvalidOption("init_samples, init_evals and max_evals must be at least 1".into()));
    }
    if !(opts.gamma.is_finite() && opts.gamma > 0.0) {
        return Err(AttackError::InvalidOption("gamma must be finite and > 0".into()));
    }
    if !(opts.tolerance > 0.0 && opts.tolerance < 1.0) {
        return Err(AttackError::InvalidOption("tolerance must be in (0, 1)".into()));
    }
    let norm = opts.norm;
    let mut result = empty_result(norm);
    if space.dim() == 0 || opts.budget == 0 {
        return Ok(result);
    }
    let width = x.len();
    let mut oracle = Oracle { clf, width, budget: opts.budget, queries: 0, calls: 0 };
    let mut rng = fastrand::Rng::with_seed(opts.seed);
    let mut best: Option<Best> = None;
    let mut original: Option<u32> = None;

    // 1. Start.
    let mut start: Option<Vec<f64>> = None;
    if let Some(init) = &opts.init {
        let z0 = space.z_of_row(init);
        let mut rows = x.to_vec();
        space.push_row(&z0, &mut rows);
        let n = oracle.remaining().min(2);
        let decided = oracle.decide(&rows[..n * width])?;
        original = Some(decided[0]);
        if n == 2 && decided[1] != decided[0] {
            offer(&mut best, &space, norm, &rows[width..], decided[1]);
            start = Some(z0);
        }
    }
    if start.is_none() {
        let found = ladder(
            &mut oracle,
            &space,
            norm,
            &opts.init_epsilons,
            opts.init_samples,
            opts.init_samples.saturating_add(1),
            &mut rng,
            &mut original,
        )?
        .found;
        if let Some((_, z, b)) = found {
            if best.as_ref().is_none_or(|old| b.distance < old.distance) {
                best = Some(b);
            }
            start = Some(z);
        }
    }
    result.original_class = original;
    if let (Some(orig), Some(z_adv)) = (original, start) {
        let d = space.dim();
        let df = d as f64;
        let theta = match norm {
            Norm::L2 => opts.gamma / (df * df.sqrt()),
            Norm::Linf => opts.gamma / (df * df),
        };
        let rel_tol = theta.min(opts.tolerance);
        // Bisection steps to shrink a bracket by rel_tol (≥ 1).
        let search_steps = (1.0 / rel_tol).log2().ceil().max(1.0) as usize;
        let mut search = Boundary { oracle: &mut oracle, space: &space, norm, orig, best: &mut best };
        let mut z_t = search.project(z_adv, rel_tol)?;
        let mut t = 0usize;
        loop {
            let dist = norm.of(&z_t);
            if !(dist > 0.0 && dist.is_finite()) {
                break;
            }
            let want = ((opts.init_evals as f64) * ((t + 1) as f64).sqrt()).round().min(opts.max_evals as f64);
            let b = (want as usize).max(1).min(search.oracle.remaining().saturating_sub(search_steps + 1));
            if b == 0 {
                break;
            }
            t += 1;
            let Some(v) = search.direction(&z_t, opts.gamma * dist / df, b, &mut rng)? else { continue };
            let mut xi = dist / (t as f64).sqrt();
            let mut stepped = None;
            for _ in 0..search_steps + 5 {
                if search.oracle.remaining() == 0 {
                    break;
                }
                let mut cand: Vec<f64> = z_t.iter().zip(&v).map(|(z, v)| z + xi * v).collect();
                space.clip(&mut cand);
                if search.flips(&cand)? {
                    stepped = Some(cand);
                    break;
                }
                xi /= 2.0;
            }
            if let Some(cand) = stepped {
                z_t = search.project(cand, rel_tol)?;
            }
        }
        result.iterations = t;
    }
    if let Some(b) = best {
        fill(&mut result, b);
    }
    result.queries = oracle.queries;
    result.calls = oracle.calls;
    Ok(result)
}

/// The state the boundary attack's steps share.
struct Boundary<'o, 'c, 's, C: ?Sized> {
    oracle: &'o mut Oracle<'c, C>,
    space: &'s Space<'s>,
    norm: Norm,
    orig: u32,
    best: &'o mut Option<Best>,
}

impl<C: Classifier + ?Sized> Boundary<'_, '_, '_, C> {
    /// Scores one candidate (one call, one query; the caller checks the budget); a flip becomes a candidate
    /// for the best.
    fn flips(&mut self, z: &[f64]) -> Result<bool, AttackError> {
        let mut row = Vec::with_capacity(self.space.x.len());
        self.space.push_row(z, &mut row);
        let class = self.oracle.decide(&row)?[0];
        if class != self.orig {
            offer(self.best, self.space, self.norm, &row, class);
        }
        Ok(class != self.orig)
    }

    /// Step 2: bisection from the adversarial `z_adv` toward x (segment for L2, ℓ∞-ball projection for L∞),
    /// until the bracket is below `rel_tol` of its start or the budget is spent; returns the adversarial end.
    fn project(&mut self, z_adv: Vec<f64>, rel_tol: f64) -> Result<Vec<f64>, AttackError> {
        let norm = self.norm;
        let at = |r: f64| -> Vec<f64> {
            match norm {
                Norm::L2 => z_adv.iter().map(|v| v * r).collect(),
                Norm::Linf => z_adv.iter().map(|v| v.clamp(-r, r)).collect(),
            }
        };
        let mut hi = match self.norm {
            Norm::L2 => 1.0,
            Norm::Linf => Norm::Linf.of(&z_adv),
        };
        let mut lo = 0.0;
        let threshold = hi * rel_tol;
        let mut best_z = None;
        while hi - lo > threshold && self.oracle.remaining() > 0 {
            let mid = 0.5 * (lo + hi);
            let z = at(mid);
            if self.flips(&z)? {
                hi = mid;
                best_z = Some(z);
            } else {
                lo = mid;
            }
        }
        Ok(best_z.unwrap_or(z_adv))
    }

    /// Step 3's gradient-direction estimate at the boundary point `z` from `b` probes of radius `delta` (one
    /// call): the update direction, or `None` when the estimate is zero or not finite.
    fn direction(
        &mut self,
        z: &[f64],
        delta: f64,
        b: usize,
        rng: &mut fastrand::Rng,
    ) -> Result<Option<Vec<f64>>, AttackError> {
        let d = z.len();
        let width = self.space.x.len();
        let mut rows = Vec::with_capacity(b * width);
        let mut offsets = Vec::with_capacity(b * d);
        for _ in 0..b {
            let u = unit_direction(rng, d);
            let mut p: Vec<f64> = z.iter().zip(&u).map(|(z, u)| z + delta * u).collect();
            self.space.clip(&mut p);
            offsets.extend(p.iter().zip(z).map(|(p, z)| (p - z) / delta));
            self.space.push_row(&p, &mut rows);
        }
        let decided = self.oracle.decide(&rows)?;
        let mut phi = Vec::with_capacity(b);
        for (k, &class) in decided.iter().enumerate() {
            let flipped = class != self.orig;
            if flipped {
                offer(self.best, self.space, self.norm, &rows[k * width..(k + 1) * width], class);
            }
            phi.push(if flipped { 1.0 } else { -1.0 });
        }
        let mean = phi.iter().sum::<f64>() / b as f64;
        // All probes agree: the paper's fallback, the mean probe direction signed by the common decision.
        let weights: Vec<f64> = if mean.abs() == 1.0 { vec![mean; b] } else { phi.iter().map(|p| p - mean).collect() };
        let mut g = vec![0.0; d];
        for (w, off) in weights.iter().zip(offsets.chunks_exact(d)) {
            for (gi, oi) in g.iter_mut().zip(off) {
                *gi += w * oi;
            }
        }
        let n = Norm::L2.of(&g);
        if !(n > 0.0 && n.is_finite()) {
            return Ok(None);
        }
        Ok(Some(match self.norm {
            Norm::L2 => g.iter().map(|v| v / n).collect(),
            Norm::Linf => g
                .iter()
                .map(|v| {
                    if *v > 0.0 {
                        1.0
                    } else if *v < 0.0 {
                        -1.0
                    } else {
                        0.0
                    }
                })
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sign(w·x + b) as class 1 (> 0) or 0, recording every row it scores.
    struct Linear {
        w: Vec<f64>,
        b: f64,
        rows: Vec<Vec<f64>>,
        calls: usize,
    }

    impl Linear {
        fn new(w: Vec<f64>, b: f64) -> Linear {
            Linear { w, b, rows: Vec::new(), calls: 0 }
        }
        fn class(&self, row: &[f64]) -> u32 {
            u32::from(self.w.iter().zip(row).map(|(w, v)| w * v).sum::<f64>() + self.b > 0.0)
        }
    }

    impl Classifier for Linear {
        fn decide(&mut self, rows: &[f64], width: usize) -> Result<Vec<u32>, String> {
            self.calls += 1;
            let out = rows.chunks_exact(width).map(|r| self.class(r)).collect();
            self.rows.extend(rows.chunks_exact(width).map(<[f64]>::to_vec));
            Ok(out)
        }
    }

    fn active(s: f64) -> bool {
        s.is_finite() && s > 0.0
    }

    /// |w·x + b| / ‖w∘scale‖_dual over the active features: the true minimal flipping distance.
    fn true_min(w: &[f64], b: f64, x: &[f64], scale: &[f64], norm: Norm) -> f64 {
        let margin = (w.iter().zip(x).map(|(w, v)| w * v).sum::<f64>() + b).abs();
        let ws: Vec<f64> = w.iter().zip(scale).map(|(w, &s)| if active(s) { w * s } else { 0.0 }).collect();
        let dual = match norm {
            Norm::L2 => Norm::L2.of(&ws),
            Norm::Linf => ws.iter().map(|v| v.abs()).sum(),
        };
        margin / dual
    }

    fn scaled_distance(row: &[f64], x: &[f64], scale: &[f64], norm: Norm) -> f64 {
        let z: Vec<f64> =
            row.iter().zip(x).zip(scale).filter(|(_, &s)| active(s)).map(|((r, x), s)| (r - x) / s).collect();
        norm.of(&z)
    }

    /// A random linear problem in `d` features whose true minimal distance is `target`: feature 1 has zero
    /// scale (and a large weight, so changing it would be the cheap way out), x is class 1.
    fn linear_case(rng: &mut fastrand::Rng, d: usize, norm: Norm, target: f64) -> (Linear, Vec<f64>, Vec<f64>) {
        let w: Vec<f64> = (0..d).map(|i| if i == 1 { 50.0 } else { normal(rng) }).collect();
        let scale: Vec<f64> = (0..d).map(|i| if i == 1 { 0.0 } else { 0.5 + 2.5 * rng.f64() }).collect();
        let x: Vec<f64> = (0..d).map(|_| 10.0 * normal(rng)).collect();
        let unit = true_min(&w, 1.0 - w.iter().zip(&x).map(|(w, v)| w * v).sum::<f64>(), &x, &scale, norm);
        // With b = m − w·x the margin is m and the true minimum m·unit.
        let b = target / unit - w.iter().zip(&x).map(|(w, v)| w * v).sum::<f64>();
        (Linear::new(w, b), x, scale)
    }

    /// Checks every scored row: inactive features untouched (bitwise), bounds respected.
    fn check_rows(rows: &[Vec<f64>], x: &[f64], scale: &[f64], bounds: Option<&[(f64, f64)]>) {
        for row in rows {
            for (i, (&v, &s)) in row.iter().zip(scale).enumerate() {
                if !active(s) || !x[i].is_finite() {
                    assert_eq!(v.to_bits(), x[i].to_bits(), "inactive feature {i} changed");
                }
                if let Some(b) = bounds {
                    let (lo, hi) = b[i];
                    let lo = if lo.is_nan() { f64::NEG_INFINITY } else { lo.min(x[i]) };
                    let hi = if hi.is_nan() { f64::INFINITY } else { hi.max(x[i]) };
                    assert!(lo <= v && v <= hi, "feature {i}: {v} outside [{lo}, {hi}]");
                }
            }
        }
    }

    /// The common checks of a result against its linear classifier: accounting, and that the example really
    /// flips, is where the result says, and is no closer than the true minimum.
    fn check_result(r: &AttackResult, clf: &Linear, x: &[f64], scale: &[f64], budget: usize) -> Option<f64> {
        assert!(r.queries <= budget, "{} > {budget}", r.queries);
        assert_eq!(r.queries, clf.rows.len());
        assert_eq!(r.calls, clf.calls);
        assert_eq!(r.flipped, r.example.is_some());
        let ex = r.example.as_ref()?;
        assert_ne!(clf.class(ex), clf.class(x), "reported example does not flip");
        assert_eq!(r.adversarial_class, Some(clf.class(ex)));
        let d = scaled_distance(ex, x, scale, r.norm);
        assert_eq!(r.distance, Some(d));
        let t = true_min(&clf.w, clf.b, x, scale, r.norm);
        assert!(d >= t * (1.0 - 1e-9), "distance {d} below the true minimum {t}");
        Some(d / t)
    }

    #[test]
    fn random_search_reports_the_first_step_at_or_above_the_true_minimum() {
        let mut rng = fastrand::Rng::with_seed(11);
        let epsilons = vec![0.05, 0.1, 0.25, 0.5, 1.0];
        for norm in [Norm::L2, Norm::Linf] {
            for d in [4, 6] {
                for target in [0.07, 0.18, 0.3, 0.6] {
                    let (mut clf, x, scale) = linear_case(&mut rng, d, norm, target);
                    let opts = RandomSearchOptions {
                        norm,
                        epsilons: epsilons.clone(),
                        samples_per_eps: 4000,
                        batch: 500,
                        seed: rng.u64(..),
                        budget: 30_000,
                        bounds: None,
                    };
                    let r = random_search(&mut clf, &x, &scale, &opts).unwrap();
                    check_rows(&clf.rows, &x, &scale, None);
                    let ratio = check_result(&r, &clf, &x, &scale, opts.budget).expect("flipped");
                    let want = *epsilons.iter().find(|&&e| e >= target).unwrap();
                    assert_eq!(r.epsilon, Some(want), "{norm:?} d={d} target={target}");
                    assert!(r.distance.unwrap() <= want * (1.0 + 1e-12));
                    // Nothing within the true minimum flipped (every scored row).
                    for row in &clf.rows {
                        if scaled_distance(row, &x, &scale, norm) < target * (1.0 - 1e-9) {
                            assert_eq!(clf.class(row), 1);
                        }
                    }
                    eprintln!(
                        "random {norm:?} d={d} min={target}: eps={want} dist/min={ratio:.3} queries={}",
                        r.queries
                    );
                }
            }
        }
    }

    #[test]
    fn random_search_accounting_and_batches() {
        let mut rng = fastrand::Rng::with_seed(3);
        let (mut clf, x, scale) = linear_case(&mut rng, 5, Norm::L2, 0.8);
        let opts = RandomSearchOptions { samples_per_eps: 30, batch: 7, budget: 1000, ..Default::default() };
        let r = random_search(&mut clf, &x, &scale, &opts).unwrap();
        check_result(&r, &clf, &x, &scale, opts.budget);
        // x rides in the first call: 1 + 6, then 7-row calls (30 = 6 + 7 + 7 + 7 + 3 per level...).
        assert_eq!(r.original_class, Some(1));
        assert!(r.calls >= 5);
        // Budget cut mid-level: never more than the budget, the last call partial.
        for budget in [1, 2, 3, 8, 9, 40, 61] {
            let mut clf2 = Linear::new(clf.w.clone(), clf.b);
            let r = random_search(&mut clf2, &x, &scale, &RandomSearchOptions { budget, ..opts.clone() }).unwrap();
            check_result(&r, &clf2, &x, &scale, budget);
            assert!(clf2.rows.len() <= budget);
        }
    }

    #[test]
    fn boundary_attack_l2_gets_within_five_percent() {
        let mut rng = fastrand::Rng::with_seed(5);
        // Worst dist/min per budget; only the few-thousand budget is held to 5 %.
        let budgets = [300, 1000, 3000];
        let mut worst = [0.0f64; 3];
        for d in 4..=10 {
            for _ in 0..4 {
                let target = 0.2 + 1.5 * rng.f64();
                let (clf, x, scale) = linear_case(&mut rng, d, Norm::L2, target);
                let seed = rng.u64(..);
                for (k, &budget) in budgets.iter().enumerate() {
                    let mut clf = Linear::new(clf.w.clone(), clf.b);
                    let opts = BoundaryOptions { budget, seed, ..Default::default() };
                    let r = boundary_attack(&mut clf, &x, &scale, &opts).unwrap();
                    check_rows(&clf.rows, &x, &scale, None);
                    let ratio = check_result(&r, &clf, &x, &scale, budget).expect("flipped");
                    eprintln!(
                        "boundary L2 d={d} min={target:.3} budget={budget}: dist/min={ratio:.4} queries={} calls={} \
                         iterations={}",
                        r.queries, r.calls, r.iterations
                    );
                    worst[k] = worst[k].max(ratio);
                }
            }
        }
        eprintln!("boundary L2 worst dist/min at budgets {budgets:?}: {worst:.4?}");
        assert!(worst[2] <= 1.05, "{worst:?}");
    }

    #[test]
    fn boundary_attack_linf_on_linear() {
        let mut rng = fastrand::Rng::with_seed(6);
        let mut worst: f64 = 0.0;
        for d in 4..=10 {
            for _ in 0..4 {
                let target = 0.1 + 0.8 * rng.f64();
                let (mut clf, x, scale) = linear_case(&mut rng, d, Norm::Linf, target);
                let opts = BoundaryOptions { norm: Norm::Linf, budget: 3000, seed: rng.u64(..), ..Default::default() };
                let r = boundary_attack(&mut clf, &x, &scale, &opts).unwrap();
                check_rows(&clf.rows, &x, &scale, None);
                let ratio = check_result(&r, &clf, &x, &scale, opts.budget).expect("flipped");
                eprintln!(
                    "boundary Linf d={d} min={target:.3}: dist/min={ratio:.4} queries={} iterations={}",
                    r.queries, r.iterations
                );
                worst = worst.max(ratio);
            }
        }
        eprintln!("boundary Linf worst dist/min = {worst:.4}");
        assert!(worst <= 1.10, "{worst}");
    }

    /// argmax of W·x + c over k classes (ties to the lowest class), recording every row.
    struct MultiLinear {
        w: Vec<Vec<f64>>,
        c: Vec<f64>,
        queries: usize,
    }

    impl MultiLinear {
        fn scores(&self, row: &[f64]) -> Vec<f64> {
            self.w.iter().zip(&self.c).map(|(w, c)| w.iter().zip(row).map(|(w, v)| w * v).sum::<f64>() + c).collect()
        }
        fn class(&self, row: &[f64]) -> u32 {
            let s = self.scores(row);
            let mut k = 0;
            for (j, v) in s.iter().enumerate() {
                if *v > s[k] {
                    k = j;
                }
            }
            k as u32
        }
    }

    impl Classifier for MultiLinear {
        fn decide(&mut self, rows: &[f64], width: usize) -> Result<Vec<u32>, String> {
            self.queries += rows.len() / width;
            Ok(rows.chunks_exact(width).map(|r| self.class(r)).collect())
        }
    }

    #[test]
    fn boundary_attack_multiclass_linear() {
        // The nearest flip is the nearest of the half-spaces {f_j ≥ f_o}: min_j (f_o − f_j)(x) / ‖(w_o − w_j)∘s‖₂.
        let mut rng = fastrand::Rng::with_seed(17);
        let mut worst: f64 = 0.0;
        for d in [4, 7, 10] {
            for _ in 0..4 {
                let k = 4;
                let w: Vec<Vec<f64>> = (0..k).map(|_| (0..d).map(|_| normal(&mut rng)).collect()).collect();
                let scale: Vec<f64> = (0..d).map(|_| 0.5 + rng.f64()).collect();
                let x: Vec<f64> = (0..d).map(|_| normal(&mut rng)).collect();
                let mut clf = MultiLinear { w, c: vec![0.0; k], queries: 0 };
                let o = clf.class(&x) as usize;
                clf.c[o] += 1.0; // a margin for the original class
                let s = clf.scores(&x);
                let t = (0..k)
                    .filter(|&j| j != o)
                    .map(|j| {
                        let dw: Vec<f64> =
                            clf.w[o].iter().zip(&clf.w[j]).zip(&scale).map(|((a, b), s)| (a - b) * s).collect();
                        (s[o] - s[j]) / Norm::L2.of(&dw)
                    })
                    .fold(f64::INFINITY, f64::min);
                let opts = BoundaryOptions { budget: 3000, seed: rng.u64(..), ..Default::default() };
                let r = boundary_attack(&mut clf, &x, &scale, &opts).unwrap();
                assert!(r.queries <= 3000 && r.queries == clf.queries);
                let ex = r.example.as_ref().expect("flipped");
                assert_ne!(clf.class(ex), o as u32);
                let dist = scaled_distance(ex, &x, &scale, Norm::L2);
                assert!(dist >= t * (1.0 - 1e-9), "{dist} < {t}");
                worst = worst.max(dist / t);
                eprintln!("boundary multiclass d={d} min={t:.3}: dist/min={:.4} queries={}", dist / t, r.queries);
            }
        }
        eprintln!("boundary multiclass worst dist/min = {worst:.4}");
        assert!(worst <= 1.05, "{worst}");
    }

    #[test]
    fn boundary_attack_on_a_ball_classifier() {
        // Class 1 inside the scaled L2 ball of radius R around c. x outside at distance D from c (the adversarial
        // region is the ball; too small a target for the random start search, so the start is given: c itself):
        // the minimum is D − R. x inside (the adversarial region is everything outside): the minimum is R − D.
        let mut rng = fastrand::Rng::with_seed(23);
        for d in [4, 8] {
            for (dd, rr) in [(3.0, 1.0), (0.5, 1.5)] {
                let scale: Vec<f64> = (0..d).map(|_| 0.5 + rng.f64()).collect();
                let x: Vec<f64> = (0..d).map(|_| normal(&mut rng)).collect();
                let dir = unit_direction(&mut rng, d);
                let c: Vec<f64> = x.iter().zip(&dir).zip(&scale).map(|((x, u), s)| x + dd * u * s).collect();
                let (c2, s2) = (c.clone(), scale.clone());
                let inside = move |row: &[f64]| -> u32 {
                    let z: Vec<f64> = row.iter().zip(&c2).zip(&s2).map(|((v, c), s)| (v - c) / s).collect();
                    u32::from(Norm::L2.of(&z) < rr)
                };
                let mut queries = 0;
                let mut clf = |rows: &[f64], width: usize| -> Result<Vec<u32>, String> {
                    queries += rows.len() / width;
                    Ok(rows.chunks_exact(width).map(&inside).collect())
                };
                let init = (dd > rr).then(|| c.clone());
                let opts = BoundaryOptions { budget: 3000, seed: 1, init, ..Default::default() };
                let r = boundary_attack(&mut clf, &x, &scale, &opts).unwrap();
                assert!(queries <= 3000);
                assert_eq!(r.queries, queries);
                let ex = r.example.expect("flipped");
                let dist = scaled_distance(&ex, &x, &scale, Norm::L2);
                let zc: Vec<f64> = ex.iter().zip(&c).zip(&scale).map(|((v, c), s)| (v - c) / s).collect();
                assert_eq!(Norm::L2.of(&zc) < rr, dd > rr, "the example flips");
                let t: f64 = (dd - rr).abs();
                assert!(dist >= t * (1.0 - 1e-9), "{dist} < {t}");
                eprintln!("boundary ball d={d} D={dd} R={rr} min={t}: dist/min={:.4}", dist / t);
                assert!(dist <= t * 1.05, "{dist}");
            }
        }
    }

    #[test]
    fn constant_classifier_never_flips() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let scale = [1.0, 0.5, 2.0, 1.0];
        for budget in [0, 1, 2, 3, 10, 33, 257, 1000] {
            for norm in [Norm::L2, Norm::Linf] {
                let mut n = 0usize;
                let mut clf = |rows: &[f64], w: usize| -> Result<Vec<u32>, String> {
                    n += rows.len() / w;
                    Ok(vec![7; rows.len() / w])
                };
                let opts = RandomSearchOptions { norm, budget, samples_per_eps: 50, batch: 16, ..Default::default() };
                let r = random_search(&mut clf, &x, &scale, &opts).unwrap();
                assert!(!r.flipped && r.example.is_none() && r.epsilon.is_none() && r.distance.is_none());
                assert!(r.queries <= budget && r.queries == n, "{budget}: {}", r.queries);
                assert_eq!(r.original_class, (budget > 0).then_some(7));
                assert_eq!(r.queries, budget.min(1 + 5 * 50));

                for init in [None, Some(vec![9.0, 9.0, 9.0, 9.0])] {
                    let mut n = 0usize;
                    let mut clf = |rows: &[f64], w: usize| -> Result<Vec<u32>, String> {
                        n += rows.len() / w;
                        Ok(vec![7; rows.len() / w])
                    };
                    let opts = BoundaryOptions { norm, budget, init, ..Default::default() };
                    let r = boundary_attack(&mut clf, &x, &scale, &opts).unwrap();
                    assert!(!r.flipped && r.example.is_none());
                    assert!(r.queries <= budget && r.queries == n, "{budget}: {}", r.queries);
                    assert_eq!(r.iterations, 0);
                }
            }
        }
    }

    #[test]
    fn zero_and_non_finite_scales_and_values_are_never_changed() {
        let mut rng = fastrand::Rng::with_seed(29);
        let w = vec![1.0, -2.0, 0.5, 3.0, 1.0, -1.0];
        let x = vec![0.3, f64::NAN, 1.0, 2.0, -1.0, 0.5];
        let scale = vec![1.0, 1.0, 0.0, f64::INFINITY, f64::NAN, 2.0];
        // The model reads NaN as 0.
        let mut rows_seen = Vec::new();
        let mut clf = |rows: &[f64], width: usize| -> Result<Vec<u32>, String> {
            rows_seen.extend(rows.chunks_exact(width).map(<[f64]>::to_vec));
            Ok(rows
                .chunks_exact(width)
                .map(|r| {
                    let s: f64 = r.iter().zip(&w).map(|(v, w)| if v.is_nan() { 0.0 } else { v * w }).sum();
                    u32::from(s > 6.0)
                })
                .collect())
        };
        for norm in [Norm::L2, Norm::Linf] {
            let opts = RandomSearchOptions { norm, seed: rng.u64(..), ..Default::default() };
            random_search(&mut clf, &x, &scale, &opts).unwrap();
            let opts = BoundaryOptions { norm, seed: rng.u64(..), budget: 500, ..Default::default() };
            let r = boundary_attack(&mut clf, &x, &scale, &opts).unwrap();
            assert!(r.flipped);
        }
        assert!(rows_seen.len() > 1000);
        check_rows(&rows_seen, &x, &scale, None);
        // All scales unusable: nothing to perturb, nothing queried.
        let mut calls = 0;
        let mut clf = |_: &[f64], _: usize| -> Result<Vec<u32>, String> {
            calls += 1;
            Err("unreachable".into())
        };
        let r = random_search(&mut clf, &[1.0, 2.0], &[0.0, f64::NAN], &RandomSearchOptions::default()).unwrap();
        assert_eq!((r.flipped, r.queries, r.original_class), (false, 0, None));
        let r = boundary_attack(&mut clf, &[1.0, 2.0], &[0.0, -1.0], &BoundaryOptions::default()).unwrap();
        assert_eq!((r.flipped, r.queries, r.original_class), (false, 0, None));
        assert_eq!(calls, 0);
    }

    #[test]
    fn bounds_are_respected_by_every_candidate() {
        let mut rng = fastrand::Rng::with_seed(31);
        for norm in [Norm::L2, Norm::Linf] {
            let (mut clf, x, scale) = linear_case(&mut rng, 6, norm, 0.6);
            // Tight boxes around x, one side open, one NaN side, and one box that excludes x (widened to it).
            let mut bounds: Vec<(f64, f64)> =
                x.iter().zip(&scale).map(|(&v, &s)| (v - 0.3 * s.max(0.1), v + 0.4 * s.max(0.1))).collect();
            bounds[0].0 = f64::NEG_INFINITY;
            bounds[2].1 = f64::NAN;
            bounds[3] = (x[3] + 1.0, x[3] + 2.0);
            bounds[4] = (x[4], x[4]);
            let opts = RandomSearchOptions {
                norm,
                epsilons: vec![0.1, 0.5, 1.0, 2.0, 4.0],
                seed: 1,
                bounds: Some(bounds.clone()),
                ..Default::default()
            };
            let r = random_search(&mut clf, &x, &scale, &opts).unwrap();
            check_result(&r, &clf, &x, &scale, opts.budget);
            check_rows(&clf.rows, &x, &scale, Some(&bounds));
            clf.rows.clear();
            clf.calls = 0;
            let opts = BoundaryOptions { norm, seed: 2, bounds: Some(bounds.clone()), ..Default::default() };
            let r = boundary_attack(&mut clf, &x, &scale, &opts).unwrap();
            check_result(&r, &clf, &x, &scale, opts.budget);
            check_rows(&clf.rows, &x, &scale, Some(&bounds));
            assert!(clf.rows.iter().any(|row| row[3] == x[3] + 2.0), "the widened box is used up to its far end");
            assert!(clf.rows.iter().all(|row| row[4] == x[4]));
        }
    }

    #[test]
    fn errors_are_reported() {
        let mut ok = |rows: &[f64], w: usize| -> Result<Vec<u32>, String> { Ok(vec![0; rows.len() / w]) };
        let rs = RandomSearchOptions::default();
        let ba = BoundaryOptions::default();
        assert_eq!(random_search(&mut ok, &[], &[], &rs), Err(AttackError::EmptyInput));
        assert_eq!(boundary_attack(&mut ok, &[], &[], &ba), Err(AttackError::EmptyInput));
        let e = random_search(&mut ok, &[1.0, 2.0], &[1.0], &rs).unwrap_err();
        assert_eq!(e, AttackError::WidthMismatch { what: "scale", expected: 2, got: 1 });
        let bad_bounds = RandomSearchOptions { bounds: Some(vec![(0.0, 1.0)]), ..rs.clone() };
        assert!(matches!(
            random_search(&mut ok, &[1.0, 2.0], &[1.0, 1.0], &bad_bounds),
            Err(AttackError::WidthMismatch { what: "bounds", .. })
        ));
        let crossed = BoundaryOptions { bounds: Some(vec![(0.0, 1.0), (3.0, 2.0)]), ..ba.clone() };
        assert!(matches!(
            boundary_attack(&mut ok, &[1.0, 2.0], &[1.0, 1.0], &crossed),
            Err(AttackError::InvalidBounds { feature: 1, .. })
        ));
        let init = BoundaryOptions { init: Some(vec![1.0]), ..ba.clone() };
        assert!(matches!(
            boundary_attack(&mut ok, &[1.0, 2.0], &[1.0, 1.0], &init),
            Err(AttackError::WidthMismatch { what: "init", .. })
        ));
        for eps in [vec![], vec![0.1, 0.1], vec![0.2, 0.1], vec![-0.1], vec![f64::NAN], vec![f64::INFINITY]] {
            let o = RandomSearchOptions { epsilons: eps.clone(), ..rs.clone() };
            assert!(matches!(random_search(&mut ok, &[1.0], &[1.0], &o), Err(AttackError::InvalidOption(_))));
            let o = BoundaryOptions { init_epsilons: eps, ..ba.clone() };
            assert!(matches!(boundary_attack(&mut ok, &[1.0], &[1.0], &o), Err(AttackError::InvalidOption(_))));
        }
        for o in [RandomSearchOptions { batch: 0, ..rs.clone() }, RandomSearchOptions { samples_per_eps: 0, ..rs }] {
            assert!(matches!(random_search(&mut ok, &[1.0], &[1.0], &o), Err(AttackError::InvalidOption(_))));
        }
        for o in [
            BoundaryOptions { init_samples: 0, ..ba.clone() },
            BoundaryOptions { init_evals: 0, ..ba.clone() },
            BoundaryOptions { max_evals: 0, ..ba.clone() },
            BoundaryOptions { gamma: 0.0, ..ba.clone() },
            BoundaryOptions { gamma: f64::NAN, ..ba.clone() },
            BoundaryOptions { tolerance: 0.0, ..ba.clone() },
            BoundaryOptions { tolerance: 1.0, ..ba.clone() },
            BoundaryOptions { tolerance: f64::NAN, ..ba.clone() },
        ] {
            assert!(matches!(boundary_attack(&mut ok, &[1.0], &[1.0], &o), Err(AttackError::InvalidOption(_))));
        }

        // A model error on the third call: reported with what was spent, this call included.
        let mut calls = 0;
        let mut flaky = |rows: &[f64], w: usize| -> Result<Vec<u32>, String> {
            calls += 1;
            if calls == 3 {
                Err("503 from the model server".into())
            } else {
                Ok(vec![0; rows.len() / w])
            }
        };
        // Calls: x + 3 samples, 4, 4 (the error): 11 rows.
        let o = RandomSearchOptions { samples_per_eps: 10, batch: 4, ..Default::default() };
        let e = random_search(&mut flaky, &[1.0, 2.0], &[1.0, 1.0], &o).unwrap_err();
        assert_eq!(e, AttackError::Model { message: "503 from the model server".into(), queries: 11, calls: 3 });
        assert!(e.to_string().contains("503"));
        // Wrong number of decisions.
        let mut short = |rows: &[f64], w: usize| -> Result<Vec<u32>, String> { Ok(vec![0; rows.len() / w - 1]) };
        let e = boundary_attack(&mut short, &[1.0, 2.0], &[1.0, 1.0], &BoundaryOptions::default()).unwrap_err();
        assert!(matches!(e, AttackError::ModelOutput { expected: 33, got: 32, queries: 33, calls: 1 }), "{e:?}");
    }

    #[test]
    fn deterministic_for_a_seed() {
        let mut rng = fastrand::Rng::with_seed(37);
        let (clf, x, scale) = linear_case(&mut rng, 5, Norm::L2, 0.5);
        let run = |seed: u64| {
            let mut c = Linear::new(clf.w.clone(), clf.b);
            let a = random_search(&mut c, &x, &scale, &RandomSearchOptions { seed, ..Default::default() }).unwrap();
            let b = boundary_attack(&mut c, &x, &scale, &BoundaryOptions { seed, budget: 800, ..Default::default() })
                .unwrap();
            (a, b, c.rows)
        };
        let (a1, b1, rows1) = run(42);
        let (a2, b2, rows2) = run(42);
        assert_eq!((&a1, &b1), (&a2, &b2));
        assert_eq!(rows1.len(), rows2.len());
        assert!(rows1.iter().zip(&rows2).all(|(p, q)| p.iter().zip(q).all(|(u, v)| u.to_bits() == v.to_bits())));
        let (_, b3, _) = run(43);
        assert_ne!(b1.example, b3.example);
    }

    #[test]
    fn init_point_is_used_or_replaced() {
        let mut rng = fastrand::Rng::with_seed(41);
        let (clf, x, scale) = linear_case(&mut rng, 6, Norm::L2, 0.5);
        // An adversarial start: x pushed against the weights (inactive feature 1 set to junk, reset to x's).
        let mut far: Vec<f64> = x.iter().zip(&clf.w).zip(&scale).map(|((v, w), s)| v - 5.0 * w.signum() * s).collect();
        far[1] = 1e6;
        let mut c = Linear::new(clf.w.clone(), clf.b);
        let opts = BoundaryOptions { init: Some(far.clone()), budget: 2000, ..Default::default() };
        let r = boundary_attack(&mut c, &x, &scale, &opts).unwrap();
        assert_eq!(c.rows[0], x);
        assert_eq!(c.rows[1][1], x[1]);
        assert_ne!(c.class(&c.rows[1]), 1, "the init is scored in the first call, with x");
        assert!(c.calls > 0 && c.rows.len() == r.queries);
        let ratio = check_result(&r, &c, &x, &scale, 2000).unwrap();
        assert!(ratio < 1.05, "{ratio}");
        // A start that does not flip: the random start search takes over.
        let mut c = Linear::new(clf.w.clone(), clf.b);
        let opts = BoundaryOptions { init: Some(x.clone()), budget: 2000, ..Default::default() };
        let r = boundary_attack(&mut c, &x, &scale, &opts).unwrap();
        let ratio = check_result(&r, &c, &x, &scale, 2000).unwrap();
        assert!(ratio < 1.05, "{ratio}");
    }

    #[test]
    fn tiny_budgets_are_honoured() {
        let mut rng = fastrand::Rng::with_seed(43);
        for norm in [Norm::L2, Norm::Linf] {
            let (clf, x, scale) = linear_case(&mut rng, 7, norm, 0.4);
            for budget in (0..80).chain([97, 150, 333]) {
                let mut c = Linear::new(clf.w.clone(), clf.b);
                let opts = BoundaryOptions { norm, budget, seed: budget as u64, ..Default::default() };
                let r = boundary_attack(&mut c, &x, &scale, &opts).unwrap();
                check_result(&r, &c, &x, &scale, budget);
                let mut c = Linear::new(clf.w.clone(), clf.b);
                let opts = RandomSearchOptions { norm, budget, seed: budget as u64, ..Default::default() };
                let r = random_search(&mut c, &x, &scale, &opts).unwrap();
                check_result(&r, &c, &x, &scale, budget);
            }
        }
    }
}
