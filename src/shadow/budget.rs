//! What shadow traffic may cost: the live row rate it is a share of, a token bucket per kind, and
//! the pressure gauge that pauses everything while the live upstream is slow or failing.
//!
//! Owns: [`LiveRate`] (pingora-limits' rate estimator over live rows), [`Bucket`] (rows a kind
//! may still send), [`Pressure`] (the live upstream's recent latency and errors). All three are
//! fed on the analysis thread, one capture at a time, and read by the shadow threads.
//! Architecture invariant: a bucket starts empty and refills only from observed live rows, so
//! shadow traffic never exceeds `burst + share × live rows` over any span.

use crate::capture::{Capture, Outcome};
use crate::config::{Budget, PauseConfig};
use pingora_limits::rate::{Rate, PROPORTIONAL_RATE_ESTIMATE_CALC_FN};
use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The live traffic's row rate, estimated as pingora-limits does for rate limiting: events of
/// the previous interval, weighted by how much of the current one has passed, plus the current.
pub struct LiveRate {
    rate: Rate,
}

impl Default for LiveRate {
    fn default() -> Self {
        // One key: a tiny estimator is exact (no hash collisions to fear).
        LiveRate { rate: Rate::new_with_estimator_config(Duration::from_secs(1), 1, 4) }
    }
}

impl LiveRate {
    /// Counts the rows of one live exchange (1 when its body was not decoded).
    pub fn observe(&self, rows: usize) {
        self.rate.observe(&(), rows.max(1) as isize);
    }

    /// Live rows per second.
    pub fn rows_per_second(&self) -> f64 {
        self.rate.rate_with(&(), PROPORTIONAL_RATE_ESTIMATE_CALC_FN).max(0.0)
    }
}

/// A token bucket of rows for one kind (one per mirror candidate). Refilled at
/// `share × live rows per second`, holding at most `burst`. Starts empty.
pub struct Bucket {
    inner: Mutex<BucketState>,
}

struct BucketState {
    budget: Budget,
    /// Operator-initiated work (`POST /admin/explain`): never refused for budget.
    unmetered: bool,
    tokens: f64,
    last: Instant,
    rate: f64,
}

/// A bucket's state for `GET /admin/shadow`.
#[derive(Debug, Clone, Serialize)]
pub struct BucketView {
    pub share: f64,
    pub burst: f64,
    pub max_concurrency: usize,
    /// Rows per second this kind may send now.
    pub rows_per_second: f64,
    /// Rows it could send at once now.
    pub available_rows: f64,
}

impl Bucket {
    pub fn new(budget: Budget) -> Bucket {
        Bucket {
            inner: Mutex::new(BucketState { budget, unmetered: false, tokens: 0.0, last: Instant::now(), rate: 0.0 }),
        }
    }

    /// A bucket that always pays: for explanations an operator asks for, which the pause and
    /// the concurrency limit still bound.
    pub fn unmetered(budget: Budget) -> Bucket {
        let b = Bucket::new(budget);
        b.inner.lock().unwrap().unmetered = true;
        b
    }

    fn refill(s: &mut BucketState, live: &LiveRate, now: Instant) {
        let dt = now.saturating_duration_since(s.last).as_secs_f64();
        s.last = now;
        s.rate = s.budget.share * live.rows_per_second();
        s.tokens = (s.tokens + s.rate * dt).min(s.budget.burst);
    }

    /// Takes `rows` tokens if there are that many; otherwise takes nothing.
    pub fn try_take(&self, rows: usize, live: &LiveRate) -> bool {
        let mut s = self.inner.lock().unwrap();
        Self::refill(&mut s, live, Instant::now());
        let need = rows.max(1) as f64;
        if s.unmetered {
            return true;
        }
        if s.tokens >= need {
            s.tokens -= need;
            true
        } else {
            false
        }
    }

    /// Rows available now.
    pub fn available(&self, live: &LiveRate) -> f64 {
        let mut s = self.inner.lock().unwrap();
        Self::refill(&mut s, live, Instant::now());
        if s.unmetered {
            f64::INFINITY
        } else {
            s.tokens
        }
    }

    /// The most rows one request of this kind may carry: a larger one could never be paid for.
    pub fn largest_request(&self) -> usize {
        self.inner.lock().unwrap().budget.burst.floor().max(1.0) as usize
    }

    pub fn view(&self, live: &LiveRate) -> BucketView {
        let mut s = self.inner.lock().unwrap();
        Self::refill(&mut s, live, Instant::now());
        BucketView {
            share: s.budget.share,
            burst: s.budget.burst,
            max_concurrency: s.budget.max_concurrency,
            rows_per_second: s.rate,
            available_rows: s.tokens,
        }
    }
}

/// Why shadow traffic is paused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PauseReason {
    /// "latency" or "errors".
    pub signal: &'static str,
    /// The share of the window's live answers that were slow (above `p99_latency`) or failed.
    pub observed: f64,
    pub limit: f64,
    pub requests: u64,
}

/// The live upstream's recent health: per-second slots over `pause.window` counting answers,
/// errors and answers slower than `pause.p99_latency`. Its p99 is above the limit exactly when
/// more than 1% of the answers were slower than the limit, so no histogram is needed.
pub struct Pressure {
    cfg: PauseConfig,
    slots: Mutex<Slots>,
}

struct Slots {
    start: Instant,
    /// (second since start, answers, errors, slow)
    ring: Vec<(u64, u64, u64, u64)>,
}

impl Pressure {
    pub fn new(cfg: PauseConfig) -> Pressure {
        let n = cfg.window.as_secs().max(1) as usize;
        Pressure { cfg, slots: Mutex::new(Slots { start: Instant::now(), ring: vec![(u64::MAX, 0, 0, 0); n] }) }
    }

    /// Counts one live exchange.
    pub fn observe(&self, c: &Capture) {
        let error = c.status >= 500 || c.outcome == Outcome::UpstreamBodyError;
        let slow = c.timings.upstream > self.cfg.p99_latency;
        self.count(Instant::now(), error, slow);
    }

    fn count(&self, now: Instant, error: bool, slow: bool) {
        let mut s = self.slots.lock().unwrap();
        let sec = now.saturating_duration_since(s.start).as_secs();
        let n = s.ring.len();
        let slot = &mut s.ring[(sec % n as u64) as usize];
        if slot.0 != sec {
            *slot = (sec, 0, 0, 0);
        }
        slot.1 += 1;
        slot.2 += error as u64;
        slot.3 += slow as u64;
    }

    /// Some(reason) while the live upstream is under pressure.
    pub fn paused(&self) -> Option<PauseReason> {
        self.paused_at(Instant::now())
    }

    fn paused_at(&self, now: Instant) -> Option<PauseReason> {
        let s = self.slots.lock().unwrap();
        let sec = now.saturating_duration_since(s.start).as_secs();
        let n = s.ring.len() as u64;
        let (mut total, mut errors, mut slow) = (0u64, 0u64, 0u64);
        for &(at, t, e, sl) in &s.ring {
            if at != u64::MAX && at <= sec && sec - at < n {
                total += t;
                errors += e;
                slow += sl;
            }
        }
        if total < self.cfg.min_requests.max(1) {
            return None;
        }
        let error_share = errors as f64 / total as f64;
        let slow_share = slow as f64 / total as f64;
        if error_share > self.cfg.error_rate {
            Some(PauseReason { signal: "errors", observed: error_share, limit: self.cfg.error_rate, requests: total })
        } else if slow_share > 0.01 {
            Some(PauseReason { signal: "latency", observed: slow_share, limit: 0.01, requests: total })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_bucket_refills_only_from_live_rows() {
        let live = LiveRate::default();
        let b = Bucket::new(Budget { share: 0.5, burst: 10.0, max_concurrency: 1 });
        assert!(!b.try_take(1, &live), "starts empty");
        assert_eq!(b.largest_request(), 10);
    }

    #[test]
    fn pressure_pauses_on_errors_and_on_slow_answers_and_not_below_min_requests() {
        let cfg = PauseConfig { min_requests: 10, ..PauseConfig::default() };
        let p = Pressure::new(cfg);
        let now = Instant::now();
        for _ in 0..9 {
            p.count(now, true, false);
        }
        assert_eq!(p.paused_at(now), None, "9 answers: too few to judge");
        p.count(now, false, false);
        assert_eq!(p.paused_at(now).map(|r| r.signal), Some("errors"));

        let p = Pressure::new(PauseConfig { min_requests: 10, ..PauseConfig::default() });
        for i in 0..200 {
            p.count(now, false, i < 2);
        }
        assert_eq!(p.paused_at(now), None, "1% slow: p99 at the limit, not above");
        p.count(now, false, true);
        assert_eq!(p.paused_at(now).map(|r| r.signal), Some("latency"));
        // The window passes: healthy again.
        assert_eq!(p.paused_at(now + Duration::from_secs(11)), None);
    }
}
