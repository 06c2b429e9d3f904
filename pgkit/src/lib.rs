//! PostgreSQL plumbing shared by the HTS stores (orders and accounts).
//!
//! * [`pool`] — a connection pool from a (multi-host) connection string.
//! * [`retry`] — classification of transient errors and retry with backoff.
//! * [`migrate`] — versioned, once-only schema migrations.
#![deny(missing_docs)]

pub mod error;
pub mod migrate;
pub mod pool;
pub mod retry;

pub use deadpool_postgres::{Object as PgClient, Pool};
pub use error::PgError;
pub use migrate::migrate;
pub use pool::{connect_pool, is_postgres_url, DEFAULT_POOL_SIZE};
pub use retry::{retry_transient, RetryPolicy};
