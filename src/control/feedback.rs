//! `POST /feedback`: ground-truth labels by request id, joined with the logged predictions.
//!
//! Bodies: one object or an array of them, each
//! `{"request_id": "r1", "label": 1}` (row 0, or `"row": k`) or
//! `{"request_id": "r2", "labels": [1, 0, 1]}` (one label per batch row, from row 0).
//! A label is a number, a string or a boolean. The answer is 200 with how many joined and which
//! ids are unknown (never logged, or deleted by retention); 400 only for a body that is not of
//! this shape (it names the element and the field), 401 without the feedback token, 413 above
//! `feedback.max_body_bytes`, 503 when the prediction log is off or failing.

use super::reply::json;
use super::versions::read_body;
use super::{Admin, AdminResponse, ApiError};
use crate::monitor::Command;
use crate::store::predlog::{JoinOutcome, Label};
use crate::telemetry;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;

/// Ids listed in the answer at most (the count is always complete).
const MAX_LISTED: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    request_id: String,
    #[serde(default)]
    row: Option<u32>,
    #[serde(default)]
    label: Option<Value>,
    #[serde(default)]
    labels: Option<Vec<Value>>,
}

/// Parses and checks a feedback body into labels. Errors say which element and why.
pub fn parse(bytes: &[u8]) -> Result<Vec<Label>, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    let (items, many) = match value {
        Value::Array(items) => (items, true),
        v @ Value::Object(_) => (vec![v], false),
        _ => return Err("expected an object {\"request_id\": ..., \"label\": ...} or an array of them".into()),
    };
    let mut labels = Vec::new();
    for (i, v) in items.into_iter().enumerate() {
        let at = if many { format!("element {i}: ") } else { String::new() };
        // (serde reads `"label": null` as an absent label; say what is wrong with it instead.)
        if v.get("label").is_some_and(Value::is_null) {
            return Err(format!("{at}label must be a number, a string or a boolean, not null"));
        }
        let item: Item = serde_json::from_value(v).map_err(|e| format!("{at}{e}"))?;
        if item.request_id.is_empty() {
            return Err(format!("{at}request_id is empty"));
        }
        let scalar = |v: &Value, what: &str| match v {
            Value::Number(_) | Value::String(_) | Value::Bool(_) => Ok(()),
            _ => Err(format!("{at}{what} must be a number, a string or a boolean, not {v}")),
        };
        match (item.label, item.labels) {
            (Some(label), None) => {
                scalar(&label, "label")?;
                labels.push(Label { request_id: item.request_id, row: item.row.unwrap_or(0), label });
            }
            (None, Some(list)) => {
                if item.row.is_some() {
                    return Err(format!("{at}\"row\" goes with \"label\"; \"labels\" covers rows 0, 1, ..."));
                }
                if list.is_empty() {
                    return Err(format!("{at}labels is empty"));
                }
                for (r, label) in list.into_iter().enumerate() {
                    scalar(&label, &format!("labels[{r}]"))?;
                    labels.push(Label { request_id: item.request_id.clone(), row: r as u32, label });
                }
            }
            (Some(_), Some(_)) => return Err(format!("{at}give \"label\" or \"labels\", not both")),
            (None, None) => return Err(format!("{at}missing field \"label\" (or \"labels\" for a batch)")),
        }
    }
    Ok(labels)
}

pub async fn post(admin: &Admin, req: Request<Incoming>) -> Result<AdminResponse, ApiError> {
    admin.feedback_auth.check(req.headers())?;
    let Some(ctl) = admin.feedback.as_ref() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "feedback_disabled",
            "labels cannot be joined: the prediction log is off (prediction_log.enabled = false, or capture or analysis is off)",
        ));
    };
    let bytes = read_body(req, ctl.max_body_bytes).await?;
    let labels = parse(&bytes).map_err(ApiError::bad_request)?;
    let received = labels.len();
    let ids: Vec<String> = labels.iter().map(|l| l.request_id.clone()).collect();
    let outcomes = ctl
        .log
        .label(labels)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "prediction_log_closed",
                "the prediction log is shutting down",
            )
        })?
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "prediction_log_error", e.to_string()))?;
    let (mut joined, mut replaced) = (Vec::new(), 0usize);
    let mut unknown = 0usize;
    let mut unknown_ids = BTreeSet::new();
    for (o, id) in outcomes.into_iter().zip(ids) {
        match o {
            JoinOutcome::Joined(j) => {
                if j.replaced.is_some() {
                    replaced += 1;
                }
                joined.push(j);
            }
            JoinOutcome::Unknown => {
                unknown += 1;
                if unknown_ids.len() < MAX_LISTED {
                    unknown_ids.insert(id);
                }
            }
        }
    }
    let n_joined = joined.len();
    metrics::counter!(telemetry::FEEDBACK_TOTAL, "result" => "joined").increment((n_joined - replaced) as u64);
    metrics::counter!(telemetry::FEEDBACK_TOTAL, "result" => "replaced").increment(replaced as u64);
    metrics::counter!(telemetry::FEEDBACK_TOTAL, "result" => "unknown").increment(unknown as u64);
    if !joined.is_empty() {
        // The analysis thread picks it up within a tick; if it is gone (shutting down), the labels
        // are still in the log.
        let _ = ctl.commands.send(Command::Labels(joined));
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "received": received,
            "joined": n_joined,
            "replaced": replaced,
            "unknown": unknown,
            "unknown_ids": unknown_ids,
        }),
    ))
}

/// What the control plane holds for feedback.
pub struct FeedbackControl {
    pub log: crate::store::predlog::LogHandle,
    pub commands: std::sync::mpsc::Sender<Command>,
    pub max_body_bytes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let l = parse(br#"{"request_id": "a", "label": 1}"#).unwrap();
        assert_eq!((l[0].request_id.as_str(), l[0].row, &l[0].label), ("a", 0, &serde_json::json!(1)));
        let l = parse(br#"{"request_id": "a", "row": 3, "label": "cat"}"#).unwrap();
        assert_eq!(l[0].row, 3);
        let l = parse(br#"{"request_id": "b", "labels": [1, 0, true]}"#).unwrap();
        assert_eq!(l.iter().map(|x| x.row).collect::<Vec<_>>(), vec![0, 1, 2]);
        let l = parse(br#"[{"request_id": "a", "label": 1}, {"request_id": "b", "labels": [0, 1]}]"#).unwrap();
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn errors_name_the_element_and_field() {
        let e = parse(br#"[{"request_id": "a", "label": 1}, {"request_id": "b"}]"#).unwrap_err();
        assert!(e.contains("element 1") && e.contains("label"), "{e}");
        let e = parse(br#"{"request_id": "a", "lable": 1}"#).unwrap_err();
        assert!(e.contains("lable"), "{e}");
        let e = parse(br#"{"request_id": "a", "label": null}"#).unwrap_err();
        assert!(e.contains("label must be"), "{e}");
        let e = parse(br#"{"request_id": "a", "labels": [1, [2]]}"#).unwrap_err();
        assert!(e.contains("labels[1]"), "{e}");
        let e = parse(br#"{"label": 1}"#).unwrap_err();
        assert!(e.contains("request_id"), "{e}");
        assert!(parse(b"[1, 2]").unwrap_err().contains("element 0"));
        assert!(parse(b"42").is_err());
        assert!(parse(b"{not json").unwrap_err().contains("invalid JSON"));
        assert!(parse(br#"{"request_id": "a", "label": 1, "labels": [1]}"#).unwrap_err().contains("not both"));
        assert!(parse(br#"{"request_id": "", "label": 1}"#).is_err());
    }
}
