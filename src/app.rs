//! Wiring: builds every part from a [`Config`], starts the listeners and background tasks, and
//! shuts them down in order. `vigil run`, `vigil demo`, benches and in-process tests start here.
//!
//! Shutdown order: readiness goes false, the data path stops accepting and drains (in-flight
//! exchanges finish), the capture queue empties into analysis, the prediction log writes what
//! analysis gave it, then the control plane stops.

use crate::capture::{self, Consumer, LatencyBook};
use crate::config::Config;
use crate::control::report::{ReportControl, Schedule, Sources};
use crate::control::watch::Watch;
use crate::control::{Admin, Auth, Caller, DriftControl, FeedbackControl, ResourceControl};
use crate::monitor::performance::Tracker;
use crate::monitor::{self, Monitor, Settings};
use crate::proxy::{self, server::ServerOptions, Readiness};
use crate::routes::{RouteTable, Routes, StateFile};
use crate::shadow::Shadow;
use crate::store::audit::AuditLog;
use crate::store::predlog::{self, PredictionLog};
use crate::store::reference::ReferenceStore;
use crate::telemetry::{self, HotCounters};
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why vigil could not start. Printed as is; exit code 2 for config, 1 otherwise.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot use the state dir {dir} (state.dir): {why}")]
    StateDir { dir: String, why: String },
    #[error("cannot listen on {addr} ({key}): {source}")]
    Listen { key: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Routes(String),
    #[error("cannot use the drift reference: {0}")]
    Reference(String),
    #[error("{0} (prediction_log.enabled = false runs without it; feedback then answers 503)")]
    PredictionLog(#[from] predlog::StoreError),
}

/// A running vigil.
pub struct App {
    pub proxy_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub routes: Arc<RouteTable>,
    pub readiness: Arc<Readiness>,
    stop_proxy: CancellationToken,
    stop_admin: CancellationToken,
    proxy_task: JoinHandle<bool>,
    admin_task: JoinHandle<bool>,
    consumer: Option<Consumer>,
    shadow: Option<Shadow>,
    prediction_log: Option<PredictionLog>,
    report: Option<Schedule>,
    background: Vec<JoinHandle<()>>,
}

pub async fn start(config: Config) -> Result<App, StartError> {
    let prometheus = telemetry::install();
    let dir = &config.state.dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| StartError::StateDir { dir: dir.display().to_string(), why: e.to_string() })?;
    let state_file = StateFile::in_dir(dir);
    let saved = state_file.load().map_err(|why| StartError::StateDir { dir: dir.display().to_string(), why })?;
    let (routes, notes) = Routes::from_config(&config, saved).map_err(|e| StartError::Routes(e.to_string()))?;
    for note in notes {
        tracing::warn!("{note}");
    }
    Admin::publish_routes(&routes);
    let routes: Arc<RouteTable> = Arc::new(RouteTable::from_pointee(routes));

    let counters = Arc::new(HotCounters::new());
    let latency = Arc::new(LatencyBook::default());
    let audit = Arc::new(AuditLog::in_dir(dir));
    // Config changes take effect by restarting: a start with a changed config is audited.
    match crate::store::configlog::record_start(dir, &config.sections(), &audit) {
        Ok(changed) if !changed.is_empty() => {
            tracing::info!(sections = ?changed, "config changed since the last start")
        }
        Ok(_) => {}
        Err(e) => {
            metrics::counter!(telemetry::STATE_WRITE_ERRORS, "file" => "config").increment(1);
            tracing::error!(error = %e, "cannot record the config in the state dir (config-sections.json, audit.jsonl)");
        }
    }
    let analysis = config.capture.enabled && (config.drift.enabled || config.performance.enabled);
    // [privacy]: a hash rule without a salt stops vigil here, naming the key.
    let redactor = Arc::new(crate::privacy::Redactor::from_config(&config.privacy)?);
    let prediction_log = if analysis && config.prediction_log.enabled {
        Some(PredictionLog::open(dir, log_options(&config, &redactor))?)
    } else {
        None
    };
    let (monitor, monitor_handle) = if analysis {
        let profile = monitor::initial_profile(&config, &ReferenceStore::in_dir(dir), &redactor)
            .map_err(StartError::Reference)?;
        let tracker = Tracker::new(config.performance.clone(), prediction_log.as_ref().map(|l| l.handle()));
        let store = Some((ReferenceStore::in_dir(dir), audit.clone()));
        let (m, h) = Monitor::new(Settings::from_config(&config), profile, store, tracker);
        (Some(m), Some(h))
    } else {
        (None, None)
    };
    let feedback = match (&prediction_log, &monitor_handle) {
        (Some(log), Some(h)) => Some(FeedbackControl {
            log: log.handle(),
            commands: h.commands.clone(),
            max_body_bytes: config.feedback.max_body_bytes,
        }),
        _ => None,
    };
    let blocklist = Arc::new(proxy::Blocklist::default());
    // Shadow traffic is chosen from captures: no capture, no shadow.
    let (shadow, tap) = if config.capture.enabled && config.shadow.enabled {
        let (s, t) = Shadow::start(
            config.shadow.clone(),
            config.performance.clone(),
            Settings::from_config(&config),
            routes.clone(),
            monitor_handle.as_ref().map(|h| h.profile.clone()),
            config.proxy.connect_timeout,
            blocklist.clone(),
            Some(audit.clone()),
        )
        .map_err(|e| StartError::StateDir {
            dir: "(threads)".into(),
            why: format!("cannot start the shadow threads: {e}"),
        })?;
        (Some(s), Some(t))
    } else {
        (None, None)
    };
    let (sink, consumer) = if config.capture.enabled {
        let (sink, rx) =
            capture::channel(config.capture.queue_capacity, config.capture.max_body_bytes, counters.clone());
        (Some(sink), Some(Consumer::spawn(rx, latency.clone(), monitor, tap)))
    } else {
        (None, None)
    };
    let readiness = Arc::new(Readiness::default());
    metrics::gauge!(telemetry::READY).set(0.0);

    let bind = |key: &'static str, addr: SocketAddr| async move {
        TcpListener::bind(addr).await.map_err(|source| StartError::Listen { key, addr, source })
    };
    let proxy_listener = bind("proxy.listen", config.proxy.listen).await?;
    let admin_listener = bind("admin.listen", config.admin.listen).await?;
    let proxy_addr = proxy_listener.local_addr().expect("bound socket has an address");
    let admin_addr = admin_listener.local_addr().expect("bound socket has an address");

    let opts = ServerOptions {
        header_read_timeout: config.proxy.header_read_timeout,
        drain_timeout: config.proxy.drain_timeout,
    };
    let (stack, admission) = proxy::stack(
        &config.proxy,
        &config.capture.client_header,
        blocklist.clone(),
        routes.clone(),
        sink,
        readiness.clone(),
        counters,
    );
    let stop_proxy = CancellationToken::new();
    let proxy_task = tokio::spawn(proxy::server::serve(
        proxy_listener,
        move |peer| hyper_util::service::TowerToHyperService::new(stack.for_peer(peer)),
        opts.clone(),
        stop_proxy.clone().cancelled_owned(),
    ));

    let admin = Arc::new(Admin {
        routes: routes.clone(),
        editor: tokio::sync::Mutex::new(()),
        state_file,
        audit,
        drift: monitor_handle.map(|handle| DriftControl {
            handle,
            store: ReferenceStore::in_dir(dir),
            settings: Settings::from_config(&config),
            max_upload_bytes: config.reference.max_upload_bytes,
            reference_file: config.reference.file.clone(),
        }),
        auth: Auth::new(config.admin_token()?),
        feedback,
        feedback_auth: Auth::feedback(config.feedback_token()?),
        readiness: readiness.clone(),
        prometheus: prometheus.clone(),
        latency,
        admission,
        shadow: shadow.as_ref().map(|s| s.handle()),
        resources: Arc::new(ResourceControl::from_config(&config.resources)),
        watch: Some(Arc::new(Watch::new(
            &config.alerts,
            config.alerts.external_url.clone().unwrap_or_else(|| format!("http://{admin_addr}")),
            dir,
            redactor.clone(),
        ))),
        report: Arc::new(ReportControl::new(&config.report, dir)),
    });
    let watch_task = tokio::spawn(Watch::run(admin.clone()));
    // Scheduled reports (`[report] every`), on a thread of their own.
    let report = Schedule::start(Sources::of(&admin)).map_err(|e| StartError::StateDir {
        dir: "(threads)".into(),
        why: format!("cannot start the report thread: {e}"),
    })?;
    let stop_admin = CancellationToken::new();
    let admin_task = tokio::spawn(proxy::server::serve(
        admin_listener,
        move |remote| {
            let admin = admin.clone();
            hyper::service::service_fn(move |req| admin.clone().handle(req, Caller { remote }))
        },
        ServerOptions { drain_timeout: Duration::from_secs(5), ..opts },
        stop_admin.clone().cancelled_owned(),
    ));

    let background = vec![
        watch_task,
        tokio::spawn(probe_until_ready(
            routes.clone(),
            readiness.clone(),
            config.readiness.probe_path.clone(),
            config.readiness.probe_interval,
            config.proxy.connect_timeout,
        )),
        tokio::spawn(async move {
            // The exporter's histograms need periodic upkeep to drain their buffers.
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                prometheus.run_upkeep();
            }
        }),
    ];
    tracing::info!(proxy = %proxy_addr, admin = %admin_addr, active = %routes.load().active().name, "vigil listening");
    Ok(App {
        proxy_addr,
        admin_addr,
        routes,
        readiness,
        stop_proxy,
        stop_admin,
        proxy_task,
        admin_task,
        consumer,
        shadow,
        prediction_log,
        report,
        background,
    })
}

impl App {
    /// A handle on the prediction log, when it is on (the demo's labeller reads from it).
    pub fn prediction_log(&self) -> Option<predlog::LogHandle> {
        self.prediction_log.as_ref().map(|l| l.handle())
    }

    /// Drains and stops everything. Returns false when connections outlived the drain timeout.
    pub async fn shutdown(self) -> bool {
        self.readiness.mark_draining();
        self.stop_proxy.cancel();
        let drained = self.proxy_task.await.unwrap_or(false);
        // A report being written is finished (its webhook post waits at most 10 s); no new one starts.
        if let Some(r) = self.report {
            let _ = tokio::task::spawn_blocking(move || r.stop()).await;
        }
        // The consumer finishes what is queued and ends, even if a connection that outlived the
        // drain still holds a sink.
        if let Some(c) = self.consumer {
            let _ = tokio::task::spawn_blocking(move || c.stop()).await;
        }
        // Shadow jobs in hand finish (or time out); no new ones start.
        if let Some(s) = self.shadow {
            let _ = tokio::task::spawn_blocking(move || s.stop()).await;
        }
        // After analysis: everything it logged is written before the process ends.
        if let Some(log) = self.prediction_log {
            let _ = tokio::task::spawn_blocking(move || log.close()).await;
        }
        for t in &self.background {
            t.abort();
        }
        self.stop_admin.cancel();
        let _ = self.admin_task.await;
        drained
    }
}

fn log_options(config: &Config, redactor: &Arc<crate::privacy::Redactor>) -> predlog::Options {
    let c = &config.prediction_log;
    predlog::Options {
        flush_interval: c.flush_interval,
        flush_rows: c.flush_rows,
        queue_rows: c.queue_rows,
        max_age: (!c.max_age.is_zero()).then_some(c.max_age),
        max_rows: (c.max_rows > 0).then_some(c.max_rows),
        redactor: Some(redactor.clone()),
        ..predlog::Options::default()
    }
}

/// Asks the active version's `probe_path` until it answers below 500, or live traffic got an answer.
async fn probe_until_ready(
    routes: Arc<RouteTable>,
    readiness: Arc<Readiness>,
    path: String,
    interval: Duration,
    timeout: Duration,
) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    while !readiness.has_answered() {
        let uri = routes.load().active().url.uri_for(path.parse().ok().as_ref());
        if let Ok(uri) = uri {
            let probe = tokio::time::timeout(timeout.max(Duration::from_secs(1)), client.get(uri)).await;
            match probe {
                Ok(Ok(res)) => {
                    readiness.observe(res.status());
                    if readiness.has_answered() {
                        tracing::info!(status = res.status().as_u16(), "upstream answered the readiness probe");
                        return;
                    }
                    tracing::debug!(status = res.status().as_u16(), "upstream not ready yet");
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "upstream not reachable yet"),
                Err(_) => tracing::debug!("readiness probe timed out"),
            }
        }
        tokio::time::sleep(interval).await;
    }
}
