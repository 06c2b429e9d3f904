//! Publishing rows claimed by a recovery round (shared by all stores).

use std::time::Duration;

use uuid::Uuid;

use super::sink::EventSink;
use super::store::DlqPolicy;
use super::OutboxEvent;

/// A READY row claimed by a recovery round.
#[derive(Debug, Clone)]
pub(crate) struct ClaimedRow {
    /// The event.
    pub event: OutboxEvent,
    /// Failed publishes so far.
    pub retry_count: i32,
    /// Time since the row was created.
    pub age: Duration,
    /// The last publish error, if any.
    pub last_error: Option<String>,
}

/// What happened to a claimed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Published: mark SENT.
    Sent(Uuid),
    /// Publish failed: count it.
    Failed(Uuid, String),
    /// Published to the dead-letter topic: mark DLQ.
    DeadLettered(Uuid),
}

/// Publishes every claimed row: rows past the DLQ policy go to the
/// dead-letter topic, the others to their topic in one batch.
pub(crate) async fn publish_claimed(
    rows: Vec<ClaimedRow>,
    policy: DlqPolicy,
    sink: &dyn EventSink,
) -> Vec<Decision> {
    let mut decisions = Vec::with_capacity(rows.len());
    let mut regular = Vec::new();
    for row in rows {
        if row.retry_count >= policy.max_retries && row.age >= policy.min_age {
            let reason = row
                .last_error
                .clone()
                .unwrap_or_else(|| "publish failed".to_owned());
            let id = row.event.event_id;
            match sink.publish_dead_letter(&row.event, &reason).await {
                Ok(()) => {
                    tracing::warn!(event_id = %id, retries = row.retry_count, %reason,
                        "event moved to the dead-letter topic");
                    decisions.push(Decision::DeadLettered(id));
                }
                Err(e) => decisions.push(Decision::Failed(id, format!("dead letter: {e}"))),
            }
        } else {
            regular.push(row.event);
        }
    }
    let results = sink.publish(&regular).await;
    let mut failed = 0;
    for (event, result) in regular.iter().zip(results) {
        decisions.push(match result {
            Ok(()) => Decision::Sent(event.event_id),
            Err(e) => {
                if failed == 0 {
                    tracing::warn!(event_id = %event.event_id, error = %e,
                        "recovery: event publish failed");
                }
                failed += 1;
                Decision::Failed(event.event_id, e.0)
            }
        });
    }
    decisions
}
