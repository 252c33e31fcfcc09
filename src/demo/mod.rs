//! `vigil demo`: a built-in model server with two versions, vigil in front of it, and light
//! traffic from the load generator, all in one process: vigil's main job with no setup.
//! Owns: nothing the proxy depends on; it only uses the public `app::start`.

pub mod model;

use crate::config::{Config, VersionConfig};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::TcpListener;

pub struct DemoOptions {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// Requests per second of generated traffic; 0 for none.
    pub rate: f64,
    /// Stop after this long; `None` until Ctrl-C.
    pub duration: Option<Duration>,
}

pub async fn run(opts: DemoOptions) -> ExitCode {
    let mut models = Vec::new();
    for version in ["v1", "v2"] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("loopback port");
        let addr = listener.local_addr().expect("bound");
        tokio::spawn(model::serve(listener, model::DemoModel::new("demo", version)));
        models.push((version, addr));
    }
    let state_dir = std::env::temp_dir().join(format!("vigil-demo-{}", std::process::id()));
    let mut config = Config::default();
    config.proxy.listen = opts.listen;
    config.admin.listen = opts.admin_listen;
    config.state.dir = state_dir.clone();
    config.versions = models
        .iter()
        .map(|(name, addr)| VersionConfig {
            name: (*name).into(),
            url: format!("http://{addr}"),
            // v2 starts as a 10% canary beside v1.
            weight: if *name == "v2" { 10 } else { 0 },
            protocol: Default::default(),
        })
        .collect();
    if let Err(e) = config.validate() {
        eprintln!("vigil demo: {e}");
        return ExitCode::from(2);
    }
    let app = match crate::app::start(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("vigil demo: {e} (is another vigil running? try --listen / --admin-listen)");
            return ExitCode::FAILURE;
        }
    };
    let (proxy, admin) = (app.proxy_addr, app.admin_addr);
    println!(
        "\nvigil demo is running (state in {dir}).\n\
         \n  model server   v1 http://{v1}   v2 http://{v2}\
         \n  proxy          http://{proxy}   ({rate} req/s of V2 traffic: 90% v1, 10% v2 canary)\
         \n  control plane  http://{admin}\n\
         \nTry:\
         \n  curl -s http://{proxy}/v2/models/demo/infer -H 'content-type: application/json' \\\
         \n       -d '{{\"inputs\":[{{\"name\":\"input-0\",\"shape\":[1,4],\"datatype\":\"FP64\",\"data\":[35,42000,0.7,12]}}]}}'\
         \n  curl -s http://{admin}/admin/versions\
         \n  curl -s -X POST http://{admin}/admin/versions/v2/activate\
         \n  curl -s -X POST http://{admin}/admin/rollback\
         \n  curl -s http://{admin}/admin/latency\
         \n  curl -s http://{admin}/metrics | grep ^vigil_\n\
         \nCtrl-C stops.\n",
        dir = state_dir.display(),
        v1 = models[0].1,
        v2 = models[1].1,
        rate = opts.rate,
    );

    let stop = tokio_util::sync::CancellationToken::new();
    let traffic = (opts.rate > 0.0).then(|| {
        let cfg = vigil_loadtest::Config {
            target: format!("http://{proxy}").parse().expect("valid URI"),
            rate: opts.rate,
            connections: 8,
            request_id_prefix: Some("demo-".into()),
            ..Default::default()
        };
        tokio::spawn(vigil_loadtest::run(cfg, stop.clone().cancelled_owned()))
    });
    match opts.duration {
        Some(d) => tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = tokio::signal::ctrl_c() => {}
        },
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    stop.cancel();
    if let Some(t) = traffic {
        if let Ok(report) = t.await {
            println!("\ndemo traffic:\n{}", report.to_table());
        }
    }
    app.shutdown().await;
    let _ = std::fs::remove_dir_all(&state_dir);
    ExitCode::SUCCESS
}
