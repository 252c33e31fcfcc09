//! Privacy: redaction of personal data before anything is stored, logged, exported or sent.
//!
//! Owns: the [`Redactor`] (rules by column name or JSON pointer, the detectors of [`detect`], the
//! keyed hash of [`hmac`]) and `vigil_redactions_total{action,source}`. May not touch: the data
//! path (it runs on the analysis thread and the prediction log's writer thread only), sockets,
//! files. docs/privacy.md is the description for a data-protection review; keep it in step.
//!
//! **Where it runs** (each is the one seam its data passes through):
//! - [`Redactor::batch`]: decoded request / response tensors, before the schema maps them (path
//!   rules; tensors named like a column with a `drop` rule are removed). The learner of
//!   `reference.learn` reads batches after this.
//! - [`Redactor::records`]: a capture's records, right after the schema mapped them and before
//!   the drift window, the performance tracker, the prediction log and shadow traffic see them
//!   (column rules; detectors on every text value of a column without a rule).
//! - [`Redactor::table`]: every reference table before it is profiled or saved (file, upload,
//!   learned), with the same column rules and detectors, so that the profile of a hashed column
//!   is over hashes and live hashes are compared with reference hashes.
//! - [`Redactor::json`]: the request body parsed for pointer segments (`performance.segments`).
//! - [`Redactor::scrub_text`]: free text (feedback comments, on the prediction log's writer
//!   thread; alert annotations).
//!
//! **Idempotent.** Redacting a redacted value changes nothing: a hash (`h:` and 16 hex digits)
//! stays, a masked value stays, a bucket label of the rule stays, a rounded number stays. So a
//! reference saved in the state dir (already redacted) can go through [`Redactor::table`] again
//! when it is loaded, and a rule added later still applies to it.

pub mod detect;
pub mod hmac;

use crate::codec::{Batch, Codec, Values};
use crate::config::{ActionName, ConfigError, DetectAction, Detector, PrivacyConfig};
use crate::monitor::reference::{ColumnData, Table};
use crate::monitor::schema::{number_label, Col, Records, Schema};
use crate::telemetry;
use detect::{Detectors, Kind};
use hmac::HmacSha256;
use metrics::Counter;
use std::borrow::Cow;
use std::collections::HashMap;

/// What a rule does to a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The value is not kept at all.
    Drop,
    /// `h:` and the first 16 hex digits of HMAC-SHA256(salt, value).
    Hash,
    /// The last `keep_last` characters kept, the others replaced by `*`.
    Mask { keep_last: usize },
    /// Numbers into labelled buckets: "<e0", "[e0,e1)", ..., ">=en".
    Buckets(Vec<f64>),
    /// Numbers rounded to the nearest multiple of the step (they stay numbers).
    Round(f64),
}

impl Action {
    fn metric(&self) -> usize {
        match self {
            Action::Drop => 0,
            Action::Hash => 1,
            Action::Mask { .. } => 2,
            Action::Buckets(_) | Action::Round(_) => 3,
        }
    }

    /// Whether the value stays a number (only `round` keeps numbers numeric).
    fn keeps_numbers(&self) -> bool {
        matches!(self, Action::Round(_))
    }
}

const ACTIONS: [&str; 4] = ["drop", "hash", "mask", "generalize"];
const SOURCES: [&str; 4] = ["rule", "email", "phone", "card"];

fn source_index(k: Kind) -> usize {
    match k {
        Kind::Email => 1,
        Kind::Phone => 2,
        Kind::Card => 3,
    }
}

/// One value after a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Redacted {
    Missing,
    Num(f64),
    Text(String),
}

/// The redaction rules and detectors in force. Cheap to share (`Arc`); every method takes
/// `&self` and is safe on any thread.
pub struct Redactor {
    columns: HashMap<String, Action>,
    paths: Vec<(String, Action)>,
    detectors: Detectors,
    detect_action: Action,
    hasher: Option<HmacSha256>,
    counters: [[Counter; 4]; 4],
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("columns", &self.columns)
            .field("paths", &self.paths)
            .field("detectors", &self.detectors)
            .field("detect_action", &self.detect_action)
            .field("salted", &self.hasher.is_some())
            .finish()
    }
}

impl Redactor {
    /// The redactor of `[privacy]`. Fails when a rule (or `detect_action`) hashes and no salt is
    /// configured, naming the key that needs it.
    pub fn from_config(c: &PrivacyConfig) -> Result<Redactor, ConfigError> {
        let salt = c.salt()?;
        Ok(Redactor::build(c, salt.as_deref()))
    }

    /// Like [`Redactor::from_config`], but never fails: without a salt, `hash` becomes `drop`
    /// (nothing in the clear, no joins). For code paths that cannot fail; `app::start` calls
    /// `from_config` first, so a missing salt stops vigil before any of them runs.
    pub fn from_config_or_strict(c: &PrivacyConfig) -> Redactor {
        let salt = c.salt().ok().flatten();
        Redactor::build(c, salt.as_deref())
    }

    /// Rules and detectors as given; `hash` without a salt drops.
    fn build(c: &PrivacyConfig, salt: Option<&[u8]>) -> Redactor {
        let hasher = salt.map(HmacSha256::new);
        let strict = |a: Action| if a == Action::Hash && hasher.is_none() { Action::Drop } else { a };
        let mut columns = HashMap::new();
        let mut paths = Vec::new();
        for r in &c.rules {
            let action = match (r.action, &r.buckets, r.round) {
                (Some(ActionName::Drop), ..) => Action::Drop,
                (Some(ActionName::Hash), ..) => Action::Hash,
                (Some(ActionName::Mask), ..) => Action::Mask { keep_last: r.keep_last.unwrap_or(4) },
                (Some(ActionName::Generalize), Some(b), _) => Action::Buckets(b.clone()),
                (Some(ActionName::Generalize), None, Some(step)) => Action::Round(step),
                _ => continue, // rejected by validation
            };
            let action = strict(action);
            match (&r.feature, &r.path) {
                (Some(f), _) => {
                    columns.insert(f.clone(), action);
                }
                (None, Some(p)) => paths.push((p.clone(), action)),
                (None, None) => {}
            }
        }
        let detectors = Detectors {
            email: c.detect.contains(&Detector::Email),
            phone: c.detect.contains(&Detector::Phone),
            card: c.detect.contains(&Detector::Card),
        };
        let detect_action = strict(match c.detect_action {
            DetectAction::Mask => Action::Mask { keep_last: 0 },
            DetectAction::Hash => Action::Hash,
            DetectAction::Drop => Action::Drop,
        });
        let counters = SOURCES
            .map(|s| ACTIONS.map(|a| metrics::counter!(telemetry::REDACTIONS_TOTAL, "action" => a, "source" => s)));
        Redactor { columns, paths, detectors, detect_action, hasher, counters }
    }

    /// Nothing redacted: no rules, no detectors (tests, and `[privacy] detect = []` without rules).
    pub fn off() -> Redactor {
        Redactor::build(&PrivacyConfig { detect: Vec::new(), ..PrivacyConfig::default() }, None)
    }

    /// Whether anything can change a value.
    pub fn is_off(&self) -> bool {
        self.columns.is_empty() && self.paths.is_empty() && !self.detectors.any()
    }

    /// The rule of a column, if any.
    pub fn column_rule(&self, name: &str) -> Option<&Action> {
        self.columns.get(name)
    }

    fn count(&self, source: usize, action: &Action, n: u64) {
        if n > 0 {
            self.counters[source][action.metric()].increment(n);
        }
    }

    /// `h:` and 16 hex digits of the keyed hash; empty when there is no salt (not reachable:
    /// `hash` without a salt was turned into `drop`).
    pub fn hash(&self, value: &str) -> String {
        let Some(h) = &self.hasher else { return String::new() };
        let mac = h.mac(value.as_bytes());
        let mut out = String::with_capacity(18);
        out.push_str("h:");
        for b in &mac[..8] {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// Free text with every detected e-mail address, phone and card number replaced in place:
    /// by "[email]" / "[phone]" / "[card]" (mask), by its hash, or by nothing (drop). Borrowed
    /// when nothing was found. Column rules do not apply here.
    ///
    /// Replacing a match can expose another (a phone number right after a card number was part
    /// of the card's run of digits), so the scan repeats on its own output, at most 4 times.
    pub fn scrub_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        if !self.detectors.any() {
            return out;
        }
        for _ in 0..4 {
            let found = detect::find(&out, self.detectors);
            if found.is_empty() {
                break;
            }
            out = Cow::Owned(self.replace(&out, found));
        }
        out
    }

    fn replace(&self, text: &str, found: Vec<(std::ops::Range<usize>, Kind)>) -> String {
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (r, kind) in found {
            out.push_str(&text[at..r.start]);
            match &self.detect_action {
                Action::Hash => out.push_str(&self.hash(&text[r.clone()])),
                Action::Drop => {}
                _ => {
                    out.push('[');
                    out.push_str(kind.as_str());
                    out.push(']');
                }
            }
            self.count(source_index(kind), &self.detect_action, 1);
            at = r.end;
        }
        out.push_str(&text[at..]);
        out
    }

    /// One text value under a rule.
    pub fn apply_text(&self, action: &Action, s: &str) -> Redacted {
        match action {
            Action::Drop => Redacted::Missing,
            Action::Hash if is_hash(s) => Redacted::Text(s.to_owned()),
            Action::Hash => Redacted::Text(self.hash(s)),
            Action::Mask { keep_last } => Redacted::Text(mask(s, *keep_last)),
            Action::Buckets(edges) if is_bucket_label(edges, s) => Redacted::Text(s.to_owned()),
            Action::Buckets(_) | Action::Round(_) => match s.trim().parse::<f64>() {
                Ok(x) => match self.apply_num(action, x) {
                    Redacted::Num(x) => Redacted::Text(number_label(x)),
                    other => other,
                },
                Err(_) => Redacted::Missing,
            },
        }
    }

    /// One number under a rule (NaN is missing).
    pub fn apply_num(&self, action: &Action, x: f64) -> Redacted {
        if x.is_nan() {
            return Redacted::Missing;
        }
        match action {
            Action::Drop => Redacted::Missing,
            Action::Hash => Redacted::Text(self.hash(&number_label(x))),
            Action::Mask { keep_last } => Redacted::Text(mask(&number_label(x), *keep_last)),
            Action::Buckets(edges) => Redacted::Text(bucket(edges, x)),
            Action::Round(step) if x.is_finite() => {
                let r = (x / step).round() * step;
                // Keep a clean decimal for steps like 0.1.
                Redacted::Num(number_label(r).parse().unwrap_or(r))
            }
            Action::Round(_) => Redacted::Num(x),
        }
    }

    /// A column of a capture's records (or of a table) under a rule; `None` for `drop`.
    fn apply_col(&self, action: &Action, col: Col) -> Option<Col> {
        if *action == Action::Drop {
            self.count(0, action, col.len() as u64);
            return None;
        }
        let mut n = 0u64;
        let col = match col {
            Col::Num(v) if action.keeps_numbers() => Col::Num(
                v.into_iter()
                    .map(|x| match self.apply_num(action, x) {
                        Redacted::Num(y) => {
                            n += 1;
                            y
                        }
                        _ => f64::NAN,
                    })
                    .collect(),
            ),
            Col::Num(v) => Col::Cat(
                v.into_iter()
                    .map(|x| match self.apply_num(action, x) {
                        Redacted::Text(s) => {
                            n += 1;
                            Some(s)
                        }
                        Redacted::Num(y) => Some(number_label(y)),
                        Redacted::Missing => None,
                    })
                    .collect(),
            ),
            Col::Cat(v) => Col::Cat(
                v.into_iter()
                    .map(|s| {
                        let s = s?;
                        n += 1;
                        match self.apply_text(action, &s) {
                            Redacted::Text(t) => Some(t),
                            Redacted::Num(y) => Some(number_label(y)),
                            Redacted::Missing => None,
                        }
                    })
                    .collect(),
            ),
        };
        self.count(0, action, n);
        Some(col)
    }

    fn scrub_col(&self, v: &mut [Option<String>]) {
        for s in v.iter_mut().flatten() {
            if let Cow::Owned(t) = self.scrub_text(s) {
                *s = t;
            }
        }
    }

    /// A capture's records, in place: each column with a rule gets its action (a `drop` column
    /// becomes absent), every text value of a column without a rule goes through the detectors.
    pub fn records(&self, rec: &mut Records, schema: &Schema) {
        if self.is_off() {
            return;
        }
        for (cols, specs) in [(&mut rec.features, &schema.features), (&mut rec.predictions, &schema.predictions)] {
            for (col, spec) in cols.iter_mut().zip(specs) {
                match self.columns.get(&spec.name) {
                    Some(action) => *col = col.take().and_then(|c| self.apply_col(action, c)),
                    None => {
                        if let Some(Col::Cat(v)) = col {
                            self.scrub_col(v);
                        }
                    }
                }
            }
        }
    }

    /// A reference table, in place, with the rules and detectors of [`Redactor::records`]: a
    /// `drop` column is removed from the table (it is then not part of the schema either).
    pub fn table(&self, table: &mut Table) {
        if self.is_off() {
            return;
        }
        let columns = std::mem::take(&mut table.columns);
        for mut c in columns {
            match self.columns.get(&c.name) {
                Some(Action::Drop) => continue,
                Some(action) => {
                    let col = match c.data {
                        ColumnData::Num(v) => Col::Num(v),
                        ColumnData::Cat(v) => Col::Cat(v),
                    };
                    c.data = match self.apply_col(action, col) {
                        Some(Col::Num(v)) => ColumnData::Num(v),
                        Some(Col::Cat(v)) => ColumnData::Cat(v),
                        None => continue,
                    };
                }
                None => {
                    if let ColumnData::Cat(v) = &mut c.data {
                        self.scrub_col(v);
                    }
                }
            }
            table.columns.push(c);
        }
    }

    /// Decoded tensors of one body, in place, before the schema maps them: a path rule applies to
    /// the tensors its pointer names (V2 `/inputs/N` or `/inputs/N/data`, `/outputs/N[/data]`;
    /// V1 `/instances`, `/inputs`, `/predictions`, `/outputs`; the JSON codec's configured
    /// pointer), and tensors named like a column with a `drop` rule are removed.
    pub fn batch(&self, batch: &mut Batch, codec: &Codec, response: bool) {
        if self.columns.is_empty() && self.paths.is_empty() {
            return;
        }
        batch.tensors.retain(|t| {
            let dropped = t.name.as_deref().and_then(|n| self.columns.get(n)) == Some(&Action::Drop);
            if dropped {
                self.count(0, &Action::Drop, t.values.len() as u64);
            }
            !dropped
        });
        for (path, action) in &self.paths {
            let picked: Vec<usize> = match tensors_at(codec, response, path) {
                Pick::None => continue,
                Pick::All => (0..batch.tensors.len()).collect(),
                Pick::Index(i) if i < batch.tensors.len() => vec![i],
                Pick::Index(_) => continue,
            };
            for i in picked {
                let t = &mut batch.tensors[i];
                self.count(0, action, t.values.len() as u64);
                let values = std::mem::replace(&mut t.values, Values::Num(Vec::new()));
                t.values = match values {
                    Values::Num(v) if action.keeps_numbers() => Values::Num(
                        v.into_iter()
                            .map(|x| match self.apply_num(action, x) {
                                Redacted::Num(y) => y,
                                _ => f64::NAN,
                            })
                            .collect(),
                    ),
                    Values::Num(v) if *action == Action::Drop => Values::Num(vec![f64::NAN; v.len()]),
                    Values::Num(v) => Values::Text(v.into_iter().map(|x| text_of(self.apply_num(action, x))).collect()),
                    Values::Text(v) => {
                        Values::Text(v.into_iter().map(|s| text_of(self.apply_text(action, &s))).collect())
                    }
                };
            }
        }
    }

    /// A parsed body, in place: path rules on the values their pointers name (every number and
    /// string below), then the detectors on every string.
    pub fn json(&self, value: &mut serde_json::Value) {
        if self.is_off() {
            return;
        }
        for (path, action) in &self.paths {
            if let Some(v) = value.pointer_mut(path) {
                self.json_rule(action, v);
            }
        }
        if self.detectors.any() {
            self.json_scrub(value, 0);
        }
    }

    fn json_rule(&self, action: &Action, v: &mut serde_json::Value) {
        use serde_json::Value;
        let out = match v {
            Value::Array(items) => return items.iter_mut().for_each(|x| self.json_rule(action, x)),
            Value::Object(map) => return map.values_mut().for_each(|x| self.json_rule(action, x)),
            Value::Number(n) => self.apply_num(action, n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => self.apply_text(action, s),
            Value::Bool(_) | Value::Null => return,
        };
        self.count(0, action, 1);
        *v = match out {
            Redacted::Missing => Value::Null,
            Redacted::Num(x) => serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number),
            Redacted::Text(s) => Value::String(s),
        };
    }

    fn json_scrub(&self, v: &mut serde_json::Value, depth: usize) {
        use serde_json::Value;
        // serde_json's parser stops at depth 128; this bound only keeps a hand-built value safe.
        if depth > 256 {
            return;
        }
        match v {
            Value::String(s) => {
                if let Cow::Owned(t) = self.scrub_text(s) {
                    *s = t;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|x| self.json_scrub(x, depth + 1)),
            Value::Object(map) => map.values_mut().for_each(|x| self.json_scrub(x, depth + 1)),
            _ => {}
        }
    }
}

fn text_of(r: Redacted) -> String {
    match r {
        Redacted::Missing => String::new(),
        Redacted::Num(x) => number_label(x),
        Redacted::Text(s) => s,
    }
}

/// Which decoded tensors a pointer names.
#[derive(Debug, PartialEq)]
enum Pick {
    None,
    All,
    Index(usize),
}

fn tensors_at(codec: &Codec, response: bool, path: &str) -> Pick {
    match codec {
        Codec::V2 => {
            let side = if response { "/outputs/" } else { "/inputs/" };
            let Some(rest) = path.strip_prefix(side) else { return Pick::None };
            let index = rest.strip_suffix("/data").unwrap_or(rest);
            match index.parse::<usize>() {
                Ok(i) if !index.starts_with('+') => Pick::Index(i),
                _ => Pick::None,
            }
        }
        Codec::V1 => {
            let sides: &[&str] = if response { &["/predictions", "/outputs"] } else { &["/instances", "/inputs"] };
            if sides.contains(&path) {
                Pick::All
            } else {
                Pick::None
            }
        }
        Codec::Json(p) => {
            let pointer = if response { &p.predictions } else { &p.features };
            if pointer == path {
                Pick::All
            } else {
                Pick::None
            }
        }
    }
}

/// Whether a string is already a hash of [`Redactor::hash`].
fn is_hash(s: &str) -> bool {
    s.len() == 18 && s.starts_with("h:") && s.as_bytes()[2..].iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The last `keep` characters kept, the others `*` (one per character).
fn mask(s: &str, keep: usize) -> String {
    let n = s.chars().count();
    let hide = n.saturating_sub(keep);
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        out.push(if i < hide { '*' } else { c });
    }
    out
}

/// The label of the bucket of `x`: "<e0", "[e_i,e_i+1)", ">=e_n".
fn bucket(edges: &[f64], x: f64) -> String {
    let label = |e: f64| number_label(e);
    match edges.iter().position(|e| x < *e) {
        Some(0) => format!("<{}", label(edges[0])),
        Some(i) => format!("[{},{})", label(edges[i - 1]), label(edges[i])),
        None => format!(">={}", label(edges[edges.len() - 1])),
    }
}

fn is_bucket_label(edges: &[f64], s: &str) -> bool {
    if !(s.starts_with('<') || s.starts_with('[') || s.starts_with(">=")) {
        return false;
    }
    let first = format!("<{}", number_label(edges[0]));
    let last = format!(">={}", number_label(edges[edges.len() - 1]));
    s == first || s == last || edges.windows(2).any(|w| s == format!("[{},{})", number_label(w[0]), number_label(w[1])))
}

#[cfg(test)]
mod tests;
