//! Order domain of the HTS order system.
//!
//! * [`domain`] — request validation, idempotency fingerprints and the
//!   reservation an order needs.
//! * [`store`] — the [`OrderStore`] trait and its SQLite and PostgreSQL
//!   implementations (shareable by several order-service processes).
//! * [`outbox`] — order events committed with the orders, published to
//!   Kafka or a local event log by a fast path and a recovery job.
//! * [`service`] — the `OrderService` gRPC implementation.
//! * [`process`] — [`process::open`], the parts of one process: sink,
//!   outbox fast path and recovery, store and cache.
//! * [`server`] — [`serve`], serving those parts with the account client,
//!   background release retries and the health service on a bound listener.
//! * [`fault`] — fault injection: per-call faults and the commit fault.
//! * [`echo`] — [`serve_echo`], a no-work order service for benchmarks.
//! * [`cache`] — the optional Redis cache of order summaries.
//! * [`admin`] — the admin HTTP surface: probes and Prometheus metrics.
//!
//! Everything but [`domain`] is the `service` feature (on by default);
//! `default-features = false` builds the pure domain rules alone.
#![deny(missing_docs)]

#[cfg(feature = "service")]
pub mod admin;
#[cfg(feature = "service")]
pub mod cache;
#[cfg(feature = "service")]
pub mod config;
pub mod domain;
#[cfg(feature = "service")]
pub mod echo;
#[cfg(feature = "service")]
pub mod fault;
#[cfg(feature = "service")]
pub mod outbox;
#[cfg(feature = "service")]
pub mod process;
#[cfg(feature = "service")]
pub mod server;
#[cfg(feature = "service")]
pub mod service;
#[cfg(feature = "service")]
pub mod store;

#[cfg(feature = "service")]
pub use config::OrderServiceConfig;
#[cfg(feature = "service")]
pub use echo::serve_echo;
#[cfg(feature = "service")]
pub use server::{
    prepare, serve, serve_group, serve_with_admin, serve_with_faults, PreparedOrderService,
};

#[cfg(feature = "service")]
pub use store::{open_store, OrderStore, StoreError, StoreOptions};
