//! Notifications in Alertmanager's formats, and their sending.
//!
//! - `webhook` receivers get the payload Alertmanager posts to a `webhook_config` (version "4"),
//!   one post per alert name, so any receiver written for Alertmanager (PagerDuty bridges,
//!   Slack relays, a retraining trigger) works unchanged.
//! - `alertmanager` receivers get what Prometheus posts to Alertmanager: `POST /api/v2/alerts`
//!   with a JSON array of alerts (`labels`, `annotations`, `startsAt`, `endsAt`, `generatorURL`).
//!
//! A failed post is retried twice (after 1 s and 2 s) and then counted and logged; the next
//! repeat or re-send carries the alert again.

use super::{rfc3339, AlertView, Notification};
use crate::store::audit::sha256_hex;
use crate::telemetry::ALERT_NOTIFICATIONS;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Alertmanager's "zero" time: an alert without an end.
const NO_END: &str = "0001-01-01T00:00:00Z";

fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut s = String::new();
    for (k, v) in labels {
        s.push_str(k);
        s.push('\u{ff}');
        s.push_str(v);
        s.push('\u{ff}');
    }
    sha256_hex(s.as_bytes())[..16].to_owned()
}

fn common(alerts: &[AlertView], pick: impl Fn(&AlertView) -> &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let Some(first) = alerts.first() else { return BTreeMap::new() };
    pick(first)
        .iter()
        .filter(|(k, v)| alerts.iter().all(|a| pick(a).get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn ends_at(a: &AlertView) -> String {
    a.ends_at.map(rfc3339).unwrap_or_else(|| NO_END.to_owned())
}

fn generator_url(external: &str, a: &AlertView) -> String {
    format!("{external}/admin/alerts#{}", a.alert)
}

/// Alertmanager's webhook payload for one group (one alert name).
pub fn webhook_payload(n: &Notification, external: &str) -> Value {
    let firing = n.alerts.iter().any(|a| a.resolved_at.is_none());
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{}\"}}", n.alertname),
        "truncatedAlerts": 0,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": n.receiver.name,
        "groupLabels": {"alertname": n.alertname},
        "commonLabels": common(&n.alerts, |a| &a.labels),
        "commonAnnotations": common(&n.alerts, |a| &a.annotations),
        "externalURL": external,
        "alerts": n.alerts.iter().map(|a| json!({
            "status": if a.resolved_at.is_none() { "firing" } else { "resolved" },
            "labels": a.labels,
            "annotations": a.annotations,
            "startsAt": a.starts_at.map(rfc3339),
            "endsAt": if a.resolved_at.is_some() { ends_at(a) } else { NO_END.to_owned() },
            "generatorURL": generator_url(external, a),
            "fingerprint": fingerprint(&a.labels),
        })).collect::<Vec<_>>(),
    })
}

/// The body of `POST /api/v2/alerts`.
pub fn alertmanager_payload(n: &Notification, external: &str) -> Value {
    Value::Array(
        n.alerts
            .iter()
            .map(|a| {
                json!({
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "startsAt": a.starts_at.map(rfc3339),
                    "endsAt": ends_at(a),
                    "generatorURL": generator_url(external, a),
                })
            })
            .collect(),
    )
}

/// Sends notifications from the control plane's runtime (a few small posts per evaluation).
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpConnector, Full<Bytes>>,
    external: String,
}

impl Sender {
    pub fn new(external: String) -> Sender {
        Sender { client: client(), external }
    }

    /// Posts each notification on a task of its own; never waits for them.
    pub fn send_all(&self, batch: Vec<Notification>) {
        for n in batch {
            let me = self.clone();
            tokio::spawn(async move { me.send(n).await });
        }
    }

    async fn send(&self, n: Notification) {
        let (url, body) = match (&n.receiver.webhook, &n.receiver.alertmanager) {
            (Some(u), _) => (u.clone(), webhook_payload(&n, &self.external)),
            (None, Some(base)) => {
                (format!("{}/api/v2/alerts", base.trim_end_matches('/')), alertmanager_payload(&n, &self.external))
            }
            (None, None) => return,
        };
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let token = n.receiver.bearer_token_env.as_ref().and_then(|e| std::env::var(e).ok());
        let mut last_error = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(attempt as u64)).await;
            }
            match self.post(&url, body.clone(), token.as_deref(), n.receiver.timeout).await {
                Ok(()) => {
                    metrics::counter!(ALERT_NOTIFICATIONS, "receiver" => n.receiver.name.clone(), "result" => "ok")
                        .increment(1);
                    return;
                }
                Err(e) => last_error = e,
            }
        }
        metrics::counter!(ALERT_NOTIFICATIONS, "receiver" => n.receiver.name.clone(), "result" => "error").increment(1);
        tracing::warn!(receiver = %n.receiver.name, url = %url, error = %last_error, alert = %n.alertname,
            "alert notification failed after 3 attempts");
    }

    async fn post(&self, url: &str, body: Bytes, token: Option<&str>, timeout: Duration) -> Result<(), String> {
        post_json(&self.client, url, body, token, timeout).await
    }
}

/// The HTTP client vigil's notifications and report webhooks post with (5 s connect timeout).
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new()).build(http)
}

/// POSTs `body` as `application/json` to `url` (http:// only), with a bearer token if given;
/// Ok on a 2xx answer within `timeout`. The one poster of alert notifications and report
/// webhooks. The error names the cause (`connection refused`), not only hyper's summary.
pub async fn post_json(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    body: Bytes,
    token: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    let mut req = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, concat!("vigil/", env!("CARGO_PKG_VERSION")));
    if let Some(t) = token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    match tokio::time::timeout(timeout, client.request(req)).await {
        Err(_) => Err(format!("no answer within {timeout:?}")),
        Ok(Err(e)) => {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                msg.push_str(": ");
                msg.push_str(&cause.to_string());
                source = cause.source();
            }
            Err(msg)
        }
        Ok(Ok(res)) if res.status().is_success() => Ok(()),
        Ok(Ok(res)) => Err(format!("answered {}", res.status())),
    }
}
