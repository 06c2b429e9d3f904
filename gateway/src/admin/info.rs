//! Probes, metrics, effective configuration, connections and reload.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::admin::auth::authorize;
use crate::admin::error::AdminError;
use crate::admin::readiness::{evaluate, RETRY_AFTER_SECS};
use crate::admin::AdminState;

/// Accounts listed by `GET /admin/connections` (the busiest first).
pub const TOP_ACCOUNTS: usize = 20;

/// `GET /healthz`: the process is alive and its runtime answers.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "alive" }))
}

/// `GET /readyz`: 200 when the gateway can serve; else 503 with
/// `Retry-After` and the missing pieces.
pub async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    let r = evaluate(&state.router().set().snapshot(), state.is_shutting_down());
    if r.is_ready() {
        (StatusCode::OK, Json(r)).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())],
            Json(r),
        )
            .into_response()
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<Arc<AdminState>>) -> Result<Response, AdminError> {
    let handle = state
        .prometheus
        .as_ref()
        .ok_or(AdminError::Unavailable("no metrics recorder installed"))?;
    state
        .exporter
        .export(&state.router().snapshot(), &state.stats);
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response())
}

/// `GET /admin/config`: the settings in force, secrets redacted, with the
/// address the client listener is bound to (`local_addr`), the live
/// backend set (`backends`: admin changes included) and the live policies.
pub async fn config(State(state): State<Arc<AdminState>>) -> Json<serde_json::Value> {
    let in_force = state.config.load();
    let mut body = in_force.redacted();
    let backends: Vec<String> = state
        .router()
        .set()
        .snapshot()
        .into_iter()
        .filter(|b| b.state == "active")
        .map(|b| b.url)
        .collect();
    if let Some(map) = body.as_object_mut() {
        map.insert("local_addr".into(), state.local_addr.to_string().into());
        map.insert("backends".into(), serde_json::json!(backends));
        map.insert("tls".into(), in_force.tls.is_some().into());
        map.insert(
            "resilience".into(),
            serde_json::to_value(&*state.router().config()).unwrap_or_default(),
        );
        map.insert("jwt_secret".into(), "[redacted]".into());
        map.insert(
            "admin_token".into(),
            if state.token.is_some() {
                "[redacted]"
            } else {
                "[not configured]"
            }
            .into(),
        );
    }
    Json(body)
}

/// `GET /admin/connections`: connection counts and in-flight requests per account.
pub async fn connections(State(state): State<Arc<AdminState>>) -> Json<serde_json::Value> {
    let s = &state.stats;
    let per_account: Vec<serde_json::Value> = s
        .in_flight_by_account(TOP_ACCOUNTS)
        .into_iter()
        .map(|(account, n)| serde_json::json!({ "account": account, "in_flight": n }))
        .collect();
    Json(serde_json::json!({
        "open": s.open_connections(),
        "accepted": s.accepted_connections(),
        "rejected": s.rejected_connections(),
        "tls_handshake_failures": s.tls_handshake_failures(),
        "logins_throttled": s.logins_throttled(),
        "login_sources_tracked": s.login_sources_tracked(),
        "max_connections": state.config.load().max_connections,
        "correlation_size": s.correlation_len(),
        "correlation_capacity": s.correlation_capacity(),
        "accounts_in_flight": s.accounts_in_flight(),
        "in_flight_by_account": per_account,
    }))
}

/// `POST /admin/reload`: re-reads the configuration and applies backends and policies.
pub async fn reload(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, AdminError> {
    authorize(state.token.as_ref(), &headers)?;
    let reload = state
        .reload
        .as_ref()
        .ok_or(AdminError::Unavailable("no configuration source to reload"))?;
    reload().map_err(|e| AdminError::Reload(format!("{e:#}")))?;
    tracing::info!("configuration reloaded via admin");
    Ok(Json(serde_json::json!({ "reloaded": true })))
}
