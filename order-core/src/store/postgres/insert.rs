//! A batch of order inserts on PostgreSQL: one statement, one commit.
//!
//! The place lanes hand the store one batch at a time (at most one in
//! flight per lane). The batch is ONE prepared statement outside an explicit
//! transaction (a single statement commits atomically on its own, so the
//! batch costs one round trip): an `UNNEST` insert of the orders
//! (`ON CONFLICT (account_id, request_id) DO NOTHING`, so the database
//! decides every duplicate, also across processes) `RETURNING` the ids it
//! inserted, and the outbox rows of exactly those orders. There is no
//! look-up first and no read-back: an inserted order is known from what
//! was sent; only the keys that conflicted are read (one prepared select
//! for all of them) to answer with the order that exists — which is ours
//! when an earlier attempt committed but its reply was lost.
//!
//! Transient failures (connection lost, server restarting, read-only after
//! a failover) are retried with backoff. Each insert carries the deadline
//! of the request it serves: before every retry, inserts whose deadline
//! passed are taken out of the batch and answered [`StoreError::Commit`]
//! (no retry starts for a caller who gave up, so a store outage longer
//! than the deadline leaves no order behind that its client was told
//! failed), and the batch stops retrying once no caller is left or the
//! policy budget is spent.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::Pool;
use hts_dbkit::pg::{retry_limit, PgError, RetryPolicy};
use tokio::time::Instant;
use uuid::Uuid;

use super::rows::{order_from_row, ORDER_SELECT};
use crate::outbox::OutboxEvent;
use crate::store::{InsertOutcome, NewOrder, StoreError, StoredOrder};

const INSERT_SQL: &str = "WITH input AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::text[], $7::int8[], $8::int8[], $9::text[], $10::text[], $11::text[],
        $12::text[], $13::text[], $14::int8[], $15::uuid[], $16::text[], $17::text[],
        $18::text[])
      AS t(order_id, account_id, request_id, symbol, side, order_type, price, quantity,
           status, code, message, fingerprint, reservation_id, now_ms, event_id, topic,
           event_type, payload)
), ins AS (
    INSERT INTO orders (order_id, account_id, request_id, symbol, side, order_type, price,
        quantity, status, code, message, fingerprint, reservation_id, created_at_unix_ms,
        updated_at_unix_ms)
    SELECT order_id, account_id, request_id, symbol, side, order_type, price, quantity,
        status, code, message, fingerprint, reservation_id, now_ms, now_ms FROM input
    ON CONFLICT (account_id, request_id) DO NOTHING
    RETURNING order_id
), events AS (
    INSERT INTO outbox (event_id, topic, key, event_type, payload)
    SELECT i.event_id, i.topic, i.account_id, i.event_type, i.payload::jsonb
    FROM input i JOIN ins USING (order_id)
)
SELECT order_id FROM ins";

/// One insert with everything generated up front (ids, time, its event).
pub(crate) struct PreparedInsert {
    pub stored: StoredOrder,
    pub event: OutboxEvent,
    /// The request's deadline; `None`: only the policy budget bounds retries.
    pub deadline: Option<Instant>,
}

impl PreparedInsert {
    /// Prepares `order` for `topic`, answering a caller with `deadline`.
    pub(crate) fn new(order: NewOrder, topic: &str, deadline: Option<Instant>) -> Self {
        let now_ms = crate::store::now_unix_ms();
        let stored = order.into_stored(Uuid::now_v7().to_string(), now_ms);
        let event = OutboxEvent::for_order(
            topic,
            OutboxEvent::placed_type(stored.status),
            &stored,
            now_ms,
        );
        Self {
            stored,
            event,
            deadline,
        }
    }

    fn key(&self) -> (&str, &str) {
        (&self.stored.account_id, &self.stored.request_id)
    }
}

/// Inserts the batch; one answer per insert, in order, and the events of
/// the orders this batch created (for the fast path).
pub(crate) async fn insert_batch(
    pool: &Pool,
    retry: RetryPolicy,
    batch: Vec<PreparedInsert>,
) -> (Vec<Result<InsertOutcome, StoreError>>, Vec<OutboxEvent>) {
    let mut answers: Vec<Option<Result<InsertOutcome, StoreError>>> =
        (0..batch.len()).map(|_| None).collect();
    let mut live: Vec<usize> = (0..batch.len()).collect();
    let start = Instant::now();
    let mut backoff = retry.initial_backoff;
    let result = loop {
        let inserts: Vec<&PreparedInsert> = live.iter().map(|&i| &batch[i]).collect();
        match attempt(pool, &inserts).await {
            Ok(found) => break Ok(found),
            Err(e) if !e.is_transient() => break Err(StoreError::from(e)),
            Err(e) => {
                let resume = Instant::now() + backoff;
                live = expire(&batch, live, resume, &e, &mut answers);
                // Retry while some caller still waits, within the budget.
                let limit = live
                    .iter()
                    .map(|&i| retry_limit(&retry, start, batch[i].deadline))
                    .max();
                match limit {
                    None => break Ok(Found::default()), // Every caller's deadline passed.
                    Some(limit) if resume > limit => {
                        break Err(StoreError::from(PgError::RetriesExhausted {
                            waited_ms: start.elapsed().as_millis(),
                            last: Box::new(e),
                        }))
                    }
                    Some(_) => {}
                }
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64,
                    size = live.len(), "transient postgres failure in order batch; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(retry.max_backoff);
            }
        }
    };
    let mut events = Vec::new();
    match result {
        Ok(found) => {
            for &i in &live {
                let insert = &batch[i];
                let outcome = if found.inserted.contains(insert.stored.order_id.as_str()) {
                    events.push(insert.event.clone());
                    Ok(InsertOutcome::Inserted(insert.stored.clone()))
                } else {
                    match found.existing.get(&key_of(insert)) {
                        // An earlier attempt inserted it; its reply was lost.
                        Some(order) if order.order_id == insert.stored.order_id => {
                            events.push(insert.event.clone());
                            Ok(InsertOutcome::Inserted(order.clone()))
                        }
                        Some(order) => Ok(InsertOutcome::Existing(order.clone())),
                        None => Err(StoreError::Corrupt(format!(
                            "order for request {} missing after commit",
                            insert.stored.request_id
                        ))),
                    }
                };
                answers[i] = Some(outcome);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, size = live.len(), "order batch failed");
            let message = e.to_string();
            for &i in &live {
                answers[i] = Some(Err(StoreError::Commit(message.clone())));
            }
        }
    }
    let answers = answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(StoreError::Commit("not attempted".to_owned()))))
        .collect();
    (answers, events)
}

fn key_of(insert: &PreparedInsert) -> (String, String) {
    let (a, r) = insert.key();
    (a.to_owned(), r.to_owned())
}

/// Answers (with a failure) and drops the inserts whose deadline comes
/// before `resume`, the moment of the next attempt; keeps the others. A
/// dropped insert had no effect: every failed attempt rolled back.
fn expire(
    batch: &[PreparedInsert],
    live: Vec<usize>,
    resume: Instant,
    last: &PgError,
    answers: &mut [Option<Result<InsertOutcome, StoreError>>],
) -> Vec<usize> {
    let (late, keep): (Vec<usize>, Vec<usize>) = live
        .into_iter()
        .partition(|&i| batch[i].deadline.is_some_and(|d| d < resume));
    if !late.is_empty() {
        tracing::warn!(error = %last, expired = late.len(),
            "order inserts dropped from a failing batch at their request deadline");
    }
    for i in late {
        answers[i] = Some(Err(StoreError::Commit(format!(
            "request deadline passed while the database was failing ({last}); nothing stored"
        ))));
    }
    keep
}

/// What one successful attempt found.
#[derive(Default)]
struct Found {
    /// Order ids the statement inserted.
    inserted: HashSet<String>,
    /// The stored orders of the keys that conflicted.
    existing: HashMap<(String, String), StoredOrder>,
}

/// One attempt: the insert statement, then the orders of the conflicting
/// keys (if any).
async fn attempt(pool: &Pool, inserts: &[&PreparedInsert]) -> Result<Found, PgError> {
    if inserts.is_empty() {
        return Ok(Found::default());
    }
    let col =
        |f: fn(&PreparedInsert) -> &str| -> Vec<&str> { inserts.iter().map(|i| f(i)).collect() };
    let order_ids = col(|i| &i.stored.order_id);
    let accounts = col(|i| &i.stored.account_id);
    let requests = col(|i| &i.stored.request_id);
    let symbols = col(|i| &i.stored.symbol);
    let sides = col(|i| i.stored.side.as_str_name());
    let types = col(|i| i.stored.order_type.as_str_name());
    let prices: Vec<i64> = inserts.iter().map(|i| i.stored.price).collect();
    let quantities: Vec<i64> = inserts.iter().map(|i| i.stored.quantity).collect();
    let statuses = col(|i| i.stored.status.as_str_name());
    let codes = col(|i| i.stored.code.as_str_name());
    let messages = col(|i| &i.stored.message);
    let fingerprints = col(|i| &i.stored.fingerprint);
    let reservations = col(|i| &i.stored.reservation_id);
    let nows: Vec<i64> = inserts
        .iter()
        .map(|i| i.stored.created_at_unix_ms)
        .collect();
    let event_ids: Vec<Uuid> = inserts.iter().map(|i| i.event.event_id).collect();
    let topics = col(|i| &i.event.topic);
    let event_types = col(|i| &i.event.event_type);
    let payloads = col(|i| &i.event.payload);

    let client = pool.get().await?;
    let insert = client.prepare_cached(INSERT_SQL).await?;
    let rows = client
        .query(
            &insert,
            &[
                &order_ids,
                &accounts,
                &requests,
                &symbols,
                &sides,
                &types,
                &prices,
                &quantities,
                &statuses,
                &codes,
                &messages,
                &fingerprints,
                &reservations,
                &nows,
                &event_ids,
                &topics,
                &event_types,
                &payloads,
            ],
        )
        .await?;
    let mut found = Found {
        inserted: rows
            .iter()
            .map(|r| r.try_get::<_, String>(0))
            .collect::<Result<_, _>>()?,
        existing: HashMap::new(),
    };
    if found.inserted.len() == inserts.len() {
        return Ok(found);
    }
    let (c_accounts, c_requests): (Vec<&str>, Vec<&str>) = inserts
        .iter()
        .filter(|i| !found.inserted.contains(i.stored.order_id.as_str()))
        .map(|i| i.key())
        .unzip();
    let select = client
        .prepare_cached(&format!(
            "{ORDER_SELECT} JOIN UNNEST($1::text[], $2::text[]) AS r(account_id, request_id) \
             ON o.account_id = r.account_id AND o.request_id = r.request_id"
        ))
        .await?;
    for row in client.query(&select, &[&c_accounts, &c_requests]).await? {
        let order =
            order_from_row(&row).map_err(|e| PgError::Config(format!("corrupt order row: {e}")))?;
        found
            .existing
            .insert((order.account_id.clone(), order.request_id.clone()), order);
    }
    Ok(found)
}
