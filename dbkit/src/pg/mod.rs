//! PostgreSQL plumbing.
//!
//! * [`pool`] — a connection pool from a (multi-host) connection string.
//! * [`retry`] — classification of transient errors and retry with backoff.
//! * [`migrate`](mod@migrate) — versioned, once-only schema migrations.
//! * [`identity`](mod@identity) — store identity and schema version, checked
//!   at start.

pub mod error;
pub mod identity;
pub mod migrate;
pub mod pool;
pub mod retry;

pub use deadpool_postgres::{Object as PgClient, Pool};
pub use error::PgError;
pub use migrate::migrate;
pub use pool::{connect_pool, is_postgres_url, session_config, DEFAULT_POOL_SIZE};
pub use retry::{current_deadline, retry_limit, retry_transient, with_deadline, RetryPolicy};
