//! The outbox side of a store: what the dispatcher and recovery job need.

use std::time::Duration;

use uuid::Uuid;

use super::sink::EventSink;
use crate::store::StoreError;

/// When a failing event moves to the dead-letter topic: after at least
/// `max_retries` failed publishes AND once it is at least `min_age` old.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DlqPolicy {
    /// Failed publishes before dead-lettering (default 3).
    pub max_retries: i32,
    /// Minimum age of the event before dead-lettering (default 1 h).
    pub min_age: Duration,
}

impl Default for DlqPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            min_age: Duration::from_secs(3600),
        }
    }
}

/// Result of one recovery round.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Rows published and marked SENT.
    pub published: usize,
    /// Rows whose publish failed (retry count incremented).
    pub failed: usize,
    /// Rows moved to the dead-letter topic and marked DLQ.
    pub dead_lettered: usize,
}

/// Counts for monitoring the outbox.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OutboxStats {
    /// Rows still READY.
    pub ready_backlog: i64,
    /// Age of the oldest READY row.
    pub oldest_ready_age: Option<Duration>,
    /// Rows marked SENT so far.
    pub published_total: i64,
    /// Rows marked DLQ so far.
    pub dlq_total: i64,
}

/// Outbox operations of a store. Rows are inserted by the store itself in
/// the transaction of the order change they describe.
#[async_trait::async_trait]
pub trait OutboxStore: Send + Sync {
    /// Marks READY rows as SENT (rows in another state are left alone).
    async fn mark_sent(&self, event_ids: &[Uuid]) -> Result<(), StoreError>;

    /// Counts one failed publish per row and records its error.
    async fn record_failures(&self, failures: &[(Uuid, String)]) -> Result<(), StoreError>;

    /// One recovery round: claims up to `limit` rows READY for longer than
    /// `grace` so that no concurrent round (this or another process) claims
    /// them too, publishes them to `sink` (or to its dead-letter topic per
    /// `policy`), and records the outcome.
    async fn recover(
        &self,
        grace: Duration,
        limit: usize,
        policy: DlqPolicy,
        sink: &dyn EventSink,
    ) -> Result<RecoveryReport, StoreError>;

    /// Backlog and totals.
    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError>;
}
