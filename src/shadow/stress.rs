//! Stress test: requests at the edges of what the model was built for, derived from one live row
//! and the reference, each judged by how the model answered.
//!
//! Owns: the cases ([`cases`]), running them through a caller's transport and judging the
//! replies ([`run`]). May not touch: the network and clocks (the caller's `send` does the HTTP
//! and measures the latency), the live windows.
//!
//! # The cases
//! Each is one request body, in the layout of the live request (`encode::Template`), starting
//! from the live row `x`; a feature the template does not carry is not sent, so only carried
//! features get rows of their own.
//! - `range_min`, `range_max`: every numeric feature at the reference's minimum / maximum.
//! - `beyond_range`: two rows, every numeric feature at `min − span` and at `max + span`, span
//!   = max − min (the feature's scale when the reference is constant).
//! - `missing`: one row per feature with that feature missing (`null`), and one all-missing row.
//! - `zeros`: every numeric feature 0.
//! - `large_batch`: `x` repeated `batch_rows` times in one request.
//! - `wrong_types`: `x` with numbers sent as strings and categories as numbers.
//! - `unknown_category`: one row per categorical feature, set to a category never seen.
//!
//! Cases that have nothing to vary (no numeric feature for the range cases, no categorical one
//! for `unknown_category`) are left out.
//!
//! # Outcomes
//! - `ok`: 2xx, and every row has a valid answer.
//! - `invalid_output`: 2xx, but some answer is NaN / missing, a probability outside [0, 1], or
//!   the response has the wrong rows or does not decode.
//! - `rejected`: 4xx: the model refused cleanly (what `wrong_types` should get).
//! - `error`: 5xx, any other status, or a transport failure: the model broke.
//! - `accepted_wrong_types`: 2xx for `wrong_types`: the model took strings for numbers.
//! - `not_sent`: the rows could not be written in the live request's layout (for example a
//!   large batch where the live request had no batch dimension); the detail says why.

use super::answers::Reader;
use super::encode::Template;
use super::rows::Codebook;
use crate::codec::Codec;
use crate::config::StressConfig;
use bytes::Bytes;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Which edge a case probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    RangeMin,
    RangeMax,
    BeyondRange,
    Missing,
    Zeros,
    LargeBatch,
    WrongTypes,
    UnknownCategory,
}

impl CaseKind {
    pub const ALL: [CaseKind; 8] = [
        CaseKind::RangeMin,
        CaseKind::RangeMax,
        CaseKind::BeyondRange,
        CaseKind::Missing,
        CaseKind::Zeros,
        CaseKind::LargeBatch,
        CaseKind::WrongTypes,
        CaseKind::UnknownCategory,
    ];

    /// The snake_case name (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            CaseKind::RangeMin => "range_min",
            CaseKind::RangeMax => "range_max",
            CaseKind::BeyondRange => "beyond_range",
            CaseKind::Missing => "missing",
            CaseKind::Zeros => "zeros",
            CaseKind::LargeBatch => "large_batch",
            CaseKind::WrongTypes => "wrong_types",
            CaseKind::UnknownCategory => "unknown_category",
        }
    }
}

/// One stress request: its rows in the codebook's space (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub kind: CaseKind,
    pub rows: Vec<f64>,
    pub width: usize,
}

impl Case {
    /// Rows in the request.
    pub fn n_rows(&self) -> usize {
        self.rows.len().checked_div(self.width).unwrap_or(0)
    }
}

/// How big the cases are.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StressOptions {
    /// Rows of the `large_batch` case.
    pub batch_rows: usize,
}

impl StressOptions {
    /// `[shadow.stress]`'s `batch_rows`.
    pub fn from_config(cfg: &StressConfig) -> StressOptions {
        StressOptions { batch_rows: cfg.batch_rows }
    }
}

impl Default for StressOptions {
    fn default() -> Self {
        StressOptions::from_config(&StressConfig::default())
    }
}

/// What the transport got back for one case.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    /// From sending to the last byte of the answer.
    pub latency: Duration,
}

/// How a case went; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    InvalidOutput,
    Rejected,
    Error,
    AcceptedWrongTypes,
    NotSent,
}

impl Outcome {
    /// Whether the model misbehaved: an error, or an invalid answer it presented as valid.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Error | Outcome::InvalidOutput)
    }
}

/// One case's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseReport {
    pub case: CaseKind,
    /// Rows in the request.
    pub rows: usize,
    /// Requests sent (0 when not sent).
    pub requests: usize,
    /// The HTTP status; None when not sent or the transport failed.
    pub status: Option<u16>,
    pub latency_ms: Option<f64>,
    /// Rows whose answer was invalid (all of them when a 2xx response could not be read).
    pub invalid: usize,
    pub outcome: Outcome,
    /// Why: the transport's or reader's error, the start of a rejecting body.
    pub detail: Option<String>,
}

/// The result of one stress run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StressReport {
    pub cases: Vec<CaseReport>,
    /// Requests sent, rows sent.
    pub requests: usize,
    pub rows: usize,
    /// Cases per outcome.
    pub outcomes: BTreeMap<Outcome, usize>,
    /// Cases whose outcome is a failure ([`Outcome::is_failure`]).
    pub failures: usize,
}

/// The cases for live row `x` (in `book`'s space; `book.width()` values). `book` gains the
/// made-up unseen categories ([`Codebook::unseen_category`]); `template` says which features
/// are sent.
pub fn cases(x: &[f64], book: &mut Codebook, template: &Template, opts: &StressOptions) -> Vec<Case> {
    let width = book.width();
    if x.len() != width || width == 0 {
        return Vec::new();
    }
    let carried: Vec<usize> = (0..width).filter(|&i| template.covers(i)).collect();
    let numeric: Vec<usize> = carried.iter().copied().filter(|&i| !book.is_categorical(i)).collect();
    let categorical: Vec<usize> = carried.iter().copied().filter(|&i| book.is_categorical(i)).collect();
    let mut out = Vec::new();
    let case = |kind, rows| Case { kind, rows, width };
    let with = |f: &dyn Fn(usize) -> Option<f64>| {
        let mut r = x.to_vec();
        for &i in &numeric {
            if let Some(v) = f(i).filter(|v| v.is_finite()) {
                r[i] = v;
            }
        }
        r
    };
    let span = |i: usize| {
        let (lo, hi) = book.range(i);
        if hi - lo > 0.0 {
            hi - lo
        } else {
            book.scale(i)
        }
    };
    if !numeric.is_empty() {
        out.push(case(CaseKind::RangeMin, with(&|i| Some(book.range(i).0))));
        out.push(case(CaseKind::RangeMax, with(&|i| Some(book.range(i).1))));
        let mut beyond = with(&|i| Some(book.range(i).0 - span(i)));
        beyond.extend(with(&|i| Some(book.range(i).1 + span(i))));
        out.push(case(CaseKind::BeyondRange, beyond));
    }
    let mut missing = Vec::with_capacity((carried.len() + 1) * width);
    for &i in &carried {
        let start = missing.len();
        missing.extend_from_slice(x);
        missing[start + i] = f64::NAN;
    }
    missing.extend(x.iter().enumerate().map(|(i, &v)| if template.covers(i) { f64::NAN } else { v }));
    out.push(case(CaseKind::Missing, missing));
    if !numeric.is_empty() {
        out.push(case(CaseKind::Zeros, with(&|_| Some(0.0))));
    }
    let n = opts.batch_rows.max(1);
    let mut large = Vec::with_capacity(n.saturating_mul(width));
    for _ in 0..n {
        large.extend_from_slice(x);
    }
    out.push(case(CaseKind::LargeBatch, large));
    out.push(case(CaseKind::WrongTypes, x.to_vec()));
    let mut unknown = Vec::new();
    for &i in &categorical {
        if let Some(code) = book.unseen_category(i) {
            let start = unknown.len();
            unknown.extend_from_slice(x);
            unknown[start + i] = code;
        }
    }
    if !unknown.is_empty() {
        out.push(case(CaseKind::UnknownCategory, unknown));
    }
    out
}

/// Sends each case through `send` (one request each) and judges the replies; 2xx answers are
/// read with `reader` in `codec`'s protocol. Never fails: every problem is a case's outcome.
pub fn run(
    cases: &[Case],
    template: &Template,
    book: &Codebook,
    codec: &Codec,
    reader: &mut Reader,
    mut send: impl FnMut(&Case, Bytes) -> Result<Reply, String>,
) -> StressReport {
    let mut reports = Vec::with_capacity(cases.len());
    for case in cases {
        let n = case.n_rows();
        let mut report = CaseReport {
            case: case.kind,
            rows: n,
            requests: 0,
            status: None,
            latency_ms: None,
            invalid: 0,
            outcome: Outcome::NotSent,
            detail: None,
        };
        let body = if case.kind == CaseKind::WrongTypes {
            template.encode_wrong_types(book, &case.rows, case.width)
        } else {
            template.encode(book, &case.rows, case.width)
        };
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                report.detail = Some(e.to_string());
                reports.push(report);
                continue;
            }
        };
        report.requests = 1;
        match send(case, body) {
            Err(e) => {
                report.outcome = Outcome::Error;
                report.detail = Some(e);
            }
            Ok(reply) => {
                report.status = Some(reply.status);
                report.latency_ms = Some(reply.latency.as_secs_f64() * 1000.0);
                report.outcome = match reply.status {
                    200..=299 => {
                        match reader.read(codec, &reply.body, n) {
                            Ok(a) => report.invalid = a.invalid,
                            Err(e) => {
                                report.invalid = n;
                                report.detail = Some(e.to_string());
                            }
                        }
                        if case.kind == CaseKind::WrongTypes {
                            Outcome::AcceptedWrongTypes
                        } else if report.invalid > 0 {
                            Outcome::InvalidOutput
                        } else {
                            Outcome::Ok
                        }
                    }
                    400..=499 => {
                        report.detail = Some(snippet(reply.status, &reply.body));
                        Outcome::Rejected
                    }
                    _ => {
                        report.detail = Some(snippet(reply.status, &reply.body));
                        Outcome::Error
                    }
                };
            }
        }
        reports.push(report);
    }
    let mut outcomes = BTreeMap::new();
    for r in &reports {
        *outcomes.entry(r.outcome).or_insert(0) += 1;
    }
    StressReport {
        requests: reports.iter().map(|r| r.requests).sum(),
        rows: reports.iter().filter(|r| r.requests > 0).map(|r| r.rows).sum(),
        failures: reports.iter().filter(|r| r.outcome.is_failure()).count(),
        outcomes,
        cases: reports,
    }
}

/// The status and the start of a body, for a report.
fn snippet(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let text = text.trim();
    if text.is_empty() {
        format!("status {status}")
    } else {
        format!("status {status}: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::schema::Schema;
    use crate::shadow::rows::testing::{profile, Ref};

    fn setup() -> (Schema, Codebook, Template) {
        let p = profile(
            vec![
                ("age", Ref::Num(vec![20.0, 30.0, 60.0, 40.0])),
                ("flat", Ref::Num(vec![5.0, 5.0, 5.0, 5.0])),
                ("region", Ref::Cat(vec!["north", "south", "north", "east"])),
                ("unsent", Ref::Num(vec![1.0, 2.0, 3.0, 4.0])),
                ("score", Ref::Num(vec![0.1, 0.2, 0.3, 0.4])),
            ],
            &["score"],
        );
        let live = r#"{"inputs":[
            {"name":"age","shape":[1],"datatype":"FP64","data":[35]},
            {"name":"flat","shape":[1],"datatype":"FP64","data":[5]},
            {"name":"region","shape":[1],"datatype":"BYTES","data":["south"]}]}"#;
        let t = Template::new(&Codec::V2, live.as_bytes(), &p.schema).unwrap();
        (p.schema.clone(), Codebook::from_profile(&p), t)
    }

    fn rows_of(c: &Case) -> Vec<&[f64]> {
        c.rows.chunks(c.width).collect()
    }

    #[test]
    fn cases_probe_the_reference_edges_from_the_live_row() {
        let (_, mut book, t) = setup();
        let x = [35.0, 5.0, 1.0, f64::NAN];
        let cs = cases(&x, &mut book, &t, &StressOptions { batch_rows: 50 });
        let kinds: Vec<CaseKind> = cs.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, CaseKind::ALL);
        let by = |k: CaseKind| cs.iter().find(|c| c.kind == k).unwrap();
        assert_eq!(rows_of(by(CaseKind::RangeMin))[0][..3], [20.0, 5.0, 1.0], "categories stay");
        assert_eq!(rows_of(by(CaseKind::RangeMax))[0][..3], [60.0, 5.0, 1.0]);
        let beyond = rows_of(by(CaseKind::BeyondRange));
        assert_eq!(beyond.len(), 2);
        assert_eq!(beyond[0][..2], [-20.0, 4.0], "span 40; a constant feature steps by its scale (1)");
        assert_eq!(beyond[1][..2], [100.0, 6.0]);
        let missing = rows_of(by(CaseKind::Missing));
        assert_eq!(missing.len(), 4, "one per carried feature and one all-missing row");
        assert!(missing[0][0].is_nan() && missing[0][1] == 5.0);
        assert!(missing[2][2].is_nan() && missing[2][0] == 35.0);
        assert!(missing[3][..3].iter().all(|v| v.is_nan()));
        assert_eq!(rows_of(by(CaseKind::Zeros))[0][..3], [0.0, 0.0, 1.0]);
        assert_eq!(by(CaseKind::LargeBatch).n_rows(), 50);
        assert_eq!(rows_of(by(CaseKind::WrongTypes))[0][..3], x[..3]);
        let unknown = rows_of(by(CaseKind::UnknownCategory));
        assert_eq!(unknown.len(), 1);
        assert_eq!(book.category(2, unknown[0][2]), Some("vigil-unseen-category"));
        // The codebook does not grow with every run.
        let again = cases(&x, &mut book, &t, &StressOptions { batch_rows: 50 });
        assert_eq!(again.last().map(|c| c.rows[2]), Some(unknown[0][2]));
        assert_eq!(book.categories(2), 4);
        assert!(cases(&[1.0], &mut book, &t, &StressOptions::default()).is_empty());
    }

    /// A V2 model over the schema: 400 when a body does not decode or a value is missing, 413
    /// above `max_rows`; else the score `age / 100` per row (`age` > 1000 answers null).
    fn strict(schema: &Schema, max_rows: usize) -> impl FnMut(&Case, Bytes) -> Result<Reply, String> + '_ {
        move |_, body| {
            let reply =
                |status, body: String| Ok(Reply { status, body: Bytes::from(body), latency: Duration::from_millis(3) });
            let batch = match Codec::V2.decode_request(&body) {
                Ok(b) => b,
                Err(e) => return reply(400, format!("{{\"error\":\"{}\"}}", e.reason)),
            };
            let Ok((n, cols)) = schema.map_request(batch) else { return reply(400, "{}".into()) };
            if n > max_rows {
                return reply(413, String::new());
            }
            let age = match &cols[0] {
                Some(crate::monitor::schema::Col::Num(v)) => v.clone(),
                _ => return reply(400, "{\"error\":\"age\"}".into()),
            };
            if age.iter().any(|a| a.is_nan()) {
                return reply(400, "{\"error\":\"missing\"}".into());
            }
            let scores: Vec<serde_json::Value> =
                age.iter().map(|a| if *a > 1000.0 { serde_json::Value::Null } else { (a / 100.0).into() }).collect();
            reply(
                200,
                serde_json::json!({"outputs":[{"name":"score","shape":[n],"datatype":"FP64","data":scores}]})
                    .to_string(),
            )
        }
    }

    #[test]
    fn a_strict_model_rejects_bad_input_cleanly() {
        let (schema, mut book, t) = setup();
        let cs = cases(&[35.0, 5.0, 1.0, f64::NAN], &mut book, &t, &StressOptions { batch_rows: 20 });
        let mut reader = Reader::new(&schema, None);
        let report = run(&cs, &t, &book, &Codec::V2, &mut reader, strict(&schema, 10));
        let outcome = |k: CaseKind| report.cases.iter().find(|c| c.case == k).unwrap().outcome;
        assert_eq!(outcome(CaseKind::RangeMin), Outcome::Ok);
        assert_eq!(outcome(CaseKind::RangeMax), Outcome::Ok);
        assert_eq!(outcome(CaseKind::BeyondRange), Outcome::Ok);
        assert_eq!(outcome(CaseKind::Missing), Outcome::Rejected);
        assert_eq!(outcome(CaseKind::Zeros), Outcome::Ok);
        assert_eq!(outcome(CaseKind::LargeBatch), Outcome::Rejected);
        assert_eq!(outcome(CaseKind::WrongTypes), Outcome::Rejected);
        assert_eq!(outcome(CaseKind::UnknownCategory), Outcome::Ok, "this model ignores region");
        assert_eq!(report.failures, 0);
        assert_eq!(report.requests, 8);
        let missing = report.cases.iter().find(|c| c.case == CaseKind::Missing).unwrap();
        assert_eq!(missing.status, Some(400));
        assert_eq!(missing.latency_ms, Some(3.0));
        assert_eq!(missing.detail.as_deref(), Some("status 400: {\"error\":\"missing\"}"));
        assert_eq!(report.outcomes[&Outcome::Ok], 5);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["cases"][0]["case"], "range_min");
        assert_eq!(json["cases"][0]["outcome"], "ok");
    }

    #[test]
    fn sloppy_models_are_caught() {
        let (schema, mut book, t) = setup();
        // Beyond range the model answers null; it takes strings for numbers; it breaks on big
        // batches; the transport fails on unknown categories.
        let cs = cases(&[35.0, 5.0, 1.0, f64::NAN], &mut book, &t, &StressOptions { batch_rows: 20 });
        let mut reader = Reader::new(&schema, None);
        let mut strict = strict(&schema, 1000);
        let send = |c: &Case, body: Bytes| match c.kind {
            CaseKind::WrongTypes => Ok(Reply {
                status: 200,
                body: Bytes::from_static(
                    br#"{"outputs":[{"name":"score","shape":[1],"datatype":"FP64","data":[0.1]}]}"#,
                ),
                latency: Duration::ZERO,
            }),
            CaseKind::LargeBatch => {
                Ok(Reply { status: 500, body: Bytes::from_static(b"out of memory"), latency: Duration::ZERO })
            }
            CaseKind::UnknownCategory => Err("connection reset".into()),
            CaseKind::Missing => Ok(Reply {
                status: 200,
                body: Bytes::from_static(
                    br#"{"outputs":[{"name":"score","shape":[1],"datatype":"FP64","data":[0.1]}]}"#,
                ),
                latency: Duration::ZERO,
            }),
            _ => strict(c, body),
        };
        let cs: Vec<Case> = cs
            .into_iter()
            .map(|mut c| {
                if c.kind == CaseKind::BeyondRange {
                    c.rows[0] = 5000.0; // the first row's age: answered null
                }
                c
            })
            .collect();
        let report = run(&cs, &t, &book, &Codec::V2, &mut reader, send);
        let case = |k: CaseKind| report.cases.iter().find(|c| c.case == k).unwrap().clone();
        assert_eq!(case(CaseKind::BeyondRange).outcome, Outcome::InvalidOutput);
        assert_eq!(case(CaseKind::BeyondRange).invalid, 1);
        let missing = case(CaseKind::Missing);
        assert_eq!(missing.outcome, Outcome::InvalidOutput, "one answer for four rows");
        assert_eq!(missing.invalid, 4);
        assert!(missing.detail.unwrap().contains("1 rows for a request of 4"));
        assert_eq!(case(CaseKind::WrongTypes).outcome, Outcome::AcceptedWrongTypes);
        assert_eq!(case(CaseKind::LargeBatch).outcome, Outcome::Error);
        assert_eq!(case(CaseKind::LargeBatch).detail.as_deref(), Some("status 500: out of memory"));
        let unknown = case(CaseKind::UnknownCategory);
        assert_eq!((unknown.outcome, unknown.status, unknown.requests), (Outcome::Error, None, 1));
        assert_eq!(report.failures, 4);
    }

    #[test]
    fn cases_the_layout_cannot_carry_are_not_sent() {
        let p = profile(vec![("x", Ref::Num(vec![1.0, 3.0]))], &[]);
        let mut book = Codebook::from_profile(&p);
        let t = Template::new(&Codec::V1, br#"{"inputs":{"x":2.0}}"#, &p.schema).unwrap();
        let cs = cases(&[2.0], &mut book, &t, &StressOptions { batch_rows: 3 });
        let mut reader = Reader::new(&p.schema, None);
        let mut sent = 0;
        let report = run(&cs, &t, &book, &Codec::V1, &mut reader, |_, _| {
            sent += 1;
            Ok(Reply { status: 200, body: Bytes::from_static(br#"{"predictions":[1]}"#), latency: Duration::ZERO })
        });
        let large = report.cases.iter().find(|c| c.case == CaseKind::LargeBatch).unwrap();
        assert_eq!((large.outcome, large.requests), (Outcome::NotSent, 0));
        assert!(large.detail.as_ref().unwrap().contains("at most 1 row"));
        assert_eq!(sent, report.requests);
        assert!(!report.cases.iter().any(|c| c.case == CaseKind::UnknownCategory), "no categorical feature");
    }
}
