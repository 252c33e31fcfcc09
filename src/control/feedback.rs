//! `POST /feedback`: ground-truth labels by request id, joined with the logged predictions.
//!
//! Bodies: one object or an array of them, each
//! `{"request_id": "r1", "label": 1}` (row 0, or `"row": k`) or
//! `{"request_id": "r2", "labels": [1, 0, 1]}` (one label per batch row, from row 0).
//! A label is a number, a string or a boolean. Any element may also carry feedback other than a
//! label: `"comment"` (free-form text, at most 4 KiB) and `"score"` (a number), with a label or
//! without one: `{"request_id": "r3", "comment": "wrong: the customer churned", "score": 4}`.
//! They go with the row of the label (`row`, 0 by default), or with every row `labels` covers;
//! they are stored in the log's `feedback` table (kept, not replaced: the export reads the latest).
//! The answer is 200 with how many labels joined, the same counts for comments under
//! `"comments"`, and which ids are unknown (for a label or a comment: never logged, or deleted by
//! retention); 400 only for a body that is not of this shape (it names the element and the
//! field), 401 without the feedback token, 413 above `feedback.max_body_bytes`, 503 when the
//! prediction log is off or failing.

use super::reply::json;
use super::versions::read_body;
use super::{Admin, AdminResponse, ApiError};
use crate::monitor::Command;
use crate::store::predlog::{Comment, JoinOutcome, Label};
use crate::telemetry;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;

/// Ids listed in the answer at most (the count is always complete).
const MAX_LISTED: usize = 1000;

/// Longest comment, in bytes of UTF-8.
pub const MAX_COMMENT_BYTES: usize = 4096;

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
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    score: Option<f64>,
}

/// A parsed feedback body: labels, and comments or scores (in the order of the body's elements).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Feedback {
    pub labels: Vec<Label>,
    pub comments: Vec<Comment>,
}

/// Parses and checks a feedback body into labels only (comments are checked, then left out):
/// [`parse_feedback`] for both.
pub fn parse(bytes: &[u8]) -> Result<Vec<Label>, String> {
    parse_feedback(bytes).map(|f| f.labels)
}

/// Parses and checks a feedback body into labels and comments. Errors say which element and why.
pub fn parse_feedback(bytes: &[u8]) -> Result<Feedback, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    let (items, many) = match value {
        Value::Array(items) => (items, true),
        v @ Value::Object(_) => (vec![v], false),
        _ => return Err("expected an object {\"request_id\": ..., \"label\": ...} or an array of them".into()),
    };
    let mut labels = Vec::new();
    let mut comments = Vec::new();
    for (i, v) in items.into_iter().enumerate() {
        let at = if many { format!("element {i}: ") } else { String::new() };
        // (serde reads `"label": null` as an absent label; say what is wrong with it instead.)
        if v.get("label").is_some_and(Value::is_null) {
            return Err(format!("{at}label must be a number, a string or a boolean, not null"));
        }
        for key in ["comment", "score"] {
            if v.get(key).is_some_and(Value::is_null) {
                let what = if key == "comment" { "a string" } else { "a number" };
                return Err(format!("{at}{key} must be {what}, not null"));
            }
        }
        let item: Item = serde_json::from_value(v).map_err(|e| format!("{at}{e}"))?;
        if item.request_id.is_empty() {
            return Err(format!("{at}request_id is empty"));
        }
        if let Some(c) = &item.comment {
            if c.len() > MAX_COMMENT_BYTES {
                return Err(format!("{at}comment is {} bytes; at most {MAX_COMMENT_BYTES}", c.len()));
            }
        }
        if item.score.is_some_and(|s| !s.is_finite()) {
            return Err(format!("{at}score must be a finite number"));
        }
        let noted = item.comment.is_some() || item.score.is_some();
        let note = |row: u32| Comment {
            request_id: item.request_id.clone(),
            row,
            comment: item.comment.clone(),
            score: item.score,
        };
        let scalar = |v: &Value, what: &str| match v {
            Value::Number(_) | Value::String(_) | Value::Bool(_) => Ok(()),
            _ => Err(format!("{at}{what} must be a number, a string or a boolean, not {v}")),
        };
        match (item.label, item.labels) {
            (Some(label), None) => {
                scalar(&label, "label")?;
                let row = item.row.unwrap_or(0);
                if noted {
                    comments.push(note(row));
                }
                labels.push(Label { request_id: item.request_id.clone(), row, label });
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
                    if noted {
                        comments.push(note(r as u32));
                    }
                    labels.push(Label { request_id: item.request_id.clone(), row: r as u32, label });
                }
            }
            (Some(_), Some(_)) => return Err(format!("{at}give \"label\" or \"labels\", not both")),
            (None, None) if noted => comments.push(note(item.row.unwrap_or(0))),
            (None, None) => {
                return Err(format!(
                    "{at}missing field \"label\" (or \"labels\" for a batch, or \"comment\" / \"score\")"
                ))
            }
        }
    }
    Ok(Feedback { labels, comments })
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
    let Feedback { labels, comments } = parse_feedback(&bytes).map_err(ApiError::bad_request)?;
    let received = labels.len();
    let ids: Vec<String> = labels.iter().map(|l| l.request_id.clone()).collect();
    let closed = |_| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "prediction_log_closed", "the prediction log is shutting down")
    };
    let failed = |e: crate::store::predlog::StoreError| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "prediction_log_error", e.to_string())
    };
    let outcomes =
        if labels.is_empty() { Vec::new() } else { ctl.log.label(labels).await.map_err(closed)?.map_err(failed)? };
    // Labels first, then comments: two transactions. If the second fails the caller gets a 503
    // and sends again; labels are replaced and a comment sent twice reads the same in the export.
    let comment_ids: Vec<String> = comments.iter().map(|c| c.request_id.clone()).collect();
    let stored = if comments.is_empty() {
        Vec::new()
    } else {
        ctl.log.comment(comments).await.map_err(closed)?.map_err(failed)?
    };
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
    let comments_joined = stored.iter().filter(|s| **s).count();
    for (s, id) in stored.iter().zip(comment_ids) {
        if !*s && unknown_ids.len() < MAX_LISTED {
            unknown_ids.insert(id);
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
            "comments": {
                "received": stored.len(),
                "joined": comments_joined,
                "unknown": stored.len() - comments_joined,
            },
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

    #[test]
    fn comments_and_scores_go_with_their_rows() {
        let f = parse_feedback(br#"{"request_id": "a", "comment": "looks wrong", "score": 4}"#).unwrap();
        assert!(f.labels.is_empty());
        assert_eq!(
            f.comments,
            vec![Comment { request_id: "a".into(), row: 0, comment: Some("looks wrong".into()), score: Some(4.0) }]
        );
        let f = parse_feedback(br#"{"request_id": "a", "row": 2, "label": 1, "comment": "sure"}"#).unwrap();
        assert_eq!((f.labels.len(), f.comments[0].row, f.comments[0].score), (1, 2, None));
        let f = parse_feedback(br#"{"request_id": "b", "labels": [1, 0], "score": 1.5}"#).unwrap();
        assert_eq!(f.comments.iter().map(|c| c.row).collect::<Vec<_>>(), vec![0, 1]);
        let f = parse_feedback(br#"[{"request_id": "a", "label": 1}, {"request_id": "c", "row": 1, "score": -2}]"#);
        let f = f.unwrap();
        assert_eq!((f.labels.len(), f.comments.len(), f.comments[0].row), (1, 1, 1));
        // The labels-only view (the fuzz target's) leaves comments out.
        assert!(parse(br#"{"request_id": "a", "comment": "x"}"#).unwrap().is_empty());
        // Exactly 4 KiB is accepted.
        let body = serde_json::json!({"request_id": "a", "comment": "é".repeat(MAX_COMMENT_BYTES / 2)});
        assert!(parse_feedback(body.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn comment_errors_name_the_element_and_field() {
        let long =
            serde_json::json!([{"request_id": "a", "label": 1}, {"request_id": "a", "comment": "x".repeat(4097)}]);
        let e = parse_feedback(long.to_string().as_bytes()).unwrap_err();
        assert!(e.contains("element 1") && e.contains("comment is 4097 bytes; at most 4096"), "{e}");
        let e = parse_feedback(br#"{"request_id": "a", "score": "high"}"#).unwrap_err();
        assert!(e.contains("invalid type") && e.contains("string"), "{e}");
        let e = parse_feedback(br#"{"request_id": "a", "comment": 5}"#).unwrap_err();
        assert!(e.contains("invalid type"), "{e}");
        let e = parse_feedback(br#"{"request_id": "a", "score": null}"#).unwrap_err();
        assert!(e.contains("score must be a number, not null"), "{e}");
        let e = parse_feedback(br#"{"request_id": "a", "comment": null}"#).unwrap_err();
        assert!(e.contains("comment must be a string, not null"), "{e}");
        let e = parse_feedback(br#"{"request_id": "a", "score": 1e999}"#).unwrap_err();
        assert!(e.contains("score") || e.contains("number out of range"), "{e}");
        let e = parse_feedback(br#"{"request_id": "a"}"#).unwrap_err();
        assert!(e.contains("comment"), "{e}");
    }
}
