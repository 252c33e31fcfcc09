//! The labelled records of one model version, kept for the performance windows.
//!
//! A window is about *predictions*: "1000" is the latest 1,000 predictions that have a label,
//! "1h" the predictions made in the last hour that have a label, wherever their labels arrived
//! late. Samples are ordered by prediction time; a label sent again for the same prediction
//! replaces the sample. Beside them, the version's recent predictions (labelled or not, with the
//! binary probability when there is one) give the unlabelled counts and the estimated (CBPE)
//! performance over the same span.
//!
//! Memory: at most `max_records` samples and `max_records` predictions per version.

use crate::config::WindowSpec;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// The ground truth and the model's answer for one prediction.
#[derive(Debug, Clone, PartialEq)]
pub enum Truth {
    Class {
        label: Arc<str>,
        /// The predicted class; None when the response did not carry it.
        predicted: Option<Arc<str>>,
        /// The probabilities the model gave: one (P(positive), binary) or one per class; empty if none.
        probs: Box<[f64]>,
    },
    Value {
        label: f64,
        /// NaN when the response did not carry it.
        predicted: f64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Prediction time, Unix ms.
    pub time_ms: i64,
    pub truth: Truth,
    /// One group per configured segment (None: the record did not have it).
    pub segments: Box<[Option<Arc<str>>]>,
}

/// What [`Labelled::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New,
    Replaced,
}

/// One version's labelled samples and recent predictions.
#[derive(Debug)]
pub struct Labelled {
    /// (prediction time, arrival sequence) → the sample and its (request id, row).
    samples: BTreeMap<(i64, u64), (Sample, Id)>,
    /// (request id, row) → key in `samples`, so a second label replaces the first. Kept in step
    /// with `samples` (an entry leaves with its sample): a map that trailed them would carry
    /// dead entries and grow its table in steps long after the windows are full.
    keys: HashMap<Id, (i64, u64)>,
    /// Recent predictions: (time, binary probability or NaN), in arrival order.
    predictions: VecDeque<(i64, f64)>,
    seq: u64,
    keep: Keep,
}

/// A prediction: (request id, row).
type Id = (Arc<str>, u32);

/// How much to keep: enough for the largest count window and the longest time window, at most
/// `max_records`.
#[derive(Debug, Clone, Copy)]
struct Keep {
    count: usize,
    time_ms: i64,
    max: usize,
}

impl Labelled {
    pub fn new(windows: &[WindowSpec], max_records: usize) -> Labelled {
        let mut keep = Keep { count: 0, time_ms: 0, max: max_records.max(1) };
        for w in windows {
            match *w {
                WindowSpec::Count(n) => keep.count = keep.count.max(n.min(keep.max)),
                WindowSpec::Time(t) => keep.time_ms = keep.time_ms.max(millis(t)),
            }
        }
        Labelled { samples: BTreeMap::new(), keys: HashMap::new(), predictions: VecDeque::new(), seq: 0, keep }
    }

    /// Adds (or replaces) the sample of prediction (request id, row).
    pub fn insert(&mut self, request_id: Arc<str>, row: u32, sample: Sample, now_ms: i64) -> Inserted {
        let mut inserted = Inserted::New;
        if let Some(old) = self.keys.remove(&(request_id.clone(), row)) {
            self.samples.remove(&old);
            inserted = Inserted::Replaced;
        }
        self.seq += 1;
        let key = (sample.time_ms, self.seq);
        let id: Id = (request_id, row);
        self.samples.insert(key, (sample, id.clone()));
        self.keys.insert(id, key);
        self.prune(now_ms);
        inserted
    }

    /// Records a live prediction (for unlabelled counts and the estimated performance). Bounded
    /// here by count; pruned by time in [`Labelled::prune`].
    pub fn predicted(&mut self, time_ms: i64, probability: f64) {
        self.predictions.push_back((time_ms, probability));
        if self.predictions.len() > self.keep.max {
            self.predictions.pop_front();
        }
    }

    /// Drops what no window needs any more.
    pub fn prune(&mut self, now_ms: i64) {
        let Keep { count, time_ms, max } = self.keep;
        let oldest_kept = now_ms.saturating_sub(time_ms);
        while let Some((&key, _)) = self.samples.first_key_value() {
            let n = self.samples.len();
            let too_many = n > max;
            let beyond_both = n > count && key.0 < oldest_kept;
            if !(too_many || beyond_both) {
                break;
            }
            if let Some((_, id)) = self.samples.remove(&key) {
                self.keys.remove(&id);
            }
        }
        while self.predictions.len() > count.max(1) {
            match self.predictions.front() {
                Some(&(t, _)) if t < oldest_kept => {
                    self.predictions.pop_front();
                }
                _ => break,
            }
        }
    }

    /// The samples of a window, oldest first, and the window's span in prediction time.
    pub fn select(&self, spec: WindowSpec, now_ms: i64) -> Selection<'_> {
        let samples: Vec<&Sample> = match spec {
            WindowSpec::Count(n) => {
                let mut v: Vec<&Sample> =
                    self.samples.values().map(|(s, _)| s).rev().take(n.min(self.keep.max)).collect();
                v.reverse();
                v
            }
            WindowSpec::Time(t) => {
                let from = now_ms.saturating_sub(millis(t));
                let mut v: Vec<&Sample> =
                    self.samples.range((from, 0)..).map(|(_, (s, _))| s).rev().take(self.keep.max).collect();
                v.reverse();
                v
            }
        };
        let from = match spec {
            WindowSpec::Count(_) => samples.first().map(|s| s.time_ms),
            WindowSpec::Time(t) => Some(now_ms.saturating_sub(millis(t))),
        };
        // Predictions in the same span (all of them for an empty count window: nothing labelled yet).
        let predictions: Vec<f64> = match from {
            Some(from) => self.predictions.iter().filter(|(t, _)| *t >= from).map(|&(_, p)| p).collect(),
            None => self.predictions.iter().map(|&(_, p)| p).collect(),
        };
        Selection { samples, from_ms: from, predictions }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// One window's view.
pub struct Selection<'a> {
    pub samples: Vec<&'a Sample>,
    /// Start of the span (prediction time, Unix ms); None for an empty count window.
    pub from_ms: Option<i64>,
    /// The binary probability (NaN if none) of every prediction held in the span, labelled or not.
    pub predictions: Vec<f64>,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: i64, label: &str) -> Sample {
        Sample {
            time_ms: t,
            truth: Truth::Class { label: label.into(), predicted: Some("1".into()), probs: Box::new([]) },
            segments: Box::new([]),
        }
    }

    fn labels(s: &Selection) -> Vec<(i64, String)> {
        s.samples
            .iter()
            .map(|s| match &s.truth {
                Truth::Class { label, .. } => (s.time_ms, label.to_string()),
                Truth::Value { .. } => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn count_window_is_the_latest_predictions_by_prediction_time() {
        let mut w = Labelled::new(&[WindowSpec::Count(3)], 100);
        // Labels arrive out of prediction order.
        for (i, t) in [50, 10, 40, 20, 30].into_iter().enumerate() {
            w.insert(format!("r{i}").into(), 0, sample(t, "1"), 100);
        }
        let sel = w.select(WindowSpec::Count(3), 100);
        assert_eq!(labels(&sel).iter().map(|x| x.0).collect::<Vec<_>>(), vec![30, 40, 50]);
        assert_eq!(sel.from_ms, Some(30));
        assert_eq!(w.len(), 3, "older samples pruned");
    }

    #[test]
    fn a_second_label_replaces_the_first() {
        let mut w = Labelled::new(&[WindowSpec::Count(10)], 100);
        assert_eq!(w.insert("a".into(), 0, sample(5, "0"), 10), Inserted::New);
        assert_eq!(w.insert("a".into(), 1, sample(5, "0"), 10), Inserted::New);
        assert_eq!(w.insert("a".into(), 0, sample(5, "1"), 10), Inserted::Replaced);
        let sel = w.select(WindowSpec::Count(10), 10);
        let mut got = labels(&sel);
        got.sort();
        assert_eq!(got, vec![(5, "0".into()), (5, "1".into())]);
    }

    #[test]
    fn time_window_keeps_the_span_and_counts_unlabelled_predictions() {
        let hour = Duration::from_secs(3600);
        let mut w = Labelled::new(&[WindowSpec::Count(2), WindowSpec::Time(hour)], 100);
        let now = 10_000_000;
        for (i, t) in [now - 4_000_000, now - 3_000_000, now - 1_000, now - 500].into_iter().enumerate() {
            w.predicted(t, 0.9);
            if i != 2 {
                w.insert(format!("r{i}").into(), 0, sample(t, "1"), now);
            }
        }
        w.prune(now);
        let sel = w.select(WindowSpec::Time(hour), now);
        assert_eq!(labels(&sel).len(), 1 + 1, "two labelled predictions in the last hour");
        assert_eq!(sel.predictions.len(), 2 + 1, "three predictions in the last hour");
        let sel = w.select(WindowSpec::Count(2), now);
        assert_eq!(sel.samples.len(), 2);
        assert_eq!(sel.predictions.len(), 3, "predictions since the older of the two: {:?}", sel.from_ms);
    }

    #[test]
    fn memory_is_bounded_by_max_records() {
        let mut w = Labelled::new(&[WindowSpec::Time(Duration::from_secs(3600))], 50);
        for i in 0..1000 {
            w.insert(format!("r{i}").into(), 0, sample(i, "1"), 1000);
            w.predicted(i, 0.5);
        }
        assert_eq!(w.len(), 50);
        assert!(w.predictions.len() <= 50);
        assert_eq!(w.keys.len(), 50, "a key leaves with its sample");
        let sel = w.select(WindowSpec::Time(Duration::from_secs(3600)), 1000);
        assert_eq!(sel.samples.len(), 50);
        assert_eq!(sel.samples[0].time_ms, 950);
        // Steady churn (one label in, the oldest out) never grows the key table past what the
        // kept samples need: the soak's RSS step came from a table that trailed its samples.
        let grown = w.keys.capacity();
        for i in 1000..200_000 {
            w.insert(format!("r{i}").into(), 0, sample(i, "1"), i);
        }
        assert_eq!((w.len(), w.keys.len()), (50, 50));
        assert!(w.keys.capacity() <= grown.max(128), "key table grew to {} under churn", w.keys.capacity());
    }
}
