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

/// `GET /admin/config`: the effective configuration, secrets redacted.
pub async fn config(State(state): State<Arc<AdminState>>) -> Json<serde_json::Value> {
    let c = &state.config;
    let backends: Vec<String> = state
        .router()
        .set()
        .snapshot()
        .into_iter()
        .filter(|b| b.state == "active")
        .map(|b| b.url)
        .collect();
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    Json(serde_json::json!({
        "listen_addr": c.listen_addr.to_string(),
        "listen_backlog": c.listen_backlog,
        "backends": backends,
        "request_timeout_ms": ms(c.request_timeout),
        "max_body_len": c.max_body_len,
        "frame_read_timeout_ms": ms(c.frame_read_timeout),
        "idle_timeout_ms": ms(c.idle_timeout),
        "login_timeout_ms": ms(c.login_timeout),
        "max_in_flight_per_connection": c.max_in_flight_per_connection,
        "max_connections": c.max_connections,
        "max_failed_logins": c.max_failed_logins,
        "login_failures_per_source": c.login_failures_per_source,
        "login_failure_window_ms": ms(c.login_failure_window),
        "max_login_sources": c.max_login_sources,
        "tls": c.tls.is_some(),
        "tls_handshake_timeout_ms": ms(c.tls_handshake_timeout),
        "correlation_capacity": c.correlation_capacity,
        "write_timeout_ms": ms(c.write_timeout),
        "drain_timeout_ms": ms(c.drain_timeout),
        "backend_connect_timeout_ms": ms(c.backend_connect_timeout),
        "backend_keepalive_interval_ms": ms(c.backend_keepalive_interval),
        "jwt_secret": "[redacted]",
        "admin_token": if state.token.is_some() { "[redacted]" } else { "[not configured]" },
        "resilience": &*state.router().live().config(),
        "session_store": c.session_store.as_ref().map(|s| serde_json::json!({
            "url": hts_dbkit::redact_url(&s.url),
            "op_timeout_ms": ms(s.op_timeout),
        })),
    }))
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
        "max_connections": state.config.max_connections,
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
