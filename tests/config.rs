//! Configuration: bad configs exit 2 with a message naming the key, the value and what was
//! expected, for `run` and `check-config` alike; `--upstream` flags work without a file.

mod support;

use std::path::Path;
use support::*;

const V1: &str = "[[versions]]\nname = \"v1\"\nurl = \"http://127.0.0.1:9\"\n";

/// (what, TOML, words stderr must contain: key, value, expectation). `a|b`: either `a` or `b`.
fn bad_configs() -> Vec<(&'static str, String, Vec<&'static str>)> {
    vec![
        ("unknown key", format!("[proxy]\nlisten_port = 80\n\n{V1}"), vec!["proxy.listen_port", "one of", "`listen`"]),
        ("unknown section", format!("[bogus]\nx = 1\n\n{V1}"), vec!["`bogus`", "one of", "`proxy`"]),
        (
            "wrong type",
            format!("[proxy]\nmax_in_flight = \"many\"\n\n{V1}"),
            vec!["proxy.max_in_flight", "\"many\"", "integer|usize"],
        ),
        (
            "wrong type (bool)",
            format!("[capture]\nenabled = \"yes\"\n\n{V1}"),
            vec!["capture.enabled", "\"yes\"", "true or false|boolean"],
        ),
        (
            "bad URL",
            "[[versions]]\nname = \"v1\"\nurl = \"ftp://example.com\"\n".into(),
            vec!["versions[0].url", "ftp://example.com", "http://"],
        ),
        (
            "URL without host",
            "[[versions]]\nname = \"v1\"\nurl = \"not a url\"\n".into(),
            vec!["versions[0].url", "not a url", "http://"],
        ),
        (
            "https URL",
            "[[versions]]\nname = \"v1\"\nurl = \"https://model:443\"\n".into(),
            vec!["versions[0].url", "https://model:443", "http://"],
        ),
        (
            "weight 150",
            format!("{V1}\n[[versions]]\nname = \"v2\"\nurl = \"http://127.0.0.1:10\"\nweight = 150\n"),
            vec!["versions[1].weight", "150", "0 to 100"],
        ),
        (
            "canary weights over 100",
            format!(
                "{V1}\n[[versions]]\nname = \"v2\"\nurl = \"http://127.0.0.1:10\"\nweight = 60\n\n\
                 [[versions]]\nname = \"v3\"\nurl = \"http://127.0.0.1:11\"\nweight = 50\n"
            ),
            vec!["versions[].weight", "110", "at most 100"],
        ),
        (
            "active names a missing version",
            format!("[routing]\nactive = \"v9\"\n\n{V1}"),
            vec!["routing.active", "v9", "one of the [[versions]]"],
        ),
        (
            "bad duration",
            format!("[proxy]\nresponse_timeout = \"fast\"\n\n{V1}"),
            vec!["proxy.response_timeout", "fast", "a duration such as"],
        ),
        (
            "duration as a number",
            format!("[proxy]\ndrain_timeout = 30\n\n{V1}"),
            vec!["proxy.drain_timeout", "30", "a duration such as"],
        ),
        (
            "zero duration",
            format!("[proxy]\nresponse_timeout = \"0s\"\n\n{V1}"),
            vec!["proxy.response_timeout", "0s", "positive duration"],
        ),
        ("no versions", "[proxy]\nmax_in_flight = 10\n".into(), vec!["versions", "[]", "at least one"]),
        ("empty file", String::new(), vec!["versions", "at least one"]),
        (
            "duplicate version name",
            format!("{V1}\n[[versions]]\nname = \"v1\"\nurl = \"http://127.0.0.1:10\"\n"),
            vec!["versions[1].name", "v1", "not used by an earlier version"],
        ),
        (
            "bad version name",
            "[[versions]]\nname = \"my model\"\nurl = \"http://127.0.0.1:9\"\n".into(),
            vec!["versions[0].name", "my model", "1 to 64 characters"],
        ),
        (
            "bad protocol",
            "[[versions]]\nname = \"v1\"\nurl = \"http://127.0.0.1:9\"\nprotocol = \"h3\"\n".into(),
            vec!["versions[0].protocol", "h3", "`http1`"],
        ),
        ("version without url", "[[versions]]\nname = \"v1\"\n".into(), vec!["versions[0]", "url"]),
        (
            "zero max_in_flight",
            format!("[proxy]\nmax_in_flight = 0\n\n{V1}"),
            vec!["proxy.max_in_flight", "0", "positive"],
        ),
        (
            "probe path without slash",
            format!("[readiness]\nprobe_path = \"health\"\n\n{V1}"),
            vec!["readiness.probe_path", "health", "starting with /"],
        ),
        (
            "bad listen address",
            format!("[proxy]\nlisten = \"localhost\"\n\n{V1}"),
            vec!["proxy.listen", "localhost", "socket address"],
        ),
        ("bad log format", format!("[log]\nformat = \"xml\"\n\n{V1}"), vec!["log.format", "xml", "`json`"]),
        ("TOML syntax", format!("[proxy\n{V1}"), vec!["line 1"]),
    ]
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

#[track_caller]
fn assert_config_error(out: &std::process::Output, needles: &[&str], what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: exit {:?}, stderr:\n{stderr}", out.status);
    for n in needles {
        assert!(n.split('|').any(|alt| stderr.contains(alt)), "{what}: stderr does not mention {n:?}:\n{stderr}");
    }
}

#[test]
fn bad_configs_exit_2_naming_key_value_and_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    for (i, (what, toml, needles)) in bad_configs().into_iter().enumerate() {
        let file = write(dir.path(), &format!("bad{i}.toml"), &toml);
        let out = run_to_exit(&["check-config", &file], &[]);
        assert_config_error(&out, &needles, &format!("check-config: {what}"));
        let out = run_to_exit(
            &[
                "run",
                "--config",
                &file,
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--state-dir",
                state,
            ],
            &[],
        );
        assert_config_error(&out, &needles, &format!("run: {what}"));
    }
    assert!(!Path::new(state).exists(), "a refused config created the state dir");
}

#[test]
fn check_config_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let token = write(dir.path(), "token", "t\n");
    let toml = format!(
        "[proxy]\nlisten = \"127.0.0.1:18080\"\nresponse_timeout = \"1500ms\"\nmax_in_flight = 100\n\n\
         [admin]\nlisten = \"127.0.0.1:19901\"\ntoken_file = \"{token}\"\n\n\
         [capture]\nenabled = false\n\n[state]\ndir = \"/tmp/vigil-check\"\n\n\
         [readiness]\nprobe_path = \"/ready\"\nprobe_interval = \"250ms\"\n\n\
         [runtime]\nworker_threads = 2\n\n[log]\nformat = \"json\"\nlevel = \"debug\"\n\n\
         [routing]\nactive = \"v2\"\n\n\
         [[versions]]\nname = \"v1\"\nurl = \"http://127.0.0.1:8081\"\nweight = 10\n\n\
         [[versions]]\nname = \"v2\"\nurl = \"http://model:8080/prefix\"\nprotocol = \"http2\"\n"
    );
    let file = write(dir.path(), "good.toml", &toml);
    let out = run_to_exit(&["check-config", &file], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    for n in ["ok", "127.0.0.1:18080", "127.0.0.1:19901", "2 version(s)", "\"v2\"", "/tmp/vigil-check"] {
        assert!(stdout.contains(n), "check-config output lacks {n:?}: {stdout}");
    }
}

#[test]
fn check_config_refuses_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let out = run_to_exit(&["check-config", missing.to_str().unwrap()], &[]);
    assert_config_error(&out, &["cannot read", "nope.toml"], "missing config file");

    let toml = format!("[admin]\ntoken_file = \"{}/no-token\"\n\n{V1}", dir.path().display());
    let file = write(dir.path(), "c.toml", &toml);
    let out = run_to_exit(&["check-config", &file], &[]);
    assert_config_error(&out, &["no-token"], "missing token file");

    let empty_token = write(dir.path(), "empty-token", "\n");
    let toml = format!("[admin]\ntoken_file = \"{empty_token}\"\n\n{V1}");
    let file = write(dir.path(), "c2.toml", &toml);
    let out = run_to_exit(&["check-config", &file], &[]);
    assert_config_error(&out, &["admin.token_file", "empty-token", "non-empty token"], "empty token file");
}

#[test]
fn bad_command_line_values_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--state-dir", state];
        args.extend_from_slice(extra);
        run_to_exit(&args, &[])
    };
    assert_config_error(&run(&[]), &["versions", "at least one", "--upstream"], "no versions at all");
    assert_config_error(&run(&["--upstream", "novalue"]), &["--upstream", "novalue", "NAME=URL"], "no =");
    assert_config_error(&run(&["--upstream", "=http://x"]), &["--upstream", "NAME=URL"], "no name");
    assert_config_error(
        &run(&["--upstream", "v1=ftp://x"]),
        &["versions[0].url", "ftp://x", "http://"],
        "bad upstream URL",
    );
    assert_config_error(
        &run(&["--upstream", "v1=http://127.0.0.1:9", "--active", "v9"]),
        &["routing.active", "v9"],
        "--active naming a missing version",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_flags_work_without_a_file() {
    let (u1, u2) = (Upstream::start("u1").await, Upstream::start("u2").await);
    let vigil =
        Vigil::builder().upstream("v1", &u1.url()).upstream("v2", &u2.url()).args(["--active", "v2"]).start().await;
    let view = vigil.versions().await;
    assert_eq!(view["active"], "v2");
    let names: Vec<&str> = view["versions"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["v1", "v2"]);
    assert_eq!(vigil.which(&h1_client()).await, "u2");
    assert!(vigil.state_dir.is_dir(), "the state dir was not created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_flags_replace_the_files_versions() {
    let (u1, u2) = (Upstream::start("u1").await, Upstream::start("u2").await);
    let config = format!("[routing]\nactive = \"file-v\"\n\n[[versions]]\nname = \"file-v\"\nurl = \"{}\"\n", u1.url());
    let vigil = Vigil::builder().config(&config).upstream("flag-v", &u2.url()).start().await;
    let view = vigil.versions().await;
    assert_eq!(view["active"], "flag-v", "{view}");
    assert_eq!(view["versions"].as_array().unwrap().len(), 1, "{view}");
    assert_eq!(vigil.which(&h1_client()).await, "u2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_address_in_use_fails_naming_the_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = run_to_exit(
        &[
            "run",
            "--upstream",
            "v1=http://127.0.0.1:9",
            "--listen",
            &addr,
            "--admin-listen",
            "127.0.0.1:0",
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "vigil ran on a taken port");
    assert!(stderr.contains("proxy.listen") && stderr.contains(&addr), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stderr_has_no_ansi_escapes_when_not_a_terminal() {
    let u1 = Upstream::start("u1").await;
    let vigil = Vigil::builder().upstream("v1", &u1.url()).start().await;
    let raw = vigil.stderr_raw();
    assert!(!raw.contains('\x1b'), "escape codes on a piped stderr: {raw:?}");
}

/// When serde's message has no "expected" part, the whole error is printed after "but expected",
/// which then states the problem instead of what was wanted.
#[test]
fn expectation_says_what_is_wanted() {
    let dir = tempfile::tempdir().unwrap();
    for (i, toml) in [format!("[proxy]\nlisten = \"localhost\"\n\n{V1}"), "[[versions]]\nname = \"v1\"\n".into()]
        .into_iter()
        .enumerate()
    {
        let file = write(dir.path(), &format!("c{i}.toml"), &toml);
        let out = run_to_exit(&["check-config", &file], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2));
        let expected = stderr.split("but expected ").nth(1).unwrap_or("");
        assert!(
            !expected.starts_with("invalid") && !expected.starts_with("missing"),
            "the expectation is an error message: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_command_reports_the_control_plane() {
    let u1 = Upstream::start("u1").await;
    let vigil = Vigil::builder().upstream("v1", &u1.url()).start().await;
    let admin = vigil.admin.to_string();
    let out = tokio::task::spawn_blocking(move || run_to_exit(&["healthcheck", "--admin", &admin], &[])).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let dead = dead_port().to_string();
    let out = tokio::task::spawn_blocking(move || run_to_exit(&["healthcheck", "--admin", &dead], &[])).await.unwrap();
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vigil_config_env_names_the_config_file() {
    let u1 = Upstream::start("u1").await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "env.toml", &format!("[[versions]]\nname = \"from-env\"\nurl = \"{}\"\n", u1.url()));
    let vigil = Vigil::builder().env("VIGIL_CONFIG", &file).start().await;
    assert_eq!(vigil.versions().await["active"], "from-env");
}
