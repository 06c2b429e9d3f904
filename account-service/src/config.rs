//! Configuration of the account service.

/// Settings of [`crate::serve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountServiceConfig {
    /// Where the ledger lives, e.g. `sqlite:/var/lib/hts/accounts.db`.
    pub store_url: String,
    /// Seed the demo accounts (idempotent; never resets balances).
    pub seed_demo: bool,
}
