//! The order service's admin HTTP surface (axum): `/healthz`, `/readyz`
//! (503 + `Retry-After` naming the unreachable dependency: the database or
//! the account service) and `/metrics` (outbox backlog, oldest READY age,
//! published and DLQ totals, dependency state, account-client errors and
//! breaker state).
//!
//! Layout: [`readiness`] (dependency probes), [`telemetry`] (metric names
//! and the scrape-time export).

pub mod readiness;
pub mod telemetry;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::store::OrderStore;
use readiness::{Probes, RETRY_AFTER_SECS};

/// The admin listener of an order service and its metrics recorder.
#[derive(Debug)]
pub struct AdminOptions {
    /// Where to serve the admin routes.
    pub listener: TcpListener,
    /// The process's Prometheus recorder (`/metrics` answers 501 without one).
    pub prometheus: Option<PrometheusHandle>,
}

/// What the admin handlers read.
pub struct OrderAdmin {
    probes: Probes,
    accounts: hts_account_client::AccountClient,
    prometheus: Option<PrometheusHandle>,
}

impl std::fmt::Debug for OrderAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderAdmin").finish_non_exhaustive()
    }
}

impl OrderAdmin {
    /// State over `store`, the account service at `account_url` and the
    /// service's account client (whose breaker state `/metrics` exports).
    pub fn new(
        store: Arc<dyn OrderStore>,
        account_url: &str,
        accounts: hts_account_client::AccountClient,
        prometheus: Option<PrometheusHandle>,
    ) -> anyhow::Result<OrderAdmin> {
        Ok(OrderAdmin {
            probes: Probes::new(store, account_url)?,
            accounts,
            prometheus,
        })
    }
}

/// The admin routes over `state`.
pub fn app(state: Arc<OrderAdmin>) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serves the admin routes on `listener` (until the task is aborted).
pub async fn serve(listener: TcpListener, state: Arc<OrderAdmin>) -> std::io::Result<()> {
    axum::serve(listener, app(state)).await
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "alive" }))
}

async fn readyz(State(state): State<Arc<OrderAdmin>>) -> Response {
    let r = state.probes.check().await;
    telemetry::export_readiness(&r);
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

async fn metrics(State(state): State<Arc<OrderAdmin>>) -> Response {
    let Some(handle) = &state.prometheus else {
        return (StatusCode::NOT_IMPLEMENTED, "no metrics recorder installed").into_response();
    };
    let r = state.probes.check().await;
    telemetry::export_readiness(&r);
    if let Some(stats) = &r.outbox {
        telemetry::export_outbox(stats);
    }
    state.accounts.export_breaker_state();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
