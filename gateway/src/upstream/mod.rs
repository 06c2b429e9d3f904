//! The upstream call: one attempt of a client request at one order-service
//! backend, and everything that describes it.
//!
//! * [`message`]: [`BackendRequest`] (a decoded PLACE/CANCEL/QUERY) and
//!   [`BackendReply`] (its typed answer);
//! * [`error`]: [`CallError`], how an attempt failed — it decides
//!   retryability, the breaker's view and the client's code in one place;
//! * [`grpc`]: the production [`Upstream`] over a tonic channel.
//!
//! [`Upstream`] is the seam between the resilience policies and the
//! network: the router only ever sends attempts through it, so its tests
//! run against in-memory fakes under paused time, and a different transport
//! (or a batching one) replaces the gRPC one without touching any policy.

pub mod error;
#[cfg(test)]
pub mod fake;
pub mod grpc;
pub mod message;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

pub use error::{timeout_message, CallError, CallOutcome};
pub use grpc::{ChannelSettings, GrpcConnector, GrpcUpstream};
pub use message::{BackendReply, BackendRequest, Class, MAX_ID_LEN};

/// One backend, as the router sees it. Futures are boxed and `'static` so
/// attempts can race each other (hedging) and be dropped (cancelled) freely;
/// the box costs one small allocation beside a network round trip.
pub trait Upstream: Send + Sync + std::fmt::Debug {
    /// Sends one attempt of `request` for `account`; `timeout` is the time
    /// left until the client's deadline (propagated to the backend).
    fn call(
        &self,
        account: Arc<str>,
        request: Arc<BackendRequest>,
        correlation_id: u64,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<BackendReply, CallError>>;

    /// One active health check; `true` when the backend reports SERVING.
    fn check_health(&self, timeout: Duration) -> BoxFuture<'static, bool>;
}

/// Opens an [`Upstream`] for a backend URL (the backend set calls it when a
/// backend is added).
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// The upstream at `url`; connecting is lazy, so only a malformed URL fails.
    fn connect(&self, url: &str) -> Result<Arc<dyn Upstream>, InvalidUrl>;
}

/// A backend URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid backend url {url:?}: {reason}")]
pub struct InvalidUrl {
    /// The offending URL.
    pub url: String,
    /// Why it was refused.
    pub reason: String,
}
