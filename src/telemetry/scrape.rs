//! vigil reading its own `/metrics`: the Prometheus text exposition format parsed back into
//! series, and the two window functions alert rules and rollout analysis need, with Prometheus'
//! semantics so a rule evaluated here and its PromQL twin in `config/prometheus-rules.yml` agree.
//!
//! Owns: parsing exposition text, `History` (the scrapes kept for windowed figures), `increase`
//! and `histogram_quantile`. May not touch: the recorder (it reads rendered text only), files,
//! sockets.
//!
//! Why parse text rather than read the recorder: the text is what Prometheus sees, including the
//! resource readings rendered at scrape time, so "a figure vigil computes" means exactly "a series
//! on /metrics", one name for both.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// A series' identity: metric name and its labels, sorted by label name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl SeriesKey {
    /// True when every `(label, value)` in `matchers` is on this series.
    pub fn matches(&self, matchers: &BTreeMap<String, String>) -> bool {
        matchers.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }
}

/// One parsed exposition: every sample line, in file order.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub samples: Vec<(SeriesKey, f64)>,
}

impl Scrape {
    /// Parses exposition text. Comment lines are skipped; a malformed line is skipped and counted
    /// (the text is vigil's own, so this is a guard, not a feature).
    pub fn parse(text: &str) -> (Scrape, usize) {
        let mut samples = Vec::new();
        let mut bad = 0;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line) {
                Some(s) => samples.push(s),
                None => bad += 1,
            }
        }
        (Scrape { samples }, bad)
    }

    /// Samples of metric `name` whose labels include `matchers`.
    pub fn select<'a>(
        &'a self,
        name: &'a str,
        matchers: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a (SeriesKey, f64)> + 'a {
        self.samples.iter().filter(move |(k, _)| k.name == name && k.matches(matchers))
    }
}

fn parse_line(line: &str) -> Option<(SeriesKey, f64)> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    if name.is_empty() {
        return None;
    }
    let mut labels = BTreeMap::new();
    let rest = if let Some(body) = rest.strip_prefix('{') {
        let end = parse_labels(body, &mut labels)?;
        &body[end..]
    } else {
        rest
    };
    // Value, then an optional timestamp.
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().ok()?,
    };
    Some((SeriesKey { name: name.to_owned(), labels }, value))
}

/// Parses `a="x",b="y"}` and returns the index just past the closing brace.
fn parse_labels(body: &str, out: &mut BTreeMap<String, String>) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut i = 0;
    loop {
        while i < bytes.len() && (bytes[i] == b',' || bytes[i] == b' ') {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        if bytes[i] == b'}' {
            return Some(i + 1);
        }
        let eq = body[i..].find('=')? + i;
        let key = body[i..eq].trim().to_owned();
        if bytes.get(eq + 1) != Some(&b'"') {
            return None;
        }
        let mut value = String::new();
        // Walk characters, not bytes: a byte offset inside a multi-byte character cannot slice.
        let mut chars = body[eq + 2..].char_indices();
        let end = loop {
            let (at, c) = chars.next()?;
            match c {
                '"' => break eq + 2 + at,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    other => {
                        value.push('\\');
                        value.push(other);
                    }
                },
                c => value.push(c),
            }
        };
        out.insert(key, value);
        i = end + 1;
    }
}

/// The scrapes of the series windowed figures need, kept for the longest window asked.
///
/// Only series whose name is in `keep` are stored per scrape: gauges are read from the latest
/// scrape alone, so the memory is (counters and buckets of interest) × (scrapes in the window).
#[derive(Debug)]
pub struct History {
    keep: Vec<String>,
    horizon: Duration,
    scrapes: VecDeque<(Instant, Scrape)>,
    latest: Scrape,
}

impl History {
    /// `keep`: metric names whose past values windowed figures read; `horizon`: the longest
    /// window any of them asks for.
    pub fn new(keep: Vec<String>, horizon: Duration) -> History {
        History { keep, horizon, scrapes: VecDeque::new(), latest: Scrape::default() }
    }

    pub fn push(&mut self, at: Instant, scrape: Scrape) {
        let kept =
            Scrape { samples: scrape.samples.iter().filter(|(k, _)| self.keep.contains(&k.name)).cloned().collect() };
        self.scrapes.push_back((at, kept));
        // Keep one scrape at or before the horizon's start, so a window has its left edge.
        while self.scrapes.len() > 2 && at.duration_since(self.scrapes[1].0) >= self.horizon {
            self.scrapes.pop_front();
        }
        self.latest = scrape;
    }

    pub fn latest(&self) -> &Scrape {
        &self.latest
    }

    /// Per series of `name` matching `matchers`: the growth over the last `window`, as the
    /// difference between the newest scrape and the oldest one no older than `window` (the
    /// window's start, rounded to the scrape before it when there is none exactly there).
    /// Also the span actually covered. A counter that went down (a restart) counts from zero.
    ///
    /// Prometheus' `increase()` extrapolates the same difference to the window's edges; ratios
    /// and quantiles of increases are unchanged by that scaling, which is all vigil uses them for.
    pub fn increase(
        &self,
        name: &str,
        matchers: &BTreeMap<String, String>,
        window: Duration,
    ) -> Option<(BTreeMap<SeriesKey, f64>, Duration)> {
        let (now, newest) = self.scrapes.back()?;
        let start = self
            .scrapes
            .iter()
            .rev()
            .find(|(t, _)| now.duration_since(*t) >= window)
            .or_else(|| self.scrapes.front())?;
        let span = now.duration_since(start.0);
        if span.is_zero() {
            return None;
        }
        let before: BTreeMap<&SeriesKey, f64> = start.1.select(name, matchers).map(|(k, v)| (k, *v)).collect();
        let mut out = BTreeMap::new();
        for (k, v) in newest.select(name, matchers) {
            let old = before.get(k).copied().unwrap_or(0.0);
            let inc = if *v >= old { v - old } else { *v };
            out.insert(k.clone(), inc);
        }
        Some((out, span))
    }
}

/// Prometheus' `histogram_quantile(q, buckets)`: `buckets` are (upper bound `le`, cumulative
/// count) of one histogram, in any order, the `+Inf` bucket included. Linear interpolation within
/// the bucket holding the rank; the first bucket starts at 0; a rank in the `+Inf` bucket answers
/// the highest finite bound. None when there are no observations.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) {
        return None;
    }
    let mut b: Vec<(f64, f64)> = buckets.iter().copied().filter(|(le, _)| !le.is_nan()).collect();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    // Cumulative counts must not go down (they can, by a hair, across a scrape); Prometheus
    // forces monotonicity the same way.
    for i in 1..b.len() {
        if b[i].1 < b[i - 1].1 {
            b[i].1 = b[i - 1].1;
        }
    }
    let (last_le, total) = *b.last()?;
    if !last_le.is_infinite() || total <= 0.0 || b.len() < 2 {
        return None;
    }
    let rank = q * total;
    let i = b.iter().position(|(_, c)| *c >= rank)?;
    if i == b.len() - 1 {
        return Some(b[b.len() - 2].0);
    }
    if i == 0 && b[0].0 <= 0.0 {
        return Some(b[0].0);
    }
    let (start, prev) = if i == 0 { (0.0, 0.0) } else { (b[i - 1].0, b[i - 1].1) };
    let (end, count) = b[i];
    if count == prev {
        return Some(end);
    }
    Some(start + (end - start) * (rank - prev) / (count - prev))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_exposition_lines() {
        let text = "# HELP x y\n# TYPE vigil_requests_total counter\n\
            vigil_requests_total{version=\"v1\",code=\"200\"} 12\n\
            vigil_ready 1\n\
            vigil_x{a=\"q\\\"uo\\\\te\\n\",b=\"é\"} +Inf 1700000000\n\
            broken{a=\"x} 3\n";
        let (s, bad) = Scrape::parse(text);
        assert_eq!(bad, 1);
        assert_eq!(s.samples.len(), 3);
        assert_eq!(s.samples[0].0.labels, m(&[("code", "200"), ("version", "v1")]));
        assert_eq!(s.samples[0].1, 12.0);
        assert_eq!(s.samples[1].0.name, "vigil_ready");
        assert_eq!(s.samples[2].0.labels["a"], "q\"uo\\te\n");
        assert_eq!(s.samples[2].0.labels["b"], "é");
        assert!(s.samples[2].1.is_infinite());
    }

    /// fuzz/artifacts/ops: an escape before a multi-byte character once sliced inside it.
    #[test]
    fn escapes_before_multibyte_characters_do_not_panic() {
        let (s, bad) = Scrape::parse("m{a=\"x\\\u{e9}y\",b=\"\\\u{1f600}\"} 1\nm{a=\"\\\u{e9}");
        assert_eq!((s.samples.len(), bad), (1, 1));
        assert_eq!(s.samples[0].0.labels["a"], "x\\\u{e9}y");
    }

    #[test]
    fn parses_what_the_exporter_renders() {
        let recorder =
            metrics_exporter_prometheus::PrometheusBuilder::new().set_buckets(&[0.1, 1.0]).unwrap().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("vigil_requests_total", "version" => "v1", "code" => "500").increment(3);
            metrics::histogram!("vigil_request_duration_seconds", "version" => "v1").record(0.5);
        });
        let (s, bad) = Scrape::parse(&handle.render());
        assert_eq!(bad, 0);
        let any = BTreeMap::new();
        assert_eq!(s.select("vigil_requests_total", &any).next().unwrap().1, 3.0);
        let buckets: Vec<_> = s.select("vigil_request_duration_seconds_bucket", &any).collect();
        assert_eq!(buckets.len(), 3, "0.1, 1 and +Inf");
    }

    /// Values worked by hand from Prometheus' bucketQuantile.
    #[test]
    fn histogram_quantile_interpolates_like_prometheus() {
        let b = [(0.1, 10.0), (0.5, 60.0), (1.0, 90.0), (f64::INFINITY, 100.0)];
        // rank 50 falls in (0.1, 0.5]: 0.1 + 0.4 * (50 - 10) / 50 = 0.42
        assert!((histogram_quantile(0.5, &b).unwrap() - 0.42).abs() < 1e-12);
        // rank 5 in the first bucket, which starts at 0: 0.1 * 5 / 10
        assert!((histogram_quantile(0.05, &b).unwrap() - 0.05).abs() < 1e-12);
        // rank 99 is in +Inf: the highest finite bound
        assert_eq!(histogram_quantile(0.99, &b), Some(1.0));
        assert_eq!(histogram_quantile(0.5, &[(1.0, 0.0), (f64::INFINITY, 0.0)]), None);
        assert_eq!(histogram_quantile(1.5, &b), None);
    }

    #[test]
    fn increase_spans_the_window() {
        let t0 = Instant::now();
        let mut h = History::new(vec!["c".into()], Duration::from_secs(60));
        for (i, v) in [0.0, 10.0, 30.0, 60.0].iter().enumerate() {
            let (s, _) = Scrape::parse(&format!("c{{v=\"a\"}} {v}\nother 1\n"));
            h.push(t0 + Duration::from_secs(10 * i as u64), s);
        }
        let (inc, span) = h.increase("c", &BTreeMap::new(), Duration::from_secs(20)).unwrap();
        assert_eq!(span, Duration::from_secs(20));
        assert_eq!(inc.values().copied().collect::<Vec<_>>(), vec![50.0]);
        // A window longer than the history uses all of it.
        let (inc, span) = h.increase("c", &BTreeMap::new(), Duration::from_secs(600)).unwrap();
        assert_eq!((inc.values().next().copied(), span), (Some(60.0), Duration::from_secs(30)));
        // Names not kept are only in the latest scrape.
        assert!(h.increase("other", &BTreeMap::new(), Duration::from_secs(20)).unwrap().0.is_empty());
        assert_eq!(h.latest().samples.len(), 2);
    }
}
