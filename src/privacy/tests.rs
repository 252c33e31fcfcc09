use super::*;
use crate::codec::{Pointers, Tensor};
use crate::config::RuleConfig;
use crate::monitor::reference::Column;
use crate::monitor::schema::{ColumnSpec, Kind};
use std::time::SystemTime;

const SALT: &[u8] = b"0123456789abcdef-test-salt";

fn rule(feature: &str, action: ActionName) -> RuleConfig {
    RuleConfig { feature: Some(feature.into()), action: Some(action), ..RuleConfig::default() }
}

fn path_rule(path: &str, action: ActionName) -> RuleConfig {
    RuleConfig { path: Some(path.into()), action: Some(action), ..RuleConfig::default() }
}

fn redactor(rules: Vec<RuleConfig>) -> Redactor {
    let c = PrivacyConfig { rules, ..PrivacyConfig::default() };
    c.validate().unwrap();
    Redactor::build(&c, Some(SALT))
}

#[test]
fn hash_is_keyed_stable_and_short() {
    let r = redactor(vec![rule("email", ActionName::Hash)]);
    let a = r.apply_text(&Action::Hash, "ann@example.com");
    let Redacted::Text(h) = &a else { panic!("{a:?}") };
    assert!(is_hash(h), "{h}");
    // Same input, same salt: same output (joins still work); idempotent.
    assert_eq!(r.apply_text(&Action::Hash, "ann@example.com"), a);
    assert_eq!(r.apply_text(&Action::Hash, h), a);
    assert_ne!(r.apply_text(&Action::Hash, "bob@example.com"), a);
    // Another salt: another hash.
    let c = PrivacyConfig { rules: vec![rule("email", ActionName::Hash)], ..PrivacyConfig::default() };
    let other = Redactor::build(&c, Some(b"another salt, also long enough"));
    assert_ne!(other.apply_text(&Action::Hash, "ann@example.com"), a);
    // A number hashes like its text, so 34 and "34" join.
    assert_eq!(r.apply_num(&Action::Hash, 34.0), r.apply_text(&Action::Hash, "34"));
    // The value is HMAC-SHA256(salt, value), first 8 bytes in hex.
    let mac = HmacSha256::new(SALT).mac(b"ann@example.com");
    let hex: String = mac[..8].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(*h, format!("h:{hex}"));
}

#[test]
fn mask_keeps_the_last_characters() {
    let r = Redactor::off();
    let m = Action::Mask { keep_last: 4 };
    assert_eq!(r.apply_text(&m, "4111111111111111"), Redacted::Text("************1111".into()));
    assert_eq!(r.apply_text(&m, "abc"), Redacted::Text("abc".into()));
    assert_eq!(r.apply_text(&m, "é€ßxyz12"), Redacted::Text("****yz12".into()));
    // Masked numbers become strings; masking again changes nothing.
    assert_eq!(r.apply_num(&m, 123456.0), Redacted::Text("**3456".into()));
    assert_eq!(r.apply_text(&m, "**3456"), Redacted::Text("**3456".into()));
    assert_eq!(r.apply_text(&Action::Mask { keep_last: 0 }, "secret"), Redacted::Text("******".into()));
}

#[test]
fn generalize_into_buckets_or_rounded() {
    let r = Redactor::off();
    let b = Action::Buckets(vec![0.0, 18.0, 30.0, 50.0, 65.0]);
    assert_eq!(r.apply_num(&b, 17.9), Redacted::Text("[0,18)".into()));
    assert_eq!(r.apply_num(&b, 18.0), Redacted::Text("[18,30)".into()));
    assert_eq!(r.apply_num(&b, 64.0), Redacted::Text("[50,65)".into()));
    assert_eq!(r.apply_num(&b, 65.0), Redacted::Text(">=65".into()));
    assert_eq!(r.apply_num(&b, -1.0), Redacted::Text("<0".into()));
    assert_eq!(r.apply_num(&b, f64::NAN), Redacted::Missing);
    assert_eq!(r.apply_text(&b, " 42 "), Redacted::Text("[30,50)".into()));
    assert_eq!(r.apply_text(&b, "forty"), Redacted::Missing);
    // Idempotent on its own labels.
    assert_eq!(r.apply_text(&b, "[30,50)"), Redacted::Text("[30,50)".into()));
    let round = Action::Round(10.0);
    assert_eq!(r.apply_num(&round, 34.0), Redacted::Num(30.0));
    assert_eq!(r.apply_num(&round, 35.0), Redacted::Num(40.0));
    assert_eq!(r.apply_num(&Action::Round(0.1), 0.123), Redacted::Num(0.1));
    assert_eq!(r.apply_text(&round, "34"), Redacted::Text("30".into()));
}

#[test]
fn drop_keeps_nothing() {
    let r = Redactor::off();
    assert_eq!(r.apply_text(&Action::Drop, "x"), Redacted::Missing);
    assert_eq!(r.apply_num(&Action::Drop, 3.0), Redacted::Missing);
}

#[test]
fn scrub_text_replaces_in_place() {
    let r = redactor(Vec::new());
    assert_eq!(
        r.scrub_text("contact me at ann@example.com or (555) 123-4567, card 4111 1111 1111 1111"),
        "contact me at [email] or [phone], card [card]"
    );
    // A phone right after a card was part of the card's run of digits: found on the second pass.
    assert_eq!(r.scrub_text("4111111111111111 555 123 4567"), "[card] [phone]");
    assert!(matches!(r.scrub_text("nothing here: 12345, 3.14, 2024-01-15"), Cow::Borrowed(_)));
    let c = PrivacyConfig { detect_action: DetectAction::Hash, ..PrivacyConfig::default() };
    let h = Redactor::build(&c, Some(SALT));
    let once = h.scrub_text("mail ann@example.com now");
    assert_eq!(once, h.scrub_text("mail ann@example.com now"));
    assert_eq!(once, format!("mail {} now", h.hash("ann@example.com")));
    let c =
        PrivacyConfig { detect_action: DetectAction::Drop, detect: vec![Detector::Email], ..PrivacyConfig::default() };
    let d = Redactor::build(&c, None);
    assert_eq!(d.scrub_text("a ann@example.com b +14155552671"), "a  b +14155552671");
    assert_eq!(Redactor::off().scrub_text("ann@example.com"), "ann@example.com");
}

#[test]
fn hash_without_salt_is_a_start_error_naming_the_key() {
    let c = PrivacyConfig {
        salt_env: "VIGIL_TEST_PRIVACY_SALT_UNSET".into(),
        rules: vec![rule("age", ActionName::Mask), rule("email", ActionName::Hash)],
        ..PrivacyConfig::default()
    };
    let e = Redactor::from_config(&c).unwrap_err().to_string();
    assert!(e.contains("privacy.rules[1].action") && e.contains("VIGIL_TEST_PRIVACY_SALT_UNSET"), "{e}");
    // The strict fallback drops instead of hashing.
    assert_eq!(Redactor::from_config_or_strict(&c).column_rule("email"), Some(&Action::Drop));
    let c = PrivacyConfig {
        salt_env: "VIGIL_TEST_PRIVACY_SALT_UNSET".into(),
        detect_action: DetectAction::Hash,
        ..PrivacyConfig::default()
    };
    let e = Redactor::from_config(&c).unwrap_err().to_string();
    assert!(e.contains("privacy.detect_action"), "{e}");
    // A salt file works; a short salt is refused.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("salt");
    std::fs::write(&f, "a-long-enough-secret-salt\n").unwrap();
    let ok = PrivacyConfig { salt_file: Some(f.clone()), ..c.clone() };
    assert!(Redactor::from_config(&ok).is_ok());
    std::fs::write(&f, "short\n").unwrap();
    let e = Redactor::from_config(&ok).unwrap_err().to_string();
    assert!(e.contains("at least 16 bytes") && !e.contains("short"), "{e}");
    // Without any hash, no salt is needed.
    let none = PrivacyConfig { salt_env: "VIGIL_TEST_PRIVACY_SALT_UNSET".into(), ..PrivacyConfig::default() };
    assert!(Redactor::from_config(&none).is_ok());
}

fn schema() -> Schema {
    let f = |n: &str, kind| ColumnSpec { name: n.into(), kind };
    Schema::new(
        vec![
            f("age", Kind::Numeric),
            f("email", Kind::Categorical),
            f("note", Kind::Categorical),
            f("zip", Kind::Categorical),
        ],
        vec![f("score", Kind::Numeric)],
    )
}

fn records() -> Records {
    Records {
        request_id: "r".into(),
        version: "v1".into(),
        time: SystemTime::now(),
        rows: 2,
        features: vec![
            Some(Col::Num(vec![34.0, 71.0])),
            Some(Col::Cat(vec![Some("ann@example.com".into()), None])),
            Some(Col::Cat(vec![Some("call +14155552671".into()), Some("fine".into())])),
            Some(Col::Cat(vec![Some("75001".into()), Some("10115".into())])),
        ],
        predictions: vec![Some(Col::Num(vec![0.2, 0.9]))],
    }
}

#[test]
fn records_get_column_rules_and_detectors() {
    let mut rules = vec![rule("email", ActionName::Hash), rule("zip", ActionName::Drop)];
    rules.push(RuleConfig { buckets: Some(vec![0.0, 18.0, 65.0]), ..rule("age", ActionName::Generalize) });
    let r = redactor(rules);
    let mut rec = records();
    r.records(&mut rec, &schema());
    assert_eq!(rec.features[0], Some(Col::Cat(vec![Some("[18,65)".into()), Some(">=65".into())])));
    assert_eq!(rec.features[1], Some(Col::Cat(vec![Some(r.hash("ann@example.com")), None])));
    assert_eq!(rec.features[2], Some(Col::Cat(vec![Some("call [phone]".into()), Some("fine".into())])));
    assert_eq!(rec.features[3], None);
    assert_eq!(rec.predictions[0], Some(Col::Num(vec![0.2, 0.9])));
    // Twice is the same as once.
    let once = rec.features.clone();
    r.records(&mut rec, &schema());
    assert_eq!(rec.features, once);
}

#[test]
fn reference_tables_get_the_same_treatment() {
    let r = redactor(vec![rule("email", ActionName::Hash), rule("zip", ActionName::Drop)]);
    let mut t = Table {
        rows: 2,
        columns: vec![
            Column { name: "age".into(), data: ColumnData::Num(vec![34.0, 71.0]) },
            Column { name: "email".into(), data: ColumnData::Cat(vec![Some("ann@example.com".into()), None]) },
            Column { name: "note".into(), data: ColumnData::Cat(vec![Some("mail bob@x.org".into()), None]) },
            Column { name: "zip".into(), data: ColumnData::Num(vec![75001.0, 10115.0]) },
        ],
    };
    r.table(&mut t);
    let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["age", "email", "note"]);
    assert_eq!(t.columns[1].data, ColumnData::Cat(vec![Some(r.hash("ann@example.com")), None]));
    assert_eq!(t.columns[2].data, ColumnData::Cat(vec![Some("mail [email]".into()), None]));
    // The live value hashes like the reference value: the profile is over the same hashes.
    let mut rec = records();
    r.records(&mut rec, &schema());
    let Some(Col::Cat(live)) = &rec.features[1] else { panic!() };
    let ColumnData::Cat(reference) = &t.columns[1].data else { panic!() };
    assert_eq!(live[0], reference[0]);
}

#[test]
fn path_rules_reach_the_tensors_they_name() {
    let r = redactor(vec![
        path_rule("/inputs/1/data", ActionName::Hash),
        path_rule("/outputs/0", ActionName::Drop),
        rule("ssn", ActionName::Drop),
    ]);
    let t = |name: &str, values| Tensor { name: Some(name.into()), rows: 2, width: 1, values };
    let mut b = Batch {
        id: None,
        tensors: vec![
            t("age", Values::Num(vec![34.0, 71.0])),
            t("email", Values::Text(vec!["ann@example.com".into(), "bob@example.com".into()])),
            t("ssn", Values::Text(vec!["078-05-1120".into(), "219-09-9999".into()])),
        ],
    };
    r.batch(&mut b, &Codec::V2, false);
    assert_eq!(b.tensors.len(), 2, "the dropped column's tensor is removed");
    assert_eq!(b.tensors[0].values, Values::Num(vec![34.0, 71.0]));
    assert_eq!(b.tensors[1].values, Values::Text(vec![r.hash("ann@example.com"), r.hash("bob@example.com")]));
    let mut resp = Batch { id: None, tensors: vec![t("score", Values::Num(vec![0.1, 0.2]))] };
    r.batch(&mut resp, &Codec::V2, true);
    let Values::Num(v) = &resp.tensors[0].values else { panic!() };
    assert!(v.iter().all(|x| x.is_nan()));
    // The JSON codec: the configured pointer names all its tensors.
    let json = Codec::Json(Pointers { features: "/rows".into(), predictions: "/out".into() });
    assert_eq!(tensors_at(&json, false, "/rows"), Pick::All);
    assert_eq!(tensors_at(&json, true, "/rows"), Pick::None);
    assert_eq!(tensors_at(&Codec::V2, false, "/inputs/x"), Pick::None);
    assert_eq!(tensors_at(&Codec::V1, false, "/instances"), Pick::All);
}

#[test]
fn parsed_bodies_get_path_rules_and_detectors() {
    let r = redactor(vec![path_rule("/parameters/customer", ActionName::Hash)]);
    let mut v = serde_json::json!({
        "parameters": {"customer": "C-1001", "contact": "ann@example.com", "region": "north"},
        "inputs": [{"name": "x", "data": [1, 2]}]
    });
    r.json(&mut v);
    assert_eq!(v["parameters"]["customer"], r.hash("C-1001"));
    assert_eq!(v["parameters"]["contact"], "[email]");
    assert_eq!(v["parameters"]["region"], "north");
    assert_eq!(v["inputs"][0]["data"], serde_json::json!([1, 2]));
}

#[test]
fn redaction_cost_per_record() {
    // A unit-level figure (no timing assertion): a 20-feature record with two text columns, one
    // hashed and one scanned by the detectors.
    let r = redactor(vec![rule("email", ActionName::Hash)]);
    let s = schema();
    let n = 20_000;
    let started = std::time::Instant::now();
    for _ in 0..n / 2 {
        let mut rec = records();
        r.records(&mut rec, &s);
        std::hint::black_box(&rec);
    }
    let per = started.elapsed() / n as u32;
    let build = if cfg!(debug_assertions) { "debug" } else { "release" };
    eprintln!(
        "privacy: {per:?} per record (records() on 2-row captures: one HMAC, detectors over two texts, {build} build)"
    );
}

#[test]
fn a_reference_saved_before_a_rule_is_rewritten_redacted_on_load() {
    use crate::monitor::profile::Source;
    use crate::store::reference::ReferenceStore;
    let dir = tempfile::tempdir().unwrap();
    let store = ReferenceStore::in_dir(dir.path());
    let rows = 40;
    let table = Table {
        rows,
        columns: vec![
            Column { name: "age".into(), data: ColumnData::Num((0..rows).map(|i| 20.0 + i as f64).collect()) },
            Column {
                name: "email".into(),
                data: ColumnData::Cat((0..rows).map(|i| Some(format!("u{i}@example.com"))).collect()),
            },
        ],
    };
    store.stage(&table, Source::Upload { actor: "t".into() }).unwrap().commit().unwrap();
    let config = crate::config::Config::default();
    let r = redactor(vec![rule("email", ActionName::Hash)]);
    let profile = crate::monitor::initial_profile(&config, &store, &r).unwrap().unwrap();
    assert_eq!(profile.rows, rows);
    let saved = std::fs::read_to_string(store.path()).unwrap();
    assert!(!saved.contains("@example.com"), "{saved}");
    assert!(saved.contains(&r.hash("u7@example.com")), "{saved}");
    // Loading it again changes nothing (idempotent): the hashes stay the same hashes.
    crate::monitor::initial_profile(&config, &store, &r).unwrap().unwrap();
    assert_eq!(std::fs::read_to_string(store.path()).unwrap(), saved);
}
