//! The PostgreSQL ledger: one transaction per operation, retried on
//! transient errors; idempotency rests on the `reservations` primary key,
//! so several account-service processes may share the database.

mod ledger;
mod schema;

use deadpool_postgres::Pool;
use hts_dbkit::pg::{retry_transient, RetryPolicy};
use hts_proto::v1::{AssetBalance, ReleaseOutcome, ReserveOutcome};

use super::ledger::ReserveArgs;
use super::StoreError;
use ledger::Attempt;

/// Handle to the PostgreSQL ledger; cheap to clone.
#[derive(Clone)]
pub(crate) struct PgLedger {
    pool: Pool,
    retry: RetryPolicy,
}

fn finish<T>(attempt: Attempt<T>) -> Result<T, StoreError> {
    match attempt {
        Attempt::Done(value) => Ok(value),
        Attempt::Corrupt(message) => Err(StoreError::Corrupt(message)),
    }
}

impl PgLedger {
    /// Connects and migrates.
    pub(crate) async fn connect(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let pool = hts_dbkit::pg::connect_pool(url, pool_size)?;
        let retry = RetryPolicy::default();
        retry_transient(retry, || async {
            let mut client = pool.get().await?;
            hts_dbkit::pg::migrate(&mut client, schema::COMPONENT, schema::MIGRATIONS).await
        })
        .await?;
        Ok(Self { pool, retry })
    }

    pub(crate) async fn reserve(&self, args: &ReserveArgs) -> Result<ReserveOutcome, StoreError> {
        finish(retry_transient(self.retry, || ledger::reserve(&self.pool, args)).await?)
    }

    pub(crate) async fn release(
        &self,
        reservation_id: &str,
        account_id: &str,
    ) -> Result<ReleaseOutcome, StoreError> {
        finish(
            retry_transient(self.retry, || {
                ledger::release(&self.pool, reservation_id, account_id)
            })
            .await?,
        )
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

    pub(crate) async fn seed_demo(&self) -> Result<(), StoreError> {
        Ok(retry_transient(self.retry, || ledger::seed_demo(&self.pool)).await?)
    }
}
