//! [`Shared`]: what every connection of one gateway shares, built once by
//! [`Shared::new`] from the configuration.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::Context as _;
use arc_swap::ArcSwap;

use crate::auth::JwtAuth;
use crate::config::GatewayConfig;
use crate::correlation::CorrelationTable;
use crate::login_throttle::LoginThrottle;
use crate::resilience::{BackendSet, Router};
use crate::sessions::SessionDirectory;
use crate::stats::GatewayStats;
use crate::upstream::{ChannelSettings, Connector, GrpcConnector};

/// State shared by all connections of a gateway.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The settings the gateway started with (connections read their limits
    /// here; only restart-only keys matter to them).
    pub(crate) config: GatewayConfig,
    /// The settings in force (replaced by a reload; reported by the admin API).
    pub(crate) in_force: Arc<ArcSwap<GatewayConfig>>,
    pub(crate) auth: JwtAuth,
    pub(crate) sessions: Arc<SessionDirectory>,
    pub(crate) table: Arc<CorrelationTable>,
    pub(crate) login_throttle: Option<Arc<LoginThrottle>>,
    pub(crate) router: Arc<Router>,
    pub(crate) stats: GatewayStats,
    pub(crate) next_conn_id: AtomicU64,
}

impl Shared {
    /// Everything a validated `config` describes, with backends reached over
    /// gRPC. Must run inside a Tokio runtime (health checks, Redis).
    pub(crate) fn new(config: GatewayConfig) -> anyhow::Result<Shared> {
        let connector = GrpcConnector::new(ChannelSettings {
            connect_timeout: *config.backend_connect_timeout_ms,
            keepalive_interval: *config.backend_keepalive_interval_ms,
        });
        Shared::with_connector(config, Arc::new(connector))
    }

    /// [`Shared::new`] with backends reached through `connector`.
    pub(crate) fn with_connector(
        config: GatewayConfig,
        connector: Arc<dyn Connector>,
    ) -> anyhow::Result<Shared> {
        config.validate()?;
        let set = BackendSet::new(
            &config.backends,
            connector,
            config.resilience.backend(*config.request_timeout_ms),
        )?;
        let router = Arc::new(Router::new(
            set,
            config.resilience.clone(),
            *config.request_timeout_ms,
        ));
        let table = Arc::new(CorrelationTable::new(config.correlation_capacity));
        let sessions = SessionDirectory::new(config.session_store().as_ref())
            .context("configuring the session store")?;
        let login_throttle = LoginThrottle::new(
            config.login_failures_per_source,
            *config.login_failure_window_secs,
            config.max_login_sources,
        )
        .map(Arc::new);
        Ok(Shared {
            auth: JwtAuth::new(&config.jwt_secret),
            sessions: Arc::new(sessions),
            router,
            stats: GatewayStats::new(table.clone(), login_throttle.clone()),
            table,
            login_throttle,
            next_conn_id: AtomicU64::new(1),
            in_force: Arc::new(ArcSwap::from_pointee(config.clone())),
            config,
        })
    }
}
