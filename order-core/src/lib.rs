//! Order domain of the HTS order system.
//!
//! * [`domain`] — request validation, idempotency fingerprints and the
//!   reservation an order needs.
//! * [`store`] — the [`OrderStore`] trait and its SQLite implementation
//!   (shareable by several order-service processes).
//! * [`service`] — the `OrderService` gRPC implementation.
//! * [`server`] — [`serve`], wiring store, account client, background
//!   release retries and the health service onto a bound listener.
#![deny(missing_docs)]

pub mod config;
pub mod domain;
pub mod server;
pub mod service;
pub mod store;

pub use config::OrderServiceConfig;
pub use server::serve;

pub use store::{open_store, OrderStore, StoreError};
