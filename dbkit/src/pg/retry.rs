//! Retrying transient PostgreSQL failures with backoff within a deadline.
//!
//! The deadline is the policy's budget, shortened by the deadline of the
//! request being served when one is set for the task with
//! [`with_deadline`] (the order service sets it from the caller's gRPC
//! deadline): a store never keeps retrying for a caller that has given up.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

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

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `work` with `deadline` (when given) as the deadline of every retry
/// loop inside it, including [`current_deadline`] readers such as a group
/// commit queue that carries it to another task.
pub async fn with_deadline<F: Future>(deadline: Option<Instant>, work: F) -> F::Output {
    match deadline {
        Some(deadline) => DEADLINE.scope(deadline, work).await,
        None => work.await,
    }
}

/// The deadline set by [`with_deadline`] for the current task, if any.
pub fn current_deadline() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// The moment retries of an operation started at `start` must stop: the
/// policy's budget, or `deadline` when that comes first.
pub fn retry_limit(policy: &RetryPolicy, start: Instant, deadline: Option<Instant>) -> Instant {
    let budget_end = start + policy.budget;
    deadline.map_or(budget_end, |d| d.min(budget_end))
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
/// retry limit passes (then [`PgError::RetriesExhausted`]): the policy's
/// budget, or the task's [`with_deadline`] deadline when that comes first.
/// The first attempt always runs. `op` must be safe to repeat: each attempt
/// is its own transaction.
pub async fn retry_transient<T, F, Fut>(policy: RetryPolicy, mut op: F) -> Result<T, PgError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PgError>>,
{
    let start = Instant::now();
    let limit = retry_limit(&policy, start, current_deadline());
    let mut backoff = policy.initial_backoff;
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(e) if !e.is_transient() => return Err(e),
            Err(e) => {
                let waited = start.elapsed();
                if Instant::now() + backoff > limit {
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

    #[tokio::test(start_paused = true)]
    async fn the_task_deadline_cuts_the_budget_short() {
        let policy = RetryPolicy {
            budget: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
        };
        let start = Instant::now();
        let calls = AtomicU32::new(0);
        let deadline = start + Duration::from_millis(300);
        let result: Result<(), _> = with_deadline(Some(deadline), async {
            assert_eq!(current_deadline(), Some(deadline));
            retry_transient(policy, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(PgError::Pool("down".into()))
            })
            .await
        })
        .await;
        assert!(matches!(result, Err(PgError::RetriesExhausted { .. })));
        // Paused clock: no retry was started after the deadline, and the
        // loop gave up well before the 10 s budget.
        assert!(Instant::now() <= deadline, "{:?}", start.elapsed());
        assert!(calls.load(Ordering::SeqCst) >= 3);
        assert_eq!(current_deadline(), None);
    }

    #[test]
    fn retry_limit_is_the_earlier_of_budget_and_deadline() {
        let policy = quick(1_000);
        let start = Instant::now();
        let soon = start + Duration::from_millis(10);
        let late = start + Duration::from_secs(60);
        assert_eq!(
            retry_limit(&policy, start, None),
            start + Duration::from_secs(1)
        );
        assert_eq!(retry_limit(&policy, start, Some(soon)), soon);
        assert_eq!(
            retry_limit(&policy, start, Some(late)),
            start + Duration::from_secs(1)
        );
    }
}
