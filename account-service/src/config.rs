//! Configuration of the account service.

/// Settings of [`crate::serve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountServiceConfig {
    /// Where the ledger lives: `sqlite:/var/lib/hts/accounts.db` or a
    /// PostgreSQL URL (several hosts allowed).
    pub store_url: String,
    /// Seed the demo accounts (idempotent; never resets balances).
    pub seed_demo: bool,
    /// PostgreSQL connections per process (default 40).
    pub db_pool_size: usize,
}
