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

/// Publish outcomes sorted by what the store must record for them.
#[derive(Debug, Default)]
pub(crate) struct SortedDecisions {
    /// Rows to mark SENT.
    pub(crate) sent: Vec<Uuid>,
    /// Rows to mark DLQ.
    pub(crate) dead: Vec<Uuid>,
    /// Rows whose failure (and retry count) to record.
    pub(crate) failed: Vec<(Uuid, String)>,
}

impl SortedDecisions {
    /// Sorts `decisions` into the three groups.
    pub(crate) fn new(decisions: Vec<Decision>) -> Self {
        let mut sorted = Self::default();
        for decision in decisions {
            match decision {
                Decision::Sent(id) => sorted.sent.push(id),
                Decision::DeadLettered(id) => sorted.dead.push(id),
                Decision::Failed(id, e) => sorted.failed.push((id, e)),
            }
        }
        sorted
    }

    /// The counts of a recovery round that made these decisions.
    pub(crate) fn report(&self) -> super::RecoveryReport {
        super::RecoveryReport {
            published: self.sent.len(),
            failed: self.failed.len(),
            dead_lettered: self.dead.len(),
        }
    }
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

#[cfg(test)]
mod sorted_tests {
    use super::*;

    #[test]
    fn decisions_are_sorted_and_counted() {
        let (a, b, c, d) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let sorted = SortedDecisions::new(vec![
            Decision::Sent(a),
            Decision::Failed(b, "broker down".into()),
            Decision::DeadLettered(c),
            Decision::Sent(d),
        ]);
        assert_eq!(sorted.sent, vec![a, d]);
        assert_eq!(sorted.dead, vec![c]);
        assert_eq!(sorted.failed, vec![(b, "broker down".to_owned())]);
        let report = sorted.report();
        assert_eq!(
            (report.published, report.failed, report.dead_lettered),
            (2, 1, 1)
        );
    }
}
