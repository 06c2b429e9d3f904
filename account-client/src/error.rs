//! Failure classification of account-service calls.

use tonic::Code;

/// Why an account-service call produced no business outcome.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The service could not be reached (connection refused, transport
    /// failure, or the server answered `UNAVAILABLE`). Safe to retry.
    #[error("account service unavailable: {0}")]
    Unavailable(String),
    /// The call did not complete within the per-call timeout. Its effect is
    /// unknown; callers must rely on the idempotency of the operation.
    #[error("account service call timed out")]
    Timeout,
    /// The circuit breaker is open (recent calls failed): the call was not
    /// made. Safe to retry later.
    #[error("account service circuit breaker is open")]
    CircuitOpen,
    /// The service answered with any other gRPC error status.
    #[error("account service rejected the call: {0}")]
    Rejected(tonic::Status),
    /// The configured URL is not a valid endpoint.
    #[error("invalid account service url: {0}")]
    InvalidUrl(String),
}

impl AccountError {
    /// True when the failure is an infrastructure problem that a later retry
    /// of the same idempotent call may resolve.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::Timeout | Self::CircuitOpen
        )
    }

    /// True when the failure says the service is unhealthy, so the circuit
    /// breaker counts it: unreachable, too slow, or a server-side failure
    /// status. Answers about the request itself (invalid argument, not
    /// found, ...) show a working service and count as successes.
    pub fn is_service_failure(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::Timeout => true,
            Self::Rejected(status) => matches!(
                status.code(),
                Code::Internal
                    | Code::Unknown
                    | Code::DataLoss
                    | Code::ResourceExhausted
                    | Code::Aborted
            ),
            Self::CircuitOpen | Self::InvalidUrl(_) => false,
        }
    }
}

impl From<tonic::Status> for AccountError {
    fn from(status: tonic::Status) -> Self {
        match status.code() {
            Code::Unavailable => Self::Unavailable(status.message().to_owned()),
            Code::DeadlineExceeded => Self::Timeout,
            _ => Self::Rejected(status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classification() {
        assert!(matches!(
            AccountError::from(tonic::Status::unavailable("down")),
            AccountError::Unavailable(m) if m == "down"
        ));
        assert!(matches!(
            AccountError::from(tonic::Status::deadline_exceeded("slow")),
            AccountError::Timeout
        ));
        assert!(matches!(
            AccountError::from(tonic::Status::internal("boom")),
            AccountError::Rejected(s) if s.code() == Code::Internal
        ));
    }

    #[test]
    fn retryability() {
        assert!(AccountError::Timeout.is_retryable());
        assert!(AccountError::Unavailable(String::new()).is_retryable());
        assert!(AccountError::CircuitOpen.is_retryable());
        assert!(!AccountError::InvalidUrl(String::new()).is_retryable());
        assert!(!AccountError::Rejected(tonic::Status::internal("x")).is_retryable());
    }

    #[test]
    fn service_failures_are_what_the_breaker_counts() {
        assert!(AccountError::Timeout.is_service_failure());
        assert!(AccountError::Unavailable(String::new()).is_service_failure());
        assert!(AccountError::Rejected(tonic::Status::internal("x")).is_service_failure());
        assert!(!AccountError::Rejected(tonic::Status::invalid_argument("x")).is_service_failure());
        assert!(!AccountError::Rejected(tonic::Status::not_found("x")).is_service_failure());
        assert!(!AccountError::CircuitOpen.is_service_failure());
    }
}
