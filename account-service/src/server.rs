//! Serving the account service on a bound listener.

use std::future::Future;

use anyhow::Context;
use hts_proto::v1::account_service_server::AccountServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::service::AccountGrpc;
use crate::store::{AccountStore, OpenMode};
use crate::AccountServiceConfig;

/// Opens the store (seeding the demo accounts if configured) and serves the
/// `AccountService` plus the standard gRPC health service on `listener`
/// until `shutdown` completes: [`open`] then [`serve_store`].
pub async fn serve(
    listener: TcpListener,
    config: AccountServiceConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = open(&config).await?;
    serve_store(listener, store, shutdown).await
}

/// Opens the store of `config` after its start-up checks (integrity,
/// identity, schema version; created only with `config.init`), migrates
/// it and seeds the demo accounts if configured. Errors name the store.
pub async fn open(config: &AccountServiceConfig) -> anyhow::Result<AccountStore> {
    let mode = if config.init {
        OpenMode::Init
    } else {
        OpenMode::Existing
    };
    let store = AccountStore::connect_with_lanes(
        &config.store_url,
        config.db_pool_size,
        config.lanes,
        mode,
    )
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
    tracing::info!(store_id = %store.identity().store_id, "account store opened");
    Ok(store)
}

/// Serves `store` as the `AccountService` plus the standard gRPC health
/// service on `listener` until `shutdown` completes.
pub async fn serve_store(
    listener: TcpListener,
    store: AccountStore,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
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
