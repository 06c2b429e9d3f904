//! The durable account ledger.
//!
//! SQLite in WAL mode with `synchronous=FULL`; all writes go through one
//! group-committing writer thread per process and use `BEGIN IMMEDIATE`, so
//! several processes may share one database file. Reads use separate
//! pooled connections.

mod connection;
mod error;
mod ledger;
mod read_pool;
mod schema;
mod url;
mod writer;

use std::time::{SystemTime, UNIX_EPOCH};

use hts_proto::v1::{AssetBalance, ReleaseOutcome, ReserveOutcome};

pub use error::StoreError;
use ledger::ReserveArgs;
use read_pool::ReadPool;
use writer::GroupWriter;

/// Handle to the ledger; cheap to clone and shareable across tasks.
#[derive(Clone)]
pub struct AccountStore {
    writer: GroupWriter,
    reads: ReadPool,
}

impl AccountStore {
    /// Opens (creating and migrating if needed) the store at `url`, which
    /// must be `sqlite:PATH`. Blocking: call from `spawn_blocking` or before
    /// the runtime gets busy.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let path = url::sqlite_path(url)?;
        let mut conn = connection::open(&path)?;
        schema::migrate(&mut conn)?;
        let writer = GroupWriter::spawn(conn, "account-store-writer")
            .map_err(|e| StoreError::Commit(format!("cannot start writer thread: {e}")))?;
        Ok(Self {
            writer,
            reads: ReadPool::new(path),
        })
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
        self.writer
            .execute(move |conn| ledger::reserve(conn, &args))
            .await
    }

    /// Returns the funds of a held reservation to `available`. Idempotent.
    pub async fn release(
        &self,
        reservation_id: &str,
        account_id: &str,
    ) -> Result<ReleaseOutcome, StoreError> {
        let reservation_id = reservation_id.to_owned();
        let account_id = account_id.to_owned();
        self.writer
            .execute(move |conn| ledger::release(conn, &reservation_id, &account_id))
            .await
    }

    /// The balances of `account_id` ordered by asset, `None` if unknown.
    pub async fn get_account(
        &self,
        account_id: &str,
    ) -> Result<Option<Vec<AssetBalance>>, StoreError> {
        let account_id = account_id.to_owned();
        self.reads
            .read(move |conn| ledger::account_balances(conn, &account_id))
            .await
    }

    /// Creates the demo accounts `ACC-0001`..`ACC-1000` (CASH 1e9 and 1e6
    /// shares of 005930, 000660 and 035420) in one transaction. Idempotent:
    /// existing accounts and balances are never reset.
    pub async fn seed_demo(&self) -> Result<(), StoreError> {
        self.writer.execute(ledger::seed_demo).await
    }
}

/// Wall-clock time in Unix epoch milliseconds (0 if the clock is before 1970).
pub(crate) fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
