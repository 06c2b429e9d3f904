//! Client of the Account gRPC service, used by the order service.
//!
//! [`AccountClient`] wraps the generated `AccountServiceClient` over a lazily
//! connected [`tonic::transport::Channel`], bounds every call with a per-call
//! timeout and classifies failures into [`AccountError`] so callers can tell a
//! retryable infrastructure failure apart from a business outcome (business
//! outcomes are carried in the response body, never as errors).
//!
//! # Resilience policy
//!
//! Every call is bounded by a per-call timeout and passes a circuit breaker
//! ([`hts_breaker`], the same state machine the gateway runs per backend):
//! timeouts, unreachable service and server-failure statuses count as
//! failures; once the breaker opens, calls fail at once with
//! [`AccountError::CircuitOpen`] (the order service answers
//! SERVICE_UNAVAILABLE) until half-open probes succeed. No retries here: the
//! order service's callers retry with the same request id, which the
//! idempotent reservations make safe.
#![deny(missing_docs)]

mod client;
mod config;
mod error;

pub use client::{AccountClient, Transport, BREAKER_STATE_METRIC, ERRORS_METRIC};
pub use config::AccountClientConfig;
pub use error::AccountError;
pub use hts_breaker::{BreakerConfig, BreakerState};
