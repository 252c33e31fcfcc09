//! What the operations layer reads from outside: `POST /admin/rollouts` bodies (a rollout spec,
//! validated, started and ticked against figures taken from the input), the Prometheus text it
//! parses back (`telemetry::scrape`), windowed figures over those scrapes, and alert annotation
//! templates. The input is split at the first 0xFF byte: a rollout body, then metrics text (which
//! doubles as a template). Anything must give a value or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};
use vigil::alerts::{expand, figures, AlertView, State};
use vigil::rollout::{Figures, Rollout, Spec};
use vigil::telemetry::scrape::{histogram_quantile, History, Scrape};

/// Figures answered from a scrape history.
struct FromHistory<'a>(&'a History);

impl Figures for FromHistory<'_> {
    fn values(&self, figure: &str, m: &BTreeMap<String, String>, w: Duration) -> Vec<f64> {
        figures::values(figure, m, w, self.0).into_iter().map(|(_, v)| v).collect()
    }
    fn requests(&self, _: &str, _: Duration) -> f64 {
        self.0.latest().samples.len() as f64
    }
    fn firing_alerts(&self, _: &BTreeMap<String, String>) -> usize {
        0
    }
}

fuzz_target!(|data: &[u8]| {
    let (body, text) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    };
    let text = String::from_utf8_lossy(text);
    let (scrape, _) = Scrape::parse(&text);
    let buckets: Vec<(f64, f64)> = scrape.samples.iter().map(|(k, v)| (k.labels.len() as f64, *v)).collect();
    let _ = histogram_quantile(0.99, &buckets);
    let t0 = Instant::now();
    let mut h = History::new(figures::history_names(), Duration::from_secs(600));
    h.push(t0, Scrape::default());
    h.push(t0 + Duration::from_secs(10), scrape.clone());
    for f in ["error_ratio", "request_rate", "latency_p99_seconds", "captures_dropped_ratio", "vigil_x"] {
        let _ = figures::values(f, &BTreeMap::new(), Duration::from_secs(60), &h);
    }
    let view = AlertView {
        alert: "A".into(),
        state: State::Firing,
        labels: scrape.samples.first().map(|(k, _)| k.labels.clone()).unwrap_or_default(),
        annotations: BTreeMap::new(),
        value: scrape.samples.first().map_or(0.0, |(_, v)| *v),
        active_since: String::new(),
        firing_since: None,
        resolved_at: None,
        starts_at: None,
        ends_at: None,
    };
    let _ = expand(&text, &view, "http://x", "http://x/e");

    if let Ok(spec) = serde_json::from_slice::<Spec>(body) {
        if spec.validate().is_ok() {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
            let (mut r, _) = Rollout::start(spec, "stable".into(), now);
            for s in 0..5 {
                let _ = r.tick(now + Duration::from_secs(s * 30), &FromHistory(&h));
            }
            let _ = serde_json::to_string(&r);
        }
    }
});
