//! Serving the order service on a bound listener.

use std::future::Future;

use anyhow::Context;
use hts_account_client::AccountClient;
use hts_proto::v1::order_service_server::OrderServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::service::{run_release_retries, OrderContext, OrderGrpc};
use crate::{open_store, OrderServiceConfig};

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
    let url = config.store_url.clone();
    let store = tokio::task::spawn_blocking(move || open_store(&url))
        .await
        .context("store open task failed")?
        .with_context(|| format!("opening order store {}", config.store_url))?;
    let accounts = AccountClient::connect_lazy(&config.account_service_url)
        .context("configuring the account service client")?;
    let ctx = OrderContext { store, accounts };
    let _retries = AbortOnDrop(tokio::spawn(run_release_retries(
        ctx.clone(),
        config.release_retry_interval,
    )));
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<OrderServiceServer<OrderGrpc>>().await;
    let local = listener.local_addr().ok();
    tracing::info!(addr = ?local, "order service listening");
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(OrderServiceServer::new(OrderGrpc::new(ctx)))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
        .context("order service transport failed")?;
    tracing::info!(addr = ?local, "order service stopped");
    Ok(())
}
