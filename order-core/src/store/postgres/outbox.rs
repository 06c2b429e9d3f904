//! Outbox operations on PostgreSQL.

use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use hts_dbkit::pg::PgError;
use uuid::Uuid;

use super::rows::{claimed_from_row, CLAIM_COLUMNS};
use crate::outbox::{
    publish_claimed, DlqPolicy, EventSink, OutboxStats, RecoveryReport, SortedDecisions,
};
use crate::store::StoreError;

pub(crate) async fn mark_sent<C: GenericClient>(client: &C, ids: &[Uuid]) -> Result<(), PgError> {
    if ids.is_empty() {
        return Ok(());
    }
    client
        .execute(
            "UPDATE outbox SET status = 'SENT', last_attempt_at = clock_timestamp()
             WHERE event_id = ANY($1) AND status = 'READY'",
            &[&ids],
        )
        .await?;
    Ok(())
}

pub(crate) async fn mark_dlq<C: GenericClient>(client: &C, ids: &[Uuid]) -> Result<(), PgError> {
    if ids.is_empty() {
        return Ok(());
    }
    client
        .execute(
            "UPDATE outbox SET status = 'DLQ', last_attempt_at = clock_timestamp()
             WHERE event_id = ANY($1) AND status = 'READY'",
            &[&ids],
        )
        .await?;
    Ok(())
}

pub(crate) async fn record_failures<C: GenericClient>(
    client: &C,
    failures: &[(Uuid, String)],
) -> Result<(), PgError> {
    if failures.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = failures.iter().map(|f| f.0).collect();
    let errors: Vec<&str> = failures.iter().map(|f| f.1.as_str()).collect();
    client
        .execute(
            "UPDATE outbox o SET retry_count = o.retry_count + 1,
                 last_attempt_at = clock_timestamp(), last_error = f.error
             FROM UNNEST($1::uuid[], $2::text[]) AS f(event_id, error)
             WHERE o.event_id = f.event_id AND o.status = 'READY'",
            &[&ids, &errors],
        )
        .await?;
    Ok(())
}

/// One recovery round inside one transaction: rows are claimed with
/// `FOR UPDATE SKIP LOCKED`, so concurrent rounds (any process) never claim
/// the same row; the locks are held until the outcome is committed.
pub(crate) async fn recover(
    pool: &Pool,
    grace: Duration,
    limit: usize,
    policy: DlqPolicy,
    sink: &dyn EventSink,
) -> Result<RecoveryReport, StoreError> {
    let mut client = pool.get().await.map_err(PgError::from)?;
    let tx = client.transaction().await.map_err(PgError::from)?;
    let rows = tx
        .query(
            &format!(
                "SELECT {CLAIM_COLUMNS} FROM outbox
                 WHERE status = 'READY' AND created_at <= clock_timestamp() - make_interval(secs => $1)
                 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED"
            ),
            &[&grace.as_secs_f64(), &i64::try_from(limit).unwrap_or(i64::MAX)],
        )
        .await
        .map_err(PgError::from)?;
    let claimed = rows
        .iter()
        .map(claimed_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    if claimed.is_empty() {
        return Ok(RecoveryReport::default());
    }
    let sorted = SortedDecisions::new(publish_claimed(claimed, policy, sink).await);
    let report = sorted.report();
    mark_sent(&tx, &sorted.sent).await?;
    mark_dlq(&tx, &sorted.dead).await?;
    record_failures(&tx, &sorted.failed).await?;
    tx.commit().await.map_err(PgError::from)?;
    Ok(report)
}

pub(crate) async fn stats(pool: &Pool) -> Result<OutboxStats, PgError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'READY'),
                    EXTRACT(EPOCH FROM clock_timestamp()
                        - min(created_at) FILTER (WHERE status = 'READY'))::float8,
                    count(*) FILTER (WHERE status = 'SENT'),
                    count(*) FILTER (WHERE status = 'DLQ')
             FROM outbox",
            &[],
        )
        .await?;
    let oldest: Option<f64> = row.try_get(1)?;
    Ok(OutboxStats {
        ready_backlog: row.try_get(0)?,
        oldest_ready_age: oldest.map(|s| Duration::from_secs_f64(s.max(0.0))),
        published_total: row.try_get(2)?,
        dlq_total: row.try_get(3)?,
    })
}
