//! `/admin/versions` and `/admin/rollback`: read and change the routing table.

use super::reply::json;
use super::{Admin, AdminResponse, ApiError, Caller};
use crate::config::UpstreamProtocol;
use crate::routes::{RouteError, Routes, UpstreamUrl, VersionChange};
use crate::store::audit::AuditEntry;
use crate::telemetry;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use std::sync::Arc;

/// Largest admin request body accepted.
pub(super) const MAX_BODY: usize = 64 * 1024;

pub fn get(admin: &Admin, name: &str) -> Result<AdminResponse, ApiError> {
    let routes = admin.routes.load();
    let v = routes.get(name).ok_or_else(|| RouteError::UnknownVersion(name.to_owned()))?;
    Ok(json(StatusCode::OK, &routes.version_view(v)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    url: Option<String>,
    weight: Option<u32>,
    protocol: Option<UpstreamProtocol>,
}

pub async fn put(
    admin: &Admin,
    name: &str,
    req: Request<Incoming>,
    caller: &Caller,
) -> Result<AdminResponse, ApiError> {
    admin.auth.check(req.headers())?;
    let actor = actor(&req, admin);
    let bytes = read_body(req, MAX_BODY).await?;
    let change = version_change(&bytes).map_err(ApiError::bad_request)?;
    let mut created = false;
    let after = mutate(admin, &actor, Some(caller.remote), "version.put", Some(name), |r| {
        let (next, was_created) = r.put(name, change)?;
        created = was_created;
        Ok(next)
    })
    .await?;
    let v = after.get(name).expect("just put");
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(json(status, &after.version_view(v)))
}

pub async fn delete(
    admin: &Admin,
    name: &str,
    req: Request<Incoming>,
    caller: &Caller,
) -> Result<AdminResponse, ApiError> {
    admin.auth.check(req.headers())?;
    let actor = actor(&req, admin);
    let after = mutate(admin, &actor, Some(caller.remote), "version.delete", Some(name), |r| r.delete(name)).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({"deleted": name, "routes": after.view()})))
}

pub async fn activate(
    admin: &Admin,
    name: &str,
    req: Request<Incoming>,
    caller: &Caller,
) -> Result<AdminResponse, ApiError> {
    admin.auth.check(req.headers())?;
    let actor = actor(&req, admin);
    let after =
        mutate(admin, &actor, Some(caller.remote), "version.activate", Some(name), |r| r.activate(name)).await?;
    Ok(json(StatusCode::OK, &after.view()))
}

pub async fn rollback(admin: &Admin, req: Request<Incoming>, caller: &Caller) -> Result<AdminResponse, ApiError> {
    admin.auth.check(req.headers())?;
    let actor = actor(&req, admin);
    let after = mutate(admin, &actor, Some(caller.remote), "version.rollback", None, |r| r.rollback()).await?;
    Ok(json(StatusCode::OK, &after.view()))
}

/// The one way the routes table changes: compute the next snapshot, audit it, persist it, swap
/// it in. Serialized by `admin.editor`. A change that leaves the table as it was is a no-op and
/// is not audited.
/// `remote` is the caller's address, None for vigil's own decisions (rollouts); `detail` goes
/// into the audit line (a rollout's reason).
pub(super) async fn mutate(
    admin: &Admin,
    actor: &str,
    remote: Option<std::net::SocketAddr>,
    action: &str,
    target: Option<&str>,
    edit: impl FnOnce(&Routes) -> Result<Routes, RouteError>,
) -> Result<Arc<Routes>, ApiError> {
    mutate_with(admin, actor, remote, action, target, None, edit).await
}

pub(super) async fn mutate_with(
    admin: &Admin,
    actor: &str,
    remote: Option<std::net::SocketAddr>,
    action: &str,
    target: Option<&str>,
    detail: Option<serde_json::Value>,
    edit: impl FnOnce(&Routes) -> Result<Routes, RouteError>,
) -> Result<Arc<Routes>, ApiError> {
    let _editor = admin.editor.lock().await;
    let before = admin.routes.load_full();
    let after = Arc::new(edit(&before)?);
    let (before_view, after_view) = (before.view(), after.view());
    if before_view == after_view {
        return Ok(before);
    }
    let entry = AuditEntry {
        time: AuditEntry::now(),
        actor: actor.to_owned(),
        remote: remote.map(|r| r.to_string()),
        action: action.to_owned(),
        target: target.map(str::to_owned),
        before: serde_json::to_value(&before_view).expect("view serializes"),
        after: serde_json::to_value(&after_view).expect("view serializes"),
        detail,
    };
    let (audit, state_file) = (admin.audit.clone(), admin.state_file.clone());
    let (old, new) = (before.persisted(), after.persisted());
    // state.json first, then the audit line: a change is audited only once it is saved, and if
    // the audit line cannot be written, the old state goes back and the change is refused.
    let written = tokio::task::spawn_blocking(move || -> Result<(), ApiError> {
        state_file.save(&new).map_err(|e| {
            metrics::counter!(telemetry::STATE_WRITE_ERRORS, "file" => "state").increment(1);
            ApiError::internal(
                "state_write_failed",
                format!("cannot write {}: {e}; nothing was changed", state_file.path().display()),
            )
        })?;
        audit.append(&entry).map_err(|e| {
            metrics::counter!(telemetry::STATE_WRITE_ERRORS, "file" => "audit").increment(1);
            let outcome = match state_file.save(&old) {
                Ok(()) => "nothing was changed".to_owned(),
                Err(e2) => format!(
                    "and putting back {} failed too ({e2}): it holds the refused change until the next one",
                    state_file.path().display()
                ),
            };
            ApiError::internal(
                "audit_write_failed",
                format!("cannot write the audit trail {}: {e}; {outcome}", audit.path().display()),
            )
        })
    })
    .await
    .map_err(|e| ApiError::internal("internal", format!("state writer failed: {e}")))?;
    written?;
    admin.routes.store(after.clone());
    Admin::publish_routes(&after);
    tracing::info!(action, target = target.unwrap_or(""), actor, active = %after.active().name, "routes changed");
    Ok(after)
}

pub(super) fn actor(req: &Request<Incoming>, admin: &Admin) -> String {
    match req.headers().get("x-vigil-actor").and_then(|v| v.to_str().ok()) {
        Some(a) if !a.is_empty() => a.chars().take(128).collect(),
        _ if admin.auth.enabled() => "admin".into(),
        _ => "anonymous".into(),
    }
}

/// Reads a whole request body of at most `limit` bytes (413 above).
pub(super) async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    Ok(Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("body larger than {limit} bytes"),
                )
            } else {
                ApiError::bad_request(format!("cannot read the request body: {e}"))
            }
        })?
        .to_bytes())
}

pub(super) async fn read_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, ApiError> {
    let bytes = read_body(req, MAX_BODY).await?;
    parse_json(&bytes).map_err(ApiError::bad_request)
}

/// An admin JSON body, or the 400 message naming where it went wrong (`at `steps[2]``).
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            format!("invalid JSON body: {inner}")
        } else {
            format!("invalid JSON body at `{path}`: {inner}")
        }
    })
}

/// The `PUT /admin/versions/{name}` body (`{"url", "weight", "protocol"}`, all optional) as the
/// change it asks for, or the 400 message. Pure, so the fuzzer drives it (fuzz/fuzz_targets/admin.rs).
pub fn version_change(bytes: &[u8]) -> Result<VersionChange, String> {
    let body: PutBody = parse_json(bytes)?;
    let url = match &body.url {
        Some(u) => Some(UpstreamUrl::parse(u).map_err(|why| format!("url {u:?}: expected {why}"))?),
        None => None,
    };
    Ok(VersionChange { url, weight: body.weight, protocol: body.protocol })
}
