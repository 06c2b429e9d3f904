//! `hts order-service`: one order-service backend over gRPC.

use clap::Args;
use hts_order_core::OrderServiceConfig;
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `hts order-service`.
#[derive(Debug, Args)]
pub struct OrderServiceArgs {
    /// Address to listen on for gRPC.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub listen: String,
    /// Store URL, e.g. `sqlite:hts-data/orders.db`; several order services may share one.
    #[arg(long)]
    pub store: String,
    /// URL of the account service, e.g. `http://127.0.0.1:50061`.
    #[arg(long)]
    pub account_service: String,
    /// How often reservations of cancelled orders that could not be released yet are retried.
    #[arg(long, default_value_t = 1000)]
    pub release_retry_interval_ms: u64,
}

impl OrderServiceArgs {
    /// The library configuration these flags describe.
    pub fn config(&self) -> OrderServiceConfig {
        OrderServiceConfig {
            store_url: self.store.clone(),
            account_service_url: self.account_service.clone(),
            release_retry_interval: Duration::from_millis(self.release_retry_interval_ms),
        }
    }
}

/// Runs one order service until SIGINT/SIGTERM.
pub async fn run(args: OrderServiceArgs) -> anyhow::Result<ExitCode> {
    let (listener, _) = super::bind_and_announce("order-service", &args.listen).await?;
    hts_order_core::serve(listener, args.config(), crate::shutdown::signal()).await?;
    Ok(ExitCode::SUCCESS)
}
