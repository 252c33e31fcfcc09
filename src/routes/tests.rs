use super::*;
use crate::config::UpstreamProtocol;

fn v(name: &str, weight: u32) -> Arc<Version> {
    Arc::new(Version::new(name, UpstreamUrl::parse("http://127.0.0.1:1").unwrap(), weight, UpstreamProtocol::Auto))
}

fn routes(specs: &[(&str, u32)], active: &str) -> Routes {
    Routes::new(specs.iter().map(|(n, w)| v(n, *w)).collect(), active, None).unwrap()
}

#[test]
fn pick_without_canaries_is_always_active() {
    let r = routes(&[("v1", 0), ("v2", 0)], "v1");
    assert!((0..1000).all(|_| &*r.pick().name == "v1"));
    assert_eq!(r.traffic_share("v1"), 100);
}

#[test]
fn pick_follows_canary_weights() {
    let r = routes(&[("v1", 0), ("v2", 30), ("v3", 10)], "v1");
    let mut counts = std::collections::HashMap::new();
    let n = 100_000;
    for _ in 0..n {
        *counts.entry(r.pick().name.to_string()).or_insert(0u32) += 1;
    }
    // Binomial standard deviation at n = 100k is under 0.16 points; 1 point is > 6 sigma.
    let share = |name: &str| counts.get(name).copied().unwrap_or(0) as f64 / n as f64 * 100.0;
    assert!((share("v1") - 60.0).abs() < 1.0, "{counts:?}");
    assert!((share("v2") - 30.0).abs() < 1.0, "{counts:?}");
    assert!((share("v3") - 10.0).abs() < 1.0, "{counts:?}");
    assert_eq!((r.traffic_share("v1"), r.traffic_share("v2"), r.traffic_share("v3")), (60, 30, 10));
}

#[test]
fn active_weight_is_refused_and_canaries_over_100_refused() {
    let r = routes(&[("v1", 0), ("v2", 50)], "v1");
    assert_eq!(r.traffic_share("v1"), 50);
    let e = r.put("v1", VersionChange { weight: Some(20), ..Default::default() }).unwrap_err();
    assert!(matches!(e, RouteError::Invalid(m) if m.contains("active")));
    assert!(r.put("v1", VersionChange { weight: Some(0), ..Default::default() }).is_ok());
    let err = Routes::new(vec![v("v1", 0), v("v2", 60), v("v3", 50)], "v1", None).unwrap_err();
    assert!(matches!(err, RouteError::Invalid(_)));
}

#[test]
fn activate_promotes_fully_and_remembers_previous() {
    let r = routes(&[("v1", 0), ("v2", 10)], "v1");
    let r2 = r.activate("v2").unwrap();
    assert_eq!(&*r2.active().name, "v2");
    assert_eq!(r2.previous(), Some("v1"));
    assert_eq!(r2.traffic_share("v2"), 100);
    assert_eq!(r2.get("v2").unwrap().weight, 0);
    assert_eq!(r.activate("nope").unwrap_err(), RouteError::UnknownVersion("nope".into()));
}

#[test]
fn rollback_returns_and_silences_the_bad_version() {
    let r = routes(&[("v1", 0), ("v2", 0)], "v1").activate("v2").unwrap();
    let r = r.put("v2", VersionChange::default()).unwrap().0;
    let back = r.rollback().unwrap();
    assert_eq!(&*back.active().name, "v1");
    assert_eq!(back.traffic_share("v2"), 0);
    assert!(matches!(back.rollback().unwrap_err(), RouteError::Conflict(_)));
    // A canary that was rolled back from does not get its share back.
    let r = routes(&[("v1", 0), ("v2", 20)], "v1").activate("v2").unwrap();
    let r = r.put("v1", VersionChange { weight: Some(5), ..Default::default() }).unwrap().0;
    let back = r.rollback().unwrap();
    assert_eq!((back.traffic_share("v1"), back.traffic_share("v2")), (100, 0));
}

#[test]
fn put_registers_changes_and_validates() {
    let r = routes(&[("v1", 0)], "v1");
    let url = UpstreamUrl::parse("http://10.0.0.2:8080").unwrap();
    let (r, created) = r.put("v2", VersionChange { url: Some(url), weight: Some(25), ..Default::default() }).unwrap();
    assert!(created);
    assert_eq!(r.traffic_share("v2"), 25);
    let (r, created) = r.put("v2", VersionChange { weight: Some(5), ..Default::default() }).unwrap();
    assert!(!created);
    assert_eq!(r.get("v2").unwrap().url.to_string(), "http://10.0.0.2:8080");
    assert!(matches!(r.put("v3", VersionChange::default()).unwrap_err(), RouteError::Invalid(_)));
    assert!(matches!(
        r.put("v2", VersionChange { weight: Some(101), ..Default::default() }).unwrap_err(),
        RouteError::Invalid(_)
    ));
    assert!(matches!(r.put("bad name", VersionChange::default()).unwrap_err(), RouteError::Invalid(_)));
}

#[test]
fn delete_refuses_the_active_version() {
    let r = routes(&[("v1", 0), ("v2", 10)], "v1");
    assert!(matches!(r.delete("v1").unwrap_err(), RouteError::Conflict(_)));
    let r = r.delete("v2").unwrap();
    assert_eq!(r.versions().len(), 1);
    assert_eq!(r.delete("v2").unwrap_err(), RouteError::UnknownVersion("v2".into()));
}

#[test]
fn urls_parse_with_prefix_and_refuse_others() {
    let u = UpstreamUrl::parse("http://model:8080/base/").unwrap();
    assert_eq!(u.to_string(), "http://model:8080/base");
    let pq: http::uri::PathAndQuery = "/v2/models/m/infer?x=1".parse().unwrap();
    assert_eq!(u.uri_for(Some(&pq)).unwrap().to_string(), "http://model:8080/base/v2/models/m/infer?x=1");
    let plain = UpstreamUrl::parse("http://127.0.0.1:9").unwrap();
    assert_eq!(plain.uri_for(Some(&pq)).unwrap().to_string(), "http://127.0.0.1:9/v2/models/m/infer?x=1");
    for bad in ["https://x:1", "ftp://x", "127.0.0.1:80", "http://", "http://u:p@x:1", "http://x:1/?q=1"] {
        assert!(UpstreamUrl::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn state_file_round_trips_and_restores_routing_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let file = StateFile::in_dir(dir.path());
    assert_eq!(file.load().unwrap(), None);
    let r = routes(&[("v1", 0), ("v2", 0)], "v1").activate("v2").unwrap();
    let r = r
        .put("v3", VersionChange { url: UpstreamUrl::parse("http://c:3").ok(), weight: Some(5), ..Default::default() })
        .unwrap()
        .0;
    file.save(&r.persisted()).unwrap();
    let saved = file.load().unwrap().unwrap();

    let config = Config::from_toml(
        "[[versions]]\nname = \"v1\"\nurl = \"http://a:1\"\n[[versions]]\nname = \"v2\"\nurl = \"http://new-b:2\"\n",
        "t",
    )
    .unwrap();
    let (restored, notes) = Routes::from_config(&config, Some(saved)).unwrap();
    assert_eq!(&*restored.active().name, "v2");
    assert_eq!(restored.previous(), Some("v1"));
    // Where a version lives comes from the config; who gets traffic from the state.
    assert_eq!(restored.get("v2").unwrap().url.to_string(), "http://new-b:2");
    assert_eq!(restored.traffic_share("v3"), 5);
    assert!(notes.iter().any(|n| n.contains("v3")), "{notes:?}");
}

#[test]
fn state_naming_a_vanished_version_falls_back_to_config() {
    let config = Config::from_toml("[[versions]]\nname = \"v1\"\nurl = \"http://a:1\"\n", "t").unwrap();
    let saved = PersistedRoutes { active: "gone".into(), previous: None, versions: vec![] };
    let (r, notes) = Routes::from_config(&config, Some(saved)).unwrap();
    assert_eq!(&*r.active().name, "v1");
    assert!(notes.iter().any(|n| n.contains("gone")));
}

#[test]
fn corrupt_state_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.json"), b"{not json").unwrap();
    let e = StateFile::in_dir(dir.path()).load().unwrap_err();
    assert!(e.contains("state.json") && e.contains("not a vigil state file"), "{e}");
}
