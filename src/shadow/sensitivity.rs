//! Local sensitivity: how much the model's answer for one live row moves when one feature moves
//! and the others stay, and how often the decision flips.
//!
//! Owns: the perturbation plan and its summary ([`sensitivity`]). May not touch: bodies, the
//! network, clocks (the [`Oracle`] is the model).
//!
//! # The plan
//! For a live row `x` in the codebook's space:
//! - each numeric feature `i` moves to `x[i] ± k·scale(i)` for each `k` in `steps` (so `k` is in
//!   reference standard deviations), all other features as in `x`;
//! - each categorical feature takes each of its `max_categories` most frequent reference
//!   categories other than its own;
//! - a feature missing in `x` (`NaN`, including features the live request did not carry) is
//!   skipped: there is no value to move from.
//!
//! All the rows go to the model in one [`Oracle::ask`], `x` itself first (row 0), so one job is
//! one request (the oracle splits it if it must).
//!
//! # The summary, per feature
//! - `mean_abs_delta_per_unit`: the mean over its perturbations of `|score(x') − score(x)| / k`
//!   for a numeric feature (the change per standard deviation), `|score(x') − score(x)|` for a
//!   categorical one (per swap). For a linear model `Σ wᵢxᵢ` it is exactly `|wᵢ|·scale(i)`.
//! - `flip_rate` (classifier only): the share of its perturbations whose class differs from
//!   `x`'s.
//! - `invalid`: perturbations whose answer was invalid (NaN score, no class); they are left out
//!   of the mean and the rate. When `x`'s own answer is invalid there is nothing to compare with,
//!   and the means and rates are absent.

use super::answers::NO_CLASS;
use super::rows::{code_index, Codebook};
use super::Oracle;
use crate::config::SensitivityConfig;
use crate::monitor::schema::Kind;
use serde::Serialize;

/// What to perturb.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensitivityOptions {
    /// Steps `k` in reference standard deviations; each numeric feature moves by `±k`.
    pub steps: Vec<f64>,
    /// Other categories each categorical feature takes (the most frequent first).
    pub max_categories: usize,
}

impl SensitivityOptions {
    /// `[shadow.sensitivity]`'s `steps` and `max_categories`.
    pub fn from_config(cfg: &SensitivityConfig) -> SensitivityOptions {
        SensitivityOptions { steps: cfg.steps.clone(), max_categories: cfg.max_categories }
    }

    /// Rows one job sends for `x`: `x` itself and each perturbation.
    pub fn rows(&self, x: &[f64], book: &Codebook) -> usize {
        1 + plan(x, book, self).iter().map(|p| p.moves.len()).sum::<usize>()
    }
}

impl Default for SensitivityOptions {
    fn default() -> Self {
        SensitivityOptions::from_config(&SensitivityConfig::default())
    }
}

/// One feature's sensitivity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureSensitivity {
    pub feature: String,
    pub kind: Kind,
    /// Perturbed rows sent for this feature.
    pub rows: usize,
    /// Mean `|Δscore|` per standard deviation (numeric) or per swap (categorical); None when no
    /// perturbation had a valid answer (or `x`'s answer was invalid).
    pub mean_abs_delta_per_unit: Option<f64>,
    /// Share of perturbations whose class differs from `x`'s; None for a regression model.
    pub flip_rate: Option<f64>,
    /// Perturbations whose answer was invalid.
    pub invalid: usize,
    /// Why the feature was not perturbed, if it was not.
    pub skipped: Option<&'static str>,
}

/// The result of one sensitivity job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sensitivity {
    /// The model's score at `x` (None if its answer was invalid).
    pub score: Option<f64>,
    /// The model's class at `x` (classifier with a valid answer).
    pub class: Option<u32>,
    /// Rows sent, `x` included.
    pub rows: usize,
    /// Rows whose answer was invalid, `x` included.
    pub invalid: usize,
    /// Per feature, in schema order.
    pub features: Vec<FeatureSensitivity>,
}

/// Why a sensitivity job could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SensitivityError {
    /// `x` does not have one value per codebook feature.
    #[error("the row has {got} values, the codebook {expected} features")]
    Width { expected: usize, got: usize },
    /// An option outside its domain.
    #[error("invalid sensitivity option: {0}")]
    Options(String),
    /// The model call failed.
    #[error("model error: {0}")]
    Model(String),
    /// The model answered a different number of rows.
    #[error("the model answered {got} rows of {expected}")]
    Output { expected: usize, got: usize },
}

/// One feature's perturbations: the new value and the unit its change is divided by.
struct FeaturePlan {
    feature: usize,
    moves: Vec<(f64, f64)>,
    skipped: Option<&'static str>,
}

fn plan(x: &[f64], book: &Codebook, opts: &SensitivityOptions) -> Vec<FeaturePlan> {
    (0..book.width().min(x.len()))
        .map(|i| {
            let v = x[i];
            let mut p = FeaturePlan { feature: i, moves: Vec::new(), skipped: None };
            if !v.is_finite() {
                p.skipped = Some("missing in the live row");
            } else if book.is_categorical(i) {
                let own = code_index(v);
                let n = book.frequent(i, opts.max_categories.saturating_add(1)).len();
                p.moves =
                    (0..n).filter(|&c| Some(c) != own).take(opts.max_categories).map(|c| (c as f64, 1.0)).collect();
                if p.moves.is_empty() {
                    p.skipped = Some("no other reference category");
                }
            } else {
                let s = book.scale(i);
                for &k in &opts.steps {
                    p.moves.push((v + k * s, k));
                    p.moves.push((v - k * s, k));
                }
            }
            p
        })
        .collect()
}

/// Measures the sensitivity of the model's answer at `x` (a live row in `book`'s space) to each
/// feature, with one [`Oracle::ask`] of [`SensitivityOptions::rows`] rows. See the module doc.
pub fn sensitivity(
    oracle: &mut dyn Oracle,
    x: &[f64],
    book: &Codebook,
    opts: &SensitivityOptions,
) -> Result<Sensitivity, SensitivityError> {
    let width = book.width();
    if x.len() != width || width == 0 {
        return Err(SensitivityError::Width { expected: width, got: x.len() });
    }
    if opts.steps.is_empty() || opts.steps.iter().any(|k| !(k.is_finite() && *k > 0.0)) {
        return Err(SensitivityError::Options(format!(
            "steps {:?}: at least one positive, finite number of standard deviations",
            opts.steps
        )));
    }
    let plan = plan(x, book, opts);
    let n = 1 + plan.iter().map(|p| p.moves.len()).sum::<usize>();
    let mut rows = Vec::with_capacity(n * width);
    rows.extend_from_slice(x);
    for p in &plan {
        for &(value, _) in &p.moves {
            let start = rows.len();
            rows.extend_from_slice(x);
            rows[start + p.feature] = value;
        }
    }
    let answers = oracle.ask(&rows, width).map_err(SensitivityError::Model)?;
    if answers.scores.len() != n {
        return Err(SensitivityError::Output { expected: n, got: answers.scores.len() });
    }
    if let Some(c) = answers.classes.as_ref().filter(|c| c.len() != n) {
        return Err(SensitivityError::Output { expected: n, got: c.len() });
    }
    let classes = answers.classes.as_deref();
    let base = answers.scores[0];
    let base_class = classes.map(|c| c[0]).filter(|&c| c != NO_CLASS);
    let mut row = 1;
    let mut features = Vec::with_capacity(plan.len());
    for p in &plan {
        let (mut sum, mut valid, mut invalid, mut flips, mut decided) = (0.0, 0usize, 0usize, 0usize, 0usize);
        for &(_, unit) in &p.moves {
            let s = answers.scores[row];
            let class = classes.map(|c| c[row]);
            if s.is_nan() || class == Some(NO_CLASS) {
                invalid += 1;
            }
            if !s.is_nan() && !base.is_nan() {
                sum += (s - base).abs() / unit;
                valid += 1;
            }
            if let (Some(c), Some(b)) = (class.filter(|&c| c != NO_CLASS), base_class) {
                decided += 1;
                flips += usize::from(c != b);
            }
            row += 1;
        }
        features.push(FeatureSensitivity {
            feature: book.name(p.feature).to_owned(),
            kind: book.kind(p.feature),
            rows: p.moves.len(),
            mean_abs_delta_per_unit: (valid > 0).then(|| sum / valid as f64),
            flip_rate: (classes.is_some() && decided > 0).then(|| flips as f64 / decided as f64),
            invalid,
            skipped: p.skipped,
        });
    }
    let invalid =
        answers.scores.iter().zip(0..).filter(|(s, r)| s.is_nan() || classes.map(|c| c[*r]) == Some(NO_CLASS)).count();
    Ok(Sensitivity { score: (!base.is_nan()).then_some(base), class: base_class, rows: n, invalid, features })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shadow::rows::testing::{profile, Ref};
    use crate::shadow::Answers;

    /// a, b: numeric; c: constant (its scale falls back to 1); region: n, s, e, w by frequency.
    fn book() -> Codebook {
        Codebook::from_profile(&profile(
            vec![
                ("a", Ref::Num(vec![1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0])),
                ("b", Ref::Num(vec![0.0, 0.0, 10.0, 10.0, 0.0, 10.0, 5.0])),
                ("c", Ref::Num(vec![3.0; 7])),
                ("region", Ref::Cat(vec!["n", "n", "n", "s", "s", "e", "w"])),
            ],
            &[],
        ))
    }

    /// A model as a function of one row; counts calls.
    struct Model<F: FnMut(&[f64]) -> (f64, Option<u32>)> {
        f: F,
        calls: usize,
    }

    impl<F: FnMut(&[f64]) -> (f64, Option<u32>)> Oracle for Model<F> {
        fn ask(&mut self, rows: &[f64], width: usize) -> Result<Answers, String> {
            self.calls += 1;
            let mut a = Answers::default();
            let mut classes = Vec::new();
            for r in rows.chunks(width) {
                let (s, c) = (self.f)(r);
                a.scores.push(s);
                if s.is_nan() {
                    a.invalid += 1;
                }
                if let Some(c) = c {
                    classes.push(c);
                }
            }
            a.classes = (!classes.is_empty()).then_some(classes);
            Ok(a)
        }
    }

    #[test]
    fn a_linear_model_has_sensitivity_w_times_scale_in_one_call() {
        let b = book();
        let w = [2.0, -0.5, 3.0, 0.25];
        let mut m = Model { f: |r: &[f64]| (r.iter().zip(&w).map(|(x, w)| x * w).sum(), None), calls: 0 };
        let x = [2.5, 5.0, 3.0, 1.0];
        let opts = SensitivityOptions { steps: vec![0.1, 0.5, 1.0], max_categories: 2 };
        let s = sensitivity(&mut m, &x, &b, &opts).unwrap();
        assert_eq!(m.calls, 1, "one job, one request");
        assert_eq!(s.rows, 1 + 3 * 6 + 2);
        assert_eq!(s.rows, opts.rows(&x, &b));
        assert_eq!(s.score, Some(2.0 * 2.5 - 0.5 * 5.0 + 9.0 + 0.25));
        for (i, (f, w)) in s.features.iter().zip(w).take(3).enumerate() {
            let got = f.mean_abs_delta_per_unit.unwrap();
            let want = w.abs() * b.scale(i);
            assert!((got - want).abs() <= 1e-12 * want, "feature {i}: {got} vs {want}");
            assert_eq!(f.rows, 6);
            assert_eq!(f.flip_rate, None, "a regression model has no flips");
        }
        assert_eq!(b.scale(2), 1.0);
        // region is code 1 ("s"); the two most frequent others are codes 0 and 2: |Δ| = 0.25 each.
        assert_eq!(s.features[3].mean_abs_delta_per_unit, Some(0.25));
        assert_eq!(s.features[3].rows, 2);
        assert_eq!(s.features[3].kind, Kind::Categorical);
    }

    #[test]
    fn a_step_classifier_flips_as_counted_by_hand() {
        let b = book();
        let s_a = b.scale(0);
        // Class 1 when a > 2 + 0.3·std(a): from a = 2, +0.5 and +1.0 std flip; nothing else.
        let t = 2.0 + 0.3 * s_a;
        let f = |r: &[f64]| {
            let c = u32::from(r[0] > t);
            (c as f64, Some(c))
        };
        let mut m = Model { f, calls: 0 };
        let x = [2.0, 0.0, 3.0, 0.0];
        let s = sensitivity(&mut m, &x, &b, &SensitivityOptions::default()).unwrap();
        assert_eq!(s.class, Some(0));
        assert_eq!(s.features[0].flip_rate, Some(2.0 / 6.0));
        // |Δ| = 1 at +0.5 (÷0.5) and +1.0 (÷1.0): (2 + 1) / 6.
        assert_eq!(s.features[0].mean_abs_delta_per_unit, Some(3.0 / 6.0));
        assert_eq!(s.features[1].flip_rate, Some(0.0));
        assert_eq!(s.features[3].flip_rate, Some(0.0));
        // region "n" (code 0) has three other categories: max_categories 5 takes them all.
        assert_eq!(s.features[3].rows, 3);
    }

    #[test]
    fn missing_features_are_skipped_and_invalid_answers_counted_not_averaged() {
        let b = book();
        let f = |r: &[f64]| (if r[1] > 6.0 { f64::NAN } else { r[1] }, None);
        let mut m = Model { f, calls: 0 };
        let x = [f64::NAN, 5.0, 3.0, f64::NAN];
        let s = sensitivity(&mut m, &x, &b, &SensitivityOptions { steps: vec![1.0], max_categories: 3 }).unwrap();
        assert_eq!(s.rows, 1 + 2 + 2);
        assert_eq!(s.features[0].skipped, Some("missing in the live row"));
        assert_eq!(s.features[0].rows, 0);
        assert_eq!(s.features[3].skipped, Some("missing in the live row"));
        assert_eq!(s.features[1].invalid, 1, "5 + std(b) is beyond 6: NaN");
        let only_valid = s.features[1].mean_abs_delta_per_unit.unwrap();
        assert!((only_valid - b.scale(1)).abs() < 1e-12, "only the valid one, 5 − std(b): {only_valid}");
        assert_eq!(s.invalid, 1);
    }

    #[test]
    fn an_invalid_answer_at_x_leaves_nothing_to_compare() {
        let b = book();
        let mut m = Model { f: |r: &[f64]| (if r[0] == 2.0 { f64::NAN } else { 1.0 }, None), calls: 0 };
        let s = sensitivity(&mut m, &[2.0, 0.0, 3.0, 0.0], &b, &SensitivityOptions::default()).unwrap();
        assert_eq!(s.score, None);
        assert!(s.features.iter().all(|f| f.mean_abs_delta_per_unit.is_none()));
    }

    #[test]
    fn errors_say_what_was_expected() {
        let b = book();
        let mut m = Model { f: |_: &[f64]| (0.0, None), calls: 0 };
        let opts = SensitivityOptions::default();
        assert_eq!(sensitivity(&mut m, &[1.0], &b, &opts), Err(SensitivityError::Width { expected: 4, got: 1 }));
        let bad = SensitivityOptions { steps: vec![0.5, -1.0], max_categories: 1 };
        assert!(matches!(sensitivity(&mut m, &[1.0; 4], &b, &bad), Err(SensitivityError::Options(_))));
        let bad = SensitivityOptions { steps: vec![], max_categories: 1 };
        assert!(matches!(sensitivity(&mut m, &[1.0; 4], &b, &bad), Err(SensitivityError::Options(_))));
        assert_eq!(m.calls, 0);

        struct Failing;
        impl Oracle for Failing {
            fn ask(&mut self, _: &[f64], _: usize) -> Result<Answers, String> {
                Err("502 upstream_unavailable".into())
            }
        }
        let e = sensitivity(&mut Failing, &[1.0; 4], &b, &opts).unwrap_err();
        assert_eq!(e.to_string(), "model error: 502 upstream_unavailable");

        struct Short;
        impl Oracle for Short {
            fn ask(&mut self, _: &[f64], _: usize) -> Result<Answers, String> {
                Ok(Answers { scores: vec![1.0], classes: None, invalid: 0 })
            }
        }
        assert!(matches!(sensitivity(&mut Short, &[1.0; 4], &b, &opts), Err(SensitivityError::Output { got: 1, .. })));
    }
}
