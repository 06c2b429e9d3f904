//! Resilience policies between the correlation table and the backends.
//!
//! A client request enters [`Router::call`] with its deadline and leaves with
//! exactly one typed answer. The router ([`router`]) composes small
//! policies, each in its own file and each configured only by its own
//! parameters struct (built from [`ResilienceConfig`] in [`config`]):
//!
//! * [`admission`]: per-account rate limit ([`rate_limit`]) and the
//!   gateway-wide in-flight limit → RATE_LIMITED / SERVICE_UNAVAILABLE at
//!   once, never a queue;
//! * [`set`] + [`p2c`]: which healthy, non-draining, breaker-admitting
//!   backend below its limit gets an attempt (power of two choices by
//!   in-flight × latency EWMA, [`latency`]);
//! * [`limit`]: each backend's adaptive in-flight limit (Gradient2 with a
//!   deadline-derived ceiling); [`fair_queue`]: where a request waits,
//!   briefly and fairly between accounts, when every backend is at its
//!   limit, cancels first;
//! * [`throughput`]: what the backends answer per second, which bounds
//!   how many may wait;
//! * [`backend`]: one backend's limit, [`breaker`] (fed by failures, not
//!   load) and [`health`] (active checks, passive outlier ejection);
//! * [`attempt`]: one call through the backend's upstream and its
//!   bookkeeping;
//! * [`retry`]: whether a failure may be retried (decided there only) and
//!   when; [`hedge`]: when a slow attempt gets a twin on another backend;
//!   both spend the shared [`budget`].
//!
//! Policy state that outlives a config reload (buckets, budget, latency
//! windows, breakers) lives in the policy objects; [`Router::reconfigure`]
//! hands each its new parameters, and a part starts afresh only when its
//! own parameters changed. Time is [`clock::now`] (Tokio's clock), so the
//! unit tests run every policy under paused time.

pub mod admission;
pub mod attempt;
pub mod backend;
pub mod breaker;
pub mod budget;
pub mod clock;
pub mod config;
pub mod fair_queue;
pub mod health;
pub mod hedge;
pub mod latency;
pub mod limit;
pub mod p2c;
pub mod rate_limit;
pub mod retry;
pub mod router;
pub mod set;
pub mod snapshot;
pub mod throughput;

pub use backend::BackendSnapshot;
pub use config::{ConfigError, ResilienceConfig};
pub use router::Router;
pub use set::{BackendSet, NoBackend, SetError};
pub use snapshot::{ClassSnapshot, RouterSnapshot};
