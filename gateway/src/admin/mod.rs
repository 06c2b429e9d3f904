//! The gateway's admin HTTP surface (axum): liveness and readiness probes,
//! Prometheus metrics, the backend table and its controls, the effective
//! configuration, connection counts and a small live status page.
//!
//! Reads are open; every request that changes state needs
//! `Authorization: Bearer <admin token>`. Without a configured token,
//! state-changing requests are always refused.
//!
//! Layout (one job per module): [`auth`] (token check), [`error`] (error
//! responses), [`readiness`] (what the gateway lacks to serve),
//! [`backends`] (table and controls), [`info`] (probes, config,
//! connections, metrics), [`status_page`] (HTML).

pub mod auth;
pub mod backends;
pub mod error;
pub mod info;
pub mod readiness;
pub mod status_page;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::routing::{delete, get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::config::GatewayConfig;
use crate::resilience::Router;
use crate::stats::GatewayStats;
use crate::telemetry::Exporter;
use crate::Gateway;

pub use auth::AdminToken;
pub use error::AdminError;

pub use crate::config::DEFAULT_ADMIN_ADDR;

/// Re-reads the configuration and applies it (`POST /admin/reload`).
pub type ReloadFn = Arc<dyn Fn() -> anyhow::Result<()> + Send + Sync>;

/// Everything the admin handlers read and steer.
pub struct AdminState {
    router: Arc<Router>,
    stats: GatewayStats,
    config: Arc<ArcSwap<GatewayConfig>>,
    local_addr: SocketAddr,
    token: Option<AdminToken>,
    reload: Option<ReloadFn>,
    prometheus: Option<PrometheusHandle>,
    exporter: Exporter,
    shutting_down: AtomicBool,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("shutting_down", &self.shutting_down)
            .finish_non_exhaustive()
    }
}

impl AdminState {
    /// State over `gateway`'s router and counters; `token` guards mutations.
    pub fn new(gateway: &Gateway, token: Option<AdminToken>) -> AdminState {
        AdminState {
            router: gateway.router(),
            stats: gateway.stats(),
            config: gateway.in_force(),
            local_addr: gateway.local_addr(),
            token,
            reload: None,
            prometheus: None,
            exporter: Exporter::new(),
            shutting_down: AtomicBool::new(false),
        }
    }

    /// Enables `POST /admin/reload`.
    pub fn with_reload(mut self, reload: ReloadFn) -> AdminState {
        self.reload = Some(reload);
        self
    }

    /// Enables `GET /metrics` with the process's Prometheus recorder.
    pub fn with_prometheus(mut self, handle: PrometheusHandle) -> AdminState {
        self.prometheus = Some(handle);
        self
    }

    /// Marks the gateway as shutting down: readiness turns 503 at once.
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// The router.
    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }
}

/// The admin routes over `state`.
pub fn app(state: Arc<AdminState>) -> axum::Router {
    axum::Router::new()
        .route("/", get(status_page::page))
        .route("/healthz", get(info::healthz))
        .route("/readyz", get(info::readyz))
        .route("/metrics", get(info::metrics))
        .route("/admin/config", get(info::config))
        .route("/admin/connections", get(info::connections))
        .route("/admin/reload", post(info::reload))
        .route("/admin/backends", get(backends::list).post(backends::add))
        .route("/admin/backends/{id}", delete(backends::remove))
        .route("/admin/backends/{id}/drain", post(backends::drain))
        .route("/admin/backends/{id}/breaker/reset", post(backends::reset))
        .with_state(state)
}

/// Serves the admin routes on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
