//! `/admin/backends`: the backend table and its controls (add, drain,
//! remove, breaker reset), acting on the router's
//! [`crate::resilience::BackendSet`] (the rule these share with a config
//! reload: [`crate::config::reload`]).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::admin::auth::authorize;
use crate::admin::error::AdminError;
use crate::admin::AdminState;
use crate::resilience::BackendSnapshot;

/// One row of `GET /admin/backends`.
#[derive(Debug, Serialize)]
pub struct BackendRow {
    /// `healthy`, `draining` or `ejected` (failing checks, ejected as an outlier, or breaker open).
    pub status: &'static str,
    /// Everything the router knows about the backend.
    #[serde(flatten)]
    pub snapshot: BackendSnapshot,
}

/// Body of `GET /admin/backends`.
#[derive(Debug, Serialize)]
pub struct BackendList {
    /// Per-backend rows.
    pub backends: Vec<BackendRow>,
    /// Router-wide counters (retries, hedges, budget, timeouts, ...).
    pub router: serde_json::Value,
}

/// Body of `POST /admin/backends`.
#[derive(Debug, Deserialize)]
pub struct AddBackend {
    /// gRPC URL, e.g. `http://10.0.0.7:50051`.
    pub url: String,
}

/// The operator-facing status of a backend.
pub fn status(b: &BackendSnapshot) -> &'static str {
    if b.state != "active" {
        "draining"
    } else if b.takes_requests() {
        "healthy"
    } else {
        "ejected"
    }
}

/// `GET /admin/backends`.
pub async fn list(State(state): State<Arc<AdminState>>) -> Json<BackendList> {
    let mut snapshot = state.router().snapshot();
    let backends = std::mem::take(&mut snapshot.backends)
        .into_iter()
        .map(|s| BackendRow {
            status: status(&s),
            snapshot: s,
        })
        .collect();
    let router = serde_json::to_value(&snapshot).unwrap_or_default();
    Json(BackendList { backends, router })
}

/// `POST /admin/backends` with `{"url": ...}`: adds a backend; 201 with its id.
pub async fn add(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    body: Result<Json<AddBackend>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), AdminError> {
    authorize(state.token.as_ref(), &headers)?;
    let Json(body) = body.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    let id = state.router().set().add_backend(body.url.trim())?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "id": id, "url": body.url.trim() })),
    ))
}

/// `POST /admin/backends/{id}/drain`.
pub async fn drain(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Result<Json<serde_json::Value>, AdminError> {
    authorize(state.token.as_ref(), &headers)?;
    state.router().set().drain_backend(id)?;
    Ok(Json(serde_json::json!({ "id": id, "state": "draining" })))
}

/// `DELETE /admin/backends/{id}`.
pub async fn remove(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Result<Json<serde_json::Value>, AdminError> {
    authorize(state.token.as_ref(), &headers)?;
    state.router().set().remove_backend(id)?;
    Ok(Json(serde_json::json!({ "id": id, "state": "removed" })))
}

/// `POST /admin/backends/{id}/breaker/reset`.
pub async fn reset(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Result<Json<serde_json::Value>, AdminError> {
    authorize(state.token.as_ref(), &headers)?;
    state.router().set().reset_breaker(id)?;
    Ok(Json(serde_json::json!({ "id": id, "breaker": "closed" })))
}
