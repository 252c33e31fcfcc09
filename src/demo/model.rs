//! A small built-in model server speaking Open Inference Protocol V2 (and V1 `:predict`), serving
//! a logistic-regression classifier over four numeric features. Two versions exist, with
//! different weights, so canaries and rollbacks show different answers. It is the demo's upstream
//! and the fast, dependency-free upstream of tests and benchmarks; it is not part of the proxy.

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Feature names, means and standard deviations of the demo's reference distribution (the same
/// as `vigil_loadtest::reference::default_features`).
pub const FEATURES: [(&str, f64, f64); 4] =
    [("age", 40.0, 12.0), ("income", 55_000.0, 15_000.0), ("debt_ratio", 0.5, 0.167), ("tenure_months", 36.0, 20.0)];

/// One version of the demo classifier: p(default) = sigmoid(w · z + b), z the standardized features.
#[derive(Debug, Clone)]
pub struct DemoModel {
    pub model_name: String,
    pub version: String,
    weights: [f64; 4],
    bias: f64,
    /// Inference requests and rows received, by `x-vigil-shadow` kind ("live" without the
    /// header): `GET /stats/received`. Tests count what vigil's shadow traffic cost the model.
    received: Arc<std::sync::Mutex<std::collections::BTreeMap<String, (u64, u64)>>>,
    /// A broken build on purpose (`--error-ratio`): every n-th inference answers 500.
    fail_every: Option<u64>,
    inferences: Arc<std::sync::atomic::AtomicU64>,
}

impl DemoModel {
    /// `v1` or `v2`; any other name gets v1's weights.
    pub fn new(model_name: &str, version: &str) -> DemoModel {
        let (weights, bias) = match version {
            "v2" => ([-0.5, -1.1, 1.9, -0.4], -0.1),
            _ => ([-0.4, -0.9, 1.5, -0.6], -0.3),
        };
        DemoModel {
            model_name: model_name.into(),
            version: version.into(),
            weights,
            bias,
            received: Default::default(),
            fail_every: None,
            inferences: Default::default(),
        }
    }

    /// Answers `500 {"error": "..."}` to this share of inference requests (evenly spread: every
    /// round(1/ratio)-th one), the way a bad build of a model fails. Tests and the demo roll out
    /// such a version to show an automatic rollback.
    pub fn with_error_ratio(mut self, ratio: f64) -> DemoModel {
        self.fail_every = (ratio > 0.0).then(|| (1.0 / ratio.min(1.0)).round().max(1.0) as u64);
        self
    }

    fn fails_now(&self) -> bool {
        let n = self.inferences.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        self.fail_every.is_some_and(|k| n % k == 0)
    }

    pub fn predict_row(&self, row: &[f64]) -> f64 {
        let z: f64 = FEATURES.iter().zip(row).zip(self.weights).map(|(((_, m, s), x), w)| w * (x - m) / s).sum();
        1.0 / (1.0 + (-(z + self.bias)).exp())
    }

    fn infer_v2(&self, body: &Value, kind: &str) -> Result<Value, String> {
        let inputs = body.get("inputs").and_then(Value::as_array).ok_or("body has no \"inputs\" array")?;
        let input = inputs.first().ok_or("\"inputs\" is empty")?;
        let mut data = Vec::new();
        flatten(input.get("data").ok_or("input has no \"data\"")?, &mut data)?;
        let width = FEATURES.len();
        if data.is_empty() || data.len() % width != 0 {
            return Err(format!("expected rows of {width} features, got {} values", data.len()));
        }
        let probs: Vec<f64> = data.chunks(width).map(|r| self.predict_row(r)).collect();
        self.count(kind, probs.len());
        let labels: Vec<i64> = probs.iter().map(|p| (*p >= 0.5) as i64).collect();
        let mut out = json!({
            "model_name": self.model_name,
            "model_version": self.version,
            "outputs": [
                {"name": "probability", "datatype": "FP64", "shape": [probs.len(), 1], "data": probs},
                {"name": "label", "datatype": "INT64", "shape": [labels.len()], "data": labels},
            ]
        });
        if let Some(id) = body.get("id") {
            out["id"] = id.clone();
        }
        Ok(out)
    }

    fn count(&self, kind: &str, rows: usize) {
        let mut r = self.received.lock().unwrap();
        let e = r.entry(kind.to_owned()).or_default();
        e.0 += 1;
        e.1 += rows as u64;
    }

    fn predict_v1(&self, body: &Value, kind: &str) -> Result<Value, String> {
        let rows = body.get("instances").and_then(Value::as_array).ok_or("body has no \"instances\" array")?;
        let mut preds = Vec::with_capacity(rows.len());
        for row in rows {
            let mut data = Vec::new();
            flatten(row, &mut data)?;
            if data.len() != FEATURES.len() {
                return Err(format!("expected {} features per instance, got {}", FEATURES.len(), data.len()));
            }
            preds.push(self.predict_row(&data));
        }
        self.count(kind, preds.len());
        Ok(json!({ "predictions": preds }))
    }

    fn metadata(&self) -> Value {
        json!({
            "name": self.model_name,
            "versions": [self.version],
            "platform": "vigil-demo",
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, FEATURES.len()]}],
            "outputs": [
                {"name": "probability", "datatype": "FP64", "shape": [-1, 1]},
                {"name": "label", "datatype": "INT64", "shape": [-1]},
            ],
        })
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        // Tests make the model slow on purpose: `x-demo-delay-ms: N` waits N ms (at most 60 s)
        // before answering.
        let delay = req.headers().get("x-demo-delay-ms").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if let Some(ms) = delay {
            tokio::time::sleep(std::time::Duration::from_millis(ms.min(60_000))).await;
        }
        let path = req.uri().path().to_owned();
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let method = req.method().clone();
        let res = match (&method, segs.as_slice()) {
            (&Method::GET, ["v2", "health", "live"]) => reply(StatusCode::OK, json!({"live": true})),
            (&Method::GET, ["v2", "health", "ready"]) => reply(StatusCode::OK, json!({"ready": true})),
            (&Method::GET, ["stats", "received"]) => {
                let r = self.received.lock().unwrap().clone();
                let by_kind: serde_json::Map<String, Value> =
                    r.into_iter().map(|(k, (n, rows))| (k, json!({"requests": n, "rows": rows}))).collect();
                reply(StatusCode::OK, Value::Object(by_kind))
            }
            (&Method::GET, ["v2"]) => {
                reply(StatusCode::OK, json!({"name": "vigil-demo", "version": "1", "extensions": []}))
            }
            (&Method::GET, ["v2", "models", m, ..]) if *m != self.model_name => not_found(m),
            (&Method::GET, ["v2", "models", _]) => reply(StatusCode::OK, self.metadata()),
            (&Method::GET, ["v2", "models", _, "ready"]) => {
                reply(StatusCode::OK, json!({"name": self.model_name, "ready": true}))
            }
            (&Method::POST, ["v2", "models", m, "infer"])
            | (&Method::POST, ["v2", "models", m, "versions", _, "infer"]) => {
                if *m != self.model_name {
                    not_found(m)
                } else if self.fails_now() {
                    reply(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        json!({"error": "demo model: failing on purpose (--error-ratio)"}),
                    )
                } else {
                    let m = self.clone();
                    with_json(req, move |v, kind| m.infer_v2(v, kind)).await
                }
            }
            (&Method::POST, ["v1", "models", m]) if m.ends_with(":predict") => {
                if m.trim_end_matches(":predict") != self.model_name {
                    not_found(m.trim_end_matches(":predict"))
                } else {
                    let m = self.clone();
                    with_json(req, move |v, kind| m.predict_v1(v, kind)).await
                }
            }
            _ => reply(StatusCode::NOT_FOUND, json!({"error": format!("no route {method} {path}")})),
        };
        Ok(res)
    }
}

fn flatten(v: &Value, out: &mut Vec<f64>) -> Result<(), String> {
    match v {
        Value::Array(items) => items.iter().try_for_each(|i| flatten(i, out)),
        Value::Number(n) => {
            out.push(n.as_f64().ok_or("number out of range")?);
            Ok(())
        }
        Value::Bool(b) => {
            out.push(*b as u8 as f64);
            Ok(())
        }
        other => Err(format!("expected numbers, found {other}")),
    }
}

fn not_found(model: &str) -> Response<Full<Bytes>> {
    reply(StatusCode::NOT_FOUND, json!({"error": format!("model {model} not found")}))
}

async fn with_json(
    req: Request<Incoming>,
    f: impl FnOnce(&Value, &str) -> Result<Value, String>,
) -> Response<Full<Bytes>> {
    let kind = req.headers().get("x-vigil-shadow").and_then(|v| v.to_str().ok()).unwrap_or("live").to_owned();
    let bytes = match Limited::new(req.into_body(), 64 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return reply(StatusCode::BAD_REQUEST, json!({"error": format!("cannot read body: {e}")})),
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) => match f(&v, &kind) {
            Ok(out) => reply(StatusCode::OK, out),
            Err(e) => reply(StatusCode::BAD_REQUEST, json!({"error": e})),
        },
        Err(e) => reply(StatusCode::BAD_REQUEST, json!({"error": format!("invalid JSON: {e}")})),
    }
}

fn reply(status: StatusCode, v: Value) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(serde_json::to_vec(&v).expect("json values serialize"))));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// Serves `model` on `listener` (HTTP/1.1 and h2c) until the task is dropped.
pub async fn serve(listener: TcpListener, model: DemoModel) {
    let model = Arc::new(model);
    let opts = crate::proxy::server::ServerOptions {
        header_read_timeout: std::time::Duration::from_secs(10),
        drain_timeout: std::time::Duration::from_secs(1),
    };
    crate::proxy::server::serve(
        listener,
        move |_| {
            let m = model.clone();
            hyper::service::service_fn(move |req| m.clone().handle(req))
        },
        opts,
        std::future::pending(),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_differ_and_stay_in_unit_interval() {
        let (a, b) = (DemoModel::new("demo", "v1"), DemoModel::new("demo", "v2"));
        let row = [30.0, 40_000.0, 0.8, 10.0];
        let (pa, pb) = (a.predict_row(&row), b.predict_row(&row));
        assert!(pa > 0.0 && pa < 1.0 && pb > 0.0 && pb < 1.0);
        assert_ne!(pa, pb);
    }

    #[test]
    fn v2_infer_accepts_flat_and_nested_data() {
        let m = DemoModel::new("demo", "v1");
        let flat = json!({"id": "x", "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64",
            "data": [40, 55000, 0.5, 36, 20, 90000, 0.1, 100]}]});
        let nested = json!({"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64",
            "data": [[40, 55000, 0.5, 36], [20, 90000, 0.1, 100]]}]});
        let (a, b) = (m.infer_v2(&flat, "live").unwrap(), m.infer_v2(&nested, "live").unwrap());
        assert_eq!(a["outputs"], b["outputs"]);
        assert_eq!(a["id"], "x");
        assert_eq!(a["outputs"][0]["shape"], json!([2, 1]));
        assert!(m.infer_v2(&json!({"inputs": [{"data": [1, 2, 3]}]}), "live").is_err());
    }
}
