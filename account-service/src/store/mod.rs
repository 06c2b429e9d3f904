//! The durable account ledger, on SQLite (embedded) or PostgreSQL.
//!
//! SQLite: WAL mode with `synchronous=FULL`; all writes go through one
//! group-committing writer thread per process and use `BEGIN IMMEDIATE`, so
//! several processes may share one database file. Reads use separate
//! pooled connections. PostgreSQL: see [`postgres`].

mod ledger;
mod postgres;
mod schema;

use hts_dbkit::sqlite::SqliteDb;
use hts_proto::v1::{AssetBalance, ReleaseOutcome, ReserveOutcome};

pub(crate) use hts_dbkit::now_unix_ms;
pub use hts_dbkit::StoreError;
use ledger::ReserveArgs;

/// Handle to the ledger; cheap to clone and shareable across tasks.
#[derive(Clone)]
pub struct AccountStore {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(SqliteDb),
    Postgres(postgres::PgLedger),
}

impl AccountStore {
    /// Opens (creating and migrating if needed) the SQLite store at
    /// `sqlite:PATH`. Blocking: call from `spawn_blocking` or before the
    /// runtime gets busy. See [`AccountStore::connect`] for any URL.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let db = SqliteDb::open(url, "account-store-writer", schema::MIGRATIONS)?;
        Ok(Self {
            backend: Backend::Sqlite(db),
        })
    }

    /// Opens the store at `url`: `sqlite:PATH`, or a PostgreSQL URL
    /// (`postgres://…`, several hosts allowed) with a pool of `pool_size`
    /// connections. Creates and migrates the database.
    pub async fn connect(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        if hts_dbkit::pg::is_postgres_url(url) {
            return Ok(Self {
                backend: Backend::Postgres(postgres::PgLedger::connect(url, pool_size).await?),
            });
        }
        let url = url.to_owned();
        tokio::task::spawn_blocking(move || Self::open(&url))
            .await
            .map_err(|e| StoreError::ReadTask(e.to_string()))?
    }

    /// Holds `amount` of `asset` on `account_id` under `reservation_id`.
    ///
    /// Idempotent: a repeated identical call answers `ALREADY_RESERVED`
    /// (or `ALREADY_RELEASED` once released, never holding again); a call
    /// reusing the id with other parameters answers `RESERVATION_CONFLICT`.
    /// Returns only after the effect is committed.
    pub async fn reserve(
        &self,
        reservation_id: &str,
        account_id: &str,
        asset: &str,
        amount: i64,
    ) -> Result<ReserveOutcome, StoreError> {
        let args = ReserveArgs {
            reservation_id: reservation_id.to_owned(),
            account_id: account_id.to_owned(),
            asset: asset.to_owned(),
            amount,
        };
        match &self.backend {
            Backend::Sqlite(db) => db.write(move |conn| ledger::reserve(conn, &args)).await,
            Backend::Postgres(pg) => pg.reserve(&args).await,
        }
    }

    /// Returns the funds of a held reservation to `available`. Idempotent.
    pub async fn release(
        &self,
        reservation_id: &str,
        account_id: &str,
    ) -> Result<ReleaseOutcome, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => {
                let reservation_id = reservation_id.to_owned();
                let account_id = account_id.to_owned();
                db.write(move |conn| ledger::release(conn, &reservation_id, &account_id))
                    .await
            }
            Backend::Postgres(pg) => pg.release(reservation_id, account_id).await,
        }
    }

    /// The balances of `account_id` ordered by asset, `None` if unknown.
    pub async fn get_account(
        &self,
        account_id: &str,
    ) -> Result<Option<Vec<AssetBalance>>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => {
                let account_id = account_id.to_owned();
                db.read(move |conn| ledger::account_balances(conn, &account_id))
                    .await
            }
            Backend::Postgres(pg) => pg.get_account(account_id).await,
        }
    }

    /// Creates the demo accounts `ACC-0001`..`ACC-1000` (CASH 1e9 and 1e6
    /// shares of 005930, 000660 and 035420) in one transaction. Idempotent:
    /// existing accounts and balances are never reset.
    pub async fn seed_demo(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.write(ledger::seed_demo).await,
            Backend::Postgres(pg) => pg.seed_demo().await,
        }
    }
}

#[cfg(test)]
mod tests;
