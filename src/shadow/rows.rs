//! The feature space what-if algorithms work in: one `f64` per schema feature, and the
//! reference statistics that give it units.
//!
//! Owns: [`Codebook`], the translation between live [`Records`] and rows of numbers, the category
//! codes of categorical features, and the per-feature scale / range / median the algorithms
//! measure steps in. May not touch: bodies (that is `encode` and `answers`), the model.
//!
//! # The space
//! A row has one value per feature of the schema, in schema order:
//! - a numeric feature is its value;
//! - a categorical feature is a *code*: an index into the codebook's category list for that
//!   feature. The list starts with the reference's categories, most frequent first (ties in
//!   reference order), so code 0 is the mode; a category seen live but not in the reference is
//!   appended the first time it is seen (at most [`MAX_LIVE_CATEGORIES`] per feature);
//! - `NaN` is missing: the request did not carry the feature, sent `null`, or (text) `""`, which
//!   the codecs also read as missing.
//!
//! Codes are stable for the life of a codebook: a row encoded once means the same thing later.

use crate::monitor::profile::{Profile, Shape};
use crate::monitor::schema::{number_label, Col, Kind, Records};
use std::collections::HashMap;

/// The most categories one feature may gain from live traffic beyond the reference's. Bodies come
/// from the network; past this a new category reads as missing (`NaN`) and is counted in
/// [`Codebook::overflowed`], so a client sending a fresh string every time cannot grow memory.
pub const MAX_LIVE_CATEGORIES: usize = 1000;

/// One feature's part of the codebook.
#[derive(Debug, Clone)]
struct Feature {
    name: String,
    kind: Kind,
    /// Numeric: the reference's population standard deviation (NaN when unknown).
    std: f64,
    /// Numeric: smallest and largest reference value. Categorical: 0 and the last reference code.
    range: (f64, f64),
    /// Numeric: the reference median. Categorical: 0, the code of the most frequent category.
    median: f64,
    /// Categorical: the reference categories, most frequent first, then the live ones.
    categories: Vec<String>,
    /// Category → code.
    index: HashMap<String, usize>,
    /// How many of `categories` came from the reference.
    reference_categories: usize,
    /// The code of the category [`Codebook::unseen_category`] made up, once made.
    unseen: Option<usize>,
}

/// The feature space of one reference profile; see the module doc.
#[derive(Debug, Clone)]
pub struct Codebook {
    features: Vec<Feature>,
    overflowed: u64,
}

impl Codebook {
    /// Builds the codebook of a reference profile: one feature per `profile.features` entry
    /// (the schema's features, in order). Numeric features take their statistics from
    /// `NumProfile::sorted` and `NumProfile::std`; categorical ones their categories from
    /// `CatProfile::categories` / `counts`.
    pub fn from_profile(profile: &Profile) -> Codebook {
        let features = profile
            .features
            .iter()
            .map(|c| match &c.shape {
                Shape::Num(p) => {
                    let s = &p.sorted;
                    let range = match (s.first(), s.last()) {
                        (Some(&lo), Some(&hi)) => (lo, hi),
                        _ => (f64::NAN, f64::NAN),
                    };
                    Feature {
                        name: c.name.clone(),
                        kind: Kind::Numeric,
                        std: p.std,
                        range,
                        median: median(s),
                        categories: Vec::new(),
                        index: HashMap::new(),
                        reference_categories: 0,
                        unseen: None,
                    }
                }
                Shape::Cat(p) => {
                    let mut order: Vec<usize> = (0..p.categories.len()).collect();
                    // Stable: equal counts keep the reference's order.
                    order.sort_by(|&a, &b| {
                        let (ca, cb) = (p.counts.get(a).copied().unwrap_or(0), p.counts.get(b).copied().unwrap_or(0));
                        cb.cmp(&ca)
                    });
                    let categories: Vec<String> = order.iter().map(|&k| p.categories[k].clone()).collect();
                    let index = categories.iter().enumerate().map(|(k, c)| (c.clone(), k)).collect();
                    let n = categories.len();
                    Feature {
                        name: c.name.clone(),
                        kind: Kind::Categorical,
                        std: f64::NAN,
                        range: (0.0, n.saturating_sub(1) as f64),
                        median: 0.0,
                        categories,
                        index,
                        reference_categories: n,
                        unseen: None,
                    }
                }
            })
            .collect();
        Codebook { features, overflowed: 0 }
    }

    /// Values per row: the number of features.
    pub fn width(&self) -> usize {
        self.features.len()
    }

    /// Feature `i`'s name (`""` out of range).
    pub fn name(&self, i: usize) -> &str {
        self.features.get(i).map(|f| f.name.as_str()).unwrap_or("")
    }

    /// Feature `i`'s kind (numeric out of range).
    pub fn kind(&self, i: usize) -> Kind {
        self.features.get(i).map(|f| f.kind).unwrap_or(Kind::Numeric)
    }

    /// Whether feature `i` is categorical (its values are codes).
    pub fn is_categorical(&self, i: usize) -> bool {
        self.kind(i) == Kind::Categorical
    }

    /// The category a code stands for: `None` for a numeric feature, a missing value, or a number
    /// that is not a code of this feature. A code is an index, so it must be a whole number;
    /// anything else is rounded to the nearest one first (what-if algorithms that step through
    /// the space continuously land between codes).
    pub fn category(&self, i: usize, code: f64) -> Option<&str> {
        let f = self.features.get(i)?;
        let k = code_index(code)?;
        f.categories.get(k).map(String::as_str)
    }

    /// The code of a category of feature `i`, if the codebook has it.
    pub fn code(&self, i: usize, category: &str) -> Option<f64> {
        self.features.get(i)?.index.get(category).map(|&k| k as f64)
    }

    /// The code of a category, appending it if the codebook has not seen it yet. `NaN` for a
    /// numeric feature, for `""` (missing), and for a new category past [`MAX_LIVE_CATEGORIES`].
    pub fn code_or_insert(&mut self, i: usize, category: &str) -> f64 {
        let Some(f) = self.features.get_mut(i) else { return f64::NAN };
        if f.kind != Kind::Categorical || category.is_empty() {
            return f64::NAN;
        }
        if let Some(&k) = f.index.get(category) {
            return k as f64;
        }
        if f.categories.len() - f.reference_categories >= MAX_LIVE_CATEGORIES {
            self.overflowed += 1;
            return f64::NAN;
        }
        f.categories.push(category.to_owned());
        f.index.insert(category.to_owned(), f.categories.len() - 1);
        (f.categories.len() - 1) as f64
    }

    /// The `n` most frequent reference categories of feature `i` (fewer if the reference has
    /// fewer; empty for a numeric feature). Their codes are `0..len`.
    pub fn frequent(&self, i: usize, n: usize) -> &[String] {
        match self.features.get(i) {
            Some(f) => &f.categories[..n.min(f.reference_categories)],
            None => &[],
        }
    }

    /// How many categories feature `i` has now (reference and live).
    pub fn categories(&self, i: usize) -> usize {
        self.features.get(i).map(|f| f.categories.len()).unwrap_or(0)
    }

    /// New live categories read as missing because a feature already had
    /// [`MAX_LIVE_CATEGORIES`] of them.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// The unit steps are measured in for feature `i`: the reference's standard deviation for a
    /// numeric feature; 1.0 for a categorical one (a code is not a quantity: one swap is one
    /// unit). Fallback: a numeric feature whose reference standard deviation is 0 (constant in
    /// the reference) or not finite gets 1.0, one unit of its own, so a step is never zero.
    /// Use [`Codebook::std`] to tell such features apart.
    pub fn scale(&self, i: usize) -> f64 {
        match self.features.get(i) {
            Some(f) if f.kind == Kind::Numeric && f.std.is_finite() && f.std > 0.0 => f.std,
            _ => 1.0,
        }
    }

    /// The reference's population standard deviation of feature `i` as it is (0 for a constant
    /// feature); `NaN` for a categorical feature.
    pub fn std(&self, i: usize) -> f64 {
        self.features.get(i).map(|f| f.std).unwrap_or(f64::NAN)
    }

    /// The smallest and largest reference value of a numeric feature; `(0, last reference code)`
    /// for a categorical one. `(NaN, NaN)` out of range.
    pub fn range(&self, i: usize) -> (f64, f64) {
        self.features.get(i).map(|f| f.range).unwrap_or((f64::NAN, f64::NAN))
    }

    /// The reference median of a numeric feature (the mean of the two middle values for an even
    /// count, as numpy); 0 for a categorical one, the code of its most frequent category.
    pub fn median(&self, i: usize) -> f64 {
        self.features.get(i).map(|f| f.median).unwrap_or(f64::NAN)
    }

    /// The rows of one live exchange in this space: row-major, `rec.rows` × [`Codebook::width`].
    /// A feature the request did not carry is `NaN` in every row.
    pub fn encode_records(&mut self, rec: &Records) -> Vec<f64> {
        self.encode_columns(rec.rows, &rec.features)
    }

    /// As [`Codebook::encode_records`], from the columns `Schema::map_request` returns. Columns
    /// of the other kind are converted as the schema does (a number in a categorical feature is
    /// its label, "3"; text in a numeric one is parsed, else missing); a column shorter than
    /// `rows` is missing where it has no value.
    pub fn encode_columns(&mut self, rows: usize, cols: &[Option<Col>]) -> Vec<f64> {
        let width = self.width();
        let mut out = vec![f64::NAN; rows.saturating_mul(width)];
        for i in 0..width {
            let Some(Some(col)) = cols.get(i) else { continue };
            let categorical = self.is_categorical(i);
            for r in 0..rows.min(col.len()) {
                out[r * width + i] = match (col, categorical) {
                    (Col::Num(v), false) => v[r],
                    (Col::Num(v), true) if v[r].is_nan() => f64::NAN,
                    (Col::Num(v), true) => self.code_or_insert(i, &number_label(v[r])),
                    (Col::Cat(v), true) => v[r].as_deref().map_or(f64::NAN, |c| self.code_or_insert(i, c)),
                    (Col::Cat(v), false) => v[r].as_deref().and_then(|s| s.trim().parse().ok()).unwrap_or(f64::NAN),
                };
            }
        }
        out
    }

    /// Rows from the prediction log (one JSON object per row, feature name → value, as
    /// `store::predlog` writes them) in this space. A feature absent from an object, or null,
    /// is missing; numbers in a categorical feature are their label, as in [`Codebook::encode_columns`].
    pub fn encode_logged(&mut self, rows: &[serde_json::Map<String, serde_json::Value>]) -> Vec<f64> {
        use serde_json::Value;
        let n = rows.len();
        let mut cols: Vec<Option<Col>> = Vec::with_capacity(self.width());
        for i in 0..self.width() {
            let name = self.features[i].name.clone();
            let col = if self.is_categorical(i) {
                Col::Cat(
                    rows.iter()
                        .map(|r| match r.get(&name) {
                            Some(Value::String(s)) => Some(s.clone()),
                            Some(Value::Number(x)) => Some(x.to_string()),
                            Some(Value::Bool(b)) => Some(b.to_string()),
                            _ => None,
                        })
                        .collect(),
                )
            } else {
                Col::Num(
                    rows.iter()
                        .map(|r| match r.get(&name) {
                            Some(Value::Number(x)) => x.as_f64().unwrap_or(f64::NAN),
                            Some(Value::Bool(b)) => *b as u8 as f64,
                            Some(Value::String(s)) => s.trim().parse().unwrap_or(f64::NAN),
                            _ => f64::NAN,
                        })
                        .collect(),
                )
            };
            cols.push(Some(col));
        }
        self.encode_columns(n, &cols)
    }

    /// Feature `i`'s value `code` as JSON, for people to read: the number, the category, or null
    /// when missing.
    pub fn json_value(&self, i: usize, code: f64) -> serde_json::Value {
        if code.is_nan() {
            return serde_json::Value::Null;
        }
        if self.is_categorical(i) {
            return self.category(i, code).map_or(serde_json::Value::Null, |c| serde_json::Value::String(c.to_owned()));
        }
        serde_json::Number::from_f64(code).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }

    /// A category of feature `i` that neither the reference nor live traffic has had, added to
    /// the codebook so rows can carry it; its code. Made up once per feature and the same on
    /// every later call (so repeated stress tests do not grow the codebook). When every
    /// reference category reads as a number (a model taking integer codes), it is the next whole
    /// number above the largest (so it can be sent where the model expects numbers), else
    /// `"vigil-unseen-category"` (with a suffix if even that was taken). `None` for a numeric
    /// feature or past [`MAX_LIVE_CATEGORIES`].
    pub fn unseen_category(&mut self, i: usize) -> Option<f64> {
        let f = self.features.get(i)?;
        if f.kind != Kind::Categorical {
            return None;
        }
        if let Some(k) = f.unseen {
            return Some(k as f64);
        }
        let numbers: Option<Vec<f64>> =
            f.categories.iter().map(|c| c.trim().parse::<f64>().ok().filter(|x| x.is_finite())).collect();
        let mut candidate = match numbers {
            // Whole numbers stay distinct up to 2^53; past 1e15 fall back to a string.
            Some(v) if !v.is_empty() && v.iter().all(|x| x.abs() < 1e15) => {
                let top = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut next = top.floor() + 1.0;
                while f.index.contains_key(&number_label(next)) {
                    next += 1.0;
                }
                number_label(next)
            }
            _ => "vigil-unseen-category".to_owned(),
        };
        let mut k = 2;
        while f.index.contains_key(&candidate) {
            candidate = format!("vigil-unseen-category-{k}");
            k += 1;
        }
        let code = self.code_or_insert(i, &candidate);
        let k = code_index(code)?;
        if let Some(f) = self.features.get_mut(i) {
            f.unseen = Some(k);
        }
        Some(code)
    }
}

/// A code as an index: rounded to the nearest whole number; `None` for NaN, negative or huge.
pub(crate) fn code_index(code: f64) -> Option<usize> {
    let k = code.round();
    (k >= 0.0 && k < u32::MAX as f64).then_some(k as usize)
}

/// The median of ascending values (NaN for none).
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Test helpers shared by the shadow modules' tests: a profile built from columns.
#[cfg(test)]
pub(crate) mod testing {
    use crate::config::{DriftConfig, SchemaConfig};
    use crate::monitor::profile::{Profile, Source};
    use crate::monitor::reference::{Column, ColumnData, Table};

    /// A reference column.
    pub enum Ref {
        Num(Vec<f64>),
        Cat(Vec<&'static str>),
    }

    /// A profile of the given feature columns (and prediction columns, named in `predictions`).
    pub fn profile(columns: Vec<(&str, Ref)>, predictions: &[&str]) -> Profile {
        let rows = columns.first().map(|(_, c)| match c {
            Ref::Num(v) => v.len(),
            Ref::Cat(v) => v.len(),
        });
        let columns: Vec<Column> = columns
            .into_iter()
            .map(|(name, c)| Column {
                name: name.to_owned(),
                data: match c {
                    Ref::Num(v) => ColumnData::Num(v),
                    Ref::Cat(v) => ColumnData::Cat(v.into_iter().map(|s| Some(s.to_owned())).collect()),
                },
            })
            .collect();
        let table = Table { columns, rows: rows.unwrap_or(0) };
        let schema =
            SchemaConfig { predictions: predictions.iter().map(|s| s.to_string()).collect(), ..Default::default() };
        let drift = DriftConfig { covariate_shift: false, ..Default::default() };
        Profile::build(table, Source::File { path: "test".into() }, &schema, &drift).expect("test profile")
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{profile, Ref};
    use super::*;
    use std::sync::Arc;
    use std::time::SystemTime;

    fn book() -> Codebook {
        Codebook::from_profile(&profile(
            vec![
                ("age", Ref::Num(vec![20.0, 30.0, 40.0, 50.0])),
                ("flat", Ref::Num(vec![7.0, 7.0, 7.0, 7.0])),
                ("region", Ref::Cat(vec!["south", "north", "north", "east"])),
            ],
            &[],
        ))
    }

    #[test]
    fn categories_are_most_frequent_first_and_ties_keep_reference_order() {
        let b = book();
        assert_eq!(b.width(), 3);
        assert!(b.is_categorical(2) && !b.is_categorical(0));
        assert_eq!(b.frequent(2, 10), ["north", "south", "east"]);
        assert_eq!(b.frequent(2, 1), ["north"]);
        assert!(b.frequent(0, 3).is_empty());
        assert_eq!(b.category(2, 1.0), Some("south"));
        assert_eq!(b.category(2, 0.6), Some("south"), "rounded to the nearest code");
        assert_eq!(b.category(2, f64::NAN), None);
        assert_eq!(b.category(2, -1.0), None);
        assert_eq!(b.category(2, 3.0), None);
        assert_eq!(b.category(0, 0.0), None);
        assert_eq!(b.range(2), (0.0, 2.0));
        assert_eq!(b.median(2), 0.0);
    }

    #[test]
    fn numeric_statistics_and_the_scale_fallback() {
        let b = book();
        assert_eq!(b.range(0), (20.0, 50.0));
        assert_eq!(b.median(0), 35.0);
        assert!((b.scale(0) - 125f64.sqrt()).abs() < 1e-12);
        assert_eq!(b.std(1), 0.0);
        assert_eq!(b.scale(1), 1.0, "a constant feature steps in its own unit");
        assert_eq!(b.scale(2), 1.0);
        assert_eq!(b.scale(99), 1.0);
        assert!(b.range(99).0.is_nan());
    }

    #[test]
    fn records_encode_with_live_categories_appended_and_missing_as_nan() {
        let mut b = book();
        let rec = Records {
            request_id: "r".into(),
            version: Arc::from("v1"),
            time: SystemTime::UNIX_EPOCH,
            rows: 3,
            features: vec![
                Some(Col::Num(vec![25.0, f64::NAN, 60.0])),
                None,
                Some(Col::Cat(vec![Some("east".into()), Some("west".into()), None])),
            ],
            predictions: vec![],
        };
        let rows = b.encode_records(&rec);
        assert_eq!(rows.len(), 9);
        assert_eq!(rows[0], 25.0);
        assert!(rows[1].is_nan(), "a feature the request did not carry");
        assert_eq!(rows[2], 2.0);
        assert!(rows[3].is_nan());
        assert_eq!(rows[5], 3.0, "a live category is appended");
        assert_eq!(b.category(2, 3.0), Some("west"));
        assert!(rows[8].is_nan());
        assert_eq!(b.frequent(2, 10).len(), 3, "live categories are not reference categories");
        // Codes are stable.
        let again = b.encode_records(&rec);
        assert_eq!(again[5], 3.0);
        assert_eq!(b.categories(2), 4);
        assert!(b.code_or_insert(2, "").is_nan(), "\"\" is missing, as in the codecs");
    }

    #[test]
    fn other_kinds_convert_as_the_schema_does_and_short_columns_are_missing() {
        let mut b = book();
        let cols = vec![Some(Col::Cat(vec![Some("41".into()), Some("x".into())])), None, Some(Col::Num(vec![3.0]))];
        let rows = b.encode_columns(2, &cols);
        assert_eq!(rows[0], 41.0);
        assert!(rows[3].is_nan());
        assert_eq!(b.category(2, rows[2]), Some("3"));
        assert!(rows[5].is_nan());
    }

    #[test]
    fn live_categories_are_bounded() {
        let mut b = book();
        for k in 0..MAX_LIVE_CATEGORIES {
            assert!(!b.code_or_insert(2, &format!("c{k}")).is_nan());
        }
        assert!(b.code_or_insert(2, "one-too-many").is_nan());
        assert_eq!(b.overflowed(), 1);
        assert_eq!(b.code_or_insert(2, "c5"), 8.0, "known ones still encode");
        assert_eq!(b.unseen_category(2), None);
    }

    #[test]
    fn unseen_categories_are_new_strings_or_the_next_number_made_up_once() {
        let mut b = book();
        b.code_or_insert(2, "vigil-unseen-category");
        let code = b.unseen_category(2).unwrap();
        assert_eq!(b.category(2, code), Some("vigil-unseen-category-2"), "a live category is not unseen");
        assert_eq!(b.unseen_category(2), Some(code), "the same one every time");
        assert_eq!(b.categories(2), 5);
        assert_eq!(b.unseen_category(0), None);

        let mut n = Codebook::from_profile(&profile(vec![("k", Ref::Cat(vec!["1", "2", "2", "5"]))], &[]));
        let c = n.unseen_category(0).unwrap();
        assert_eq!(n.category(0, c), Some("6"));
    }
}
