//! Alerts: rules on the figures vigil computes, evaluated on vigil's own `/metrics` the way
//! Prometheus evaluates alerting rules, and notifications in Alertmanager's formats.
//!
//! Owns: the rule state machine (`Engine`), the figures (`figures`), notification payloads and
//! their sending (`notify`). May not touch: routes, the data path. The control plane's watch loop
//! (`control::watch`) feeds it a scrape every `alerts.evaluate_every`, writes the transitions to
//! the audit trail and hands the notifications to `notify`.
//!
//! States, per rule and series (an *instance*, labelled like the series plus `alertname`,
//! `severity` and the rule's labels):
//!
//! ```text
//!   inactive ──condition──► pending ──held for `for`──► firing ──cleared (for keep_firing_for)──► resolved
//!        ▲                     │                                                                  │
//!        └──condition gone─────┘◄─────────────────────────────────────────────────────────────────┘
//! ```
//!
//! The condition is `figure > above` (or `< below`). Once firing, an instance clears only when
//! the figure is at or past `clear` (hysteresis; default the threshold), or when its series is
//! gone. A pending instance whose condition fails is dropped without a notification, as in
//! Prometheus.

pub mod figures;
pub mod notify;

use crate::config::alerts::{AlertsConfig, ReceiverConfig, RuleConfig};
use crate::config::duration;
use crate::privacy::Redactor;
use crate::telemetry::scrape::History;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Resolved instances kept for `GET /admin/alerts`.
const RECENT: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Firing,
}

/// One alert instance as the API, the audit trail and notifications show it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    pub alert: String,
    pub state: State,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub value: f64,
    pub active_since: String,
    pub firing_since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    #[serde(skip)]
    pub starts_at: Option<SystemTime>,
    #[serde(skip)]
    pub ends_at: Option<SystemTime>,
}

struct Instance {
    view: AlertView,
    since: Instant,
    cleared_since: Option<Instant>,
    /// Receiver index → when it was last told about this instance.
    sent: BTreeMap<usize, Instant>,
}

struct Rule {
    cfg: RuleConfig,
    threshold: f64,
    above: bool,
    clear: f64,
    instances: BTreeMap<BTreeMap<String, String>, Instance>,
}

/// A change worth an audit line: an instance started or stopped firing.
#[derive(Debug, Clone)]
pub enum Transition {
    Firing(AlertView),
    Resolved(AlertView),
}

/// What to send to one receiver now.
#[derive(Debug, Clone)]
pub struct Notification {
    pub receiver: ReceiverConfig,
    pub alertname: String,
    pub alerts: Vec<AlertView>,
}

pub struct Engine {
    rules: Vec<Rule>,
    receivers: Vec<ReceiverConfig>,
    evaluate_every: Duration,
    external_url: String,
    export_since: Duration,
    recent: VecDeque<AlertView>,
    evaluated_at: Option<SystemTime>,
    /// Resolutions waiting for their notification (sent once, at the next `due`).
    resolved_unsent: Vec<(usize, AlertView)>,
    /// Receiver index → last time every firing alert was re-sent to it (Alertmanager receivers).
    last_resend: BTreeMap<usize, Instant>,
    /// Annotations pass the PII detectors before anyone sees them (API, audit, notifications).
    redactor: Arc<Redactor>,
}

impl Engine {
    /// `external_url`: base of links in notifications, e.g. "http://10.0.0.5:9901".
    pub fn new(cfg: &AlertsConfig, external_url: String, redactor: Arc<Redactor>) -> Engine {
        let rules: Vec<Rule> = cfg
            .effective_rules()
            .into_iter()
            .map(|r| {
                let (threshold, above) = r.threshold();
                Rule { clear: r.clear.unwrap_or(threshold), threshold, above, cfg: r, instances: BTreeMap::new() }
            })
            .collect();
        for r in &rules {
            metrics::gauge!(crate::telemetry::ALERTS_FIRING, "rule" => r.cfg.alert.clone()).set(0.0);
        }
        Engine {
            rules,
            receivers: cfg.receivers.clone(),
            evaluate_every: cfg.evaluate_every,
            external_url: external_url.trim_end_matches('/').to_owned(),
            export_since: cfg.export_since,
            recent: VecDeque::new(),
            evaluated_at: None,
            resolved_unsent: Vec::new(),
            last_resend: BTreeMap::new(),
            redactor,
        }
    }

    /// The longest window a rule reads: the history must keep at least this much.
    pub fn horizon(&self) -> Duration {
        self.rules.iter().map(|r| r.cfg.window).max().unwrap_or_default()
    }

    /// Evaluates every rule against the scrapes in `history` (the newest taken at `now`).
    pub fn evaluate(&mut self, history: &History, now: Instant, wall: SystemTime) -> Vec<Transition> {
        self.evaluated_at = Some(wall);
        let mut out = Vec::new();
        for ri in 0..self.rules.len() {
            let values = {
                let r = &self.rules[ri];
                figures::values(&r.cfg.figure, &r.cfg.matchers, r.cfg.window, history)
            };
            self.step_rule(ri, values, now, wall, &mut out);
        }
        for t in &out {
            if let Transition::Resolved(v) = t {
                self.recent.push_front(v.clone());
                self.recent.truncate(RECENT);
            }
        }
        for r in &self.rules {
            let firing = r.instances.values().filter(|i| i.view.state == State::Firing).count();
            metrics::gauge!(crate::telemetry::ALERTS_FIRING, "rule" => r.cfg.alert.clone()).set(firing as f64);
            metrics::gauge!(crate::telemetry::ALERTS_PENDING, "rule" => r.cfg.alert.clone())
                .set((r.instances.len() - firing) as f64);
        }
        out
    }

    fn step_rule(
        &mut self,
        ri: usize,
        values: Vec<figures::Value>,
        now: Instant,
        wall: SystemTime,
        out: &mut Vec<Transition>,
    ) {
        let external = self.external_url.clone();
        let export_since = self.export_since;
        let redactor = self.redactor.clone();
        let annotate = |cfg: &RuleConfig, view: &AlertView| {
            let mut a = annotate(cfg, view, &external, export_since, wall);
            for v in a.values_mut() {
                if let std::borrow::Cow::Owned(clean) = redactor.scrub_text(v) {
                    *v = clean;
                }
            }
            a
        };
        let rule = &mut self.rules[ri];
        let mut seen = std::collections::BTreeSet::new();
        for (series, value) in values {
            let condition = if rule.above { value > rule.threshold } else { value < rule.threshold };
            let cleared = if rule.above { value <= rule.clear } else { value >= rule.clear };
            seen.insert(series.clone());
            match rule.instances.get_mut(&series) {
                None if condition => {
                    let labels = instance_labels(&rule.cfg, &series);
                    let mut view = AlertView {
                        alert: rule.cfg.alert.clone(),
                        state: State::Pending,
                        annotations: BTreeMap::new(),
                        labels,
                        value,
                        active_since: rfc3339(wall),
                        firing_since: None,
                        resolved_at: None,
                        starts_at: Some(wall),
                        ends_at: None,
                    };
                    view.annotations = annotate(&rule.cfg, &view);
                    let mut inst = Instance { view, since: now, cleared_since: None, sent: BTreeMap::new() };
                    if rule.cfg.for_.is_zero() {
                        fire(&mut inst, wall, out);
                    }
                    rule.instances.insert(series, inst);
                }
                None => {}
                Some(inst) => {
                    inst.view.value = value;
                    inst.view.annotations = annotate(&rule.cfg, &inst.view);
                    match inst.view.state {
                        State::Pending if !condition => {
                            rule.instances.remove(&series);
                        }
                        State::Pending => {
                            if now.duration_since(inst.since) >= rule.cfg.for_ {
                                fire(inst, wall, out);
                            }
                        }
                        State::Firing if !cleared => inst.cleared_since = None,
                        State::Firing => {
                            let since = *inst.cleared_since.get_or_insert(now);
                            if now.duration_since(since) >= rule.cfg.keep_firing_for {
                                let inst = rule.instances.remove(&series).expect("present");
                                resolve(inst, wall, ri, &mut self.resolved_unsent, out);
                            }
                        }
                    }
                }
            }
        }
        // Series gone (no traffic in the window, a removed version): pending ones drop, firing
        // ones resolve.
        let gone: Vec<_> = rule.instances.keys().filter(|k| !seen.contains(*k)).cloned().collect();
        for k in gone {
            let inst = rule.instances.remove(&k).expect("present");
            if inst.view.state == State::Firing {
                resolve(inst, wall, ri, &mut self.resolved_unsent, out);
            }
        }
    }

    /// Notifications due now: new firings and resolutions, webhook repeats after
    /// `repeat_interval`, and Alertmanager re-sends every `resend_delay` (with an `endsAt` a few
    /// evaluations ahead, so Alertmanager resolves them itself if vigil goes away).
    pub fn due(&mut self, now: Instant, wall: SystemTime) -> Vec<Notification> {
        let mut batches: BTreeMap<(usize, String), Vec<AlertView>> = BTreeMap::new();
        let receivers_of = |cfg: &RuleConfig, receivers: &[ReceiverConfig]| -> Vec<usize> {
            (0..receivers.len())
                .filter(|i| cfg.receivers.as_ref().is_none_or(|names| names.contains(&receivers[*i].name)))
                .collect()
        };
        for (ri, v) in std::mem::take(&mut self.resolved_unsent) {
            for rc in receivers_of(&self.rules[ri].cfg, &self.receivers) {
                if self.receivers[rc].send_resolved {
                    batches.entry((rc, v.alert.clone())).or_default().push(v.clone());
                }
            }
        }
        for rc in 0..self.receivers.len() {
            let recv = &self.receivers[rc];
            let resend_all = recv.alertmanager.is_some()
                && self.last_resend.get(&rc).is_none_or(|t| now.duration_since(*t) >= recv.resend_delay);
            if resend_all {
                self.last_resend.insert(rc, now);
            }
            let lifetime = 4 * recv.resend_delay.max(self.evaluate_every);
            for rule in &mut self.rules {
                if !receivers_of(&rule.cfg, &self.receivers).contains(&rc) {
                    continue;
                }
                for inst in rule.instances.values_mut().filter(|i| i.view.state == State::Firing) {
                    let send = match inst.sent.get(&rc) {
                        None => true,
                        Some(_) if resend_all => true,
                        Some(t) => recv.webhook.is_some() && now.duration_since(*t) >= recv.repeat_interval,
                    };
                    if send {
                        inst.sent.insert(rc, now);
                        let mut v = inst.view.clone();
                        if recv.alertmanager.is_some() {
                            v.ends_at = Some(wall + lifetime);
                        }
                        batches.entry((rc, v.alert.clone())).or_default().push(v);
                    }
                }
            }
        }
        batches
            .into_iter()
            .map(|((rc, alertname), alerts)| Notification { receiver: self.receivers[rc].clone(), alertname, alerts })
            .collect()
    }

    /// What `GET /admin/alerts` answers.
    pub fn view(&self) -> serde_json::Value {
        let alerts: Vec<&AlertView> = self.rules.iter().flat_map(|r| r.instances.values().map(|i| &i.view)).collect();
        let rules: Vec<serde_json::Value> = self
            .rules
            .iter()
            .map(|r| {
                let firing = r.instances.values().filter(|i| i.view.state == State::Firing).count();
                serde_json::json!({
                    "alert": r.cfg.alert,
                    "figure": r.cfg.figure,
                    "match": r.cfg.matchers,
                    "above": r.cfg.above,
                    "below": r.cfg.below,
                    "clear": r.clear,
                    "window": duration::format(r.cfg.window),
                    "for": duration::format(r.cfg.for_),
                    "keep_firing_for": duration::format(r.cfg.keep_firing_for),
                    "severity": r.cfg.severity,
                    "pending": r.instances.len() - firing,
                    "firing": firing,
                })
            })
            .collect();
        serde_json::json!({
            "evaluated_at": self.evaluated_at.map(rfc3339),
            "alerts": alerts,
            "rules": rules,
            "recent": self.recent,
            "receivers": self.receivers.iter().map(|r| serde_json::json!({
                "name": r.name,
                "kind": if r.webhook.is_some() { "webhook" } else { "alertmanager" },
            })).collect::<Vec<_>>(),
        })
    }

    /// Firing alerts whose labels include `matchers` (rollout analysis asks for a version's).
    pub fn firing(&self, matchers: &BTreeMap<String, String>) -> Vec<AlertView> {
        self.rules
            .iter()
            .flat_map(|r| r.instances.values())
            .filter(|i| i.view.state == State::Firing && matchers.iter().all(|(k, v)| i.view.labels.get(k) == Some(v)))
            .map(|i| i.view.clone())
            .collect()
    }
}

fn fire(inst: &mut Instance, wall: SystemTime, out: &mut Vec<Transition>) {
    inst.view.state = State::Firing;
    inst.view.firing_since = Some(rfc3339(wall));
    out.push(Transition::Firing(inst.view.clone()));
}

fn resolve(
    mut inst: Instance,
    wall: SystemTime,
    ri: usize,
    unsent: &mut Vec<(usize, AlertView)>,
    out: &mut Vec<Transition>,
) {
    inst.view.resolved_at = Some(rfc3339(wall));
    inst.view.ends_at = Some(wall);
    unsent.push((ri, inst.view.clone()));
    out.push(Transition::Resolved(inst.view));
}

fn instance_labels(cfg: &RuleConfig, series: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labels = series.clone();
    labels.extend(cfg.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.insert("severity".into(), cfg.severity.clone());
    labels.insert("alertname".into(), cfg.alert.clone());
    labels
}

fn annotate(
    cfg: &RuleConfig,
    view: &AlertView,
    external: &str,
    export_since: Duration,
    wall: SystemTime,
) -> BTreeMap<String, String> {
    let export = {
        let since = rfc3339(wall.checked_sub(export_since).unwrap_or(SystemTime::UNIX_EPOCH));
        let mut u = format!("{external}/admin/export?labelled=true&format=parquet&since={since}");
        if let Some(v) = view.labels.get("version") {
            u.push_str("&version=");
            u.push_str(v);
        }
        u
    };
    cfg.annotations.iter().map(|(k, t)| (k.clone(), expand(t, view, external, &export))).collect()
}

/// Expands `{{ $value }}`, `{{ $labels.NAME }}`, `{{ $externalURL }}` and `{{ $exportURL }}`.
/// Anything else between braces is left as written.
pub fn expand(template: &str, view: &AlertView, external: &str, export: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inner = after[..close].trim();
        match inner {
            "$value" => out.push_str(&format_value(view.value)),
            "$externalURL" => out.push_str(external),
            "$exportURL" => out.push_str(export),
            l if l.starts_with("$labels.") => {
                out.push_str(view.labels.get(&l["$labels.".len()..]).map(String::as_str).unwrap_or(""))
            }
            _ => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// Four significant digits: enough for a page, short enough to read.
pub fn format_value(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{v}");
    }
    let s = format!("{:.4}", v);
    let digits = if v.abs() >= 1.0 { s } else { format!("{:.*}", 4 + (-v.abs().log10().floor()) as usize - 1, v) };
    digits.trim_end_matches('0').trim_end_matches('.').to_owned()
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests;
