//! `[shadow]`: traffic vigil sends to the model on its own account, never to a client. Mirrored
//! copies of live requests to candidate versions, and the what-if kinds (sensitivity, stress,
//! adversarial robustness, explanations), each under a budget.
//!
//! The budget unit is a **row** (one model input): live traffic is measured in rows per second,
//! and each kind may send at most `share` times that (plus a `burst`), at most `max_concurrency`
//! requests at once. Shadow traffic pauses while the live upstream is under pressure
//! (`[shadow.pause]`).

use super::{duration, ConfigError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShadowConfig {
    /// Master switch. Off: no shadow thread, no shadow request of any kind.
    pub enabled: bool,
    /// Time a shadow request may take, from sending to the last byte of the answer.
    #[serde(with = "duration::serde")]
    pub timeout: Duration,
    /// Mirror jobs waiting to be sent; beyond this they are dropped and counted
    /// (`vigil_shadow_requests_total{result="dropped"}`).
    pub queue: usize,
    /// Largest number of rows in one what-if request: bigger jobs are split into several calls.
    pub max_batch_rows: usize,
    pub pause: PauseConfig,
    pub mirror: MirrorConfig,
    pub sensitivity: SensitivityConfig,
    pub stress: StressConfig,
    pub adversarial: AdversarialConfig,
    pub explain: ExplainConfig,
    pub probing: ProbingConfig,
}

impl Default for ShadowConfig {
    fn default() -> Self {
        ShadowConfig {
            enabled: true,
            timeout: Duration::from_secs(5),
            queue: 1024,
            max_batch_rows: 1024,
            pause: PauseConfig::default(),
            mirror: MirrorConfig::default(),
            sensitivity: SensitivityConfig::default(),
            stress: StressConfig::default(),
            adversarial: AdversarialConfig::default(),
            explain: ExplainConfig::default(),
            probing: ProbingConfig::default(),
        }
    }
}

/// Probing detection: live clients (by `capture.client_header`, else peer IP) whose requests look
/// like a search of the decision boundary: many near-duplicate inputs near it, at a high rate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbingConfig {
    pub enabled: bool,
    /// Answer a flagged client 429 until it stops qualifying (the flag expires with `window`).
    pub block: bool,
    #[serde(with = "duration::serde")]
    pub window: Duration,
    /// Requests in the window before a client can be flagged.
    pub min_requests: u64,
    /// Requests per second (pingora-limits' estimate) before a client can be flagged.
    pub min_rate: f64,
    /// Two rows are near-duplicates within this L-inf distance, in reference standard deviations.
    pub distance: f64,
    pub near_duplicate_share: f64,
    /// A row is near the boundary when |score − threshold| < margin.
    pub threshold: f64,
    pub margin: f64,
    pub near_boundary_share: f64,
    /// Clients tracked at most (least recently seen evicted).
    pub max_clients: usize,
}

impl Default for ProbingConfig {
    fn default() -> Self {
        ProbingConfig {
            enabled: true,
            block: false,
            window: Duration::from_secs(60),
            min_requests: 50,
            min_rate: 1.0,
            distance: 0.1,
            near_duplicate_share: 0.5,
            threshold: 0.5,
            margin: 0.1,
            near_boundary_share: 0.3,
            max_clients: 10_000,
        }
    }
}

/// When shadow traffic stops: the live upstream is slow or failing. Judged over the live
/// answers of the last `window`; shadow resumes when the window is healthy again.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PauseConfig {
    /// Pause when the live upstream's p99 latency exceeds this (more than 1% of the window's
    /// answers took longer).
    #[serde(with = "duration::serde")]
    pub p99_latency: Duration,
    /// Pause when more than this share of live answers were errors (5xx, or vigil's own 502/504).
    pub error_rate: f64,
    #[serde(with = "duration::serde")]
    pub window: Duration,
    /// Fewer live answers than this in the window: never pause (too little to judge).
    pub min_requests: u64,
}

impl Default for PauseConfig {
    fn default() -> Self {
        PauseConfig {
            p99_latency: Duration::from_secs(1),
            error_rate: 0.05,
            window: Duration::from_secs(10),
            min_requests: 20,
        }
    }
}

/// What each kind may cost the model.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Rows per live row: 0.05 lets this kind send 5% of the live row rate.
    pub share: f64,
    /// Rows that may be sent at once above the rate (the bucket's size).
    pub burst: f64,
    /// Requests of this kind in flight at most.
    pub max_concurrency: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MirrorConfig {
    /// Candidate version name → fraction of live requests mirrored to it (0 to 1).
    /// `vigil run --mirror NAME=FRACTION` adds to these; `PUT /admin/shadow/mirrors/{name}` changes them.
    pub candidates: BTreeMap<String, f64>,
    /// Share of mirrored requests also sent to the active version itself: the noise floor
    /// (a model that disagrees with itself is non-deterministic, not different), as Diffy does.
    pub noise_fraction: f64,
    /// Per candidate.
    pub budget: Budget,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        MirrorConfig {
            candidates: BTreeMap::new(),
            noise_fraction: 0.1,
            budget: Budget { share: 1.0, burst: 1000.0, max_concurrency: 64 },
        }
    }
}

/// The common keys of a what-if kind.
macro_rules! whatif_defaults {
    ($share:expr, $burst:expr, $every:expr) => {
        (true, Budget { share: $share, burst: $burst, max_concurrency: 1 }, Duration::from_secs($every))
    };
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SensitivityConfig {
    pub enabled: bool,
    pub budget: Budget,
    /// At most one sensitivity job per this interval.
    #[serde(with = "duration::serde")]
    pub every: Duration,
    /// k: each numeric feature moves by ±k reference standard deviations, for each k.
    pub steps: Vec<f64>,
    /// Each categorical feature takes this many of the reference's most frequent other categories.
    pub max_categories: usize,
}

impl Default for SensitivityConfig {
    fn default() -> Self {
        let (enabled, budget, every) = whatif_defaults!(0.02, 200.0, 1);
        SensitivityConfig { enabled, budget, every, steps: vec![0.1, 0.5, 1.0], max_categories: 5 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StressConfig {
    pub enabled: bool,
    pub budget: Budget,
    #[serde(with = "duration::serde")]
    pub every: Duration,
    /// Rows of the "large batch" case.
    pub batch_rows: usize,
}

impl Default for StressConfig {
    fn default() -> Self {
        let (enabled, budget, every) = whatif_defaults!(0.01, 1100.0, 300);
        StressConfig { enabled, budget, every, batch_rows: 1000 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NormChoice {
    Linf,
    L2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttackChoice {
    /// Random search in growing balls: cheap, an upper bound on the ε needed.
    RandomSearch,
    /// Decision-based boundary attack (HopSkipJump-like): tighter, more queries.
    Boundary,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdversarialConfig {
    pub enabled: bool,
    pub budget: Budget,
    #[serde(with = "duration::serde")]
    pub every: Duration,
    pub norm: NormChoice,
    pub attack: AttackChoice,
    /// ε is measured in reference standard deviations per feature. An input counts as flipped
    /// when its decision changes within `epsilon`.
    pub epsilon: f64,
    /// Model rows one attack may spend on one input.
    pub queries: usize,
}

impl Default for AdversarialConfig {
    fn default() -> Self {
        let (enabled, budget, every) = whatif_defaults!(0.02, 1000.0, 10);
        AdversarialConfig {
            enabled,
            budget,
            every,
            norm: NormChoice::Linf,
            attack: AttackChoice::Boundary,
            epsilon: 0.5,
            queries: 1000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExplainMethod {
    KernelShap,
    Lime,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExplainConfig {
    pub enabled: bool,
    pub budget: Budget,
    #[serde(with = "duration::serde")]
    pub every: Duration,
    /// Method of the sampled explanations (`POST /admin/explain` may ask for either).
    pub method: ExplainMethod,
    /// Reference rows in the KernelSHAP background (shap's `kmeans`/`sample` size).
    pub background: usize,
    /// Coalitions per explanation; 0 = shap's "auto" (2·M + 2048).
    pub nsamples: usize,
    /// Global importance is the mean |SHAP| over the last this many explanations per version.
    pub window: usize,
}

impl Default for ExplainConfig {
    fn default() -> Self {
        let (enabled, budget, every) = whatif_defaults!(0.05, 5000.0, 30);
        ExplainConfig {
            enabled,
            budget,
            every,
            method: ExplainMethod::KernelShap,
            background: 20,
            nsamples: 0,
            window: 100,
        }
    }
}

impl ShadowConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = |key: &str, v: f64| -> Result<(), ConfigError> {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(ConfigError::invalid(key, &v.to_string(), "a positive number"))
            }
        };
        let share = |key: &str, v: f64| -> Result<(), ConfigError> {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(ConfigError::invalid(key, &v.to_string(), "a share from 0 to 1"))
            }
        };
        for (name, b) in [
            ("mirror", &self.mirror.budget),
            ("sensitivity", &self.sensitivity.budget),
            ("stress", &self.stress.budget),
            ("adversarial", &self.adversarial.budget),
            ("explain", &self.explain.budget),
        ] {
            if !(b.share.is_finite() && b.share >= 0.0) {
                return Err(ConfigError::invalid(
                    &format!("shadow.{name}.budget.share"),
                    &b.share.to_string(),
                    "a non-negative number of rows per live row (0.05 = 5% of the live row rate)",
                ));
            }
            positive(&format!("shadow.{name}.budget.burst"), b.burst)?;
            if b.max_concurrency == 0 {
                return Err(ConfigError::invalid(
                    &format!("shadow.{name}.budget.max_concurrency"),
                    "0",
                    "a positive number of requests",
                ));
            }
        }
        for (name, f) in &self.mirror.candidates {
            super::validate_version_name(name)
                .map_err(|why| ConfigError::invalid("shadow.mirror.candidates", name, why))?;
            share(&format!("shadow.mirror.candidates.{name}"), *f)?;
        }
        share("shadow.mirror.noise_fraction", self.mirror.noise_fraction)?;
        share("shadow.pause.error_rate", self.pause.error_rate)?;
        for (key, d) in [
            ("shadow.timeout", self.timeout),
            ("shadow.pause.p99_latency", self.pause.p99_latency),
            ("shadow.pause.window", self.pause.window),
        ] {
            if d.is_zero() {
                return Err(ConfigError::invalid(key, "0s", "a positive duration such as \"500ms\" or \"10s\""));
            }
        }
        if self.queue == 0 {
            return Err(ConfigError::invalid("shadow.queue", "0", "a positive number of jobs"));
        }
        if self.max_batch_rows == 0 {
            return Err(ConfigError::invalid("shadow.max_batch_rows", "0", "a positive number of rows"));
        }
        if self.sensitivity.steps.is_empty() {
            return Err(ConfigError::invalid("shadow.sensitivity.steps", "[]", "at least one k, e.g. [0.1, 0.5, 1.0]"));
        }
        for k in &self.sensitivity.steps {
            positive("shadow.sensitivity.steps", *k)?;
        }
        positive("shadow.adversarial.epsilon", self.adversarial.epsilon)?;
        if self.adversarial.queries < 10 {
            return Err(ConfigError::invalid(
                "shadow.adversarial.queries",
                &self.adversarial.queries.to_string(),
                "at least 10 model rows per attacked input",
            ));
        }
        if self.explain.background == 0 || self.explain.window == 0 {
            return Err(ConfigError::invalid(
                "shadow.explain.background",
                &format!("{} (window {})", self.explain.background, self.explain.window),
                "positive numbers of rows and explanations",
            ));
        }
        let p = &self.probing;
        for (key, v) in [
            ("shadow.probing.near_duplicate_share", p.near_duplicate_share),
            ("shadow.probing.near_boundary_share", p.near_boundary_share),
        ] {
            share(key, v)?;
        }
        positive("shadow.probing.distance", p.distance)?;
        positive("shadow.probing.margin", p.margin)?;
        if p.window.is_zero() || p.max_clients == 0 {
            return Err(ConfigError::invalid(
                "shadow.probing.window",
                &format!("{:?} (max_clients {})", p.window, p.max_clients),
                "a positive window and a positive number of clients",
            ));
        }
        if self.stress.batch_rows == 0 {
            return Err(ConfigError::invalid("shadow.stress.batch_rows", "0", "a positive number of rows"));
        }
        Ok(())
    }
}

/// Parses `--mirror NAME=FRACTION`.
pub fn parse_mirror(spec: &str) -> Result<(String, f64), ConfigError> {
    let bad = || ConfigError::invalid("--mirror", spec, "NAME=FRACTION with a fraction from 0 to 1, e.g. v2=0.5");
    let (name, f) = spec.split_once('=').ok_or_else(bad)?;
    let f: f64 = f.trim().parse().map_err(|_| bad())?;
    if name.is_empty() || !(0.0..=1.0).contains(&f) {
        return Err(bad());
    }
    Ok((name.to_owned(), f))
}
