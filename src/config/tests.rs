use super::*;

const MINIMAL: &str = r#"
[[versions]]
name = "v1"
url = "http://127.0.0.1:8081"
"#;

fn err(text: &str) -> String {
    match Config::from_toml(text, "t.toml").and_then(|c| c.validate().map(|_| c)) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn minimal_file_gets_documented_defaults() {
    let c = Config::from_toml(MINIMAL, "t.toml").unwrap();
    c.validate().unwrap();
    assert_eq!(c.proxy.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9901");
    assert_eq!(c.proxy.response_timeout, Duration::from_secs(30));
    assert_eq!(c.proxy.body_idle_timeout, Duration::from_secs(60));
    assert_eq!(c.capture.max_body_bytes, 256 * 1024);
    assert_eq!(c.active_name(), "v1");
}

#[test]
fn shipped_example_config_is_valid() {
    let text = include_str!("../../config/vigil.toml");
    let c = Config::from_toml(text, "config/vigil.toml").unwrap();
    c.validate().unwrap();
    // The example documents every default: parsing it must give the same as no file at all.
    let d = Config::default();
    assert_eq!(c.proxy.max_in_flight, d.proxy.max_in_flight);
    assert_eq!(c.proxy.drain_timeout, d.proxy.drain_timeout);
    assert_eq!(c.capture.queue_capacity, d.capture.queue_capacity);
    assert_eq!(c.readiness.probe_path, d.readiness.probe_path);
    assert_eq!(c.state.dir, d.state.dir);
    assert_eq!(c.reference.max_rows, d.reference.max_rows);
    assert_eq!(c.reference.learn, d.reference.learn);
    assert_eq!(c.reference.max_upload_bytes, d.reference.max_upload_bytes);
    assert_eq!(c.drift.window, d.drift.window);
    assert_eq!(c.drift.evaluate_every, d.drift.evaluate_every);
    assert_eq!(c.drift.min_records, d.drift.min_records);
    assert_eq!(c.drift.exact_limit, d.drift.exact_limit);
    assert_eq!(c.drift.grid_bins, d.drift.grid_bins);
    assert_eq!(c.drift.sub_windows, d.drift.sub_windows);
    assert_eq!(c.drift.psi_bins, d.drift.psi_bins);
    assert_eq!(c.drift.alpha, d.drift.alpha);
    assert_eq!(c.drift.correction, d.drift.correction);
    assert_eq!(c.drift.drift_share, d.drift.drift_share);
    assert_eq!(c.drift.pca_variance, d.drift.pca_variance);
    assert_eq!(c.prediction_log.enabled, d.prediction_log.enabled);
    assert_eq!(c.prediction_log.flush_interval, d.prediction_log.flush_interval);
    assert_eq!(c.prediction_log.flush_rows, d.prediction_log.flush_rows);
    assert_eq!(c.prediction_log.queue_rows, d.prediction_log.queue_rows);
    assert_eq!(c.prediction_log.max_age, d.prediction_log.max_age);
    assert_eq!(c.prediction_log.max_rows, d.prediction_log.max_rows);
    assert_eq!(c.feedback.max_body_bytes, d.feedback.max_body_bytes);
    assert_eq!(c.performance.enabled, d.performance.enabled);
    assert_eq!(c.capture.client_header, d.capture.client_header);
    assert_eq!(c.report, d.report);
    let (s, t) = (&c.shadow, &d.shadow);
    assert_eq!((s.enabled, s.timeout, s.queue, s.max_batch_rows), (t.enabled, t.timeout, t.queue, t.max_batch_rows));
    assert_eq!(
        (s.pause.p99_latency, s.pause.error_rate, s.pause.window, s.pause.min_requests),
        (t.pause.p99_latency, t.pause.error_rate, t.pause.window, t.pause.min_requests)
    );
    assert_eq!((s.mirror.noise_fraction, s.mirror.budget), (t.mirror.noise_fraction, t.mirror.budget));
    assert!(s.mirror.candidates.is_empty());
    assert_eq!(
        (s.sensitivity.enabled, s.sensitivity.budget, s.sensitivity.every),
        (t.sensitivity.enabled, t.sensitivity.budget, t.sensitivity.every)
    );
    assert_eq!(
        (&s.sensitivity.steps, s.sensitivity.max_categories),
        (&t.sensitivity.steps, t.sensitivity.max_categories)
    );
    assert_eq!(
        (s.stress.enabled, s.stress.budget, s.stress.every, s.stress.batch_rows),
        (t.stress.enabled, t.stress.budget, t.stress.every, t.stress.batch_rows)
    );
    let (a, b) = (&s.adversarial, &t.adversarial);
    assert_eq!(
        (a.enabled, a.budget, a.every, a.norm, a.attack, a.epsilon, a.queries),
        (b.enabled, b.budget, b.every, b.norm, b.attack, b.epsilon, b.queries)
    );
    let (a, b) = (&s.explain, &t.explain);
    assert_eq!(
        (a.enabled, a.budget, a.every, a.method, a.background, a.nsamples, a.window),
        (b.enabled, b.budget, b.every, b.method, b.background, b.nsamples, b.window)
    );
    assert_eq!(c.performance.task, d.performance.task);
    assert_eq!(c.performance.classes, d.performance.classes);
    assert_eq!(c.performance.positive_class, d.performance.positive_class);
    assert_eq!(c.performance.threshold, d.performance.threshold);
    assert_eq!(c.performance.windows, d.performance.windows);
    assert_eq!(c.performance.max_records, d.performance.max_records);
    assert_eq!(c.performance.calibration_bins, d.performance.calibration_bins);
    assert_eq!(c.performance.min_records, d.performance.min_records);
    assert_eq!(c.performance.margin, d.performance.margin);
    assert_eq!(c.resources, d.resources);
    let (a, b) = (&c.alerts, &d.alerts);
    assert_eq!((a.enabled, a.evaluate_every, a.builtin_rules), (b.enabled, b.evaluate_every, b.builtin_rules));
    assert_eq!((&a.external_url, a.export_since), (&b.external_url, b.export_since));
    assert_eq!((&a.rules, &a.receivers), (&b.rules, &b.receivers));
    assert_eq!(d.resources, ResourcesConfig::default());
    assert_eq!(c.privacy, d.privacy);
    assert_eq!(d.privacy.salt_env, "VIGIL_PRIVACY_SALT");
    assert_eq!(d.privacy.detect, [Detector::Email, Detector::Phone, Detector::Card]);
    assert_eq!(d.privacy.detect_action, DetectAction::Mask);
}

#[test]
fn privacy_keys_are_checked() {
    let rule = |body: &str| format!("{MINIMAL}[[privacy.rules]]\n{body}");
    let c = Config::from_toml(&rule("feature = \"email\"\naction = \"hash\""), "t.toml").unwrap();
    c.validate().unwrap();
    assert_eq!(c.privacy.rules[0].action, Some(ActionName::Hash));
    let e = err(&rule("action = \"hash\""));
    assert!(e.contains("privacy.rules[0].feature") && e.contains("exactly one of feature"), "{e}");
    let e = err(&rule("feature = \"a\"\npath = \"/x\"\naction = \"drop\""));
    assert!(e.contains("exactly one of feature"), "{e}");
    let e = err(&rule("path = \"inputs/0\"\naction = \"drop\""));
    assert!(e.contains("privacy.rules[0].path") && e.contains("JSON pointer"), "{e}");
    let e = err(&rule("feature = \"a\"\naction = \"erase\""));
    assert!(e.contains("privacy.rules[0].action"), "{e}");
    let e = err(&rule("feature = \"a\""));
    assert!(e.contains("privacy.rules[0].action") && e.contains("drop, hash, mask, generalize"), "{e}");
    let e = err(&rule("feature = \"a\"\naction = \"hash\"\nkeep_last = 2"));
    assert!(e.contains("privacy.rules[0].keep_last") && e.contains("mask"), "{e}");
    let e = err(&rule("feature = \"a\"\naction = \"generalize\""));
    assert!(e.contains("privacy.rules[0].buckets") && e.contains("round"), "{e}");
    let e = err(&rule("feature = \"a\"\naction = \"generalize\"\nbuckets = [30, 18]"));
    assert!(e.contains("privacy.rules[0].buckets") && e.contains("ascending"), "{e}");
    let e = err(&rule("feature = \"a\"\naction = \"generalize\"\nround = 0"));
    assert!(e.contains("privacy.rules[0].round") && e.contains("positive"), "{e}");
    let e = err(&format!(
        "{}\n[[privacy.rules]]\nfeature = \"a\"\naction = \"drop\"",
        rule("feature = \"a\"\naction = \"hash\"")
    ));
    assert!(e.contains("privacy.rules[1].feature") && e.contains("earlier rule"), "{e}");
    let e = err(&format!("{MINIMAL}[privacy]\ndetect = [\"ssn\"]"));
    assert!(e.contains("privacy.detect"), "{e}");
    let e = err(&format!("{MINIMAL}[privacy]\nsalt_env = \"\""));
    assert!(e.contains("privacy.salt_env"), "{e}");
    // Against the schema: a dropped column cannot be a listed feature; text cannot be numeric.
    let e = err(&format!("{}\n[schema]\nfeatures = [\"a\", \"b\"]", rule("feature = \"a\"\naction = \"drop\"")));
    assert!(e.contains("privacy.rules[0].feature") && e.contains("schema.features"), "{e}");
    let e = err(&format!("{}\n[schema]\nnumeric = [\"a\"]", rule("feature = \"a\"\naction = \"mask\"")));
    assert!(e.contains("privacy.rules[0].feature") && e.contains("schema.numeric"), "{e}");
    let ok = format!("{}\nround = 5\n[schema]\nnumeric = [\"a\"]", rule("feature = \"a\"\naction = \"generalize\""));
    Config::from_toml(&ok, "t.toml").unwrap().validate().unwrap();
}

#[test]
fn ground_truth_keys_are_checked() {
    let e = err(&format!("{MINIMAL}[performance]\nthreshold = 1.5"));
    assert!(e.contains("performance.threshold") && e.contains("(0, 1)"), "{e}");
    let e = err(&format!("{MINIMAL}[performance.baseline]\naccuracyy = 0.9"));
    assert!(e.contains("performance.baseline.accuracyy") && e.contains("roc_auc"), "{e}");
    let e = err(&format!("{MINIMAL}[[performance.segments]]\nname = \"g\""));
    assert!(e.contains("performance.segments[0].feature") && e.contains("exactly one"), "{e}");
    let e = err(&format!("{MINIMAL}[[performance.segments]]\nname = \"g\"\nfeature = \"age\"\nedges = [50, 30]"));
    assert!(e.contains("performance.segments[0].edges"), "{e}");
    let e = err(&format!("{MINIMAL}[[performance.segments]]\nname = \"g\"\npointer = \"region\""));
    assert!(e.contains("performance.segments[0].pointer"), "{e}");
    let e = err(&format!("{MINIMAL}[prediction_log]\nflush_interval = \"0s\""));
    assert!(e.contains("prediction_log.flush_interval"), "{e}");
    let e = err(&format!("{MINIMAL}[performance]\nwindows = [\"soon\"]"));
    assert!(e.contains("performance.windows"), "{e}");
}

#[test]
fn resources_keys_are_checked() {
    let c = Config::from_toml(&format!("{MINIMAL}[resources]\nmodel_pid_file = \"/run/m.pid\""), "t.toml").unwrap();
    c.validate().unwrap();
    assert_eq!(c.resources.model_pid_file.as_deref(), Some(Path::new("/run/m.pid")));
    let e = err(&format!("{MINIMAL}[resources]\nmodel_pid = 4\nmodel_process_name = \"triton\""));
    assert!(e.contains("resources.model_process_name") && e.contains("one way to find the model process"), "{e}");
    let e = err(&format!("{MINIMAL}[resources]\nmodel_pid = 0"));
    assert!(e.contains("resources.model_pid") && e.contains("positive"), "{e}");
    let e = err(&format!("{MINIMAL}[resources]\nmodel_pid = -3"));
    assert!(e.contains("resources.model_pid"), "{e}");
    let e = err(&format!("{MINIMAL}[resources]\nmodel_process_name = \" \""));
    assert!(e.contains("resources.model_process_name") && e.contains("non-empty"), "{e}");
    let e = err(&format!("{MINIMAL}[resources]\nmodel_cgroup = \"/nonexistent/cgroup\""));
    assert!(e.contains("resources.model_cgroup") && e.contains("/nonexistent/cgroup"), "{e}");
    let e = err(&format!("{MINIMAL}[resources]\nmodel_cgroups = \"/sys/fs/cgroup\""));
    assert!(e.contains("resources.model_cgroups"), "{e}");
}

#[test]
fn drift_keys_are_checked() {
    assert!(err(&format!("{MINIMAL}[drift]\nwindow = \"soon\"")).contains("drift.window"));
    let e = err(&format!("{MINIMAL}[drift]\nwindow = 0"));
    assert!(e.contains("drift.window") && e.contains("record count"), "{e}");
    let e = err(&format!("{MINIMAL}[drift]\nalpha = 1.5"));
    assert!(e.contains("drift.alpha") && e.contains("(0, 1]"), "{e}");
    let e = err(&format!("{MINIMAL}[drift]\ncorrection = \"holm\""));
    assert!(e.contains("drift.correction") && e.contains("benjamini_hochberg"), "{e}");
    let e = err(&format!("{MINIMAL}[drift.columns.age]\nmethod = \"t_test\""));
    assert!(e.contains("drift.columns.age.method"), "{e}");
    let e = err(&format!("{MINIMAL}[reference]\nfile = \"ref.xlsx\""));
    assert!(e.contains("reference.file") && e.contains(".csv"), "{e}");
    let e = err(&format!("{MINIMAL}[reference]\nfile = \"/nonexistent/ref.csv\""));
    assert!(e.contains("reference.file") && e.contains("existing file"), "{e}");
    let e =
        err(&format!("{MINIMAL}[[codec.routes]]\npath_prefix = \"/score\"\nprotocol = \"json\"\nfeatures = \"/rows\""));
    assert!(e.contains("codec.routes[0].predictions") && e.contains("JSON pointer"), "{e}");
    let e =
        err(&format!("{MINIMAL}[[codec.routes]]\npath_prefix = \"/score\"\nprotocol = \"v2\"\nfeatures = \"/rows\""));
    assert!(e.contains("codec.routes[0].features"), "{e}");
}

#[test]
fn drift_window_flag_takes_counts_and_durations() {
    let mut c = Config::from_toml(MINIMAL, "t.toml").unwrap();
    c.apply(&Overrides { drift_window: Some("5m".into()), ..Default::default() }).unwrap();
    assert_eq!(c.drift.window, WindowSpec::Time(Duration::from_secs(300)));
    c.apply(&Overrides { drift_window: Some("250".into()), ..Default::default() }).unwrap();
    assert_eq!(c.drift.window, WindowSpec::Count(250));
    let e = c.apply(&Overrides { drift_window: Some("-1".into()), ..Default::default() }).unwrap_err().to_string();
    assert!(e.contains("--drift-window"), "{e}");
}

#[test]
fn wrong_type_names_key_value_expectation_and_line() {
    let e = err("[proxy]\nmax_in_flight = \"lots\"\n");
    assert!(e.contains("`proxy.max_in_flight`"), "{e}");
    assert!(e.contains("\"lots\""), "{e}");
    assert!(e.contains("expected a non-negative integer"), "{e}");
    assert!(e.contains("t.toml:2"), "{e}");
}

#[test]
fn unknown_key_is_named() {
    let e = err(&format!("{MINIMAL}\n[proxy]\nlisten_addr = \"x\"\n"));
    assert!(e.contains("`proxy.listen_addr`"), "{e}");
    assert!(e.contains("a known key, one of `listen`"), "{e}");
}

#[test]
fn bad_duration_is_explained() {
    let e = err(&format!("[proxy]\nresponse_timeout = \"soon\"\n{MINIMAL}"));
    assert!(e.contains("`proxy.response_timeout`"), "{e}");
    assert!(e.contains("\"soon\""), "{e}");
    assert!(e.contains("a duration such as"), "{e}");
    let e = err(&format!("[proxy]\nbody_idle_timeout = 5\n{MINIMAL}"));
    assert!(e.contains("`proxy.body_idle_timeout`"), "{e}");
    let off = Config::from_toml(&format!("[proxy]\nbody_idle_timeout = \"0s\"\n{MINIMAL}"), "t.toml").unwrap();
    off.validate().unwrap();
    assert_eq!(off.proxy.body_idle_timeout, Duration::ZERO, "0s turns it off");
}

#[test]
fn bad_url_weight_and_active_are_named() {
    let e = err("[[versions]]\nname = \"v1\"\nurl = \"ftp://x\"\n");
    assert!(e.contains("`versions[0].url`") && e.contains("ftp://x") && e.contains("http://"), "{e}");
    let e = err("[[versions]]\nname = \"v1\"\nurl = \"http://a:1\"\n[[versions]]\nname = \"v2\"\nurl = \"http://b:1\"\nweight = 150\n");
    assert!(e.contains("`versions[1].weight`") && e.contains("150") && e.contains("0 to 100"), "{e}");
    let e = err(&format!("[routing]\nactive = \"v9\"\n{MINIMAL}"));
    assert!(e.contains("`routing.active`") && e.contains("v9"), "{e}");
    let e = err("[[versions]]\nname = \"v 1\"\nurl = \"http://a:1\"\n");
    assert!(e.contains("`versions[0].name`"), "{e}");
}

#[test]
fn duplicate_names_and_overfull_canaries_are_refused() {
    let e =
        err("[[versions]]\nname = \"v1\"\nurl = \"http://a:1\"\n[[versions]]\nname = \"v1\"\nurl = \"http://b:1\"\n");
    assert!(e.contains("`versions[1].name`"), "{e}");
    let e = err(
        "[[versions]]\nname = \"a\"\nurl = \"http://a:1\"\n[[versions]]\nname = \"b\"\nurl = \"http://b:1\"\nweight = 60\n\
         [[versions]]\nname = \"c\"\nurl = \"http://c:1\"\nweight = 60\n",
    );
    assert!(e.contains("120") && e.contains("at most 100"), "{e}");
}

#[test]
fn no_versions_is_explained() {
    let e = err("");
    assert!(e.contains("`versions`") && e.contains("--upstream"), "{e}");
}

#[test]
fn syntax_errors_give_line_and_column() {
    let e = err("[proxy\nlisten = 1\n");
    assert!(e.contains("t.toml") && e.contains("line 1"), "{e}");
}

#[test]
fn cli_upstreams_replace_file_versions_and_first_is_active() {
    let mut c = Config::from_toml(MINIMAL, "t.toml").unwrap();
    let o = Overrides {
        upstreams: vec!["a=http://127.0.0.1:1".into(), "b=http://127.0.0.1:2".into()],
        listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Default::default()
    };
    c.apply(&o).unwrap();
    c.validate().unwrap();
    assert_eq!(c.versions.len(), 2);
    assert_eq!(c.active_name(), "a");
    assert_eq!(c.proxy.listen.port(), 0);
    let o =
        Overrides { upstreams: vec!["a=http://127.0.0.1:1".into()], active: Some("zz".into()), ..Default::default() };
    let mut c = Config::default();
    c.apply(&o).unwrap();
    assert!(c.validate().unwrap_err().to_string().contains("`routing.active`"));
    let o = Overrides { upstreams: vec!["nourl".into()], ..Default::default() };
    let e = Config::default().apply(&o).unwrap_err().to_string();
    assert!(e.contains("`--upstream`") && e.contains("NAME=URL"), "{e}");
}

#[test]
fn bad_shadow_settings_are_named() {
    let e = err(&format!("{MINIMAL}\n[shadow.mirror.candidates]\nv2 = 1.5\n"));
    assert!(e.contains("`shadow.mirror.candidates.v2`") && e.contains("1.5") && e.contains("from 0 to 1"), "{e}");
    let e =
        err(&format!("{MINIMAL}\n[shadow.explain]\nbudget = {{ share = -1.0, burst = 10.0, max_concurrency = 1 }}\n"));
    assert!(e.contains("`shadow.explain.budget.share`") && e.contains("-1"), "{e}");
    let e = err(&format!("{MINIMAL}\n[shadow.adversarial]\nnorm = \"l3\"\n"));
    assert!(e.contains("`shadow.adversarial.norm`") && e.contains("l3"), "{e}");
    let e = err(&format!("{MINIMAL}\n[shadow.pause]\np99_latency = \"0s\"\n"));
    assert!(e.contains("`shadow.pause.p99_latency`"), "{e}");
    let e = err(&format!("{MINIMAL}\n[shadow.sensitivity]\nsteps = []\n"));
    assert!(e.contains("`shadow.sensitivity.steps`"), "{e}");
    let mut c = Config::from_toml(MINIMAL, "test").unwrap();
    let o = Overrides { mirrors: vec!["v2".into()], ..Overrides::default() };
    let e = c.apply(&o).unwrap_err().to_string();
    assert!(e.contains("`--mirror`") && e.contains("NAME=FRACTION"), "{e}");
    let o = Overrides { mirrors: vec!["v2=0.25".into()], ..Overrides::default() };
    c.apply(&o).unwrap();
    assert_eq!(c.shadow.mirror.candidates.get("v2"), Some(&0.25));
}

#[test]
fn alerts_keys_are_checked() {
    let bad = |extra: &str| {
        let c = Config::from_toml(&format!("{MINIMAL}{extra}"), "t.toml").unwrap();
        c.validate().unwrap_err().to_string()
    };
    let rule = "[[alerts.rules]]\nalert = \"A\"\nfigure = \"error_ratio\"\n";
    assert!(bad(rule).contains("alerts.rules[0].above"), "no threshold");
    assert!(bad(&format!("{rule}above = 1\nbelow = 0\n")).contains("exactly one finite threshold"));
    assert!(bad(&format!("{rule}above = 0.1\nclear = 0.2\n")).contains("alerts.rules[0].clear"));
    assert!(bad(&format!("{rule}above = 0.1\nwindow = \"20s\"\n")).contains("alerts.rules[0].window"));
    assert!(bad(&format!("{rule}above = 0.1\nreceivers = [\"x\"]\n")).contains("alerts.rules[0].receivers"));
    assert!(bad(&format!("{rule}above = 1\n{rule}above = 2\n")).contains("alerts.rules[1].alert"));
    assert!(bad("[[alerts.receivers]]\nname = \"r\"\n").contains("exactly one of webhook"));
    assert!(bad("[[alerts.receivers]]\nname = \"r\"\nwebhook = \"ftp://x\"\n").contains("alerts.receivers[0].webhook"));
    assert!(bad("[alerts]\nevaluate_every = \"10ms\"\n").contains("alerts.evaluate_every"));
    let ok = Config::from_toml(&format!("{MINIMAL}{rule}above = 0.1\n"), "t.toml").unwrap();
    ok.validate().unwrap();
    let names: Vec<String> = ok.alerts.effective_rules().into_iter().map(|r| r.alert).collect();
    assert_eq!(names.len(), crate::config::alerts::builtin_rules().len() + 1);
}

#[test]
fn report_settings_are_checked_and_named() {
    let c = Config::from_toml(
        &format!(
            "{MINIMAL}\n[report]\nevery = \"24h\"\nformats = [\"md\", \"json\"]\nkeep = 7\nwebhook = \"http://127.0.0.1:9000/r\"\n"
        ),
        "test",
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!((c.report.every, c.report.keep), (Duration::from_secs(86_400), 7));
    assert_eq!(c.report.formats, ["md", "json"]);
    for (toml, needle) in [
        ("formats = [\"pdf\"]", "`report.formats[0]`"),
        ("formats = []", "`report.formats`"),
        ("formats = [\"json\", \"json\"]", "not listed before"),
        ("keep = 0", "`report.keep`"),
        ("every = \"10ms\"", "`report.every`"),
        ("webhook = \"https://example.com/r\"", "no TLS client"),
        ("webhook = \"not a url\"", "`report.webhook`"),
        ("webhook = \"ftp://example.com/r\"", "http://"),
        ("dir = \"\"", "`report.dir`"),
    ] {
        let e = err(&format!("{MINIMAL}\n[report]\n{toml}\n"));
        assert!(e.contains(needle), "{toml}: {e}");
    }
}
