//! `/admin/rollouts`: start a progressive rollout, watch it, pause, resume, promote or abort it;
//! and the step the watch loop takes each tick.
//!
//! The rollout state machine is `crate::rollout`; this module applies its actions to the routes
//! through `versions::mutate_with` (audited as `rollout.*`, with the analysis as the line's
//! `detail`) and keeps the book in `rollouts.json` in the state dir, so a restart resumes the
//! rollout in progress (its step's clock starts again).

use super::reply::json;
use super::versions::{actor, mutate_with, read_json};
use super::watch::Watch;
use super::{Admin, AdminResponse, ApiError, Caller};
use crate::rollout::{Action, Phase, Rollout, Spec};
use crate::routes::{RouteError, VersionChange};
use crate::store::audit::AuditEntry;
use crate::telemetry;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Finished rollouts kept.
const HISTORY: usize = 50;

#[derive(Default, Serialize, Deserialize)]
struct Saved {
    current: Option<Rollout>,
    history: VecDeque<Rollout>,
}

/// The rollout in progress (at most one) and the finished ones, newest first.
pub struct Book {
    path: PathBuf,
    state: Mutex<Saved>,
    /// One editor at a time (a tick and an operator's request never interleave).
    editor: tokio::sync::Mutex<()>,
}

impl Book {
    /// Reads `rollouts.json`; a missing or unreadable file starts empty (the error is logged:
    /// the routes in state.json are what serves traffic either way).
    pub fn open(dir: &Path) -> Book {
        let path = dir.join("rollouts.json");
        let mut saved: Saved = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::error!(file = %path.display(), error = %e, "cannot read the rollouts file; starting without it");
                Saved::default()
            }),
            Err(_) => Saved::default(),
        };
        if let Some(r) = saved.current.take() {
            tracing::info!(id = %r.id, candidate = %r.candidate, step = r.step + 1, "resuming the rollout in progress");
            saved.current = Some(r.resumed(SystemTime::now()));
        }
        Book { path, state: Mutex::new(saved), editor: tokio::sync::Mutex::new(()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Saved> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The analysis interval while a rollout is progressing.
    pub fn tick_interval(&self) -> Option<Duration> {
        self.lock().current.as_ref().filter(|r| r.phase == Phase::Progressing).map(|r| r.spec.interval)
    }

    pub fn view(&self) -> serde_json::Value {
        let s = self.lock();
        serde_json::json!({"current": s.current, "history": s.history})
    }

    fn current(&self) -> Option<Rollout> {
        self.lock().current.clone()
    }

    /// Stores `r` as the current rollout, or moves it to the history when it has finished.
    fn put(&self, r: Rollout) {
        let mut s = self.lock();
        if r.phase.finished() {
            s.current = None;
            s.history.push_front(r);
            s.history.truncate(HISTORY);
        } else {
            s.current = Some(r);
        }
    }

    async fn save(&self) {
        let (path, bytes) = {
            let s = self.lock();
            (self.path.clone(), serde_json::to_vec_pretty(&*s).unwrap_or_default())
        };
        let written = tokio::task::spawn_blocking(move || crate::store::write_atomic(&path, &bytes)).await;
        if let Ok(Err(e)) | Err(e) = written.map_err(std::io::Error::other) {
            metrics::counter!(telemetry::STATE_WRITE_ERRORS, "file" => "rollouts").increment(1);
            tracing::error!(file = %self.path.display(), error = %e, "cannot write the rollouts file");
        }
    }
}

fn watch(admin: &Admin) -> Result<&Arc<Watch>, ApiError> {
    admin.watch.as_ref().ok_or_else(|| ApiError::internal("internal", "the watch loop is not running"))
}

pub fn get(admin: &Admin) -> Result<AdminResponse, ApiError> {
    Ok(json(StatusCode::OK, &watch(admin)?.rollouts.view()))
}

pub async fn post(admin: &Admin, req: Request<Incoming>, caller: &Caller) -> Result<AdminResponse, ApiError> {
    admin.auth.check(req.headers())?;
    let actor = actor(&req, admin);
    let spec: Spec = read_json(req).await?;
    spec.validate().map_err(ApiError::bad_request)?;
    let w = watch(admin)?;
    let _editor = w.rollouts.editor.lock().await;
    if let Some(r) = w.rollouts.current() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "rollout_in_progress",
            format!("rollout {} of {} is {:?}: abort or finish it first", r.id, r.candidate, r.phase),
        ));
    }
    let routes = admin.routes.load_full();
    if routes.get(&spec.candidate).is_none() {
        return Err(RouteError::UnknownVersion(spec.candidate.clone()).into());
    }
    let stable = routes.active().name.to_string();
    if stable == spec.candidate {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("{} is already the active version: roll out another version", spec.candidate),
        ));
    }
    let (r, action) = Rollout::start(spec, stable, SystemTime::now());
    metrics::gauge!(telemetry::ROLLOUT_FAILED, "candidate" => r.candidate.clone()).set(0.0);
    apply(admin, &actor, Some(caller.remote), "rollout.start", &r, action).await?;
    w.rollouts.put(r.clone());
    w.rollouts.save().await;
    publish(&r);
    tracing::info!(id = %r.id, candidate = %r.candidate, stable = %r.stable, steps = ?r.steps, "rollout started");
    Ok(json(StatusCode::CREATED, &r))
}

/// `POST /admin/rollouts/{id}/{abort|pause|resume|promote}`.
pub async fn act(
    admin: &Admin,
    id: &str,
    verb: &str,
    req: Request<Incoming>,
    caller: &Caller,
) -> Result<AdminResponse, ApiError> {
    admin.auth.check(req.headers())?;
    let actor = actor(&req, admin);
    let w = watch(admin)?;
    let _editor = w.rollouts.editor.lock().await;
    let mut r = match w.rollouts.current() {
        Some(r) if r.id == id || id == "current" => r,
        _ => {
            let finished = w.rollouts.lock().history.iter().any(|r| r.id == id);
            return Err(if finished {
                ApiError::new(StatusCode::CONFLICT, "rollout_finished", format!("rollout {id} has already finished"))
            } else {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_rollout", format!("no rollout {id} in progress"))
            });
        }
    };
    let now = SystemTime::now();
    let conflict = |e: String| ApiError::new(StatusCode::CONFLICT, "conflict", e);
    match verb {
        "pause" | "resume" => {
            let before = r.phase;
            if verb == "pause" { r.pause(&actor) } else { r.resume(now, &actor) }.map_err(conflict)?;
            audit_plain(admin, &actor, Some(caller.remote), &format!("rollout.{verb}"), &r, before).await?;
        }
        "abort" => {
            let action = r.abort(now, &actor).map_err(conflict)?;
            apply(admin, &actor, Some(caller.remote), "rollout.abort", &r, action).await?;
        }
        "promote" => {
            let action = r.promote(now, &actor).map_err(conflict)?;
            apply(admin, &actor, Some(caller.remote), "rollout.promote", &r, action).await?;
        }
        _ => unreachable!("routed verbs only"),
    }
    w.rollouts.put(r.clone());
    w.rollouts.save().await;
    publish(&r);
    Ok(json(StatusCode::OK, &r))
}

/// One step of the rollout in progress, from the watch loop.
pub async fn tick(admin: &Arc<Admin>, w: &Arc<Watch>) {
    let _editor = w.rollouts.editor.lock().await;
    let Some(mut r) = w.rollouts.current() else { return };
    if r.phase != Phase::Progressing {
        return;
    }
    // Someone changed the routes under the rollout (activated or deleted a version): it no
    // longer describes what serves traffic, so it stops, leaving the routes as they are.
    let routes = admin.routes.load_full();
    let moved = routes.active().name.as_ref() != r.stable.as_str() || routes.get(&r.candidate).is_none();
    if moved {
        r.phase = Phase::Aborted;
        r.finished_at = Some(humantime::format_rfc3339_millis(SystemTime::now()).to_string());
        r.message = format!("aborted: the routes changed outside the rollout (active is now {})", routes.active().name);
        let _ = audit_plain(admin, "vigil", None, "rollout.abort", &r, Phase::Progressing).await;
        w.rollouts.put(r.clone());
        w.rollouts.save().await;
        publish(&r);
        return;
    }
    let (r, action) = match w
        .with_figures(move |f| {
            let action = r.tick(SystemTime::now(), f);
            (r, action)
        })
        .await
    {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(error = %e.message, "rollout analysis failed to run");
            return;
        }
    };
    if let Some(action) = action {
        let name = match &action {
            Action::SetWeight(_) => "rollout.step",
            Action::Promote => "rollout.promote",
            Action::Rollback(_) => "rollout.rollback",
        };
        let rolled_back = matches!(action, Action::Rollback(_));
        if let Err(e) = apply(admin, "vigil", None, name, &r, action).await {
            // The routes could not change (a full disk): the rollout stays where it was and
            // tries again next tick; the error is in the log and vigil_state_write_errors_total.
            tracing::error!(id = %r.id, action = name, error = %e.message, "rollout step failed");
            return;
        }
        if rolled_back {
            tracing::warn!(id = %r.id, candidate = %r.candidate, reason = %r.message, "rollout rolled back");
            metrics::gauge!(telemetry::ROLLOUT_FAILED, "candidate" => r.candidate.clone()).set(1.0);
            w.nudge.notify_one();
        }
    }
    w.rollouts.put(r.clone());
    w.rollouts.save().await;
    publish(&r);
}

/// Applies a rollout action to the routes, audited with the rollout as the line's detail.
async fn apply(
    admin: &Admin,
    actor: &str,
    remote: Option<std::net::SocketAddr>,
    name: &str,
    r: &Rollout,
    action: Action,
) -> Result<(), ApiError> {
    let detail = Some(detail(r));
    let candidate = r.candidate.clone();
    mutate_with(admin, actor, remote, name, Some(&r.candidate), detail, move |routes| match action {
        Action::SetWeight(w) => {
            routes.put(&candidate, VersionChange { url: None, weight: Some(w), protocol: None }).map(|(next, _)| next)
        }
        Action::Promote => routes.activate(&candidate),
        Action::Rollback(_) if routes.active().name.as_ref() == candidate.as_str() => routes.rollback(),
        Action::Rollback(_) => {
            routes.put(&candidate, VersionChange { url: None, weight: Some(0), protocol: None }).map(|(next, _)| next)
        }
    })
    .await
    .map(|_| ())
}

fn detail(r: &Rollout) -> serde_json::Value {
    serde_json::json!({
        "rollout": r.id,
        "phase": r.phase,
        "step": r.step + 1,
        "weight": r.weight,
        "message": r.message,
        "failed_checks": r.failed_checks,
        "analysis": r.analysis,
    })
}

/// Audits a rollout change that does not touch the routes (pause, resume, an abort by drift).
async fn audit_plain(
    admin: &Admin,
    actor: &str,
    remote: Option<std::net::SocketAddr>,
    action: &str,
    r: &Rollout,
    before: Phase,
) -> Result<(), ApiError> {
    let entry = AuditEntry {
        time: AuditEntry::now(),
        actor: actor.to_owned(),
        remote: remote.map(|a| a.to_string()),
        action: action.to_owned(),
        target: Some(r.candidate.clone()),
        before: serde_json::json!({"phase": before}),
        after: serde_json::json!({"phase": r.phase}),
        detail: Some(detail(r)),
    };
    super::audit::append(admin, entry).await
}

fn publish(r: &Rollout) {
    let phase = |p: Phase| if r.phase == p { 1.0 } else { 0.0 };
    for p in [Phase::Progressing, Phase::Paused, Phase::Succeeded, Phase::RolledBack, Phase::Aborted] {
        metrics::gauge!(telemetry::ROLLOUT_PHASE, "candidate" => r.candidate.clone(), "phase" => format!("{p:?}"))
            .set(phase(p));
    }
    metrics::gauge!(telemetry::ROLLOUT_WEIGHT, "candidate" => r.candidate.clone()).set(r.weight as f64);
}
