//! Mirroring: what a candidate version answers to copies of live requests, compared with what
//! the live version answered.
//!
//! Owns: [`MirrorBook`], the comparisons per candidate: agreement of predicted classes, mean
//! absolute difference of scores, the candidate's error rate, and latency side by side (HDR).
//! As Diffy does, a share of mirrored requests (`shadow.mirror.noise_fraction`) also goes to the
//! active version itself: how often the live model disagrees with *itself* is the noise floor,
//! and only disagreement beyond it is a real difference.
//! Pure bookkeeping: the shadow engine sends, this module counts.

use super::Answers;
use crate::capture::{latency_histogram, Percentiles};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// Row-level comparison of two answers to the same request.
#[derive(Debug, Default, Clone)]
struct Agreement {
    rows: u64,
    same_class: u64,
    class_rows: u64,
    abs_diff_sum: f64,
    score_rows: u64,
}

impl Agreement {
    fn add(&mut self, live: &Answers, other: &Answers) {
        let n = live.scores.len().min(other.scores.len());
        self.rows += n as u64;
        if let (Some(a), Some(b)) = (&live.classes, &other.classes) {
            for i in 0..n.min(a.len()).min(b.len()) {
                self.class_rows += 1;
                self.same_class += (a[i] == b[i]) as u64;
            }
        }
        for i in 0..n {
            let d = (live.scores[i] - other.scores[i]).abs();
            if d.is_finite() {
                self.abs_diff_sum += d;
                self.score_rows += 1;
            }
        }
    }

    fn agreement(&self) -> Option<f64> {
        (self.class_rows > 0).then(|| self.same_class as f64 / self.class_rows as f64)
    }

    fn mean_abs_diff(&self) -> Option<f64> {
        (self.score_rows > 0).then(|| self.abs_diff_sum / self.score_rows as f64)
    }
}

/// One candidate's comparison since its mirroring started.
struct Candidate {
    since: SystemTime,
    fraction: f64,
    sent: u64,
    errors: u64,
    unreadable: u64,
    compared: Agreement,
    candidate_latency: Histogram<u64>,
    live_latency: Histogram<u64>,
}

/// The comparisons of every candidate, and the noise floor (the active version against itself).
#[derive(Default)]
pub struct MirrorBook {
    candidates: BTreeMap<String, Candidate>,
    noise: Agreement,
    noise_sent: u64,
}

/// One candidate in `GET /admin/shadow`.
#[derive(Debug, Clone, Serialize)]
pub struct CandidateView {
    pub fraction: f64,
    pub since: String,
    /// Mirrored requests the candidate answered or failed (not counting shed / over budget).
    pub requests: u64,
    /// Rows compared (both answers readable).
    pub rows: u64,
    /// Share of rows where the candidate's predicted class equals the live one.
    pub agreement_ratio: Option<f64>,
    /// Mean |candidate score − live score|.
    pub mean_abs_score_diff: Option<f64>,
    /// Share of requests the candidate failed (non-2xx, timeout, transport).
    pub error_ratio: Option<f64>,
    /// 2xx answers that did not decode into predictions.
    pub unreadable: u64,
    /// The same for the active version asked twice (noise floor).
    pub noise_agreement_ratio: Option<f64>,
    pub noise_mean_abs_score_diff: Option<f64>,
    /// (1 − agreement) − (1 − noise agreement): the disagreement the noise does not explain.
    pub disagreement_beyond_noise: Option<f64>,
    /// Request sent to answer headers, for the same requests, in ms (as `GET /admin/latency`).
    pub candidate_latency: Percentiles,
    pub live_latency: Percentiles,
}

impl MirrorBook {
    /// Starts (or restarts, with a new fraction) the comparison of a candidate.
    pub fn start(&mut self, name: &str, fraction: f64) {
        match self.candidates.get_mut(name) {
            Some(c) => c.fraction = fraction,
            None => {
                self.candidates.insert(
                    name.to_owned(),
                    Candidate {
                        since: SystemTime::now(),
                        fraction,
                        sent: 0,
                        errors: 0,
                        unreadable: 0,
                        compared: Agreement::default(),
                        candidate_latency: latency_histogram(),
                        live_latency: latency_histogram(),
                    },
                );
            }
        }
    }

    pub fn stop(&mut self, name: &str) {
        self.candidates.remove(name);
    }

    /// Records one mirrored exchange. `candidate` is the candidate's readable answer, or why not.
    pub fn record(&mut self, name: &str, live: Option<&Answers>, live_latency: Duration, candidate: Outcome<'_>) {
        let Some(c) = self.candidates.get_mut(name) else { return };
        c.sent += 1;
        match candidate {
            Outcome::Failed => c.errors += 1,
            Outcome::Unreadable(latency) => {
                c.unreadable += 1;
                let _ = c.candidate_latency.record(latency.as_micros().max(1) as u64);
                let _ = c.live_latency.record(live_latency.as_micros().max(1) as u64);
            }
            Outcome::Answered(answers, latency) => {
                let _ = c.candidate_latency.record(latency.as_micros().max(1) as u64);
                let _ = c.live_latency.record(live_latency.as_micros().max(1) as u64);
                if let Some(live) = live {
                    c.compared.add(live, answers);
                }
            }
        }
    }

    /// Records the active version's second answer to a live request.
    pub fn record_noise(&mut self, live: &Answers, again: &Answers) {
        self.noise_sent += 1;
        self.noise.add(live, again);
    }

    pub fn view(&self) -> BTreeMap<String, CandidateView> {
        self.candidates
            .iter()
            .map(|(name, c)| {
                let agreement = c.compared.agreement();
                let noise = self.noise.agreement();
                let view = CandidateView {
                    fraction: c.fraction,
                    since: humantime::format_rfc3339_seconds(c.since).to_string(),
                    requests: c.sent,
                    rows: c.compared.rows,
                    agreement_ratio: agreement,
                    mean_abs_score_diff: c.compared.mean_abs_diff(),
                    error_ratio: (c.sent > 0).then(|| c.errors as f64 / c.sent as f64),
                    unreadable: c.unreadable,
                    noise_agreement_ratio: noise,
                    noise_mean_abs_score_diff: self.noise.mean_abs_diff(),
                    disagreement_beyond_noise: match (agreement, noise) {
                        (Some(a), Some(n)) => Some((1.0 - a) - (1.0 - n)),
                        _ => None,
                    },
                    candidate_latency: Percentiles::of(&c.candidate_latency),
                    live_latency: Percentiles::of(&c.live_latency),
                };
                (name.clone(), view)
            })
            .collect()
    }

    /// Sets the mirror gauges.
    pub fn publish(&self) {
        use crate::telemetry::*;
        for (name, v) in self.view() {
            let set = |metric: &'static str, x: Option<f64>| {
                if let Some(x) = x {
                    metrics::gauge!(metric, "candidate" => name.clone()).set(x);
                }
            };
            set(MIRROR_AGREEMENT, v.agreement_ratio);
            set(MIRROR_SCORE_DIFF, v.mean_abs_score_diff);
            set(MIRROR_ERROR_RATIO, v.error_ratio);
        }
        if let Some(n) = self.noise.agreement() {
            metrics::gauge!(MIRROR_NOISE_AGREEMENT).set(n);
        }
    }
}

/// What became of one mirrored request at the candidate.
pub enum Outcome<'a> {
    /// Non-2xx, timeout, or transport failure.
    Failed,
    /// 2xx whose body did not decode into predictions; the latency still counts.
    Unreadable(Duration),
    Answered(&'a Answers, Duration),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(classes: &[u32], scores: &[f64]) -> Answers {
        Answers { scores: scores.to_vec(), classes: Some(classes.to_vec()), invalid: 0 }
    }

    #[test]
    fn agreement_and_score_difference_are_per_row_and_noise_is_subtracted() {
        let mut book = MirrorBook::default();
        book.start("v2", 1.0);
        let live = answers(&[0, 1, 1, 0], &[0.1, 0.9, 0.8, 0.3]);
        let cand = answers(&[0, 1, 0, 0], &[0.2, 0.9, 0.4, 0.3]);
        book.record("v2", Some(&live), Duration::from_millis(2), Outcome::Answered(&cand, Duration::from_millis(3)));
        book.record("v2", None, Duration::from_millis(2), Outcome::Failed);
        book.record_noise(&live, &answers(&[0, 1, 1, 1], &[0.1, 0.9, 0.8, 0.6]));
        let v = &book.view()["v2"];
        assert_eq!(v.requests, 2);
        assert_eq!(v.rows, 4);
        assert_eq!(v.agreement_ratio, Some(0.75));
        assert!((v.mean_abs_score_diff.unwrap() - 0.5 / 4.0).abs() < 1e-12);
        assert_eq!(v.error_ratio, Some(0.5));
        assert_eq!(v.noise_agreement_ratio, Some(0.75));
        assert_eq!(v.disagreement_beyond_noise, Some(0.0));
        assert_eq!(v.candidate_latency.count, 1);
    }
}
