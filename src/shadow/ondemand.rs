//! Explanations an operator asks for: `POST /admin/explain` with a payload, or
//! `GET /admin/explain/{request_id}` for a logged request. The control plane sends a
//! [`Request`] to the what-if thread, which runs it before any sampled job, and awaits the answer.

use super::explain::{Explanation, LimeExplanation};
use crate::config::ExplainMethod;
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::oneshot;

/// What to explain.
pub enum Subject {
    /// A request body as a client would send it, to `path` on `version` (the active one when None).
    Payload { body: Bytes, path: Option<String>, version: Option<String> },
    /// Rows from the prediction log: feature name → value, one object per batch row.
    Logged { request_id: String, version: String, rows: Vec<serde_json::Map<String, serde_json::Value>> },
}

pub struct Request {
    pub subject: Subject,
    /// Which row of the batch to explain.
    pub row: usize,
    pub method: ExplainMethod,
    /// Coalitions (KernelSHAP) or samples (LIME); None = the method's default.
    pub nsamples: Option<usize>,
    pub reply: oneshot::Sender<Result<Reply, Failure>>,
}

/// One explanation, as the admin API answers it.
#[derive(Debug, Clone, Serialize)]
pub struct Reply {
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub row: usize,
    pub method: ExplainMethod,
    /// Feature names, in the order of `values`.
    pub features: Vec<String>,
    /// The explained row, feature → value as sent to the model.
    pub input: serde_json::Map<String, serde_json::Value>,
    /// Feature → SHAP value (KernelSHAP) or local linear weight (LIME).
    pub values: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shap: Option<Explanation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lime: Option<LimeExplanation>,
    /// Shadow requests this explanation sent, and their rows.
    pub model_calls: usize,
    pub rows_sent: usize,
}

/// Why an explanation could not be given, with the HTTP status the admin API answers.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: u16,
    pub kind: &'static str,
    pub message: String,
}

impl Failure {
    pub fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Failure {
        Failure { status, kind, message: message.into() }
    }
}
