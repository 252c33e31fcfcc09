//! Reference feature distributions: where the generator's rows come from.
//!
//! A [`Reference`] is either
//!
//! * **synthetic**: a list of [`FeatureSpec`]s, each sampled independently from a
//!   parametric [`Distribution`] (the built-in demo reference, [`default_features`]), or
//! * **tabular**: rows loaded from a CSV file with a header ([`Reference::from_csv_path`]);
//!   whole rows are drawn uniformly at random *with replacement*, so the joint
//!   distribution (correlations between columns) of the file is preserved.
//!
//! The generator does not care which: it only calls [`Reference::sample_row`].
//!
//! # Seam for drift
//!
//! Rows are produced by a [`Sampler`], which draws from the reference and then passes
//! each row through an optional [`RowTransform`]. The transform is told the row's
//! *intended send time relative to the start of the run*, so a drift scenario ("after
//! 60 s shift `income` by +1 sd", "ramp `age` up over two minutes") is just a transform
//! that looks at `elapsed` and edits the row in place. Sampling is seeded per request
//! (see [`Sampler::fill_batch`]), so the rows of request *n* are a pure function of
//! `(seed, n)`: a later label-feedback phase can recompute them from the request id.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A parametric distribution for one synthetic feature.
#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    /// Normal(`mean`, `std_dev`), then clamped to `[min, max]` (use
    /// `f64::NEG_INFINITY` / `f64::INFINITY` for an open side).
    Normal { mean: f64, std_dev: f64, min: f64, max: f64 },
    /// The mean of `n` independent Uniform(`low`, `high`) draws: a bell-shaped,
    /// bounded, Beta-like distribution on `[low, high]` (Irwin-Hall, rescaled).
    MeanOfUniforms { n: u32, low: f64, high: f64 },
}

impl Distribution {
    /// Nominal mean. For a clipped normal this is the parameter, not the (slightly
    /// different) mean after clipping: it is the value a model standardizes with.
    pub fn mean(&self) -> f64 {
        match *self {
            Distribution::Normal { mean, .. } => mean,
            Distribution::MeanOfUniforms { low, high, .. } => (low + high) / 2.0,
        }
    }

    /// Nominal standard deviation (the parameter for a normal; exact for the mean of
    /// uniforms: `(high - low) / sqrt(12 n)`).
    pub fn std_dev(&self) -> f64 {
        match *self {
            Distribution::Normal { std_dev, .. } => std_dev,
            Distribution::MeanOfUniforms { n, low, high } => (high - low) / (12.0 * f64::from(n.max(1))).sqrt(),
        }
    }

    /// Draw one value.
    pub fn sample(&self, rng: &mut fastrand::Rng) -> f64 {
        match *self {
            Distribution::Normal { mean, std_dev, min, max } => (mean + std_dev * standard_normal(rng)).clamp(min, max),
            Distribution::MeanOfUniforms { n, low, high } => {
                let n = n.max(1);
                let sum: f64 = (0..n).map(|_| rng.f64()).sum();
                low + (high - low) * sum / f64::from(n)
            }
        }
    }
}

/// One standard normal draw (Box-Muller; one of the pair is discarded, which is
/// cheaper than carrying state and plenty fast for a load generator).
fn standard_normal(rng: &mut fastrand::Rng) -> f64 {
    // 1 - f64() is in (0, 1], so ln() is finite.
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A named synthetic feature.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSpec {
    pub name: String,
    pub dist: Distribution,
}

impl FeatureSpec {
    pub fn new(name: impl Into<String>, dist: Distribution) -> Self {
        FeatureSpec { name: name.into(), dist }
    }

    /// Nominal mean (see [`Distribution::mean`]).
    pub fn mean(&self) -> f64 {
        self.dist.mean()
    }

    /// Nominal standard deviation (see [`Distribution::std_dev`]).
    pub fn std_dev(&self) -> f64 {
        self.dist.std_dev()
    }
}

/// The built-in reference of the demo model: four numeric features, in this order.
///
/// | name            | distribution                         | mean  | sd     |
/// |-----------------|--------------------------------------|-------|--------|
/// | `age`           | Normal(40, 12) clipped to [18, 90]   | 40    | 12     |
/// | `income`        | Normal(55000, 15000) clipped to >= 0 | 55000 | 15000  |
/// | `debt_ratio`    | mean of 3 Uniform(0, 1)              | 0.5   | 1/6    |
/// | `tenure_months` | Normal(36, 20) clipped to >= 0       | 36    | 20     |
pub fn default_features() -> Vec<FeatureSpec> {
    vec![
        FeatureSpec::new("age", Distribution::Normal { mean: 40.0, std_dev: 12.0, min: 18.0, max: 90.0 }),
        FeatureSpec::new(
            "income",
            Distribution::Normal { mean: 55_000.0, std_dev: 15_000.0, min: 0.0, max: f64::INFINITY },
        ),
        FeatureSpec::new("debt_ratio", Distribution::MeanOfUniforms { n: 3, low: 0.0, high: 1.0 }),
        FeatureSpec::new(
            "tenure_months",
            Distribution::Normal { mean: 36.0, std_dev: 20.0, min: 0.0, max: f64::INFINITY },
        ),
    ]
}

/// Name and moments of one column, whatever the reference's kind.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ColumnStats {
    pub name: String,
    pub mean: f64,
    pub std_dev: f64,
}

/// Rows loaded from a CSV file, stored row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    names: Vec<String>,
    /// `rows * names.len()` values, row-major.
    data: Vec<f64>,
}

impl Table {
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn rows(&self) -> usize {
        self.data.len() / self.names.len()
    }

    /// Row `i` (panics if out of range).
    pub fn row(&self, i: usize) -> &[f64] {
        let w = self.names.len();
        &self.data[i * w..(i + 1) * w]
    }
}

/// Where rows come from. See the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub enum Reference {
    /// Independent parametric features.
    Synthetic(Vec<FeatureSpec>),
    /// Whole rows resampled from a table.
    Table(Table),
}

impl Default for Reference {
    /// The demo reference, [`default_features`].
    fn default() -> Self {
        Reference::Synthetic(default_features())
    }
}

impl Reference {
    /// Number of features per row.
    pub fn width(&self) -> usize {
        match self {
            Reference::Synthetic(f) => f.len(),
            Reference::Table(t) => t.names.len(),
        }
    }

    /// Feature names, in column order.
    pub fn names(&self) -> Vec<&str> {
        match self {
            Reference::Synthetic(f) => f.iter().map(|f| f.name.as_str()).collect(),
            Reference::Table(t) => t.names.iter().map(String::as_str).collect(),
        }
    }

    /// Per-column mean and standard deviation: nominal for a synthetic reference,
    /// computed from the data (sample sd, `n - 1`) for a table.
    pub fn stats(&self) -> Vec<ColumnStats> {
        match self {
            Reference::Synthetic(f) => {
                f.iter().map(|f| ColumnStats { name: f.name.clone(), mean: f.mean(), std_dev: f.std_dev() }).collect()
            }
            Reference::Table(t) => {
                let n = t.rows() as f64;
                (0..t.names.len())
                    .map(|c| {
                        let col = || (0..t.rows()).map(|r| t.row(r)[c]);
                        let mean = col().sum::<f64>() / n;
                        let ss: f64 = col().map(|x| (x - mean) * (x - mean)).sum();
                        let std_dev = if n > 1.0 { (ss / (n - 1.0)).sqrt() } else { 0.0 };
                        ColumnStats { name: t.names[c].clone(), mean, std_dev }
                    })
                    .collect()
            }
        }
    }

    /// Fill `out` (length [`width`](Self::width)) with one row.
    pub fn sample_row(&self, rng: &mut fastrand::Rng, out: &mut [f64]) {
        match self {
            Reference::Synthetic(f) => {
                for (slot, spec) in out.iter_mut().zip(f) {
                    *slot = spec.dist.sample(rng);
                }
            }
            Reference::Table(t) => out.copy_from_slice(t.row(rng.usize(..t.rows()))),
        }
    }

    /// Load a table from a CSV file. See [`Reference::from_csv_str`] for the format.
    pub fn from_csv_path(path: impl AsRef<Path>) -> Result<Self, ReferenceError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ReferenceError {
            path: Some(path.to_path_buf()),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::from_csv_str(&text).map_err(|mut e| {
            e.path = Some(path.to_path_buf());
            e
        })
    }

    /// Parse CSV text: the first non-blank line is a header of column names (optionally
    /// double-quoted), every further non-blank line has exactly as many comma-separated
    /// finite numbers. Quoted fields containing commas are not supported (the reference
    /// is numeric). Errors name the 1-based line.
    pub fn from_csv_str(text: &str) -> Result<Self, ReferenceError> {
        let err = |line: usize, message: String| ReferenceError { path: None, line: Some(line), message };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty());

        let (header_line, header) = lines.next().ok_or(ReferenceError {
            path: None,
            line: None,
            message: "empty file: expected a header line".into(),
        })?;
        let mut names = Vec::new();
        for field in header.split(',') {
            let name = unquote(field.trim());
            if name.is_empty() {
                return Err(err(header_line, format!("empty column name in header (column {})", names.len() + 1)));
            }
            if names.iter().any(|n| n == name) {
                return Err(err(header_line, format!("duplicate column name `{name}`")));
            }
            names.push(name.to_string());
        }

        let mut data = Vec::new();
        for (line_no, line) in lines {
            let mut count = 0;
            for (c, field) in line.split(',').enumerate() {
                count += 1;
                if c >= names.len() {
                    continue; // reported below with the full count
                }
                let field = unquote(field.trim());
                let value: f64 = field
                    .parse()
                    .map_err(|_| err(line_no, format!("column `{}`: `{field}` is not a number", names[c])))?;
                if !value.is_finite() {
                    return Err(err(line_no, format!("column `{}`: `{field}` is not finite", names[c])));
                }
                data.push(value);
            }
            if count != names.len() {
                return Err(err(line_no, format!("expected {} fields, found {count}", names.len())));
            }
        }
        if data.is_empty() {
            return Err(err(header_line, "header but no data rows".into()));
        }
        Ok(Reference::Table(Table { names, data }))
    }
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s)
}

/// A reference file that could not be loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceError {
    /// The file, when loaded from one.
    pub path: Option<PathBuf>,
    /// 1-based line number, when the problem is on a line.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ReferenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, self.line) {
            (Some(p), Some(l)) => write!(f, "{}: line {l}: {}", p.display(), self.message),
            (Some(p), None) => write!(f, "{}: {}", p.display(), self.message),
            (None, Some(l)) => write!(f, "line {l}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ReferenceError {}

/// A hook that edits each sampled row before it is serialized: the seam for drift
/// scenarios. `elapsed` is the request's *intended* send time relative to the start of
/// the run; `rng` is the request's own seeded generator (use it for any randomness so
/// rows stay reproducible).
pub trait RowTransform: Send + Sync + fmt::Debug {
    fn apply(&self, elapsed: Duration, row: &mut [f64], rng: &mut fastrand::Rng);
}

/// Draws batches of rows: a [`Reference`] plus an optional [`RowTransform`].
#[derive(Debug, Clone)]
pub struct Sampler {
    reference: Arc<Reference>,
    transform: Option<Arc<dyn RowTransform>>,
}

impl Sampler {
    pub fn new(reference: Arc<Reference>, transform: Option<Arc<dyn RowTransform>>) -> Self {
        Sampler { reference, transform }
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// The generator used for request number `index` of a run seeded with `seed`
    /// (a SplitMix64 mix, so neighbouring indices get unrelated streams).
    pub fn rng_for(seed: u64, index: u64) -> fastrand::Rng {
        let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        fastrand::Rng::with_seed(z ^ (z >> 31))
    }

    /// Clear `out` and fill it with `batch` rows, row-major (`batch * width` values),
    /// for request `index` of a run seeded with `seed`, intended at `elapsed`.
    pub fn fill_batch(&self, seed: u64, index: u64, elapsed: Duration, batch: usize, out: &mut Vec<f64>) {
        let width = self.reference.width();
        let mut rng = Self::rng_for(seed, index);
        out.clear();
        out.resize(batch * width, 0.0);
        if width == 0 {
            return;
        }
        for row in out.chunks_exact_mut(width) {
            self.reference.sample_row(&mut rng, row);
            if let Some(t) = &self.transform {
                t.apply(elapsed, row, &mut rng);
            }
        }
    }
}

/// Shifts features by a number of reference standard deviations from a given time on:
/// the drift scenario of the demo and the drift tests (`--shift income=1.0@60s`).
#[derive(Debug, Clone, PartialEq)]
pub struct Shift {
    /// (column index, amount added) pairs.
    pub columns: Vec<(usize, f64)>,
    /// Rows intended before this time are left alone.
    pub after: Duration,
}

impl Shift {
    /// Parses `NAME=SDS[@AFTER]` specs (e.g. `income=1.5@60s`, `age=-0.5`) against a reference.
    pub fn parse(specs: &[String], reference: &Reference) -> Result<Shift, String> {
        let names = reference.names();
        let stats = reference.stats();
        let mut columns = Vec::new();
        let mut after = Duration::ZERO;
        for spec in specs {
            let (assign, at) = match spec.split_once('@') {
                Some((a, t)) => (a, Some(t)),
                None => (spec.as_str(), None),
            };
            let (name, sds) = assign
                .split_once('=')
                .ok_or_else(|| format!("--shift {spec:?}: expected NAME=SDS[@AFTER], e.g. income=1.0@60s"))?;
            let col = names
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| format!("--shift {spec:?}: no feature {name:?} (features: {})", names.join(", ")))?;
            let sds: f64 =
                sds.parse().map_err(|_| format!("--shift {spec:?}: {sds:?} is not a number of standard deviations"))?;
            if let Some(t) = at {
                after = humantime::parse_duration(t).map_err(|e| format!("--shift {spec:?}: {t:?}: {e}"))?;
            }
            columns.push((col, sds * stats[col].std_dev));
        }
        Ok(Shift { columns, after })
    }
}

impl RowTransform for Shift {
    fn apply(&self, elapsed: Duration, row: &mut [f64], _rng: &mut fastrand::Rng) {
        if elapsed >= self.after {
            for &(col, delta) in &self.columns {
                row[col] += delta;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_reference_shape_and_moments() {
        let f = default_features();
        let names: Vec<_> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["age", "income", "debt_ratio", "tenure_months"]);
        assert_eq!((f[0].mean(), f[0].std_dev()), (40.0, 12.0));
        assert_eq!((f[1].mean(), f[1].std_dev()), (55_000.0, 15_000.0));
        assert_eq!(f[2].mean(), 0.5);
        assert!((f[2].std_dev() - 1.0 / 6.0).abs() < 1e-12);
        assert_eq!((f[3].mean(), f[3].std_dev()), (36.0, 20.0));
    }

    #[test]
    fn clipping_and_empirical_moments() {
        let r = Reference::default();
        let mut rng = fastrand::Rng::with_seed(7);
        let n = 100_000;
        let mut row = [0.0; 4];
        let mut sums = [0.0; 4];
        let (mut age_lo, mut age_hi) = (0, 0);
        for _ in 0..n {
            r.sample_row(&mut rng, &mut row);
            assert!((18.0..=90.0).contains(&row[0]), "age {}", row[0]);
            assert!(row[1] >= 0.0, "income {}", row[1]);
            assert!((0.0..=1.0).contains(&row[2]), "debt_ratio {}", row[2]);
            assert!(row[3] >= 0.0, "tenure {}", row[3]);
            age_lo += usize::from(row[0] == 18.0);
            age_hi += usize::from(row[0] == 90.0);
            for (s, v) in sums.iter_mut().zip(row) {
                *s += v;
            }
        }
        // Clipping actually happens (P(age < 18) ~ 3.4 %, P(tenure < 0) ~ 3.6 %).
        assert!(age_lo > 1000, "age clipped at 18 only {age_lo} times");
        assert!(age_hi < 10);
        let means: Vec<f64> = sums.iter().map(|s| s / n as f64).collect();
        assert!((means[0] - 40.0).abs() < 0.5, "{means:?}");
        assert!((means[1] - 55_000.0).abs() < 300.0, "{means:?}");
        assert!((means[2] - 0.5).abs() < 0.01, "{means:?}");
        // Clipping at 0 pushes tenure's mean up a little (~36.3).
        assert!((means[3] - 36.5).abs() < 1.0, "{means:?}");
    }

    #[test]
    fn normal_clamps_both_sides() {
        let d = Distribution::Normal { mean: 0.0, std_dev: 10.0, min: -1.0, max: 1.0 };
        let mut rng = fastrand::Rng::with_seed(1);
        let xs: Vec<f64> = (0..1000).map(|_| d.sample(&mut rng)).collect();
        assert!(xs.iter().all(|x| (-1.0..=1.0).contains(x)));
        assert!(xs.contains(&-1.0) && xs.contains(&1.0));
    }

    #[test]
    fn csv_parses_and_resamples_whole_rows() {
        let text = "\u{feff}\"a\", b ,c\n1,2,3\n\n 4.5 , -6e1 ,7\r\n";
        let r = Reference::from_csv_str(text).unwrap();
        assert_eq!(r.names(), ["a", "b", "c"]);
        assert_eq!(r.width(), 3);
        let Reference::Table(t) = &r else { panic!("expected a table") };
        assert_eq!(t.rows(), 2);
        assert_eq!(t.row(1), [4.5, -60.0, 7.0]);
        let mut rng = fastrand::Rng::with_seed(3);
        let mut row = [0.0; 3];
        let mut seen = [false; 2];
        for _ in 0..100 {
            r.sample_row(&mut rng, &mut row);
            let i = [[1.0, 2.0, 3.0], [4.5, -60.0, 7.0]]
                .iter()
                .position(|x| *x == row)
                .expect("sampled row is a whole row of the file");
            seen[i] = true;
        }
        assert_eq!(seen, [true, true]);
        let s = r.stats();
        assert_eq!(s[0].mean, 2.75);
        assert!((s[0].std_dev - (2.0f64 * 1.75 * 1.75).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn csv_errors_name_the_line() {
        let e = Reference::from_csv_str("x,y\n1,2\n\n3,oops\n").unwrap_err();
        assert_eq!(e.line, Some(4));
        assert_eq!(e.to_string(), "line 4: column `y`: `oops` is not a number");

        let e = Reference::from_csv_str("x,y\n1,2,3\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2: expected 2 fields, found 3");
        let e = Reference::from_csv_str("x,y\n1\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2: expected 2 fields, found 1");
        let e = Reference::from_csv_str("x,y\n1,NaN\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2: column `y`: `NaN` is not finite");
        let e = Reference::from_csv_str("x,x\n1,2\n").unwrap_err();
        assert_eq!(e.line, Some(1));
        let e = Reference::from_csv_str("\n\nx,y\n").unwrap_err();
        assert_eq!(e.to_string(), "line 3: header but no data rows");
        assert!(Reference::from_csv_str("  \n").is_err());
    }

    #[test]
    fn csv_file_errors_name_the_file_and_line() {
        let dir = std::env::temp_dir().join(format!("vigil-lt-ref-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.csv");
        std::fs::write(&path, "a,b\n1,2\n3,\n").unwrap();
        let e = Reference::from_csv_path(&path).unwrap_err();
        assert_eq!(e.to_string(), format!("{}: line 3: column `b`: `` is not a number", path.display()));
        let missing = Reference::from_csv_path(dir.join("missing.csv")).unwrap_err();
        assert!(missing.to_string().contains("missing.csv: cannot read"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[derive(Debug)]
    struct ShiftAfter(Duration);
    impl RowTransform for ShiftAfter {
        fn apply(&self, elapsed: Duration, row: &mut [f64], _: &mut fastrand::Rng) {
            if elapsed >= self.0 {
                row[0] += 1000.0;
            }
        }
    }

    #[test]
    fn sampler_is_reproducible_and_applies_transform() {
        let s = Sampler::new(Arc::new(Reference::default()), Some(Arc::new(ShiftAfter(Duration::from_secs(1)))));
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        s.fill_batch(9, 5, Duration::ZERO, 3, &mut a);
        s.fill_batch(9, 5, Duration::ZERO, 3, &mut b);
        assert_eq!(a.len(), 12);
        assert_eq!(a, b, "same (seed, index) gives the same rows");
        s.fill_batch(9, 6, Duration::ZERO, 3, &mut c);
        assert_ne!(a, c);
        s.fill_batch(9, 5, Duration::from_secs(2), 3, &mut b);
        for (x, y) in a.chunks(4).zip(b.chunks(4)) {
            assert_eq!(y[0], x[0] + 1000.0);
            assert_eq!(x[1..], y[1..]);
        }
    }
}
