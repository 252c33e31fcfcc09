//! What the performance monitors compare: which prediction column is the model's answer, which
//! holds its probabilities, how labels and predictions become classes, and how records fall into
//! segments. Resolved once per reference profile from `[performance]`.

use super::window::Truth;
use crate::config::{PerformanceConfig, SegmentConfig, Task};
use crate::monitor::profile::{Profile, Shape};
use crate::monitor::schema::{number_label, Col, Kind, Records};
use serde_json::Value;
use std::sync::Arc;

/// Where a model's probabilities are.
#[derive(Debug, Clone, PartialEq)]
pub enum Probability {
    None,
    /// One column with P(positive class).
    Binary(String),
    /// Columns `name[k]`, P(classes[k]).
    Multi(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Target {
    /// Classification or Regression (never Auto).
    pub task: Task,
    /// The column with the predicted class or value.
    pub prediction: Option<String>,
    pub probability: Probability,
    /// Class label of each probability column (multi-class), or [negative, positive] (binary).
    pub classes: Vec<Arc<str>>,
    pub positive: Arc<str>,
    pub negative: Arc<str>,
    pub threshold: f64,
    pub segments: Vec<Segment>,
    /// Index of the binary probability column in the schema's predictions.
    probability_index: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Segment {
    pub name: String,
    pub source: SegmentSource,
    pub edges: Vec<f64>,
}

#[derive(Debug, Clone)]
pub enum SegmentSource {
    /// Index into the schema's features.
    Feature(usize),
    /// JSON pointer into the request body.
    Pointer(String),
}

impl Target {
    /// Resolves `[performance]` against the reference's schema. Errors name the key and what the
    /// schema has instead.
    pub fn resolve(profile: &Profile, cfg: &PerformanceConfig) -> Result<Target, String> {
        let schema = &profile.schema;
        let names: Vec<&str> = schema.predictions.iter().map(|c| c.name.as_str()).collect();
        let listed = || {
            if names.is_empty() {
                "none: list the model's outputs in schema.predictions".to_owned()
            } else {
                names.join(", ")
            }
        };
        let probability = match &cfg.probability {
            None => Probability::None,
            Some(p) if names.contains(&p.as_str()) => Probability::Binary(p.clone()),
            Some(p) => {
                let cols: Vec<String> =
                    (0..).map(|k| format!("{p}[{k}]")).take_while(|n| names.contains(&n.as_str())).collect();
                if cols.len() < 2 {
                    return Err(format!(
                        "performance.probability = {p:?}: no prediction column {p:?} (binary) or {p:?}[0], {p:?}[1], ... \
                         (multi-class); prediction columns: {}",
                        listed()
                    ));
                }
                Probability::Multi(cols)
            }
        };
        let is_probability = |n: &str| match &probability {
            Probability::None => false,
            Probability::Binary(p) => p == n,
            Probability::Multi(cols) => cols.iter().any(|c| c == n),
        };
        let prediction = match &cfg.prediction {
            Some(p) if names.contains(&p.as_str()) => Some(p.clone()),
            Some(p) => {
                return Err(format!(
                    "performance.prediction = {p:?} is not a prediction column; they are: {}",
                    listed()
                ))
            }
            None => names.iter().find(|n| !is_probability(n)).map(|n| n.to_string()),
        };
        if prediction.is_none() && probability == Probability::None {
            return Err(format!(
                "performance needs a prediction column (performance.prediction or performance.probability); prediction columns: {}",
                listed()
            ));
        }
        let task = match cfg.task {
            Task::Auto if probability != Probability::None => Task::Classification,
            Task::Auto => {
                let col = profile.predictions.iter().find(|c| Some(&c.name) == prediction.as_ref());
                match col.map(|c| &c.shape) {
                    Some(Shape::Num(p)) if p.sorted.iter().all(|x| x.fract() == 0.0) => Task::Classification,
                    Some(Shape::Num(_)) => Task::Regression,
                    _ => Task::Classification,
                }
            }
            t => t,
        };
        if task == Task::Regression && probability != Probability::None {
            return Err("performance.probability is set but performance.task = \"regression\"".into());
        }
        let positive: Arc<str> = cfg.positive_class.as_str().into();
        let classes: Vec<Arc<str>> = match &probability {
            Probability::Multi(cols) if !cfg.classes.is_empty() && cfg.classes.len() != cols.len() => {
                return Err(format!(
                    "performance.classes has {} labels but performance.probability has {} columns",
                    cfg.classes.len(),
                    cols.len()
                ))
            }
            Probability::Multi(cols) if cfg.classes.is_empty() => {
                (0..cols.len()).map(|k| k.to_string().into()).collect()
            }
            _ if !cfg.classes.is_empty() => cfg.classes.iter().map(|c| c.as_str().into()).collect(),
            _ => vec!["0".into(), "1".into()],
        };
        let negative = classes.iter().find(|c| **c != positive).cloned().unwrap_or_else(|| "0".into());
        let probability_index = match &probability {
            Probability::Binary(p) => schema.prediction(p),
            _ => None,
        };
        let mut segments = Vec::new();
        for s in &cfg.segments {
            segments.push(segment(s, profile)?);
        }
        Ok(Target {
            task,
            prediction,
            probability,
            classes,
            positive,
            negative,
            threshold: cfg.threshold,
            segments,
            probability_index,
        })
    }

    /// Whether the pointer segments need the request body parsed.
    pub fn needs_body(&self) -> bool {
        self.segments.iter().any(|s| matches!(s.source, SegmentSource::Pointer(_)))
    }

    /// The binary probability of row `r` (NaN if none), for the estimated performance.
    pub fn probability_of(&self, rec: &Records, r: usize) -> f64 {
        match self.probability_index.and_then(|i| rec.predictions.get(i)) {
            Some(Some(Col::Num(v))) => v.get(r).copied().unwrap_or(f64::NAN),
            _ => f64::NAN,
        }
    }

    /// Each segment's group for row `r`.
    pub fn groups(&self, rec: &Records, body: Option<&Value>, r: usize) -> Vec<Option<Arc<str>>> {
        self.segments
            .iter()
            .map(|s| match &s.source {
                SegmentSource::Feature(i) => match rec.features.get(*i) {
                    Some(Some(Col::Num(v))) => v.get(r).filter(|x| !x.is_nan()).map(|&x| s.group_of_number(x)),
                    Some(Some(Col::Cat(v))) => v.get(r).cloned().flatten().map(|x| x.as_str().into()),
                    _ => None,
                },
                SegmentSource::Pointer(p) => {
                    let v = body.and_then(|b| b.pointer(p))?;
                    let v = match v {
                        Value::Array(items) if items.len() == rec.rows => &items[r],
                        v => v,
                    };
                    match v {
                        Value::Number(n) => n.as_f64().map(|x| s.group_of_number(x)),
                        Value::String(x) => Some(x.as_str().into()),
                        Value::Bool(b) => Some(if *b { "true".into() } else { "false".into() }),
                        _ => None,
                    }
                }
            })
            .collect()
    }

    /// The sample's truth from a logged prediction (its JSON columns) and a label. Err says why
    /// the label or prediction does not fit the task.
    pub fn truth(&self, predictions: &serde_json::Map<String, Value>, label: &Value) -> Result<Truth, &'static str> {
        match self.task {
            Task::Regression => {
                let label = number_of(label).ok_or("a regression label must be a number")?;
                let predicted = self.prediction.as_ref().and_then(|p| predictions.get(p)).and_then(number_of);
                Ok(Truth::Value { label, predicted: predicted.unwrap_or(f64::NAN) })
            }
            _ => {
                let label = class_of(label).ok_or("a class label must be a number, a string or a boolean")?;
                let probs: Box<[f64]> = match &self.probability {
                    Probability::None => Box::new([]),
                    Probability::Binary(p) => {
                        predictions.get(p).and_then(number_of).map(|x| vec![x].into()).unwrap_or_default()
                    }
                    Probability::Multi(cols) => {
                        let v: Option<Vec<f64>> = cols.iter().map(|c| predictions.get(c).and_then(number_of)).collect();
                        v.map(Into::into).unwrap_or_default()
                    }
                };
                let predicted = match self.prediction.as_ref().and_then(|p| predictions.get(p)) {
                    Some(v) => class_of(v),
                    None => self.class_from_probs(&probs),
                };
                Ok(Truth::Class { label, predicted, probs })
            }
        }
    }

    /// The class the probabilities predict: binary by the threshold, multi-class the most probable
    /// (the first on a tie, as numpy's argmax).
    pub fn class_from_probs(&self, probs: &[f64]) -> Option<Arc<str>> {
        match (&self.probability, probs) {
            (Probability::Binary(_), [p]) if !p.is_nan() => {
                Some(if *p >= self.threshold { self.positive.clone() } else { self.negative.clone() })
            }
            (Probability::Multi(_), probs) if !probs.is_empty() && probs.iter().all(|p| !p.is_nan()) => {
                let mut best = 0;
                for (k, p) in probs.iter().enumerate() {
                    if *p > probs[best] {
                        best = k;
                    }
                }
                self.classes.get(best).cloned()
            }
            _ => None,
        }
    }
}

impl Segment {
    fn group_of_number(&self, x: f64) -> Arc<str> {
        if self.edges.is_empty() {
            return number_label(x).into();
        }
        // Right-closed buckets: (-inf, e0], (e0, e1], ..., (e_last, inf).
        let k = self.edges.partition_point(|&e| e < x);
        let lo = if k == 0 { "-inf".to_owned() } else { number_label(self.edges[k - 1]) };
        let hi = if k == self.edges.len() { "inf".to_owned() } else { number_label(self.edges[k]) };
        format!("({lo}, {hi}]").replace(", inf]", ", inf)").into()
    }
}

fn segment(s: &SegmentConfig, profile: &Profile) -> Result<Segment, String> {
    let source = match (&s.feature, &s.pointer) {
        (Some(f), _) => {
            let i = profile.schema.feature(f).ok_or_else(|| {
                let have: Vec<&str> = profile.schema.features.iter().map(|c| c.name.as_str()).collect();
                format!(
                    "performance.segments {:?}: feature {f:?} is not a feature; features: {}",
                    s.name,
                    have.join(", ")
                )
            })?;
            if !s.edges.is_empty() && profile.schema.features[i].kind != Kind::Numeric {
                return Err(format!("performance.segments {:?}: edges given but feature {f:?} is categorical", s.name));
            }
            SegmentSource::Feature(i)
        }
        (None, Some(p)) => SegmentSource::Pointer(p.clone()),
        (None, None) => return Err(format!("performance.segments {:?}: no feature or pointer", s.name)),
    };
    Ok(Segment { name: s.name.clone(), source, edges: s.edges.clone() })
}

/// A label or predicted class as a class key: numbers as the reference writes them ("1", "2.5"),
/// strings as they are, booleans as "1" / "0".
pub fn class_of(v: &Value) -> Option<Arc<str>> {
    match v {
        Value::Number(n) => n.as_f64().filter(|x| x.is_finite()).map(|x| number_label(x).into()),
        Value::String(s) => Some(s.as_str().into()),
        Value::Bool(b) => Some(if *b { "1".into() } else { "0".into() }),
        _ => None,
    }
}

/// A number, or a string holding one.
pub fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
    .filter(|x: &f64| x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_right_closed() {
        let s = Segment { name: "age".into(), source: SegmentSource::Feature(0), edges: vec![30.0, 50.0] };
        assert_eq!(&*s.group_of_number(18.0), "(-inf, 30]");
        assert_eq!(&*s.group_of_number(30.0), "(-inf, 30]");
        assert_eq!(&*s.group_of_number(30.5), "(30, 50]");
        assert_eq!(&*s.group_of_number(50.0), "(30, 50]");
        assert_eq!(&*s.group_of_number(51.0), "(50, inf)");
    }

    #[test]
    fn labels_become_class_keys() {
        assert_eq!(class_of(&serde_json::json!(1)).as_deref(), Some("1"));
        assert_eq!(class_of(&serde_json::json!(1.0)).as_deref(), Some("1"));
        assert_eq!(class_of(&serde_json::json!("cat")).as_deref(), Some("cat"));
        assert_eq!(class_of(&serde_json::json!(true)).as_deref(), Some("1"));
        assert_eq!(class_of(&serde_json::json!(null)), None);
        assert_eq!(class_of(&serde_json::json!([1])), None);
        assert_eq!(number_of(&serde_json::json!("2.5")), Some(2.5));
        assert_eq!(number_of(&serde_json::json!("x")), None);
    }
}
