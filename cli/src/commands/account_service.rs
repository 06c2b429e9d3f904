//! `hts account-service`: balances, positions and reservations over gRPC.

use clap::Args;
use hts_account_service::AccountServiceConfig;
use std::process::ExitCode;

/// Flags of `hts account-service`.
#[derive(Debug, Args)]
pub struct AccountServiceArgs {
    /// Address to listen on for gRPC.
    #[arg(long, default_value = "127.0.0.1:50061")]
    pub listen: String,
    /// Store URL: `sqlite:hts-data/accounts.db` or
    /// `postgres://user@h1:5432,h2:5432/hts?target_session_attrs=read-write`.
    #[arg(long)]
    pub store: String,
    /// PostgreSQL connections of this process.
    #[arg(long, default_value_t = hts_dbkit::pg::DEFAULT_POOL_SIZE)]
    pub db_pool_size: usize,
    /// Seed the demo accounts ACC-0001…ACC-1000 (never resets existing balances).
    #[arg(long)]
    pub seed_demo: bool,
    /// Account lanes on PostgreSQL: an account's reservations always share a
    /// lane, each lane commits one batch at a time.
    #[arg(long, default_value_t = hts_account_service::store::DEFAULT_LANES)]
    pub lanes: usize,
    /// Create the store if there is none yet (first start of a new
    /// installation). Without it a missing or empty store is refused: a new
    /// store would silently lose every balance and reservation.
    #[arg(long)]
    pub init: bool,
}

/// Runs the account service until SIGINT/SIGTERM.
pub async fn run(args: AccountServiceArgs) -> anyhow::Result<ExitCode> {
    // Registered before the announcement, so an early SIGTERM drains.
    let shutdown = crate::shutdown::install()?;
    let (listener, local) = super::bind("account-service", &args.listen).await?;
    let config = AccountServiceConfig {
        store_url: args.store,
        seed_demo: args.seed_demo,
        db_pool_size: args.db_pool_size,
        lanes: args.lanes,
        init: args.init,
    };
    // Announced only once the store is opened, checked and migrated.
    let store = hts_account_service::open(&config).await?;
    super::announce("account-service", local);
    hts_account_service::serve_store(listener, store, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
