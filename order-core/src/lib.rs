//! Order domain of the HTS order system.
//!
//! * [`domain`] — request validation, idempotency fingerprints and the
//!   reservation an order needs.
//! * [`store`] — the [`OrderStore`] trait and its SQLite and PostgreSQL
//!   implementations (shareable by several order-service processes).
//! * [`outbox`] — order events committed with the orders, published to
//!   Kafka or a local event log by a fast path and a recovery job.
//! * [`service`] — the `OrderService` gRPC implementation.
//! * [`server`] — [`serve`], wiring store, account client, background
//!   release retries and the health service onto a bound listener.
//! * [`echo`] — [`serve_echo`], a no-work order service for benchmarks.
//! * [`cache`] — the optional Redis cache of order summaries.
//! * [`admin`] — the admin HTTP surface: probes and Prometheus metrics.
#![deny(missing_docs)]

pub mod admin;
pub mod cache;
pub mod config;
pub mod domain;
pub mod echo;
pub mod fault;
pub mod outbox;
pub mod server;
pub mod service;
pub mod store;

pub use config::OrderServiceConfig;
pub use echo::serve_echo;
pub use server::{serve, serve_with_admin, serve_with_faults};

pub use store::{open_store, OrderStore, StoreError, StoreOptions};
