//! Outbox rows in SQLite. Recovery claims rows with a lease
//! (`claimed_until`) taken inside a `BEGIN IMMEDIATE` transaction, so two
//! processes sharing the file never claim the same row at once.

use std::time::Duration;

use rusqlite::{params, Connection};
use uuid::Uuid;

use crate::outbox::{ClaimedRow, OutboxEvent, OutboxStats};
use crate::store::now_unix_ms;
use crate::store::StoreError;

/// How long a claim keeps other recovery rounds away from a row.
pub(crate) const CLAIM_LEASE: Duration = Duration::from_secs(120);

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn insert_event(conn: &Connection, event: &OutboxEvent) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO outbox (event_id, topic, key, event_type, payload, status, retry_count,
            created_at_unix_ms) VALUES (?1, ?2, ?3, ?4, ?5, 'READY', 0, ?6)",
    )?
    .execute(params![
        event.event_id.to_string(),
        event.topic,
        event.key,
        event.event_type,
        event.payload,
        now_unix_ms()
    ])?;
    Ok(())
}

fn set_status(conn: &Connection, ids: &[Uuid], status: &str) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE outbox SET status = ?2, last_attempt_at_unix_ms = ?3, claimed_until_unix_ms = NULL
         WHERE event_id = ?1 AND status = 'READY'",
    )?;
    let now = now_unix_ms();
    for id in ids {
        stmt.execute(params![id.to_string(), status, now])?;
    }
    Ok(())
}

pub(crate) fn mark_sent(conn: &Connection, ids: &[Uuid]) -> Result<(), StoreError> {
    set_status(conn, ids, "SENT")
}

pub(crate) fn mark_dlq(conn: &Connection, ids: &[Uuid]) -> Result<(), StoreError> {
    set_status(conn, ids, "DLQ")
}

pub(crate) fn record_failures(
    conn: &Connection,
    failures: &[(Uuid, String)],
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE outbox SET retry_count = retry_count + 1, last_attempt_at_unix_ms = ?3,
            last_error = ?2, claimed_until_unix_ms = NULL
         WHERE event_id = ?1 AND status = 'READY'",
    )?;
    let now = now_unix_ms();
    for (id, error) in failures {
        stmt.execute(params![id.to_string(), error, now])?;
    }
    Ok(())
}

/// Claims up to `limit` unclaimed rows READY for at least `grace`.
pub(crate) fn claim(
    conn: &Connection,
    grace: Duration,
    limit: usize,
) -> Result<Vec<ClaimedRow>, StoreError> {
    let now = now_unix_ms();
    let mut stmt = conn.prepare_cached(
        "UPDATE outbox SET claimed_until_unix_ms = ?1
         WHERE event_id IN (
            SELECT event_id FROM outbox
            WHERE status = 'READY' AND created_at_unix_ms <= ?2
              AND (claimed_until_unix_ms IS NULL OR claimed_until_unix_ms < ?3)
            ORDER BY created_at_unix_ms LIMIT ?4)
         RETURNING event_id, topic, key, event_type, payload, retry_count,
                   created_at_unix_ms, last_error",
    )?;
    let rows = stmt.query_map(
        params![
            now.saturating_add(ms(CLAIM_LEASE)),
            now.saturating_sub(ms(grace)),
            now,
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        |row| {
            let id: String = row.get(0)?;
            let created: i64 = row.get(6)?;
            Ok((
                id,
                OutboxEvent {
                    event_id: Uuid::nil(),
                    topic: row.get(1)?,
                    key: row.get(2)?,
                    event_type: row.get(3)?,
                    payload: row.get(4)?,
                },
                row.get::<_, i32>(5)?,
                created,
                row.get::<_, Option<String>>(7)?,
            ))
        },
    )?;
    let mut claimed = Vec::new();
    for row in rows {
        let (id, mut event, retry_count, created, last_error) = row?;
        event.event_id = Uuid::parse_str(&id)
            .map_err(|e| StoreError::Corrupt(format!("outbox event id {id:?}: {e}")))?;
        claimed.push(ClaimedRow {
            event,
            retry_count,
            age: Duration::from_millis(u64::try_from(now - created).unwrap_or(0)),
            last_error,
        });
    }
    Ok(claimed)
}

pub(crate) fn stats(conn: &Connection) -> Result<OutboxStats, StoreError> {
    let now = now_unix_ms();
    Ok(conn
        .prepare_cached(
            "SELECT COALESCE(SUM(status = 'READY'), 0),
                    MIN(CASE WHEN status = 'READY' THEN created_at_unix_ms END),
                    COALESCE(SUM(status = 'SENT'), 0), COALESCE(SUM(status = 'DLQ'), 0)
             FROM outbox",
        )?
        .query_row([], |row| {
            let oldest: Option<i64> = row.get(1)?;
            Ok(OutboxStats {
                ready_backlog: row.get(0)?,
                oldest_ready_age: oldest
                    .map(|t| Duration::from_millis(u64::try_from(now - t).unwrap_or(0))),
                published_total: row.get(2)?,
                dlq_total: row.get(3)?,
            })
        })?)
}
