//! PostgreSQL implementation of [`OrderStore`] (production).
//!
//! A pool of `pool_size` connections (multi-host connection strings with
//! `target_session_attrs=read-write` find a promoted standby after a
//! failover). A batch of inserts from a place lane is one statement
//! ([`insert`]): each order (which carries its idempotency data) and its
//! outbox row commit together. Every statement is prepared once per
//! connection. Every operation is retried on transient errors (connection
//! lost, server restarting, read-only after a failover) within the retry
//! budget.

mod insert;
mod outbox;
mod queries;
mod rows;
mod schema;

use std::time::Duration;

use deadpool_postgres::Pool;
use hts_dbkit::pg::{retry_transient, RetryPolicy};
use tokio::time::Instant;
use uuid::Uuid;

use insert::PreparedInsert;
use rows::order_from_row;

use super::{
    now_unix_ms, CancelOutcome, InsertOutcome, NewOrder, OrderStore, PendingRelease, StoreError,
    StoreOptions, StoredOrder,
};
use crate::outbox::{AfterCommit, DlqPolicy, EventSink, OutboxStats, OutboxStore, RecoveryReport};

/// Order store backed by PostgreSQL.
#[derive(Clone)]
pub struct PgOrderStore {
    pool: Pool,
    location: String,
    identity: hts_dbkit::identity::StoreIdentity,
    retry: RetryPolicy,
    topic: String,
    after_commit: AfterCommit,
}

impl PgOrderStore {
    /// Connects to `url`, checks the store identity and schema version
    /// ([`hts_dbkit::pg::identity`], creating the store only in
    /// `options.mode` [`OpenMode::Init`]) and applies pending migrations.
    /// Must run inside a Tokio runtime.
    ///
    /// [`OpenMode::Init`]: hts_dbkit::identity::OpenMode::Init
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let pool = hts_dbkit::pg::connect_pool(url, options.pool_size)?;
        let retry = RetryPolicy::default();
        let location = hts_dbkit::redact_url(url);
        let identity = hts_dbkit::pg::identity::open_store(
            &pool,
            url,
            schema::COMPONENT,
            schema::MIGRATIONS,
            options.mode,
            retry,
        )
        .await?;
        Ok(Self {
            pool,
            location,
            identity,
            retry,
            topic: options.events_topic,
            after_commit: options.after_commit,
        })
    }

    /// The connection pool (for tests and tools).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

fn decode(row: Option<tokio_postgres::Row>) -> Result<Option<StoredOrder>, StoreError> {
    row.as_ref().map(order_from_row).transpose()
}

#[async_trait::async_trait]
impl OrderStore for PgOrderStore {
    async fn find_by_request(
        &self,
        account_id: &str,
        request_id: &str,
    ) -> Result<Option<StoredOrder>, StoreError> {
        let row = retry_transient(self.retry, || {
            queries::find_by_request(&self.pool, account_id, request_id)
        })
        .await?;
        decode(row)
    }

    async fn insert_orders(
        &self,
        orders: Vec<NewOrder>,
        deadlines: Vec<Option<Instant>>,
    ) -> Vec<Result<InsertOutcome, StoreError>> {
        let batch = orders
            .into_iter()
            .zip(deadlines.into_iter().chain(std::iter::repeat(None)))
            .map(|(order, deadline)| PreparedInsert::new(order, &self.topic, deadline))
            .collect();
        let (answers, events) = insert::insert_batch(&self.pool, self.retry, batch).await;
        self.after_commit.committed(events);
        answers
    }

    async fn get_order(&self, order_id: &str) -> Result<Option<StoredOrder>, StoreError> {
        let row = retry_transient(self.retry, || queries::get_order(&self.pool, order_id)).await?;
        decode(row)
    }

    async fn cancel_order(&self, order_id: &str) -> Result<CancelOutcome, StoreError> {
        let now_ms = now_unix_ms();
        let topic = self.topic.clone();
        let (rows, event) = retry_transient(self.retry, || {
            let topic = topic.clone();
            queries::cancel_order(&self.pool, order_id, now_ms, move |row| {
                let order = order_from_row(row).map_err(|e| {
                    hts_dbkit::pg::PgError::Config(format!("corrupt order row: {e}"))
                })?;
                Ok(queries::cancel_effects(&topic, &order, now_ms))
            })
        })
        .await?;
        if let Some(event) = event {
            self.after_commit.committed(vec![event]);
        }
        let Some(order) = decode(rows.order)? else {
            return Ok(CancelOutcome::NotFound);
        };
        Ok(match (rows.changed, order.status) {
            (true, _) => CancelOutcome::Canceled(order),
            (false, hts_proto::v1::OrderStatus::Canceled) => CancelOutcome::AlreadyCanceled(order),
            (false, _) => CancelOutcome::NotCancelable(order),
        })
    }

    async fn schedule_release(&self, release: PendingRelease) -> Result<(), StoreError> {
        Ok(retry_transient(self.retry, || {
            queries::schedule_release(&self.pool, &release)
        })
        .await?)
    }

    async fn pending_releases(&self, limit: usize) -> Result<Vec<PendingRelease>, StoreError> {
        Ok(retry_transient(self.retry, || queries::pending_releases(&self.pool, limit)).await?)
    }

    async fn complete_release(&self, reservation_id: &str) -> Result<(), StoreError> {
        Ok(retry_transient(self.retry, || {
            queries::complete_release(&self.pool, reservation_id)
        })
        .await?)
    }

    fn identity(&self) -> Option<hts_dbkit::identity::StoreIdentity> {
        Some(self.identity.clone())
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    async fn record_peer(&self, account_store_id: &str) -> Result<(), StoreError> {
        Ok(retry_transient(self.retry, || async {
            let client = self.pool.get().await?;
            hts_dbkit::pg::identity::record_peer(&client, schema::COMPONENT, account_store_id).await
        })
        .await?)
    }
}

#[async_trait::async_trait]
impl OutboxStore for PgOrderStore {
    async fn mark_sent(&self, event_ids: &[Uuid]) -> Result<(), StoreError> {
        Ok(retry_transient(self.retry, || async {
            let client = self.pool.get().await?;
            outbox::mark_sent(&client, event_ids).await
        })
        .await?)
    }

    async fn record_failures(&self, failures: &[(Uuid, String)]) -> Result<(), StoreError> {
        Ok(retry_transient(self.retry, || async {
            let client = self.pool.get().await?;
            outbox::record_failures(&client, failures).await
        })
        .await?)
    }

    async fn recover(
        &self,
        grace: Duration,
        limit: usize,
        policy: DlqPolicy,
        sink: &dyn EventSink,
    ) -> Result<RecoveryReport, StoreError> {
        outbox::recover(&self.pool, grace, limit, policy, sink).await
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        Ok(retry_transient(self.retry, || outbox::stats(&self.pool)).await?)
    }
}
