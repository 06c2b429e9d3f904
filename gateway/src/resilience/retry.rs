//! Retry: whether a failed attempt may be sent again, and when.
//!
//! Retryability is decided here and only here ([`verdict`]): an answer
//! SERVICE_UNAVAILABLE (the backend says nothing was done) may always be
//! retried, a business answer never; a failed call follows
//! [`CallError::is_retryable`] (transport errors and UNAVAILABLE always,
//! anything else only for a request with a request_id, which the backend
//! deduplicates). A retry goes to another backend, after `backoff`, at most
//! `max_retries` times per request, never past the deadline, and only with
//! the retry budget's permission (the router asks it).

use std::time::Duration;

use hts_proto::v1::Code;
use tokio::time::Instant;

use crate::upstream::{BackendReply, CallError};

/// Parameters of the retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryParams {
    /// Retries of one client request (each to a different backend).
    pub max_retries: u32,
    /// Pause before a retry.
    pub backoff: Duration,
}

/// What an attempt's result means for its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The answer goes to the client.
    Final,
    /// A failure another attempt may fix; the answer if none is made.
    Retryable,
}

/// The verdict on one attempt's `result` for a request that is
/// `idempotent` (carries a request_id) or not.
pub fn verdict(result: &Result<BackendReply, CallError>, idempotent: bool) -> Verdict {
    let retryable = match result {
        Ok(reply) => reply.code() == Code::ServiceUnavailable as i32,
        Err(e) => e.is_retryable(idempotent),
    };
    if retryable {
        Verdict::Retryable
    } else {
        Verdict::Final
    }
}

impl RetryParams {
    /// When the next retry may start, after `retries_done` retries, or
    /// `None` when no retry is allowed (limit reached, or it would start
    /// at or after `deadline`).
    pub fn next_at(&self, retries_done: u32, now: Instant, deadline: Instant) -> Option<Instant> {
        let at = now + self.backoff;
        (retries_done < self.max_retries && at < deadline).then_some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hts_proto::v1::PlaceOrderResponse;

    fn answer(code: Code) -> Result<BackendReply, CallError> {
        Ok(BackendReply::Place(PlaceOrderResponse {
            code: code as i32,
            ..Default::default()
        }))
    }

    #[test]
    fn business_answers_are_final_and_unavailable_answers_retryable() {
        for idempotent in [false, true] {
            assert_eq!(verdict(&answer(Code::Ok), idempotent), Verdict::Final);
            assert_eq!(
                verdict(&answer(Code::InsufficientBalance), idempotent),
                Verdict::Final
            );
            assert_eq!(
                verdict(&answer(Code::ServiceUnavailable), idempotent),
                Verdict::Retryable
            );
            assert_eq!(
                verdict(&Err(CallError::Transport("reset".into())), idempotent),
                Verdict::Retryable
            );
        }
        let server = Err(CallError::Server("bug".into()));
        assert_eq!(verdict(&server, false), Verdict::Final);
        assert_eq!(verdict(&server, true), Verdict::Retryable);
        assert_eq!(verdict(&Err(CallError::Timeout), false), Verdict::Final);
    }

    #[test]
    fn retries_stop_at_the_limit_and_before_the_deadline() {
        let p = RetryParams {
            max_retries: 1,
            backoff: Duration::from_millis(10),
        };
        let now = Instant::now();
        let deadline = now + Duration::from_millis(50);
        assert_eq!(p.next_at(0, now, deadline), Some(now + p.backoff));
        assert_eq!(p.next_at(1, now, deadline), None, "limit reached");
        let late = deadline - Duration::from_millis(5);
        assert_eq!(
            p.next_at(0, late, deadline),
            None,
            "would pass the deadline"
        );
    }
}
