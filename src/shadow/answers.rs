//! The model's answers to a what-if request, read into [`Answers`]: one score and (for a
//! classifier) one decision per row.
//!
//! Owns: [`Reader`], which output is the score and which the class, the class indices, and what
//! counts as an invalid answer. May not touch: requests (that is `encode`), the network.
//!
//! # Which output
//! With a [`Target`] (the `[performance]` section resolved against the reference):
//! - binary probability column `p`: the score is `p`; the class is the prediction column's when
//!   the response carries it, else `p >= threshold` (positive / negative class);
//! - multi-class probability columns `p[k]`: the class is the prediction column's, else the most
//!   probable (the first on a tie); the score is the class's index (as [`Answers`] documents);
//! - no probability, classification: the prediction column is the class, the score its index;
//! - regression: the prediction column is the score; there are no classes.
//!
//! Without a target, the schema's first prediction column is the score (the response's first
//! output, when the schema names none). It is a classifier when that column is categorical, or
//! when the first values read are all whole numbers (decided once, on the first read that has a
//! finite value, and kept: a Reader does not change its mind between calls); the score is then
//! the class's index.
//!
//! # Classes
//! Class indices are stable for the life of a Reader: a class gets the next index the first time
//! it is seen. With a probability target, the target's classes are seen first, in order (so
//! index k is `classes[k]`, and for a binary model 0 is the negative class when configured so).
//! At most [`MAX_CLASSES`]; beyond that a new class reads as [`NO_CLASS`] (an invalid row).
//!
//! # Invalid
//! A row is invalid when an output it needs is missing (`null`), NaN or infinite, or a
//! probability is outside [0, 1]. Its score is then NaN and, unless the prediction column gave
//! its class, its class is [`NO_CLASS`]. Too few or too many rows, or a needed output absent from
//! the response, fail the whole read ([`ReadError`]).

use super::Answers;
use crate::codec::{Codec, DecodeError, Values};
use crate::config::Task;
use crate::monitor::performance::target::{Probability, Target};
use crate::monitor::schema::{number_label, Col, Schema};
use std::collections::HashMap;

/// The class of a row that has none: its answer was missing or invalid.
pub const NO_CLASS: u32 = u32::MAX;

/// The most distinct classes one Reader indexes.
pub const MAX_CLASSES: usize = 4096;

/// Why a response could not be read as answers to the rows asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadError {
    /// The body is not a response of the codec's protocol.
    #[error("the response does not decode: {0}")]
    Decode(DecodeError),
    /// An output has a different number of rows than the request had.
    #[error("output {output:?} has {got} rows for a request of {expected}")]
    Rows { output: String, expected: usize, got: usize },
    /// An output the reader needs is not in the response.
    #[error("the response has no output {0:?}, which holds the model's answer (schema.predictions / [performance])")]
    Missing(String),
    /// Nothing in the response can be read as a score.
    #[error("{0}")]
    NoScore(String),
}

/// Where the score and the class come from.
#[derive(Debug, Clone)]
enum Rule {
    /// `[performance]`: indices into the schema's predictions.
    Target { target: Box<Target>, prediction: Option<usize>, probability: Prob },
    /// The schema's prediction column `0`.
    First { classifier: Option<bool> },
    /// The schema has no prediction column: the response's first output.
    FirstOutput { classifier: Option<bool> },
}

/// The probability columns, as indices into the schema's predictions.
#[derive(Debug, Clone)]
enum Prob {
    None,
    Binary(usize),
    Multi(Vec<usize>),
    /// A probability column the schema does not have: every read fails with `Missing`.
    Absent(String),
}

/// Reads response bodies into [`Answers`]; see the module doc.
#[derive(Debug, Clone)]
pub struct Reader {
    schema: Schema,
    rule: Rule,
    classes: Vec<String>,
    index: HashMap<String, u32>,
}

impl Reader {
    /// A reader for a model whose outputs `schema` names; `target` says which prediction column
    /// is the class and which the probability (None: the first prediction column is the score).
    /// A target column the schema does not have is read as absent (a [`ReadError::Missing`] on
    /// read if it was needed).
    pub fn new(schema: &Schema, target: Option<&Target>) -> Reader {
        let rule = match target {
            Some(t) => {
                let absent = |c: &String| Prob::Absent(c.clone());
                let probability = match &t.probability {
                    Probability::None => Prob::None,
                    Probability::Binary(p) => schema.prediction(p).map_or_else(|| absent(p), Prob::Binary),
                    Probability::Multi(cols) => match cols.iter().find(|c| schema.prediction(c).is_none()) {
                        Some(c) => absent(c),
                        None => Prob::Multi(cols.iter().filter_map(|c| schema.prediction(c)).collect()),
                    },
                };
                let prediction = t.prediction.as_deref().and_then(|p| schema.prediction(p));
                Rule::Target { target: Box::new(t.clone()), prediction, probability }
            }
            None if schema.predictions.is_empty() => Rule::FirstOutput { classifier: None },
            None => Rule::First { classifier: None },
        };
        let mut reader = Reader { schema: schema.clone(), rule, classes: Vec::new(), index: HashMap::new() };
        if let Rule::Target { target, .. } = &reader.rule {
            if target.task != Task::Regression && target.probability != Probability::None {
                let seed: Vec<String> = target.classes.iter().map(|c| c.to_string()).collect();
                for c in seed {
                    reader.intern(&c);
                }
            }
        }
        reader
    }

    /// The classes seen so far; index k is class k of [`Answers::classes`].
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Whether the model is read as a classifier; None until a read has decided it (no target,
    /// numeric output, no finite value seen yet).
    pub fn is_classifier(&self) -> Option<bool> {
        match &self.rule {
            Rule::Target { target, .. } => Some(target.task != Task::Regression),
            Rule::First { classifier } | Rule::FirstOutput { classifier } => *classifier,
        }
    }

    /// Reads the answers to a request of `rows` rows from a response body in `codec`'s protocol.
    pub fn read(&mut self, codec: &Codec, response: &[u8], rows: usize) -> Result<Answers, ReadError> {
        let batch = codec.decode_response(response).map_err(ReadError::Decode)?;
        for t in &batch.tensors {
            if t.rows != rows {
                let output = t.name.clone().unwrap_or_else(|| "prediction".to_owned());
                return Err(ReadError::Rows { output, expected: rows, got: t.rows });
            }
        }
        if batch.tensors.is_empty() && rows > 0 {
            return Err(ReadError::Rows { output: "(none)".into(), expected: rows, got: 0 });
        }
        if let Rule::FirstOutput { .. } = self.rule {
            let Some(t) = batch.tensors.into_iter().next() else { return Ok(Answers::default()) };
            if t.width != 1 {
                return Err(ReadError::NoScore(format!(
                    "the response's first output {:?} has {} values per row; name the score column in \
                     schema.predictions (and [performance] for a classifier)",
                    t.name.as_deref().unwrap_or("prediction"),
                    t.width
                )));
            }
            let col = match t.values {
                Values::Num(v) => Col::Num(v),
                Values::Text(v) => Col::Cat(v.into_iter().map(|s| (!s.is_empty()).then_some(s)).collect()),
            };
            return Ok(self.untargeted(&col, rows));
        }
        let cols = self.schema.map_response(batch, rows).map_err(|m| ReadError::NoScore(m.0))?;
        let name = |i: usize| self.schema.predictions.get(i).map(|c| c.name.clone()).unwrap_or_default();
        match &self.rule {
            Rule::First { .. } => match cols.first() {
                Some(Some(col)) => Ok(self.untargeted(col, rows)),
                _ => Err(ReadError::Missing(name(0))),
            },
            Rule::Target { target, prediction, probability } => {
                let (target, prediction, probability) = (target.clone(), *prediction, probability.clone());
                let column = |i: usize| -> Result<&Col, ReadError> {
                    match cols.get(i) {
                        Some(Some(c)) => Ok(c),
                        _ => Err(ReadError::Missing(name(i))),
                    }
                };
                let predicted = prediction.and_then(|i| cols.get(i)).and_then(Option::as_ref);
                if target.task == Task::Regression {
                    let col = column(prediction.unwrap_or(usize::MAX)).map_err(|_| {
                        ReadError::Missing(
                            target.prediction.clone().unwrap_or_else(|| "(performance.prediction)".into()),
                        )
                    })?;
                    return Ok(regression(col, rows));
                }
                let probs: Vec<&Col> = match &probability {
                    Prob::None => Vec::new(),
                    Prob::Binary(i) => vec![column(*i)?],
                    Prob::Absent(name) => return Err(ReadError::Missing(name.clone())),
                    Prob::Multi(idx) => idx.iter().map(|&i| column(i)).collect::<Result<_, _>>()?,
                };
                if probs.is_empty() && predicted.is_none() {
                    return Err(ReadError::Missing(
                        target.prediction.clone().unwrap_or_else(|| "(performance.prediction)".into()),
                    ));
                }
                let mut out =
                    Answers { scores: Vec::with_capacity(rows), classes: Some(Vec::with_capacity(rows)), invalid: 0 };
                let mut p = Vec::with_capacity(probs.len());
                for r in 0..rows {
                    p.clear();
                    p.extend(probs.iter().map(|c| num_at(c, r)));
                    let probs_ok = p.iter().all(|x| x.is_finite() && (0.0..=1.0).contains(x));
                    let key = match predicted {
                        Some(col) => key_at(col, r),
                        None if probs_ok => target.class_from_probs(&p).map(|c| c.to_string()),
                        None => None,
                    };
                    let class = key.map_or(NO_CLASS, |k| self.intern(&k));
                    let valid = probs_ok && class != NO_CLASS;
                    let score = match probability {
                        Prob::Binary(_) if probs_ok => p[0],
                        Prob::Binary(_) => f64::NAN,
                        _ if class == NO_CLASS => f64::NAN,
                        _ => class as f64,
                    };
                    if !valid {
                        out.invalid += 1;
                    }
                    out.scores.push(if valid { score } else { f64::NAN });
                    if let Some(c) = out.classes.as_mut() {
                        c.push(class);
                    }
                }
                Ok(out)
            }
            // Read above, before mapping onto the schema.
            Rule::FirstOutput { .. } => Err(ReadError::NoScore("the schema names no prediction column".into())),
        }
    }

    /// The first column as the answer, without a target.
    fn untargeted(&mut self, col: &Col, rows: usize) -> Answers {
        let classifier = match col {
            Col::Cat(_) => true,
            Col::Num(v) => {
                let decided = match &self.rule {
                    Rule::First { classifier } | Rule::FirstOutput { classifier } => *classifier,
                    Rule::Target { .. } => None,
                };
                match decided {
                    Some(c) => c,
                    None => {
                        let finite: Vec<f64> = v.iter().take(rows).copied().filter(|x| x.is_finite()).collect();
                        if finite.is_empty() {
                            false
                        } else {
                            let c = finite.iter().all(|x| x.fract() == 0.0);
                            if let Rule::First { classifier } | Rule::FirstOutput { classifier } = &mut self.rule {
                                *classifier = Some(c);
                            }
                            c
                        }
                    }
                }
            }
        };
        if let (Col::Cat(_), Rule::First { classifier } | Rule::FirstOutput { classifier }) = (col, &mut self.rule) {
            *classifier = Some(true);
        }
        if !classifier {
            return regression(col, rows);
        }
        let mut out = Answers { scores: Vec::with_capacity(rows), classes: Some(Vec::with_capacity(rows)), invalid: 0 };
        for r in 0..rows {
            let class = key_at(col, r).map_or(NO_CLASS, |k| self.intern(&k));
            if class == NO_CLASS {
                out.invalid += 1;
                out.scores.push(f64::NAN);
            } else {
                out.scores.push(class as f64);
            }
            if let Some(c) = out.classes.as_mut() {
                c.push(class);
            }
        }
        out
    }

    /// The index of a class key, giving it the next one if new ([`NO_CLASS`] past
    /// [`MAX_CLASSES`]).
    fn intern(&mut self, key: &str) -> u32 {
        if let Some(&k) = self.index.get(key) {
            return k;
        }
        if self.classes.len() >= MAX_CLASSES {
            return NO_CLASS;
        }
        let k = self.classes.len() as u32;
        self.classes.push(key.to_owned());
        self.index.insert(key.to_owned(), k);
        k
    }
}

/// A numeric column as scores: no classes, non-finite values invalid.
fn regression(col: &Col, rows: usize) -> Answers {
    let mut out = Answers { scores: Vec::with_capacity(rows), classes: None, invalid: 0 };
    for r in 0..rows {
        let x = num_at(col, r);
        if x.is_finite() {
            out.scores.push(x);
        } else {
            out.invalid += 1;
            out.scores.push(f64::NAN);
        }
    }
    out
}

/// Row `r` of a column as a number (text parsed; NaN when missing).
fn num_at(col: &Col, r: usize) -> f64 {
    match col {
        Col::Num(v) => v.get(r).copied().unwrap_or(f64::NAN),
        Col::Cat(v) => v.get(r).and_then(|s| s.as_deref()).and_then(|s| s.trim().parse().ok()).unwrap_or(f64::NAN),
    }
}

/// Row `r` of a column as a class key: text as it is, numbers as the reference writes them
/// ("1"); None when missing or not finite.
fn key_at(col: &Col, r: usize) -> Option<String> {
    match col {
        Col::Num(v) => v.get(r).copied().filter(|x| x.is_finite()).map(number_label),
        Col::Cat(v) => v.get(r).cloned().flatten().filter(|s| !s.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PerformanceConfig;
    use crate::monitor::profile::Profile;
    use crate::shadow::rows::testing::{profile, Ref};

    fn model(predictions: Vec<(&'static str, Ref)>) -> Profile {
        let names: Vec<&str> = predictions.iter().map(|(n, _)| *n).collect();
        let mut cols = vec![("x", Ref::Num(vec![1.0, 2.0, 3.0, 4.0]))];
        cols.extend(predictions);
        profile(cols, &names)
    }

    fn target(p: &Profile, cfg: PerformanceConfig) -> Target {
        Target::resolve(p, &cfg).expect("target")
    }

    #[test]
    fn binary_probability_is_the_score_and_the_threshold_the_class() {
        let p = model(vec![("prob", Ref::Num(vec![0.1, 0.4, 0.6, 0.9]))]);
        let t = target(&p, PerformanceConfig { probability: Some("prob".into()), ..Default::default() });
        let mut r = Reader::new(&p.schema, Some(&t));
        let body = br#"{"outputs":[{"name":"prob","shape":[5],"datatype":"FP32","data":[0.2,0.9,1.5,null,0.5]}]}"#;
        let a = r.read(&Codec::V2, body, 5).unwrap();
        assert_eq!(&a.scores[..2], &[0.2, 0.9]);
        assert!(a.scores[2].is_nan() && a.scores[3].is_nan());
        assert_eq!(a.scores[4], 0.5);
        assert_eq!(a.classes, Some(vec![0, 1, NO_CLASS, NO_CLASS, 1]), "index 0 is the negative class \"0\"");
        assert_eq!(a.invalid, 2);
        assert_eq!(r.classes(), ["0", "1"]);
        assert_eq!(r.is_classifier(), Some(true));
    }

    #[test]
    fn a_prediction_column_gives_the_class_and_indices_are_stable() {
        let p = model(vec![("label", Ref::Cat(vec!["cat", "dog", "cat", "cat"]))]);
        let t = target(&p, PerformanceConfig::default());
        let mut r = Reader::new(&p.schema, Some(&t));
        let a = r.read(&Codec::V1, br#"{"predictions":[{"label":"dog"},{"label":"cat"}]}"#, 2).unwrap();
        assert_eq!(a.classes, Some(vec![0, 1]), "first seen is 0");
        assert_eq!(a.scores, vec![0.0, 1.0], "the score is the class index");
        let a = r.read(&Codec::V1, br#"{"predictions":[{"label":"cat"},{"label":"bird"},{"label":null}]}"#, 3).unwrap();
        assert_eq!(a.classes, Some(vec![1, 2, NO_CLASS]));
        assert_eq!(a.invalid, 1);
        assert_eq!(r.classes(), ["dog", "cat", "bird"]);
    }

    #[test]
    fn multi_class_probabilities_decide_by_the_most_probable() {
        let p = model(vec![
            ("p[0]", Ref::Num(vec![0.1, 0.2, 0.3, 0.4])),
            ("p[1]", Ref::Num(vec![0.1, 0.2, 0.3, 0.4])),
            ("p[2]", Ref::Num(vec![0.8, 0.6, 0.4, 0.2])),
        ]);
        let t = target(&p, PerformanceConfig { probability: Some("p".into()), ..Default::default() });
        let mut r = Reader::new(&p.schema, Some(&t));
        let body =
            br#"{"outputs":[{"name":"p","shape":[3,3],"datatype":"FP64","data":[[0.1,0.7,0.2],[0.5,0.5,0],[0.2,-0.1,0.9]]}]}"#;
        let a = r.read(&Codec::V2, body, 3).unwrap();
        assert_eq!(a.classes, Some(vec![1, 0, NO_CLASS]), "argmax, first on a tie; a negative probability is invalid");
        assert_eq!(a.scores[..2], [1.0, 0.0]);
        assert!(a.scores[2].is_nan());
        assert_eq!(a.invalid, 1);
        let e = r.read(&Codec::V2, br#"{"outputs":[{"name":"q","shape":[1],"datatype":"FP64","data":[1]}]}"#, 1);
        assert_eq!(e, Err(ReadError::Missing("p[0]".into())));
    }

    #[test]
    fn regression_reads_values_and_counts_non_finite_ones() {
        let p = model(vec![("y", Ref::Num(vec![1.5, 2.25, 3.0, 0.5]))]);
        let t = target(&p, PerformanceConfig::default());
        assert_eq!(t.task, Task::Regression);
        let mut r = Reader::new(&p.schema, Some(&t));
        let a = r.read(&Codec::V1, br#"{"predictions":[{"y":1.5},{"y":null}]}"#, 2).unwrap();
        assert_eq!(a.scores[0], 1.5);
        assert!(a.scores[1].is_nan());
        assert_eq!((a.classes, a.invalid), (None, 1));
    }

    #[test]
    fn without_a_target_the_first_column_decides_once() {
        let p = model(vec![("out", Ref::Num(vec![1.5, 2.25, 3.0, 0.5]))]);
        let mut r = Reader::new(&p.schema, None);
        assert_eq!(r.is_classifier(), None);
        let a = r.read(&Codec::V2, br#"{"outputs":[{"name":"out","shape":[2],"datatype":"INT64","data":[1,0]}]}"#, 2);
        assert_eq!(a.unwrap().classes, Some(vec![0, 1]), "whole numbers: a classifier");
        assert_eq!(r.is_classifier(), Some(true));
        let a = r.read(&Codec::V2, br#"{"outputs":[{"name":"out","shape":[1],"datatype":"FP64","data":[0.5]}]}"#, 1);
        assert_eq!(a.unwrap().classes, Some(vec![2]), "decided once: still a classifier");

        let mut r = Reader::new(&p.schema, None);
        let a = r.read(&Codec::V2, br#"{"outputs":[{"name":"out","shape":[2],"datatype":"FP64","data":[0.25,1]}]}"#, 2);
        assert_eq!(a.unwrap(), Answers { scores: vec![0.25, 1.0], classes: None, invalid: 0 });
        assert_eq!(r.is_classifier(), Some(false));
    }

    #[test]
    fn without_predictions_in_the_schema_the_first_output_is_the_score() {
        let p = profile(vec![("x", Ref::Num(vec![1.0, 2.0]))], &[]);
        let mut r = Reader::new(&p.schema, None);
        let a = r.read(&Codec::V1, br#"{"predictions":[0.5, 0.75]}"#, 2).unwrap();
        assert_eq!(a.scores, vec![0.5, 0.75]);
        let a = r.read(&Codec::V1, br#"{"predictions":["a", "b", ""]}"#, 3).unwrap();
        assert_eq!(a.classes, Some(vec![0, 1, NO_CLASS]));
        let e = r.read(&Codec::V1, br#"{"predictions":[[0.1, 0.9]]}"#, 1).unwrap_err();
        assert!(matches!(e, ReadError::NoScore(ref m) if m.contains("2 values per row")), "{e}");
    }

    #[test]
    fn wrong_row_counts_missing_outputs_and_garbage_are_errors() {
        let p = model(vec![("y", Ref::Num(vec![1.5, 2.25, 3.0, 0.5]))]);
        let mut r = Reader::new(&p.schema, None);
        let e = r.read(&Codec::V1, br#"{"predictions":[1.5]}"#, 2).unwrap_err();
        assert_eq!(e, ReadError::Rows { output: "prediction".into(), expected: 2, got: 1 });
        let e = r.read(&Codec::V1, br#"{"predictions":[]}"#, 2).unwrap_err();
        assert!(matches!(e, ReadError::Rows { got: 0, .. }), "{e}");
        let e = r.read(&Codec::V1, br#"{"predictions":[{"z":1},{"z":2}]}"#, 2).unwrap_err();
        assert_eq!(e, ReadError::Missing("y".into()));
        assert!(matches!(r.read(&Codec::V2, b"<html>", 1), Err(ReadError::Decode(_))));
        assert!(matches!(r.read(&Codec::V2, b"", 1), Err(ReadError::Decode(_))));
    }
}
