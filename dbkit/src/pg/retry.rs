//! Retrying transient PostgreSQL failures with backoff within a deadline.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;

use super::PgError;

/// How long and how fast to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total time an operation may be retried (the request deadline).
    pub budget: Duration,
    /// First pause; doubled after each failure up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest pause between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            budget: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
        }
    }
}

/// True for database errors worth retrying (see [`PgError::is_transient`]).
pub(crate) fn is_transient_db(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // No SQLSTATE: an I/O or protocol failure of the connection.
        None => true,
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::READ_ONLY_SQL_TRANSACTION,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                    SqlState::TOO_MANY_CONNECTIONS,
                ]
                .contains(code)
        }
    }
}

/// Runs `op` until it succeeds, fails with a non-transient error, or the
/// policy's budget is spent (then [`PgError::RetriesExhausted`]). `op` must
/// be safe to repeat: each attempt is its own transaction.
pub async fn retry_transient<T, F, Fut>(policy: RetryPolicy, mut op: F) -> Result<T, PgError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PgError>>,
{
    let start = Instant::now();
    let mut backoff = policy.initial_backoff;
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(e) if !e.is_transient() => return Err(e),
            Err(e) => {
                let waited = start.elapsed();
                if waited + backoff > policy.budget {
                    return Err(PgError::RetriesExhausted {
                        waited_ms: waited.as_millis(),
                        last: Box::new(e),
                    });
                }
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64,
                    "transient postgres failure; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(policy.max_backoff);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn quick(budget_ms: u64) -> RetryPolicy {
        RetryPolicy {
            budget: Duration::from_millis(budget_ms),
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let value = retry_transient(quick(5_000), || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(PgError::Pool("busy".into()))
            } else {
                Ok(7)
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 7);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = retry_transient(quick(5_000), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(PgError::Config("bad".into()))
        })
        .await;
        assert!(matches!(result, Err(PgError::Config(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_budget_bounds_retries() {
        let result: Result<(), _> =
            retry_transient(quick(30), || async { Err(PgError::Pool("down".into())) }).await;
        assert!(matches!(result, Err(PgError::RetriesExhausted { .. })));
    }
}
