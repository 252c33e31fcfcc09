//! `GET /admin/audit[?since=RFC3339&action=NAME&limit=N]`: the audit trail, read back.
//!
//! Answers `{"entries": [...], "count": N, "matched": M, "head": "<sha256>", "chain": {...}}`:
//! the entries as stored (`seq` and `prev` included), oldest first and newest last, the last
//! `limit` (default 100, at most 10,000) of the `matched` ones; `head` is the SHA-256 of the
//! file's last line; `chain` is what `vigil audit verify` would say of the file now (`ok`, or the
//! first bad line). Open like the other admin GETs.
//!
//! Owns: reading `audit.jsonl` for the API (off the runtime, on the blocking pool). May not
//! touch: the appender (it reads the file without taking the log's lock: a line being written
//! has no newline yet and is left out).

use super::reply::{json, query_param};
use super::{Admin, AdminResponse, ApiError};
use crate::store::audit::{self, GENESIS};
use http::{Request, StatusCode};
use serde_json::{json, Value};
use std::time::SystemTime;

/// Entries returned when the caller does not say.
const DEFAULT_LIMIT: usize = 100;
/// The most entries one answer holds.
const MAX_LIMIT: usize = 10_000;

/// What the caller asked for.
#[derive(Debug, PartialEq)]
struct Query {
    since: Option<SystemTime>,
    action: Option<String>,
    limit: usize,
}

fn parse_query<B>(req: &Request<B>) -> Result<Query, ApiError> {
    let since = match query_param(req, "since") {
        Some(raw) => {
            let s = percent_decode(raw);
            Some(humantime::parse_rfc3339_weak(&s).map_err(|e| {
                ApiError::bad_request(format!(
                    "since={s:?}: expected an RFC 3339 time in UTC such as 2025-01-02T03:04:05Z ({e})"
                ))
            })?)
        }
        None => None,
    };
    let action = query_param(req, "action").map(percent_decode).filter(|a| !a.is_empty());
    let limit = match query_param(req, "limit") {
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit={raw:?}: expected a whole number from 1 to {MAX_LIMIT}"
                )))
            }
        },
        None => DEFAULT_LIMIT,
    };
    Ok(Query { since, action, limit })
}

/// `%XX` escapes and `+` as a space, as in a form-encoded query; bad escapes stay as sent.
pub(super) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends `entry` on the blocking pool (the append fsyncs). For changes that are only an audit
/// line (mirrors, a rollout's pause): if it cannot be written, the change must not happen.
pub async fn append(admin: &Admin, entry: crate::store::audit::AuditEntry) -> Result<(), ApiError> {
    let log = admin.audit.clone();
    tokio::task::spawn_blocking(move || log.append(&entry))
        .await
        .map_err(|e| ApiError::internal("internal", format!("audit writer failed: {e}")))?
        .map_err(|e| {
            ApiError::internal("audit_write_failed", format!("cannot write the audit trail: {e}; nothing was changed"))
        })
}

pub async fn get<B>(admin: &Admin, req: &Request<B>) -> Result<AdminResponse, ApiError> {
    let query = parse_query(req)?;
    let path = admin.audit.path().to_owned();
    let answer = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(ApiError::internal(
                    "audit_read_failed",
                    format!("cannot read the audit trail {}: {e}", path.display()),
                ))
            }
        };
        Ok(view(&bytes, &query))
    })
    .await
    .map_err(|e| ApiError::internal("internal", format!("audit reader failed: {e}")))??;
    Ok(json(StatusCode::OK, &answer))
}

/// The answer for a trail's bytes.
fn view(bytes: &[u8], query: &Query) -> Value {
    // Only complete lines: one without its newline is still being written.
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(nl) => &bytes[..=nl],
        None => &[][..],
    };
    let (lines, _) = audit::lines(complete);
    let head = lines.last().map_or_else(|| GENESIS.to_owned(), |l| audit::sha256_hex(l));
    let chain = match audit::verify(complete) {
        Ok(v) => {
            json!({"ok": true, "entries": v.entries, "unchained": v.unchained, "starts_at_line": v.starts_at_line})
        }
        Err(b) => json!({"ok": false, "line": b.line, "seq": b.seq, "problem": b.problem}),
    };
    let matching: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
        .filter(|e| query.action.as_deref().is_none_or(|a| e["action"] == a))
        .filter(|e| match query.since {
            None => true,
            Some(since) => {
                e["time"].as_str().and_then(|t| humantime::parse_rfc3339_weak(t).ok()).is_some_and(|t| t >= since)
            }
        })
        .collect();
    let matched = matching.len();
    let entries = &matching[matched.saturating_sub(query.limit)..];
    json!({"entries": entries, "count": entries.len(), "matched": matched, "head": head, "chain": chain})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::{AuditEntry, AuditLog};

    fn req(q: &str) -> Request<()> {
        Request::get(format!("/admin/audit{q}")).body(()).unwrap()
    }

    fn trail(n: usize) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::in_dir(dir.path());
        for i in 0..n {
            log.append(&AuditEntry {
                time: format!("2025-01-02T03:04:{:02}.000Z", i),
                actor: "admin".into(),
                remote: None,
                action: if i % 2 == 0 { "version.activate".into() } else { "version.rollback".into() },
                target: None,
                before: Value::Null,
                after: Value::Null,
                detail: None,
            })
            .unwrap();
        }
        std::fs::read(log.path()).unwrap()
    }

    #[test]
    fn query_defaults_and_errors() {
        let q = parse_query(&req("")).unwrap();
        assert_eq!(q, Query { since: None, action: None, limit: 100 });
        let q = parse_query(&req("?since=2025-01-02T03%3A04%3A05Z&action=version.put&limit=10000")).unwrap();
        assert_eq!(q.action.as_deref(), Some("version.put"));
        assert_eq!(q.limit, 10_000);
        assert!(q.since.is_some());
        for bad in ["?limit=0", "?limit=10001", "?limit=x", "?since=yesterday"] {
            let e = parse_query(&req(bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(e.message.contains(&bad[1..bad.find('=').unwrap()]), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%3Ab+c%2"), "a:b c%2");
        assert_eq!(percent_decode("%zz%"), "%zz%");
    }

    #[test]
    fn newest_last_filtered_and_limited() {
        let bytes = trail(6);
        let all = view(&bytes, &Query { since: None, action: None, limit: 100 });
        assert_eq!(all["count"], 6);
        assert_eq!(all["chain"]["ok"], true);
        let (lines, _) = audit::lines(&bytes);
        assert_eq!(all["head"], audit::sha256_hex(lines[5]));
        assert_eq!(all["entries"][5]["seq"], 6);

        let some = view(&bytes, &Query { since: None, action: Some("version.activate".into()), limit: 2 });
        assert_eq!(some["matched"], 3);
        let seqs: Vec<&Value> = some["entries"].as_array().unwrap().iter().map(|e| &e["seq"]).collect();
        assert_eq!(seqs, [&json!(3), &json!(5)]);

        let since = humantime::parse_rfc3339_weak("2025-01-02T03:04:04Z").unwrap();
        let late = view(&bytes, &Query { since: Some(since), action: None, limit: 100 });
        assert_eq!(late["count"], 2);
    }

    #[test]
    fn a_line_being_written_is_left_out_and_damage_is_reported() {
        let mut bytes = trail(3);
        bytes.extend_from_slice(b"{\"seq\":4,");
        let v = view(&bytes, &Query { since: None, action: None, limit: 100 });
        assert_eq!(v["count"], 3);
        assert_eq!(v["chain"]["ok"], true);

        let text = String::from_utf8(trail(3)).unwrap().replacen("rollback", "rollbock", 1);
        let v = view(text.as_bytes(), &Query { since: None, action: None, limit: 100 });
        assert_eq!(v["chain"]["ok"], false);
        assert_eq!(v["chain"]["line"], 2);
        assert_eq!(view(b"", &Query { since: None, action: None, limit: 1 })["head"], GENESIS);
    }
}
