//! The durable account ledger, on SQLite (embedded) or PostgreSQL.
//!
//! Every write is a batch of [`LedgerOp`]s decided by [`book::Book`] in
//! order, exactly as one at a time, and committed by one transaction.
//! SQLite: WAL mode with `synchronous=FULL`; all writes go through one
//! group-committing writer thread per process and use `BEGIN IMMEDIATE`, so
//! several processes may share one database file; a batch call is one
//! operation of the writer. Reads use separate pooled connections.
//! PostgreSQL: see [`postgres`] (account lanes, one transaction per lane
//! batch).

mod book;
mod ledger;
mod postgres;
mod schema;

use hts_dbkit::sqlite::SqliteDb;
use hts_proto::v1::{AssetBalance, HeldReservation, ReleaseOutcome, ReserveOutcome};

use book::{Corrupt, LedgerOp, LedgerOutcome};
pub use hts_dbkit::identity::{OpenMode, StoreIdentity};
pub(crate) use hts_dbkit::now_unix_ms;
pub use hts_dbkit::StoreError;

pub use book::ReserveArgs;

/// Default number of account lanes of a PostgreSQL ledger.
pub const DEFAULT_LANES: usize = 4;

/// Handle to the ledger; cheap to clone and shareable across tasks.
#[derive(Clone)]
pub struct AccountStore {
    backend: Backend,
    identity: StoreIdentity,
}

#[derive(Clone)]
enum Backend {
    Sqlite(SqliteDb),
    Postgres(postgres::PgLedger),
}

impl From<Corrupt> for StoreError {
    fn from(c: Corrupt) -> Self {
        StoreError::Corrupt(c.0)
    }
}

impl AccountStore {
    /// Opens (creating and migrating if needed: [`OpenMode::Init`]) the
    /// SQLite store at `sqlite:PATH`. Blocking: call from `spawn_blocking`
    /// or before the runtime gets busy. See [`AccountStore::open_with`] for
    /// the start-up modes and [`AccountStore::connect`] for any URL.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, OpenMode::Init)
    }

    /// Opens the SQLite store at `sqlite:PATH` after the start-up checks of
    /// [`hts_dbkit::sqlite::SqliteDb::open_store`] (integrity, identity,
    /// schema version; a missing store is created only in
    /// [`OpenMode::Init`]). Blocking.
    pub fn open_with(url: &str, mode: OpenMode) -> Result<Self, StoreError> {
        let db = SqliteDb::open_store(
            url,
            "account-store-writer",
            schema::MIGRATIONS,
            schema::KIND,
            mode,
        )?;
        let identity = db
            .identity()
            .cloned()
            .ok_or_else(|| StoreError::Corrupt("store identity not read".to_owned()))?;
        Ok(Self {
            backend: Backend::Sqlite(db),
            identity,
        })
    }

    /// Opens the store at `url`: `sqlite:PATH`, or a PostgreSQL URL
    /// (`postgres://…`, several hosts allowed) with a pool of `pool_size`
    /// connections and [`DEFAULT_LANES`] account lanes. Creates (as
    /// [`OpenMode::Init`]) and migrates the database.
    pub async fn connect(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        Self::connect_with_lanes(url, pool_size, DEFAULT_LANES, OpenMode::Init).await
    }

    /// [`AccountStore::connect`] with `lanes` account lanes on PostgreSQL
    /// (at most one transaction in flight per lane; SQLite ignores it: its
    /// writer thread is its one lane), opened in `mode`: the store must
    /// exist and hold its identity, or ([`OpenMode::Init`]) may be created.
    pub async fn connect_with_lanes(
        url: &str,
        pool_size: usize,
        lanes: usize,
        mode: OpenMode,
    ) -> Result<Self, StoreError> {
        if hts_dbkit::pg::is_postgres_url(url) {
            let (ledger, identity) =
                postgres::PgLedger::connect(url, pool_size, lanes, mode).await?;
            return Ok(Self {
                backend: Backend::Postgres(ledger),
                identity,
            });
        }
        let url = url.to_owned();
        tokio::task::spawn_blocking(move || Self::open_with(&url, mode))
            .await
            .map_err(|e| StoreError::ReadTask(e.to_string()))?
    }

    /// The identity of this store (see [`hts_dbkit::identity`]).
    pub fn identity(&self) -> &StoreIdentity {
        &self.identity
    }

    /// Decides and commits `ops`; one answer per operation, in order.
    async fn apply(&self, ops: Vec<LedgerOp>) -> Vec<Result<LedgerOutcome, StoreError>> {
        match &self.backend {
            Backend::Sqlite(db) => {
                let n = ops.len();
                let result = db.write(move |conn| ledger::apply(conn, &ops)).await;
                match result {
                    Ok(outcomes) => outcomes
                        .into_iter()
                        .map(|o| o.map_err(StoreError::from))
                        .collect(),
                    Err(e) => {
                        let message = e.to_string();
                        (0..n)
                            .map(|_| Err(StoreError::Commit(message.clone())))
                            .collect()
                    }
                }
            }
            Backend::Postgres(pg) => pg.apply(ops).await,
        }
    }

    /// Holds `amount` of `asset` on `account_id` under `reservation_id`.
    ///
    /// Idempotent: a repeated identical call answers `ALREADY_RESERVED`
    /// (or `ALREADY_RELEASED` once released, never holding again); a call
    /// reusing the id with other parameters answers `RESERVATION_CONFLICT`.
    /// An `INSUFFICIENT` answer is not recorded here (the id can be used
    /// once funds suffice), unlike in [`AccountStore::reserve_batch`] with
    /// an order identity. Returns only after the effect is committed.
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
            request_id: None,
        };
        let mut answers = self.reserve_batch(vec![args]).await;
        answers.pop().unwrap_or(Err(StoreError::WriterClosed))
    }

    /// Decides `items` in order, exactly as the same [`AccountStore::reserve`]
    /// calls one after the other would, except that an item carrying an
    /// order identity (`request_id`) has its `INSUFFICIENT` answer recorded
    /// (status REFUSED) and repeated for its id. One answer per item, in
    /// order, each returned only after its effect is committed.
    pub async fn reserve_batch(
        &self,
        items: Vec<ReserveArgs>,
    ) -> Vec<Result<ReserveOutcome, StoreError>> {
        let ops = items.into_iter().map(LedgerOp::Reserve).collect();
        self.apply(ops)
            .await
            .into_iter()
            .map(|answer| match answer? {
                LedgerOutcome::Reserve(outcome) => Ok(outcome),
                LedgerOutcome::Release(_) => Err(StoreError::Corrupt(
                    "a reserve was answered as a release".to_owned(),
                )),
            })
            .collect()
    }

    /// Returns the funds of a held reservation to `available`. Idempotent.
    pub async fn release(
        &self,
        reservation_id: &str,
        account_id: &str,
    ) -> Result<ReleaseOutcome, StoreError> {
        let op = LedgerOp::Release {
            reservation_id: reservation_id.to_owned(),
            account_id: account_id.to_owned(),
        };
        match self.apply(vec![op]).await.pop() {
            Some(Ok(LedgerOutcome::Release(outcome))) => Ok(outcome),
            Some(Ok(LedgerOutcome::Reserve(_))) => Err(StoreError::Corrupt(
                "a release was answered as a reserve".to_owned(),
            )),
            Some(Err(e)) => Err(e),
            None => Err(StoreError::WriterClosed),
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

    /// Up to `limit` HELD reservations backing orders (stored with a
    /// request_id) created at least `older_than_ms` ago by this process's
    /// clock, with ids after `after`, in id order: the candidates of the
    /// order service's orphan sweep.
    pub async fn held_reservations(
        &self,
        older_than_ms: i64,
        after: &str,
        limit: usize,
    ) -> Result<Vec<HeldReservation>, StoreError> {
        let cutoff = now_unix_ms().saturating_sub(older_than_ms.max(0));
        match &self.backend {
            Backend::Sqlite(db) => {
                let after = after.to_owned();
                db.read(move |conn| ledger::held_reservations(conn, cutoff, &after, limit))
                    .await
            }
            Backend::Postgres(pg) => pg.held_reservations(cutoff, after, limit).await,
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
