//! `/admin/drift` (the last evaluation, per version), `/admin/drift/{column}` (its histograms) and
//! `/admin/reference` (read, replace, or go back to the configured file).

use super::reply::json;
use super::versions::{actor, read_body};
use super::{Admin, AdminResponse, ApiError, Caller};
use crate::monitor::profile::{Profile, Source};
use crate::monitor::reference::{self, Format};
use crate::monitor::{Command, MonitorHandle, Settings};
use crate::store::audit::AuditEntry;
use crate::store::reference::ReferenceStore;
use crate::telemetry;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use std::sync::Arc;

/// What the control plane holds of the drift monitor.
pub struct DriftControl {
    pub handle: MonitorHandle,
    pub store: ReferenceStore,
    pub settings: Settings,
    pub max_upload_bytes: usize,
    /// `reference.file`, which `DELETE /admin/reference` goes back to.
    pub reference_file: Option<std::path::PathBuf>,
}

fn control(admin: &Admin) -> Result<&DriftControl, ApiError> {
    admin.drift.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "drift_disabled",
            "drift monitoring is off (drift.enabled = false or capture.enabled = false)",
        )
    })
}

fn query_version(req: &Request<Incoming>) -> Option<String> {
    super::reply::query_param(req, "version").map(str::to_owned)
}

pub fn get(admin: &Admin, req: &Request<Incoming>) -> Result<AdminResponse, ApiError> {
    let snap = control(admin)?.handle.snapshot.load();
    match query_version(req) {
        None => Ok(json(StatusCode::OK, &**snap)),
        Some(v) => {
            let report = snap.versions.get(&v).ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_version",
                    format!("no drift window for version {v:?} (it has had no analysed traffic yet)"),
                )
            })?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({
                    "evaluated_at": snap.evaluated_at, "status": snap.status, "reference": snap.reference,
                    "versions": {v: report}, "schema_warnings": snap.schema_warnings,
                }),
            ))
        }
    }
}

pub fn column(admin: &Admin, req: &Request<Incoming>, name: &str) -> Result<AdminResponse, ApiError> {
    let snap = control(admin)?.handle.snapshot.load();
    let known =
        snap.reference.as_ref().is_some_and(|r| r.features.iter().chain(&r.predictions).any(|c| c.name == name));
    if !known {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_column",
            format!("no feature or prediction column named {name:?} in the reference"),
        ));
    }
    let only = query_version(req);
    let mut versions = serde_json::Map::new();
    for (v, report) in &snap.versions {
        if only.as_ref().is_some_and(|o| o != v) {
            continue;
        }
        let col = report.features.iter().chain(&report.predictions).find(|c| c.name == name);
        let hist = snap.histograms.get(v).and_then(|h| h.get(name));
        versions.insert(v.clone(), serde_json::json!({"drift": col, "histogram": hist}));
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"column": name, "evaluated_at": snap.evaluated_at, "versions": versions}),
    ))
}

pub fn get_reference(admin: &Admin) -> Result<AdminResponse, ApiError> {
    let snap = control(admin)?.handle.snapshot.load();
    Ok(json(StatusCode::OK, &serde_json::json!({"status": snap.status, "reference": snap.reference})))
}

/// `PUT /admin/reference`: the body is the new reference (CSV, JSONL or Parquet, by Content-Type).
/// It is parsed, sampled and profiled off the runtime; saved in the state dir; audited; and then
/// handed to the analysis thread, whose windows restart against it.
pub async fn put_reference(admin: &Admin, req: Request<Incoming>, caller: &Caller) -> Result<AdminResponse, ApiError> {
    admin.auth.check(req.headers())?;
    let ctl = control(admin)?;
    let actor = actor(&req, admin);
    let ct = req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let unsupported = || {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type {ct:?}: expected text/csv, application/x-ndjson (JSON lines) or application/vnd.apache.parquet"
            ),
        )
    };
    let declared = Format::from_content_type(&ct);
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if declared.is_none() && !(essence.is_empty() || essence == "application/octet-stream") {
        return Err(unsupported());
    }
    let body = read_body(req, ctl.max_upload_bytes).await?;
    // No (or a generic) media type: Parquet and JSON lines are recognised by their first bytes.
    let format = declared.or_else(|| Format::sniff(&body)).ok_or_else(unsupported)?;
    let settings = ctl.settings.clone();
    let before = admin.drift.as_ref().and_then(|d| d.handle.snapshot.load().reference.clone());
    let source = Source::Upload { actor: actor.clone() };
    let built = tokio::task::spawn_blocking(move || -> Result<(Profile, reference::Table), ApiError> {
        let mut table = reference::parse_sampled(&body, format, "request body", settings.max_rows, 0)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        // [privacy] before it is profiled or saved.
        settings.redactor.table(&mut table);
        let profile = Profile::build(table.clone(), source, &settings.schema, &settings.drift)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_reference", e.to_string()))?;
        Ok((profile, table))
    })
    .await
    .map_err(|e| ApiError::internal("internal", format!("reference parser failed: {e}")))??;
    let (profile, table) = built;
    let after = serde_json::json!({
        "rows": profile.rows, "source": profile.source,
        "features": profile.schema.features, "predictions": profile.schema.predictions,
    });
    save_and_audit(
        admin,
        ctl,
        &actor,
        caller,
        "reference.replace",
        Some(&table),
        &profile.source,
        before,
        after.clone(),
    )
    .await?;
    ctl.handle
        .commands
        .send(Command::Replace(Arc::new(profile)))
        .map_err(|_| ApiError::internal("analysis_stopped", "the analysis thread has stopped (shutting down)"))?;
    tracing::info!(actor, "drift reference replaced");
    Ok(json(StatusCode::OK, &after))
}

/// `DELETE /admin/reference`: forget the reference set at run time; go back to `reference.file`
/// (or to none, or to learning, as configured).
pub async fn delete_reference(
    admin: &Admin,
    req: Request<Incoming>,
    caller: &Caller,
) -> Result<AdminResponse, ApiError> {
    admin.auth.check(req.headers())?;
    let ctl = control(admin)?;
    let actor = actor(&req, admin);
    let settings = ctl.settings.clone();
    let before = ctl.handle.snapshot.load().reference.clone();
    let file = ctl.reference_file.clone();
    let profile = tokio::task::spawn_blocking(move || -> Result<Option<(Profile, reference::Table)>, ApiError> {
        let Some(file) = file else { return Ok(None) };
        let mut table = reference::load_sampled(&file, settings.max_rows, 0)
            .map_err(|e| ApiError::internal("reference_file_failed", format!("reference.file: {e}")))?;
        settings.redactor.table(&mut table);
        let source = Source::File { path: file.display().to_string() };
        let p = Profile::build(table.clone(), source, &settings.schema, &settings.drift)
            .map_err(|e| ApiError::internal("reference_file_failed", e.to_string()))?;
        Ok(Some((p, table)))
    })
    .await
    .map_err(|e| ApiError::internal("internal", format!("reference loader failed: {e}")))??;
    let after = match &profile {
        Some((p, _)) => serde_json::json!({"rows": p.rows, "source": p.source}),
        None => serde_json::Value::Null,
    };
    match &profile {
        Some((p, table)) => {
            save_and_audit(admin, ctl, &actor, caller, "reference.reset", Some(table), &p.source, before, after.clone())
                .await?
        }
        None => {
            let source = Source::Upload { actor: actor.clone() };
            save_and_audit(admin, ctl, &actor, caller, "reference.reset", None, &source, before, after.clone()).await?
        }
    }
    let cmd = match profile {
        Some((p, _)) => Command::Replace(Arc::new(p)),
        None => Command::Clear,
    };
    ctl.handle
        .commands
        .send(cmd)
        .map_err(|_| ApiError::internal("analysis_stopped", "the analysis thread has stopped (shutting down)"))?;
    Ok(json(StatusCode::OK, &serde_json::json!({"reference": after})))
}

/// Stages the new reference files, appends the audit line, then moves the files into place: a
/// change whose audit line cannot be written is refused and leaves the old files. `table` None
/// removes the saved reference.
#[allow(clippy::too_many_arguments)]
async fn save_and_audit(
    admin: &Admin,
    ctl: &DriftControl,
    actor: &str,
    caller: &Caller,
    action: &str,
    table: Option<&reference::Table>,
    source: &Source,
    before: Option<crate::monitor::ReferenceInfo>,
    after: serde_json::Value,
) -> Result<(), ApiError> {
    let _editor = admin.editor.lock().await;
    let entry = AuditEntry {
        time: AuditEntry::now(),
        actor: actor.to_owned(),
        remote: Some(caller.remote.to_string()),
        action: action.to_owned(),
        target: Some("reference".into()),
        before: before.map(|b| serde_json::json!({"rows": b.rows, "source": b.source})).unwrap_or_default(),
        after,
        detail: None,
    };
    let staged = match table {
        Some(t) => Some(ctl.store.stage(t, source.clone()).map_err(|e| write_error("reference", &ctl.store, e))?),
        None => None,
    };
    let audit = admin.audit.clone();
    let appended = tokio::task::spawn_blocking(move || audit.append(&entry))
        .await
        .map_err(|e| ApiError::internal("internal", format!("audit writer failed: {e}")))?;
    if let Err(e) = appended {
        if let Some(s) = staged {
            s.abandon();
        }
        metrics::counter!(telemetry::STATE_WRITE_ERRORS, "file" => "audit").increment(1);
        return Err(ApiError::internal(
            "audit_write_failed",
            format!("cannot write the audit trail {}: {e}; nothing was changed", admin.audit.path().display()),
        ));
    }
    match staged {
        Some(s) => s.commit(),
        None => ctl.store.remove(),
    }
    .map_err(|e| write_error("reference", &ctl.store, e))
}

fn write_error(file: &'static str, store: &ReferenceStore, e: std::io::Error) -> ApiError {
    metrics::counter!(telemetry::STATE_WRITE_ERRORS, "file" => file).increment(1);
    ApiError::internal(
        "state_write_failed",
        format!("cannot write {}: {e}; nothing was changed", store.path().display()),
    )
}
