//! The robustness book: per model version, the aggregated results of the what-if kinds (sensitivity, stress,
//! adversarial search) and of sampled explanations, as served by GET /admin/robustness and published as gauges.
//!
//! Owns: bounded summaries of the jobs folded in, the [`Importance`] of the explanations, the last few
//! explanations per version (GET /admin/explain). May not touch: anything but its own state (no I/O, no clock);
//! it runs on the thread that owns it and is handed finished results.
//!
//! Bounds: sensitivity keeps the last [`JOBS`] results per feature, adversarial the last [`JOBS`] attacks, stress
//! the latest run plus counts by case and outcome, explanations the last [`KEPT_EXPLANATIONS`]; at most
//! [`MAX_VERSIONS`] versions (the least recently updated is forgotten), [`MAX_FEATURES`] features and
//! [`MAX_CASES`] stress cases per version, [`MAX_OUTCOMES`] outcomes per case. Inputs that do not fit (NaN,
//! negative, beyond a bound) are ignored and counted in [`Book::ignored`]; nothing panics.

use super::attack::{AttackResult, Norm};
use super::explain::{Explanation, LimeExplanation};
use super::importance::{self, Importance, ImportanceReport};
use crate::config::ExplainMethod;
use crate::telemetry;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

/// Jobs (sensitivity, per feature) and attacks (adversarial) each summary covers: the last this many.
pub const JOBS: usize = 100;
/// Explanations kept per version for listing.
pub const KEPT_EXPLANATIONS: usize = 20;
/// Versions kept at most.
pub const MAX_VERSIONS: usize = importance::MAX_VERSIONS;
/// Sensitivity features per version at most.
pub const MAX_FEATURES: usize = 1024;
/// Distinct stress cases per version at most (and cases per run).
pub const MAX_CASES: usize = 64;
/// Distinct outcomes counted per stress case at most.
pub const MAX_OUTCOMES: usize = 16;

// ---------------------------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------------------------

/// One feature's result in one sensitivity job.
#[derive(Debug, Clone, PartialEq)]
pub struct SensitivityFeature {
    pub feature: String,
    /// Mean |change of the score| per reference standard deviation (per category swap for a categorical).
    pub mean_abs_delta: f64,
    /// Share of this feature's perturbations that changed the predicted class; None for a regression model.
    pub flip_rate: Option<f64>,
    /// Perturbations evaluated (answered validly): the weight of this result.
    pub evaluated: usize,
}

/// One sensitivity job's results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SensitivityInput {
    pub per_feature: Vec<SensitivityFeature>,
}

/// One case of a stress run.
#[derive(Debug, Clone, PartialEq)]
pub struct StressCase {
    /// The case's name ("nan", "large_batch", …).
    pub case: String,
    /// How it ended ("ok", "rejected", "error", "timeout", …).
    pub outcome: String,
    /// HTTP status, 0 when there was none.
    pub status: u16,
    pub latency_s: f64,
    /// Invalid outputs in the answer (NaN, probabilities outside [0, 1]).
    pub invalid: usize,
}

/// One stress run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StressInput {
    pub cases: Vec<StressCase>,
}

// ---------------------------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------------------------

/// GET /admin/robustness.
#[derive(Debug, Clone, Serialize)]
pub struct RobustnessReport {
    /// One object per version, by name.
    pub versions: Vec<VersionRobustness>,
    /// Inputs ignored since start (NaN, negative, beyond a bound, wrong width).
    pub ignored: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionRobustness {
    pub version: String,
    pub sensitivity: Option<SensitivitySummary>,
    pub stress: Option<StressSummary>,
    pub adversarial: Option<AdversarialSummary>,
    pub importance: Option<ImportanceReport>,
    /// Explanations recorded for this version since start (the last few are listed by GET /admin/explain).
    pub explanations: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SensitivitySummary {
    /// Jobs folded in since start.
    pub jobs: u64,
    /// Share of perturbations that flipped the class over every feature's recent jobs (weighted by evaluated);
    /// None for a regression model.
    pub flip_ratio: Option<f64>,
    /// By decreasing `mean_abs_delta`.
    pub features: Vec<FeatureSensitivity>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeatureSensitivity {
    pub feature: String,
    /// Mean |change of the score| per standard deviation over this feature's last [`JOBS`] jobs, weighted by
    /// the perturbations each evaluated (the mean over all those perturbations).
    pub mean_abs_delta: f64,
    pub flip_rate: Option<f64>,
    /// Perturbations behind these numbers.
    pub evaluated: u64,
    /// Jobs behind these numbers (at most [`JOBS`]).
    pub jobs: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct StressSummary {
    /// Runs folded in since start.
    pub runs: u64,
    /// The latest run's cases.
    pub latest: Vec<StressCaseResult>,
    /// Per case since start, by name.
    pub totals: Vec<StressCaseTotals>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StressCaseResult {
    pub case: String,
    pub outcome: String,
    pub status: u16,
    /// None when the input was not a finite non-negative number.
    pub latency_s: Option<f64>,
    pub invalid: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct StressCaseTotals {
    pub case: String,
    pub runs: u64,
    /// Invalid outputs seen in this case since start.
    pub invalid: u64,
    /// Outcome → runs.
    pub outcomes: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AdversarialSummary {
    /// Attacks folded in since start.
    pub samples: u64,
    /// Attacks the numbers below are over (the last [`JOBS`], since the norm last changed).
    pub window: usize,
    pub norm: Norm,
    /// ε of the latest attack, in reference standard deviations.
    pub epsilon: f64,
    /// Share of the window's attacks whose decision flipped within their ε.
    pub flip_ratio: f64,
    /// Attacks of the window that flipped at any distance.
    pub flipped: usize,
    /// Median distance that flipped, over the window's flipped attacks (None when none flipped).
    pub epsilon_median: Option<f64>,
    /// Mean rows scored per attack over the window.
    pub mean_queries: f64,
}

/// One explanation, as GET /admin/explain lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExplanationRecord {
    pub request_id: String,
    pub version: String,
    pub method: ExplainMethod,
    /// Kernel SHAP: one SHAP value per feature; LIME: the surrogate's coefficients per standard deviation.
    pub values: Vec<f64>,
    /// The model's output for the explained row.
    pub prediction: f64,
    /// Kernel SHAP's base value (mean output over the background).
    pub base_value: Option<f64>,
    /// LIME's surrogate weighted R².
    pub score: Option<f64>,
}

impl ExplanationRecord {
    pub fn shap(version: &str, request_id: &str, e: &Explanation) -> ExplanationRecord {
        ExplanationRecord {
            request_id: request_id.to_owned(),
            version: version.to_owned(),
            method: ExplainMethod::KernelShap,
            values: e.values.clone(),
            prediction: e.prediction,
            base_value: Some(e.base_value),
            score: None,
        }
    }

    pub fn lime(version: &str, request_id: &str, e: &LimeExplanation) -> ExplanationRecord {
        ExplanationRecord {
            request_id: request_id.to_owned(),
            version: version.to_owned(),
            method: ExplainMethod::Lime,
            values: e.coefficients.clone(),
            prediction: e.prediction,
            base_value: None,
            score: Some(e.score),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Book
// ---------------------------------------------------------------------------------------------------------------

/// Per version, what the what-if kinds found.
#[derive(Debug, Clone)]
pub struct Book {
    importance: Importance,
    versions: BTreeMap<String, VersionBook>,
    tick: u64,
    ignored: u64,
}

#[derive(Debug, Clone, Default)]
struct VersionBook {
    touched: u64,
    sensitivity: Option<SensitivityBook>,
    stress: Option<StressBook>,
    adversarial: Option<AdversarialBook>,
    /// (order of arrival in this book, record), oldest first.
    explanations: VecDeque<(u64, ExplanationRecord)>,
    explained: u64,
}

#[derive(Debug, Clone, Default)]
struct SensitivityBook {
    jobs: u64,
    /// Feature → its last [`JOBS`] results (mean_abs_delta, flip_rate, evaluated).
    features: BTreeMap<String, VecDeque<(f64, Option<f64>, usize)>>,
}

#[derive(Debug, Clone, Default)]
struct StressBook {
    runs: u64,
    latest: Vec<StressCaseResult>,
    totals: BTreeMap<String, StressCaseTotals>,
}

#[derive(Debug, Clone)]
struct AdversarialBook {
    samples: u64,
    norm: Norm,
    epsilon: f64,
    recent: VecDeque<AttackSample>,
}

#[derive(Debug, Clone, Copy)]
struct AttackSample {
    within: bool,
    /// The distance that flipped, when it flipped.
    distance: Option<f64>,
    queries: usize,
}

impl Book {
    /// `features` name the values of explanations (the reference's feature columns); `importance_window` is
    /// `shadow.explain.window`.
    pub fn new(features: Vec<String>, importance_window: usize) -> Book {
        Book {
            importance: Importance::new(features, importance_window),
            versions: BTreeMap::new(),
            tick: 0,
            ignored: 0,
        }
    }

    /// A new reference (new feature columns): global importance and the explanation listings restart; the
    /// sensitivity, stress and adversarial summaries are kept (sensitivity is keyed by feature name).
    pub fn set_features(&mut self, features: Vec<String>) {
        self.importance = Importance::new(features, self.importance.window());
        for v in self.versions.values_mut() {
            v.explanations.clear();
        }
    }

    pub fn importance(&self) -> &Importance {
        &self.importance
    }

    /// Inputs ignored so far (this book's and its importance's).
    pub fn ignored(&self) -> u64 {
        self.ignored + self.importance.ignored()
    }

    /// Forgets a version (deleted from the routes).
    pub fn remove_version(&mut self, version: &str) {
        self.versions.remove(version);
        self.importance.remove(version);
    }

    fn version(&mut self, version: &str) -> &mut VersionBook {
        self.tick += 1;
        if !self.versions.contains_key(version) && self.versions.len() >= MAX_VERSIONS {
            if let Some(oldest) = self.versions.iter().min_by_key(|(_, b)| b.touched).map(|(k, _)| k.clone()) {
                self.versions.remove(&oldest);
                self.importance.remove(&oldest);
            }
        }
        let b = self.versions.entry(version.to_owned()).or_default();
        b.touched = self.tick;
        b
    }

    /// Folds in one sensitivity job. A feature result with a NaN or negative delta, or nothing evaluated, is
    /// ignored; a flip rate outside [0, 1] is dropped (the delta is kept). Both are counted.
    pub fn add_sensitivity(&mut self, version: &str, input: &SensitivityInput) {
        let mut ignored = 0;
        let b = self.version(version).sensitivity.get_or_insert_with(Default::default);
        b.jobs += 1;
        for f in &input.per_feature {
            if !(f.mean_abs_delta.is_finite() && f.mean_abs_delta >= 0.0) || f.evaluated == 0 {
                ignored += 1;
                continue;
            }
            let flip = match f.flip_rate {
                Some(r) if (0.0..=1.0).contains(&r) => Some(r),
                Some(_) => {
                    ignored += 1;
                    None
                }
                None => None,
            };
            if !b.features.contains_key(&f.feature) && b.features.len() >= MAX_FEATURES {
                ignored += 1;
                continue;
            }
            let ring = b.features.entry(f.feature.clone()).or_default();
            if ring.len() == JOBS {
                ring.pop_front();
            }
            ring.push_back((f.mean_abs_delta, flip, f.evaluated));
        }
        self.ignored += ignored;
    }

    /// Folds in one stress run: it becomes the version's latest, and its cases are counted by case and outcome.
    /// Adds each case's invalid outputs to `vigil_stress_invalid_outputs_total{version,case}`.
    pub fn add_stress(&mut self, version: &str, input: &StressInput) {
        let mut ignored = 0;
        let b = self.version(version).stress.get_or_insert_with(Default::default);
        b.runs += 1;
        b.latest.clear();
        for c in &input.cases {
            if b.latest.len() >= MAX_CASES || (!b.totals.contains_key(&c.case) && b.totals.len() >= MAX_CASES) {
                ignored += 1;
                continue;
            }
            let latency = (c.latency_s.is_finite() && c.latency_s >= 0.0).then_some(c.latency_s);
            if latency.is_none() {
                ignored += 1;
            }
            b.latest.push(StressCaseResult {
                case: c.case.clone(),
                outcome: c.outcome.clone(),
                status: c.status,
                latency_s: latency,
                invalid: c.invalid,
            });
            let t = b.totals.entry(c.case.clone()).or_insert_with(|| StressCaseTotals {
                case: c.case.clone(),
                runs: 0,
                invalid: 0,
                outcomes: BTreeMap::new(),
            });
            t.runs += 1;
            t.invalid = t.invalid.saturating_add(c.invalid as u64);
            if t.outcomes.contains_key(&c.outcome) || t.outcomes.len() < MAX_OUTCOMES {
                *t.outcomes.entry(c.outcome.clone()).or_default() += 1;
            } else {
                ignored += 1;
            }
            if c.invalid > 0 {
                metrics::counter!(telemetry::STRESS_INVALID_OUTPUTS, "version" => version.to_owned(), "case" => c.case.clone())
                    .increment(c.invalid as u64);
            }
        }
        self.ignored += ignored;
    }

    /// Folds in one attack run with the ε it was judged against (`shadow.adversarial.epsilon`, in reference
    /// standard deviations). Flipped within ε: it flipped and the distance of its example (the ε it needed) is
    /// at most ε (to a relative 1e-9, for rounding). An attack that queried nothing (no decision at x) or an
    /// ε that is not a positive number, or a flip without a finite distance, is ignored and counted. A change of norm restarts the window (distances
    /// in different norms do not compare).
    pub fn add_adversarial(&mut self, version: &str, result: &AttackResult, epsilon: f64) {
        if result.original_class.is_none() || !(epsilon.is_finite() && epsilon > 0.0) {
            self.ignored += 1;
            return;
        }
        let needed = result.distance.or(result.epsilon).filter(|d| d.is_finite() && *d >= 0.0);
        if result.flipped && needed.is_none() {
            // A flip without a distance says nothing about ε.
            self.ignored += 1;
            return;
        }
        let sample = AttackSample {
            within: result.flipped && needed.is_some_and(|d| d <= epsilon * (1.0 + 1e-9)),
            distance: if result.flipped { needed } else { None },
            queries: result.queries,
        };
        let b = self.version(version).adversarial.get_or_insert_with(|| AdversarialBook {
            samples: 0,
            norm: result.norm,
            epsilon,
            recent: VecDeque::with_capacity(JOBS),
        });
        if b.norm != result.norm {
            b.recent.clear();
            b.norm = result.norm;
        }
        b.samples += 1;
        b.epsilon = epsilon;
        if b.recent.len() == JOBS {
            b.recent.pop_front();
        }
        b.recent.push_back(sample);
    }

    /// Records one explanation for listing and, when `importance` is given, folds it into the version's global
    /// importance: pass `Some(&explanation.values)` for a sampled Kernel SHAP explanation, the result of
    /// [`importance::lime_contributions`] for a sampled LIME one, and None for explanations asked for by hand
    /// (POST /admin/explain), which would bias the global picture toward the requests someone looked at.
    pub fn add_explanation(&mut self, record: ExplanationRecord, importance: Option<&[f64]>) {
        if let Some(values) = importance {
            self.importance.add(&record.version, values);
        }
        let version = record.version.clone();
        let b = self.version(&version);
        b.explained += 1;
        if b.explanations.len() == KEPT_EXPLANATIONS {
            b.explanations.pop_front();
        }
        // `touched` is this book's tick at this call: increasing across versions.
        b.explanations.push_back((b.touched, record));
    }

    /// The kept explanations, newest first: of one version, or of all versions.
    pub fn explanations(&self, version: Option<&str>) -> Vec<&ExplanationRecord> {
        let mut out: Vec<&(u64, ExplanationRecord)> = match version {
            Some(v) => self.versions.get(v).map(|b| b.explanations.iter().collect()).unwrap_or_default(),
            None => self.versions.values().flat_map(|b| b.explanations.iter()).collect(),
        };
        out.sort_by_key(|e| std::cmp::Reverse(e.0));
        out.into_iter().map(|(_, r)| r).collect()
    }

    /// The newest kept explanation of a request, if any.
    pub fn explanation(&self, request_id: &str) -> Option<&ExplanationRecord> {
        self.versions
            .values()
            .flat_map(|b| b.explanations.iter())
            .filter(|(_, r)| r.request_id == request_id)
            .max_by_key(|(seq, _)| *seq)
            .map(|(_, r)| r)
    }

    pub fn report(&self) -> RobustnessReport {
        let mut names: Vec<&str> = self.versions.keys().map(String::as_str).collect();
        for v in self.importance.versions() {
            if !self.versions.contains_key(v) {
                names.push(v);
            }
        }
        names.sort_unstable();
        let versions = names
            .into_iter()
            .map(|v| {
                let b = self.versions.get(v);
                VersionRobustness {
                    version: v.to_owned(),
                    sensitivity: b.and_then(|b| b.sensitivity.as_ref()).map(SensitivityBook::summary),
                    stress: b.and_then(|b| b.stress.as_ref()).map(StressBook::summary),
                    adversarial: b.and_then(|b| b.adversarial.as_ref()).map(AdversarialBook::summary),
                    importance: self.importance.report(v),
                    explanations: b.map_or(0, |b| b.explained),
                }
            })
            .collect();
        RobustnessReport { versions, ignored: self.ignored() }
    }

    /// Sets the gauges: `vigil_feature_sensitivity{version,feature}`, `vigil_sensitivity_flip_ratio{version}`,
    /// `vigil_adversarial_flip_ratio{version}`, `vigil_adversarial_epsilon_median{version}` and the importance
    /// gauges. (The stress counter is incremented when a run is folded in.)
    pub fn publish(&self) {
        for (version, b) in &self.versions {
            if let Some(s) = &b.sensitivity {
                let s = s.summary();
                for f in &s.features {
                    metrics::gauge!(telemetry::FEATURE_SENSITIVITY, "version" => version.clone(), "feature" => f.feature.clone())
                        .set(f.mean_abs_delta);
                }
                if let Some(r) = s.flip_ratio {
                    metrics::gauge!(telemetry::SENSITIVITY_FLIP_RATIO, "version" => version.clone()).set(r);
                }
            }
            if let Some(a) = &b.adversarial {
                let a = a.summary();
                metrics::gauge!(telemetry::ADVERSARIAL_FLIP_RATIO, "version" => version.clone()).set(a.flip_ratio);
                if let Some(m) = a.epsilon_median {
                    metrics::gauge!(telemetry::ADVERSARIAL_EPSILON_MEDIAN, "version" => version.clone()).set(m);
                }
            }
        }
        self.importance.publish();
    }
}

impl SensitivityBook {
    fn summary(&self) -> SensitivitySummary {
        let (mut flips, mut flip_weight) = (0.0, 0u64);
        let mut features: Vec<FeatureSensitivity> = self
            .features
            .iter()
            .map(|(name, ring)| {
                let (mut delta, mut weight, mut flip, mut fweight) = (0.0, 0u64, 0.0, 0u64);
                for &(d, f, n) in ring {
                    delta += d * n as f64;
                    weight += n as u64;
                    if let Some(f) = f {
                        flip += f * n as f64;
                        fweight += n as u64;
                    }
                }
                flips += flip;
                flip_weight += fweight;
                FeatureSensitivity {
                    feature: name.clone(),
                    mean_abs_delta: if weight > 0 { delta / weight as f64 } else { 0.0 },
                    flip_rate: (fweight > 0).then(|| flip / fweight as f64),
                    evaluated: weight,
                    jobs: ring.len(),
                }
            })
            .collect();
        features.sort_by(|a, b| b.mean_abs_delta.total_cmp(&a.mean_abs_delta).then_with(|| a.feature.cmp(&b.feature)));
        SensitivitySummary {
            jobs: self.jobs,
            flip_ratio: (flip_weight > 0).then(|| flips / flip_weight as f64),
            features,
        }
    }
}

impl StressBook {
    fn summary(&self) -> StressSummary {
        StressSummary { runs: self.runs, latest: self.latest.clone(), totals: self.totals.values().cloned().collect() }
    }
}

impl AdversarialBook {
    fn summary(&self) -> AdversarialSummary {
        let n = self.recent.len();
        let within = self.recent.iter().filter(|s| s.within).count();
        let mut flipped: Vec<f64> = self.recent.iter().filter_map(|s| s.distance).collect();
        flipped.sort_by(f64::total_cmp);
        let median = match flipped.len() {
            0 => None,
            k if k % 2 == 1 => Some(flipped[k / 2]),
            k => Some((flipped[k / 2 - 1] + flipped[k / 2]) / 2.0),
        };
        let queries: usize = self.recent.iter().map(|s| s.queries).fold(0usize, usize::saturating_add);
        AdversarialSummary {
            samples: self.samples,
            window: n,
            norm: self.norm,
            epsilon: self.epsilon,
            flip_ratio: if n > 0 { within as f64 / n as f64 } else { 0.0 },
            flipped: flipped.len(),
            epsilon_median: median,
            mean_queries: if n > 0 { queries as f64 / n as f64 } else { 0.0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    fn feat(name: &str, delta: f64, flip: Option<f64>, n: usize) -> SensitivityFeature {
        SensitivityFeature { feature: name.into(), mean_abs_delta: delta, flip_rate: flip, evaluated: n }
    }

    fn attack(flipped: bool, distance: Option<f64>, queries: usize) -> AttackResult {
        AttackResult {
            norm: Norm::Linf,
            original_class: Some(0),
            flipped,
            epsilon: None,
            distance,
            example: None,
            adversarial_class: flipped.then_some(1),
            queries,
            calls: 1,
            iterations: 1,
        }
    }

    #[test]
    fn sensitivity_is_a_weighted_running_mean_over_the_last_jobs() {
        let mut book = Book::new(vec!["a".into(), "b".into()], 10);
        book.add_sensitivity(
            "v1",
            &SensitivityInput { per_feature: vec![feat("a", 0.2, Some(0.0), 10), feat("b", 1.0, Some(0.5), 10)] },
        );
        book.add_sensitivity(
            "v1",
            &SensitivityInput { per_feature: vec![feat("a", 0.5, Some(0.2), 30), feat("b", f64::NAN, None, 10)] },
        );
        let r = book.report();
        let s = r.versions[0].sensitivity.as_ref().unwrap();
        assert_eq!(s.jobs, 2);
        // a: (0.2·10 + 0.5·30) / 40 = 0.425, flips (0·10 + 0.2·30) / 40 = 0.15; b: its NaN job is ignored.
        let a = s.features.iter().find(|f| f.feature == "a").unwrap();
        assert!(close(a.mean_abs_delta, 0.425) && close(a.flip_rate.unwrap(), 0.15));
        assert_eq!((a.evaluated, a.jobs), (40, 2));
        assert_eq!(s.features[0].feature, "b", "sorted by decreasing sensitivity");
        // Overall: (0 + 6 + 5) flips over 50 perturbations.
        assert!(close(s.flip_ratio.unwrap(), 11.0 / 50.0));
        assert_eq!(r.ignored, 1);
        // Bounded: only the last JOBS jobs count.
        for _ in 0..JOBS {
            book.add_sensitivity("v1", &SensitivityInput { per_feature: vec![feat("a", 2.0, None, 1)] });
        }
        let s = book.report().versions[0].sensitivity.clone().unwrap();
        let a = s.features.iter().find(|f| f.feature == "a").unwrap();
        assert_eq!((a.mean_abs_delta, a.flip_rate, a.jobs), (2.0, None, JOBS));
        assert_eq!(s.jobs, 2 + JOBS as u64);
        book.publish();
    }

    #[test]
    fn stress_keeps_the_latest_run_and_counts_since_start() {
        let mut book = Book::new(Vec::new(), 1);
        let case = |c: &str, o: &str, invalid| StressCase {
            case: c.into(),
            outcome: o.into(),
            status: 200,
            latency_s: 0.01,
            invalid,
        };
        book.add_stress("v", &StressInput { cases: vec![case("nan", "ok", 2), case("large_batch", "ok", 0)] });
        book.add_stress("v", &StressInput { cases: vec![case("nan", "rejected", 0)] });
        let s = book.report().versions[0].stress.clone().unwrap();
        assert_eq!(s.runs, 2);
        assert_eq!(s.latest.len(), 1);
        assert_eq!(s.latest[0].outcome, "rejected");
        let nan = s.totals.iter().find(|t| t.case == "nan").unwrap();
        assert_eq!((nan.runs, nan.invalid), (2, 2));
        assert_eq!(nan.outcomes.get("ok"), Some(&1));
        assert_eq!(nan.outcomes.get("rejected"), Some(&1));
        // A NaN latency is reported as null and counted; too many cases are ignored.
        let mut bad = case("slow", "timeout", 0);
        bad.latency_s = f64::NAN;
        book.add_stress("v", &StressInput { cases: vec![bad] });
        let s = book.report().versions[0].stress.clone().unwrap();
        assert_eq!(s.latest[0].latency_s, None);
        let many: Vec<_> = (0..MAX_CASES + 5).map(|i| case(&format!("c{i}"), "ok", 0)).collect();
        book.add_stress("v", &StressInput { cases: many });
        let s = book.report().versions[0].stress.clone().unwrap();
        assert_eq!(s.totals.len(), MAX_CASES);
        assert!(book.ignored() >= 6);
    }

    #[test]
    fn adversarial_flip_ratio_median_and_queries() {
        let mut book = Book::new(Vec::new(), 1);
        book.add_adversarial("v", &attack(true, Some(0.2), 100), 0.5);
        book.add_adversarial("v", &attack(true, Some(0.9), 300), 0.5);
        book.add_adversarial("v", &attack(false, None, 1000), 0.5);
        book.add_adversarial("v", &attack(true, Some(0.4), 200), 0.5);
        // Ignored: nothing queried; ε not positive.
        let mut none = attack(false, None, 0);
        none.original_class = None;
        book.add_adversarial("v", &none, 0.5);
        book.add_adversarial("v", &attack(true, Some(0.1), 10), f64::NAN);
        book.add_adversarial("v", &attack(true, None, 10), 0.5);
        let a = book.report().versions[0].adversarial.clone().unwrap();
        assert_eq!((a.samples, a.window, a.flipped), (4, 4, 3));
        // Within 0.5: 0.2 and 0.4 → 2 of 4. Median of {0.2, 0.4, 0.9} = 0.4. Queries (100+300+1000+200)/4 = 400.
        assert!(close(a.flip_ratio, 0.5));
        assert_eq!(a.epsilon_median, Some(0.4));
        assert!(close(a.mean_queries, 400.0));
        assert_eq!(a.norm, Norm::Linf);
        assert_eq!(book.ignored(), 3);
        // Random search reports ε and a distance just under it.
        let mut rs = attack(true, Some(0.5 * (1.0 + 1e-12)), 50);
        rs.epsilon = Some(0.5);
        book.add_adversarial("v2", &rs, 0.5);
        assert!(close(book.report().versions[1].adversarial.as_ref().unwrap().flip_ratio, 1.0));
        // A new norm restarts the window; the window is bounded.
        let mut l2 = attack(true, Some(1.0), 10);
        l2.norm = Norm::L2;
        book.add_adversarial("v", &l2, 0.5);
        let a = book.report().versions[0].adversarial.clone().unwrap();
        assert_eq!((a.window, a.norm, a.epsilon_median), (1, Norm::L2, Some(1.0)));
        for _ in 0..JOBS + 7 {
            book.add_adversarial("v", &l2, 0.5);
        }
        assert_eq!(book.report().versions[0].adversarial.as_ref().unwrap().window, JOBS);
        book.publish();
    }

    #[test]
    fn explanations_feed_importance_and_listing() {
        let mut book = Book::new(vec!["a".into(), "b".into()], 2);
        let e = Explanation {
            base_value: 0.3,
            values: vec![0.1, -0.4],
            prediction: 0.0,
            model_calls: 1,
            rows_scored: 10,
            coalitions: 2,
            varying: 2,
            exact: true,
            solver: crate::shadow::explain::Solver::Cholesky,
        };
        for i in 0..KEPT_EXPLANATIONS + 3 {
            let r = ExplanationRecord::shap("v", &format!("req-{i}"), &e);
            book.add_explanation(r, Some(&e.values));
        }
        // A hand-asked explanation is listed but not counted in the global importance.
        book.add_explanation(ExplanationRecord::shap("v", "asked", &e), None);
        let listed = book.explanations(Some("v"));
        assert_eq!(listed.len(), KEPT_EXPLANATIONS);
        assert_eq!(listed[0].request_id, "asked");
        assert_eq!(book.explanation("req-22").unwrap().base_value, Some(0.3));
        assert!(book.explanation("req-0").is_none(), "the oldest fell out");
        let r = book.report();
        let v = &r.versions[0];
        assert_eq!(v.explanations, KEPT_EXPLANATIONS as u64 + 4);
        let imp = v.importance.as_ref().unwrap();
        assert_eq!(imp.explanations, KEPT_EXPLANATIONS as u64 + 3);
        assert_eq!(imp.features[0].feature, "b");
        assert!(close(imp.features[0].importance, 0.4));
        assert_eq!(imp.drift.unwrap().l1, Some(0.0));
        // The JSON keeps its field names.
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["versions"][0]["version"], "v");
        assert_eq!(json["versions"][0]["importance"]["features"][0]["feature"], "b");
        assert!(json["versions"][0]["sensitivity"].is_null());
        let listed = serde_json::to_value(book.explanations(None)).unwrap();
        assert_eq!(listed[0]["method"], "kernel_shap");
        // Across versions, newest first.
        book.add_explanation(ExplanationRecord::shap("a-older-name", "newest", &e), None);
        let all = book.explanations(None);
        assert_eq!((all[0].request_id.as_str(), all[1].request_id.as_str()), ("newest", "asked"));
        assert_eq!(all.len(), KEPT_EXPLANATIONS + 1);
        book.remove_version("a-older-name");
        // New features: importance and listings restart.
        book.set_features(vec!["x".into()]);
        assert!(book.explanations(None).is_empty());
        assert!(book.report().versions[0].importance.is_none());
        book.remove_version("v");
        assert!(book.report().versions.is_empty());
    }

    #[test]
    fn versions_are_bounded() {
        let mut book = Book::new(vec!["a".into()], 1);
        for i in 0..MAX_VERSIONS + 5 {
            book.add_adversarial(&format!("v{i:03}"), &attack(true, Some(0.1), 10), 0.5);
        }
        let r = book.report();
        assert_eq!(r.versions.len(), MAX_VERSIONS);
        assert_eq!(r.versions[0].version, "v005");
    }
}
