//! Serving the account service on a bound listener.

use std::future::Future;

use anyhow::Context;
use hts_proto::v1::account_service_server::AccountServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::service::AccountGrpc;
use crate::store::AccountStore;
use crate::AccountServiceConfig;

/// Opens the store (seeding the demo accounts if configured) and serves the
/// `AccountService` plus the standard gRPC health service on `listener`
/// until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: AccountServiceConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store =
        AccountStore::connect_with_lanes(&config.store_url, config.db_pool_size, config.lanes)
            .await
            .with_context(|| {
                format!(
                    "opening account store {}",
                    hts_dbkit::redact_url(&config.store_url)
                )
            })?;
    if config.seed_demo {
        store.seed_demo().await.context("seeding demo accounts")?;
    }
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<AccountServiceServer<AccountGrpc>>()
        .await;
    let local = listener.local_addr().ok();
    tracing::info!(addr = ?local, "account service listening");
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(AccountServiceServer::new(AccountGrpc::new(store)))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
        .context("account service transport failed")?;
    tracing::info!(addr = ?local, "account service stopped");
    Ok(())
}
