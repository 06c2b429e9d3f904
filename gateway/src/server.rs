//! [`Gateway`]: the accept loop, connection limit, optional TLS and graceful
//! shutdown.
//!
//! The accept loop never waits on a client: a refused connection gets one
//! ERROR frame written without waiting, and a TLS handshake runs in the
//! connection's own task, bounded by `tls_handshake_timeout`, while holding
//! its connection slot (so stalled handshakes count against
//! `max_connections` and cannot pile up unbounded).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use bytes::BytesMut;
use hts_proto::v1::Code;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::codec::Encoder;
use tokio_util::sync::CancellationToken;

use crate::codec::FrameCodec;
use crate::config::GatewayConfig;
use crate::connection::serve;
use crate::frame::Frame;
use crate::resilience::Router;
use crate::shared::Shared;
use crate::stats::GatewayStats;
use crate::tls::TlsAcceptor;

/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A bound, not yet running gateway.
pub struct Gateway {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("local_addr", &self.local_addr)
            .field("shared", &self.shared)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Gateway {
    /// Binds `config.listen` (with `config.listen_backlog`) and prepares
    /// the backend pool.
    pub async fn bind(config: GatewayConfig) -> anyhow::Result<Gateway> {
        let listen = &config.listen;
        let addr = tokio::net::lookup_host(listen)
            .await
            .with_context(|| format!("invalid listen address {listen}"))?
            .next()
            .with_context(|| format!("{listen} resolves to no address"))?;
        let listener = bind_listener(addr, config.listen_backlog)
            .with_context(|| format!("cannot listen on {listen}"))?;
        Gateway::from_listener(listener, config)
    }

    /// Uses an already bound listener. Must run inside a Tokio runtime.
    /// Loads the TLS configuration from `tls_cert`/`tls_key` unless
    /// `config.tls` is given.
    pub fn from_listener(
        listener: TcpListener,
        mut config: GatewayConfig,
    ) -> anyhow::Result<Gateway> {
        config.validate()?;
        if let (None, Some(cert), Some(key)) = (&config.tls, &config.tls_cert, &config.tls_key) {
            config.tls = Some(crate::tls::load_server_config(cert, key)?);
        }
        let local_addr = listener
            .local_addr()
            .context("listener has no local address")?;
        let tls = config.tls.clone().map(TlsAcceptor::from);
        let shared = Arc::new(Shared::new(config)?);
        Ok(Gateway {
            listener,
            local_addr,
            shared,
            tls,
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

    /// The settings in force: the start configuration until a reload
    /// ([`crate::config::reload::Reloader`]) replaces it.
    pub fn in_force(&self) -> Arc<ArcSwap<GatewayConfig>> {
        self.shared.in_force.clone()
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
            tls,
        } = self;
        tracing::info!(
            %local_addr,
            backends = ?shared.config.backends,
            tls = tls.is_some(),
            "gateway listening"
        );
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
                                let tls = tls.clone();
                                let guard = shared.stats.connection_opened();
                                connections.spawn(async move {
                                    tracing::debug!(%peer, "connection accepted");
                                    match tls {
                                        None => {
                                            let (read, write) = stream.into_split();
                                            serve(read, write, peer, shared, token).await;
                                        }
                                        Some(tls) => {
                                            serve_tls(stream, tls, peer, shared, token).await;
                                        }
                                    }
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

/// A listener on `addr` whose accept queue holds `backlog` connections (the
/// kernel caps it at `net.core.somaxconn`). `TcpListener::bind` uses 128: a
/// burst of connection attempts beyond that (a reconnect storm after a
/// restart, or a flood) has SYNs or handshake ACKs dropped, and a client
/// that waits for the server to speak first can then hang on a connection
/// the gateway never saw.
pub fn bind_listener(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Completes the TLS handshake (bounded by `tls_handshake_timeout`, and
/// abandoned on shutdown), then serves the connection. A failed or stalled
/// handshake just closes the socket: there is no TLS session to carry an
/// ERROR frame.
async fn serve_tls(
    stream: TcpStream,
    tls: TlsAcceptor,
    peer: SocketAddr,
    shared: Arc<Shared>,
    token: CancellationToken,
) {
    let limit = *shared.config.tls_handshake_timeout_ms;
    let handshake = tokio::select! {
        _ = token.cancelled() => return,
        done = tokio::time::timeout(limit, tls.accept(stream)) => done,
    };
    match handshake {
        Ok(Ok(stream)) => {
            let (read, write) = tokio::io::split(stream);
            serve(read, write, peer, shared, token).await;
        }
        Ok(Err(e)) => {
            shared.stats.tls_handshake_failed();
            tracing::info!(%peer, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            shared.stats.tls_handshake_failed();
            tracing::info!(%peer, timeout = ?limit, "TLS handshake not completed in time");
        }
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
