//! Durable order storage.
//!
//! [`OrderStore`] is the storage contract used by the service; [`open_store`]
//! picks the implementation from a URL (`sqlite:PATH` today).

mod error;
mod sqlite;
mod types;

use std::sync::Arc;

pub use error::StoreError;
pub use sqlite::SqliteOrderStore;
pub use types::{CancelOutcome, InsertOutcome, NewOrder, PendingRelease, StoredOrder};

/// Storage of orders, their idempotency records and pending releases.
///
/// Implementations must be safe to share between several processes: the
/// uniqueness of `(account_id, request_id)` is enforced by the database,
/// never by an in-process lock. Every mutating call returns only after its
/// effect is durably committed.
#[async_trait::async_trait]
pub trait OrderStore: Send + Sync {
    /// The order placed by `account_id` under `request_id`, if any.
    async fn find_by_request(
        &self,
        account_id: &str,
        request_id: &str,
    ) -> Result<Option<StoredOrder>, StoreError>;

    /// Inserts the order unless `(account_id, request_id)` already exists,
    /// in which case the existing order is returned (the first insert wins).
    async fn insert_order(&self, order: NewOrder) -> Result<InsertOutcome, StoreError>;

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
}

/// Opens the store named by `url` (`sqlite:PATH`; other schemes are
/// rejected with [`StoreError::UnsupportedUrl`]). Blocking: creates and
/// migrates the database.
pub fn open_store(url: &str) -> Result<Arc<dyn OrderStore>, StoreError> {
    Ok(Arc::new(SqliteOrderStore::open(url)?))
}
