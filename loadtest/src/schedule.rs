//! The constant-rate schedule and the pacer thread that releases it.
//!
//! Request `i` is *intended* to be sent at `t0 + i / rate`, whatever happened to
//! requests `0..i` ([`Schedule::intended`]). The pacer is a dedicated OS thread that
//! sleeps until the next intended time and then adds one permit per due request to a
//! [`tokio::sync::Semaphore`]; the [worker tasks](crate::generator) take permits and
//! claim the next request index. Permits that no worker is free to take simply pile up
//! in the semaphore: that backlog is exactly the requests that are *late*, and since a
//! request's latency is measured from its intended time, their waiting is counted.
//!
//! Why a thread and not `tokio::time::sleep_until`: tokio's timer wheel has a 1 ms
//! resolution and rounds deadlines *up*, so a tokio-paced request leaves on average
//! ~0.5-1 ms after its intended time, and with coordinated-omission correction that
//! lateness is charged to the server. Against a sidecar whose whole overhead is tens
//! of microseconds that would swamp the measurement. A thread blocked in
//! `recv_timeout` (futex with an hrtimer deadline) wakes within ~50-100 us, and waking
//! a waiting task through the semaphore costs a few microseconds more. When it wakes
//! late (or the rate is higher than it can wake), it releases every request that has
//! become due in one `add_permits` call, so the *average* rate is exact at any rate.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Intended send times for a constant rate, optionally bounded by a duration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate: f64,
    total: Option<u64>,
}

impl Schedule {
    /// `rate` requests per second (finite, > 0); with a duration, the schedule holds the
    /// requests whose intended time is strictly before it.
    ///
    /// # Panics
    /// If `rate` is not finite and positive.
    pub fn new(rate: f64, duration: Option<Duration>) -> Self {
        assert!(rate.is_finite() && rate > 0.0, "rate must be finite and > 0, got {rate}");
        let mut s = Schedule { rate, total: None };
        s.total = duration.map(|d| {
            // Requests with intended(i) < d; the float estimate is corrected so the
            // count agrees exactly with `intended`.
            let mut n = (d.as_secs_f64() * rate).ceil() as u64;
            while n > 0 && s.intended(n - 1) >= d {
                n -= 1;
            }
            while s.intended(n) < d {
                n += 1;
            }
            n
        });
        s
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Number of requests in the schedule (`None`: unbounded).
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// Intended send time of request `i`, as an offset from the start `t0`.
    pub fn intended(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// How many requests are due by `elapsed` (those with `intended(i) <= elapsed`),
    /// capped at [`total`](Self::total).
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        let mut n = (elapsed.as_secs_f64() * self.rate).floor() as u64 + 1;
        while n > 0 && self.intended(n - 1) > elapsed {
            n -= 1;
        }
        while self.intended(n) <= elapsed {
            n += 1;
        }
        match self.total {
            Some(t) => n.min(t),
            None => n,
        }
    }
}

/// What the pacer did: how many requests it released and when it stopped.
#[derive(Debug, Clone, Copy)]
pub struct PacerOutcome {
    pub released: u64,
    pub ended: Instant,
}

/// Run the pacer on the current thread: release permits on `sem` following `schedule`
/// from `t0` until the schedule is exhausted or `stop` receives a message (or its
/// sender is dropped).
pub fn pace(schedule: Schedule, t0: Instant, sem: &Arc<Semaphore>, stop: &Receiver<()>) -> PacerOutcome {
    let mut released = 0u64;
    loop {
        let now = Instant::now();
        let due = schedule.due_by(now.saturating_duration_since(t0));
        if due > released {
            // Semaphore::MAX_PERMITS is usize::MAX >> 3: never reached in practice,
            // but clamp rather than panic if a stalled server lets permits pile up.
            let room = Semaphore::MAX_PERMITS.saturating_sub(sem.available_permits());
            let add = usize::try_from(due - released).unwrap_or(usize::MAX).min(room);
            sem.add_permits(add);
            released += add as u64;
        }
        if schedule.total() == Some(released) {
            return PacerOutcome { released, ended: Instant::now() };
        }
        let next = t0 + schedule.intended(released);
        match stop.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return PacerOutcome { released, ended: Instant::now() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_are_i_over_rate() {
        let s = Schedule::new(200.0, None);
        assert_eq!(s.intended(0), Duration::ZERO);
        assert_eq!(s.intended(1), Duration::from_millis(5));
        assert_eq!(s.intended(200), Duration::from_secs(1));
        assert_eq!(s.intended(1001), Duration::from_micros(5_005_000));
        let s = Schedule::new(3.0, None);
        assert_eq!(s.intended(1).as_nanos(), 333_333_333);
        let s = Schedule::new(0.5, None);
        assert_eq!(s.intended(3), Duration::from_secs(6));
    }

    #[test]
    fn totals_count_requests_strictly_before_the_end() {
        let d = |ms| Some(Duration::from_millis(ms));
        assert_eq!(Schedule::new(200.0, d(500)).total(), Some(100));
        assert_eq!(Schedule::new(200.0, d(501)).total(), Some(101));
        assert_eq!(Schedule::new(200.0, d(0)).total(), Some(0));
        assert_eq!(Schedule::new(3.0, d(1000)).total(), Some(3));
        assert_eq!(Schedule::new(0.5, d(1)).total(), Some(1));
        assert_eq!(Schedule::new(5000.0, d(30_000)).total(), Some(150_000));
        assert_eq!(Schedule::new(7.0, None).total(), None);
    }

    #[test]
    fn due_by_agrees_with_intended() {
        let s = Schedule::new(200.0, None);
        assert_eq!(s.due_by(Duration::ZERO), 1, "request 0 is due at t0");
        assert_eq!(s.due_by(Duration::from_micros(4_999)), 1);
        assert_eq!(s.due_by(Duration::from_millis(5)), 2);
        assert_eq!(s.due_by(Duration::from_secs(1)), 201);
        for rate in [0.7, 3.0, 200.0, 4999.0, 123_456.7] {
            let s = Schedule::new(rate, None);
            for i in [0u64, 1, 2, 17, 1000, 98_765] {
                let t = s.intended(i);
                assert_eq!(s.due_by(t), i + 1, "rate {rate} i {i}");
                if t > Duration::ZERO {
                    assert_eq!(s.due_by(t - Duration::from_nanos(1)), i, "rate {rate} i {i}");
                }
            }
        }
        let bounded = Schedule::new(200.0, Some(Duration::from_millis(500)));
        assert_eq!(bounded.due_by(Duration::from_secs(10)), 100);
    }

    #[test]
    fn pacer_releases_the_whole_schedule_in_time_order() {
        let schedule = Schedule::new(1000.0, Some(Duration::from_millis(50)));
        let sem = Arc::new(Semaphore::new(0));
        let (_tx, rx) = std::sync::mpsc::channel();
        let t0 = Instant::now();
        let out = pace(schedule, t0, &sem, &rx);
        assert_eq!(out.released, 50);
        assert_eq!(sem.available_permits(), 50);
        // The last request is intended at 49 ms; the pacer cannot have finished before.
        assert!(out.ended >= t0 + Duration::from_millis(49));
    }

    #[test]
    fn pacer_stops_on_request() {
        let schedule = Schedule::new(0.001, None); // one request now, next in 1000 s
        let sem = Arc::new(Semaphore::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = {
            let sem = sem.clone();
            std::thread::spawn(move || pace(schedule, Instant::now(), &sem, &rx))
        };
        std::thread::sleep(Duration::from_millis(20));
        tx.send(()).unwrap();
        let out = handle.join().unwrap();
        assert_eq!(out.released, 1);
        assert_eq!(sem.available_permits(), 1);
    }
}
