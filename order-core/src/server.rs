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
/// pending-release retries and the orphan sweep, and serves `OrderService` plus the standard
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
    let (store, outbox) = crate::process::open(&config).await?;
    let accounts = AccountClient::connect_lazy_with(
        &config.account_service_url,
        config.account_client.clone(),
    )
    .context("configuring the account service client")?;
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
    results.into_iter().collect()
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
