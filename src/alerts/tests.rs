use super::*;
use crate::config::alerts::{AlertsConfig, ReceiverConfig, RuleConfig};
use std::sync::Arc;

fn rule(figure: &str, above: f64) -> RuleConfig {
    RuleConfig {
        alert: "T".into(),
        figure: figure.into(),
        matchers: BTreeMap::new(),
        above: Some(above),
        below: None,
        clear: None,
        window: Duration::from_secs(60),
        for_: Duration::ZERO,
        keep_firing_for: Duration::ZERO,
        severity: "warning".into(),
        labels: BTreeMap::new(),
        annotations: [("summary".to_owned(), "{{ $labels.feature }} at {{ $value }}".to_owned())].into(),
        receivers: None,
    }
}

fn receiver(name: &str, webhook: bool) -> ReceiverConfig {
    ReceiverConfig {
        name: name.into(),
        webhook: webhook.then(|| "http://127.0.0.1:1/hook".into()),
        alertmanager: (!webhook).then(|| "http://127.0.0.1:1".into()),
        send_resolved: true,
        repeat_interval: Duration::from_secs(3600),
        resend_delay: Duration::from_secs(60),
        bearer_token_env: None,
        timeout: Duration::from_secs(1),
    }
}

/// An engine and the history it reads, fed one scrape per `evaluate`.
struct Harness {
    e: Engine,
    h: History,
}

impl Harness {
    fn evaluate(&mut self, text: &str, t: Instant, w: SystemTime) -> Vec<Transition> {
        self.h.push(t, crate::telemetry::scrape::Scrape::parse(text).0);
        self.e.evaluate(&self.h, t, w)
    }
    fn due(&mut self, t: Instant, w: SystemTime) -> Vec<Notification> {
        self.e.due(t, w)
    }
    fn view(&self) -> serde_json::Value {
        self.e.view()
    }
}

fn engine(rules: Vec<RuleConfig>, receivers: Vec<ReceiverConfig>) -> Harness {
    let cfg = AlertsConfig { builtin_rules: false, rules, receivers, ..AlertsConfig::default() };
    let e = Engine::new(&cfg, "http://vigil:9901".into(), Arc::new(crate::privacy::Redactor::off()));
    Harness { h: History::new(figures::history_names(), e.horizon()), e }
}

fn gauge(v: f64) -> String {
    format!("vigil_feature_drift_score{{version=\"v1\",feature=\"income\"}} {v}\n")
}

struct Clock {
    t0: Instant,
    w0: SystemTime,
}

impl Clock {
    fn new() -> Clock {
        Clock { t0: Instant::now(), w0: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) }
    }
    fn at(&self, s: u64) -> (Instant, SystemTime) {
        (self.t0 + Duration::from_secs(s), self.w0 + Duration::from_secs(s))
    }
}

fn kinds(ts: &[Transition]) -> Vec<&'static str> {
    ts.iter().map(|t| if matches!(t, Transition::Firing(_)) { "firing" } else { "resolved" }).collect()
}

#[test]
fn pending_until_for_then_firing_then_resolved() {
    let mut r = rule("vigil_feature_drift_score", 0.2);
    r.for_ = Duration::from_secs(30);
    let mut e = engine(vec![r], vec![]);
    let c = Clock::new();
    let (t, w) = c.at(0);
    assert!(e.evaluate(&gauge(0.3), t, w).is_empty());
    assert_eq!(e.view()["alerts"][0]["state"], "pending");
    let (t, w) = c.at(15);
    assert!(e.evaluate(&gauge(0.3), t, w).is_empty(), "for not yet elapsed");
    let (t, w) = c.at(30);
    let ts = e.evaluate(&gauge(0.31), t, w);
    assert_eq!(kinds(&ts), ["firing"]);
    let Transition::Firing(v) = &ts[0] else { unreachable!() };
    assert_eq!(v.labels["alertname"], "T");
    assert_eq!(v.labels["severity"], "warning");
    assert_eq!(v.labels["feature"], "income");
    assert_eq!(v.annotations["summary"], "income at 0.31");
    assert_eq!(v.active_since, rfc3339(c.at(0).1));
    let (t, w) = c.at(45);
    assert_eq!(kinds(&e.evaluate(&gauge(0.1), t, w)), ["resolved"]);
    assert_eq!(e.view()["recent"][0]["resolved_at"], rfc3339(w));
    assert_eq!(e.view()["alerts"].as_array().unwrap().len(), 0);
}

#[test]
fn pending_that_recovers_never_fires() {
    let mut r = rule("vigil_feature_drift_score", 0.2);
    r.for_ = Duration::from_secs(30);
    let mut e = engine(vec![r], vec![]);
    let c = Clock::new();
    for (s, v) in [(0, 0.3), (15, 0.1), (30, 0.3), (45, 0.3)] {
        let (t, w) = c.at(s);
        assert!(e.evaluate(&gauge(v), t, w).is_empty(), "at {s}s");
    }
    // The pending restarted at 30 s: it fires at 60 s, not before.
    let (t, w) = c.at(60);
    assert_eq!(kinds(&e.evaluate(&gauge(0.3), t, w)), ["firing"]);
}

#[test]
fn hysteresis_and_keep_firing_for() {
    let mut r = rule("vigil_feature_drift_score", 0.2);
    r.clear = Some(0.1);
    r.keep_firing_for = Duration::from_secs(20);
    let mut e = engine(vec![r], vec![]);
    let c = Clock::new();
    let (t, w) = c.at(0);
    assert_eq!(kinds(&e.evaluate(&gauge(0.25), t, w)), ["firing"]);
    // Below the threshold but above `clear`: still firing.
    let (t, w) = c.at(10);
    assert!(e.evaluate(&gauge(0.15), t, w).is_empty());
    // Cleared, but keep_firing_for holds it 20 s.
    let (t, w) = c.at(20);
    assert!(e.evaluate(&gauge(0.05), t, w).is_empty());
    let (t, w) = c.at(30);
    assert!(e.evaluate(&gauge(0.15), t, w).is_empty(), "un-cleared: the keep-firing clock restarts");
    let (t, w) = c.at(40);
    assert!(e.evaluate(&gauge(0.05), t, w).is_empty());
    let (t, w) = c.at(60);
    assert_eq!(kinds(&e.evaluate(&gauge(0.05), t, w)), ["resolved"]);
}

#[test]
fn below_rules_and_vanished_series() {
    let mut r = rule("vigil_model_accuracy", 0.0);
    r.above = None;
    r.below = Some(0.8);
    let mut e = engine(vec![r], vec![]);
    let c = Clock::new();
    let (t, w) = c.at(0);
    let ts = e.evaluate("vigil_model_accuracy{version=\"v1\",window=\"1000\"} 0.7\nvigil_model_accuracy{version=\"v2\",window=\"1000\"} 0.9\n", t, w);
    assert_eq!(kinds(&ts), ["firing"]);
    let (t, w) = c.at(10);
    assert_eq!(kinds(&e.evaluate("", t, w)), ["resolved"], "a series that is gone resolves");
}

#[test]
fn notifications_follow_receivers_repeat_and_resend() {
    let mut r = rule("vigil_feature_drift_score", 0.2);
    r.receivers = Some(vec!["hook".into(), "am".into()]);
    let mut quiet = rule("vigil_feature_drift_score", 0.2);
    quiet.alert = "Quiet".into();
    quiet.receivers = Some(vec!["am".into()]);
    let mut e = engine(vec![r, quiet], vec![receiver("hook", true), receiver("am", false)]);
    let c = Clock::new();
    let (t, w) = c.at(0);
    e.evaluate(&gauge(0.3), t, w);
    let due = e.due(t, w);
    let to =
        |name: &str| due.iter().filter(|n| n.receiver.name == name).map(|n| n.alertname.clone()).collect::<Vec<_>>();
    assert_eq!(to("hook"), ["T"]);
    assert_eq!(to("am"), ["Quiet", "T"]);
    let am = due.iter().find(|n| n.receiver.name == "am").unwrap();
    assert_eq!(am.alerts[0].ends_at, Some(w + Duration::from_secs(240)), "4 × resend_delay ahead");
    // Nothing new 30 s later; at 60 s Alertmanager gets its re-send, the webhook does not.
    let (t, w) = c.at(30);
    e.evaluate(&gauge(0.3), t, w);
    assert!(e.due(t, w).is_empty());
    let (t, w) = c.at(60);
    e.evaluate(&gauge(0.3), t, w);
    let due = e.due(t, w);
    assert!(due.iter().all(|n| n.receiver.name == "am") && due.len() == 2);
    // Resolution goes to both, once.
    let (t, w) = c.at(70);
    e.evaluate(&gauge(0.0), t, w);
    let due = e.due(t, w);
    assert_eq!(due.len(), 3);
    assert!(due.iter().all(|n| n.alerts[0].resolved_at.is_some()));
    let hook = due.iter().find(|n| n.receiver.name == "hook").unwrap();
    let p = notify::webhook_payload(hook, "http://vigil:9901");
    assert_eq!(p["version"], "4");
    assert_eq!(p["status"], "resolved");
    assert_eq!(p["groupLabels"]["alertname"], "T");
    assert_eq!(p["commonLabels"]["feature"], "income");
    assert_eq!(p["alerts"][0]["endsAt"], rfc3339(w));
    assert_eq!(p["alerts"][0]["fingerprint"].as_str().unwrap().len(), 16);
    let (t, w) = c.at(80);
    e.evaluate(&gauge(0.0), t, w);
    assert!(e.due(t, w).is_empty());
}

#[test]
fn templates_expand_known_variables_only() {
    let v = AlertView {
        alert: "A".into(),
        state: State::Firing,
        labels: [("version".to_owned(), "v2".to_owned())].into(),
        annotations: BTreeMap::new(),
        value: 0.123456,
        active_since: String::new(),
        firing_since: None,
        resolved_at: None,
        starts_at: None,
        ends_at: None,
    };
    let s = expand(
        "{{$labels.version}} {{ $value }} {{ $labels.nope }}|{{ .Other }} {{ $exportURL }} {{",
        &v,
        "http://x",
        "http://x/e",
    );
    assert_eq!(s, "v2 0.1235 |{{ .Other }} http://x/e {{");
    assert_eq!(format_value(3.0), "3");
    assert_eq!(format_value(0.000123456), "0.0001235");
    assert_eq!(format_value(12.5), "12.5");
}

#[test]
fn builtin_rules_match_the_prometheus_rules_file() {
    let yml = include_str!("../../config/prometheus-rules.yml");
    for r in crate::config::alerts::builtin_rules() {
        let at =
            yml.find(&format!("alert: {}\n", r.alert)).unwrap_or_else(|| panic!("{} missing from the yml", r.alert));
        let block = &yml[at..];
        let block = &block[..block[1..].find("- alert:").map(|i| i + 1).unwrap_or(block.len())];
        let (t, _) = r.threshold();
        assert!(block.contains(&format!("> {}", format_value(t))), "{}: threshold {t} not in\n{block}", r.alert);
        assert!(block.contains(&format!("for: {}", duration::format(r.for_))), "{}: for", r.alert);
        assert!(block.contains(&format!("severity: {}", r.severity)), "{}: severity", r.alert);
    }
}

#[test]
fn annotations_pass_the_pii_detectors() {
    let mut r = rule("vigil_feature_drift_score", 0.2);
    r.annotations.insert("owner".into(), "page jane.doe@example.com or +44 20 7946 0958".into());
    let cfg = AlertsConfig { builtin_rules: false, rules: vec![r], ..AlertsConfig::default() };
    let redactor = crate::privacy::Redactor::from_config(&crate::config::PrivacyConfig::default()).unwrap();
    let mut e = Engine::new(&cfg, "http://vigil:9901".into(), Arc::new(redactor));
    let mut h = History::new(figures::history_names(), e.horizon());
    let c = Clock::new();
    let (t, w) = c.at(0);
    h.push(t, crate::telemetry::scrape::Scrape::parse(&gauge(0.3)).0);
    let ts = e.evaluate(&h, t, w);
    let Transition::Firing(v) = &ts[0] else { panic!("{ts:?}") };
    let owner = &v.annotations["owner"];
    assert!(!owner.contains("jane.doe@example.com") && !owner.contains("7946"), "{owner}");
    assert_eq!(v.annotations["summary"], "income at 0.3", "clean text is untouched");
}
