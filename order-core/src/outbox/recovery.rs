//! The recovery job: republishes rows left READY (crash, broker outage).

use std::sync::Arc;
use std::time::Duration;

use super::sink::EventSink;
use super::store::{DlqPolicy, OutboxStore, RecoveryReport};

/// How long past the grace the second start-up run waits.
const START_MARGIN: Duration = Duration::from_millis(200);

/// Default of the most rows claimed per round.
pub const RECOVERY_BATCH: usize = 500;

/// Settings of the recovery job.
#[derive(Debug, Clone, Copy)]
pub struct RecoverySettings {
    /// Time between runs.
    pub interval: Duration,
    /// Minimum time a row has been READY before it is republished.
    pub grace: Duration,
    /// When to dead-letter.
    pub dlq: DlqPolicy,
    /// Most rows claimed per round.
    pub batch: usize,
}

/// Runs rounds until no full batch is left: once at start, once more when
/// `grace` has passed since start (by then every row a previous process
/// left READY is past its grace, so a crash's leftovers go out a grace
/// period after the restart instead of an `interval` later), then every
/// `interval`. Runs until the task is aborted; several processes may run it
/// at once (claims are exclusive: `FOR UPDATE SKIP LOCKED` on PostgreSQL,
/// the writer's immediate transaction on SQLite), and the grace keeps it
/// off rows another live process is still publishing on its fast path.
pub async fn run_recovery<S: OutboxStore + ?Sized>(
    store: Arc<S>,
    sink: Arc<dyn EventSink>,
    settings: RecoverySettings,
) {
    recover_all(&*store, &*sink, settings).await;
    if settings.grace < settings.interval {
        // A little past the grace, so rows committed just before the
        // previous process died are surely old enough.
        tokio::time::sleep(settings.grace + START_MARGIN).await;
        let report = recover_all(&*store, &*sink, settings).await;
        tracing::debug!(?report, "outbox recovery after the start-up grace");
    }
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + settings.interval,
        settings.interval,
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        recover_all(&*store, &*sink, settings).await;
    }
}

/// Runs recovery rounds until a round claims less than a full batch.
pub async fn recover_all<S: OutboxStore + ?Sized>(
    store: &S,
    sink: &dyn EventSink,
    settings: RecoverySettings,
) -> RecoveryReport {
    let mut total = RecoveryReport::default();
    let batch = settings.batch.max(1);
    loop {
        match store
            .recover(settings.grace, batch, settings.dlq, sink)
            .await
        {
            Ok(report) => {
                total.published += report.published;
                total.failed += report.failed;
                total.dead_lettered += report.dead_lettered;
                let claimed = report.published + report.failed + report.dead_lettered;
                if claimed > 0 {
                    tracing::info!(?report, "outbox recovery round");
                }
                // Stop when the batch was not full or nothing went out.
                if claimed < batch || report.failed == claimed {
                    return total;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "outbox recovery round failed");
                return total;
            }
        }
    }
}
