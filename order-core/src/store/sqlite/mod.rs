//! SQLite implementation of [`OrderStore`].
//!
//! WAL mode, `synchronous=FULL`, a 5 s busy timeout and `BEGIN IMMEDIATE`
//! write transactions let several order-service processes share one file;
//! the `UNIQUE(account_id, request_id)` constraint makes idempotency hold
//! across them. Writes are group-committed by one writer thread per handle;
//! reads run on pooled connections in blocking tasks.

mod outbox;
mod queries;
mod rows;
mod schema;

use std::time::Duration;

use hts_dbkit::sqlite::SqliteDb;
use uuid::Uuid;

use super::{
    CancelOutcome, InsertOutcome, NewOrder, OrderStore, PendingRelease, StoreError, StoreOptions,
    StoredOrder,
};
use crate::outbox::{
    publish_claimed, AfterCommit, DlqPolicy, EventSink, OutboxStats, OutboxStore, RecoveryReport,
    SortedDecisions,
};

/// Order store backed by a SQLite file.
#[derive(Clone)]
pub struct SqliteOrderStore {
    db: SqliteDb,
    topic: String,
    after_commit: AfterCommit,
}

impl SqliteOrderStore {
    /// Opens (creating and migrating if needed: [`OpenMode::Init`]) the
    /// store at `sqlite:PATH` with default options. Blocking.
    ///
    /// [`OpenMode::Init`]: hts_dbkit::identity::OpenMode::Init
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, StoreOptions::default())
    }

    /// Opens the store at `sqlite:PATH` with `options`, after the start-up
    /// checks of [`SqliteDb::open_store`]. Blocking.
    pub fn open_with(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let db = SqliteDb::open_store(
            url,
            "order-store-writer",
            schema::MIGRATIONS,
            schema::KIND,
            options.mode,
        )?;
        Ok(Self {
            db,
            topic: options.events_topic,
            after_commit: options.after_commit,
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
        self.db
            .read(move |conn| queries::find_by_request(conn, &account_id, &request_id))
            .await
    }

    async fn insert_orders(
        &self,
        orders: Vec<NewOrder>,
        _deadlines: Vec<Option<tokio::time::Instant>>,
    ) -> Vec<Result<InsertOutcome, StoreError>> {
        let n = orders.len();
        let topic = self.topic.clone();
        let result = self
            .db
            .write(move |conn| queries::insert_orders(conn, orders, &topic))
            .await;
        match result {
            Ok((outcomes, events)) => {
                self.after_commit.committed(events);
                outcomes.into_iter().map(Ok).collect()
            }
            Err(e) => {
                let message = e.to_string();
                (0..n)
                    .map(|_| Err(StoreError::Commit(message.clone())))
                    .collect()
            }
        }
    }

    async fn get_order(&self, order_id: &str) -> Result<Option<StoredOrder>, StoreError> {
        let order_id = order_id.to_owned();
        self.db
            .read(move |conn| queries::get_order(conn, &order_id))
            .await
    }

    async fn cancel_order(&self, order_id: &str) -> Result<CancelOutcome, StoreError> {
        let order_id = order_id.to_owned();
        let topic = self.topic.clone();
        let (outcome, events) = self
            .db
            .write(move |conn| queries::cancel_order(conn, &order_id, &topic))
            .await?;
        self.after_commit.committed(events);
        Ok(outcome)
    }

    async fn schedule_release(&self, release: PendingRelease) -> Result<(), StoreError> {
        self.db
            .write(move |conn| queries::schedule_release(conn, &release))
            .await
    }

    async fn pending_releases(&self, limit: usize) -> Result<Vec<PendingRelease>, StoreError> {
        self.db
            .read(move |conn| queries::pending_releases(conn, limit))
            .await
    }

    async fn complete_release(&self, reservation_id: &str) -> Result<(), StoreError> {
        let reservation_id = reservation_id.to_owned();
        self.db
            .write(move |conn| queries::complete_release(conn, &reservation_id))
            .await
    }

    fn identity(&self) -> Option<hts_dbkit::identity::StoreIdentity> {
        self.db.identity().cloned()
    }

    fn location(&self) -> String {
        self.db.path().display().to_string()
    }

    async fn record_peer(&self, account_store_id: &str) -> Result<(), StoreError> {
        self.db.record_peer(account_store_id).await
    }
}

#[async_trait::async_trait]
impl OutboxStore for SqliteOrderStore {
    async fn mark_sent(&self, event_ids: &[Uuid]) -> Result<(), StoreError> {
        let ids = event_ids.to_vec();
        self.db
            .write(move |conn| outbox::mark_sent(conn, &ids))
            .await
    }

    async fn record_failures(&self, failures: &[(Uuid, String)]) -> Result<(), StoreError> {
        let failures = failures.to_vec();
        self.db
            .write(move |conn| outbox::record_failures(conn, &failures))
            .await
    }

    async fn recover(
        &self,
        grace: Duration,
        limit: usize,
        policy: DlqPolicy,
        sink: &dyn EventSink,
    ) -> Result<RecoveryReport, StoreError> {
        let claimed = self
            .db
            .write(move |conn| outbox::claim(conn, grace, limit))
            .await?;
        if claimed.is_empty() {
            return Ok(RecoveryReport::default());
        }
        let sorted = SortedDecisions::new(publish_claimed(claimed, policy, sink).await);
        let report = sorted.report();
        self.db
            .write(move |conn| {
                outbox::mark_sent(conn, &sorted.sent)?;
                outbox::mark_dlq(conn, &sorted.dead)?;
                outbox::record_failures(conn, &sorted.failed)
            })
            .await?;
        Ok(report)
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        self.db.read(outbox::stats).await
    }
}

#[cfg(test)]
mod tests;
