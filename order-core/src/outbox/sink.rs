//! Where published events go.

use super::OutboxEvent;

/// A failed publish, with a human-readable reason (stored as `last_error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PublishError(pub String);

/// A destination for outbox events: a Kafka cluster or the local event log.
#[async_trait::async_trait]
pub trait EventSink: Send + Sync {
    /// Publishes `events` and waits for each acknowledgement; the answer has
    /// one entry per event, in order. An `Ok` means durably accepted.
    async fn publish(&self, events: &[OutboxEvent]) -> Vec<Result<(), PublishError>>;

    /// Publishes `event` to the dead-letter destination with `reason`.
    async fn publish_dead_letter(
        &self,
        event: &OutboxEvent,
        reason: &str,
    ) -> Result<(), PublishError>;

    /// Waits until everything handed to the sink is delivered or failed.
    async fn flush(&self);
}
