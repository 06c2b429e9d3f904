//! Account service: balances, positions and idempotent reservations over gRPC.
//!
//! * [`store`] — the durable SQLite ledger ([`AccountStore`]) with a
//!   group-committing writer thread.
//! * [`service`] — the `AccountService` gRPC implementation.
//! * [`server`] — [`serve`], which wires the store, the gRPC service and the
//!   standard health service onto a bound listener.
#![deny(missing_docs)]

pub mod config;
pub mod server;
pub mod service;
pub mod store;

pub use config::AccountServiceConfig;
pub use server::{open, serve, serve_store};
pub use store::{AccountStore, StoreError};
