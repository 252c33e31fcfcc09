use super::*;
use std::cell::RefCell;

/// Figures from a table: (figure, version) → value; requests per version; firing alerts.
#[derive(Default)]
struct Table {
    values: RefCell<BTreeMap<(String, String), f64>>,
    requests: RefCell<BTreeMap<String, f64>>,
    alerts: RefCell<usize>,
}

impl Table {
    fn set(&self, figure: &str, version: &str, v: f64) {
        self.values.borrow_mut().insert((figure.into(), version.into()), v);
    }
}

impl Figures for Table {
    fn values(&self, figure: &str, matchers: &BTreeMap<String, String>, _: Duration) -> Vec<f64> {
        let v = matchers.get("version").or(matchers.get("candidate")).cloned().unwrap_or_default();
        self.values.borrow().get(&(figure.to_owned(), v)).copied().into_iter().collect()
    }
    fn requests(&self, version: &str, _: Duration) -> f64 {
        self.requests.borrow().get(version).copied().unwrap_or(0.0)
    }
    fn firing_alerts(&self, _: &BTreeMap<String, String>) -> usize {
        *self.alerts.borrow()
    }
}

fn spec(metrics: Vec<Metric>) -> Spec {
    Spec {
        candidate: "v2".into(),
        steps: vec![10, 50, 100],
        step_duration: Duration::from_secs(60),
        analysis: Analysis { interval: Duration::from_secs(10), threshold: 2, metrics, ..Analysis::default() },
    }
}

fn at(s: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
}

fn healthy() -> Table {
    let t = Table::default();
    t.requests.borrow_mut().insert("v2".into(), 100.0);
    t.requests.borrow_mut().insert("v1".into(), 1000.0);
    t.set("error_ratio", "v2", 0.0);
    t.set("error_ratio", "v1", 0.0);
    t.set("latency_p99_seconds", "v2", 0.05);
    t
}

#[test]
fn steps_advance_after_a_held_and_passed_step_then_promote() {
    let f = healthy();
    let (mut r, first) = Rollout::start(spec(Analysis::default().metrics), "v1".into(), at(0));
    assert_eq!(first, Action::SetWeight(10));
    assert_eq!(r.tick(at(0), &f), None, "passed, but the step is not held yet");
    assert_eq!(r.analysis.iter().map(|c| c.result).collect::<Vec<_>>(), vec![Outcome::Pass; 3]);
    assert_eq!(r.tick(at(30), &f), None);
    assert_eq!(r.tick(at(60), &f), Some(Action::SetWeight(50)));
    assert_eq!((r.step, r.weight, r.phase), (1, 50, Phase::Progressing));
    assert_eq!(r.tick(at(120), &f), Some(Action::Promote), "a step of 100 promotes");
    assert_eq!(r.phase, Phase::Succeeded);
    assert_eq!(r.tick(at(500), &f), None);
}

#[test]
fn failed_checks_reaching_the_threshold_roll_back() {
    let f = healthy();
    let (mut r, _) = Rollout::start(spec(Analysis::default().metrics), "v1".into(), at(0));
    f.set("error_ratio", "v2", 0.2);
    assert_eq!(r.tick(at(0), &f), None, "first failed check of two");
    assert_eq!(r.failed_checks, 1);
    assert!(r.message.contains("error_rate = 0.2 outside max 0.05"), "{}", r.message);
    assert_eq!(r.tick(at(5), &f), None, "checks run every interval only");
    match r.tick(at(10), &f) {
        Some(Action::Rollback(why)) => assert!(why.contains("error_rate"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!((r.phase, r.weight), (Phase::RolledBack, 0));
    assert!(r.finished_at.is_some());
}

#[test]
fn too_little_traffic_is_inconclusive_and_holds_the_step() {
    let f = healthy();
    f.requests.borrow_mut().insert("v2".into(), 3.0);
    let (mut r, _) = Rollout::start(spec(Analysis::default().metrics), "v1".into(), at(0));
    for s in (0..300).step_by(10) {
        assert_eq!(r.tick(at(s), &f), None);
    }
    assert_eq!(r.analysis[0].result, Outcome::Inconclusive);
    assert!(r.analysis[0].note.as_deref().unwrap().contains("fewer than 20"));
    assert!(r.message.contains("waiting for data"), "{}", r.message);
    assert_eq!(r.failed_checks, 0);
}

#[test]
fn vs_stable_compares_the_difference() {
    let f = healthy();
    f.set("error_ratio", "v1", 0.10);
    f.set("error_ratio", "v2", 0.11);
    let m =
        Metric { name: "error_rate".into(), matchers: BTreeMap::new(), vs_stable: true, min: None, max: Some(0.02) };
    let (mut r, _) = Rollout::start(spec(vec![m]), "v1".into(), at(0));
    r.tick(at(0), &f);
    assert_eq!(r.analysis[0].result, Outcome::Pass);
    assert!((r.analysis[0].value.unwrap() - 0.01).abs() < 1e-12);
}

#[test]
fn a_firing_alert_on_the_candidate_fails_the_check() {
    let f = healthy();
    *f.alerts.borrow_mut() = 1;
    let (mut r, _) = Rollout::start(spec(Analysis::default().metrics), "v1".into(), at(0));
    r.tick(at(0), &f);
    assert_eq!(r.analysis[2].metric, "alerts");
    assert_eq!(r.analysis[2].result, Outcome::Fail);
}

#[test]
fn pause_resume_abort_promote() {
    let f = healthy();
    let (mut r, _) = Rollout::start(spec(Analysis::default().metrics), "v1".into(), at(0));
    r.pause("ops").unwrap();
    assert_eq!(r.tick(at(100), &f), None, "paused: no analysis, no step");
    assert!(r.pause("ops").is_err());
    r.resume(at(100), "ops").unwrap();
    assert_eq!(r.tick(at(100), &f), None, "the step's clock restarted");
    assert_eq!(r.tick(at(160), &f), Some(Action::SetWeight(50)));
    assert_eq!(r.clone().promote(at(170), "ops").unwrap(), Action::Promote);
    assert!(matches!(r.abort(at(170), "ops").unwrap(), Action::Rollback(_)));
    assert_eq!(r.phase, Phase::Aborted);
    assert!(r.abort(at(171), "ops").is_err());
}

#[test]
fn specs_are_validated_with_the_field_named() {
    let bad = |f: &dyn Fn(&mut Spec)| {
        let mut s = spec(Analysis::default().metrics);
        f(&mut s);
        s.validate().unwrap_err()
    };
    assert!(bad(&|s| s.steps = vec![50, 25]).contains("rising"));
    assert!(bad(&|s| s.steps = vec![0]).contains("steps"));
    assert!(bad(&|s| s.analysis.threshold = 0).contains("analysis.threshold"));
    assert!(bad(&|s| s.analysis.metrics[0].name = "nope".into()).contains("analysis.metrics[0].name"));
    assert!(bad(&|s| s.analysis.metrics[0].max = None).contains("min, max"));
    assert!(bad(&|s| s.analysis.window = Duration::from_secs(3600)).contains("analysis.window"));
    spec(vec![Metric {
        name: "vigil_model_accuracy".into(),
        matchers: BTreeMap::new(),
        vs_stable: false,
        min: Some(0.8),
        max: None,
    }])
    .validate()
    .unwrap();
}

#[test]
fn survives_a_round_trip_through_its_file() {
    let (r, _) = Rollout::start(spec(Analysis::default().metrics), "v1".into(), at(0));
    let back: Rollout = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back.candidate, "v2");
    assert_eq!(back.spec.metrics, r.spec.metrics);
    let back = back.resumed(at(50));
    assert_eq!(back.step_started_at, rfc3339(at(50)));
}

#[test]
fn a_single_step_of_100_is_a_promotion_that_finishes_at_once() {
    let mut s = spec(Analysis::default().metrics);
    s.steps = vec![100];
    let (mut r, action) = Rollout::start(s, "v1".into(), at(0));
    assert_eq!(action, Action::Promote);
    assert_eq!((r.phase, r.weight), (Phase::Succeeded, 100));
    assert_eq!(r.tick(at(60), &healthy()), None);
}
