//! The reference profile: what the reference data set looks like, frozen in the shapes the live
//! windows are compared with (sorted values, quantile grids, category counts, a fitted PCA), and
//! the test each column gets.

use super::pca::Pca;
use super::reference::{ColumnData, Table};
use super::schema::{Col, ColumnSpec, Kind, Records, Schema};
use super::stats::binning;
use crate::config::{DriftConfig, Method, SchemaConfig};
use serde::Serialize;
use std::collections::HashMap;

/// Numeric columns with at most this many distinct reference values are also counted per value
/// (Evidently bins such columns one bin per value).
const MAX_DISTINCT: usize = 20;

/// Where the reference came from.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// `reference.file` / `--reference`.
    File { path: String },
    /// `PUT /admin/reference`.
    Upload { actor: String },
    /// The first live records.
    Learned { version: String },
}

#[derive(Debug)]
pub struct NumProfile {
    /// Non-missing reference values, ascending.
    pub sorted: Vec<f64>,
    pub std: f64,
    /// Reference-quantile edges for PSI / Jensen-Shannon, and the reference's counts in them.
    pub psi_edges: Vec<f64>,
    pub psi_counts: Vec<u64>,
    /// The finer grid binned windows count in, and the reference's counts in it.
    pub grid_edges: Vec<f64>,
    pub grid_counts: Vec<u64>,
    /// Distinct values (ascending) when there are few; their reference counts (+1 slot: unseen).
    pub distinct: Option<Vec<f64>>,
    pub distinct_counts: Vec<u64>,
}

impl NumProfile {
    pub fn distinct_index(&self, x: f64) -> Option<usize> {
        let d = self.distinct.as_ref()?;
        Some(d.binary_search_by(|v| v.total_cmp(&x)).unwrap_or(d.len()))
    }
}

#[derive(Debug)]
pub struct CatProfile {
    pub categories: Vec<String>,
    pub index: HashMap<String, usize>,
    /// Counts per category (no unseen slot: the reference has seen them all).
    pub counts: Vec<u64>,
}

#[derive(Debug)]
pub enum Shape {
    Num(NumProfile),
    Cat(CatProfile),
}

#[derive(Debug)]
pub struct ColumnProfile {
    pub name: String,
    pub kind: Kind,
    pub method: Method,
    /// p-value level for p-value tests, distance threshold otherwise.
    pub threshold: f64,
    /// Whether the method came from the Evidently-style default (not configured).
    pub auto: bool,
    /// Non-missing reference values.
    pub n: usize,
    pub missing: usize,
    pub n_unique: usize,
    pub shape: Shape,
}

#[derive(Debug)]
pub struct Profile {
    pub schema: Schema,
    pub features: Vec<ColumnProfile>,
    pub predictions: Vec<ColumnProfile>,
    pub rows: usize,
    pub source: Source,
    /// Over the numeric features, in schema order: which feature index each PCA input is.
    pub pca: Option<(Pca, Vec<usize>)>,
    /// The ground-truth column (`schema.target`), for label drift.
    pub target: Option<ColumnProfile>,
    /// Up to [`SAMPLE_ROWS`] whole reference rows (features only, evenly spaced through the
    /// table): the background of black-box explanations, which needs joint rows, not columns.
    pub sample: Records,
}

/// Reference rows kept whole in [`Profile::sample`].
pub const SAMPLE_ROWS: usize = 200;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProfileError(pub String);

impl Profile {
    /// Builds the profile. The table has already been sampled to `reference.max_rows`.
    pub fn build(
        mut table: Table,
        source: Source,
        schema_cfg: &SchemaConfig,
        drift: &DriftConfig,
    ) -> Result<Profile, ProfileError> {
        if table.rows == 0 {
            return Err(ProfileError("the reference has no rows".into()));
        }
        for (names, categorical, key) in
            [(&schema_cfg.categorical, true, "schema.categorical"), (&schema_cfg.numeric, false, "schema.numeric")]
        {
            for name in names {
                if table.column(name).is_some() {
                    table.set_kind(name, categorical).map_err(|e| ProfileError(format!("{key}: {e}")))?;
                }
            }
        }
        let excluded =
            |n: &str| schema_cfg.predictions.iter().any(|p| p == n) || schema_cfg.target.as_deref() == Some(n);
        let feature_names: Vec<String> = if schema_cfg.features.is_empty() {
            table.columns.iter().map(|c| c.name.clone()).filter(|n| !excluded(n)).collect()
        } else {
            schema_cfg.features.clone()
        };
        if feature_names.is_empty() {
            return Err(ProfileError(
                "the reference has no feature columns (all are predictions or the target)".into(),
            ));
        }
        let column = |name: &str, key: &str| {
            table.column(name).ok_or_else(|| {
                let have: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
                ProfileError(format!(
                    "{key} names {name:?}, which the reference does not have (it has: {})",
                    have.join(", ")
                ))
            })
        };
        let mut features = Vec::new();
        for name in &feature_names {
            features.push(column_profile(column(name, "schema.features")?, table.rows, drift)?);
        }
        let mut predictions = Vec::new();
        for name in &schema_cfg.predictions {
            predictions.push(column_profile(column(name, "schema.predictions")?, table.rows, drift)?);
        }
        for name in drift.columns.keys() {
            if !features.iter().chain(&predictions).any(|c| &c.name == name) {
                return Err(ProfileError(format!(
                    "drift.columns.{name}: no feature or prediction column of that name (features: {})",
                    feature_names.join(", ")
                )));
            }
        }
        let spec = |c: &ColumnProfile| ColumnSpec { name: c.name.clone(), kind: c.kind };
        let schema = Schema::new(features.iter().map(spec).collect(), predictions.iter().map(spec).collect());
        let pca = if drift.covariate_shift {
            let numeric: Vec<usize> =
                features.iter().enumerate().filter(|(_, c)| c.kind == Kind::Numeric).map(|(i, _)| i).collect();
            let cols: Vec<&[f64]> = numeric
                .iter()
                .map(|&i| match &table.column(&features[i].name).expect("checked above").data {
                    ColumnData::Num(v) => v.as_slice(),
                    ColumnData::Cat(_) => unreachable!("numeric kind"),
                })
                .collect();
            let rows: Vec<Vec<f64>> = (0..table.rows).map(|r| cols.iter().map(|c| c[r]).collect()).collect();
            Pca::fit(&rows, drift.pca_variance).map(|p| (p, numeric))
        } else {
            None
        };
        let target = match &schema_cfg.target {
            Some(t) => Some(column_profile(column(t, "schema.target")?, table.rows, drift)?),
            None => None,
        };
        let sample = sample_rows(&table, &features);
        Ok(Profile { schema, features, predictions, rows: table.rows, source, pca, target, sample })
    }

    pub fn columns(&self) -> impl Iterator<Item = &ColumnProfile> {
        self.features.iter().chain(&self.predictions)
    }
}

fn column_profile(
    col: &super::reference::Column,
    rows: usize,
    drift: &DriftConfig,
) -> Result<ColumnProfile, ProfileError> {
    let configured = drift.columns.get(&col.name);
    let (kind, n, missing, n_unique, shape) = match &col.data {
        ColumnData::Num(values) => {
            let mut sorted: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
            sorted.sort_by(f64::total_cmp);
            let n = sorted.len();
            if n == 0 {
                return Err(ProfileError(format!("reference column {:?} has no values", col.name)));
            }
            let mut distinct_values = sorted.clone();
            distinct_values.dedup();
            let n_unique = distinct_values.len();
            let std = super::stats::wasserstein::population_std(&sorted);
            let psi_edges = binning::quantile_edges(&sorted, drift.psi_bins);
            let psi_counts = binning::bin_counts(&psi_edges, &sorted);
            let grid_edges = binning::quantile_edges(&sorted, drift.grid_bins);
            let grid_counts = binning::bin_counts(&grid_edges, &sorted);
            let (distinct, distinct_counts) = if n_unique <= MAX_DISTINCT {
                let mut counts = vec![0u64; n_unique + 1];
                for x in &sorted {
                    let i = distinct_values.binary_search_by(|v| v.total_cmp(x)).expect("from the same values");
                    counts[i] += 1;
                }
                (Some(distinct_values), counts)
            } else {
                (None, Vec::new())
            };
            let shape = Shape::Num(NumProfile {
                sorted,
                std,
                psi_edges,
                psi_counts,
                grid_edges,
                grid_counts,
                distinct,
                distinct_counts,
            });
            (Kind::Numeric, n, values.len() - n, n_unique, shape)
        }
        ColumnData::Cat(values) => {
            let mut index = HashMap::new();
            let mut categories = Vec::new();
            let mut counts: Vec<u64> = Vec::new();
            let mut n = 0;
            for v in values.iter().flatten() {
                n += 1;
                let i = *index.entry(v.clone()).or_insert_with(|| {
                    categories.push(v.clone());
                    counts.push(0);
                    categories.len() - 1
                });
                counts[i] += 1;
            }
            if n == 0 {
                return Err(ProfileError(format!("reference column {:?} has no values", col.name)));
            }
            let n_unique = categories.len();
            (Kind::Categorical, n, values.len() - n, n_unique, Shape::Cat(CatProfile { categories, index, counts }))
        }
    };
    let default = default_method(kind, rows, n_unique);
    let method = configured.and_then(|c| c.method).unwrap_or(default);
    if kind == Kind::Categorical && !method.categorical_ok() {
        return Err(ProfileError(format!(
            "drift.columns.{}.method = {:?}: a numeric test on a categorical column; use psi, jensenshannon, chisquare, chi2_contingency or ztest",
            col.name,
            method.as_str()
        )));
    }
    if method == Method::Ztest && n_unique > 2 {
        return Err(ProfileError(format!(
            "drift.columns.{}.method = \"ztest\": the reference has {n_unique} distinct values; the z-test needs a binary column",
            col.name
        )));
    }
    let threshold = configured.and_then(|c| c.threshold).unwrap_or(if method.is_p_value() { drift.alpha } else { 0.1 });
    Ok(ColumnProfile {
        name: col.name.clone(),
        kind,
        method,
        threshold,
        auto: configured.and_then(|c| c.method).is_none(),
        n,
        missing,
        n_unique,
        shape,
    })
}

/// Evidently's default test by column kind, reference size and distinct values
/// (drift-reference.md §1): p-value tests for references of up to 1,000 rows, where they have
/// power without flagging every tiny shift; distances with threshold 0.1 above.
pub fn default_method(kind: Kind, reference_rows: usize, n_unique: usize) -> Method {
    let small = reference_rows <= 1000;
    match (kind, n_unique) {
        (Kind::Numeric, u) if u > 5 => {
            if small {
                Method::Ks
            } else {
                Method::Wasserstein
            }
        }
        (_, u) if u <= 2 => {
            if small {
                Method::Ztest
            } else {
                Method::Jensenshannon
            }
        }
        _ => {
            if small {
                Method::Chisquare
            } else {
                Method::Jensenshannon
            }
        }
    }
}

/// Evenly spaced whole rows of the reference's feature columns.
fn sample_rows(table: &Table, features: &[ColumnProfile]) -> Records {
    let n = table.rows.min(SAMPLE_ROWS);
    let picks: Vec<usize> = (0..n).map(|i| i * table.rows / n.max(1)).collect();
    let cols = features
        .iter()
        .map(|f| {
            table.column(&f.name).map(|c| match &c.data {
                ColumnData::Num(v) => Col::Num(picks.iter().map(|&r| v[r]).collect()),
                ColumnData::Cat(v) => Col::Cat(picks.iter().map(|&r| v[r].clone()).collect()),
            })
        })
        .collect();
    Records {
        request_id: String::new(),
        version: "reference".into(),
        time: std::time::SystemTime::UNIX_EPOCH,
        rows: n,
        features: cols,
        predictions: Vec::new(),
    }
}
