//! SQLite implementation of [`OrderStore`].
//!
//! WAL mode, `synchronous=FULL`, a 5 s busy timeout and `BEGIN IMMEDIATE`
//! write transactions let several order-service processes share one file;
//! the `UNIQUE(account_id, request_id)` constraint makes idempotency hold
//! across them. Writes are group-committed by one writer thread per handle;
//! reads run on pooled connections in blocking tasks.

mod connection;
mod queries;
mod read_pool;
mod rows;
mod schema;
mod url;
mod writer;

use std::time::{SystemTime, UNIX_EPOCH};

use read_pool::ReadPool;
use writer::GroupWriter;

use super::{
    CancelOutcome, InsertOutcome, NewOrder, OrderStore, PendingRelease, StoreError, StoredOrder,
};

/// Order store backed by a SQLite file.
#[derive(Clone)]
pub struct SqliteOrderStore {
    writer: GroupWriter,
    reads: ReadPool,
}

impl SqliteOrderStore {
    /// Opens (creating and migrating if needed) the store at `sqlite:PATH`.
    /// Blocking.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let path = url::sqlite_path(url)?;
        let mut conn = connection::open(&path)?;
        schema::migrate(&mut conn)?;
        let writer = GroupWriter::spawn(conn, "order-store-writer")
            .map_err(|e| StoreError::Commit(format!("cannot start writer thread: {e}")))?;
        Ok(Self {
            writer,
            reads: ReadPool::new(path),
        })
    }
}

#[async_trait::async_trait]
impl OrderStore for SqliteOrderStore {
    async fn find_by_request(
        &self,
        account_id: &str,
        request_id: &str,
    ) -> Result<Option<StoredOrder>, StoreError> {
        let (account_id, request_id) = (account_id.to_owned(), request_id.to_owned());
        self.reads
            .read(move |conn| queries::find_by_request(conn, &account_id, &request_id))
            .await
    }

    async fn insert_order(&self, order: NewOrder) -> Result<InsertOutcome, StoreError> {
        let order_id = uuid::Uuid::now_v7().to_string();
        self.writer
            .execute(move |conn| queries::insert_order(conn, &order, &order_id))
            .await
    }

    async fn get_order(&self, order_id: &str) -> Result<Option<StoredOrder>, StoreError> {
        let order_id = order_id.to_owned();
        self.reads
            .read(move |conn| queries::get_order(conn, &order_id))
            .await
    }

    async fn cancel_order(&self, order_id: &str) -> Result<CancelOutcome, StoreError> {
        let order_id = order_id.to_owned();
        self.writer
            .execute(move |conn| queries::cancel_order(conn, &order_id))
            .await
    }

    async fn schedule_release(&self, release: PendingRelease) -> Result<(), StoreError> {
        self.writer
            .execute(move |conn| queries::schedule_release(conn, &release))
            .await
    }

    async fn pending_releases(&self, limit: usize) -> Result<Vec<PendingRelease>, StoreError> {
        self.reads
            .read(move |conn| queries::pending_releases(conn, limit))
            .await
    }

    async fn complete_release(&self, reservation_id: &str) -> Result<(), StoreError> {
        let reservation_id = reservation_id.to_owned();
        self.writer
            .execute(move |conn| queries::complete_release(conn, &reservation_id))
            .await
    }
}

/// Wall-clock time in Unix epoch milliseconds (0 if before 1970).
pub(crate) fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
