//! The watch loop: every `alerts.evaluate_every` vigil scrapes its own `/metrics`, evaluates the
//! alert rules, audits what started or stopped firing, sends notifications, and steps the
//! rollout in progress (whose analysis reads the same scrapes).
//!
//! Owns: the scrape history, the alert engine's lock, the rollout book. May not touch: the data
//! path. The scrape is rendered on the runtime thread (as `/metrics` is); parsing, evaluation and
//! file writes run on the blocking pool.

use super::{blocking, rollouts, Admin};
use crate::alerts::{figures, notify::Sender, Engine, Transition};
use crate::config::alerts::AlertsConfig;
use crate::rollout::{self, Figures};
use crate::store::audit::AuditEntry;
use crate::telemetry::scrape::{History, Scrape};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub struct Watch {
    pub history: Mutex<History>,
    /// None when `alerts.enabled = false` (rollouts still run).
    pub alerts: Option<Mutex<Engine>>,
    sender: Sender,
    every: Duration,
    pub rollouts: rollouts::Book,
    /// Wakes the loop before its next tick (after a rollback, so its alert goes out at once).
    pub nudge: tokio::sync::Notify,
}

impl Watch {
    pub fn new(
        cfg: &AlertsConfig,
        external_url: String,
        state_dir: &std::path::Path,
        redactor: Arc<crate::privacy::Redactor>,
    ) -> Watch {
        let engine = cfg.enabled.then(|| Engine::new(cfg, external_url.clone(), redactor));
        let horizon = engine.as_ref().map(|e| e.horizon()).unwrap_or_default().max(rollout::MAX_WINDOW);
        Watch {
            history: Mutex::new(History::new(figures::history_names(), horizon)),
            alerts: engine.map(Mutex::new),
            sender: Sender::new(external_url),
            every: cfg.evaluate_every,
            rollouts: rollouts::Book::open(state_dir),
            nudge: tokio::sync::Notify::new(),
        }
    }

    /// The loop; runs until the task is aborted at shutdown.
    pub async fn run(admin: Arc<Admin>) {
        let Some(watch) = admin.watch.clone() else { return };
        loop {
            let pause = watch.rollouts.tick_interval().map_or(watch.every, |i| i.min(watch.every));
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = watch.nudge.notified() => {}
            }
            if let Err(e) = watch.evaluate(&admin).await {
                tracing::warn!(error = %e.message, "watch loop: evaluation failed");
            }
        }
    }

    async fn evaluate(self: &Arc<Self>, admin: &Arc<Admin>) -> Result<(), super::ApiError> {
        let text = admin.metrics_text().await?;
        let me = self.clone();
        let (transitions, due) = blocking(move || {
            let (now, wall) = (Instant::now(), SystemTime::now());
            let mut h = me.history.lock().unwrap_or_else(|p| p.into_inner());
            h.push(now, Scrape::parse(&text).0);
            match &me.alerts {
                Some(e) => {
                    let mut e = e.lock().unwrap_or_else(|p| p.into_inner());
                    let ts = e.evaluate(&h, now, wall);
                    let due = e.due(now, wall);
                    (ts, due)
                }
                None => (Vec::new(), Vec::new()),
            }
        })
        .await?;
        if !transitions.is_empty() {
            let audit = admin.audit.clone();
            blocking(move || {
                for t in transitions {
                    let (action, v) = match t {
                        Transition::Firing(v) => ("alert.firing", v),
                        Transition::Resolved(v) => ("alert.resolved", v),
                    };
                    tracing::info!(alert = %v.alert, labels = ?v.labels, value = v.value, "{action}");
                    let entry = AuditEntry {
                        time: AuditEntry::now(),
                        actor: "vigil".into(),
                        remote: None,
                        action: action.into(),
                        target: Some(v.alert.clone()),
                        before: serde_json::Value::Null,
                        after: serde_json::json!({
                            "labels": v.labels,
                            "annotations": v.annotations,
                            "value": v.value,
                            "severity": v.labels.get("severity"),
                            "active_since": v.active_since,
                            "firing_since": v.firing_since,
                            "resolved_at": v.resolved_at,
                        }),
                        detail: None,
                    };
                    if let Err(e) = audit.append(&entry) {
                        metrics::counter!(crate::telemetry::STATE_WRITE_ERRORS, "file" => "audit").increment(1);
                        tracing::error!(error = %e, alert = %v.alert, "cannot audit an alert transition");
                    }
                }
            })
            .await?;
        }
        self.sender.send_all(due);
        rollouts::tick(admin, self).await;
        Ok(())
    }

    /// Runs `f` with the figures as they stand (history and firing alerts), on the blocking pool.
    pub async fn with_figures<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&dyn Figures) -> T + Send + 'static,
    ) -> Result<T, super::ApiError> {
        let me = self.clone();
        blocking(move || {
            let h = me.history.lock().unwrap_or_else(|p| p.into_inner());
            let engine = me.alerts.as_ref().map(|e| e.lock().unwrap_or_else(|p| p.into_inner()));
            f(&Live { h: &h, engine: engine.as_deref() })
        })
        .await
    }
}

/// Figures read from the scrape history and the alert engine.
struct Live<'a> {
    h: &'a History,
    engine: Option<&'a Engine>,
}

impl Figures for Live<'_> {
    fn values(&self, figure: &str, matchers: &BTreeMap<String, String>, window: Duration) -> Vec<f64> {
        figures::values(figure, matchers, window, self.h).into_iter().map(|(_, v)| v).collect()
    }

    fn requests(&self, version: &str, window: Duration) -> f64 {
        let m = [("version".to_owned(), version.to_owned())].into();
        self.h.increase(crate::telemetry::REQUESTS_TOTAL, &m, window).map_or(0.0, |(inc, _)| inc.values().sum())
    }

    fn firing_alerts(&self, matchers: &BTreeMap<String, String>) -> usize {
        self.engine.map_or(0, |e| e.firing(matchers).len())
    }
}
