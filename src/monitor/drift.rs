//! Drift evaluation: one column's live window against its reference profile, then the features
//! together (multiple-testing correction, dataset share) and the multivariate covariate shift.

use super::profile::{ColumnProfile, NumProfile, Profile, Shape};
use super::schema::Kind;
use super::stats::{binning, chi2, correction, distance, ks, merge, sort, wasserstein, ztest};
use super::window::{Gathered, Window};
use crate::config::{DriftConfig, Method, WindowSpec};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Evaluation {
    /// Tests on the window's raw values.
    Exact,
    /// Tests on counts over the reference's frozen bins.
    Binned,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColumnReport {
    pub name: String,
    pub kind: Kind,
    pub method: Method,
    /// "auto" (Evidently's choice for the column's kind and the reference's size) or "config".
    pub method_source: &'static str,
    /// The method's value: KS D, normed Wasserstein, PSI, JS distance, chi-squared or z.
    pub statistic: Option<f64>,
    pub p_value: Option<f64>,
    /// p-value tests drift when p_value < threshold; distances when statistic >= threshold.
    pub threshold: f64,
    pub drift: bool,
    /// Why there is no verdict, when there is none: "window_filling" (a count window not yet full)
    /// or "insufficient_data" (fewer than `drift.min_records` values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// Non-missing live values in the window.
    pub records: u64,
    pub missing: u64,
    /// Live values in categories (or distinct values) the reference never had.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unseen: Option<u64>,
    pub evaluation: Evaluation,
    /// Binned evaluation: |D_true - D_binned| is at most this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ks_error_bound: Option<f64>,
    /// The other statistics on the same window, for context.
    pub scores: BTreeMap<&'static str, f64>,
}

/// Reference and live counts over the same bins, for `/admin/drift/{column}`.
#[derive(Debug, Clone, Serialize)]
pub struct Histogram {
    /// Bin labels: "(-inf, e1]", "(e1, e2]", ... or category names, then "(unseen)" for categories.
    pub bins: Vec<String>,
    /// Upper edges of numeric bins (the last is +inf, written null).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edges: Option<Vec<f64>>,
    pub reference: Vec<u64>,
    pub current: Vec<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatasetReport {
    pub features: usize,
    pub evaluated: usize,
    pub drifted: usize,
    pub share: Option<f64>,
    pub drift_share: f64,
    pub drift: bool,
    pub correction: correction::Correction,
    pub alpha: f64,
    /// The p-value threshold after correction (alpha when there is none).
    pub corrected_threshold: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CovariateReport {
    pub method: &'static str,
    /// Mean PCA reconstruction error of the window's records.
    pub score: Option<f64>,
    /// Reference mean error + 3 standard errors for this many records.
    pub threshold: f64,
    pub drift: bool,
    pub records: u64,
    pub features: usize,
    pub components: usize,
    pub explained_variance: f64,
    pub reference_error_mean: f64,
    pub reference_error_std: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowReport {
    pub kind: &'static str,
    /// Count windows: N. Time windows: seconds.
    pub size: f64,
    pub records: usize,
    pub from: Option<String>,
    pub to: Option<String>,
    pub evaluation: Evaluation,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionReport {
    pub window: WindowReport,
    pub records_total: u64,
    pub features: Vec<ColumnReport>,
    pub predictions: Vec<ColumnReport>,
    pub dataset: DatasetReport,
    pub covariate_shift: Option<CovariateReport>,
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Evaluates one version's window.
pub fn evaluate(
    window: &Window,
    profile: &Profile,
    cfg: &DriftConfig,
    histograms: &mut BTreeMap<String, Histogram>,
) -> VersionReport {
    let (rows, from, to) = window.bounds();
    let exact = window.exact();
    let evaluation = if exact { Evaluation::Exact } else { Evaluation::Binned };
    // A count window gives no verdict until it is full: distances over a few records are noise
    // (the normed Wasserstein distance of 200 records drawn from the reference itself averages 0.1,
    // the default threshold).
    let filling = match window.spec() {
        WindowSpec::Count(n) if rows < n => Some("window_filling"),
        _ => None,
    };
    let mut scratch = Scratch::default();
    let mut reports: Vec<ColumnReport> = profile
        .columns()
        .enumerate()
        .map(|(i, cp)| {
            let gathered = window.gather(i, cp, std::mem::take(&mut scratch.values));
            let (report, hist) = column(cp, gathered, cfg.min_records, filling, &mut scratch);
            histograms.insert(cp.name.clone(), hist);
            report
        })
        .collect();
    let predictions = reports.split_off(profile.features.len());
    let mut features = reports;

    // Multiple testing across the features' p-value tests.
    let mut corrected_threshold = cfg.alpha;
    if cfg.correction != correction::Correction::None {
        let idx: Vec<usize> = features
            .iter()
            .enumerate()
            .filter(|(_, f)| f.method.is_p_value() && f.status.is_none() && f.p_value.is_some())
            .map(|(i, _)| i)
            .collect();
        let p: Vec<f64> = idx.iter().map(|&i| features[i].p_value.unwrap_or(f64::NAN)).collect();
        let c = correction::correct(&p, cfg.alpha, cfg.correction);
        corrected_threshold = c.threshold;
        for (k, &i) in idx.iter().enumerate() {
            features[i].threshold = c.threshold;
            features[i].drift = c.drifted[k];
        }
    }
    let evaluated = features.iter().filter(|f| f.status.is_none()).count();
    let drifted = features.iter().filter(|f| f.drift).count();
    let share = (evaluated > 0).then(|| drifted as f64 / evaluated as f64);
    let dataset = DatasetReport {
        features: features.len(),
        evaluated,
        drifted,
        share,
        drift_share: cfg.drift_share,
        drift: share.is_some_and(|s| s >= cfg.drift_share),
        correction: cfg.correction,
        alpha: cfg.alpha,
        corrected_threshold,
    };
    let covariate_shift = profile.pca.as_ref().map(|(pca, cols)| {
        let (mean, n) = window.pca_mean();
        let threshold = pca.threshold(n as usize);
        let enough = n as usize >= cfg.min_records && filling.is_none();
        CovariateReport {
            method: "pca_reconstruction",
            score: mean.is_finite().then_some(mean),
            threshold,
            drift: enough && mean > threshold,
            records: n,
            features: cols.len(),
            components: pca.components(),
            explained_variance: pca.explained,
            reference_error_mean: pca.error_mean,
            reference_error_std: pca.error_std,
        }
    });
    let (kind, size) = match window.spec() {
        WindowSpec::Count(n) => ("count", n as f64),
        WindowSpec::Time(t) => ("time", t.as_secs_f64()),
    };
    VersionReport {
        window: WindowReport { kind, size, records: rows, from: from.map(time), to: to.map(time), evaluation },
        records_total: window.records_total,
        features,
        predictions,
        dataset,
        covariate_shift,
    }
}

/// One ground-truth label, as it arrived.
#[derive(Debug, Clone, Copy)]
pub enum Observed<'a> {
    Num(f64),
    Text(&'a str),
}

/// Label drift: the labels of a window against the reference's target column, with the same
/// test, threshold and statistics as a feature of that kind and reference size.
pub fn label_drift(cp: &ColumnProfile, labels: &[Observed], min_records: usize) -> ColumnReport {
    let gathered = match &cp.shape {
        Shape::Num(_) => {
            let values: Vec<f64> = labels
                .iter()
                .filter_map(|l| match *l {
                    Observed::Num(x) => Some(x),
                    Observed::Text(s) => s.trim().parse().ok(),
                })
                .filter(|x: &f64| !x.is_nan())
                .collect();
            let missing = (labels.len() - values.len()) as u64;
            Gathered::NumExact { values, missing }
        }
        Shape::Cat(p) => {
            let mut counts = vec![0u64; p.categories.len() + 1];
            for l in labels {
                let key = match *l {
                    Observed::Num(x) => super::schema::number_label(x),
                    Observed::Text(s) => s.to_owned(),
                };
                let slot = p.index.get(&key).copied().unwrap_or(p.categories.len());
                counts[slot] += 1;
            }
            Gathered::Cat { counts, missing: 0 }
        }
    };
    column(cp, gathered, min_records, None, &mut Scratch::default()).0
}

/// Reference counts with one more slot (unseen), and live counts, over category-like bins.
struct Categories {
    reference: Vec<u64>,
    current: Vec<u64>,
    unseen: Option<u64>,
}

/// Buffers the exact evaluation reuses across the columns of one evaluation: the values' buffer, the sort's
/// scratch, and the ECDF levels (k/n) of the sample sizes seen, which are few (the reference's and the
/// window's, for most columns).
#[derive(Default)]
struct Scratch {
    /// A column's exact values, handed back after use.
    values: Vec<f64>,
    sort: Vec<u64>,
    levels: Vec<merge::EcdfLevels>,
}

impl Scratch {
    fn levels(&mut self, n: usize) -> usize {
        match self.levels.iter().position(|l| l.size() == n) {
            Some(i) => i,
            None => {
                self.levels.push(merge::EcdfLevels::new(n));
                self.levels.len() - 1
            }
        }
    }
}

fn column(
    cp: &ColumnProfile,
    g: Gathered,
    min_records: usize,
    filling: Option<&'static str>,
    scratch: &mut Scratch,
) -> (ColumnReport, Histogram) {
    let mut scores = BTreeMap::new();
    let mut statistic = None;
    let mut p_value = None;
    let mut ks_error_bound = None;
    let (records, missing, evaluation, cats, hist) = match (&cp.shape, g) {
        (Shape::Num(p), Gathered::NumExact { mut values, missing }) => {
            sort::sort_f64_with(&mut values, &mut scratch.sort);
            let n = values.len() as u64;
            let bins = binning::bin_counts_sorted(&p.psi_edges, &values);
            let cats = num_categories(
                p,
                || {
                    let mut counts = vec![0u64; p.distinct_counts.len()];
                    for &x in &values {
                        if let Some(i) = p.distinct_index(x) {
                            counts[i] += 1;
                        }
                    }
                    counts
                },
                &bins,
            );
            if n > 0 {
                // D and W1 from one merge: the values of ks_statistic and wasserstein_sorted, bit for bit.
                let (la, lb) = (scratch.levels(p.sorted.len()), scratch.levels(values.len()));
                let (la, lb) = (&scratch.levels[la], &scratch.levels[lb]);
                let (d, w) = merge::ks_and_wasserstein_with(&p.sorted, &values, la, lb);
                scores.insert("ks", d);
                scores.insert("wasserstein", wasserstein::normed(w, p.std));
                if cp.method == Method::Ks {
                    // ks_2samp, from the D already computed.
                    let r = ks::ks_test_from_statistic(d, p.sorted.len(), values.len(), None);
                    statistic = Some(r.statistic);
                    p_value = Some(r.p_value);
                }
            }
            scratch.values = values;
            (n, missing, Evaluation::Exact, cats, numeric_histogram(p, bins))
        }
        (Shape::Num(p), Gathered::NumBinned { grid, bins, distinct, missing, min, max }) => {
            let n: u64 = grid.iter().sum();
            let cats = num_categories(p, || distinct.clone(), &bins);
            if n > 0 {
                let (d, bound) = ks::ks_binned(&p.grid_counts, &grid);
                scores.insert("ks", d);
                ks_error_bound = Some(bound);
                let lo = min.min(p.sorted[0]);
                let hi = max.max(*p.sorted.last().expect("profile has values"));
                let (w, _) = wasserstein::wasserstein_binned(&p.grid_edges, &p.grid_counts, &grid, lo, hi);
                scores.insert("wasserstein", wasserstein::normed(w, p.std));
                if cp.method == Method::Ks {
                    let (pv, _) = ks::ks_p_value(d, p.sorted.len(), n as usize);
                    statistic = Some(d);
                    p_value = Some(pv);
                }
            }
            (n, missing, Evaluation::Binned, cats, numeric_histogram(p, bins))
        }
        (Shape::Cat(p), Gathered::Cat { counts, missing }) => {
            let n: u64 = counts.iter().sum();
            let mut reference = p.counts.clone();
            reference.push(0);
            let unseen = counts.last().copied();
            let mut bins = p.categories.clone();
            bins.push("(unseen)".into());
            let hist = Histogram { bins, edges: None, reference: reference.clone(), current: counts.clone() };
            let cats = Categories { reference, current: counts, unseen };
            (n, missing, Evaluation::Exact, cats, hist)
        }
        _ => unreachable!("gathered from the same profile"),
    };
    if records > 0 {
        scores.insert("psi", distance::psi(&cats.reference, &cats.current, distance::PSI_FLOOR));
        scores.insert("jensenshannon", distance::jensen_shannon(&cats.reference, &cats.current));
        match cp.method {
            Method::Ks => {}
            Method::Wasserstein => statistic = scores.get("wasserstein").copied(),
            Method::Psi => statistic = scores.get("psi").copied(),
            Method::Jensenshannon => statistic = scores.get("jensenshannon").copied(),
            Method::Chisquare => {
                let c = chi2::chisquare_goodness_of_fit(&cats.reference, &cats.current);
                statistic = Some(c.statistic);
                p_value = Some(c.p_value);
            }
            Method::Chi2Contingency => {
                let c = chi2::chi2_contingency(&cats.reference, &cats.current, true);
                statistic = Some(c.statistic);
                p_value = Some(c.p_value);
            }
            Method::Ztest => {
                // The proportion of the reference's first category (its first value in file order,
                // or the smaller value of a numeric column).
                let ref_n: u64 = cats.reference.iter().sum();
                let z = ztest::two_proportion_z(cats.reference[0], ref_n, cats.current[0], records);
                statistic = Some(z.statistic);
                p_value = Some(z.p_value);
            }
        }
    }
    let status = filling.or((records < min_records as u64).then_some("insufficient_data"));
    let drift = status.is_none()
        && match (cp.method.is_p_value(), p_value, statistic) {
            (true, Some(p), _) => p < cp.threshold,
            (false, _, Some(s)) => s >= cp.threshold,
            _ => false,
        };
    let report = ColumnReport {
        name: cp.name.clone(),
        kind: cp.kind,
        method: cp.method,
        method_source: if cp.auto { "auto" } else { "config" },
        statistic: statistic.filter(|s| !s.is_nan()),
        p_value: p_value.filter(|p| !p.is_nan()),
        threshold: cp.threshold,
        drift,
        status,
        records,
        missing,
        unseen: cats.unseen,
        evaluation,
        ks_error_bound,
        scores: scores.into_iter().filter(|(_, v)| v.is_finite()).collect(),
    };
    (report, hist)
}

/// The category-like view of a numeric column: per distinct value (with an unseen slot) when the
/// reference has few, else its PSI bins.
fn num_categories(p: &NumProfile, distinct: impl FnOnce() -> Vec<u64>, bins: &[u64]) -> Categories {
    if p.distinct.is_some() {
        let current = distinct();
        let unseen = current.last().copied();
        Categories { reference: p.distinct_counts.clone(), current, unseen }
    } else {
        Categories { reference: p.psi_counts.clone(), current: bins.to_vec(), unseen: None }
    }
}

fn numeric_histogram(p: &NumProfile, current: Vec<u64>) -> Histogram {
    let mut bins = Vec::with_capacity(p.psi_edges.len() + 1);
    let mut lower = "-inf".to_owned();
    for e in &p.psi_edges {
        bins.push(format!("({lower}, {e}]"));
        lower = e.to_string();
    }
    bins.push(format!("({lower}, +inf)"));
    let mut edges = p.psi_edges.clone();
    edges.push(f64::INFINITY);
    Histogram { bins, edges: Some(edges), reference: p.psi_counts.clone(), current }
}
