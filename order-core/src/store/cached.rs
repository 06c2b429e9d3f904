//! [`CachedOrderStore`]: an [`OrderStore`] that reads orders through the
//! Redis [`OrderCache`] and keeps it in step with cancels.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::{
    CancelOutcome, InsertOutcome, NewOrder, OrderStore, PendingRelease, StoreError, StoredOrder,
};
use crate::cache::OrderCache;
use crate::outbox::{DlqPolicy, EventSink, OutboxStats, OutboxStore, RecoveryReport};

/// Wraps a store: `get_order` answers from the cache when it can and fills
/// it on a miss; a cancel invalidates the order's entry after its commit.
/// Everything else goes straight to the wrapped store, which stays the only
/// source of truth.
pub struct CachedOrderStore {
    inner: Arc<dyn OrderStore>,
    cache: Arc<OrderCache>,
}

impl CachedOrderStore {
    /// `inner` read through `cache`.
    pub fn new(inner: Arc<dyn OrderStore>, cache: Arc<OrderCache>) -> Self {
        Self { inner, cache }
    }
}

#[async_trait::async_trait]
impl OrderStore for CachedOrderStore {
    async fn find_by_request(
        &self,
        account_id: &str,
        request_id: &str,
    ) -> Result<Option<StoredOrder>, StoreError> {
        self.inner.find_by_request(account_id, request_id).await
    }

    async fn insert_orders(
        &self,
        orders: Vec<NewOrder>,
        deadlines: Vec<Option<tokio::time::Instant>>,
    ) -> Vec<Result<InsertOutcome, StoreError>> {
        self.inner.insert_orders(orders, deadlines).await
    }

    async fn get_order(&self, order_id: &str) -> Result<Option<StoredOrder>, StoreError> {
        if let Some(order) = self.cache.get(order_id).await {
            return Ok(Some(order));
        }
        let order = self.inner.get_order(order_id).await?;
        if let Some(order) = &order {
            self.cache.put(order).await;
        }
        Ok(order)
    }

    async fn cancel_order(&self, order_id: &str) -> Result<CancelOutcome, StoreError> {
        let outcome = self.inner.cancel_order(order_id).await;
        // Invalidate whatever happened: even a failed call may have committed.
        self.cache.invalidate(order_id).await;
        outcome
    }

    async fn schedule_release(&self, release: PendingRelease) -> Result<(), StoreError> {
        self.inner.schedule_release(release).await
    }

    async fn pending_releases(&self, limit: usize) -> Result<Vec<PendingRelease>, StoreError> {
        self.inner.pending_releases(limit).await
    }

    async fn complete_release(&self, reservation_id: &str) -> Result<(), StoreError> {
        self.inner.complete_release(reservation_id).await
    }
}

#[async_trait::async_trait]
impl OutboxStore for CachedOrderStore {
    async fn mark_sent(&self, event_ids: &[Uuid]) -> Result<(), StoreError> {
        self.inner.mark_sent(event_ids).await
    }

    async fn record_failures(&self, failures: &[(Uuid, String)]) -> Result<(), StoreError> {
        self.inner.record_failures(failures).await
    }

    async fn recover(
        &self,
        grace: Duration,
        limit: usize,
        policy: DlqPolicy,
        sink: &dyn EventSink,
    ) -> Result<RecoveryReport, StoreError> {
        self.inner.recover(grace, limit, policy, sink).await
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        self.inner.outbox_stats().await
    }
}
