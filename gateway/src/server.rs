//! [`Gateway`]: the accept loop, connection limit and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::BytesMut;
use hts_proto::v1::Code;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::codec::Encoder;
use tokio_util::sync::CancellationToken;

use crate::auth::JwtAuth;
use crate::codec::FrameCodec;
use crate::config::GatewayConfig;
use crate::connection::{serve, Shared};
use crate::correlation::CorrelationTable;
use crate::frame::Frame;
use crate::resilience::{BackendSet, Live, Router};
use crate::routing::BackendSettings;
use crate::stats::GatewayStats;

/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A bound, not yet running gateway.
#[derive(Debug)]
pub struct Gateway {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Gateway {
    /// Binds `config.listen_addr` and prepares the backend pool.
    pub async fn bind(config: GatewayConfig) -> anyhow::Result<Gateway> {
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen_addr))?;
        Gateway::from_listener(listener, config)
    }

    /// Uses an already bound listener. Must run inside a Tokio runtime.
    pub fn from_listener(listener: TcpListener, config: GatewayConfig) -> anyhow::Result<Gateway> {
        config.validate()?;
        let local_addr = listener
            .local_addr()
            .context("listener has no local address")?;
        let settings = BackendSettings {
            connect_timeout: config.backend_connect_timeout,
            keepalive_interval: config.backend_keepalive_interval,
        };
        let live = Arc::new(Live::new(config.resilience.clone())?);
        let set = BackendSet::new(&config.backends, settings, live.clone())?;
        let router = Arc::new(Router::new(set, live, config.request_timeout));
        let table = Arc::new(CorrelationTable::new(config.correlation_capacity));
        let shared = Arc::new(Shared {
            auth: JwtAuth::new(&config.jwt_secret),
            router,
            stats: GatewayStats::new(table.clone()),
            table,
            next_conn_id: AtomicU64::new(1),
            config,
        });
        Ok(Gateway {
            listener,
            local_addr,
            shared,
        })
    }

    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The configuration the gateway was started with.
    pub fn config(&self) -> &GatewayConfig {
        &self.shared.config
    }

    /// A handle on the gateway's counters, valid after `run` returns too.
    pub fn stats(&self) -> GatewayStats {
        self.shared.stats.clone()
    }

    /// The router: backend set (add/drain/remove/reset), policies and
    /// snapshot; valid after `run` returns too.
    pub fn router(&self) -> Arc<Router> {
        self.shared.router.clone()
    }

    /// Serves clients until `shutdown` resolves, then stops accepting, lets
    /// every connection deliver its in-flight answers (up to `drain_timeout`)
    /// and returns once all connections are closed.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let Gateway {
            listener,
            local_addr,
            shared,
        } = self;
        tracing::info!(%local_addr, backends = ?shared.config.backends, "gateway listening");
        let limit = Arc::new(Semaphore::new(shared.config.max_connections));
        let token = CancellationToken::new();
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                Some(done) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(e) = done {
                        tracing::error!(error = %e, "connection task failed");
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        if let Err(e) = stream.set_nodelay(true) {
                            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
                        }
                        match limit.clone().try_acquire_owned() {
                            Ok(slot) => {
                                let shared = shared.clone();
                                let token = token.clone();
                                let guard = shared.stats.connection_opened();
                                connections.spawn(async move {
                                    tracing::debug!(%peer, "connection accepted");
                                    serve(stream, shared, token).await;
                                    drop(guard);
                                    drop(slot);
                                });
                            }
                            Err(_) => reject(stream, &shared),
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
            }
        }
        drop(listener);
        tracing::info!(open = connections.len(), "gateway shutting down");
        token.cancel();
        while let Some(done) = connections.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "connection task failed");
            }
        }
        tracing::info!("gateway stopped");
        Ok(())
    }
}

/// Refuses a connection beyond `max_connections`: one ERROR frame, written
/// without waiting (it always fits a fresh socket's buffer), then close.
fn reject(stream: TcpStream, shared: &Shared) {
    shared.stats.connection_rejected();
    shared.stats.record(Code::ServiceUnavailable as i32);
    let frame = Frame::error(0, Code::ServiceUnavailable, "too many connections");
    let mut buf = BytesMut::new();
    if FrameCodec::default().encode(frame, &mut buf).is_ok() {
        let _ = stream.try_write(&buf);
    }
    tracing::warn!("refused connection: too many connections");
}
