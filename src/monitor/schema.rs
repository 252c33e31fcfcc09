//! The columns vigil watches, and the mapping from decoded tensors to them.
//!
//! A request tensor maps to features by name (an input named like a feature, one value per row)
//! or by position (one tensor as wide as the feature list: its columns are the features in order).
//! A response tensor maps to prediction columns by name: the output's name when it has one value
//! per row, `name[k]` for column k of a wider output, `prediction` for V1's unnamed predictions.

use crate::codec::{Batch, Tensor, Values};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Numeric,
    Categorical,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ColumnSpec {
    pub name: String,
    pub kind: Kind,
}

/// The watched columns: model inputs (features) and model outputs (predictions).
#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub features: Vec<ColumnSpec>,
    pub predictions: Vec<ColumnSpec>,
    feature_index: HashMap<String, usize>,
    prediction_index: HashMap<String, usize>,
}

/// Values of one column over the rows of one exchange.
#[derive(Debug, Clone, PartialEq)]
pub enum Col {
    /// NaN: missing.
    Num(Vec<f64>),
    /// None: missing.
    Cat(Vec<Option<String>>),
}

impl Col {
    pub fn len(&self) -> usize {
        match self {
            Col::Num(v) => v.len(),
            Col::Cat(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The rows of one live exchange, mapped onto the schema: one record per row of the batch.
#[derive(Debug, Clone)]
pub struct Records {
    pub request_id: String,
    pub version: Arc<str>,
    pub time: SystemTime,
    pub rows: usize,
    /// Indexed like `Schema::features`; None when the request did not carry that feature.
    pub features: Vec<Option<Col>>,
    /// Indexed like `Schema::predictions`; None when the response did not carry that output.
    pub predictions: Vec<Option<Col>>,
}

/// Why a decoded exchange does not fit the schema. Reported once per distinct message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch(pub String);

impl Schema {
    pub fn new(features: Vec<ColumnSpec>, predictions: Vec<ColumnSpec>) -> Schema {
        let feature_index = features.iter().enumerate().map(|(i, c)| (c.name.clone(), i)).collect();
        let prediction_index = predictions.iter().enumerate().map(|(i, c)| (c.name.clone(), i)).collect();
        Schema { features, predictions, feature_index, prediction_index }
    }

    pub fn feature(&self, name: &str) -> Option<usize> {
        self.feature_index.get(name).copied()
    }

    pub fn prediction(&self, name: &str) -> Option<usize> {
        self.prediction_index.get(name).copied()
    }

    /// Maps a request's tensors onto the features. Returns the rows and the columns.
    pub fn map_request(&self, batch: Batch) -> Result<(usize, Vec<Option<Col>>), Mismatch> {
        let n = self.features.len();
        let mut cols: Vec<Option<Col>> = vec![None; n];
        let mut rows: Option<usize> = None;
        let tensors = batch.tensors.len();
        for t in batch.tensors {
            check_rows(&mut rows, &t)?;
            let by_name = t.name.as_deref().and_then(|name| self.feature(name));
            match by_name {
                Some(i) if t.width == 1 => cols[i] = Some(self.to_col(&self.features[i], t.values)),
                Some(i) => {
                    return Err(Mismatch(format!(
                        "input {:?} has {} values per row; the feature of that name takes one",
                        self.features[i].name, t.width
                    )))
                }
                None if t.width == n && n > 0 => {
                    for (i, col) in self.split(t.values, t.rows, n, &self.features).into_iter().enumerate() {
                        cols[i] = Some(col);
                    }
                }
                None => {
                    let name = t.name.as_deref().unwrap_or("(unnamed)");
                    let why = if tensors == 1 || t.width > 1 {
                        format!(
                            "input {name:?} has {} values per row but the schema has {n} features ({}): \
                             send one [rows, {n}] tensor or one input per feature, named as the features",
                            t.width,
                            preview(&self.features)
                        )
                    } else {
                        format!("input {name:?} is not a feature ({})", preview(&self.features))
                    };
                    return Err(Mismatch(why));
                }
            }
        }
        Ok((rows.unwrap_or(0), cols))
    }

    /// Maps a response's tensors onto the prediction columns; outputs the schema doesn't name are
    /// ignored. `rows` is the request's row count, which every output must have.
    pub fn map_response(&self, batch: Batch, rows: usize) -> Result<Vec<Option<Col>>, Mismatch> {
        let mut cols: Vec<Option<Col>> = vec![None; self.predictions.len()];
        for t in batch.tensors {
            if t.rows != rows {
                return Err(Mismatch(format!(
                    "output {:?} has {} rows for a request of {rows}",
                    t.name.as_deref().unwrap_or("prediction"),
                    t.rows
                )));
            }
            let base = t.name.clone().unwrap_or_else(|| "prediction".to_owned());
            if t.width == 1 {
                if let Some(i) = self.prediction(&base) {
                    cols[i] = Some(self.to_col(&self.predictions[i], t.values));
                }
                continue;
            }
            let names: Vec<String> = (0..t.width).map(|k| format!("{base}[{k}]")).collect();
            let specs: Vec<ColumnSpec> = names
                .iter()
                .map(|name| match self.prediction(name) {
                    Some(i) => self.predictions[i].clone(),
                    None => ColumnSpec { name: name.clone(), kind: Kind::Numeric },
                })
                .collect();
            for (k, col) in self.split(t.values, t.rows, t.width, &specs).into_iter().enumerate() {
                if let Some(i) = self.prediction(&names[k]) {
                    cols[i] = Some(col);
                }
            }
        }
        Ok(cols)
    }

    /// Splits a row-major block into its columns, converted to each column's kind.
    fn split(&self, values: Values, rows: usize, width: usize, specs: &[ColumnSpec]) -> Vec<Col> {
        match values {
            Values::Num(v) => (0..width)
                .map(|j| {
                    let col: Vec<f64> = (0..rows).map(|r| v[r * width + j]).collect();
                    self.to_col(&specs[j], Values::Num(col))
                })
                .collect(),
            Values::Text(v) => (0..width)
                .map(|j| {
                    let col: Vec<String> = (0..rows).map(|r| v[r * width + j].clone()).collect();
                    self.to_col(&specs[j], Values::Text(col))
                })
                .collect(),
        }
    }

    /// One column's values in the column's kind: numbers in a categorical column become their
    /// text ("3", "2.5"); text in a numeric column is parsed, or missing when it is not a number.
    fn to_col(&self, spec: &ColumnSpec, values: Values) -> Col {
        match (spec.kind, values) {
            (Kind::Numeric, Values::Num(v)) => Col::Num(v),
            (Kind::Numeric, Values::Text(v)) => {
                Col::Num(v.iter().map(|s| s.trim().parse().unwrap_or(f64::NAN)).collect())
            }
            (Kind::Categorical, Values::Text(v)) => Col::Cat(v.into_iter().map(Some).collect()),
            (Kind::Categorical, Values::Num(v)) => {
                Col::Cat(v.into_iter().map(|x| if x.is_nan() { None } else { Some(number_label(x)) }).collect())
            }
        }
    }
}

/// How a number reads as a category: integers without a fraction ("3", not "3.0").
pub fn number_label(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

fn check_rows(rows: &mut Option<usize>, t: &Tensor) -> Result<(), Mismatch> {
    match rows {
        Some(r) if *r != t.rows => Err(Mismatch(format!(
            "input {:?} has {} rows, an earlier input {r}",
            t.name.as_deref().unwrap_or("(unnamed)"),
            t.rows
        ))),
        _ => {
            *rows = Some(t.rows);
            Ok(())
        }
    }
}

fn preview(cols: &[ColumnSpec]) -> String {
    let mut names: Vec<&str> = cols.iter().take(6).map(|c| c.name.as_str()).collect();
    if cols.len() > 6 {
        names.push("...");
    }
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        let f = |n: &str, kind| ColumnSpec { name: n.into(), kind };
        Schema::new(
            vec![f("age", Kind::Numeric), f("income", Kind::Numeric), f("region", Kind::Categorical)],
            vec![f("probability", Kind::Numeric), f("label", Kind::Categorical)],
        )
    }

    fn tensor(name: Option<&str>, rows: usize, width: usize, values: Values) -> Tensor {
        Tensor { name: name.map(str::to_owned), rows, width, values }
    }

    #[test]
    fn wide_tensor_maps_by_position_and_converts_kinds() {
        let b = Batch {
            id: None,
            tensors: vec![tensor(Some("input-0"), 2, 3, Values::Num(vec![30.0, 1000.0, 1.0, 40.0, 2000.0, 2.0]))],
        };
        let (rows, cols) = schema().map_request(b).unwrap();
        assert_eq!(rows, 2);
        assert_eq!(cols[0], Some(Col::Num(vec![30.0, 40.0])));
        assert_eq!(cols[2], Some(Col::Cat(vec![Some("1".into()), Some("2".into())])));
    }

    #[test]
    fn named_inputs_map_by_name_and_unknown_names_are_mismatches() {
        let b = Batch {
            id: None,
            tensors: vec![
                tensor(Some("income"), 1, 1, Values::Num(vec![5.0])),
                tensor(Some("region"), 1, 1, Values::Text(vec!["north".into()])),
            ],
        };
        let (_, cols) = schema().map_request(b).unwrap();
        assert_eq!(cols[0], None);
        assert_eq!(cols[1], Some(Col::Num(vec![5.0])));
        let bad = Batch { id: None, tensors: vec![tensor(Some("x"), 1, 2, Values::Num(vec![1.0, 2.0]))] };
        let e = schema().map_request(bad).unwrap_err();
        assert!(e.0.contains("2 values per row but the schema has 3 features"), "{}", e.0);
    }

    #[test]
    fn outputs_map_by_name_and_rows_must_agree() {
        let s = schema();
        let b = Batch {
            id: None,
            tensors: vec![
                tensor(Some("probability"), 2, 1, Values::Num(vec![0.2, 0.9])),
                tensor(Some("label"), 2, 1, Values::Num(vec![0.0, 1.0])),
                tensor(Some("other"), 2, 1, Values::Num(vec![0.0, 1.0])),
            ],
        };
        let cols = s.map_response(b, 2).unwrap();
        assert_eq!(cols[0], Some(Col::Num(vec![0.2, 0.9])));
        assert_eq!(cols[1], Some(Col::Cat(vec![Some("0".into()), Some("1".into())])));
        let short = Batch { id: None, tensors: vec![tensor(Some("label"), 1, 1, Values::Num(vec![0.0]))] };
        assert!(s.map_response(short, 2).is_err());
    }
}
