//! The analysis half of the schema: how bodies are decoded (`[codec]`), what the columns are
//! (`[schema]`), the reference data (`[reference]`) and the drift monitors (`[drift]`).

use super::{duration, ConfigError};
use crate::monitor::stats::correction::Correction;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolChoice {
    /// V2 and V1 recognised from the path; other paths are not analysed.
    #[default]
    Auto,
    V2,
    V1,
    /// Any JSON, located by the route's `features` and `predictions` JSON pointers.
    Json,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CodecConfig {
    /// Per path prefix, the protocol of the bodies; the first matching route wins, and paths no
    /// route matches are detected from the path (V2 `/v2/models/{m}/infer`, V1 `/v1/models/{m}:predict`).
    pub routes: Vec<CodecRoute>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodecRoute {
    pub path_prefix: String,
    pub protocol: ProtocolChoice,
    /// JSON pointer (RFC 6901) to the request's rows or columns, for protocol = "json".
    #[serde(default)]
    pub features: Option<String>,
    /// JSON pointer to the response's predictions, for protocol = "json".
    #[serde(default)]
    pub predictions: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaConfig {
    /// Feature names in the order of a request tensor's columns. Default: the reference's columns,
    /// minus `predictions` and `target`.
    pub features: Vec<String>,
    /// Columns to treat as categorical whatever their values look like.
    pub categorical: Vec<String>,
    /// Columns to treat as numeric (their values must parse as numbers).
    pub numeric: Vec<String>,
    /// Reference columns that hold the model's outputs, named as the outputs are (V2 output name;
    /// `name[k]` for column k of a wider output; `prediction` for V1's unnamed predictions).
    pub predictions: Vec<String>,
    /// The reference column with ground-truth labels (used by the performance monitors).
    pub target: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReferenceConfig {
    /// CSV, JSONL or Parquet file (by extension). `--reference FILE` overrides.
    pub file: Option<PathBuf>,
    /// Rows kept; a larger reference is replaced by a uniform random sample of this size.
    pub max_rows: usize,
    /// With no reference file and none saved in the state dir: learn the reference from the
    /// first N live records of the active version. 0: off.
    pub learn: usize,
    /// Largest `PUT /admin/reference` body.
    pub max_upload_bytes: usize,
}

impl Default for ReferenceConfig {
    fn default() -> Self {
        ReferenceConfig { file: None, max_rows: 100_000, learn: 0, max_upload_bytes: 64 * 1024 * 1024 }
    }
}

/// The live window the reference is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// The last N records.
    Count(usize),
    /// The records of the last T.
    Time(Duration),
}

impl WindowSpec {
    pub fn parse(s: &str) -> Result<WindowSpec, String> {
        let s = s.trim();
        if let Ok(n) = s.parse::<usize>() {
            return if n > 0 { Ok(WindowSpec::Count(n)) } else { Err("a positive record count".into()) };
        }
        match super::parse_duration(s) {
            Ok(d) if !d.is_zero() => Ok(WindowSpec::Time(d)),
            _ => Err("a record count such as \"1000\" or a duration such as \"5m\"".into()),
        }
    }
}

impl<'de> Deserialize<'de> for WindowSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        let s = match Raw::deserialize(d)? {
            Raw::N(n) => n.to_string(),
            Raw::S(s) => s,
        };
        WindowSpec::parse(&s)
            .map_err(|why| serde::de::Error::invalid_value(serde::de::Unexpected::Str(&s), &why.as_str()))
    }
}

/// A drift test or distance, named as the reference tools name them.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Two-sample Kolmogorov-Smirnov (scipy.stats.ks_2samp); p-value test.
    Ks,
    /// Wasserstein-1 normed by the reference's standard deviation (Evidently `wasserstein`).
    Wasserstein,
    /// Population stability index on reference-quantile (or category) bins.
    Psi,
    /// Jensen-Shannon distance, natural log (scipy.spatial.distance.jensenshannon).
    Jensenshannon,
    /// Chi-squared goodness of fit of live counts to reference proportions (Evidently `chisquare`).
    Chisquare,
    /// Chi-squared test of the 2 x k contingency table (scipy chi2_contingency, Alibi ChiSquareDrift).
    Chi2Contingency,
    /// Two-proportion z-test for binary columns (Evidently `z`).
    Ztest,
}

impl Method {
    /// p-value tests drift when p < threshold; distances when the value >= threshold.
    pub fn is_p_value(self) -> bool {
        matches!(self, Method::Ks | Method::Chisquare | Method::Chi2Contingency | Method::Ztest)
    }

    pub fn numeric_ok(self) -> bool {
        true
    }

    pub fn categorical_ok(self) -> bool {
        !matches!(self, Method::Ks | Method::Wasserstein)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Ks => "ks",
            Method::Wasserstein => "wasserstein",
            Method::Psi => "psi",
            Method::Jensenshannon => "jensenshannon",
            Method::Chisquare => "chisquare",
            Method::Chi2Contingency => "chi2_contingency",
            Method::Ztest => "ztest",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDrift {
    pub method: Option<Method>,
    pub threshold: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriftConfig {
    pub enabled: bool,
    /// The live window: a record count ("1000": the last 1,000 records) or a duration ("5m").
    /// `--drift-window` overrides.
    pub window: WindowSpec,
    /// How often every window is evaluated and the results published.
    #[serde(with = "duration::serde")]
    pub evaluate_every: Duration,
    /// A time window with fewer live values than this gives no verdict (a count window gives
    /// none until it is full).
    pub min_records: usize,
    /// Up to this many values in a window, tests run on the exact values; above, on counts over a
    /// frozen reference-quantile grid (memory per feature fixed; KS error bound reported).
    pub exact_limit: usize,
    /// Bins of that grid.
    pub grid_bins: usize,
    /// Sub-windows of the ring a time window (or a count window above `exact_limit`) is kept in.
    pub sub_windows: usize,
    /// Reference-quantile bins for PSI and Jensen-Shannon on numeric columns.
    pub psi_bins: usize,
    /// p-value threshold of p-value tests (before correction).
    pub alpha: f64,
    /// Multiple-testing correction across features of the p-value tests.
    pub correction: Correction,
    /// The dataset drifts when at least this share of features drifts (Evidently's drift_share).
    pub drift_share: f64,
    /// Per column (feature or prediction output): method and threshold overrides.
    pub columns: BTreeMap<String, ColumnDrift>,
    /// Multivariate covariate shift (PCA reconstruction error, as NannyML).
    pub covariate_shift: bool,
    /// Share of the reference's variance the PCA components keep.
    pub pca_variance: f64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            enabled: true,
            window: WindowSpec::Count(1000),
            evaluate_every: Duration::from_secs(5),
            min_records: 30,
            exact_limit: 10_000,
            grid_bins: 1000,
            sub_windows: 10,
            psi_bins: 10,
            alpha: 0.05,
            correction: Correction::None,
            drift_share: 0.5,
            columns: BTreeMap::new(),
            covariate_shift: true,
            pca_variance: 0.65,
        }
    }
}

impl DriftConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.evaluate_every.is_zero() {
            return Err(ConfigError::invalid("drift.evaluate_every", "0s", "a positive duration such as \"5s\""));
        }
        let positive = [
            ("drift.exact_limit", self.exact_limit),
            ("drift.grid_bins", self.grid_bins),
            ("drift.sub_windows", self.sub_windows),
            ("drift.psi_bins", self.psi_bins),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(ConfigError::invalid(key, "0", "a positive number"));
            }
        }
        if self.grid_bins > 100_000 {
            return Err(ConfigError::invalid("drift.grid_bins", &self.grid_bins.to_string(), "at most 100000"));
        }
        if self.sub_windows > 1000 {
            return Err(ConfigError::invalid("drift.sub_windows", &self.sub_windows.to_string(), "at most 1000"));
        }
        for (key, v) in [("drift.alpha", self.alpha), ("drift.drift_share", self.drift_share)] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(ConfigError::invalid(key, &v.to_string(), "a number in (0, 1]"));
            }
        }
        if !(self.pca_variance > 0.0 && self.pca_variance <= 1.0) {
            return Err(ConfigError::invalid(
                "drift.pca_variance",
                &self.pca_variance.to_string(),
                "a share of variance in (0, 1]",
            ));
        }
        for (name, c) in &self.columns {
            if let Some(t) = c.threshold {
                if !t.is_finite() || t < 0.0 {
                    return Err(ConfigError::invalid(
                        &format!("drift.columns.{name}.threshold"),
                        &t.to_string(),
                        "a finite number >= 0 (a p-value level for p-value tests, else a distance)",
                    ));
                }
            }
        }
        Ok(())
    }
}

impl CodecConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (i, r) in self.routes.iter().enumerate() {
            let key = |f: &str| format!("codec.routes[{i}].{f}");
            if !r.path_prefix.starts_with('/') {
                return Err(ConfigError::invalid(&key("path_prefix"), &r.path_prefix, "a path starting with /"));
            }
            let json = r.protocol == ProtocolChoice::Json;
            for (field, p) in [("features", &r.features), ("predictions", &r.predictions)] {
                match p {
                    Some(p) if !json => {
                        return Err(ConfigError::invalid(
                            &key(field),
                            p,
                            "no JSON pointer unless protocol = \"json\" (V2 and V1 bodies have a known shape)",
                        ))
                    }
                    Some(p) if crate::codec::check_pointer(p).is_err() => {
                        return Err(ConfigError::invalid(
                            &key(field),
                            p,
                            "a JSON pointer (RFC 6901) such as \"/data/rows\" (~0 for ~, ~1 for /), or \"\" for the whole body",
                        ))
                    }
                    None if json => {
                        return Err(ConfigError::invalid(
                            &key(field),
                            "(missing)",
                            "a JSON pointer (RFC 6901) such as \"/data/rows\": protocol = \"json\" needs both pointers",
                        ))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}
