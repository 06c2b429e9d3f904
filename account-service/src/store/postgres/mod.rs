//! The PostgreSQL ledger: account lanes, one transaction per lane batch,
//! retried on transient errors; idempotency rests on the `reservations`
//! primary key, so several account-service processes may share the
//! database.
//!
//! Operations go to the lane of their account ([`hts_dbkit::lanes`]): a
//! lane runs one batch at a time, so within a process no two transactions
//! ever touch one account's balances at once, and the batch size follows
//! the load. Each batch is one [`ledger::attempt`] (two round trips, one
//! commit).

mod ledger;
mod schema;

use deadpool_postgres::Pool;
use hts_dbkit::lanes::Lanes;
use hts_dbkit::pg::{retry_transient, RetryPolicy};
use hts_proto::v1::{AssetBalance, HeldReservation};

use super::book::{LedgerOp, LedgerOutcome};
use super::{OpenMode, StoreError, StoreIdentity};

/// Most calls' operations (each call's share of a lane) decided by one
/// transaction.
const MAX_BATCH: usize = 64;

type Answer = Result<LedgerOutcome, StoreError>;

/// Handle to the PostgreSQL ledger; cheap to clone.
#[derive(Clone)]
pub(crate) struct PgLedger {
    pool: Pool,
    retry: RetryPolicy,
    /// Each item is one call's operations of one lane, kept together so a
    /// call's operations on a lane are decided by one transaction.
    lanes: Lanes<Vec<LedgerOp>, Vec<Answer>>,
}

/// Runs one lane batch (the operations of every call in it, in order);
/// transient failures (also a batch that raced another process) are
/// retried within the policy's budget.
async fn run_batch(pool: &Pool, retry: RetryPolicy, calls: Vec<Vec<LedgerOp>>) -> Vec<Vec<Answer>> {
    let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
    let ops: Vec<LedgerOp> = calls.into_iter().flatten().collect();
    let mut answers: Vec<Answer> =
        match retry_transient(retry, || ledger::attempt(pool, &ops)).await {
            Ok(outcomes) => outcomes
                .into_iter()
                .map(|o| o.map_err(StoreError::from))
                .collect::<Vec<_>>(),
            Err(e) => {
                tracing::error!(error = %e, size = ops.len(), "ledger batch failed");
                let message = e.to_string();
                ops.iter()
                    .map(|_| Err(StoreError::Commit(message.clone())))
                    .collect::<Vec<_>>()
            }
        }
        .into_iter()
        .rev()
        .collect();
    sizes
        .into_iter()
        .map(|n| (0..n).filter_map(|_| answers.pop()).collect())
        .collect()
}

impl PgLedger {
    /// Connects, checks the store identity and schema version (creating
    /// the store only in [`OpenMode::Init`]), migrates and starts `lanes`
    /// account lanes.
    pub(crate) async fn connect(
        url: &str,
        pool_size: usize,
        lanes: usize,
        mode: OpenMode,
    ) -> Result<(Self, StoreIdentity), StoreError> {
        let pool = hts_dbkit::pg::connect_pool(url, pool_size)?;
        let retry = RetryPolicy::default();
        let identity = hts_dbkit::pg::identity::open_store(
            &pool,
            url,
            schema::COMPONENT,
            schema::MIGRATIONS,
            mode,
            retry,
        )
        .await?;
        let batch_pool = pool.clone();
        let lanes = Lanes::start(lanes, MAX_BATCH, move |_, ops| {
            let pool = batch_pool.clone();
            Box::pin(async move { run_batch(&pool, retry, ops).await })
        });
        Ok((Self { pool, retry, lanes }, identity))
    }

    /// Decides `ops` on their accounts' lanes, one unit per lane (so one
    /// call's operations on a lane share a transaction); one answer per
    /// operation, in order.
    pub(crate) async fn apply(&self, ops: Vec<LedgerOp>) -> Vec<Answer> {
        let n = ops.len();
        let mut per_lane: Vec<Vec<(usize, LedgerOp)>> = vec![Vec::new(); self.lanes.len()];
        for (i, op) in ops.into_iter().enumerate() {
            per_lane[hts_dbkit::lanes::lane_of(op.account_id(), self.lanes.len())].push((i, op));
        }
        let calls = per_lane
            .into_iter()
            .enumerate()
            .filter(|(_, items)| !items.is_empty())
            .map(|(lane, items)| async move {
                let (positions, ops): (Vec<usize>, Vec<LedgerOp>) = items.into_iter().unzip();
                let count = ops.len();
                let answers = self
                    .lanes
                    .submit_to(lane, ops)
                    .await
                    .unwrap_or_else(|closed| {
                        (0..count)
                            .map(|_| Err(StoreError::Commit(closed.to_string())))
                            .collect()
                    });
                positions.into_iter().zip(answers).collect::<Vec<_>>()
            });
        let mut answers: Vec<Option<Answer>> = (0..n).map(|_| None).collect();
        for (i, answer) in futures::future::join_all(calls).await.into_iter().flatten() {
            answers[i] = Some(answer);
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(StoreError::Commit("not answered".to_owned()))))
            .collect()
    }

    pub(crate) async fn get_account(
        &self,
        account_id: &str,
    ) -> Result<Option<Vec<AssetBalance>>, StoreError> {
        Ok(retry_transient(self.retry, || {
            ledger::account_balances(&self.pool, account_id)
        })
        .await?)
    }

    pub(crate) async fn held_reservations(
        &self,
        cutoff_ms: i64,
        after: &str,
        limit: usize,
    ) -> Result<Vec<HeldReservation>, StoreError> {
        Ok(retry_transient(self.retry, || {
            ledger::held_reservations(&self.pool, cutoff_ms, after, limit)
        })
        .await?)
    }

    pub(crate) async fn seed_demo(&self) -> Result<(), StoreError> {
        Ok(retry_transient(self.retry, || ledger::seed_demo(&self.pool)).await?)
    }
}
