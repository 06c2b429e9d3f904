//! Serving the order service on a bound listener.

use std::future::Future;

use anyhow::Context;
use hts_account_client::AccountClient;
use hts_proto::v1::order_service_server::OrderServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::service::orphans::run_orphan_sweeps;
use crate::service::{run_release_retries, OrderContext, OrderGrpc};
use crate::OrderServiceConfig;

/// Aborts the background task when serving ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Opens the store, connects (lazily) to the account service, starts the
/// pending-release retry task and serves `OrderService` plus the standard
/// gRPC health service on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: OrderServiceConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let faults = crate::fault::FaultInjector::new(crate::fault::FaultConfig::default());
    serve_with_faults(listener, config, faults, shutdown).await
}

/// [`serve`] with `faults` injected into every OrderService call (the
/// health service is not affected); for resilience tests.
pub async fn serve_with_faults(
    listener: TcpListener,
    config: OrderServiceConfig,
    faults: std::sync::Arc<crate::fault::FaultInjector>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with_admin(listener, config, faults, None, shutdown).await
}

/// [`serve_with_faults`] plus, with `admin`, the admin HTTP surface
/// (`/healthz`, `/readyz`, `/metrics`) on its own listener while serving.
pub async fn serve_with_admin(
    listener: TcpListener,
    config: OrderServiceConfig,
    faults: std::sync::Arc<crate::fault::FaultInjector>,
    admin: Option<crate::admin::AdminOptions>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_on(vec![listener], config, faults, admin, shutdown).await
}

/// Serves one order service on each of `listeners`, all on ONE store,
/// outbox and account client (each with its own place lanes and health
/// service): services of one process then share the store's writer
/// instead of contending for its file's lock, as `hts demo`'s backends do.
pub async fn serve_group(
    listeners: Vec<TcpListener>,
    config: OrderServiceConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let faults = crate::fault::FaultInjector::new(crate::fault::FaultConfig::default());
    serve_on(listeners, config, faults, None, shutdown).await
}

async fn serve_on(
    listeners: Vec<TcpListener>,
    config: OrderServiceConfig,
    faults: std::sync::Arc<crate::fault::FaultInjector>,
    admin: Option<crate::admin::AdminOptions>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    prepare(config)
        .await?
        .serve(listeners, faults, admin, shutdown)
        .await
}

/// An order service ready to serve: store opened, checked, migrated and
/// paired with the account store; outbox running (its recovery has
/// started). Made by [`prepare`]; a command announces "listening" only
/// once it has one.
pub struct PreparedOrderService {
    config: OrderServiceConfig,
    store: std::sync::Arc<dyn crate::store::OrderStore>,
    outbox: crate::process::OutboxRuntime,
    accounts: AccountClient,
    pairing: Option<crate::process::PendingPairing>,
}

/// Opens the store of `config` (start-up checks, migrations), starts its
/// outbox, and checks the store's pairing with the account service
/// ([`crate::process::check_pairing`]). Every failure names its cause.
pub async fn prepare(config: OrderServiceConfig) -> anyhow::Result<PreparedOrderService> {
    let (store, outbox) = crate::process::open(&config).await?;
    let accounts = AccountClient::connect_lazy_with(
        &config.account_service_url,
        config.account_client.clone(),
    )
    .context("configuring the account service client")?;
    let pairing = crate::process::check_pairing(
        store.clone(),
        accounts.clone(),
        config.account_service_url.clone(),
        config.pairing_timeout,
    )
    .await?;
    Ok(PreparedOrderService {
        config,
        store,
        outbox,
        accounts,
        pairing,
    })
}

impl PreparedOrderService {
    /// Serves one order service on each of `listeners` (see [`serve_group`])
    /// with `faults` and the optional `admin` surface until `shutdown`.
    pub async fn serve(
        self,
        listeners: Vec<TcpListener>,
        faults: std::sync::Arc<crate::fault::FaultInjector>,
        admin: Option<crate::admin::AdminOptions>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            config,
            store,
            outbox,
            accounts,
            pairing,
        } = self;
        // A pairing check still pending at start stops serving if it fails.
        let (refused_tx, refused_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
        let _pairing = pairing.map(|task| {
            AbortOnDrop(tokio::spawn(async move {
                let failure = match task.await {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => e,
                    Err(e) => anyhow::anyhow!("store pairing check failed: {e}"),
                };
                tracing::error!(error = %format!("{failure:#}"), "refusing to serve");
                let _ = refused_tx.send(failure);
            }))
        });
        let refused = futures::FutureExt::shared(Box::pin(async move {
            match refused_rx.await {
                Ok(e) => Some(std::sync::Arc::new(e)),
                Err(_) => std::future::pending().await,
            }
        }));
        let refused_wait = refused.clone();
        let shutdown = async move {
            tokio::select! {
                _ = shutdown => {}
                _ = refused_wait => {}
            }
        };
        let _admin = match admin {
            Some(options) => {
                let state = std::sync::Arc::new(crate::admin::OrderAdmin::new(
                    store.clone(),
                    &config.account_service_url,
                    accounts.clone(),
                    options.prometheus,
                )?);
                Some(AbortOnDrop(tokio::spawn(async move {
                    if let Err(e) = crate::admin::serve(options.listener, state).await {
                        tracing::error!(error = %e, "admin server failed");
                    }
                })))
            }
            None => None,
        };
        let ctx = OrderContext { store, accounts };
        let _retries = AbortOnDrop(tokio::spawn(run_release_retries(
            ctx.clone(),
            config.release_retry_interval,
        )));
        let _sweeps = AbortOnDrop(tokio::spawn(run_orphan_sweeps(
            ctx.clone(),
            config.orphan_sweep_interval,
            config.orphan_grace(),
        )));
        let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
        let servers = listeners.into_iter().map(|listener| {
            let service = crate::fault::Faulty::new(
                OrderGrpc::new(ctx.clone(), config.place_lanes),
                std::sync::Arc::clone(&faults),
            );
            serve_one(listener, service, shutdown.clone())
        });
        let results = futures::future::join_all(servers).await;
        // Graceful shutdown: publish what the fast path still holds.
        outbox.shutdown().await;
        if let Some(Some(e)) = futures::FutureExt::now_or_never(refused) {
            anyhow::bail!("{e:#}");
        }
        results.into_iter().collect()
    }
}

/// Serves `service` and the standard health service on `listener` until
/// `shutdown`.
async fn serve_one(
    listener: TcpListener,
    service: crate::fault::Faulty<OrderGrpc>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<OrderServiceServer<OrderGrpc>>().await;
    let local = listener.local_addr().ok();
    tracing::info!(addr = ?local, "order service listening");
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(OrderServiceServer::new(service))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
        .context("order service transport failed")?;
    tracing::info!(addr = ?local, "order service stopped");
    Ok(())
}
