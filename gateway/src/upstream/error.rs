//! [`CallError`]: how one attempt at a backend failed, in one typed value
//! that knows what the failure means.
//!
//! Modelled on `account-client/src/error.rs`: the kind of failure decides
//! three things, each in exactly one method here, so no caller re-derives
//! them from status codes:
//!
//! * whether the request may be sent again ([`CallError::is_retryable`]);
//! * what it tells the backend's circuit breaker and outlier detection
//!   ([`CallError::outcome`]);
//! * what the client is told if it is the last word ([`CallError::code`],
//!   [`CallError::message`]).

use std::time::Duration;

use hts_proto::v1::Code;

/// How one call ended, for the backend's bookkeeping (breaker, outlier
/// ejection, latency).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The backend answered (any business code).
    Answered,
    /// Connection refused/reset or connect failure: the request never
    /// reached a handler.
    Transport,
    /// gRPC UNAVAILABLE or another server-side failure.
    ServerError,
    /// The call's timeout expired.
    Timeout,
}

/// One failed attempt at one backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The request never reached a handler (the connection could not be
    /// made: refused, connect failure). Nothing can have been stored.
    #[error("{0}")]
    Transport(String),
    /// The connection broke while the request was on it (reset, closed:
    /// e.g. the backend was killed). The handler may have stored the order
    /// before dying: the outcome is unknown.
    #[error("{0}")]
    Broken(String),
    /// The backend answered gRPC UNAVAILABLE (shutting down, or its
    /// transport refused the call).
    #[error("{0}")]
    Unavailable(String),
    /// The attempt's timeout expired before an answer (gRPC
    /// DEADLINE_EXCEEDED / CANCELLED, or the gateway's own timer): the
    /// outcome is unknown.
    #[error("the attempt timed out")]
    Timeout,
    /// Any other gRPC status: the handler failed.
    #[error("{0}")]
    Server(String),
}

impl CallError {
    /// Whether the request may be sent again, to another backend.
    /// Failures that prove nothing was done (transport, UNAVAILABLE) always
    /// may; any other failure only when the request carries a request_id
    /// (`idempotent`), because the backend then deduplicates the retry.
    pub fn is_retryable(&self, idempotent: bool) -> bool {
        idempotent || matches!(self, CallError::Transport(_) | CallError::Unavailable(_))
    }

    /// What the failure means for the backend's breaker and health.
    pub fn outcome(&self) -> CallOutcome {
        match self {
            CallError::Transport(_) | CallError::Broken(_) => CallOutcome::Transport,
            CallError::Unavailable(_) | CallError::Server(_) => CallOutcome::ServerError,
            CallError::Timeout => CallOutcome::Timeout,
        }
    }

    /// The response code the client gets when this failure is the answer.
    pub fn code(&self) -> Code {
        match self {
            CallError::Transport(_) | CallError::Unavailable(_) => Code::ServiceUnavailable,
            CallError::Timeout | CallError::Broken(_) => Code::Timeout,
            CallError::Server(_) => Code::Internal,
        }
    }

    /// The message the client gets when this failure is the answer;
    /// `request_timeout` is quoted in TIMEOUT answers.
    pub fn message(&self, request_timeout: Duration) -> String {
        match self {
            CallError::Timeout => timeout_message(request_timeout),
            CallError::Broken(m) => format!(
                "{m}: the connection to the order service broke while the request was on it: \
                 the outcome is unknown; retrying with the same request_id is safe"
            ),
            other => other.to_string(),
        }
    }

    /// Whether the request may have been carried out although this attempt
    /// has no answer (it timed out, or its connection broke): the client's
    /// final answer must then say "outcome unknown", never "not placed".
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, CallError::Timeout | CallError::Broken(_))
    }
}

/// The message of a TIMEOUT answer: the outcome is unknown and a retry with
/// the same request_id is safe.
pub fn timeout_message(request_timeout: Duration) -> String {
    format!(
        "deadline of {} ms passed before the backend answered: the outcome is unknown; \
         retrying with the same request_id is safe",
        request_timeout.as_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryability_breaker_meaning_and_client_code_per_kind() {
        let t = Duration::from_millis(50);
        let transport = CallError::Transport("order service unreachable: reset".into());
        let unavailable = CallError::Unavailable("order service unavailable: down".into());
        let server = CallError::Server("order service failed (Internal): bug".into());
        for e in [&transport, &unavailable] {
            assert!(e.is_retryable(false), "{e:?} proves nothing was done");
            assert_eq!(e.code(), Code::ServiceUnavailable);
        }
        assert!(!server.is_retryable(false));
        assert!(server.is_retryable(true));
        assert!(!CallError::Timeout.is_retryable(false));
        let broken = CallError::Broken("order service connection lost: reset".into());
        assert!(broken.is_retryable(true) && !broken.is_retryable(false));
        assert!(broken.is_ambiguous() && CallError::Timeout.is_ambiguous());
        assert!(!transport.is_ambiguous() && !unavailable.is_ambiguous());
        assert_eq!(broken.code(), Code::Timeout);
        assert_eq!(broken.outcome(), CallOutcome::Transport);
        assert!(broken.message(t).contains("outcome is unknown"));
        assert!(CallError::Timeout.is_retryable(true));
        assert_eq!(transport.outcome(), CallOutcome::Transport);
        assert_eq!(unavailable.outcome(), CallOutcome::ServerError);
        assert_eq!(server.outcome(), CallOutcome::ServerError);
        assert_eq!(CallError::Timeout.outcome(), CallOutcome::Timeout);
        assert_eq!(server.code(), Code::Internal);
        assert_eq!(CallError::Timeout.code(), Code::Timeout);
        let m = CallError::Timeout.message(t);
        assert!(m.contains("deadline of 50 ms"), "{m}");
        assert!(m.contains("outcome is unknown"), "{m}");
        assert!(m.contains("same request_id"), "{m}");
        assert_eq!(server.message(t), "order service failed (Internal): bug");
    }
}
