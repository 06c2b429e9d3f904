//! Durable order storage.
//!
//! [`OrderStore`] is the storage contract used by the service; [`open_store`]
//! picks the implementation from a URL: `sqlite:PATH` (embedded, the demo)
//! or `postgres://…` (production). Both write each order's outbox event in
//! the order's own transaction.

mod cached;
mod postgres;
mod sqlite;
mod types;

use std::sync::Arc;

use crate::outbox::{AfterCommit, OutboxConfig, OutboxStore};

pub use cached::CachedOrderStore;
pub use hts_dbkit::identity::{OpenMode, StoreIdentity};
pub(crate) use hts_dbkit::now_unix_ms;
pub use hts_dbkit::StoreError;
pub use postgres::PgOrderStore;
pub use sqlite::SqliteOrderStore;
pub use types::{CancelOutcome, InsertOutcome, NewOrder, PendingRelease, StoredOrder};

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// PostgreSQL pool size (ignored by SQLite).
    pub pool_size: usize,
    /// Topic recorded in outbox rows.
    pub events_topic: String,
    /// Receives the events of every commit (the fast path).
    pub after_commit: AfterCommit,
    /// Whether a missing store may be created (`--init`) or must exist.
    pub mode: OpenMode,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            pool_size: hts_dbkit::pg::DEFAULT_POOL_SIZE,
            events_topic: OutboxConfig::DEFAULT_TOPIC.to_owned(),
            after_commit: AfterCommit::none(),
            mode: OpenMode::Init,
        }
    }
}

/// Storage of orders, their idempotency records and pending releases.
///
/// Implementations must be safe to share between several processes: the
/// uniqueness of `(account_id, request_id)` is enforced by the database,
/// never by an in-process lock. Every mutating call returns only after its
/// effect is durably committed. A committed place or cancel also commits
/// its outbox event ([`OutboxStore`]).
#[async_trait::async_trait]
pub trait OrderStore: OutboxStore + Send + Sync {
    /// The order placed by `account_id` under `request_id`, if any.
    async fn find_by_request(
        &self,
        account_id: &str,
        request_id: &str,
    ) -> Result<Option<StoredOrder>, StoreError>;

    /// Inserts each order unless its `(account_id, request_id)` already
    /// exists, in which case the existing order is answered (the first
    /// insert wins), all in one transaction; one answer per order, in order.
    /// The keys of one call must be distinct. `deadlines[i]` is the deadline
    /// of the request `orders[i]` serves (missing: none): the store stops
    /// retrying an insert whose caller has given up, and then answers it
    /// with a failure only if nothing was stored for it.
    async fn insert_orders(
        &self,
        orders: Vec<NewOrder>,
        deadlines: Vec<Option<tokio::time::Instant>>,
    ) -> Vec<Result<InsertOutcome, StoreError>>;

    /// [`OrderStore::insert_orders`] of one order, under the deadline of the
    /// calling task ([`hts_dbkit::pg::with_deadline`]).
    async fn insert_order(&self, order: NewOrder) -> Result<InsertOutcome, StoreError> {
        let deadline = hts_dbkit::pg::current_deadline();
        self.insert_orders(vec![order], vec![deadline])
            .await
            .pop()
            .unwrap_or(Err(StoreError::WriterClosed))
    }

    /// The order with `order_id`, if any.
    async fn get_order(&self, order_id: &str) -> Result<Option<StoredOrder>, StoreError>;

    /// Atomically moves an ACCEPTED order to CANCELED and records a pending
    /// release of its reservation; reports other states without changes.
    async fn cancel_order(&self, order_id: &str) -> Result<CancelOutcome, StoreError>;

    /// Records that a reservation must be released (idempotent).
    async fn schedule_release(&self, release: PendingRelease) -> Result<(), StoreError>;

    /// Up to `limit` releases still to be performed, oldest first.
    async fn pending_releases(&self, limit: usize) -> Result<Vec<PendingRelease>, StoreError>;

    /// Marks the release of `reservation_id` as done (idempotent).
    async fn complete_release(&self, reservation_id: &str) -> Result<(), StoreError>;

    /// The identity read when the store was opened (see
    /// [`hts_dbkit::identity`]); `None` for stores without one.
    fn identity(&self) -> Option<StoreIdentity> {
        None
    }

    /// Where the store lives, for messages: the file, or the redacted URL.
    fn location(&self) -> String {
        String::new()
    }

    /// Records `account_store_id` as the account store this order store is
    /// paired with, unless one is recorded already.
    async fn record_peer(&self, account_store_id: &str) -> Result<(), StoreError> {
        let _ = account_store_id;
        Ok(())
    }
}

/// Opens the store named by `url`: `sqlite:PATH`, or a PostgreSQL URL
/// (`postgres://…`, several hosts allowed); other schemes are rejected with
/// [`StoreError::UnsupportedUrl`]. Runs the start-up checks of
/// [`hts_dbkit::identity`] (integrity, identity, schema version), creating
/// the store only in [`OpenMode::Init`], then migrates the database.
pub async fn open_store(
    url: &str,
    options: StoreOptions,
) -> Result<Arc<dyn OrderStore>, StoreError> {
    if hts_dbkit::pg::is_postgres_url(url) {
        return Ok(Arc::new(PgOrderStore::connect(url, options).await?));
    }
    let url = url.to_owned();
    let store = tokio::task::spawn_blocking(move || SqliteOrderStore::open_with(&url, options))
        .await
        .map_err(|e| StoreError::ReadTask(e.to_string()))??;
    Ok(Arc::new(store))
}
