//! Group commit of order inserts on PostgreSQL.
//!
//! Concurrent `insert_order` calls are queued (bounded); a batch of up to
//! [`MAX_BATCH`] queued inserts is written by ONE transaction of two
//! statements: an `UNNEST` insert of the orders, their idempotency records
//! and their outbox rows (`ON CONFLICT (account_id, request_id) DO NOTHING`,
//! so the database decides every duplicate, also across processes), then a
//! read-back of every requested key. Each caller is answered only after the
//! commit. Up to [`CONCURRENT_BATCHES`] batches are in flight at once; new
//! inserts accumulate while they run, so batches grow with load.
//!
//! Transient failures (connection lost, server restarting, read-only after a
//! failover) are retried with backoff. Each queued insert carries the
//! deadline of the request it serves ([`hts_dbkit::pg::current_deadline`] of
//! the caller's task): before every retry, inserts whose deadline passed are
//! taken out of the batch and answered [`StoreError::Commit`] (no retry
//! starts for a caller who gave up, so a store outage longer than the
//! deadline leaves no order behind that its client was told failed), and the
//! batch stops retrying once no caller is left or the policy budget is spent.

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::Pool;
use hts_dbkit::pg::{current_deadline, retry_limit, PgError, RetryPolicy};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;
use uuid::Uuid;

use super::rows::{order_from_row, ORDER_SELECT};
use crate::outbox::{AfterCommit, OutboxEvent};
use crate::store::{InsertOutcome, NewOrder, StoreError, StoredOrder};

/// Most inserts per transaction.
pub(crate) const MAX_BATCH: usize = 256;
/// Transactions in flight at once per process.
const CONCURRENT_BATCHES: usize = 4;
/// Capacity of the queue in front of the batcher.
const QUEUE_CAPACITY: usize = 4096;

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
        quantity, status, reservation_id, created_at_unix_ms, updated_at_unix_ms)
    SELECT order_id, account_id, request_id, symbol, side, order_type, price, quantity,
        status, reservation_id, now_ms, now_ms FROM input
    ON CONFLICT (account_id, request_id) DO NOTHING
    RETURNING order_id
), keys AS (
    INSERT INTO idempotency_keys (account_id, request_id, fingerprint, response_code,
        response_message, order_id, created_at_unix_ms)
    SELECT i.account_id, i.request_id, i.fingerprint, i.code, i.message, i.order_id, i.now_ms
    FROM input i JOIN ins USING (order_id)
), events AS (
    INSERT INTO outbox (event_id, topic, key, event_type, payload)
    SELECT i.event_id, i.topic, i.account_id, i.event_type, i.payload::jsonb
    FROM input i JOIN ins USING (order_id)
)
SELECT order_id FROM ins";

/// One insert with everything generated up front (ids, time, its event).
pub(crate) struct PreparedInsert {
    pub order: NewOrder,
    pub order_id: String,
    pub now_ms: i64,
    pub event: OutboxEvent,
}

struct Job {
    insert: PreparedInsert,
    /// The request's deadline; `None`: only the policy budget bounds retries.
    deadline: Option<Instant>,
    reply: oneshot::Sender<Result<InsertOutcome, StoreError>>,
}

/// Handle to the batcher task; cheap to clone.
#[derive(Clone)]
pub(crate) struct InsertBatcher {
    queue: mpsc::Sender<Job>,
}

impl InsertBatcher {
    /// Starts the batcher on `pool`.
    pub(crate) fn spawn(pool: Pool, retry: RetryPolicy, after_commit: AfterCommit) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(rx, pool, retry, Arc::new(after_commit)));
        Self { queue }
    }

    /// Inserts through the next batch; answers after its commit. Retries of
    /// a failed batch stop at the deadline of the calling task, if it has one.
    pub(crate) async fn insert(&self, insert: PreparedInsert) -> Result<InsertOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let deadline = current_deadline();
        self.queue
            .send(Job {
                insert,
                deadline,
                reply,
            })
            .await
            .map_err(|_| StoreError::WriterClosed)?;
        answer.await.map_err(|_| StoreError::WriterClosed)?
    }
}

async fn run(
    mut rx: mpsc::Receiver<Job>,
    pool: Pool,
    retry: RetryPolicy,
    after_commit: Arc<AfterCommit>,
) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_BATCHES));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else { return };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (pool, after_commit) = (pool.clone(), Arc::clone(&after_commit));
        tokio::spawn(async move {
            commit_batch(&pool, retry, &after_commit, batch).await;
            drop(slot);
        });
    }
}

async fn commit_batch(
    pool: &Pool,
    retry: RetryPolicy,
    after_commit: &AfterCommit,
    batch: Vec<Job>,
) {
    let mut batch = batch;
    // One lock order for every transaction: fewer deadlocks between batches.
    batch.sort_by(|a, b| {
        (&a.insert.order.account_id, &a.insert.order.request_id)
            .cmp(&(&b.insert.order.account_id, &b.insert.order.request_id))
    });
    let start = Instant::now();
    let mut backoff = retry.initial_backoff;
    let result = loop {
        let inserts: Vec<&PreparedInsert> = batch.iter().map(|j| &j.insert).collect();
        match attempt(pool, &inserts).await {
            Ok(rows) => break decode(&rows),
            Err(e) if !e.is_transient() => break Err(StoreError::from(e)),
            Err(e) => {
                let resume = Instant::now() + backoff;
                batch = expire(batch, resume, &e);
                // Retry while some caller still waits, within the budget.
                let limit = batch
                    .iter()
                    .map(|j| retry_limit(&retry, start, j.deadline))
                    .max();
                match limit {
                    None => return, // Every caller's deadline passed.
                    Some(limit) if resume > limit => {
                        break Err(StoreError::from(PgError::RetriesExhausted {
                            waited_ms: start.elapsed().as_millis(),
                            last: Box::new(e),
                        }))
                    }
                    Some(_) => {}
                }
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64,
                    size = batch.len(), "transient postgres failure in order batch; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(retry.max_backoff);
            }
        }
    };
    match result {
        Ok(stored) => {
            let mut events = Vec::new();
            for job in batch {
                let key = (
                    job.insert.order.account_id.clone(),
                    job.insert.order.request_id.clone(),
                );
                let outcome = match stored.get(&key) {
                    // Our id won: inserted by this batch (possibly by an
                    // earlier attempt whose commit reply was lost).
                    Some(order) if order.order_id == job.insert.order_id => {
                        events.push(job.insert.event);
                        Ok(InsertOutcome::Inserted(order.clone()))
                    }
                    Some(order) => Ok(InsertOutcome::Existing(order.clone())),
                    None => Err(StoreError::Corrupt(format!(
                        "order for request {} missing after commit",
                        job.insert.order.request_id
                    ))),
                };
                let _ = job.reply.send(outcome);
            }
            after_commit.committed(events);
        }
        Err(e) => {
            tracing::error!(error = %e, size = batch.len(), "order batch failed");
            let message = e.to_string();
            for job in batch {
                let _ = job.reply.send(Err(StoreError::Commit(message.clone())));
            }
        }
    }
}

/// Answers (with a failure) and drops the jobs whose deadline comes before
/// `resume`, the moment of the next attempt; keeps the others. A dropped
/// job had no effect: every failed attempt rolled back.
fn expire(batch: Vec<Job>, resume: Instant, last: &PgError) -> Vec<Job> {
    let (late, keep): (Vec<Job>, Vec<Job>) = batch
        .into_iter()
        .partition(|j| j.deadline.is_some_and(|d| d < resume));
    if !late.is_empty() {
        tracing::warn!(error = %last, expired = late.len(),
            "order inserts dropped from a failing batch at their request deadline");
    }
    for job in late {
        let _ = job.reply.send(Err(StoreError::Commit(format!(
            "request deadline passed while the database was failing ({last}); nothing stored"
        ))));
    }
    keep
}

type Stored = HashMap<(String, String), StoredOrder>;

fn decode(rows: &[tokio_postgres::Row]) -> Result<Stored, StoreError> {
    let mut stored = HashMap::with_capacity(rows.len());
    for row in rows {
        let order = order_from_row(row)?;
        stored.insert((order.account_id.clone(), order.request_id.clone()), order);
    }
    Ok(stored)
}

/// One attempt: insert, read back, commit.
async fn attempt(
    pool: &Pool,
    inserts: &[&PreparedInsert],
) -> Result<Vec<tokio_postgres::Row>, PgError> {
    let col = |f: fn(&PreparedInsert) -> String| -> Vec<String> {
        inserts.iter().map(|i| f(i)).collect()
    };
    let order_ids = col(|i| i.order_id.clone());
    let accounts = col(|i| i.order.account_id.clone());
    let requests = col(|i| i.order.request_id.clone());
    let symbols = col(|i| i.order.symbol.clone());
    let sides = col(|i| i.order.side.as_str_name().to_owned());
    let types = col(|i| i.order.order_type.as_str_name().to_owned());
    let prices: Vec<i64> = inserts.iter().map(|i| i.order.price).collect();
    let quantities: Vec<i64> = inserts.iter().map(|i| i.order.quantity).collect();
    let statuses = col(|i| i.order.status.as_str_name().to_owned());
    let codes = col(|i| i.order.code.as_str_name().to_owned());
    let messages = col(|i| i.order.message.clone());
    let fingerprints = col(|i| i.order.fingerprint.clone());
    let reservations = col(|i| i.order.reservation_id.clone());
    let nows: Vec<i64> = inserts.iter().map(|i| i.now_ms).collect();
    let event_ids: Vec<Uuid> = inserts.iter().map(|i| i.event.event_id).collect();
    let topics = col(|i| i.event.topic.clone());
    let event_types = col(|i| i.event.event_type.clone());
    let payloads = col(|i| i.event.payload.clone());

    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let insert = tx.prepare_cached(INSERT_SQL).await?;
    tx.query(
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
    let read_back = tx
        .prepare_cached(&format!(
            "{ORDER_SELECT} JOIN UNNEST($1::text[], $2::text[]) AS r(account_id, request_id) \
             ON o.account_id = r.account_id AND o.request_id = r.request_id"
        ))
        .await?;
    let rows = tx.query(&read_back, &[&accounts, &requests]).await?;
    tx.commit().await?;
    Ok(rows)
}
