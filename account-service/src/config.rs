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
    /// Account lanes of a PostgreSQL ledger: at most one transaction in
    /// flight per lane (default [`crate::store::DEFAULT_LANES`]).
    pub lanes: usize,
    /// Create the store if there is none (`--init`); otherwise a missing or
    /// empty store is refused at start.
    pub init: bool,
}

impl AccountServiceConfig {
    /// A configuration for `store_url` with the defaults: no demo seed,
    /// pool of [`hts_dbkit::pg::DEFAULT_POOL_SIZE`], default lanes, the
    /// store must exist (`init` false).
    pub fn new(store_url: impl Into<String>) -> Self {
        Self {
            store_url: store_url.into(),
            seed_demo: false,
            db_pool_size: hts_dbkit::pg::DEFAULT_POOL_SIZE,
            lanes: crate::store::DEFAULT_LANES,
            init: false,
        }
    }
}
