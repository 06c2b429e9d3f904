//! One attempt: a leased backend, one call through its [`Upstream`], bounded
//! by the request's deadline, and the bookkeeping of how it ended — the
//! backend's adaptive limit, breaker, health, latency and counters
//! ([`Lease::finish`]; a timeout is the backend's fault only if it is slow
//! while its peers are not, [`BackendSet::is_slow_outlier`]), the pool
//! latency that hedging learns from ([`PoolSample`]), and the retry
//! policy's [`Verdict`] on the result.
//!
//! [`Upstream`]: crate::upstream::Upstream

use std::sync::Arc;

use hts_proto::v1::Code;
use tokio::time::Instant as Deadline;

use crate::resilience::backend::{AttemptKind, Ended, Lease};
use crate::resilience::clock;
use crate::resilience::hedge::PoolSample;
use crate::resilience::retry::{verdict, Verdict};
use crate::resilience::set::BackendSet;
use crate::upstream::{BackendReply, BackendRequest, CallError, CallOutcome};

/// What every attempt of one client request shares.
#[derive(Debug, Clone)]
pub struct Call {
    /// The session's account.
    pub account: Arc<str>,
    /// The request.
    pub request: Arc<BackendRequest>,
    /// The gateway's correlation id of the request (sent to the backend).
    pub correlation_id: u64,
    /// The client's deadline.
    pub deadline: Deadline,
}

impl Call {
    /// Whether the request carries a request_id (the backend deduplicates
    /// it, so it may be retried after any failure and hedged).
    pub fn idempotent(&self) -> bool {
        self.request.request_id().is_some()
    }
}

/// One finished attempt.
#[derive(Debug)]
pub struct Done {
    /// Why it was sent.
    pub kind: AttemptKind,
    /// Its answer or failure.
    pub result: Result<BackendReply, CallError>,
    /// What the result means for the request.
    pub verdict: Verdict,
}

/// Sends `call` over `lease` as a `kind` attempt and records how it ended
/// in `pool` and the lease. Never runs past the deadline: an attempt still
/// waiting then ends as [`CallError::Timeout`].
pub async fn run(
    mut lease: Lease,
    kind: AttemptKind,
    call: &Call,
    pool: PoolSample,
    set: &BackendSet,
) -> Done {
    lease.sent();
    let remaining = call.deadline.saturating_duration_since(Deadline::now());
    let sent = lease.backend().upstream().call(
        call.account.clone(),
        call.request.clone(),
        call.correlation_id,
        remaining,
    );
    let result = tokio::time::timeout_at(call.deadline, sent)
        .await
        .unwrap_or(Err(CallError::Timeout));
    let elapsed = clock::now().saturating_duration_since(pool.started());
    let outcome = match &result {
        Ok(_) => CallOutcome::Answered,
        Err(e) => {
            tracing::debug!(backend = lease.backend().url(), error = %e, "backend call failed");
            e.outcome()
        }
    };
    pool.finish(
        elapsed,
        matches!(outcome, CallOutcome::Answered | CallOutcome::Timeout),
    );
    // A timeout is this backend's failure only when it is slow while its
    // peers are not, and not while the pool is saturated (requests wait
    // for room, or every backend is at its limit): then and its slowness is the pool's load (a
    // shared store's writer), which the adaptive limit answers, not the
    // breaker.
    let now = clock::now();
    let timeout_is_failure = outcome == CallOutcome::Timeout
        && !set.saturated(now)
        && set.is_slow_outlier(lease.backend(), now);
    let overloaded = matches!(&result, Ok(r) if r.code() == Code::ServiceUnavailable as i32);
    lease.finish(Ended {
        outcome,
        elapsed,
        overloaded,
        timeout_is_failure,
    });
    Done {
        kind,
        verdict: verdict(&result, call.idempotent()),
        result,
    }
}
